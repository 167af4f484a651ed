"""Linear Learner: losses, learning, model packing, selection, scaling, merging."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from streamfit import Batch, ConfigError, DataError
from streamfit.algorithms.linear_learner import LinearLearner
from streamfit.algorithms.linear_learner.hyperparameters import LOSSES
from streamfit.algorithms.linear_learner.losses import LossParams, loss_and_grad
from streamfit.algorithms.linear_learner.model import linear_scores
from streamfit.algorithms.linear_learner.scaling import scale_features
from streamfit.core.batch import CSR
from streamfit.metrics import BinaryMetrics


def _data(n: int, d: int, kind: str = "binary", seed: int = 0, classes: int = 3):
    scale = torch.arange(1, d + 1, dtype=torch.float32)
    w = torch.randn(d, generator=torch.Generator().manual_seed(1234)) / scale  # one true model
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g) * scale + 3.0
    s = (x - 3.0) @ w
    if kind == "binary":
        y = (torch.rand(n, generator=g) < torch.sigmoid(2 * s)).float()
    elif kind == "multiclass":
        y = torch.bucketize(s, torch.quantile(s, torch.linspace(0, 1, classes + 1)[1:-1])).float()
    else:
        y = 5 * s + 10 + 0.1 * torch.randn(n, generator=g)
    return x, y


def _fit(algo: LinearLearner, x: torch.Tensor, y: torch.Tensor, epochs: int = 1, bs: int = 256):
    state = algo.init_state(x.shape[1])
    algo.prepare(state, [Batch(x[:2000], y[:2000])])
    for _ in range(epochs):
        for i in range(0, len(x), bs):
            algo.update(state, Batch(x[i : i + bs], y[i : i + bs]))
    return state


ALL_LOSSES = [(kind, loss) for kind, losses in LOSSES.items() for loss in losses]


@pytest.mark.parametrize(("kind", "loss"), ALL_LOSSES)
def test_loss_gradient_matches_autograd(kind: str, loss: str) -> None:
    g = torch.Generator().manual_seed(1)
    n, m = 64, 5
    shape = (n, m, 4) if kind == "multiclass_classifier" else (n, m)
    s = (torch.randn(*shape, generator=g, dtype=torch.float64) * 2).requires_grad_()
    if kind == "binary_classifier":
        y = (torch.rand(n, generator=g) > 0.5).double()
    elif kind == "multiclass_classifier":
        y = torch.randint(0, 4, (n,), generator=g).double()
    else:
        y = torch.randn(n, generator=g, dtype=torch.float64) * 2
    params = LossParams(margin=1.0, quantile=0.3, huber_delta=0.7, loss_insensitivity=0.2)
    value, grad = loss_and_grad(loss, s, y, params)
    assert value.shape == (n, m)
    value.sum().backward()
    assert s.grad is not None
    torch.testing.assert_close(grad, s.grad)


def test_hyperparameters_are_checked_by_name() -> None:
    with pytest.raises(ConfigError, match="num_classes is required"):
        LinearLearner(predictor_type="multiclass_classifier")
    with pytest.raises(ConfigError, match="loss=hinge_loss does not fit"):
        LinearLearner(predictor_type="regressor", loss="hinge_loss")
    with pytest.raises(ConfigError, match="unknown hyperparameter 'learning_rat'"):
        LinearLearner(predictor_type="regressor", learning_rat=0.1)
    with pytest.raises(ConfigError, match=r"'mini_batch_size'='abc'"):
        LinearLearner(predictor_type="regressor", mini_batch_size="abc")
    with pytest.raises(ConfigError, match="predictor_type"):
        LinearLearner()


def test_sagemaker_string_hyperparameters_are_accepted() -> None:
    algo = LinearLearner(
        {
            "predictor_type": "binary_classifier",
            "learning_rate": "0.05",
            "use_bias": "false",
            "num_models": "auto",
            "positive_example_weight_mult": "balanced",
            "epochs": "3",
        }
    )
    assert algo.hp.learning_rate == 0.05
    assert algo.hp.use_bias is False
    assert algo.hp.epochs == 3
    assert algo.hp.positive_example_weight_mult == "balanced"


def test_binary_reaches_the_logistic_regression_ceiling() -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    x, y = _data(40_000, 10)
    xt, yt = _data(10_000, 10, seed=1)
    algo = LinearLearner(predictor_type="binary_classifier")
    model = algo.finalize(_fit(algo, x, y))
    auc = roc_auc_score(yt.numpy(), model.predict(xt)["score"].numpy())
    ceiling = roc_auc_score(
        yt.numpy(), LogisticRegression().fit(x.numpy(), y.numpy()).decision_function(xt.numpy())
    )
    assert auc > ceiling - 0.003


def test_multiclass_and_regression_learn() -> None:
    x, y = _data(30_000, 6, "multiclass")
    algo = LinearLearner(predictor_type="multiclass_classifier", num_classes=3)
    model = algo.finalize(_fit(algo, x, y, epochs=2))
    pred = model.predict(x)
    assert pred["score"].shape == (30_000, 3)
    assert float((pred["predicted_label"] == y.long()).float().mean()) > 0.85
    record = model.records(model.predict(x[:1]))[0]
    assert set(record) == {"score", "predicted_label"} and len(record["score"]) == 3

    x, y = _data(30_000, 6, "regression")
    algo = LinearLearner(predictor_type="regressor")
    model = algo.finalize(_fit(algo, x, y, epochs=2))
    residual = model.predict(x)["score"] - y
    assert float((residual**2).mean() / y.var()) < 0.01
    assert set(model.records(model.predict(x[:1]))[0]) == {"score"}


@pytest.mark.parametrize("q", [0.1, 0.9])
def test_quantile_loss_predicts_the_quantile(q: float) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40_000, 2, generator=g)
    y = x[:, 0] + torch.randn(40_000, generator=g)
    algo = LinearLearner(predictor_type="regressor", loss="quantile_loss", quantile=q)
    model = algo.finalize(_fit(algo, x, y, epochs=3))
    coverage = float((y <= model.predict(x)["score"]).float().mean())
    assert abs(coverage - q) < 0.03


@pytest.mark.parametrize("loss", LOSSES["regressor"] + LOSSES["binary_classifier"])
def test_every_loss_trains_to_finite_weights(loss: str) -> None:
    kind = "binary_classifier" if loss in LOSSES["binary_classifier"] else "regressor"
    x, y = _data(5000, 4, "binary" if kind == "binary_classifier" else "regression")
    algo = LinearLearner(predictor_type=kind, loss=loss, num_models=4)
    model = algo.finalize(_fit(algo, x, y))
    assert torch.isfinite(model.tensors["weight"]).all()


def test_candidates_are_one_weight_matrix_with_their_own_settings() -> None:
    algo = LinearLearner(predictor_type="multiclass_classifier", num_classes=4, num_models=6)
    state = algo.init_state(10)
    assert state.tensors["weight"].shape == (10, 24)
    assert len(set(state.tensors["lr"].tolist())) == 6
    fixed = LinearLearner(predictor_type="regressor", num_models=3, learning_rate=0.1, wd=0, l1=0)
    st = fixed.init_state(2)
    assert st.tensors["lr"].tolist() == pytest.approx([0.1] * 3)
    assert st.tensors["wd"].tolist() == [0.0] * 3


def test_model_is_expressed_over_raw_features() -> None:
    x, y = _data(5000, 5)
    algo = LinearLearner(predictor_type="binary_classifier", num_models=3)
    state = _fit(algo, x, y)
    model = algo.finalize(state, candidate=1)
    t = state.tensors
    scaled = scale_features(x, t["x_shift"], t["x_scale"])
    expected = torch.sigmoid(linear_scores(scaled, t["weight"], t["bias"])[:, 1])
    torch.testing.assert_close(model.predict(x)["score"], expected, rtol=1e-4, atol=1e-5)


def test_selection_criteria_choose_thresholds_without_reading_data() -> None:
    x, y = _data(30_000, 6)
    xv, yv = _data(10_000, 6, seed=5)
    algo = LinearLearner(predictor_type="binary_classifier", num_models=8)
    state = _fit(algo, x, y)
    algo.calibrate(state, [Batch(xv, yv)])
    assert state.meta["calib_source"] == "validation"

    def measured(model):  # precision and recall on the calibration rows themselves
        m = BinaryMetrics(model.threshold)
        m.update(model.predict(xv)["score"], yv)
        return m.result()

    high_recall = algo.finalize(
        state,
        binary_classifier_model_selection_criteria="precision_at_target_recall",
        target_recall=0.95,
    )
    assert measured(high_recall)["recall"] >= 0.95
    high_precision = algo.finalize(
        state,
        binary_classifier_model_selection_criteria="recall_at_target_precision",
        target_precision=0.95,
    )
    assert measured(high_precision)["precision"] >= 0.95
    assert high_precision.threshold > high_recall.threshold
    accuracy = algo.finalize(state)
    value = accuracy.meta["selection"]["value"]
    assert measured(accuracy)["binary_classification_accuracy"] == pytest.approx(value, abs=1e-9)
    by_loss = algo.finalize(state, binary_classifier_model_selection_criteria="loss_function")
    assert by_loss.threshold == 0.5
    with pytest.raises(ConfigError, match="cannot change after training"):
        algo.finalize(state, learning_rate=0.1)


def test_selection_picks_the_best_candidate_on_held_out_rows() -> None:
    x, y = _data(20_000, 6)
    algo = LinearLearner(predictor_type="binary_classifier", num_models=6)
    state = _fit(algo, x, y)
    model = algo.finalize(state)
    values = [c["value"] for c in model.meta["selection"]["candidates"]]
    assert model.meta["candidate"] == int(np.argmax(values))
    assert model.meta["selection"]["source"] == "train"


def test_balanced_class_weights_raise_recall_of_the_rare_class() -> None:
    x, y = _data(30_000, 5)
    rare = (y == 0) | (torch.rand(len(y), generator=torch.Generator().manual_seed(2)) < 0.05)
    x, y = x[rare], y[rare]
    results = {}
    for mult in (1.0, "balanced"):
        algo = LinearLearner(
            predictor_type="binary_classifier",
            num_models=4,
            positive_example_weight_mult=mult,
            binary_classifier_model_selection_criteria="loss_function",
        )
        model = algo.finalize(_fit(algo, x, y))
        pred = model.predict(x)["predicted_label"]
        results[mult] = float(pred[y == 1].float().mean())
    assert results["balanced"] > results[1.0] + 0.2


def test_l1_makes_weights_sparse() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(20_000, 20, generator=g)
    y = (x[:, 0] - x[:, 1] > 0).float()
    algo = LinearLearner(predictor_type="binary_classifier", num_models=1, l1=0.01)
    model = algo.finalize(_fit(algo, x, y))
    w = model.tensors["weight"][:, 0].abs()
    assert int((w[2:] < 1e-6).sum()) >= 15
    assert float(w[:2].min()) > 0.1


def test_sparse_and_dense_paths_agree() -> None:
    g = torch.Generator().manual_seed(0)
    dense = torch.where(
        torch.rand(4000, 30, generator=g) < 0.2, torch.rand(4000, 30, generator=g), 0.0
    )
    y = (dense[:, :5].sum(1) > dense[:, 5:10].sum(1)).float()
    hp = {
        "predictor_type": "binary_classifier",
        "num_models": 2,
        "optimizer": "sgd",
        "momentum": 0.0,
        "learning_rate": 0.5,
        "wd": 0.0,
        "l1": 0.0,
        "normalize_data": False,
    }
    models = []
    for sparse in (False, True):
        algo = LinearLearner(hp)
        state = algo.init_state(30)
        for i in range(0, 4000, 200):
            xb = dense[i : i + 200]
            feats = CSR.from_dense(xb) if sparse else xb
            algo.update(state, Batch(feats, y[i : i + 200]))
        models.append(algo.finalize(state, candidate=0))
    torch.testing.assert_close(models[0].tensors["weight"], models[1].tensors["weight"])
    csr = CSR.from_dense(dense)
    torch.testing.assert_close(models[1].predict(csr)["score"], models[1].predict(dense)["score"])


def test_early_stopping_stops_when_the_loss_stalls() -> None:
    x, y = _data(4000, 4)
    algo = LinearLearner(
        predictor_type="binary_classifier",
        num_models=2,
        early_stopping_patience=2,
        early_stopping_tolerance=0.05,
    )
    state = _fit(algo, x, y)
    stops = []
    for _ in range(10):
        stops.append(algo.end_epoch(state, None))
        for i in range(0, 4000, 256):
            algo.update(state, Batch(x[i : i + 256], y[i : i + 256]))
    assert True in stops and stops.index(True) < 6
    assert len(state.meta["loss_history"]) == 10


def test_labels_outside_the_classes_are_an_error() -> None:
    algo = LinearLearner(predictor_type="binary_classifier")
    state = algo.init_state(2)
    with pytest.raises(DataError, match=r"label 2\.0 is not a class"):
        algo.update(state, Batch(torch.zeros(3, 2), torch.tensor([0.0, 1.0, 2.0])))


def test_merging_a_state_with_itself_keeps_its_model() -> None:
    x, y = _data(5000, 4, "regression")
    algo = LinearLearner(predictor_type="regressor", num_models=2)
    state = _fit(algo, x, y)
    merged = algo.merge(state, state)
    a = algo.finalize(state, candidate=1).predict(x)["score"]
    b = algo.finalize(merged, candidate=1).predict(x)["score"]
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-3)
    assert merged.meta["rows"] == 2 * state.meta["rows"]  # rows trained (held-out rows are not)


def test_merge_pools_scalers_and_keeps_each_function() -> None:
    # Two shards with different scales: the merged model is the average of the two functions.
    xa, ya = _data(5000, 3, "regression", seed=1)
    xb, yb = _data(5000, 3, "regression", seed=2)
    xb = xb * 4 + 1
    algo = LinearLearner(predictor_type="regressor", num_models=1)
    sa, sb = _fit(algo, xa, ya), _fit(algo, xb, yb)
    probe = torch.randn(100, 3)
    expected = 0.5 * (
        algo.finalize(sa).predict(probe)["score"] + algo.finalize(sb).predict(probe)["score"]
    )
    merged = algo.finalize(algo.merge(sa, sb)).predict(probe)["score"]
    torch.testing.assert_close(merged, expected, rtol=1e-3, atol=1e-3)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu() -> None:
    x, y = _data(10_000, 8)
    algo = LinearLearner(predictor_type="binary_classifier", num_models=4)
    cpu = algo.finalize(_fit(algo, x, y))
    state = algo.init_state(8, "cuda")
    algo.prepare(state, [Batch(x[:2000].cuda(), y[:2000].cuda())])
    for i in range(0, len(x), 256):
        algo.update(state, Batch(x[i : i + 256].cuda(), y[i : i + 256].cuda()))
    gpu = algo.finalize(state)
    torch.testing.assert_close(
        gpu.tensors["weight"].cpu(), cpu.tensors["weight"], rtol=1e-3, atol=1e-3
    )
