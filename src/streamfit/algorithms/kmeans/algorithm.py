"""SageMaker's K-Means as a streaming algorithm: web-scale mini-batch k-means over K = k x
``extra_center_factor`` weighted centres, reduced to k at ``finalize``.

Each batch moves every centre toward the mean of the rows closest to it, with weight
new/(old+new) from the centre's mass (optionally decayed by ``half_life_time_size``); a centre
that no longer attracts rows moves to a far row of the batch (``init.reseed_idle``). The
state is the K centres and their masses, so any k <= K and any ``local_lloyd_*`` setting is
a cheap ``finalize`` away: weighted Lloyd on K points, never the data again.

>>> import torch
>>> from streamfit.core.batch import Batch
>>> g = torch.Generator().manual_seed(0)
>>> truth = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
>>> x = truth[torch.randint(3, (6000,), generator=g)] + torch.randn(6000, 2, generator=g)
>>> algo = KMeans(k=3, mini_batch_size=1000)
>>> state = algo.init_state(2)
>>> for i in range(0, 6000, 1000):
...     _ = algo.update(state, Batch(x[i:i + 1000]))
>>> sorted(algo.finalize(state).centers.round().abs().tolist())
[[0.0, 0.0], [0.0, 10.0], [10.0, 0.0]]
>>> [algo.finalize(state, k=k).k for k in (1, 2, 30)]
[1, 2, 30]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from streamfit.algorithms.kmeans.distance import cluster_sums, nearest
from streamfit.algorithms.kmeans.evaluation import KMeansEvaluator
from streamfit.algorithms.kmeans.hyperparameters import CHECK_PARAMETERS, KMeansHyperparameters
from streamfit.algorithms.kmeans.init import concat_features, initial_centers, reseed_idle
from streamfit.algorithms.kmeans.lloyd import weighted_kmeans
from streamfit.algorithms.kmeans.model import KMeansModel
from streamfit.core.algorithm import Algorithm
from streamfit.core.batch import Batch
from streamfit.core.hyperparameters import parse_hyperparameters
from streamfit.core.model import Model
from streamfit.core.registry import register
from streamfit.core.state import State
from streamfit.errors import ConfigError

__all__ = ["KMeans"]


@register
class KMeans(Algorithm[KMeansHyperparameters]):
    """Streaming k-means with a rich state: one pass, then any k up to K."""

    name = "kmeans"
    hyperparameters_class = KMeansHyperparameters
    model_class = KMeansModel
    supervised = False
    post_training = frozenset(
        {
            "k",
            "local_lloyd_init_method",
            "local_lloyd_max_iter",
            "local_lloyd_num_trials",
            "local_lloyd_tol",
        }
    )
    #: Two shards' centre sets re-compressed to K summarise the data about as well as one
    #: pass does: msd within 1% on clustered data, within 2.3% (either way) on the shared
    #: checks' data, which has no clusters and so many near-equal local optima; allowed 5%.
    merge_tolerance = 0.05
    size_hyperparameters = ("feature_dim", "k", "extra_center_factor")
    check_parameters = CHECK_PARAMETERS

    def expected_features(self) -> int | None:
        return None if self.hp.feature_dim == "auto" else self.hp.feature_dim

    def warmup_rows(self) -> int:
        return self.hp.num_centers

    # -- the four operations -----------------------------------------------------------------

    def state_bytes(self, n_features: int) -> int:
        return self.hp.num_centers * (4 * n_features + 16)

    def init_state(self, n_features: int, device: torch.device | str = "cpu") -> State:
        state = self.new_state(n_features)
        K = self.hp.num_centers
        state.tensors = {
            "centers": torch.zeros(K, n_features, device=device),
            "masses": torch.zeros(K, dtype=torch.float64, device=device),
            "spread": torch.zeros(K, dtype=torch.float64, device=device),
        }
        state.meta.update(prepared=False, init_rows=0, rows=0)
        return state

    def prepare(self, state: State, batches: Sequence[Batch]) -> None:
        """The K starting centres among the first rows (their masses stay 0: the first batch
        then moves each centre to the mean of its rows)."""
        batches = [b for b in batches if b.n_rows]
        if state.meta["prepared"] or not batches:
            return
        t = state.tensors
        features = concat_features(batches)
        centers = initial_centers(
            features, t["centers"].shape[0], self.hp.init_method, state.generator
        )
        t["centers"].copy_(centers)
        state.meta.update(prepared=True, init_rows=sum(b.n_rows for b in batches))

    def _update(self, state: State, batch: Batch) -> float:
        """Assign each row to its nearest centre and move the centres; returns the batch's
        summed squared distance (before the move)."""
        if not state.meta["prepared"]:
            self.prepare(state, [batch])
        t = state.tensors
        centers, masses, spread = t["centers"], t["masses"], t["spread"]
        half_life = self.hp.half_life_time_size
        if half_life > 0:
            decay = 0.5 ** (batch.n_rows / half_life)
            masses.mul_(decay)
            spread.mul_(decay)
        assign, d2 = nearest(batch.features, centers, exact=False)
        sums, counts = cluster_sums(batch.features, assign, centers.shape[0])
        total = masses + counts
        rate = (counts / total.clamp_min(1e-300)).float().unsqueeze(1)
        means = sums / counts.clamp_min(1).unsqueeze(1)
        step = rate * (means - centers)
        _move_spread(spread, masses, counts, sums, centers, step, assign, d2)
        centers.add_(step)
        masses.copy_(total)
        moved = reseed_idle(centers, masses, counts, batch.features, d2, state.generator)
        if moved:
            spread.masked_fill_(masses == 0, 0.0)
            state.count("reseeded_centers", moved)
        state.meta["rows"] = state.meta.get("rows", 0) + batch.n_rows  # absent in older states
        return float(d2.double().sum())

    def _merge(self, a: State, b: State) -> State:
        """The union of both centre sets, re-compressed to K (weighted Lloyd from weighted
        k-means++ seeding, drawn from the merged state's copy of ``a``'s generator)."""
        out = a.clone()
        K = a.tensors["centers"].shape[0]
        device = a.device
        centers = torch.cat([a.tensors["centers"], b.tensors["centers"].to(device)]).cpu()
        masses = torch.cat([a.tensors["masses"], b.tensors["masses"].to(device)]).cpu()
        spread = torch.cat([a.tensors["spread"], b.tensors["spread"].to(device)]).cpu()
        order = torch.argsort((masses > 0).to(torch.int8), descending=True, stable=True)
        live = int((masses > 0).sum())
        if live <= K:  # room for every centre that has seen data
            new_centers, new_masses = centers[order[:K]], masses[order[:K]]
            new_spread = spread[order[:K]]
        else:
            hp = self.hp
            fit = weighted_kmeans(
                centers[order[:live]],
                masses[order[:live]],
                K,
                generator=out.generator,
                init="kmeans++",
                max_iter=hp.local_lloyd_max_iter,
                tol=hp.local_lloyd_tol,
            )
            new_centers, new_masses = fit.centers, fit.masses
            members = order[:live]
            gap = ((centers[members].double() - fit.centers[fit.assign]) ** 2).sum(1)
            new_spread = torch.zeros(K, dtype=torch.float64).index_add_(
                0, fit.assign, spread[members] + masses[members] * gap
            )
        out.tensors["centers"] = new_centers.float().to(device)
        out.tensors["masses"] = new_masses.double().to(device)
        out.tensors["spread"] = new_spread.double().to(device)
        out.meta["prepared"] = bool(a.meta["prepared"] or b.meta["prepared"])
        out.meta["init_rows"] = int(a.meta["init_rows"]) + int(b.meta["init_rows"])
        out.meta["rows"] = int(a.meta.get("rows", 0)) + int(b.meta.get("rows", 0))
        return out

    def _finalize(self, state: State, **post_training: Any) -> KMeansModel:
        """k centres from the state's K by weighted Lloyd, best of ``local_lloyd_num_trials``.

        Deterministic, and leaves ``state`` unchanged: the draws come from a copy of the
        state's generator."""
        hp = parse_hyperparameters(
            KMeansHyperparameters, {**self.hp.as_dict(), **post_training}, algorithm=self.name
        )
        centers = state.tensors["centers"].cpu()
        masses = state.tensors["masses"].cpu()
        K = centers.shape[0]
        if hp.k > K:
            raise ConfigError(
                f"{self.name}: k={hp.k} is more than the {K} centres this state keeps; it "
                f"supports k from 1 to {K} (train with a larger k or extra_center_factor)"
            )
        spread = state.tensors["spread"].cpu()
        live = masses > 0
        if not bool(live.any()):
            raise ConfigError(f"{self.name}: the state has seen no rows; nothing to finalize")
        if int(live.sum()) >= hp.k:
            centers, masses, spread = centers[live], masses[live], spread[live]
        generator = torch.Generator()
        generator.set_state(state.generator.get_state())
        fit = weighted_kmeans(
            centers,
            masses,
            hp.k,
            generator=generator,
            init=hp.local_lloyd_init_method,
            max_iter=hp.local_lloyd_max_iter,
            trials=hp.resolved_num_trials,
            tol=hp.local_lloyd_tol,
        )
        order = torch.argsort(fit.masses, descending=True, stable=True)  # largest cluster first
        meta = {
            "n_features": state.n_features,
            "k": hp.k,
            "num_centers": K,
            "rows": float(state.meta.get("rows", 0)),
            "cluster_weights": fit.masses[order].tolist(),
            "weighted_sse": fit.sse,
            "lloyd_iterations": fit.iterations,
            "lloyd_trial": fit.trial,
            "local_lloyd_init_method": hp.local_lloyd_init_method,
            "local_lloyd_num_trials": hp.resolved_num_trials,
            "train_metrics": {
                "msd": (fit.sse + float(spread.sum())) / max(float(masses.sum()), 1e-300)
            },
        }
        return KMeansModel({"centers": fit.centers[order].float().to(state.device)}, meta)

    # -- trainer hooks --------------------------------------------------------------------------

    def _adopt(self, state: State) -> None:
        """Continue ``state``: K is the state's; ``k`` may change but not beyond K."""
        K = state.tensors["centers"].shape[0]
        if self.hp.k > K:
            raise ConfigError(f"k={self.hp.k} but the state keeps {K} centres (k <= {K})")

    def evaluator(self, model: Model) -> KMeansEvaluator:
        assert isinstance(model, KMeansModel)
        return KMeansEvaluator(model, self.hp.eval_metrics)


def _move_spread(
    spread: torch.Tensor,
    masses: torch.Tensor,
    counts: torch.Tensor,
    sums: torch.Tensor,
    centers: torch.Tensor,
    step: torch.Tensor,
    assign: torch.Tensor,
    d2: torch.Tensor,
) -> None:
    """Each centre's spread after it absorbs its rows of the batch and moves by ``step``.

    About the moved centre c' = c + s, the old rows' squared distances grow by mass |s|^2
    (their mean is c) and the new rows' sum is their distances to c, minus 2 s.(sums - n c),
    plus n |s|^2."""
    s = step.double()
    sq = (s * s).sum(1)
    within = torch.zeros_like(spread).index_add_(0, assign, d2.double())
    cross = (s * (sums.double() - counts.unsqueeze(1) * centers.double())).sum(1)
    spread.add_(masses * sq + within - 2 * cross + counts * sq)
