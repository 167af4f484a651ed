"""The most frequent words of each bucket of a hashed vocabulary: a mergeable Space-Saving
sketch in fixed memory, kept in a state's tensors.

When words are hashed into ``buckets`` columns, a model can still be shown as words: each
bucket keeps ``slots`` (word, count, error) slots, the words as fixed-width UTF-8 bytes (a
longer word is cut at a character boundary, so two words that share their first ``width``
bytes are one), and the bucket's total count. Four tensors, saved and loaded bit for bit:

- ``words``: uint8 ``(buckets, slots, width)``, zero-padded;
- ``counts``: int64 ``(buckets, slots)``, an overestimate of each word's count (0: empty slot);
- ``errors``: int64 ``(buckets, slots)``, by how much at most: the word was seen between
  ``count - error`` and ``count`` times;
- ``totals``: int64 ``(buckets,)``, the count of every word hashed to the bucket.

Updates and merges are one operation, the mergeable Space-Saving merge (Agarwal et al.,
"Mergeable summaries", 2012; Cafaro et al., 2016): take the union of two summaries of a
bucket, add the counts of a word both hold, give a word only one holds the other's floor (its
smallest count if all its slots are full, else 0: what the word may have had there unseen),
and keep the ``slots`` largest. A batch of (bucket, word, count) triples is merged as the
exact summary of the batch. With ``N`` the bucket's total, every word kept satisfies
``count - error <= true count <= count`` and ``error <= N / slots``, and every word seen more
than ``N / slots`` times is kept: in one pass, in any order of batches, and after merging
sketches of disjoint streams.

>>> sketch = WordSketch.empty(buckets=4, slots=2)
>>> sketch.update([1, 1, 1, 3], ["kernel", "colonel", "kernel", "gpu"], [3, 1, 2, 1])
>>> top = sketch.top(1)
>>> [(w.word, w.count, w.error) for w in top.words], top.total, top.collisions
([('kernel', 5, 0), ('colonel', 1, 0)], 6, True)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from streamfit.errors import ConfigError

__all__ = ["COLLISION_SHARE", "SLOTS", "WIDTH", "BucketWords", "WordCount", "WordSketch"]

#: Slots per bucket: a bucket's error bound is its total count divided by this.
SLOTS = 4
#: Bytes of UTF-8 kept of each word.
WIDTH = 32
#: A second word holding at least this share of its bucket's count, for certain, is a collision.
COLLISION_SHARE = 0.1

_NAMES = ("words", "counts", "errors", "totals")


@dataclass(frozen=True)
class WordCount:
    """A word of a bucket: seen at most ``count`` and at least ``count - error`` times."""

    word: str
    count: int
    error: int


@dataclass(frozen=True)
class BucketWords:
    """A bucket's words, most frequent first; ``total`` counts every word hashed there, and
    ``collisions`` says a second word holds a real share of it (see :meth:`WordSketch.top`)."""

    words: list[WordCount]
    total: int
    collisions: bool


@dataclass
class _Entries:
    """Flat summary entries: a local bucket number, the word's bytes, count and error."""

    buckets: np.ndarray  # int64 (n,)
    words: np.ndarray  # uint8 (n, width)
    counts: np.ndarray  # int64 (n,)
    errors: np.ndarray  # int64 (n,)


class WordSketch:
    """Space-Saving slots per bucket over four tensors (see the module docstring).

    The tensors are used in place: :meth:`update` writes into those given, so a sketch made by
    :meth:`from_tensors` on a state's tensors updates the state.
    """

    def __init__(
        self,
        words: torch.Tensor,
        counts: torch.Tensor,
        errors: torch.Tensor,
        totals: torch.Tensor,
    ) -> None:
        if words.dtype != torch.uint8 or words.dim() != 3:
            raise ConfigError("a word sketch's words are uint8 (buckets, slots, width)")
        shape = tuple(words.shape[:2])
        for name, t in (("counts", counts), ("errors", errors)):
            if t.dtype != torch.int64 or tuple(t.shape) != shape:
                raise ConfigError(f"a word sketch's {name} are int64 {shape}, not {t.shape}")
        if totals.dtype != torch.int64 or tuple(totals.shape) != shape[:1]:
            raise ConfigError(f"a word sketch's totals are int64 ({shape[0]},)")
        self.words, self.counts, self.errors, self.totals = words, counts, errors, totals

    @classmethod
    def empty(
        cls,
        buckets: int,
        slots: int = SLOTS,
        width: int = WIDTH,
        device: torch.device | str = "cpu",
    ) -> WordSketch:
        """A sketch that has seen nothing."""
        if buckets < 1 or slots < 1 or width < 4:  # 4 bytes: any one character fits
            raise ConfigError(
                f"a word sketch needs buckets >= 1, slots >= 1 and width >= 4, "
                f"got {buckets}, {slots}, {width}"
            )
        return cls(
            torch.zeros(buckets, slots, width, dtype=torch.uint8, device=device),
            torch.zeros(buckets, slots, dtype=torch.int64, device=device),
            torch.zeros(buckets, slots, dtype=torch.int64, device=device),
            torch.zeros(buckets, dtype=torch.int64, device=device),
        )

    @classmethod
    def from_tensors(
        cls, tensors: Mapping[str, torch.Tensor], prefix: str = "sketch"
    ) -> WordSketch:
        """The sketch held in ``tensors`` (a state's) under ``prefix.words`` and so on."""
        missing = [f"{prefix}.{n}" for n in _NAMES if f"{prefix}.{n}" not in tensors]
        if missing:
            raise ConfigError(f"no word sketch in these tensors (missing {', '.join(missing)})")
        return cls(*(tensors[f"{prefix}.{n}"] for n in _NAMES))

    def tensors(self, prefix: str = "sketch") -> dict[str, torch.Tensor]:
        """The four tensors under their names, to put in a state's ``tensors``."""
        return {f"{prefix}.{n}": getattr(self, n) for n in _NAMES}

    @property
    def buckets(self) -> int:
        return int(self.words.shape[0])

    @property
    def slots(self) -> int:
        return int(self.words.shape[1])

    @property
    def width(self) -> int:
        return int(self.words.shape[2])

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (getattr(self, n) for n in _NAMES))

    def update(
        self,
        buckets: Sequence[int] | np.ndarray | torch.Tensor,
        words: Sequence[str],
        counts: Sequence[float] | np.ndarray | torch.Tensor,
    ) -> None:
        """Count ``counts[i]`` occurrences of ``words[i]`` in bucket ``buckets[i]`` (counts are
        whole and positive; a zero is ignored), in place."""
        b = _int_array(buckets)
        c = np.rint(_float_array(counts)).astype(np.int64)
        if not len(b) == len(words) == len(c):
            raise ConfigError(
                f"a sketch update needs as many buckets, words and counts "
                f"({len(b)}, {len(words)}, {len(c)})"
            )
        if len(b) and (b.min() < 0 or b.max() >= self.buckets):
            raise ConfigError(f"a bucket is outside [0, {self.buckets})")
        if (c < 0).any():
            raise ConfigError("a word count is negative")
        keep = c > 0
        if not keep.all():
            b, c = b[keep], c[keep]
            words = [w for w, k in zip(words, keep, strict=True) if k]
        if not len(b):
            return
        rows, local = np.unique(b, return_inverse=True)
        mine, floor = self._entries(rows)
        batch = _Entries(local.reshape(-1), encode(words, self.width), c, np.zeros_like(c))
        self._write(rows, _combine(len(rows), self.slots, mine, floor, batch, np.zeros_like(floor)))
        added = torch.from_numpy(np.bincount(local.reshape(-1), weights=c).astype(np.int64))
        index = torch.from_numpy(rows).to(self.totals.device)
        self.totals.index_add_(0, index, added.to(self.totals.device))

    def merged(self, other: WordSketch) -> WordSketch:
        """The sketch of both streams (a new one; neither is changed)."""
        if self.words.shape != other.words.shape:
            raise ConfigError(
                f"word sketches of shapes {tuple(self.words.shape)} and "
                f"{tuple(other.words.shape)} cannot be merged"
            )
        out = WordSketch(*(getattr(self, n).clone() for n in _NAMES))
        held = (self.counts > 0).any(1) | (other.counts.to(self.counts.device) > 0).any(1)
        rows = torch.nonzero(held).reshape(-1).cpu().numpy()
        if len(rows):
            mine, my_floor = self._entries(rows)
            theirs, their_floor = other._entries(rows)
            combined = _combine(len(rows), self.slots, mine, my_floor, theirs, their_floor)
            out._write(rows, combined)
        out.totals += other.totals.to(out.totals.device)
        return out

    def top(self, bucket: int, share: float = COLLISION_SHARE) -> BucketWords:
        """The words of ``bucket``, most frequent first. ``collisions``: a word other than the
        first was seen, for certain (``count - error``), at least ``share`` of the bucket's
        total count."""
        if not 0 <= bucket < self.buckets:
            raise ConfigError(f"bucket {bucket} is outside [0, {self.buckets})")
        counts = self.counts[bucket].cpu().tolist()
        errors = self.errors[bucket].cpu().tolist()
        raw = self.words[bucket].cpu().numpy()
        found = [
            WordCount(decode(raw[s]), int(counts[s]), int(errors[s]))
            for s in range(self.slots)
            if counts[s] > 0
        ]
        total = int(self.totals[bucket])
        collisions = any(w.count - w.error >= share * total for w in found[1:])
        return BucketWords(found, total, collisions)

    # -- internals ---------------------------------------------------------------------------

    def _entries(self, rows: np.ndarray) -> tuple[_Entries, np.ndarray]:
        """The occupied slots of ``rows`` (numbered locally 0..len-1) and each row's floor."""
        words, counts, errors = (_gather(getattr(self, n), rows) for n in _NAMES[:3])
        held = counts > 0
        local, slot = np.nonzero(held)
        floor = np.where(held.all(1), counts.min(1), 0).astype(np.int64)
        entries = _Entries(
            local.astype(np.int64), words[local, slot], counts[local, slot], errors[local, slot]
        )
        return entries, floor

    def _write(self, rows: np.ndarray, combined: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
        for name, array in zip(_NAMES[:3], combined, strict=True):
            tensor = getattr(self, name)
            if tensor.device.type == "cpu":
                tensor.numpy()[rows] = array  # torch's indexing of the CPU is 30 times slower
            else:
                index = torch.from_numpy(rows).to(tensor.device)
                tensor[index] = torch.from_numpy(array).to(tensor.device)


def _gather(tensor: torch.Tensor, rows: np.ndarray) -> np.ndarray:
    if tensor.device.type == "cpu":
        return np.asarray(tensor.numpy()[rows])
    return tensor[torch.from_numpy(rows).to(tensor.device)].cpu().numpy()


def _combine(
    n_rows: int,
    slots: int,
    first: _Entries,
    first_floor: np.ndarray,
    second: _Entries,
    second_floor: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The mergeable Space-Saving merge of two summaries of ``n_rows`` buckets: each bucket's
    ``slots`` largest words as ``(words, counts, errors)`` arrays, largest first. A word may
    repeat within ``second`` (a batch's raw triples): its counts add up."""
    width = first.words.shape[1]
    buckets = np.concatenate([first.buckets, second.buckets])
    words = np.concatenate([first.words, second.words])
    # (bucket, word) as one byte string: big-endian so that bytes sort as the bucket does.
    keys = np.concatenate([buckets.astype(">i8").view(np.uint8).reshape(-1, 8), words], axis=1)
    keys = np.ascontiguousarray(keys).view(f"V{8 + width}").reshape(-1)
    _, at, inverse = np.unique(keys, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    n, m = len(first.buckets), len(at)
    sums = []
    for part, entries in ((inverse[:n], first), (inverse[n:], second)):
        held = np.zeros(m, dtype=bool)
        held[part] = True
        count = np.bincount(part, weights=entries.counts, minlength=m).astype(np.int64)
        error = np.bincount(part, weights=entries.errors, minlength=m).astype(np.int64)
        sums.append((held, count, error))
    bucket = buckets[at]
    (held1, count1, error1), (held2, count2, error2) = sums
    floor1, floor2 = first_floor[bucket], second_floor[bucket]
    estimate = np.where(held1, count1, floor1) + np.where(held2, count2, floor2)
    error = np.where(held1, error1, floor1) + np.where(held2, error2, floor2)
    # Per bucket, largest estimate first; ties by the word's bytes, so the result is one.
    order = np.lexsort((np.arange(m), -estimate, bucket))
    ordered = bucket[order]
    rank = np.arange(m) - np.searchsorted(ordered, ordered, side="left")
    keep = rank < slots
    take, row, slot = order[keep], ordered[keep], rank[keep]
    out_words = np.zeros((n_rows, slots, width), dtype=np.uint8)
    out_counts = np.zeros((n_rows, slots), dtype=np.int64)
    out_errors = np.zeros((n_rows, slots), dtype=np.int64)
    out_words[row, slot] = words[at[take]]
    out_counts[row, slot] = estimate[take]
    out_errors[row, slot] = error[take]
    return out_words, out_counts, out_errors


def encode(words: Sequence[str], width: int) -> np.ndarray:
    """Each word as ``width`` bytes of UTF-8, zero-padded, cut at a character boundary.

    >>> encode(["go", "naïve"], 3).tolist()  # "naïve" is n, a, then two bytes for ï
    [[103, 111, 0], [110, 97, 0]]
    """
    raw = [w.encode() for w in words]
    raw = [r if len(r) <= width else r[:width].decode("utf-8", "ignore").encode() for r in raw]
    return np.array(raw, dtype=f"S{width}").view(np.uint8).reshape(len(raw), width)


def decode(raw: np.ndarray) -> str:
    return bytes(raw).rstrip(b"\0").decode("utf-8", "replace")


def _int_array(values: Sequence[int] | np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    return np.asarray(values, dtype=np.int64).reshape(-1)


def _float_array(values: Sequence[float] | np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    return np.asarray(values, dtype=np.float64).reshape(-1)
