"""DeepAR end to end: series files read once into windows, trained with replay, forecasts in
SageMaker's answer shape from the command line, and the test channel's metrics."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from streamfit import predict_records, train
from streamfit.cli.main import cli
from streamfit.datagen import series_task
from streamfit.errors import DataError, TrainingInterrupted

LENGTH, P, SEASON = 40, 4, 4
HP = {"time_freq": "Q", "context_length": 8, "prediction_length": P, "learning_rate": 0.01}


def _write(path: Path, targets: np.ndarray, cats: np.ndarray, **extra: Any) -> Path:
    with open(path, "w") as f:
        for y, c in zip(targets, cats, strict=True):
            record = {"start": "2000-01-01 00:00:00", "target": [float(v) for v in y]}
            record.update(cat=[int(c)], **extra)
            f.write(json.dumps(record) + "\n")
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("series")
    task = series_task(LENGTH, SEASON)
    targets, cats = task.series(np.random.default_rng(7), 300)
    return {
        "train": _write(folder / "train.jsonl", targets[:, :-P], cats),
        "test": _write(folder / "test.jsonl", targets, cats),
        "targets": targets,
        "folder": folder,
    }


@pytest.fixture(scope="module")
def trained(files: dict[str, Any]) -> Any:
    return train(
        "deepar",
        str(files["train"]),
        test=str(files["test"]),
        hyperparameters=HP,
        progress=False,
        output=files["folder"] / "job",
    )


def _seasonal_naive_wql(targets: np.ndarray) -> float:
    """Seasonal naive's mean wQL (a point forecast: every quantile is the point)."""
    actual, past = targets[:, -P:], targets[:, -P - SEASON : -P]
    losses = [
        2 * np.abs((actual - past) * ((actual <= past) - q)).sum() / np.abs(actual).sum()
        for q in np.arange(1, 10) / 10
    ]
    return float(np.mean(losses))


def test_forecasts_beat_seasonal_naive_on_the_test_channel(
    trained: Any, files: dict[str, Any]
) -> None:
    metrics = trained.metrics
    naive = _seasonal_naive_wql(files["targets"])
    assert metrics["test:mean_wQuantileLoss"] < 0.8 * naive, (metrics, naive)
    for name in ("test:RMSE", "test:MASE", "test:wQuantileLoss[0.5]", "test:loss"):
        assert np.isfinite(metrics[name]), name
    # one read: every window of every series (each gives LENGTH - P - P of them)
    assert metrics["train:rows"] == 300 * (LENGTH - 2 * P)
    assert trained.state.hyperparameters["cardinality"] == [1000]  # auto, from the first


def test_predict_answers_each_series_in_sagemakers_shape(
    trained: Any, files: dict[str, Any]
) -> None:
    config = {"num_samples": 30, "output_types": ["mean", "quantiles", "samples"]}
    answers = list(predict_records(trained.model, str(files["train"]), inference_config=config))
    assert len(answers) == 300
    first = answers[0]
    assert len(first["mean"]) == P and len(first["samples"]) == 30
    assert sorted(first["quantiles"], key=float) == [f"0.{i}" for i in range(1, 10)]
    q = first["quantiles"]
    assert all(a <= b for a, b in zip(q["0.1"], q["0.9"], strict=True))
    # the forecast of the held-out steps is close to them (the series are regular)
    means = np.array([a["mean"] for a in answers])
    actual = files["targets"][:, -P:]
    assert np.abs(means - actual).sum() / np.abs(actual).sum() < 0.5


def test_the_command_line_forecasts_with_an_inference_configuration(
    trained: Any, files: dict[str, Any], tmp_path: Path
) -> None:
    out = tmp_path / "forecasts.jsonl"
    model = str(files["folder"] / "job" / "model")
    result = CliRunner().invoke(
        cli,
        [
            "predict",
            model,
            "--input",
            str(files["train"]),
            "--output",
            str(out),
            "--inference-config",
            '{"num_samples": 10, "quantiles": ["0.5"]}',
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 300 and sorted(lines[0]) == ["mean", "quantiles"]
    assert list(lines[0]["quantiles"]) == ["0.5"]
    env = {"DEEPAR_INFERENCE_CONFIG": '{"output_types": ["samples"], "num_samples": 3}'}
    result = CliRunner().invoke(
        cli, ["predict", model, "--input", str(files["test"])], env=env, catch_exceptions=False
    )
    first = json.loads(result.stdout.splitlines()[0])
    assert list(first) == ["samples"] and len(first["samples"]) == 3
    bad = CliRunner().invoke(
        cli, ["predict", model, "--input", str(files["test"]), "--inference-config", "[1]"]
    )
    assert bad.exit_code != 0 and "JSON object" in bad.stderr


def test_auto_takes_the_first_series_covariates(tmp_path: Path) -> None:
    """``num_dynamic_feat`` auto: as many as the first series has; a forecast needs them to
    cover its steps too."""
    rng = np.random.default_rng(1)
    n, length = 40, 30
    path = tmp_path / "dyn.jsonl"
    with open(path, "w") as f:
        for _ in range(n):
            promo = (rng.random(length) < 0.3).astype(float)
            y = 5 + 10 * promo + rng.normal(0, 0.5, length)
            f.write(
                json.dumps(
                    {"start": "2020-01-06", "target": y.tolist(), "dynamic_feat": [promo.tolist()]}
                )
                + "\n"
            )
    result = train("deepar", str(path), hyperparameters={**HP, "time_freq": "W"}, progress=False)
    assert result.state.hyperparameters["num_dynamic_feat"] == 1
    assert result.state.hyperparameters["cardinality"] == "ignore"
    # the same records forecast: their covariates end with the series, not P steps later
    with pytest.raises(DataError, match="dynamic_feat"):
        list(predict_records(result.model, str(path)))


def test_incremental_training_continues_on_new_series(trained: Any, files: dict[str, Any]) -> None:
    """``init_state``: the state's resolved settings (cardinality from "auto") carry over,
    the new file is read once, and the steps continue from the state's."""
    more = train(
        "deepar",
        str(files["test"]),
        init_state=trained.state,
        hyperparameters={"learning_rate": 0.001},
        progress=False,
    )
    assert more.state.hyperparameters["cardinality"] == [1000]
    # the state's count goes on: its windows, then this read's (each series 4 longer)
    assert more.metrics["train:rows"] == 300 * (LENGTH - 2 * P) + 300 * (LENGTH - P)
    steps = trained.state.meta["net"]["steps"]
    assert more.state.meta["net"]["steps"] > steps


def test_negative_binomial_forecasts_counts(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    counts = rng.poisson(3.0, size=(60, 30)).astype(float)
    path = _write(tmp_path / "counts.jsonl", counts, np.zeros(60, int))
    hp = {**HP, "likelihood": "negative-binomial", "cardinality": "ignore"}
    result = train("deepar", str(path), hyperparameters=hp, progress=False)
    config = {"output_types": ["samples"], "num_samples": 50}
    answers = list(predict_records(result.model, str(path), inference_config=config))
    samples = np.array([a["samples"] for a in answers])
    assert (samples >= 0).all() and (samples == np.round(samples)).all()
    assert 1.5 < samples.mean() < 5.0  # around the Poisson(3) the series are drawn from


# -- long-format rows ----------------------------------------------------------------------


def _write_rows(path: Path, targets: np.ndarray, cats: np.ndarray) -> Path:
    """The series as long-format rows, ordered by time: items interleaved, as a query
    ``ORDER BY timestamp`` returns them."""
    quarters = np.arange("2000-01", "2100-01", 3, dtype="datetime64[M]")
    with open(path, "w") as f:
        f.write("item_id,timestamp,target,cat_0\n")
        for t in range(targets.shape[1]):
            for i, (y, c) in enumerate(zip(targets[:, t], cats, strict=True)):
                f.write(f"store-{i},{quarters[t]}-01,{y:.6g},{int(c)}\n")
    return path


@pytest.fixture(scope="module")
def rows(files: dict[str, Any]) -> dict[str, Path]:
    targets = files["targets"]
    lines = files["train"].read_text().splitlines()
    cats = np.array([json.loads(line)["cat"][0] for line in lines])
    folder = files["folder"]
    return {
        "train": _write_rows(folder / "train.csv", targets[:, :-P], cats),
        "test": _write_rows(folder / "test.csv", targets, cats),
    }


def test_long_format_rows_train_as_well_as_the_records(
    trained: Any, files: dict[str, Any], rows: dict[str, Path]
) -> None:
    """The same series as rows ordered by time: the same windows (each row that completes
    one gives it), and a forecaster as good on the same held-out steps."""
    result = train(
        "deepar", str(rows["train"]), test=str(rows["test"]), hyperparameters=HP, progress=False
    )
    assert result.metrics["train:rows"] == trained.metrics["train:rows"]
    assert result.state.hyperparameters["cardinality"] == [1000]  # auto, from cat_0
    naive = _seasonal_naive_wql(files["targets"])
    wql = result.metrics["test:mean_wQuantileLoss"]
    assert wql < 0.8 * naive
    assert abs(wql - trained.metrics["test:mean_wQuantileLoss"]) < 0.25 * naive
    # the test channel of rows scores the records' forecaster as the records do
    again = train(
        "deepar", str(files["train"]), test=str(rows["test"]), hyperparameters=HP, progress=False
    )
    assert again.metrics["test:mean_wQuantileLoss"] == pytest.approx(
        trained.metrics["test:mean_wQuantileLoss"], rel=1e-5
    )


def test_long_format_rows_resume_bit_identical(rows: dict[str, Path], tmp_path: Path) -> None:
    """Stopped after some batches and resumed from its checkpoint: the table of each item's
    recent steps is rebuilt from the rows before the checkpoint, so the run equals one that
    was never stopped."""
    hp = {**HP, "mini_batch_size": 256, "replay": 1}
    whole = train("deepar", str(rows["train"]), hyperparameters=hp, progress=False)
    ckpt = tmp_path / "ckpt"
    common = {"hyperparameters": hp, "progress": False, "checkpoint_dir": ckpt}
    with pytest.raises(TrainingInterrupted, match="stopped at epoch 1, row"):
        train("deepar", str(rows["train"]), checkpoint_batches=3, max_batches=7, **common)
    resumed = train("deepar", str(rows["train"]), **common)
    for name, tensor in whole.state.tensors.items():
        assert torch.equal(tensor, resumed.state.tensors[name]), name
