"""Neural networks in a state: an ``nn.Module``, its ``torch.optim`` optimiser and LR scheduler
kept in a :class:`~streamfit.core.state.State` (safetensors + JSON, never pickle), with
randomness drawn per step from the state, never from torch's global generator.

Under a prefix ``p`` (default ``"net"``) the state holds:

==============================  ===========================================================
``tensors["p.module.NAME"]``    the module's parameters and buffers (batch-norm statistics)
``tensors["p.optim.NAME.KEY"]`` the optimiser's per-parameter tensors, by parameter name
                                (``exp_avg``, ``momentum_buffer``, Adam's ``step``, ...)
``meta["p"]``                   the optimiser's class, param groups (learning rates, betas,
                                ...) and per-parameter numbers; the scheduler's class and
                                state; ``seed`` and ``steps``: where the step seeds come from
==============================  ===========================================================

Training a state, saving it (``State.save``/``State.load``), restoring and continuing is bit
for bit the same on the CPU as never stopping: every number the next step reads is in the state
(the dropout mask of step ``t`` comes from a seed made of the state's ``seed`` and ``t``).

>>> import torch
>>> from streamfit.core.state import State
>>> def build(device: torch.device) -> Net:
...     module = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Dropout(0.5),
...                                  torch.nn.Linear(8, 1)).to(device)
...     return Net(module, torch.optim.Adam(module.parameters(), lr=0.01))
>>> nets = NetKeeper(build)
>>> state = State("demo", {}, 3)
>>> nets.create(state, seed=7)
>>> x, y = torch.ones(4, 3), torch.zeros(4, 1)
>>> def train(state: State) -> float:
...     with nets.step(state) as net:
...         loss = ((net.module(x) - y) ** 2).mean()
...         loss.backward()
...         net.optimizer.step()
...     return loss.item()
>>> _ = train(state); copy = state.clone()  # a resumed state: the keeper rebuilds its network
>>> train(state) == train(copy)
True
"""

from __future__ import annotations

from streamfit.core.nn.keeper import NetKeeper
from streamfit.core.nn.merge import merge_nets
from streamfit.core.nn.optim import allocate_moments, net_bytes
from streamfit.core.nn.seeds import seeded, step_seed
from streamfit.core.nn.store import Net, NetBuilder, load_net, save_net

__all__ = [
    "Net",
    "NetBuilder",
    "NetKeeper",
    "allocate_moments",
    "load_net",
    "merge_nets",
    "net_bytes",
    "save_net",
    "seeded",
    "step_seed",
]
