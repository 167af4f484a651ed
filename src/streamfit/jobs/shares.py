"""Fair share: the order in which waiting jobs launch, what a run costs its share, and caps.

A share's usage is what its jobs held while they ran (:func:`run_cost`, CPU equivalents)
times how long, decayed with a half-life, as Slurm's fair-share factor and AWS Batch's share
decay do. Waiting jobs launch by priority (higher first), then by fair share (the share whose
usage per unit of weight is lowest first: its factor, :func:`factor`, is the highest), then
by submission time. Each job picked charges its share a token millisecond of its cost, so
that shares level with each other (at the start, say) share one pass by weight; the real
charge comes as the run goes (:meth:`~streamfit.jobs.store.Store.charge_usage`), and a share
that is behind takes every slot that frees until it has caught up.

>>> jobs = [Queued(i, "a" if i < 4 else "b", 0, float(i)) for i in range(8)]
>>> [j.share for j in fair_order(jobs, usage={}, weights={"a": 3.0, "b": 1.0})]
['a', 'b', 'a', 'a', 'a', 'b', 'b', 'b']
>>> jobs.append(Queued(8, "c", 1, 8.0))  # priority first, whatever the usage
>>> [j.id for j in fair_order(jobs, usage={"a": 100.0}, weights={"a": 3.0})][:3]
[8, 4, 5]
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from streamfit.jobs.settings import FairShare
from streamfit.jobs.spec import Resources

__all__ = [
    "Queued",
    "ShareBook",
    "decay",
    "decayed_charge",
    "factor",
    "fair_order",
    "run_cost",
]


class Waiting(Protocol):
    """What ordering needs of a waiting job (a :class:`~streamfit.jobs.store.Job` has it)."""

    @property
    def id(self) -> int: ...
    @property
    def share(self) -> str: ...
    @property
    def priority(self) -> int: ...
    @property
    def created_at(self) -> float: ...


W = TypeVar("W", bound=Waiting)


@dataclass(frozen=True)
class Queued:
    """A waiting job reduced to what ordering needs."""

    id: int
    share: str
    priority: int
    created_at: float


def fair_order(
    candidates: Iterable[W],
    usage: Mapping[str, float],
    weights: Mapping[str, float],
    cost: Callable[[W], float] = lambda _job: 1.0,
    token: float = 1e-3,
    default_weight: float = 1.0,
) -> list[W]:
    """``candidates`` in launch order: priority, then usage / weight, then age, then id.

    ``usage``: each share's decayed usage now (missing: none); ``weights``: each share's
    weight (missing: ``default_weight``); ``cost``: a job's cost per second, of which its
    share is charged ``token`` seconds when it is picked (see the module's docstring).
    """
    queues: dict[str, list[W]] = defaultdict(list)
    for job in candidates:
        queues[job.share].append(job)
    for queue in queues.values():
        queue.sort(key=lambda j: (-j.priority, j.created_at, j.id), reverse=True)  # pop() head
    used = {share: float(usage.get(share, 0.0)) for share in queues}
    order: list[W] = []
    while queues:
        share = min(
            queues,
            key=lambda s: (
                -queues[s][-1].priority,
                used[s] / weights.get(s, default_weight),
                queues[s][-1].created_at,
                queues[s][-1].id,
            ),
        )
        job = queues[share].pop()
        order.append(job)
        used[share] += cost(job) * token
        if not queues[share]:
            del queues[share]
    return order


def factor(usage: float, total_usage: float, weight: float, total_weight: float) -> float:
    """Slurm's classic fair-share factor, ``2 ** -(usage share / weight share)``: 1 for a
    share that used nothing, 0.5 for one that used exactly its portion, towards 0 above.

    >>> factor(0.0, 0.0, 1.0, 4.0), factor(75.0, 100.0, 3.0, 4.0), factor(50.0, 100.0, 1.0, 4.0)
    (1.0, 0.5, 0.25)
    """
    if total_usage <= 0 or total_weight <= 0:
        return 1.0
    return float(2.0 ** -((usage / total_usage) / (weight / total_weight)))


def decay(value: float, seconds: float, half_life: float) -> float:
    """``value`` after ``seconds`` of decay (none for negative ``seconds``: clocks that
    disagree a little between schedulers never make usage grow).

    >>> decay(8.0, 20.0, 10.0)
    2.0
    """
    return value * math.pow(2.0, -max(seconds, 0.0) / half_life)


def decayed_charge(cost: float, start: float, end: float, now: float, half_life: float) -> float:
    """What running at ``cost`` from ``start`` to ``end`` adds to a share's usage as of
    ``now``: the integral of ``cost * 2 ** -((now - t) / half_life)`` over the run.

    >>> round(decayed_charge(2.0, 0.0, 10.0, 10.0, 1e12), 6)  # no decay to speak of
    20.0
    >>> round(decayed_charge(1.0, 0.0, 10.0, 10.0, 10.0), 4)  # 10 / (2 ln 2): half decayed
    7.2135
    """
    if end <= start:
        return 0.0
    rate = math.log(2) / half_life
    # (expm1: exact for runs far shorter than the half-life, where a difference of two
    # exponentials near 1 would lose the digits)
    return cost / rate * math.exp(-rate * max(now - end, 0.0)) * -math.expm1(-rate * (end - start))


def run_cost(want: Resources, capacity: Resources | None) -> float:
    """A run's cost per second, in CPUs: its dominant share of the capacity times the CPUs
    there are (so a job holding half the GPUs costs half the machine), or its CPUs where
    the capacity is not known.

    >>> machine = Resources(cpus=8, gpus=2, memory_mb=32_000)
    >>> run_cost(Resources(cpus=2), machine), run_cost(Resources(cpus=1, gpus=1), machine)
    (2.0, 4.0)
    """
    if capacity is None or capacity.cpus <= 0:
        return want.cpus
    fractions = [want.cpus / capacity.cpus]
    if capacity.gpus > 0:
        fractions.append(want.gpus / capacity.gpus)
    if capacity.memory_mb > 0:
        fractions.append(want.memory_mb / capacity.memory_mb)
    return max(fractions) * capacity.cpus


@dataclass
class ShareBook:
    """What each share's running jobs hold, against its caps.

    >>> fair = FairShare.model_validate({"shares": {"a": {"max_jobs": 1}}})
    >>> book = ShareBook(fair)
    >>> book.refusal("a", Resources()) is None
    True
    >>> book.take("a", Resources()); book.refusal("a", Resources())
    'share a is at its cap of 1 running jobs'
    """

    fair: FairShare
    jobs: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    held: dict[str, Resources] = field(default_factory=lambda: defaultdict(Resources.zero))

    @classmethod
    def of(cls, fair: FairShare, running: Sequence[tuple[str, Resources]]) -> ShareBook:
        book = cls(fair)
        for share, want in running:
            book.take(share, want)
        return book

    def take(self, share: str, want: Resources) -> None:
        self.jobs[share] += 1
        self.held[share] = self.held[share] + want

    def refusal(self, share: str, want: Resources) -> str | None:
        """Why ``share`` may not launch a job asking ``want`` now (None: it may)."""
        limits = self.fair.limits(share)
        after = self.held[share] + want
        for name, cap, value in (
            ("running jobs", limits.max_jobs, self.jobs[share] + 1),
            ("CPUs", limits.max_cpus, after.cpus),
            ("GPUs", limits.max_gpus, after.gpus),
            ("MB of memory", limits.max_memory_mb, after.memory_mb),
        ):
            if cap is not None and value > cap + 1e-9:
                return f"share {share} is at its cap of {cap:g} {name}"
        return None
