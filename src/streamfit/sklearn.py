"""scikit-learn estimators over the Linear Learner: ``LinearLearnerClassifier`` (binary or
multiclass, chosen from the classes seen) and ``LinearLearnerRegressor``.

Hyperparameters keep SageMaker's names; ``epochs`` defaults to SageMaker's 15 (the streaming
CLI's default is one pass). Dense arrays and scipy sparse matrices are accepted; sparse input
trains as streamfit CSR and is never densified. ``fit`` shuffles the rows of every epoch from
``seed``; ``partial_fit`` makes one pass over its rows in the order given.

The binary classifier predicts with the decision threshold that model selection chose
(``threshold_``, SageMaker's behaviour): ``decision_function`` is shifted so that it is
positive exactly where ``predict`` says the second class, and ``predict_proba`` is the
model's (uncorrected) sigmoid.

>>> import numpy as np
>>> from streamfit.sklearn import LinearLearnerClassifier
>>> rng = np.random.default_rng(0)
>>> X = rng.normal(size=(600, 3))
>>> y = np.where(X[:, 0] - X[:, 1] > 0, "yes", "no")
>>> clf = LinearLearnerClassifier(epochs=5, mini_batch_size=100, num_models=4).fit(X, y)
>>> clf.classes_.tolist(), clf.coef_.shape
(['no', 'yes'], (1, 3))
>>> bool(clf.score(X, y) > 0.95)
True
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils.extmath import safe_sparse_dot
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from streamfit.algorithms.linear_learner import LinearLearner, LinearLearnerModel
from streamfit.core.batch import CSR, Batch, Features
from streamfit.core.state import State
from streamfit.training.loop import Loop, warm_up
from streamfit.training.trainer import compute_threads

__all__ = ["LinearLearnerClassifier", "LinearLearnerRegressor"]

_DTYPES = (np.float64, np.float32)


def _to_torch(X: Any) -> Features:
    """Validated ``X`` (ndarray or scipy CSR) as float32 tensors, copied."""
    if hasattr(X, "indptr"):  # validate_data leaves sparse input as scipy CSR
        if not X.has_canonical_format:
            X = X.copy()
            X.sum_duplicates()
        return CSR(
            torch.tensor(X.indptr, dtype=torch.int64),
            torch.tensor(X.indices, dtype=torch.int64),
            torch.tensor(X.data, dtype=torch.float32),
            int(X.shape[1]),
        )
    return torch.tensor(X, dtype=torch.float32)


def _rows(x: Features, idx: torch.Tensor) -> Features:
    return x.select_rows(idx) if isinstance(x, CSR) else x.index_select(0, idx)


def _batches(
    feats: Features, labels: torch.Tensor, order: torch.Tensor, size: int
) -> Iterator[Batch]:
    """The rows in ``order``, ``size`` at a time, positioned as a pass over them."""
    for start in range(0, labels.numel(), size):
        idx = order[start : start + size]
        yield Batch(_rows(feats, idx), labels[idx], end_position=start + idx.numel())


class _LinearLearnerBase(BaseEstimator):  # type: ignore[misc]
    """Shared training loop; subclasses define ``__init__`` (their parameters)."""

    seed: int
    epochs: int
    state_: State
    model_: LinearLearnerModel
    n_iter_: int
    coef_: np.ndarray
    intercept_: np.ndarray | float

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags

    def _algorithm(self, predictor_type: str, num_classes: int | None) -> LinearLearner:
        hp: dict[str, Any] = dict(self.get_params(deep=False), predictor_type=predictor_type)
        if num_classes is not None:
            hp["num_classes"] = num_classes
        return LinearLearner(hp)

    def _train(self, X: Any, y: np.ndarray, algo: LinearLearner, *, partial: bool) -> None:
        """``fit``: a new state, ``epochs`` shuffled passes with early stopping; ``partial``:
        one pass in the given order, continuing ``state_`` if there is one. Then ``model_``.
        The passes go through the trainer's loop (warm-up, folds, end of epoch)."""
        feats, labels = _to_torch(X), torch.tensor(y, dtype=torch.float32)
        n = labels.numel()
        fresh = not (partial and hasattr(self, "state_"))
        if not fresh:  # continue with the hyperparameters the state was made with
            algo = LinearLearner(self.state_.hyperparameters)
        state: State | None = None if fresh else self.state_
        shuffler = torch.Generator().manual_seed(self.seed)
        cpu = torch.device("cpu")
        loop = Loop(algo)
        done = 0
        # The trainer's rule, for the same reason: intra-op threads that compete for cores
        # make small batches many times slower (see training.trainer.compute_threads).
        with compute_threads(cpu, None):
            for _ in range(1 if partial else self.epochs):
                order = torch.arange(n) if partial else torch.randperm(n, generator=shuffler)
                batches = _batches(feats, labels, order, algo.mini_batch_size)
                if state is None or not state.trainer.rows:  # the scaler from the first rows
                    state, batches = warm_up(algo, state, batches, cpu, "X")
                for batch in batches:
                    loop.step(state, batch)
                done += 1
                if not partial:
                    loop.end_epoch(state, None)
                    if state.trainer.stopped_early:
                        break
            assert state is not None
            model = algo.finalize(state)
        assert isinstance(model, LinearLearnerModel)
        self.model_ = model
        self.state_ = state
        self.n_iter_ = done + (0 if fresh else self.n_iter_)
        self._set_coef()

    def _set_coef(self) -> None:
        """``coef_`` (C, d) and ``intercept_`` (C,): the model's raw-space weight and bias."""
        self.coef_ = self.model_.tensors["weight"].double().cpu().numpy().T.copy()
        self.intercept_ = self.model_.tensors["bias"].double().cpu().numpy()

    def _raw(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(self, X, accept_sparse="csr", dtype=_DTYPES, reset=False)
        coef = np.atleast_2d(self.coef_)
        out: np.ndarray = safe_sparse_dot(X, coef.T.astype(np.float64)) + self.intercept_
        return out


class LinearLearnerClassifier(ClassifierMixin, _LinearLearnerBase):  # type: ignore[misc]
    """Linear Learner as a classifier: logistic (or hinge) for two classes, softmax beyond.

    Learned: ``classes_``, ``coef_`` (1 or C, d), ``intercept_``, ``threshold_`` (binary),
    ``n_features_in_``, ``feature_names_in_``, ``state_`` (streamfit state), ``model_``
    (streamfit model), ``n_iter_`` (epochs run; early stopping may end ``fit`` sooner).
    """

    def __init__(
        self,
        *,
        epochs: int = 15,
        mini_batch_size: int = 1000,
        num_models: int | str = "auto",
        learning_rate: float | str = "auto",
        wd: float | str = "auto",
        l1: float | str = "auto",
        loss: str = "auto",
        optimizer: str = "auto",
        binary_classifier_model_selection_criteria: str = "accuracy",
        positive_example_weight_mult: float | str = 1.0,
        normalize_data: bool = True,
        early_stopping_patience: int = 3,
        seed: int = 0,
    ) -> None:
        self.epochs = epochs
        self.mini_batch_size = mini_batch_size
        self.num_models = num_models
        self.learning_rate = learning_rate
        self.wd = wd
        self.l1 = l1
        self.loss = loss
        self.optimizer = optimizer
        self.binary_classifier_model_selection_criteria = binary_classifier_model_selection_criteria
        self.positive_example_weight_mult = positive_example_weight_mult
        self.normalize_data = normalize_data
        self.early_stopping_patience = early_stopping_patience
        self.seed = seed

    def _binary_only(self) -> str | None:
        """Why these settings cannot train a multiclass model, if they cannot."""
        if self.loss in ("logistic", "hinge_loss"):
            return f"loss={self.loss!r}"
        criterion = self.binary_classifier_model_selection_criteria
        if criterion not in ("accuracy", "loss_function"):
            return f"binary_classifier_model_selection_criteria={criterion!r}"
        return None

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = self._binary_only() is None
        return tags

    def _classifier(self, classes: np.ndarray) -> LinearLearner:
        """The algorithm for these classes, checked before any state changes."""
        c = len(classes)
        if c < 2:
            raise ValueError(
                f"{type(self).__name__} needs at least two classes; got one class: "
                f"{classes.tolist()}"
            )
        reason = self._binary_only()
        if c > 2 and reason is not None:
            raise ValueError(
                f"Only binary classification is supported with {reason}; y has {c} classes"
            )
        return self._algorithm(
            "binary_classifier" if c == 2 else "multiclass_classifier", c if c > 2 else None
        )

    def fit(self, X: Any, y: Any) -> LinearLearnerClassifier:
        """Train from scratch: ``epochs`` shuffled passes (fewer if early stopping ends it)."""
        X, y = validate_data(self, X, y, accept_sparse="csr", dtype=_DTYPES)
        check_classification_targets(y)
        classes, encoded = np.unique(y, return_inverse=True)
        algo = self._classifier(classes)
        self.classes_ = classes
        self._train(X, encoded, algo, partial=False)
        return self

    def partial_fit(self, X: Any, y: Any, classes: Any = None) -> LinearLearnerClassifier:
        """One pass over these rows in their order, continuing training with the state's own
        hyperparameters; ``classes`` (all of them) must be given on the first call."""
        first = not hasattr(self, "state_")
        X, y = validate_data(self, X, y, accept_sparse="csr", dtype=_DTYPES, reset=first)
        check_classification_targets(y)
        if first and classes is None:
            raise ValueError("classes must be passed on the first call to partial_fit")
        known = np.unique(np.asarray(classes)) if first else self.classes_
        if classes is not None and not np.array_equal(np.unique(np.asarray(classes)), known):
            raise ValueError(f"classes={list(classes)} differs from classes_ of earlier fits")
        idx = np.searchsorted(known, y).clip(0, len(known) - 1)
        if (known[idx] != y).any():
            raise ValueError(f"y holds labels not in classes: {np.setdiff1d(y, known).tolist()}")
        algo = self._classifier(known)
        self.classes_ = known
        self._train(X, idx, algo, partial=True)
        return self

    def _set_coef(self) -> None:
        super()._set_coef()
        self.__dict__.pop("threshold_", None)  # a multiclass refit has none
        if self.model_.predictor_type == "binary_classifier":
            self.threshold_ = self.model_.threshold

    def decision_function(self, X: Any) -> np.ndarray:
        """Per class scores (multiclass); binary: positive where ``predict`` says class 1."""
        raw = self._raw(X)
        if len(self.classes_) > 2:
            return raw
        t = self.threshold_
        if self.model_.meta["loss"] == "logistic":  # the threshold is on the probability
            with np.errstate(divide="ignore"):
                t = float(np.log(t) - np.log1p(-t))
        out: np.ndarray = raw[:, 0] - t
        return out

    @available_if(lambda self: self.loss != "hinge_loss")  # type: ignore[untyped-decorator]
    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities (columns in the order of ``classes_``)."""
        raw = self._raw(X)
        if len(self.classes_) > 2:
            e = np.exp(raw - raw.max(axis=1, keepdims=True))
            multi: np.ndarray = e / e.sum(axis=1, keepdims=True)
            return multi
        p = np.exp(-np.logaddexp(0.0, -raw[:, 0]))  # the sigmoid, overflow-free
        return np.column_stack([1.0 - p, p])

    def predict(self, X: Any) -> np.ndarray:
        score = self.decision_function(X)
        idx = score.argmax(axis=1) if score.ndim == 2 else (score > 0).astype(np.intp)
        out: np.ndarray = self.classes_[idx]
        return out


class LinearLearnerRegressor(RegressorMixin, _LinearLearnerBase):  # type: ignore[misc]
    """Linear Learner as a regressor (squared loss unless ``loss`` says otherwise).

    Learned: ``coef_`` (d,), ``intercept_`` (float), ``n_features_in_``, ``feature_names_in_``,
    ``state_``, ``model_``, ``n_iter_``.
    """

    def __init__(
        self,
        *,
        epochs: int = 15,
        mini_batch_size: int = 1000,
        num_models: int | str = "auto",
        learning_rate: float | str = "auto",
        wd: float | str = "auto",
        l1: float | str = "auto",
        loss: str = "auto",
        optimizer: str = "auto",
        normalize_data: bool = True,
        normalize_label: bool | str = "auto",
        early_stopping_patience: int = 3,
        seed: int = 0,
    ) -> None:
        self.epochs = epochs
        self.mini_batch_size = mini_batch_size
        self.num_models = num_models
        self.learning_rate = learning_rate
        self.wd = wd
        self.l1 = l1
        self.loss = loss
        self.optimizer = optimizer
        self.normalize_data = normalize_data
        self.normalize_label = normalize_label
        self.early_stopping_patience = early_stopping_patience
        self.seed = seed

    def fit(self, X: Any, y: Any) -> LinearLearnerRegressor:
        """Train from scratch: ``epochs`` shuffled passes (fewer if early stopping ends it)."""
        X, y = validate_data(self, X, y, accept_sparse="csr", dtype=_DTYPES, y_numeric=True)
        self._train(X, y, self._algorithm("regressor", None), partial=False)
        return self

    def partial_fit(self, X: Any, y: Any) -> LinearLearnerRegressor:
        """One pass over these rows in their order, continuing training with the state's own
        hyperparameters."""
        first = not hasattr(self, "state_")
        X, y = validate_data(
            self, X, y, accept_sparse="csr", dtype=_DTYPES, y_numeric=True, reset=first
        )
        self._train(X, y, self._algorithm("regressor", None), partial=True)
        return self

    def _set_coef(self) -> None:
        super()._set_coef()
        self.coef_, self.intercept_ = self.coef_[0], float(self.model_.tensors["bias"][0])

    def predict(self, X: Any) -> np.ndarray:
        out: np.ndarray = self._raw(X)[:, 0]
        return out
