"""PCA: exactness against scikit-learn and numpy, the sketch, merging, sparse input, sweeps."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn import datasets, decomposition

import streamfit
from streamfit import Batch, ConfigError, DataError
from streamfit.algorithms.pca import PCA, PCAModel
from streamfit.core.batch import CSR
from streamfit.core.state import State
from streamfit.data.chunk import dense_arrays
from streamfit.datagen import low_rank_task, write_batches
from streamfit.errors import IncompatibleStateError, TrainingInterrupted


def _rows(d: int, rank: int, n: int, seed: int = 0, offset: int = 0) -> np.ndarray:
    task = low_rank_task(d, rank, seed=seed)
    return np.concatenate([dense_arrays(b) for b in task.blocks(n, offset=offset)])


def _fit(algo: PCA, x: np.ndarray | torch.Tensor, batch: int = 700, sparse: bool = False) -> State:
    t = torch.as_tensor(x)
    state = algo.init_state(t.shape[1])
    for i in range(0, len(t), batch):
        part = t[i : i + batch]
        algo.update(state, Batch(CSR.from_dense(part) if sparse else part))
    return state


def _same_axes(a: torch.Tensor, b: np.ndarray, atol: float = 1e-5) -> None:
    """Rows equal up to sign."""
    a64 = a.double().numpy()
    signs = np.sign((a64 * b).sum(1))
    np.testing.assert_allclose(a64 * signs[:, None], b, atol=atol)


@pytest.fixture(scope="module")
def low_rank() -> np.ndarray:
    return _rows(20, 3, 6000)


def test_regular_mode_equals_scikit_learn(low_rank: np.ndarray) -> None:
    model = PCA(num_components=5).finalize(_fit(PCA(num_components=5), low_rank))
    ref = decomposition.PCA(5, svd_solver="full").fit(low_rank.astype(np.float64))
    t = {k: v.double().numpy() for k, v in model.tensors.items()}
    _same_axes(model.tensors["components"], ref.components_)
    np.testing.assert_allclose(t["mean"], ref.mean_, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(t["singular_values"], ref.singular_values_, rtol=1e-6)
    np.testing.assert_allclose(t["explained_variance"], ref.explained_variance_, rtol=1e-6)
    ratio = ref.explained_variance_ratio_
    np.testing.assert_allclose(t["explained_variance_ratio"], ratio, rtol=1e-6)
    assert model.meta["rows"] == len(low_rank)


def test_uncentred_mode_equals_the_svd_of_the_raw_rows(low_rank: np.ndarray) -> None:
    algo = PCA(num_components=4, subtract_mean="false")  # as SageMaker passes it
    model = algo.finalize(_fit(algo, low_rank))
    centred = PCA(num_components=4)  # the same state answers both ways
    again = centred.finalize(_fit(centred, low_rank), subtract_mean="false")
    for key, value in model.tensors.items():
        assert torch.equal(value, again.tensors[key]), key
    _, s, vt = np.linalg.svd(low_rank.astype(np.float64), full_matrices=False)
    _same_axes(model.tensors["components"], vt[:4])
    np.testing.assert_allclose(model.tensors["singular_values"].double(), s[:4], rtol=1e-6)
    assert not model.tensors["mean"].any()
    x = torch.as_tensor(low_rank[:5])
    expected = x @ model.tensors["components"].T  # no centring
    torch.testing.assert_close(model.predict(x)["projection"], expected)


def test_randomized_mode_explains_within_one_percent_of_exact() -> None:
    train, test = _rows(100, 10, 20_000), _rows(100, 10, 5000, offset=10**9)
    held_out = [Batch(torch.as_tensor(test))]
    scores = {}
    for mode in ("regular", "randomized"):
        algo = PCA(num_components=10, algorithm_mode=mode, extra_components=10)
        state = _fit(algo, train, batch=5000)
        scores[mode] = algo.evaluate(algo.finalize(state), held_out)["explained_variance"]
    assert state.tensors["sketch"].shape == (100, 20)  # a sketch narrower than the data
    assert scores["randomized"] >= 0.99 * scores["regular"]


def _shifted_digits(canvas: int = 12) -> np.ndarray:
    """scikit-learn's 8x8 digits at every even offset of a larger blank canvas: real
    handwriting with the slowly decaying spectrum of images, in more features (144) than the
    default sketch has columns."""
    images = datasets.load_digits().images
    out = []
    for dy in range(0, canvas - 7, 2):
        for dx in range(0, canvas - 7, 2):
            frame = np.zeros((len(images), canvas, canvas))
            frame[:, dy : dy + 8, dx : dx + 8] = images
            out.append(frame.reshape(len(images), -1))
    return np.concatenate(out)


@pytest.mark.parametrize("data", ["digits", "shifted digits"])
def test_randomized_defaults_explain_within_half_a_percent_of_exact_on_images(data: str) -> None:
    x = datasets.load_digits().data if data == "digits" else _shifted_digits()
    everything = [Batch(torch.as_tensor(x))]
    exact_algo = PCA(num_components=10)
    exact = exact_algo.evaluate(exact_algo.finalize(_fit(exact_algo, x, batch=2000)), everything)
    for seed in range(3):
        algo = PCA(num_components=10, algorithm_mode="randomized", seed=seed)
        state = _fit(algo, x, batch=2000)
        got = algo.evaluate(algo.finalize(state), everything)["explained_variance"]
        assert got >= 0.995 * exact["explained_variance"], (seed, got / exact["explained_variance"])
    if data == "shifted digits":
        assert state.tensors["sketch"].shape == (144, 110)  # l = 10 + max(100, 10) < d


@pytest.mark.parametrize("mode", ["regular", "randomized"])
def test_any_num_components_from_one_state(mode: str, low_rank: np.ndarray) -> None:
    algo = PCA(num_components=2, algorithm_mode=mode, extra_components=3)
    state = _fit(algo, low_rank)
    before = state.clone()
    limit = 20 if mode == "regular" else 5
    widest = algo.finalize(state, num_components=limit).tensors["components"]
    for k in range(1, limit + 1):
        model = algo.finalize(state, num_components=k)
        assert model.predict(torch.as_tensor(low_rank[:3]))["projection"].shape == (3, k)
        torch.testing.assert_close(model.tensors["components"], widest[:k])
    with pytest.raises(ConfigError, match=f"supports at most {limit}"):
        algo.finalize(state, num_components=limit + 1)
    with pytest.raises(ConfigError, match="cannot change after training"):
        algo.finalize(state, algorithm_mode="regular")
    for key, value in before.tensors.items():  # finalize leaves the state alone
        assert torch.equal(value, state.tensors[key]), key


def test_too_many_components_for_the_data_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="num_components=30 but the data has only 20"):
        PCA(num_components=30).init_state(20)
    with pytest.raises(ConfigError, match="num_components"):
        PCA()
    with pytest.raises(ConfigError, match="exceeds feature_dim=4"):
        PCA(num_components=5, feature_dim=4)


def test_merge_of_two_shards_equals_one_pass(low_rank: np.ndarray) -> None:
    algo = PCA(num_components=3)
    whole = _fit(algo, low_rank)
    merged = algo.merge(_fit(algo, low_rank[:2500]), _fit(algo, low_rank[2500:]))
    assert float(merged.tensors["n"]) == len(low_rank)
    for key in ("sum", "gram"):  # the same float64 sums, added in another order
        torch.testing.assert_close(merged.tensors[key], whole.tensors[key], rtol=1e-13, atol=0)
    a, b = algo.finalize(whole), algo.finalize(merged)
    for key in a.tensors:
        torch.testing.assert_close(a.tensors[key], b.tensors[key])


def test_randomized_states_merge_exactly_when_they_share_a_seed(low_rank: np.ndarray) -> None:
    algo = PCA(num_components=3, algorithm_mode="randomized", extra_components=4)
    whole = _fit(algo, low_rank)
    merged = algo.merge(_fit(algo, low_rank[:3000]), _fit(algo, low_rank[3000:]))
    torch.testing.assert_close(
        merged.tensors["sketch"], whole.tensors["sketch"], rtol=1e-13, atol=0
    )
    other = PCA(num_components=3, algorithm_mode="randomized", extra_components=4, seed=1)
    with pytest.raises(IncompatibleStateError, match="same seed"):
        algo.merge(whole, _fit(other, low_rank))
    with pytest.raises(IncompatibleStateError, match="algorithm_mode='regular' cannot be merged"):
        algo.merge(whole, _fit(PCA(num_components=3), low_rank))


@pytest.mark.parametrize("mode", ["regular", "randomized"])
def test_sparse_rows_equal_dense_rows_and_stay_sparse(
    mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    x = torch.as_tensor(_rows(30, 4, 3000))
    x[torch.rand(x.shape, generator=torch.Generator().manual_seed(0)) < 0.7] = 0
    algo = PCA(num_components=4, algorithm_mode=mode)
    dense = _fit(algo, x)
    model = algo.finalize(dense)

    def refuse(self: CSR) -> torch.Tensor:
        raise AssertionError("a CSR batch was densified")

    monkeypatch.setattr(CSR, "to_dense", refuse)
    sparse = _fit(algo, x, sparse=True)
    for key, value in dense.tensors.items():
        torch.testing.assert_close(sparse.tensors[key], value, rtol=1e-12, atol=1e-9)
    rows = CSR.from_dense(x[:500])
    proj = model.predict(rows)["projection"]
    torch.testing.assert_close(proj, model.predict(x[:500])["projection"], rtol=1e-4, atol=1e-4)
    got = algo.evaluate(model, [Batch(rows)])
    monkeypatch.undo()
    want = algo.evaluate(model, [Batch(x[:500])])
    assert got == pytest.approx(want, rel=1e-6)  # sparse: ||x-m||^2 - ||p||^2, cancellation


def test_repeated_indices_in_a_sparse_row_add_up() -> None:
    # Row 0 holds column 2 twice (1 + 3) and column 0; row 1 holds column 1.
    csr = CSR(torch.tensor([0, 3, 4]), torch.tensor([2, 0, 2, 1]), torch.tensor([1.0, 2, 3, 4]), 3)
    dense = torch.tensor([[2.0, 0, 4], [0, 4, 0]])
    for mode in ("regular", "randomized"):
        algo = PCA(num_components=2, algorithm_mode=mode)
        a, b = _fit(algo, csr.to_dense()), algo.init_state(3)
        algo.update(b, Batch(csr))
        for key in a.tensors:
            torch.testing.assert_close(a.tensors[key], b.tensors[key])
        assert torch.equal(csr.to_dense(), dense)


def test_predict_and_records(low_rank: np.ndarray) -> None:
    algo = PCA(num_components=3)
    model = algo.finalize(_fit(algo, low_rank))
    x = torch.as_tensor(low_rank[:7])
    proj = model.predict(x)["projection"]
    assert proj.shape == (7, 3)
    t = model.tensors
    torch.testing.assert_close(proj, (x - t["mean"]) @ t["components"].T)
    records = model.records(model.predict(x))
    assert len(records) == 7
    assert set(records[0]) == {"projection"}
    assert records[0]["projection"] == pytest.approx(proj[0].tolist())


def test_evaluator_measures_reconstruction_of_held_out_rows(low_rank: np.ndarray) -> None:
    algo = PCA(num_components=3)
    state = _fit(algo, low_rank)
    test = _rows(20, 3, 2000, offset=10**9)
    x = test.astype(np.float64)
    results = []
    for k in (1, 3, 5):
        model = algo.finalize(state, num_components=k)
        m = model.tensors
        mean, comps = m["mean"].double().numpy(), m["components"].double().numpy()
        xm = x - mean
        error = xm - xm @ comps.T @ comps
        got = algo.evaluate(
            model, [Batch(torch.as_tensor(test[:999])), Batch(torch.as_tensor(test[999:]))]
        )
        assert got["reconstruction_mse"] == pytest.approx((error**2).mean(), rel=1e-9)
        assert got["explained_variance_ratio"] == pytest.approx(
            ((xm @ comps.T) ** 2).sum() / (xm**2).sum(), rel=1e-9
        )
        results.append(got)
    assert results[0]["reconstruction_mse"] > results[1]["reconstruction_mse"]
    assert results[1]["explained_variance_ratio"] > 0.95  # rank-3 signal, unit noise


def test_rows_of_another_width_are_refused() -> None:
    algo = PCA(num_components=2)
    state = algo.init_state(4)
    with pytest.raises(DataError, match="rows of 5 features, the state has 4"):
        algo.update(state, Batch(torch.zeros(3, 5)))


def test_a_state_keeps_its_mode_when_training_continues(low_rank: np.ndarray) -> None:
    state = _fit(PCA(num_components=2), low_rank)
    with pytest.raises(IncompatibleStateError, match="with algorithm_mode='regular'; it cannot"):
        PCA(num_components=2, algorithm_mode="randomized").adopt(state)
    PCA(num_components=20).adopt(state)  # more components: fine, the Gram has them all


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("pca")
    task = low_rank_task(10, 3, seed=4)
    write_batches(root / "train.parquet", task.blocks(6000, block=2000))
    write_batches(root / "test.parquet", task.blocks(2000, offset=10**9))
    return root / "train.parquet", root / "test.parquet"


def test_sweep_writes_a_model_per_value_and_a_metrics_table(
    files: tuple[Path, Path], tmp_path: Path
) -> None:
    train, test = files
    result = streamfit.train(
        "pca",
        str(train),
        hyperparameters={"num_components": 3, "mini_batch_size": 1000},
        sweep="num_components=1..5",
        test=str(test),
        output=tmp_path,
        progress=False,
    )
    assert result.metrics["test:explained_variance_ratio"] > 0.9
    table = json.loads((tmp_path / "sweep.json").read_text())
    assert [row["num_components"] for row in table] == [1, 2, 3, 4, 5]
    ratios = [row["train:explained_variance_ratio"] for row in table]
    assert ratios == sorted(ratios) and 0 < ratios[0] < ratios[-1] <= 1
    errors = [row["test:reconstruction_mse"] for row in table]
    assert errors == sorted(errors, reverse=True)
    assert table[2]["test:reconstruction_mse"] == pytest.approx(
        result.metrics["test:reconstruction_mse"]
    )
    for k in range(1, 6):
        model = streamfit.load_model(tmp_path / "sweep" / f"num_components={k}")
        assert isinstance(model, PCAModel)
        assert model.tensors["components"].shape == (k, 10)
    again = streamfit.finalize(tmp_path / "state", num_components=4)
    assert torch.equal(again.tensors["components"], result.sweep[3].model.tensors["components"])


def test_regular_mode_resumes_bit_identically(files: tuple[Path, Path], tmp_path: Path) -> None:
    train, _ = files
    hp = {"num_components": 2, "mini_batch_size": 500}
    whole = streamfit.train("pca", str(train), hyperparameters=hp, progress=False)
    ckpt = tmp_path / "ckpt"
    with pytest.raises(TrainingInterrupted):
        streamfit.train(
            "pca",
            str(train),
            hyperparameters=hp,
            checkpoint_dir=ckpt,
            max_batches=5,
            progress=False,
        )
    resumed = streamfit.train(
        "pca", str(train), hyperparameters=hp, checkpoint_dir=ckpt, progress=False
    )
    for key, value in whole.state.tensors.items():
        assert torch.equal(value, resumed.state.tensors[key]), key
