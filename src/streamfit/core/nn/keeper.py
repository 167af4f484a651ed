"""An algorithm's network for whichever state it trains, rebuilt only for a state new to it."""

from __future__ import annotations

import copy
import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

from streamfit.core.nn.optim import allocate_moments
from streamfit.core.nn.seeds import INIT_STEP, seeded, step_seed
from streamfit.core.nn.store import Net, NetBuilder, load_net, save_net
from streamfit.core.state import State

__all__ = ["NetKeeper"]

_MASK = (1 << 64) - 1


class NetKeeper:
    """An algorithm's network for whichever state it trains: built and loaded from the state
    when the state is new to it (a resumed, cloned or merged state), reused while the state's
    entries are still the ones it last wrote, so that a step costs no copy.

    ``build`` makes the network with fresh weights; its initial weights are drawn under the
    state's seed by :meth:`create`.
    """

    def __init__(self, build: NetBuilder, prefix: str = "net") -> None:
        self.build = build
        self.prefix = prefix
        self._net: Net | None = None
        self._written: dict[str, torch.Tensor] = {}
        self._meta: Any = None
        self._held: list[int] | None = None  # ids of the tensors the state holds, see _holds

    def create(self, state: State, seed: int, device: torch.device | str = "cpu") -> None:
        """Put a new network into ``state``, its weights drawn from ``seed`` (and its dropout
        masks from ``seed`` and the step counter)."""
        with seeded(step_seed(seed, INIT_STEP), device):
            net = self.build(torch.device(device))
        allocate_moments(net)  # the state's memory is all there from now on
        state.meta[self.prefix] = {"seed": seed & _MASK, "steps": 0}
        save_net(state, net, self.prefix)
        self._remember(state, net)

    def get(self, state: State) -> Net:
        """The network that ``state`` holds, in training mode."""
        net = self._net
        if net is None or not self._current(state):
            with seeded(0, state.device):  # its initial weights are replaced: draw nothing
                net = self.build(state.device)
            load_net(state, net, self.prefix)
            save_net(state, net, self.prefix)  # the state now holds the network's own tensors
            self._remember(state, net)
        return net

    @contextmanager
    def step(self, state: State) -> Iterator[Net]:
        """One training step on ``state``'s network: gradients cleared, the step's seed set
        for dropout and sampling; the step counter advances and the state takes the
        optimiser's new entries when the block ends without an error."""
        net = self.get(state)
        net.module.train()
        net.optimizer.zero_grad(set_to_none=True)
        meta = state.meta[self.prefix]
        with seeded(step_seed(int(meta["seed"]), int(meta["steps"])), state.device):
            yield net
        net.optimizer.zero_grad(set_to_none=True)  # gradients are not state: free them
        meta["steps"] = int(meta["steps"]) + 1
        if net.scheduler is None and self._holds(net):
            # The step changed tensors the state already holds, in place, and nothing else:
            # only the counter is new (writing the whole network again cost a tenth of a
            # small step).
            self._meta["steps"] = meta["steps"]
        else:
            save_net(state, net, self.prefix)
            self._remember(state, net)

    def steps(self, state: State) -> int:
        return int(state.meta[self.prefix]["steps"])

    def _remember(self, state: State, net: Net) -> None:
        self._net = net
        head = f"{self.prefix}."
        self._written = {k: v for k, v in state.tensors.items() if k.startswith(head)}
        self._meta = copy.deepcopy(state.meta[self.prefix])
        self._held = _tensor_ids(net)

    def _holds(self, net: Net) -> bool:
        """Whether the state still holds all of ``net``'s state: the same tensor objects as
        when it was last written, and no number in the optimiser's state (a number is copied
        into the state's metadata, so it is not updated in place)."""
        ids = _tensor_ids(net)
        return ids is not None and ids == self._held

    def _current(self, state: State) -> bool:
        """Whether ``state`` still holds exactly what this keeper last wrote."""
        head = f"{self.prefix}."
        names = [k for k in state.tensors if k.startswith(head)]
        if len(names) != len(self._written):
            return False
        if any(state.tensors[k] is not self._written.get(k) for k in names):
            return False
        return bool(state.meta.get(self.prefix) == self._meta)


def _tensor_ids(net: Net) -> list[int] | None:
    """The identity of every tensor of ``net``'s state (module parameters and buffers,
    optimiser moments and counters), in order; None if the optimiser keeps a number."""
    ids = [id(t) for t in itertools.chain(net.module.parameters(), net.module.buffers())]
    for values in net.optimizer.state.values():
        for value in values.values():
            if not isinstance(value, torch.Tensor):
                return None
            ids.append(id(value))
    return ids
