"""DeepAR on Ray workers: series records split by line, long-format rows by item; each
worker trains on its series from the same start and the states merge, as good as one
process within the merge tolerance, every window trained on once."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from streamfit import State, TrainingInterrupted, get_algorithm, train
from streamfit.datagen import series_task
from streamfit.training.checkpoint import Checkpoints

P = 4
HP = {
    "time_freq": "Q",
    "context_length": 8,
    "prediction_length": P,
    "learning_rate": 0.01,
    "cardinality": [8],
    "replay": 2,
}


@pytest.fixture(scope="module")
def panel(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("panel")
    targets, cats = series_task(40, 4).series(np.random.default_rng(11), 240)
    out = {}
    for split, cut in (("train", targets[:, :-P]), ("test", targets)):
        with open(folder / f"{split}.jsonl", "w") as f:
            for y, c in zip(cut, cats, strict=True):
                record = {"start": "2000-01-01", "target": y.tolist(), "cat": [int(c)]}
                f.write(json.dumps(record) + "\n")
        quarters = np.arange("2000-01", "2020-01", 3, dtype="datetime64[M]")
        with open(folder / f"{split}.csv", "w") as f:
            f.write("item_id,timestamp,target,cat_0\n")
            for t in range(cut.shape[1]):
                for i in range(len(cut)):
                    f.write(f"s{i},{quarters[t]}-01,{cut[i, t]:.6g},{int(cats[i])}\n")
        out[f"{split}.jsonl"], out[f"{split}.csv"] = (
            folder / f"{split}.jsonl",
            folder / f"{split}.csv",
        )
    return out


@pytest.mark.parametrize("kind", ["jsonl", "csv"])
def test_workers_train_a_forecaster_as_well_as_one_process(
    ray_cluster: ModuleType, panel: dict[str, Path], kind: str
) -> None:
    kwargs: dict[str, Any] = {
        "test": str(panel[f"test.{kind}"]),
        "hyperparameters": HP,
        "progress": False,
    }
    one = train("deepar", str(panel[f"train.{kind}"]), **kwargs)
    two = train("deepar", str(panel[f"train.{kind}"]), workers=2, **kwargs)
    metric = "test:mean_wQuantileLoss"
    print(f"deepar {kind}: 2 workers {two.metrics[metric]:.4g}, one {one.metrics[metric]:.4g}")
    assert two.state.trainer.rows == one.state.trainer.rows == 240 * (40 - 2 * P)
    gap = abs(two.metrics[metric] - one.metrics[metric]) / one.metrics[metric]
    assert gap <= get_algorithm("deepar").merge_tolerance
    assert two.metrics["train:workers"] == 2


def test_an_interrupted_run_on_workers_resumes_from_its_checkpoint(
    ray_cluster: ModuleType, panel: dict[str, Path], tmp_path: Path
) -> None:
    """Long-format rows on two workers, stopped and resumed: each worker re-reads its rows
    before its position into its table, the networks continue the checkpoint's, and every
    window is trained on once."""
    kwargs: dict[str, Any] = {
        "test": str(panel["test.csv"]),
        "hyperparameters": HP,
        "progress": False,
        "workers": 2,
        "checkpoint_dir": tmp_path,
        "checkpoint_batches": 8,
    }
    with pytest.raises(TrainingInterrupted):
        train("deepar", str(panel["train.csv"]), max_batches=20, **kwargs)
    saved = State.load(Checkpoints(tmp_path).latest() or tmp_path, "deepar")
    assert saved.trainer.distributed is not None
    assert 0 < saved.trainer.rows < 240 * (40 - 2 * P)
    resumed = train("deepar", str(panel["train.csv"]), **kwargs)
    assert resumed.state.trainer.rows == 240 * (40 - 2 * P)
    one = train("deepar", str(panel["train.csv"]), test=kwargs["test"], hyperparameters=HP)
    metric = "test:mean_wQuantileLoss"
    print(f"deepar resumed on workers {resumed.metrics[metric]:.4g}, one {one.metrics[metric]:.4g}")
    gap = abs(resumed.metrics[metric] - one.metrics[metric]) / one.metrics[metric]
    assert gap <= get_algorithm("deepar").merge_tolerance
