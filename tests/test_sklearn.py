"""The scikit-learn estimators: sklearn's own estimator checks, then behaviour on known data."""

from __future__ import annotations

import doctest
import pickle
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.datasets import make_blobs
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

import streamfit.sklearn
from streamfit.core.batch import CSR
from streamfit.sklearn import LinearLearnerClassifier, LinearLearnerRegressor

# Defaults as users get them, plus settings that take other paths: the fixed threshold 0.5
# (selection by loss), several mini-batches per epoch, a binary-only loss without
# predict_proba, a robust regression loss.
CHECKED = [
    LinearLearnerClassifier(),
    LinearLearnerRegressor(),
    LinearLearnerClassifier(binary_classifier_model_selection_criteria="loss_function"),
    LinearLearnerClassifier(loss="hinge_loss", num_models=4, mini_batch_size=32),
    LinearLearnerRegressor(loss="huber_loss", num_models=4, mini_batch_size=32),
]


def expected_failed_checks(estimator: Any) -> dict[str, str]:
    tuned = estimator.get_params().get("binary_classifier_model_selection_criteria")
    if hasattr(estimator, "predict_proba") and tuned != "loss_function":
        return {
            "check_classifiers_train": "predict uses the threshold that model selection "
            "tuned (threshold_, as SageMaker), so it may disagree with argmax(predict_proba) "
            "(sklearn lists the same for TunedThresholdClassifierCV)",
        }
    return {}


@parametrize_with_checks(CHECKED, expected_failed_checks=expected_failed_checks)
def test_sklearn_estimator_checks(estimator: Any, check: Any) -> None:
    check(estimator)


def linear_data(n: int = 3000, d: int = 10, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) * rng.uniform(0.5, 5.0, size=d) + rng.normal(size=d)
    w = rng.normal(size=d)
    return X, (X - X.mean(0)) @ w


def test_binary_separable() -> None:
    X, score = linear_data()
    y = (score > 0).astype(int)
    Xtr, Xte, ytr, yte = train_test_split(X, y, random_state=0)
    clf = LinearLearnerClassifier().fit(Xtr, ytr)
    assert clf.score(Xte, yte) > 0.95
    assert clf.coef_.shape == (1, 10) and clf.intercept_.shape == (1,)
    decision, proba = clf.decision_function(Xte), clf.predict_proba(Xte)
    np.testing.assert_array_equal(clf.predict(Xte), (decision > 0).astype(int))
    np.testing.assert_allclose(proba.sum(1), 1.0)
    # predict_proba is the model's own score; predict applies the chosen threshold
    model = clf.model_.predict(streamfit.sklearn._to_torch(Xte.astype(np.float32)))
    np.testing.assert_allclose(proba[:, 1], model["score"].numpy(), atol=1e-4)
    assert 0.0 <= clf.threshold_ <= 1.0
    assert clf.model_.predictor_type == "binary_classifier"


def test_multiclass_string_labels() -> None:
    X, y = make_blobs(n_samples=1500, centers=4, n_features=5, random_state=1)
    names = np.array(["ant", "bee", "cat", "dog"])[y]
    Xtr, Xte, ytr, yte = train_test_split(X, names, random_state=0)
    clf = LinearLearnerClassifier(num_models=8).fit(Xtr, ytr)
    assert clf.classes_.tolist() == ["ant", "bee", "cat", "dog"]
    assert clf.model_.predictor_type == "multiclass_classifier"
    assert clf.score(Xte, yte) > 0.9
    proba = clf.predict_proba(Xte)
    np.testing.assert_array_equal(clf.predict(Xte), clf.classes_[proba.argmax(1)])
    assert proba.shape == clf.decision_function(Xte).shape == (len(Xte), 4)
    assert clf.coef_.shape == (4, 5) and not hasattr(clf, "threshold_")
    with pytest.raises(ValueError, match="Only binary classification"):
        LinearLearnerClassifier(loss="logistic").fit(Xtr, ytr)


def test_one_class_is_an_error() -> None:
    with pytest.raises(ValueError, match="one class"):
        LinearLearnerClassifier().fit(np.ones((5, 2)), ["a"] * 5)
    with pytest.raises(NotFittedError):
        LinearLearnerClassifier().predict(np.ones((5, 2)))


def test_regression_linear_target() -> None:
    X, y = linear_data(seed=2)
    y = 3.0 * y + 7.0 + np.random.default_rng(3).normal(scale=0.1, size=len(y))
    Xtr, Xte, ytr, yte = train_test_split(X, y, random_state=0)
    reg = LinearLearnerRegressor().fit(Xtr, ytr)
    assert reg.score(Xte, yte) > 0.9
    assert reg.coef_.shape == (10,) and isinstance(reg.intercept_, float)
    np.testing.assert_allclose(reg.predict(Xte), Xte @ reg.coef_ + reg.intercept_)


def test_sparse_matches_dense(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(4)
    X = rng.normal(size=(2000, 20)) * (rng.uniform(size=(2000, 20)) < 0.3)
    y = (X @ rng.normal(size=20) > 0).astype(int)

    def no_densify(self: CSR) -> None:
        raise AssertionError("sparse input was densified")

    monkeypatch.setattr(CSR, "to_dense", no_densify)
    # Without normalisation both train the same function (every batch touches every column).
    same = {"normalize_data": False, "num_models": 4, "epochs": 5}
    dense = LinearLearnerClassifier(**same).fit(X, y)
    sparse = LinearLearnerClassifier(**same).fit(sp.csr_matrix(X), y)
    np.testing.assert_allclose(sparse.coef_, dense.coef_, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(
        sparse.predict_proba(sp.csr_matrix(X)), dense.predict_proba(X), atol=1e-4
    )
    # With it, sparse rows are scaled but not centred: close, not equal.
    dense, sparse = (
        LinearLearnerClassifier().fit(X, y),
        LinearLearnerClassifier().fit(sp.csr_array(X), y),
    )
    assert np.mean(dense.predict(X) == sparse.predict(sp.csr_array(X))) > 0.97
    assert sparse.score(sp.csr_array(X), y) > 0.95


def test_partial_fit_reaches_fit() -> None:
    X, score = linear_data(seed=5)
    y = np.where(score > 0, "pos", "neg")
    Xtr, Xte, ytr, yte = train_test_split(X, y, random_state=0)
    full = LinearLearnerClassifier().fit(Xtr, ytr).score(Xte, yte)
    inc = LinearLearnerClassifier()
    with pytest.raises(ValueError, match="classes"):
        inc.partial_fit(Xtr[:100], ytr[:100])
    for _ in range(3):
        for chunk in np.array_split(np.arange(len(Xtr)), 9):
            inc.partial_fit(Xtr[chunk], ytr[chunk], classes=["neg", "pos"])
    assert inc.score(Xte, yte) > full - 0.03
    assert inc.n_iter_ == 27
    inc.set_params(num_models=2, epochs=1)  # a continuation keeps the state's settings
    assert inc.partial_fit(Xte, yte).n_iter_ == 28
    with pytest.raises(ValueError, match="classes"):
        inc.partial_fit(Xtr[:10], ytr[:10], classes=["neg", "pos", "zero"])
    with pytest.raises(ValueError, match="not in classes"):
        inc.partial_fit(Xtr[:2], ["neg", "zero"])
    Xtr, Xte, ytr, yte = train_test_split(X, score, random_state=0)
    full_r2 = LinearLearnerRegressor().fit(Xtr, ytr).score(Xte, yte)
    reg = LinearLearnerRegressor()
    for _ in range(3):
        for chunk in np.array_split(np.arange(len(Xtr)), 9):
            reg.partial_fit(Xtr[chunk], ytr[chunk])
    assert reg.score(Xte, yte) > min(full_r2 - 0.03, 0.95)


def test_pipeline_clone_grid_search() -> None:
    X, score = linear_data(n=1200, seed=6)
    y = (score > 0).astype(int)
    pipe = make_pipeline(
        StandardScaler(), LinearLearnerClassifier(epochs=5, num_models=1, mini_batch_size=100)
    )
    assert clone(pipe).get_params()["linearlearnerclassifier__epochs"] == 5
    search = GridSearchCV(pipe, {"linearlearnerclassifier__learning_rate": [1e-4, 0.05]}, cv=3).fit(
        X, y
    )
    assert search.best_params_ == {"linearlearnerclassifier__learning_rate": 0.05}
    assert search.best_score_ > 0.9
    restored = pickle.loads(pickle.dumps(search.best_estimator_))
    np.testing.assert_array_equal(restored.predict(X), search.predict(X))


def test_deterministic_for_a_seed() -> None:
    X, score = linear_data(n=1500, seed=7)
    y = (score > 0).astype(int)
    a, b = LinearLearnerClassifier(seed=3).fit(X, y), LinearLearnerClassifier(seed=3).fit(X, y)
    np.testing.assert_array_equal(a.coef_, b.coef_)
    assert not np.array_equal(a.coef_, LinearLearnerClassifier(seed=4).fit(X, y).coef_)


def test_feature_names_from_arrow() -> None:
    pa = pytest.importorskip("pyarrow")
    X, y = linear_data(n=500, d=3, seed=8)
    table = pa.table({"a": X[:, 0], "b": X[:, 1], "c": X[:, 2]})
    reg = LinearLearnerRegressor(epochs=3).fit(table, y)
    assert reg.feature_names_in_.tolist() == ["a", "b", "c"]
    np.testing.assert_allclose(reg.predict(table), X @ reg.coef_ + reg.intercept_)


def test_module_doctest() -> None:
    result = doctest.testmod(streamfit.sklearn)
    assert result.attempted > 0 and result.failed == 0


def test_fit_and_partial_fit_train_through_the_trainers_loop() -> None:
    """Warm-up on the first rows, folds that count, epochs that end as the trainer's do."""
    X, score = linear_data(n=1050)
    y = score > 0
    clf = LinearLearnerClassifier(epochs=3, mini_batch_size=100, early_stopping_patience=100)
    state = clf.fit(X, y).state_
    assert (state.trainer.rows, state.trainer.batches) == (3 * 1050, 3 * 11)
    assert state.position.epoch == 3 and not state.trainer.stopped_early
    assert state.meta["scaler_rows"] == 1050  # prepared on the first rows (all, fewer than 10^4)
    more = clf.partial_fit(X[:200], y[:200]).state_
    assert more.trainer.rows == 3 * 1050 + 200
