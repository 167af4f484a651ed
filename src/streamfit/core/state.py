"""The state of a streaming algorithm: all it needs to continue training.

A state is tensors (parameters, optimiser moments, sufficient statistics) plus JSON-able
metadata, the data position and the random generator. Checkpoints, resume, incremental
training, merging and post-training tuning all work on this one object.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from streamfit.core.persist import load_folder, save_folder
from streamfit.errors import CorruptStateError

__all__ = ["Position", "State"]

_RNG_KEY = "__rng__"


@dataclass
class Position:
    """Where training stands in its input: epochs completed, rows consumed in the current one."""

    epoch: int = 0
    rows: int = 0


@dataclass
class State:
    """A training state.

    ``tensors`` and ``meta`` belong to the algorithm; ``counters``, ``position`` and
    ``inputs`` to the trainer. ``generator`` is the only source of randomness an algorithm may
    use, so that a resumed run draws the same numbers as an uninterrupted one. ``inputs``
    says what the state was trained on: the input schema (``"schema"``: the feature columns by
    name, for sources that name them) and the identity of the train channel (``"train"``), so
    that resuming or predicting on other data is an error rather than a silent mix-up.
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

    @property
    def device(self) -> torch.device:
        for t in self.tensors.values():
            return t.device
        return torch.device("cpu")

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
            return cls(
                algorithm=str(doc["algorithm"]),
                hyperparameters=dict(doc["hyperparameters"]),
                n_features=int(doc["n_features"]),
                tensors={k: _aligned(v).to(device) for k, v in tensors.items()},
                meta=dict(doc["meta"]),
                counters={k: v for k, v in doc["counters"].items()},
                position=position,
                generator=generator,
                inputs=dict(doc.get("inputs") or {}),  # states written before it had none
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
