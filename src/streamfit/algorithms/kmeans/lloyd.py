"""Weighted k-means on a small weighted point set: what ``finalize`` and ``merge`` run on the
state's K centres (never on the data).

All trials run at once, as a batch dimension: a Lloyd step of every trial is a few batched
matrix products, so ten trials cost about what one does at these sizes. Computed in float64.

>>> g = torch.Generator().manual_seed(0)
>>> points = torch.tensor([[0.0], [0.2], [10.0], [10.4]], dtype=torch.float64)
>>> weights = torch.tensor([1.0, 1.0, 1.0, 3.0], dtype=torch.float64)
>>> fit = weighted_kmeans(points, weights, 2, generator=g)
>>> sorted(round(v, 2) for v in fit.centers.flatten().tolist()), round(fit.sse, 3)
([0.1, 10.3], 0.14)
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch

__all__ = ["Fit", "weighted_kmeans"]


@dataclass(frozen=True)
class Fit:
    """The best trial: ``centers`` (k, d), the weight each gathered, its weighted SSE, and
    the cluster of each point."""

    centers: torch.Tensor
    masses: torch.Tensor
    sse: float
    iterations: int
    trial: int
    assign: torch.Tensor


#: Below this many multiply-adds a Lloyd step (trials x points x clusters x features) runs on
#: one thread: thread start-up costs more than it saves, and on a busy machine a parallel
#: region waits for every thread (measured: a 25-of-250 finalize took 1 s instead of 20 ms
#: with two threads on two cores shared with another process).
_ONE_THREAD_WORK = 50_000_000


@contextmanager
def _threads(work: int) -> Iterator[None]:
    previous = torch.get_num_threads()
    if work < _ONE_THREAD_WORK and previous > 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _sq_dist(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Squared distances between the rows of ``a`` (..., m, d) and ``b`` (..., n, d)."""
    a2 = (a * a).sum(-1, keepdim=True)
    b2 = (b * b).sum(-1).unsqueeze(-2)
    return (a2 - 2 * (a @ b.transpose(-1, -2)) + b2).clamp_min_(0)


def _safe(prob: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Rows of ``prob`` with nothing left to draw (every weighted point already a centre)
    fall back to drawing by weight, i.e. a duplicate centre that will stay empty."""
    empty = prob.sum(-1, keepdim=True) <= 0
    return torch.where(empty, weights.clamp_min(1e-300).expand_as(prob), prob)


def _seed_random(
    weights: torch.Tensor, k: int, trials: int, generator: torch.Generator
) -> torch.Tensor:
    """k distinct points per trial, drawn with probability proportional to weight."""
    prob = (weights + weights.max() * 1e-12).clamp_min(1e-300).expand(trials, -1)
    return torch.multinomial(prob, k, replacement=False, generator=generator)


def _seed_kmeanspp(
    points: torch.Tensor, weights: torch.Tensor, k: int, trials: int, generator: torch.Generator
) -> torch.Tensor:
    """Greedy weighted k-means++ (as scikit-learn's): each step draws ``2 + ln k`` candidates
    by weight x D^2 and keeps the one that lowers the potential most.

    The loop is over the k seeding steps, which depend on each other; each step is vectorised
    over trials, candidates and points."""
    n = points.shape[0]
    local = 2 + int(math.log(k))
    rows = torch.arange(trials, device=points.device)
    chosen = torch.empty(trials, k, dtype=torch.long, device=points.device)
    chosen[:, 0] = torch.multinomial(
        _safe(weights.expand(trials, n), weights), 1, generator=generator
    )[:, 0]
    closest = _sq_dist(points[chosen[:, 0]].unsqueeze(1), points).squeeze(1)  # (T, n)
    for j in range(1, k):
        prob = _safe(weights * closest, weights)
        cand = torch.multinomial(prob, local, replacement=True, generator=generator)  # (T, L)
        reach = torch.minimum(closest.unsqueeze(1), _sq_dist(points[cand], points))  # (T, L, n)
        best = (reach * weights).sum(-1).argmin(1)
        chosen[:, j] = cand[rows, best]
        closest = reach[rows, best]
    return chosen


def weighted_kmeans(
    points: torch.Tensor,
    weights: torch.Tensor,
    k: int,
    *,
    generator: torch.Generator,
    init: str = "kmeans++",
    max_iter: int = 300,
    trials: int = 1,
    tol: float = 1e-4,
) -> Fit:
    """Weighted Lloyd iterations from ``init`` seeding, the best of ``trials`` by weighted SSE.

    Stops when every trial's SSE improved by at most ``tol`` (relative) in an iteration, or
    after ``max_iter`` iterations. ``points`` must hold at least ``k`` rows; a cluster that
    loses all its points keeps its centre.
    """
    points, weights = points.double(), weights.double()
    n = points.shape[0]
    if not 1 <= k <= n:
        raise ValueError(f"cannot form {k} clusters from {n} points")
    with _threads(trials * n * k * points.shape[1]):
        return _lloyd(points, weights, k, generator, init, max_iter, trials, tol)


def _lloyd(
    points: torch.Tensor,
    weights: torch.Tensor,
    k: int,
    generator: torch.Generator,
    init: str,
    max_iter: int,
    trials: int,
    tol: float,
) -> Fit:
    if init == "kmeans++":
        chosen = _seed_kmeanspp(points, weights, k, trials, generator)
    else:
        chosen = _seed_random(weights, k, trials, generator)
    centers = points[chosen]  # (T, k, d)
    previous = torch.full((trials,), math.inf, dtype=torch.float64, device=points.device)
    d = points.shape[1]
    offsets = (torch.arange(trials, device=points.device) * k).unsqueeze(1)
    all_weights = weights.repeat(trials)
    all_weighted = (points * weights.unsqueeze(1)).repeat(trials, 1)
    iterations = 0
    while True:
        dist, assign = _sq_dist(points, centers).min(-1)  # (T, n)
        sse = (dist * weights).sum(-1)
        done = bool((previous - sse <= tol * previous).all()) and iterations > 0
        if done or iterations >= max_iter:
            break
        previous = sse
        flat = (assign + offsets).reshape(-1)  # (trial, cluster) as one index
        mass = torch.bincount(flat, weights=all_weights, minlength=trials * k).view(trials, k)
        sums = torch.zeros(trials * k, d, dtype=torch.float64, device=points.device)
        sums = sums.index_add_(0, flat, all_weighted).view(trials, k, d)
        centers = torch.where(
            mass.unsqueeze(-1) > 0, sums / mass.clamp_min(1e-300).unsqueeze(-1), centers
        )
        iterations += 1
    best = int(sse.argmin())
    mass = torch.zeros(k, dtype=torch.float64, device=points.device)
    mass.index_add_(0, assign[best], weights)
    return Fit(centers[best], mass, float(sse[best]), iterations, best, assign[best])
