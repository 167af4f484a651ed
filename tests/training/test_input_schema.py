"""A model and a state record the named columns they were trained on, and every later read
(validation, test, resume, incremental training, predict, a finalized model) matches columns
by name: the same columns in another order give the same model and the same scores."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from streamfit import DataError, State, finalize, load_model, predict_records, train
from streamfit.core.model import Model
from streamfit.training.inference import finalize_sweep

HP = {"predictor_type": "regressor", "mini_batch_size": 50, "epochs": 1}
N = 400


def columns(seed: int = 0, n: int = N) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = {name: rng.normal(k + 1, k + 1, n).astype(np.float32) for k, name in enumerate("abcd")}
    x["label"] = (x["a"] - 2 * x["b"] + 0.5 * x["c"] + x["d"] / 4).astype(np.float32)
    return x


def parquet(path: Path, order: list[str], data: dict[str, np.ndarray] | None = None) -> Path:
    data = columns() if data is None else data
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({name: data[name] for name in order}), path)
    return path


ORDERED = ["label", "a", "b", "c", "d"]
SHUFFLED = ["d", "b", "label", "c", "a"]


def scores(model: Model | Path, path: Path, **options: object) -> np.ndarray:
    return np.array([r["score"] for r in predict_records(model, str(path), **options)])


def same_tensors(a: State, b: State) -> None:
    assert a.tensors.keys() == b.tensors.keys()
    for key in a.tensors:
        assert torch.equal(a.tensors[key], b.tensors[key]), key


def test_the_model_and_state_record_the_input_schema(tmp_path: Path) -> None:
    result = train("linear-learner", str(parquet(tmp_path / "t.parquet", ORDERED)), **run())
    expected = {
        "columns": [{"name": n, "type": "float", "kind": "number"} for n in "abcd"],
        "label": "label",
    }
    assert result.state.inputs["schema"] == expected
    assert result.model.meta["input_schema"] == expected
    saved = tmp_path / "out"
    train("linear-learner", str(tmp_path / "t.parquet"), output=saved, **run())
    assert load_model(saved / "model").meta["input_schema"] == expected
    assert State.load(saved / "state").inputs["schema"] == expected
    assert finalize(saved / "state").meta["input_schema"] == expected


def test_predict_on_reordered_columns_gives_identical_scores(tmp_path: Path) -> None:
    model = train("linear-learner", str(parquet(tmp_path / "t.parquet", ORDERED)), **run()).model
    ordered = scores(model, parquet(tmp_path / "p1.parquet", ORDERED))
    shuffled = scores(model, parquet(tmp_path / "p2.parquet", SHUFFLED))
    np.testing.assert_array_equal(shuffled, ordered)
    unlabelled = scores(model, parquet(tmp_path / "p3.parquet", ["c", "a", "d", "b"]))
    np.testing.assert_array_equal(unlabelled, ordered)


@pytest.mark.parametrize(
    ("order", "message"),
    [
        (["a", "b", "d"], r"p\.parquet: missing column 'c' \(expected 'a', 'b', 'c', 'd'"),
        (["a", "b", "c", "d", "e"], r"p\.parquet: extra column 'e' \(expected 'a', 'b', 'c', 'd'"),
    ],
)
def test_predict_names_a_missing_or_extra_column(
    tmp_path: Path, order: list[str], message: str
) -> None:
    model = train("linear-learner", str(parquet(tmp_path / "t.parquet", ORDERED)), **run()).model
    data = {**columns(), "e": np.zeros(N, np.float32)}
    with pytest.raises(DataError, match=message):
        scores(model, parquet(tmp_path / "p.parquet", order, data))


def test_a_folder_in_mixed_column_orders_trains_as_one_ordered_file(tmp_path: Path) -> None:
    a, b = columns(1), columns(2)
    both = {k: np.concatenate([a[k], b[k]]) for k in a}
    one = train("linear-learner", str(parquet(tmp_path / "one.parquet", ORDERED, both)), **run())
    parquet(tmp_path / "mixed" / "1.parquet", ORDERED, a)
    parquet(tmp_path / "mixed" / "2.parquet", SHUFFLED, b)
    mixed = train("linear-learner", str(tmp_path / "mixed"), **run())
    same_tensors(one.state, mixed.state)


def test_validation_and_test_channels_are_read_by_name(tmp_path: Path) -> None:
    path = parquet(tmp_path / "t.parquet", ORDERED)
    ordered = train("linear-learner", str(path), test=str(path), **run())
    shuffled = parquet(tmp_path / "s.parquet", SHUFFLED)
    other = train("linear-learner", str(path), test=str(shuffled), **run())
    assert other.metrics["test:mse"] == ordered.metrics["test:mse"]
    missing = parquet(tmp_path / "m.parquet", ["label", "a", "b", "c"])
    with pytest.raises(DataError, match=r"m\.parquet: missing column 'd'"):
        train("linear-learner", str(path), validation=str(missing), **run())


def test_incremental_training_matches_columns_by_name(tmp_path: Path) -> None:
    first = train("linear-learner", str(parquet(tmp_path / "1.parquet", ORDERED)), **run())
    second = columns(5)
    ordered = train(
        "linear-learner",
        str(parquet(tmp_path / "2a.parquet", ORDERED, second)),
        init_state=first.state,
        **run(),
    )
    shuffled = train(
        "linear-learner",
        str(parquet(tmp_path / "2b.parquet", SHUFFLED, second)),
        init_state=first.state,
        **run(),
    )
    same_tensors(ordered.state, shuffled.state)
    with pytest.raises(DataError, match=r"3\.parquet: missing column 'b'"):
        train(
            "linear-learner",
            str(parquet(tmp_path / "3.parquet", ["label", "a", "c", "d"], second)),
            init_state=first.state,
            **run(),
        )


def test_resume_reads_the_rest_by_the_recorded_schema(tmp_path: Path) -> None:
    parquet(tmp_path / "d" / "1.parquet", ORDERED, columns(1))
    parquet(tmp_path / "d" / "2.parquet", SHUFFLED, columns(2))
    whole = train("linear-learner", str(tmp_path / "d"), **run())
    ckpt = tmp_path / "ckpt"
    with pytest.raises(Exception, match="stopped at"):
        train("linear-learner", str(tmp_path / "d"), checkpoint_dir=ckpt, max_batches=3, **run())
    assert State.load(next(p for p in ckpt.iterdir() if p.is_dir())).inputs["schema"]
    resumed = train("linear-learner", str(tmp_path / "d"), checkpoint_dir=ckpt, **run())
    same_tensors(whole.state, resumed.state)


def run() -> dict[str, object]:
    return {"hyperparameters": HP, "progress": False}


def test_sweep_models_record_the_schema_and_their_evaluation_reads_by_name(
    tmp_path: Path,
) -> None:
    unlabelled = {k: v for k, v in columns().items() if k != "label"}
    pq.write_table(pa.table(unlabelled), tmp_path / "x.parquet")
    pq.write_table(pa.table({n: unlabelled[n] for n in "dcba"}), tmp_path / "x-shuffled.parquet")
    result = train(
        "kmeans",
        str(tmp_path / "x.parquet"),
        hyperparameters={"k": 3},
        output=tmp_path / "km",
        sweep="k=2..3",
    )
    assert all(p.model.meta["input_schema"] == result.state.inputs["schema"] for p in result.sweep)
    ordered = finalize_sweep(
        tmp_path / "km" / "state", tmp_path / "a", "k=2..3", str(tmp_path / "x.parquet")
    )
    shuffled = finalize_sweep(
        tmp_path / "km" / "state", tmp_path / "b", "k=2..3", str(tmp_path / "x-shuffled.parquet")
    )
    assert [r["evaluate:msd"] for r in ordered] == [r["evaluate:msd"] for r in shuffled]
