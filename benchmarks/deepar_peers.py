"""The peers of benchmarks/deepar.py, each trained on a prepared panel's ``train.jsonl``
(deepar_data.py) the way a user of that library would, one thread each, and each forecasting
the ``prediction_length`` steps after the end of every training series:

- GluonTS's torch ``DeepAREstimator`` (0.17): the panel's frequency, ``context_length`` =
  ``prediction_length``, the panel's ``cat`` as static categorical features (GluonTS's own
  embedding sizes), the same likelihood as streamfit's, batches of 32 and otherwise its
  defaults (2 x 40 LSTM, dropout 0.1, Adam at 1e-3, best epoch's weights kept). ``batches``
  is the number of training batches: epochs of 50 batches, GluonTS's default epoch
  (2,500 batches = 50 epochs, the issue's reference). Seeded by Lightning's
  ``seed_everything``; 100 sample paths a series;
- statsforecast's ``AutoETS`` and ``SeasonalNaive`` with the panel's season length, their
  intervals at levels 20, 40, 60 and 80 read as the quantiles 0.1 .. 0.9 (level L gives the
  quantiles (1 -+ L/100) / 2) and their point forecast as the median and the mean.

Each returns how to forecast (:class:`deepar_scoring.Forecasts`), called once the model is
trained, and what it knows of its training.

    python benchmarks/deepar_peers.py   # lists the peers (run benchmarks/deepar.py to compare)
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from deepar_data import Panel
from deepar_scoring import QUANTILES, Forecasts

GLUONTS_EPOCH = 50  # GluonTS's default num_batches_per_epoch
GLUONTS_BATCH = 32
LEVELS = (20, 40, 60, 80)

#: How to forecast (after the clock has stopped) and what is known of the training.
Fitted = tuple[Callable[[], Forecasts], dict[str, Any]]

#: streamfit's likelihood names and GluonTS's torch distribution outputs.
GLUONTS_LIKELIHOODS = {
    "student-T": "StudentTOutput",
    "gaussian": "NormalOutput",
    "negative-binomial": "NegativeBinomialOutput",
    "beta": "BetaOutput",
}


def _records(panel: Panel) -> list[dict[str, Any]]:
    return panel.series("train")


def _quiet() -> None:
    """Lightning's and pandas' chatter (pandas 2.3 warns of the aliases "Q" and "M", which
    GluonTS still accepts) is not the benchmark's output."""
    import logging

    warnings.simplefilter("ignore")
    for name in ("lightning", "lightning.pytorch", "pytorch_lightning", "gluonts"):
        logging.getLogger(name).setLevel(logging.ERROR)


# -- GluonTS ---------------------------------------------------------------------------------


def gluonts_epochs(batches: int) -> tuple[int, int]:
    """``(epochs, batches per epoch)`` for about ``batches`` training batches.

    >>> gluonts_epochs(2500), gluonts_epochs(20)
    ((50, 50), (1, 20))
    """
    per_epoch = min(GLUONTS_EPOCH, batches)
    return max(1, round(batches / per_epoch)), per_epoch


def gluonts_deepar(
    panel: Panel,
    *,
    batches: int = 2500,
    seed: int = 0,
    likelihood: str = "student-T",
    num_samples: int = 100,
    **_: Any,
) -> Fitted:
    _quiet()
    import lightning.pytorch as pl
    import torch
    from gluonts.dataset.common import ListDataset
    from gluonts.torch import distributions
    from gluonts.torch.model.deepar import DeepAREstimator

    torch.set_num_threads(1)
    pl.seed_everything(seed, verbose=False)
    meta = panel.meta
    h, freq, cardinality = meta["prediction_length"], meta["freq"], meta["cardinality"]
    data = ListDataset(
        [
            {"start": r["start"], "target": r["target"], "feat_static_cat": r["cat"]}
            for r in _records(panel)
        ],
        freq=freq,
    )
    epochs, per_epoch = gluonts_epochs(batches)
    with tempfile.TemporaryDirectory(prefix="sf-bench-gluonts-") as checkpoints:
        estimator = DeepAREstimator(
            freq=freq,
            prediction_length=h,
            context_length=h,
            num_feat_static_cat=len(cardinality),
            cardinality=cardinality,
            distr_output=getattr(distributions, GLUONTS_LIKELIHOODS[likelihood])(),
            batch_size=GLUONTS_BATCH,
            num_batches_per_epoch=per_epoch,
            trainer_kwargs={
                "max_epochs": epochs,
                "accelerator": "cpu",
                "enable_progress_bar": False,
                "enable_model_summary": False,
                "logger": False,
                "default_root_dir": checkpoints,
            },
        )
        started = time.perf_counter()
        predictor = estimator.train(data)
        fit = time.perf_counter() - started

    def forecast() -> Forecasts:
        paths = [f.samples for f in predictor.predict(data, num_samples=num_samples)]
        return Forecasts.from_samples(np.stack(paths))

    return forecast, {"fit_seconds": fit, "steps": epochs * per_epoch, "epochs": epochs}


# -- statsforecast ---------------------------------------------------------------------------


def statsforecast_model(panel: Panel, *, model: str, **_: Any) -> Fitted:
    _quiet()
    import pandas as pd
    from statsforecast import StatsForecast
    from statsforecast.models import AutoETS, SeasonalNaive

    meta = panel.meta
    h, season = meta["prediction_length"], meta["season"]
    rows = []
    for i, r in enumerate(_records(panel)):
        periods = pd.period_range(r["start"][:10], periods=len(r["target"]), freq=meta["freq"])
        ds = periods.to_timestamp(how="start")
        rows.append(pd.DataFrame({"unique_id": i, "ds": ds, "y": r["target"]}))
    df = pd.concat(rows, ignore_index=True).astype({"y": np.float64})
    models = {"AutoETS": AutoETS, "SeasonalNaive": SeasonalNaive}
    sf = StatsForecast(
        models=[models[model](season_length=season)],
        freq="QS" if meta["freq"] == "Q" else "MS",
        n_jobs=1,
    )
    started = time.perf_counter()
    fc = sf.forecast(df=df, h=h, level=list(LEVELS))
    fit = time.perf_counter() - started
    if "unique_id" not in fc.columns:
        fc = fc.reset_index()
    fc = fc.sort_values(["unique_id", "ds"])
    n = len(rows)

    def column(name: str) -> np.ndarray:
        values: np.ndarray = fc[name].to_numpy(np.float64).reshape(n, h)
        return values

    point = column(model)
    quantiles = {0.5: point}
    for level in LEVELS:
        quantiles[round((1 - level / 100) / 2, 2)] = column(f"{model}-lo-{level}")
        quantiles[round((1 + level / 100) / 2, 2)] = column(f"{model}-hi-{level}")
    if set(quantiles) != set(QUANTILES):
        raise AssertionError(f"levels {LEVELS} do not give the quantiles {QUANTILES}")
    forecasts = Forecasts.from_quantiles(quantiles, point)

    def forecast() -> Forecasts:  # statsforecast fits as it forecasts: already done
        return forecasts

    return forecast, {"fit_seconds": fit, "nan_forecasts": int(np.isnan(point).sum())}


def autoets(panel: Panel, **kw: Any) -> Fitted:
    return statsforecast_model(panel, model="AutoETS", **kw)


def seasonal_naive(panel: Panel, **kw: Any) -> Fitted:
    return statsforecast_model(panel, model="SeasonalNaive", **kw)


PEERS: dict[str, Callable[..., Fitted]] = {
    "gluonts": gluonts_deepar,
    "autoets": autoets,
    "naive": seasonal_naive,
}


def main() -> None:
    argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0]).parse_args()
    for name in PEERS:
        print(name)


if __name__ == "__main__":
    main()
