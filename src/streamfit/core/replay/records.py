"""A replay reservoir of fixed-shape items: dense rows, or named tensors per item (sequence
windows)."""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch

from streamfit.core.batch import Batch
from streamfit.core.replay.reservoir import KEY_BYTES, Reservoir, allocate_keys
from streamfit.core.state import State
from streamfit.errors import ConfigError

__all__ = ["RecordReservoir", "create_records", "create_rows"]


class RecordReservoir(Reservoir):
    """Items of fixed-shape named tensors (``meta["fields"]``: name -> shape, dtype)."""

    @property
    def fields(self) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
        return {
            name: (tuple(spec["shape"]), getattr(torch, spec["dtype"]))
            for name, spec in self.meta["fields"].items()
        }

    def offer(
        self,
        items: Mapping[str, torch.Tensor],
        weights: torch.Tensor | None = None,
        keys: torch.Tensor | None = None,
    ) -> None:
        """Offer ``items`` (each field with the items along the first dimension); ``keys``
        (rather than fresh ones) when re-offering items that already have theirs."""
        fields = self.fields
        if set(items) != set(fields):
            raise ConfigError(f"replay: items have fields {sorted(items)}, not {sorted(fields)}")
        n = next(iter(items.values())).shape[0]
        for name, (shape, _) in fields.items():
            if tuple(items[name].shape) != (n, *shape):
                raise ConfigError(
                    f"replay: field {name!r} has shape {tuple(items[name].shape)}, "
                    f"expected {(n, *shape)}"
                )
        keys = self.keys_for(n, weights) if keys is None else keys
        self.meta["offered"] = self.offered + 1
        evict, take = self._choose(keys, None)
        if take.numel() == 0 and evict.numel() == 0:
            return
        slots = self._place(keys, evict, take)
        for name in fields:
            target = self._t(f"field.{name}")
            target[slots] = items[name].detach()[take.to(items[name].device)].to(target)

    def items(self, slots: torch.Tensor) -> dict[str, torch.Tensor]:
        return {name: self._t(f"field.{name}")[slots] for name in self.fields}

    def sample(self, n: int) -> dict[str, torch.Tensor] | None:
        """Up to ``n`` items drawn uniformly (with replacement) from those held."""
        slots = self._sample_slots(n)
        return None if slots is None else self.items(slots)

    def merge(self, other: Reservoir) -> None:
        """Fold ``other``'s items in with their own keys: the union's top keys."""
        assert isinstance(other, RecordReservoir)
        self._check_merge(other)
        held = other.held()
        offered = self.offered
        self.offer(other.items(held), keys=other._t("keys")[held])
        self.meta["offered"] = offered
        self._merged_floor(other)

    # dense rows ------------------------------------------------------------------------------

    def offer_batch(self, batch: Batch, weights: torch.Tensor | None = None) -> None:
        items = {"features": batch.dense_features()}
        if "labels" in self.meta["fields"]:
            if batch.labels is None:
                raise ConfigError("replay: this reservoir keeps labels, the batch has none")
            items["labels"] = batch.labels
        self.offer(items, weights)

    def sample_batch(self, n: int) -> Batch | None:
        drawn = self.sample(n)
        if drawn is None:
            return None
        return Batch(drawn["features"], drawn.get("labels"), replayed=True)


def create_records(
    state: State,
    fields: Mapping[str, tuple[tuple[int, ...], torch.dtype]],
    capacity_bytes: int,
    prefix: str = "replay",
    device: torch.device | str = "cpu",
) -> RecordReservoir:
    """A reservoir of items made of ``fields`` (name -> (shape, dtype)) in ``capacity_bytes``."""
    per_item = KEY_BYTES + sum(
        math.prod(shape) * torch.empty((), dtype=dtype).element_size()
        for shape, dtype in fields.values()
    )
    slots = capacity_bytes // per_item
    allocate_keys(state, prefix, slots, device)
    for name, (shape, dtype) in fields.items():
        state.tensors[f"{prefix}.field.{name}"] = torch.zeros(
            (slots, *shape), dtype=dtype, device=device
        )
    state.meta[prefix] = {
        "kind": "records",
        "slots": slots,
        "offered": 0,
        "fields": {
            name: {"shape": list(shape), "dtype": str(dtype).removeprefix("torch.")}
            for name, (shape, dtype) in fields.items()
        },
    }
    return RecordReservoir(state, prefix)


def create_rows(
    state: State,
    n_features: int,
    capacity_bytes: int,
    labelled: bool = True,
    prefix: str = "replay",
    device: torch.device | str = "cpu",
) -> RecordReservoir:
    """A reservoir of dense rows (float32 features and, if ``labelled``, a label)."""
    fields: dict[str, tuple[tuple[int, ...], torch.dtype]] = {
        "features": ((n_features,), torch.float32)
    }
    if labelled:
        fields["labels"] = ((), torch.float32)
    return create_records(state, fields, capacity_bytes, prefix, device)
