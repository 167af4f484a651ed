"""The keys of a replay reservoir and the choice of what it keeps, shared by its layouts
(:mod:`streamfit.core.replay`)."""

from __future__ import annotations

import math
from typing import Any

import torch

from streamfit.core.state import State
from streamfit.errors import ConfigError, IncompatibleStateError

__all__ = ["KEY_BYTES", "Reservoir", "allocate_keys"]

#: A key per item (a float64) and whether its slot holds one.
KEY_BYTES = 9
_LOWEST = torch.finfo(torch.float64).min


class Reservoir:
    """The keys and the choice of what to keep, shared by the layouts. A view of a state:
    every call reads and writes ``state``'s entries under ``prefix``."""

    def __init__(self, state: State, prefix: str = "replay") -> None:
        self.state = state
        self.prefix = prefix
        self.meta: dict[str, Any] = state.meta[prefix]

    # -- entries ----------------------------------------------------------------------------

    def _t(self, name: str) -> torch.Tensor:
        return self.state.tensors[f"{self.prefix}.{name}"]

    def _set(self, name: str, value: torch.Tensor) -> None:
        self.state.tensors[f"{self.prefix}.{name}"] = value

    @property
    def slots(self) -> int:
        return int(self.meta["slots"])

    @property
    def offered(self) -> int:
        """Batches offered so far (what a replay ratio counts)."""
        return int(self.meta["offered"])

    @property
    def nbytes(self) -> int:
        """The reservoir's memory: fixed when it was created."""
        head = f"{self.prefix}."
        return sum(
            t.numel() * t.element_size()
            for k, t in self.state.tensors.items()
            if k.startswith(head)
        )

    def held(self) -> torch.Tensor:
        """The slots holding an item, ascending."""
        mask = self._t("held")
        count = self._prefix(mask)
        if count is not None:
            return torch.arange(count, device=mask.device)
        return mask.nonzero().squeeze(1)

    @staticmethod
    def _prefix(mask: torch.Tensor) -> int | None:
        """How many slots are held if they are the lowest ones, the usual layout (slots fill
        from the lowest): a sum and a check instead of a ``nonzero`` over every slot, a
        tenth of its time on the CPU. None if the held slots have gaps."""
        count = int(mask.sum())
        return count if bool(mask[:count].all()) else None

    def __len__(self) -> int:
        return int(self._t("held").sum())

    # -- keys and the choice ------------------------------------------------------------------

    def keys_for(self, n: int, weights: torch.Tensor | None = None) -> torch.Tensor:
        """A-ES keys ``log(u) / w`` for ``n`` items, from the state's generator."""
        u = 1.0 - torch.rand(n, dtype=torch.float64, generator=self.state.generator)
        keys = torch.log(u)
        if weights is not None:
            w = weights.detach().to("cpu", torch.float64).reshape(-1)
            if w.numel() != n:
                raise ConfigError(f"replay: {w.numel()} weights for {n} items")
            if not bool(torch.isfinite(w).all()) or bool((w < 0).any()):
                raise ConfigError("replay: weights must be finite and not negative")
            keys = torch.where(w > 0, keys / w.clamp_min(1e-300), -math.inf)
        return keys

    def _choose(
        self, keys: torch.Tensor, sizes: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Which held slots to evict and which of the new items (``keys``, ``sizes`` in
        non-zeros, None: no size limit but the slots) to keep."""
        device = self._t("keys").device
        keys = keys.to(device)
        floor = self._t("floor")
        candidate = (keys > floor).nonzero().squeeze(1)
        none = torch.zeros(0, dtype=torch.int64, device=device)
        if candidate.numel() == 0:
            return none, none
        held = self.held()
        if held.numel() + candidate.numel() <= self.slots and (
            sizes is None
            or int(self._t("length")[held].sum() + sizes.to(device)[candidate].sum())
            <= self.capacity_nnz
        ):  # room for every candidate: nothing to rank (a stream shorter than the reservoir)
            return none, candidate
        all_keys = torch.cat([self._t("keys")[held], keys[candidate]])
        order = torch.sort(all_keys, descending=True, stable=True).indices
        keep = torch.arange(1, order.numel() + 1, device=device) <= self.slots
        if sizes is not None:
            all_sizes = torch.cat([self._t("length")[held], sizes.to(device)[candidate]])
            keep &= torch.cumsum(all_sizes[order], 0) <= self.capacity_nnz
        if not bool(keep.all()):  # a prefix: the first item cut has the highest key cut
            first_cut = int((~keep).nonzero()[0])
            floor.copy_(torch.maximum(floor, all_keys[order[first_cut]]))
        kept = torch.zeros(order.numel(), dtype=torch.bool, device=device)
        kept[order[keep]] = True
        evict = held[~kept[: held.numel()]]
        take = candidate[kept[held.numel() :]]
        return evict, take

    def _place(self, keys: torch.Tensor, evict: torch.Tensor, take: torch.Tensor) -> torch.Tensor:
        """Free ``evict``'s slots, and return the (lowest) free slots for ``take``'s items,
        whose keys are written."""
        held = self._t("held")
        held[evict] = False
        count = self._prefix(held)
        if count is not None and count + take.numel() <= held.numel():
            free = torch.arange(count, count + take.numel(), device=held.device)
        else:
            free = (~held).nonzero().squeeze(1)[: take.numel()]
        held[free] = True
        self._t("keys")[free] = keys.to(held.device)[take]
        return free

    def _sample_slots(self, n: int) -> torch.Tensor | None:
        """``min(n, len(self))`` held slots drawn uniformly (with replacement), or None if
        the reservoir is empty."""
        mask = self._t("held")
        count = int(mask.sum())
        if count == 0 or n <= 0:
            return None
        pick = torch.randint(count, (min(n, count),), generator=self.state.generator)
        pick = pick.to(mask.device)
        if bool(mask[:count].all()):  # the usual layout, slots filled from the lowest: a prefix
            return pick
        return self.held()[pick]

    def _check_merge(self, other: Reservoir) -> None:
        def layout(meta: dict[str, Any]) -> dict[str, Any]:
            return {k: v for k, v in meta.items() if k not in ("offered", "end")}

        if layout(self.meta) != layout(other.meta):
            raise IncompatibleStateError(
                "merge: the two states' replay reservoirs differ in layout"
            )

    def _merged_floor(self, other: Reservoir) -> None:
        """An item cut from either input is cut from the union (more items only push it back)."""
        floor = self._t("floor")
        floor.copy_(torch.maximum(floor, other._t("floor").to(floor.device)))
        self.meta["offered"] = self.offered + other.offered

    @property
    def capacity_nnz(self) -> int:
        return int(self.meta.get("nnz", 0))


def allocate_keys(state: State, prefix: str, slots: int, device: torch.device | str) -> None:
    if slots < 1:
        raise ConfigError("replay: the capacity holds not even one item; raise it")
    t = state.tensors
    # No infinities in a state (the trainer takes them for divergence): empty slots are told by
    # ``held``, and nothing was cut yet while the floor is the lowest finite key.
    t[f"{prefix}.keys"] = torch.zeros(slots, dtype=torch.float64, device=device)
    t[f"{prefix}.held"] = torch.zeros(slots, dtype=torch.bool, device=device)
    t[f"{prefix}.floor"] = torch.tensor(_LOWEST, dtype=torch.float64, device=device)
