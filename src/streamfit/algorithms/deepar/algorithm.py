"""SageMaker's DeepAR as a streaming learner: one global LSTM forecaster trained on windows cut
from each series as it is read (:mod:`streamfit.core.windows`), each window scored before it
is trained on, then kept in the replay reservoir (sampled by its series' scale, as DeepAR's
paper samples series) so that one read trains about as much as ``1 + replay`` epochs.

The state holds the network and its optimiser's moments (:mod:`streamfit.core.nn`), the
reservoir of window rows and the early-stopping record; its memory is fixed by the network
and ``replay_capacity_mb``, whatever the number and length of the series.

>>> import numpy as np, torch
>>> from streamfit.core.batch import Batch
>>> algo = DeepAR(time_freq="D", context_length=4, prediction_length=2, cardinality="ignore",
...               num_dynamic_feat="ignore", num_cells=8)
>>> layout = algo.layout()
>>> rows = layout.pack(np.ones((3, layout.length)), np.ones((3, layout.length)),
...                    np.zeros((3, layout.steps, layout.time_features)), extra=np.ones(3))
>>> state = algo.init_state(layout.width)
>>> loss = algo.update(state, Batch(torch.from_numpy(rows)))
>>> model = algo.finalize(state)
>>> model.predict(torch.from_numpy(rows))["samples"].shape
torch.Size([3, 100, 2])
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from streamfit.algorithms.deepar.evaluation import DeepAREvaluator
from streamfit.algorithms.deepar.hyperparameters import AUTO_CARDINALITY, DeepARHyperparameters
from streamfit.algorithms.deepar.model import DeepARModel
from streamfit.algorithms.deepar.network import DeepARNetwork
from streamfit.core.algorithm import Algorithm, BatchStream
from streamfit.core.batch import Batch
from streamfit.core.calendar import lags_for_frequency, num_time_features, parse_frequency
from streamfit.core.calendar import seasonality as season_of
from streamfit.core.check_parameters import CheckParameters, GeneratedData
from streamfit.core.delta import Distribution
from streamfit.core.model import Model
from streamfit.core.nn import Net, NetBuilder, NetKeeper, merge_nets, net_bytes
from streamfit.core.registry import register
from streamfit.core.replay import open_reservoir
from streamfit.core.replaying import Replaying
from streamfit.core.state import State
from streamfit.core.windows import SeriesReading, WindowLayout, WindowsMode
from streamfit.errors import ConfigError

__all__ = ["DeepAR"]

_MODULE = "net.module."


@register
class DeepAR(Replaying, Algorithm[DeepARHyperparameters]):
    """An autoregressive LSTM forecaster over many series, from one read of them."""

    name = "deepar"
    hyperparameters_class = DeepARHyperparameters
    model_class = DeepARModel
    supervised = False
    post_training = frozenset({"num_eval_samples", "test_quantiles"})
    #: Two halves trained apart from one initial state and averaged by steps, against one
    #: pass over both: 12.7% apart in test mean wQL on the checks' data at learning_rate
    #: 0.01, 44% at 0.001, where each half is far from trained and their average is a model
    #: of half the steps. Distributed training merges at each checkpoint: its halves drift
    #: less.
    merge_tolerance: ClassVar[float] = 0.15
    #: Workers average their networks every ``exchange_every`` batches (local SGD): two
    #: networks trained apart to the end and averaged once were 5% to 63% worse in test mean
    #: wQL than one process, by the seed (tests/distributed/test_deepar.py's panel).
    distribution = Distribution(averaged=("net.",))
    fixed_hyperparameters = frozenset(
        {
            "time_freq",
            "context_length",
            "prediction_length",
            "likelihood",
            "num_cells",
            "num_layers",
            "embedding_dimension",
            "cardinality",
            "num_dynamic_feat",
        }
    )
    size_hyperparameters = ("context_length", "num_cells", "num_layers", "replay_capacity_mb")
    #: Series of 3 quarters: one training window each, so that the checks' 20,000 rows are
    #: 20,000 windows (a series' windows are its rows).
    check_parameters: ClassVar[CheckParameters] = CheckParameters(
        hyperparameters={
            "time_freq": "Q",
            "context_length": 4,
            "prediction_length": 2,
            "cardinality": [5],
            "num_dynamic_feat": "ignore",
            "num_cells": 8,
            "num_layers": 1,
            "learning_rate": 0.01,
            "replay": 1,
            "replay_capacity_mb": 1,
        },
        metric="mean_wQuantileLoss",
        memory_hyperparameters={
            "time_freq": "Q",
            "context_length": 4,
            "prediction_length": 2,
            "cardinality": "ignore",
            "num_dynamic_feat": "ignore",
            "num_cells": 8,
            "num_layers": 1,
            "mini_batch_size": 2000,
            "replay": 0.25,
            "replay_capacity_mb": 1,
        },
        memory_data=GeneratedData("series_task", (3,), {"packed": {"context": 4, "prediction": 2}}),
        oversized={"replay_capacity_mb": 1e12},
        data=GeneratedData("series_task", (3,), {"seed": 3}),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        parse_frequency(self.hp.time_freq)  # a bad time_freq fails now, naming the allowed
        self._keepers: dict[int, NetKeeper] = {}

    # -- the shape of the data -----------------------------------------------------------------

    def lags(self) -> list[int]:
        return sorted(set(lags_for_frequency(self.hp.time_freq)))

    def cardinality(self) -> list[int]:
        card = self.hp.cardinality
        if card == "ignore":
            return []
        if card == "auto":
            raise ConfigError(
                "deepar: cardinality 'auto' is resolved from the data (with_series_shape)"
            )
        return list(card)

    def num_dynamic(self) -> int:
        dyn = self.hp.num_dynamic_feat
        if dyn == "ignore":
            return 0
        if dyn == "auto":
            raise ConfigError(
                "deepar: num_dynamic_feat 'auto' is resolved from the data (with_series_shape)"
            )
        return int(dyn)

    def reads_series(self) -> bool:
        return True

    def with_series_shape(self, num_cat: int, num_dynamic: int) -> DeepAR:
        """This algorithm with "auto" ``cardinality`` and ``num_dynamic_feat`` made concrete
        for series of ``num_cat`` categories and ``num_dynamic`` covariates."""
        hp = self.hp.as_dict()
        if hp["cardinality"] == "auto":
            hp["cardinality"] = [AUTO_CARDINALITY] * num_cat if num_cat else "ignore"
        if hp["num_dynamic_feat"] == "auto":
            hp["num_dynamic_feat"] = num_dynamic if num_dynamic else "ignore"
        return type(self)(hp)

    def needs_resolving(self) -> bool:
        return self.hp.cardinality == "auto" or self.hp.num_dynamic_feat == "auto"

    def layout(self) -> WindowLayout:
        hp = self.hp
        return WindowLayout(
            history=max(self.lags()),
            context=hp.context_length,
            prediction=hp.prediction_length,
            time_features=num_time_features(hp.time_freq),
            cat=len(self.cardinality()),
            dynamic=self.num_dynamic(),
        )

    def series_reading(self, mode: WindowsMode) -> SeriesReading:
        """How a channel is read for this algorithm: training windows, test windows (the
        last ``prediction_length`` points held out) or forecasts."""
        card = self.hp.cardinality
        bounds = tuple(card) if isinstance(card, list) else ()
        stride = self.hp.resolved_stride
        return SeriesReading(
            self.hp.time_freq,
            self.layout(),
            mode,
            stride,
            bounds,
            season_of(self.hp.time_freq),
            int(self.hp.series_table_mb * 2**20),
        )

    def expected_features(self) -> int | None:
        return None if self.needs_resolving() else self.layout().width

    # -- the network ---------------------------------------------------------------------------

    def network(self) -> DeepARNetwork:
        hp = self.hp
        return DeepARNetwork(
            self.layout(),
            self.lags(),
            [c for c in self.cardinality()],
            hp.embedding_dimension,
            hp.num_cells,
            hp.num_layers,
            hp.dropout_rate,
            hp.likelihood,
        )

    def _build(self) -> NetBuilder:
        lr = self.hp.learning_rate

        def build(device: torch.device) -> Net:
            module = self.network().to(device)
            return Net(module, torch.optim.Adam(module.parameters(), lr=lr))

        return build

    def _keeper(self, width: int) -> NetKeeper:
        if width not in self._keepers:
            self._keepers[width] = NetKeeper(self._build())
        return self._keepers[width]

    # -- state ---------------------------------------------------------------------------------

    def state_bytes(self, n_features: int) -> int:
        replay = self.replay_capacity_bytes() if self.replay_ratio() > 0 else 0
        return net_bytes(self._build()) + replay

    def init_state(self, n_features: int, device: torch.device | str = "cpu") -> State:
        width = self.layout().width
        if n_features != width:
            raise ConfigError(
                f"deepar: windows of this layout are {width} numbers wide, got {n_features}"
            )
        state = self.new_state(n_features)
        seed = int(torch.randint(2**62, (), generator=state.generator))
        self._keeper(width).create(state, seed, device)
        self.init_replay(state, device)
        state.meta["epoch_loss"], state.meta["epoch_points"] = 0.0, 0.0
        state.meta["early_stopping"] = {"best": None, "bad_epochs": 0, "history": []}
        return state

    def _adopt(self, state: State) -> None:
        self.adopt_replay(state)
        for group in state.meta["net"]["optimizer"]["param_groups"]:
            group["lr"] = self.hp.learning_rate

    # -- training ------------------------------------------------------------------------------

    def _update(self, state: State, batch: Batch) -> float:
        layout = self.layout()
        rows = batch.dense_features().to(state.device).float()
        windows = layout.unpack(rows)
        with self._keeper(state.n_features).step(state) as net:
            module: DeepARNetwork = net.module  # type: ignore[assignment]
            total, points = module.loss(windows)
            if float(points) > 0:
                torch.autograd.backward(total / points)
                net.optimizer.step()
        loss = float(total.detach())
        state.meta["epoch_loss"] = float(state.meta["epoch_loss"]) + loss
        state.meta["epoch_points"] = float(state.meta["epoch_points"]) + float(points)
        return loss

    def remember(self, state: State, batch: Batch) -> None:
        """Offer the batch's windows to the reservoir, each weighted by its series' scale
        (the packed ``extra``): a series of large values is drawn more often, as DeepAR's
        paper samples series by scale, without the large ones filling the reservoir."""
        rows = batch.dense_features()
        weights = rows[:, -1].clamp_min(0) + 1e-6  # zero when the reader gave no scale
        self.reservoir(state).offer_batch(batch, weights=weights)

    def end_epoch(self, state: State, validation: BatchStream | None) -> bool:
        """With ``early_stopping_patience``: stop when the validation loss (else the training
        loss) has not improved for that many epochs."""
        patience = self.hp.early_stopping_patience
        if validation is not None:
            current = self.evaluate(self._finalize(state), validation())["loss"]
        else:
            current = float(state.meta["epoch_loss"]) / max(float(state.meta["epoch_points"]), 1)
        state.meta["epoch_loss"], state.meta["epoch_points"] = 0.0, 0.0
        record = state.meta["early_stopping"]
        record["history"].append(current)
        best = record["best"]
        if best is None or current < best:
            record["best"], record["bad_epochs"] = current, 0
        else:
            record["bad_epochs"] += 1
        return patience is not None and record["bad_epochs"] >= patience

    # -- merge and finalize ----------------------------------------------------------------------

    def _merge(self, a: State, b: State) -> State:
        out = a.clone()
        merge_nets(a, b, out)
        if self.replay_prefix in a.meta and self.replay_prefix in b.meta:
            open_reservoir(out, self.replay_prefix).merge(open_reservoir(b, self.replay_prefix))
        out.meta["epoch_loss"] = float(a.meta["epoch_loss"]) + float(b.meta["epoch_loss"])
        out.meta["epoch_points"] = float(a.meta["epoch_points"]) + float(b.meta["epoch_points"])
        return out

    def _finalize(self, state: State, **post_training: Any) -> DeepARModel:
        hp = self.hp
        layout = self.layout()
        tensors = {
            "network." + k[len(_MODULE) :]: v.detach().clone()
            for k, v in state.tensors.items()
            if k.startswith(_MODULE)
        }
        quantiles = [float(q) for q in post_training.get("test_quantiles", hp.test_quantiles)]
        meta = {
            "n_features": state.n_features,
            "time_freq": hp.time_freq,
            "layout": {
                "history": layout.history,
                "context": layout.context,
                "prediction": layout.prediction,
                "time_features": layout.time_features,
                "cat": layout.cat,
                "dynamic": layout.dynamic,
            },
            "lags": self.lags(),
            "cardinality": self.cardinality(),
            "embedding_dimension": hp.embedding_dimension,
            "num_cells": hp.num_cells,
            "num_layers": hp.num_layers,
            "likelihood": hp.likelihood,
            "num_eval_samples": int(post_training.get("num_eval_samples", hp.num_eval_samples)),
            "test_quantiles": quantiles,
            # SageMaker's batch transform defaults
            "num_samples": 100,
            "output_types": ["mean", "quantiles"],
            "quantiles": [str(q) for q in quantiles],
            "seed": hp.seed,
        }
        return DeepARModel(tensors, meta)

    def evaluator(self, model: Model) -> DeepAREvaluator:
        assert isinstance(model, DeepARModel)
        return DeepAREvaluator(model)
