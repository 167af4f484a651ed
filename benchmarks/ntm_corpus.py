"""The text corpus of benchmarks/ntm.py: Debian's English package descriptions, frozen once and
preprocessed once, the same for every contender.

    python benchmarks/ntm_corpus.py [--vocabulary 5000] [--seed 13]

1. **Snapshot.** Debian's ``Translation-en`` lists (``apt-get update -o
   Acquire::Languages=en`` fetches them into /var/lib/apt/lists) hold one record per package:
   ``Package``, ``Description-md5`` and ``Description-en``, a one-line synopsis followed by
   the long description, indented, with `` .`` between paragraphs. A document is one long
   description (the synopsis is left out), paragraphs joined by spaces; packages that share
   a description word for word (the parts of one source package often do) give one document.
   The documents are written once, sorted by package, to ``descriptions.jsonl``, and its
   SHA-256 and count are printed: later runs reuse the file, so the figures stay repeatable
   while the lists change upstream.
2. **Preprocessing.** Tokens as :func:`tokenize` makes them (lower-case word characters, stop
   words removed); an 80/20 split of the documents by a fixed seed; the vocabulary is built
   on the training documents: words in more than half of them, or in fewer than 5, are
   dropped, and the 5,000 most frequent of the rest are kept (ids by descending count). A
   document left with no word of the vocabulary is dropped from both splits' files.
3. **Files**, one set per split, all holding the same documents in the same order: Parquet
   ``indices``/``values`` and libsvm (label 0) of the counts for streamfit and scikit-learn,
   Matrix Market (``.mm``) for gensim, and the raw text, one document per line (``.txt``),
   with ``vocab.txt`` (one word per line in id order) for streamfit's text input.
"""

from __future__ import annotations

import argparse
import collections
import glob
import hashlib
import json
import re
import subprocess
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DATA = HERE / "data" / "debian-en"
SNAPSHOT = DATA / "descriptions.jsonl"
LISTS = "/var/lib/apt/lists/*Translation-en*"
VOCABULARY = 5000
MAX_DF = 0.5
MIN_DF = 5
SEED = 13
TEST_FRACTION = 0.2
SPLITS = ("train", "test")
FORMATS = ("parquet", "libsvm", "mm", "txt")

__all__ = [
    "Corpus",
    "freeze",
    "parse_translations",
    "prepare",
    "read_corpus",
    "snapshot",
    "tokenize",
]


# -- 1. the snapshot -------------------------------------------------------------------------


def parse_translations(text: str) -> Iterator[tuple[str, str]]:
    """``(package, long description)`` of each record of a ``Translation-en`` list.

    >>> record = "Package: tig\\nDescription-en: text-mode git\\n Tig is a browser.\\n .\\n It..."
    >>> list(parse_translations(record))
    [('tig', 'Tig is a browser. It...')]
    """
    for record in text.split("\n\n"):
        package = None
        lines: list[str] = []
        inside = False
        for line in record.split("\n"):
            if line.startswith("Package:"):
                package = line.partition(":")[2].strip()
            elif line.startswith("Description-en:"):
                inside = True
            elif inside and line.startswith(" "):
                stripped = line.strip()
                if stripped != ".":
                    lines.append(stripped)
            else:
                inside = False
        if package and lines:
            yield package, " ".join(lines)


def _read_list(path: str) -> str:
    """A list's text: ``apt-helper cat-file`` undoes whichever compression apt chose."""
    out = subprocess.run(
        ["/usr/lib/apt/apt-helper", "cat-file", path], capture_output=True, check=True
    )
    return out.stdout.decode("utf-8", errors="replace")


def freeze(lists: Sequence[str], path: Path) -> list[dict[str, str]]:
    """Parse ``lists`` into documents (one per distinct description, sorted by package) and
    write them to ``path`` as JSON Lines ``{"package", "text"}``."""
    seen: dict[str, str] = {}
    for name in sorted(lists):
        for package, text in parse_translations(_read_list(name)):
            if text not in seen or package < seen[text]:
                seen[text] = package
    docs = sorted(({"package": p, "text": t} for t, p in seen.items()), key=lambda d: d["package"])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with tmp.open("w") as f:
        for doc in docs:
            f.write(json.dumps(doc) + "\n")
    tmp.rename(path)
    return docs


def snapshot(path: Path = SNAPSHOT) -> tuple[Path, str, int]:
    """The frozen corpus, its SHA-256 and its number of documents: written from the apt lists
    the first time (fetching them if this machine has none), reused afterwards."""
    if not path.exists():
        lists = glob.glob(LISTS)
        if not lists:
            subprocess.run(["apt-get", "update", "-o", "Acquire::Languages=en"], check=True)
            lists = glob.glob(LISTS)
        if not lists:
            raise SystemExit(f"no Translation-en lists under {LISTS} after apt-get update")
        freeze(lists, path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    with path.open() as f:
        count = sum(1 for _ in f)
    return path, digest, count


def read_corpus(path: Path) -> list[str]:
    with path.open() as f:
        return [json.loads(line)["text"] for line in f]


# -- 2. preprocessing ------------------------------------------------------------------------

_WORD = re.compile(r"\w+")


def _stop_words() -> frozenset[str]:
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return frozenset(ENGLISH_STOP_WORDS)


_STOP = _stop_words()


def tokenize(text: str) -> list[str]:
    """Lower-case runs of word characters, stop words removed.

    >>> tokenize("The X Window System's server, for X11.")
    ['x', 'window', 's', 'server', 'x11']
    """
    return [w for w in _WORD.findall(text.lower()) if w not in _STOP]


def build_vocabulary(
    docs: Iterable[Sequence[str]], size: int, max_df: float, min_df: int
) -> list[str]:
    """The ``size`` most frequent words (ties alphabetical) of those in at most ``max_df`` of
    the documents and in at least ``min_df`` of them.

    >>> build_vocabulary([["a", "b"], ["a", "b", "b"], ["a", "c"]], 5, 0.9, 2)
    ['b']
    """
    df: collections.Counter[str] = collections.Counter()
    tf: collections.Counter[str] = collections.Counter()
    n = 0
    for doc in docs:
        n += 1
        tf.update(doc)
        df.update(set(doc))
    kept = [w for w, d in df.items() if min_df <= d <= max_df * n]
    kept.sort(key=lambda w: (-tf[w], w))
    return kept[:size]


def split(n: int, seed: int, test_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Train and test document numbers: a random ``test_fraction``, each part in corpus order."""
    order = np.random.default_rng(seed).permutation(n)
    cut = n - round(n * test_fraction)
    return np.sort(order[:cut]), np.sort(order[cut:])


def counts(
    docs: Iterable[Sequence[str]], ids: dict[str, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CSR arrays (indptr, indices, values) of the vocabulary's counts, ids ascending per row."""
    indptr = [0]
    indices: list[int] = []
    values: list[float] = []
    for doc in docs:
        c = collections.Counter(ids[w] for w in doc if w in ids)
        for i in sorted(c):
            indices.append(i)
            values.append(float(c[i]))
        indptr.append(len(indices))
    return (
        np.asarray(indptr, dtype=np.int64),
        np.asarray(indices, dtype=np.int64),
        np.asarray(values, dtype=np.float32),
    )


# -- 3. the files ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Corpus:
    """A prepared corpus: ``folder`` holds ``{split}.{format}`` files and ``vocab.txt``."""

    folder: Path

    def path(self, split: str, fmt: str) -> Path:
        return self.folder / f"{split}.{fmt}"

    @property
    def vocab(self) -> Path:
        return self.folder / "vocab.txt"

    @property
    def manifest(self) -> dict[str, object]:
        loaded: dict[str, object] = json.loads((self.folder / "manifest.json").read_text())
        return loaded

    def words(self) -> list[str]:
        return self.vocab.read_text().splitlines()

    def documents(self, split: str) -> int:
        return int(self.manifest[f"{split}_documents"])  # type: ignore[call-overload]

    def csr(self, split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The split's (indptr, indices, values), read from its Parquet file."""
        import pyarrow.parquet as pq

        table = pq.read_table(self.path(split, "parquet"))
        idx = table.column("indices").combine_chunks()
        vals = table.column("values").combine_chunks()
        return (
            np.asarray(idx.offsets.to_numpy(), dtype=np.int64),
            np.asarray(idx.flatten().to_numpy(), dtype=np.int64),
            np.asarray(vals.flatten().to_numpy(), dtype=np.float32),
        )


def _write_counts(
    corpus: Corpus, name: str, csr: tuple[np.ndarray, np.ndarray, np.ndarray], width: int
) -> None:
    from streamfit.data.chunk import sparse_record_batch
    from streamfit.data.writers import WRITERS

    indptr, indices, values = csr
    batch = sparse_record_batch(indptr, indices, values, None)
    for fmt in ("parquet", "libsvm"):
        with corpus.path(name, fmt).open("wb") as f:
            WRITERS[fmt]([batch], f)
    _write_mm(corpus.path(name, "mm"), csr, width)


def _write_mm(path: Path, csr: tuple[np.ndarray, np.ndarray, np.ndarray], width: int) -> None:
    """Matrix Market coordinates, 1-based, one document per row: what gensim's ``MmCorpus``
    streams from disk."""
    indptr, indices, values = csr
    rows = np.repeat(np.arange(1, len(indptr)), np.diff(indptr))
    with path.open("w") as f:
        f.write("%%MatrixMarket matrix coordinate real general\n")
        f.write(f"{len(indptr) - 1} {width} {len(indices)}\n")
        lines = (f"{r} {i + 1} {int(v)}" for r, i, v in zip(rows, indices, values, strict=True))
        f.write("\n".join(lines) + ("\n" if len(indices) else ""))


def prepare(
    snapshot_path: Path,
    folder: Path,
    *,
    vocabulary: int = VOCABULARY,
    max_df: float = MAX_DF,
    min_df: int = MIN_DF,
    seed: int = SEED,
    test_fraction: float = TEST_FRACTION,
) -> Corpus:
    """Preprocess the snapshot into ``folder`` (see the module's docstring); a folder already
    prepared from the same snapshot with the same settings is reused as it is."""
    digest = hashlib.sha256(snapshot_path.read_bytes()).hexdigest()
    settings = {
        "snapshot_sha256": digest,
        "vocabulary": vocabulary,
        "max_df": max_df,
        "min_df": min_df,
        "seed": seed,
        "test_fraction": test_fraction,
    }
    corpus = Corpus(folder)
    manifest = folder / "manifest.json"
    if manifest.exists():
        done = json.loads(manifest.read_text())
        if all(done.get(k) == v for k, v in settings.items()):
            return corpus
    folder.mkdir(parents=True, exist_ok=True)
    texts = read_corpus(snapshot_path)
    tokens = [tokenize(t) for t in texts]
    train_ids, test_ids = split(len(texts), seed, test_fraction)
    words = build_vocabulary((tokens[i] for i in train_ids), vocabulary, max_df, min_df)
    ids = {w: i for i, w in enumerate(words)}
    corpus.vocab.write_text("".join(w + "\n" for w in words))
    stats: dict[str, object] = {**settings, "vocabulary_words": len(words)}
    for name, part in (("train", train_ids), ("test", test_ids)):
        keep = [i for i in part if any(w in ids for w in tokens[i])]
        csr = counts((tokens[i] for i in keep), ids)
        _write_counts(corpus, name, csr, len(words))
        with corpus.path(name, "txt").open("w") as f:
            f.writelines(texts[i].replace("\n", " ") + "\n" for i in keep)
        stats[f"{name}_documents"] = len(keep)
        stats[f"{name}_dropped_empty"] = len(part) - len(keep)
        stats[f"{name}_tokens"] = int(csr[2].sum())
    manifest.write_text(json.dumps(stats, indent=2) + "\n")
    return corpus


def default_folder(vocabulary: int = VOCABULARY, seed: int = SEED) -> Path:
    return DATA / f"v{vocabulary}-seed{seed}"


def load(vocabulary: int = VOCABULARY, seed: int = SEED, *, quiet: bool = False) -> Corpus:
    """The benchmark's corpus: the snapshot (made once) preprocessed (once) with these
    settings; prints the snapshot's SHA-256 and size unless ``quiet``."""
    path, digest, count = snapshot()
    if not quiet:
        print(f"corpus: {path} ({count:,} documents, sha256 {digest})", flush=True)
    corpus = prepare(path, default_folder(vocabulary, seed), vocabulary=vocabulary, seed=seed)
    if not quiet:
        m = corpus.manifest
        print(
            f"  {m['train_documents']:,} train / {m['test_documents']:,} test documents, "
            f"{m['vocabulary_words']:,} words, {m['train_tokens']:,} train tokens "
            f"(in {corpus.folder})",
            flush=True,
        )
    return corpus


def main() -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--vocabulary", type=int, default=VOCABULARY)
    p.add_argument("--seed", type=int, default=SEED)
    args = p.parse_args()
    load(args.vocabulary, args.seed)


if __name__ == "__main__":
    main()
