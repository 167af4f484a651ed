"""Centres chosen among rows (dense or CSR) with the state's generator: the first K, and
replacements for centres that no longer attract any rows.

Random draws are made on the CPU generator whatever the device, so a GPU run starts from the
same rows as a CPU run.

>>> x = torch.tensor([[0.0], [0.1], [10.0], [10.1], [20.0]])
>>> g = torch.Generator().manual_seed(0)
>>> sorted(initial_centers(x, 3, "kmeans++", g).flatten().round().tolist())
[0.0, 10.0, 20.0]
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from streamfit.algorithms.kmeans.distance import dot, row_norms
from streamfit.core.batch import CSR, Batch, Features

__all__ = ["concat_features", "dense_rows", "initial_centers", "reseed_idle"]

#: A centre that attracts no row of a batch while its mass is below this fraction of the
#: heaviest centre's is moved to a row of that batch (as scikit-learn's MiniBatchKMeans
#: reassigns centres below 1% of the largest count).
IDLE_RATIO = 0.01


def concat_features(batches: Sequence[Batch]) -> Features:
    """The rows of ``batches`` as one dense tensor or one CSR."""
    feats = [b.features for b in batches]
    if not isinstance(feats[0], CSR):
        return torch.cat([f for f in feats if isinstance(f, torch.Tensor)])
    csrs = [f for f in feats if isinstance(f, CSR)]
    indptr, indices, values = [csrs[0].indptr[:1] * 0], [], []
    offset = 0
    for c in csrs:
        lo, hi = int(c.indptr[0]), int(c.indptr[-1])
        indptr.append(c.indptr[1:] - lo + offset)
        indices.append(c.indices[lo:hi])
        values.append(c.values[lo:hi])
        offset += hi - lo
    return CSR(torch.cat(indptr), torch.cat(indices), torch.cat(values), csrs[0].n_cols)


def dense_rows(features: Features, rows: torch.Tensor) -> torch.Tensor:
    """The given rows as a dense float32 ``(len(rows), d)`` tensor (a few rows only)."""
    rows = rows.to(features.device)
    if isinstance(features, CSR):
        return features.select_rows(rows).to_dense()
    return features.index_select(0, rows).float()


def _distances(features: Features, norms: torch.Tensor, centers: torch.Tensor) -> torch.Tensor:
    """Squared distances ``(n, m)`` from every row to each of a few dense ``centers``."""
    cross = dot(features, centers)
    return (norms.unsqueeze(1) - 2 * cross + (centers * centers).sum(1)).clamp_min_(0)


def initial_centers(
    features: Features, n_centers: int, method: str, generator: torch.Generator
) -> torch.Tensor:
    """``n_centers`` rows of ``features`` (``random``: distinct rows drawn uniformly;
    ``kmeans++``: greedy D^2 sampling). With fewer rows than centres, rows repeat."""
    n = features.n_rows if isinstance(features, CSR) else int(features.shape[0])
    if method == "random" or n <= n_centers:
        order = torch.randperm(n, generator=generator)
        if n < n_centers:
            extra = torch.randint(n, (n_centers - n,), generator=generator)
            order = torch.cat([order, extra])
        return dense_rows(features, order[:n_centers])
    norms = row_norms(features)
    local = 2 + int(math.log(n_centers))
    first = torch.randint(n, (1,), generator=generator)
    centers = [dense_rows(features, first)]
    closest = _distances(features, norms, centers[0])[:, 0]
    # Sequential by nature: each centre is drawn given the previous ones.
    for _ in range(1, n_centers):
        prob = closest.double().cpu()
        if float(prob.sum()) <= 0:
            prob = torch.ones(n, dtype=torch.float64)
        cand = torch.multinomial(prob, local, replacement=True, generator=generator)
        rows = dense_rows(features, cand)
        reach = torch.minimum(closest.unsqueeze(1), _distances(features, norms, rows))
        best = int(reach.double().sum(0).argmin())
        centers.append(rows[best : best + 1])
        closest = reach[:, best]
    return torch.cat(centers)


def reseed_idle(
    centers: torch.Tensor,
    masses: torch.Tensor,
    counts: torch.Tensor,
    features: Features,
    d2: torch.Tensor,
    generator: torch.Generator,
) -> int:
    """Move idle centres (no row of this batch, mass under ``IDLE_RATIO`` of the largest) to
    rows of the batch drawn by squared distance to their closest centre, with mass 0; returns
    how many moved.

    Without this a centre left behind stays where it is: after a shift of the data (with
    ``half_life_time_size``) or a poor start, rows far from every centre would be absorbed by
    the nearest one instead of getting their own. Mass 0 means a moved centre weighs nothing
    at ``finalize`` until rows come to it.
    """
    idle = (counts == 0) & (masses < IDLE_RATIO * masses.max())
    which = idle.nonzero().squeeze(1)
    n = int(d2.shape[0])
    if which.numel() == 0 or n == 0:
        return 0
    prob = d2.double().cpu()
    prob = prob + float(prob.max()) * 1e-9 + 1e-300  # every row drawable, far rows first
    take = min(int(which.numel()), n)
    rows = torch.multinomial(prob, take, replacement=False, generator=generator)
    which = which[:take]
    centers[which] = dense_rows(features, rows).to(centers.dtype)
    masses[which] = 0.0
    return take
