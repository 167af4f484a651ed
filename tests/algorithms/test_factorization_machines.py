"""Factorization Machines: gradients against autograd, sparse = dense, lazy updates, learning
interactions a linear model cannot, hashing, bad input, and every input format."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from sklearn.metrics import roc_auc_score

import streamfit
from streamfit import Batch, DataError
from streamfit.algorithms.factorization_machines import FactorizationMachines
from streamfit.algorithms.factorization_machines.model import fm_scores
from streamfit.core.batch import CSR
from streamfit.core.state import State
from streamfit.datagen import FMTask, fm_task, write_batches

HP = {"feature_dim": 64, "num_factors": 4, "predictor_type": "binary_classifier"}


pytestmark = pytest.mark.usefixtures("one_thread")


def _random_csr(n: int, d: int, per_row: int, seed: int) -> CSR:
    g = torch.Generator().manual_seed(seed)
    indices = torch.randint(d, (n * per_row,), generator=g)
    values = torch.rand(n * per_row, generator=g) + 0.5
    indptr = torch.arange(0, n * per_row + 1, per_row)
    return CSR(indptr, indices, values, d)


@pytest.mark.parametrize("kind", ["binary_classifier", "regressor"])
@pytest.mark.parametrize("sparse", [True, False])
def test_one_sgd_step_follows_the_autograd_gradient(kind: str, sparse: bool) -> None:
    """With plain SGD at learning rate 1 and no decay, one update moves every parameter by
    minus its gradient of the mean loss; checked against autograd (repeated indices in a
    row included)."""
    hp = {
        **HP,
        "predictor_type": kind,
        "optimizer": "sgd",
        **{f"{p}_lr": 1.0 for p in ("bias", "linear", "factors")},
        **{f"{p}_wd": 0.0 for p in ("bias", "linear", "factors")},
        "factors_init_sigma": 0.3,
        "linear_init_sigma": 0.3,
    }
    algo = FactorizationMachines(hp)
    state = algo.init_state(64)
    x = _random_csr(50, 64, 6, seed=1)
    y = (torch.rand(50, generator=torch.Generator().manual_seed(2)) > 0.5).float()
    model = algo.finalize(state)
    w0, w, v = (model.tensors[k].clone().requires_grad_(True) for k in ("w0", "w", "v"))
    raw = fm_scores(x if sparse else x.to_dense(), w0, w, v)
    if kind == "binary_classifier":
        loss = torch.nn.functional.binary_cross_entropy_with_logits(raw, y)
    else:
        loss = 0.5 * ((raw - y) ** 2).mean()
    loss.backward()
    algo.update(state, Batch(x if sparse else x.to_dense(), y))
    after = algo.finalize(state)
    for name, p in (("w0", w0), ("w", w), ("v", v)):
        assert p.grad is not None
        expected = p.detach() - p.grad
        torch.testing.assert_close(after.tensors[name], expected, rtol=1e-5, atol=1e-6)


def test_the_accelerator_column_view_equals_the_cpu_one() -> None:
    """The torch path of ``CSR.columns`` (taken on CUDA) gives what the numpy path gives."""
    from streamfit.core.batch import _columns_torch

    x = _random_csr(300, 50, 7, seed=4)
    for ours, theirs in zip(_columns_torch(x.indices), x.columns(), strict=True):
        assert torch.equal(ours, theirs)


def test_sparse_and_dense_batches_train_the_same_model() -> None:
    # SGD: Adam's first steps are about lr x sign(gradient), so float rounding in gradients
    # near zero would flip whole steps and hide what this compares.
    hp = {**HP, "optimizer": "sgd", "linear_lr": 0.5, "factors_lr": 0.5}
    a, b = FactorizationMachines(hp), FactorizationMachines(hp)
    sa, sb = a.init_state(64), b.init_state(64)
    for i in range(10):
        x = _random_csr(100, 64, 5, seed=i)
        y = (x.to_dense().sum(1) > x.to_dense().sum(1).median()).float()
        a.update(sa, Batch(x, y))
        b.update(sb, Batch(x.to_dense(), y))
    for key in ("w0", "w", "v"):
        torch.testing.assert_close(
            a.finalize(sa).tensors[key], b.finalize(sb).tensors[key], rtol=1e-4, atol=1e-4
        )


def test_an_update_touches_only_the_rows_the_batch_uses() -> None:
    algo = FactorizationMachines({**HP, "feature_dim": 1000})
    state = algo.init_state(1000)
    before = state.tensors["table"].clone()
    x = _random_csr(20, 1000, 3, seed=5)
    algo.update(state, Batch(x, torch.ones(20)))
    used = torch.zeros(1000, dtype=torch.bool)
    used[x.indices] = True
    changed = (state.tensors["table"] != before).flatten(1).any(1)
    assert torch.equal(changed, used)


@pytest.fixture(scope="module")
def small_fm() -> FMTask:
    """8 fields of 4 to 200 ids, in 2^12 hashed columns; the truth has strong interactions."""
    task = fm_task(n_features=1 << 12, n_fields=8, num_factors=4, seed=7)
    return FMTask(
        task.n_features, np.minimum(task.vocab, 200), task.w0, task.w, task.v, 1.3, seed=7
    )


@pytest.fixture(scope="module")
def fm_files(small_fm: FMTask, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("fm")
    files = {}
    for fmt in ("parquet", "libsvm", "recordio"):
        files[fmt] = root / f"train.{fmt}"
        write_batches(files[fmt], small_fm.blocks(60_000, block=20_000))
    files["test"] = root / "test.parquet"
    write_batches(files["test"], small_fm.blocks(20_000, offset=10**9))
    return files


def test_learns_the_interactions_a_linear_model_cannot(
    small_fm: FMTask, fm_files: dict[str, Path]
) -> None:
    scores: list[np.ndarray] = []
    test_rows = list(small_fm.blocks(20_000, offset=10**9, scores=scores))
    labels = np.concatenate([b.column("label").to_numpy() for b in test_rows])
    oracle = roc_auc_score(labels, np.concatenate(scores))
    hp = {
        **HP,
        "feature_dim": 1 << 12,
        "num_factors": 8,
        "optimizer": "adam",
        "linear_lr": 0.01,
        "factors_lr": 0.01,
        "mini_batch_size": 100,
    }
    fm = streamfit.train(
        "factorization-machines",
        str(fm_files["parquet"]),
        test=str(fm_files["test"]),
        hyperparameters={**hp, "linear_wd": 0, "factors_wd": 0},
        progress=False,
    )
    ll = streamfit.train(
        "linear-learner",
        str(fm_files["parquet"]),
        test=str(fm_files["test"]),
        hyperparameters={"predictor_type": "binary_classifier", "feature_dim": 1 << 12},
        progress=False,
    )
    fm_auc, ll_auc = fm.metrics["test:roc_auc_score"], ll.metrics["test:roc_auc_score"]
    # Measured: truth 0.826, FM 0.783, LL 0.709 after one pass over 60,000 rows (FM 0.81
    # after three passes over 200,000: the gap to the truth is what the data can teach).
    assert fm_auc > ll_auc + 0.05, (fm_auc, ll_auc)
    assert fm_auc > oracle - 0.06, (fm_auc, oracle)
    # At its defaults (8 candidates around Adagrad at linear_lr 0.05, factors_lr 0.02,
    # batches of 1,000): measured 0.777, the candidate at twice and four times those rates
    # chosen; one model at them (num_models=1) 0.727; Linear Learner 0.709 (SageMaker's Adam
    # defaults: 0.70). 60,000 rows are few: larger steps win, which one setting cannot know.
    defaults = streamfit.train(
        "factorization-machines",
        str(fm_files["parquet"]),
        test=str(fm_files["test"]),
        hyperparameters={**HP, "feature_dim": 1 << 12, "num_factors": 8},
        progress=False,
    )
    assert defaults.metrics["test:roc_auc_score"] > ll_auc + 0.05
    assert fm.metrics["test:binary_classification_cross_entropy"] < 0.62


@pytest.mark.parametrize("fmt", ["libsvm", "recordio"])
def test_every_sparse_format_trains_the_same_model(fmt: str, fm_files: dict[str, Path]) -> None:
    hp = {**HP, "feature_dim": 1 << 12}
    reference = streamfit.train(
        "factorization-machines", str(fm_files["parquet"]), hyperparameters=hp, progress=False
    )
    other = streamfit.train(
        "factorization-machines", str(fm_files[fmt]), hyperparameters=hp, progress=False
    )
    for key in ("w0", "w", "v"):
        torch.testing.assert_close(other.model.tensors[key], reference.model.tensors[key])


def test_regressor_fits_a_known_factorization_machine() -> None:
    g = torch.Generator().manual_seed(3)
    v = torch.randn(20, 3, generator=g)
    x = (torch.rand(20_000, 20, generator=g) < 0.2).float()
    y = fm_scores(x, torch.tensor(1.0), torch.zeros(20), v) + 0.1 * torch.randn(20_000, generator=g)
    hp = {
        "feature_dim": 20,
        "num_factors": 3,
        "predictor_type": "regressor",
        "linear_lr": 0.02,
        "factors_lr": 0.02,
        "mini_batch_size": 100,
        "factors_init_sigma": 0.1,
    }
    algo = FactorizationMachines(hp)
    state = algo.init_state(20)
    for _ in range(3):
        for i in range(0, 20_000, 100):
            algo.update(state, Batch(x[i : i + 100], y[i : i + 100]))
    model = algo.finalize(state)
    rmse = algo.evaluate(model, [Batch(x, y)])["rmse"]
    assert rmse < 0.2 * float(y.std()), (rmse, float(y.std()))


def test_ids_beyond_feature_dim_name_the_row_unless_hashed(tmp_path: Path) -> None:
    path = tmp_path / "train.libsvm"
    path.write_text("1 3:1 9:1\n0 2:1 5000000000:1\n1 7:1\n")
    hp = {**HP, "feature_dim": 16}
    with pytest.raises(DataError, match=r"line 2.*feature index 5000000000.*out of range"):
        streamfit.train("factorization-machines", str(path), hyperparameters=hp, progress=False)
    hashed = streamfit.train(
        "factorization-machines",
        str(path),
        hyperparameters={**hp, "hash_features": True},
        progress=False,
    )
    assert hashed.state.trainer.rows == 3
    # Predictions hash the same way: the model answers the file it was trained on.
    answers = list(streamfit.predict_records(hashed.model, str(path), labelled=True))
    assert len(answers) == 3 and all(0 < a["score"] < 1 for a in answers)


def test_raw_categorical_strings_are_hashed_into_the_space(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    n = 20_000
    site = rng.choice(["news", "shop", "mail", "game"], n)
    device = rng.choice(["phone", "desktop"], n)
    # A click needs the right pair: shop on a phone or news on a desktop.
    p = np.where(
        ((site == "shop") & (device == "phone")) | ((site == "news") & (device == "desktop")),
        0.9,
        0.1,
    )
    label = (rng.random(n) < p).astype(np.float32)
    path = tmp_path / "clicks.parquet"
    table = pa.table(
        {"site": site, "device": device, "hour": rng.integers(0, 24, n), "label": label}
    )
    pq.write_table(table, path)
    hp = {
        **HP,
        "feature_dim": 1 << 10,
        "hash_features": True,
        "linear_lr": 0.05,
        "factors_lr": 0.05,
        "mini_batch_size": 200,
    }
    result = streamfit.train(
        "factorization-machines", str(path), test=str(path), hyperparameters=hp, progress=False
    )
    assert result.metrics["test:binary_classification_accuracy"] > 0.85
    without = {k: v for k, v in hp.items() if k != "hash_features"}
    with pytest.raises(DataError, match="column 'site' is string, not a number: drop it, or hash"):
        # Without hashing, a string column is no feature: an error, not silently dropped.
        streamfit.train("factorization-machines", str(path), hyperparameters=without)


def test_labels_of_a_binary_classifier_must_be_0_or_1() -> None:
    algo = FactorizationMachines(HP)
    state = algo.init_state(64)
    x = _random_csr(4, 64, 2, seed=0)
    with pytest.raises(DataError, match=r"label -1.0 of row 1 is not 0 or 1"):
        algo.update(state, Batch(x, torch.tensor([1.0, -1.0, 0.0, 1.0]), end_position=4))


def test_merge_weights_each_feature_by_the_shard_that_used_it() -> None:
    algo = FactorizationMachines({**HP, "linear_lr": 0.1})
    a, b = algo.init_state(64), algo.init_state(64)
    only_a = CSR.from_dense(torch.eye(64)[:32])
    only_b = CSR.from_dense(torch.eye(64)[32:])
    for _ in range(5):
        algo.update(a, Batch(only_a, torch.ones(32)))
        algo.update(b, Batch(only_b, torch.zeros(32)))
    merged = algo.finalize(algo.merge(a, b)).tensors["w"]
    torch.testing.assert_close(merged[:32], algo.finalize(a).tensors["w"][:32])
    torch.testing.assert_close(merged[32:], algo.finalize(b).tensors["w"][32:])


@pytest.mark.parametrize("optimizer", ["adam", "adagrad"])
def test_the_lazy_average_equals_a_moving_average_of_every_step(
    optimizer: str, tmp_path: Path
) -> None:
    """Rows a batch does not use are left alone, yet the model is the exponential moving
    average of the whole table over every step (checked against one kept densely), and a
    state saved half-way resumes to the same bits."""
    hp = {**HP, "feature_dim": 200, "optimizer": optimizer, "averaging_batches": 5}
    hp |= {"linear_lr": 0.1, "factors_lr": 0.1}
    algo = FactorizationMachines(hp)
    state = algo.init_state(200)
    ref = state.tensors["table"][:, 0].clone()
    ref_w0 = state.tensors["w0"].clone()
    beta = 1 - 1 / 5
    resumed = None
    for i in range(30):
        x = _random_csr(20, 200, 3, seed=100 + i)  # 60 of 200 columns at most: most idle
        y = (torch.rand(20, generator=torch.Generator().manual_seed(i)) > 0.5).float()
        algo.update(state, Batch(x, y))
        ref = beta * ref + (1 - beta) * state.tensors["table"][:, 0]
        ref_w0 = beta * ref_w0 + (1 - beta) * state.tensors["w0"]
        if resumed is not None:
            algo.update(resumed, Batch(x, y))
        if i == 14:
            state.save(tmp_path / "half")
            resumed = State.load(tmp_path / "half")
    model = algo.finalize(state)
    assert resumed is not None
    for key, value in algo.finalize(resumed).tensors.items():
        assert torch.equal(value, model.tensors[key]), key
    torch.testing.assert_close(model.tensors["v"], ref[:, :-1], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(model.tensors["w"], ref[:, -1], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(model.tensors["w0"], ref_w0[0], rtol=1e-5, atol=1e-6)
    assert not torch.equal(model.tensors["v"], state.tensors["table"][:, 0, :-1])


def test_averaging_cannot_be_switched_on_or_off_when_continuing() -> None:
    state = FactorizationMachines(HP).init_state(64)
    with pytest.raises(streamfit.IncompatibleStateError, match="averaging_batches"):
        FactorizationMachines({**HP, "averaging_batches": 10}).adopt(state)
    averaged = FactorizationMachines({**HP, "averaging_batches": 10}).init_state(64)
    FactorizationMachines({**HP, "averaging_batches": 50}).adopt(averaged)  # a new horizon


def test_adagrad_steps_as_torch_adagrad() -> None:
    """The packed Adagrad step on a dense batch is ``torch.optim.Adagrad`` on [v | w]."""
    hp = {**HP, "optimizer": "adagrad", "linear_lr": 0.2, "factors_lr": 0.2}
    hp |= {f"{p}_wd": 0.0 for p in ("bias", "linear", "factors")}
    algo = FactorizationMachines(hp)
    state = algo.init_state(64)
    params = state.tensors["table"][:, 0].clone().requires_grad_(True)
    w0 = state.tensors["w0"].clone()
    opt = torch.optim.Adagrad([params], lr=0.2, eps=1e-8)
    for i in range(3):
        x = _random_csr(50, 64, 6, seed=20 + i).to_dense()
        y = (torch.rand(50, generator=torch.Generator().manual_seed(i)) > 0.5).float()
        raw = fm_scores(x, w0[0], params[:, -1], params[:, :-1])
        loss = torch.nn.functional.binary_cross_entropy_with_logits(raw, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        algo.update(state, Batch(x, y))
        w0 = state.tensors["w0"].clone()  # the bias has its own step; follow it
    # Adagrad's first step is about lr x sign(gradient): rounding in a gradient near zero
    # moves it by a little, hence the tolerance (a wrong rule is off by ~0.1).
    torch.testing.assert_close(state.tensors["table"][:, 0], params.detach(), rtol=1e-3, atol=1e-3)
