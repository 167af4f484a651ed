"""Randomness of a network's training drawn from its state: a seed per step, made of the
state's seed and the step counter, set in torch's global generators for the step only."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

__all__ = ["INIT_STEP", "seeded", "step_seed"]

_MASK = (1 << 64) - 1
#: The counter that seeds a network's initial weights: no training step ever reaches it.
INIT_STEP = _MASK


def _splitmix64(z: int) -> int:
    z = (z + 0x9E3779B97F4A7C15) & _MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return z ^ (z >> 31)


def step_seed(seed: int, step: int) -> int:
    """The seed of training step ``step`` of a state seeded ``seed``: a hash of both, so that
    step ``t`` draws the same numbers however the run got there (counter-based seeding).

    >>> step_seed(0, 1) == step_seed(0, 1), step_seed(0, 1) == step_seed(0, 2)
    (True, False)
    """
    return _splitmix64(_splitmix64(seed & _MASK) ^ (step & _MASK)) >> 1  # torch takes 63 bits


@contextmanager
def seeded(seed: int, device: torch.device | str = "cpu") -> Iterator[None]:
    """Within the block, torch's global generators (the CPU's, and ``device``'s if it is a
    CUDA device) are seeded with ``seed``; after it they are what they were, so code outside
    draws as if the block never ran. Dropout and ``torch.randn`` without a generator draw
    from these.

    >>> with seeded(3):
    ...     a = torch.rand(2)
    >>> with seeded(3):
    ...     b = torch.rand(2)
    >>> torch.equal(a, b)
    True
    """
    dev = torch.device(device)
    devices = []
    if dev.type == "cuda":
        devices = [dev.index if dev.index is not None else torch.cuda.current_device()]
    with torch.random.fork_rng(devices=devices, device_type="cuda"):
        torch.default_generator.manual_seed(seed)
        for index in devices:
            with torch.cuda.device(index):
                torch.cuda.manual_seed(seed)  # this device alone: others stay untouched
        yield
