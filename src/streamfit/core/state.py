"""The state of a streaming algorithm: all it needs to continue training.

A state is tensors (parameters, optimiser moments, sufficient statistics) plus JSON-able
metadata, the data position and the random generator. Checkpoints, resume, incremental
training, merging and post-training tuning all work on this one object.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from streamfit.core.persist import load_folder, save_folder
from streamfit.errors import CorruptStateError

__all__ = ["TEXT_INPUT", "Layout", "Position", "State", "TrainerRecord"]

_RNG_KEY = "__rng__"


@dataclass
class Position:
    """Where training stands in its input: epochs completed, rows consumed in the current one."""

    epoch: int = 0
    rows: int = 0


@dataclass
class Layout:
    """How a distributed run split its input, kept in its checkpoints so that a rerun resumes
    each worker where it stood: how the workers combine, each shard's description and each
    worker's position in its shard."""

    workers: int
    mode: str
    shards: list[str]
    positions: list[int]


#: The trainer's counts, which add up when states merge.
_COUNTS = ("rows", "bad_rows", "batches", "unknown_words")


@dataclass
class TrainerRecord:
    """What the trainer knows of a state's training besides its position: rows and batches
    folded in (every epoch and run), bad rows skipped, whether early stopping ended it, and a
    distributed checkpoint's layout. Algorithms keep counts of their own where they need them.

    >>> a, b = TrainerRecord(rows=10, batches=1), TrainerRecord(rows=5, bad_rows=2, batches=1)
    >>> a.merged(b)  # doctest: +NORMALIZE_WHITESPACE
    TrainerRecord(rows=15, bad_rows=2, batches=2, stopped_early=False, distributed=None,
                  unknown_words=0)
    """

    rows: int = 0
    bad_rows: int = 0
    batches: int = 0
    stopped_early: bool = False
    distributed: Layout | None = None
    #: Words of raw text the vocabulary lacks, in the rows folded in.
    unknown_words: int = 0

    def counts(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in _COUNTS}

    def add(self, counts: dict[str, int]) -> None:
        """Add ``counts`` (by name, as :meth:`counts` gives them)."""
        for name, amount in counts.items():
            setattr(self, name, getattr(self, name) + int(amount))

    def merged(self, other: TrainerRecord) -> TrainerRecord:
        """The record of a state merged from this one's and ``other``'s: counts add up."""
        out = self.copy()
        out.add(other.counts())
        return out

    def copy(self) -> TrainerRecord:
        layout = self.distributed
        if layout is not None:
            layout = Layout(
                layout.workers, layout.mode, list(layout.shards), list(layout.positions)
            )
        return dataclasses.replace(self, distributed=layout)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> TrainerRecord:
        layout = doc.get("distributed")
        return cls(
            **{name: int(doc.get(name, 0)) for name in _COUNTS},
            stopped_early=bool(doc.get("stopped_early", False)),
            distributed=None if layout is None else _layout(layout),
        )

    @classmethod
    def legacy(cls, counters: dict[str, float], meta: dict[str, Any]) -> TrainerRecord:
        """The record of a state written before states had one: the trainer's counts were
        in ``counters``, the early stop and the layout in ``meta`` (taken out of both)."""
        doc: dict[str, Any] = {name: counters.pop(name, 0) for name in _COUNTS}
        doc["stopped_early"] = meta.pop("stopped_early", False)
        doc["distributed"] = meta.pop("distributed", None)
        return cls.from_json(doc)


def _layout(doc: dict[str, Any]) -> Layout:
    return Layout(
        int(doc["workers"]),
        str(doc["mode"]),
        [str(s) for s in doc["shards"]],
        [int(p) for p in doc["positions"]],
    )


#: The key of ``State.inputs`` (and ``Model.meta``) that records how raw text was read.
TEXT_INPUT = "text"


@dataclass
class State:
    """A training state.

    ``tensors``, ``meta`` and ``counters`` (numbers that add up when states merge) belong to
    the algorithm; ``trainer``, ``position`` and ``inputs`` to the trainer. ``generator`` is
    the only source of randomness an algorithm may use, so that a resumed run draws the same
    numbers as an uninterrupted one. ``inputs``
    says what the state was trained on: the input schema (``"schema"``: the feature columns by
    name, for sources that name them), the identity of the train channel (``"train"``) and
    how raw text was read (``"text"``: the auxiliary channel's vocabulary and the stop-word
    setting), so that resuming or predicting on other data is an error rather than a silent
    mix-up.
    """

    algorithm: str
    hyperparameters: dict[str, Any]
    n_features: int
    tensors: dict[str, torch.Tensor] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    counters: dict[str, float] = field(default_factory=dict)
    position: Position = field(default_factory=Position)
    generator: torch.Generator = field(default_factory=torch.Generator)
    inputs: dict[str, Any] = field(default_factory=dict)
    trainer: TrainerRecord = field(default_factory=TrainerRecord)

    @property
    def device(self) -> torch.device:
        for t in self.tensors.values():
            return t.device
        return torch.device("cpu")

    @property
    def vocabulary(self) -> list[str] | None:
        """The words of the feature ids, in id order, when a vocabulary (SageMaker's
        auxiliary channel) named them; else None.

        >>> State("ntm", {}, 2, inputs={"text": {"vocabulary": {"words": ["a", "b"]}}}).vocabulary
        ['a', 'b']
        """
        text = self.inputs.get(TEXT_INPUT) or {}
        vocabulary = text.get("vocabulary") or {}
        words = vocabulary.get("words")
        return [str(w) for w in words] if isinstance(words, list) else None

    def count(self, name: str, amount: float = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + amount

    def to(self, device: torch.device | str) -> State:
        """Move every tensor to ``device`` in place; returns ``self``."""
        self.tensors = {k: v.to(device) for k, v in self.tensors.items()}
        return self

    def clone(self) -> State:
        generator = torch.Generator()
        generator.set_state(self.generator.get_state())
        return State(
            algorithm=self.algorithm,
            hyperparameters=dict(self.hyperparameters),
            n_features=self.n_features,
            tensors={k: v.clone() for k, v in self.tensors.items()},
            meta=_deep_copy_json(self.meta),
            counters=dict(self.counters),
            position=Position(self.position.epoch, self.position.rows),
            generator=generator,
            inputs=_deep_copy_json(self.inputs),
            trainer=self.trainer.copy(),
        )

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the state as ``state.safetensors`` + ``state.json`` (atomically)."""
        tensors = dict(self.tensors)
        tensors[_RNG_KEY] = self.generator.get_state()
        meta = {
            "hyperparameters": self.hyperparameters,
            "n_features": self.n_features,
            "meta": self.meta,
            "counters": self.counters,
            "position": {"epoch": self.position.epoch, "rows": self.position.rows},
            "inputs": self.inputs,
            "trainer": self.trainer.to_json(),
        }
        return save_folder(path, "state", self.algorithm, tensors, meta)

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        algorithm: str | None = None,
        device: torch.device | str = "cpu",
    ) -> State:
        """Read a state folder; a corrupt file or another algorithm's state is a clear error."""
        tensors, doc = load_folder(path, "state", algorithm)
        try:
            rng = tensors.pop(_RNG_KEY)
            generator = torch.Generator()
            generator.set_state(rng)
            position = Position(int(doc["position"]["epoch"]), int(doc["position"]["rows"]))
            meta = dict(doc["meta"])
            counters = dict(doc["counters"])
            if "trainer" in doc:
                trainer = TrainerRecord.from_json(doc["trainer"])
            else:
                trainer = TrainerRecord.legacy(counters, meta)
            return cls(
                algorithm=str(doc["algorithm"]),
                hyperparameters=dict(doc["hyperparameters"]),
                n_features=int(doc["n_features"]),
                tensors={k: _aligned(v).to(device) for k, v in tensors.items()},
                meta=meta,
                counters=counters,
                position=position,
                generator=generator,
                inputs=dict(doc.get("inputs") or {}),  # states written before it had none
                trainer=trainer,
            )
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise CorruptStateError(f"{path}: incomplete state ({exc!r})") from exc


def _aligned(t: torch.Tensor) -> torch.Tensor:
    """``t`` in 64-byte aligned memory. Tensors read from a safetensors file sit at whatever
    offset the file gives them, and MKL rounds matrix products differently on unaligned
    data: a resumed run would not be bit-identical to an uninterrupted one."""
    return t if t.data_ptr() % 64 == 0 else t.clone()


def _deep_copy_json(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _deep_copy_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy_json(v) for v in value]
    return value
