"""The work ``Algorithm``'s templates share, checked once for every registered algorithm."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

from streamfit import (
    CSR,
    Batch,
    ConfigError,
    DataError,
    IncompatibleStateError,
    algorithm_names,
    get_algorithm,
)
from streamfit.core.algorithm import Algorithm
from streamfit.core.state import State, TrainerRecord

NAMES = algorithm_names()

#: Other values of fixed hyperparameters (as overrides: some need a companion to change).
OTHER_VALUES: dict[str, list[dict[str, Any]]] = {
    "predictor_type": [{"predictor_type": "regressor"}],
    "num_models": [{"num_models": 3}, {"num_models": 2}],
    "num_classes": [{"predictor_type": "multiclass_classifier", "num_classes": 3}],
    "optimizer": [{"optimizer": "sgd"}],
    "feature_dim": [{"feature_dim": 9}],
    "num_factors": [{"num_factors": 2}],
    "hash_features": [{"hash_features": True}],
    "averaging_batches": [{"averaging_batches": 10}],
    "algorithm_mode": [{"algorithm_mode": "regular"}, {"algorithm_mode": "randomized"}],
    "num_topics": [{"num_topics": 3}],
    "encoder_layers": [{"encoder_layers": [7]}],
    "encoder_layers_activation": [{"encoder_layers_activation": "tanh"}],
    "batch_norm": [{"batch_norm": False}],
    "time_freq": [{"time_freq": "M"}],
    "context_length": [{"context_length": 5}],
    "prediction_length": [{"prediction_length": 3}],
    "likelihood": [{"likelihood": "gaussian"}],
    "num_cells": [{"num_cells": 9}],
    "num_layers": [{"num_layers": 2}],
    "embedding_dimension": [{"embedding_dimension": 3}],
    "cardinality": [{"cardinality": [6]}],
    "num_dynamic_feat": [{"num_dynamic_feat": 1}],
}


def _algorithm(name: str, **overrides: Any) -> Algorithm[Any]:
    cls = get_algorithm(name)
    return cls({**cls.check_parameters.hyperparameters, **overrides})


def _width(algo: Algorithm[Any]) -> int:
    return algo.expected_features() or 8


#: Algorithms that read bags of words: their rows are counts (>= 0).
BAG_OF_WORDS = frozenset({"ntm"})


def _batch(n: int, width: int, seed: int = 0, counts: bool = False) -> Batch:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, width, generator=g)
    x = x.abs() if counts else x
    return Batch(x, (x[:, 0] > 0).float(), end_position=n)


def _trained(algo: Algorithm[Any], seed: int = 0) -> State:
    state = algo.init_state(_width(algo))
    for i in range(3):
        counts = algo.name in BAG_OF_WORDS
        algo.update(state, _batch(200, state.n_features, seed=10 * seed + i, counts=counts))
    return state


@pytest.mark.parametrize("name", NAMES)
def test_a_batch_of_another_width_is_a_data_error(name: str) -> None:
    algo = _algorithm(name)
    state = algo.init_state(_width(algo))
    wide = state.n_features + 1
    dense = _batch(4, wide)
    sparse = Batch(CSR.from_dense(dense.dense_features()), dense.labels)
    for batch in (dense, sparse):
        with pytest.raises(DataError, match=f"rows of {wide} features, the state has"):
            algo.update(state, batch)


@pytest.mark.parametrize("name", NAMES)
def test_an_empty_batch_trains_nothing(name: str) -> None:
    algo = _algorithm(name)
    state = _trained(algo)
    before = state.clone()
    # No labels: a supervised algorithm's own update would refuse the batch.
    assert math.isnan(algo.update(state, Batch(torch.zeros(0, state.n_features))))
    for key, value in before.tensors.items():
        assert torch.equal(value, state.tensors[key]), key
    assert state.meta == before.meta
    assert torch.equal(state.generator.get_state(), before.generator.get_state())


@pytest.mark.parametrize("name", NAMES)
def test_every_operation_refuses_another_algorithms_state(name: str) -> None:
    algo = _algorithm(name)
    other = next(n for n in NAMES if n != name)
    foreign = _trained(_algorithm(other))
    own = algo.init_state(foreign.n_features) if algo.expected_features() is None else None
    calls = [
        lambda: algo.update(foreign, _batch(4, foreign.n_features)),
        lambda: algo.finalize(foreign),
        lambda: algo.adopt(foreign),
    ]
    if own is not None:
        calls += [lambda: algo.merge(own, foreign), lambda: algo.merge(foreign, own)]
    for call in calls:
        with pytest.raises(IncompatibleStateError, match=f"state of algorithm '{other}'"):
            call()


@pytest.mark.parametrize("name", NAMES)
def test_finalize_takes_only_post_training_hyperparameters(name: str) -> None:
    algo = _algorithm(name)
    state = _trained(algo)
    with pytest.raises(ConfigError, match="'mini_batch_size' cannot change after training"):
        algo.finalize(state, mini_batch_size=10)


@pytest.mark.parametrize("name", NAMES)
def test_merge_adds_the_counters_and_the_trainers_counts(name: str) -> None:
    algo = _algorithm(name)
    a, b = _trained(algo, seed=1), _trained(algo, seed=2)
    a.counters = {"x": 1.0}
    b.counters = {"x": 2.0, "y": 5.0}
    a.trainer = TrainerRecord(rows=600, bad_rows=1, batches=3)
    b.trainer = TrainerRecord(rows=500, bad_rows=0, batches=2)
    merged = algo.merge(a, b)
    assert merged.counters == {"x": 3.0, "y": 5.0}
    assert merged.trainer == TrainerRecord(rows=1100, bad_rows=1, batches=5)
    assert a.counters == {"x": 1.0} and a.trainer.rows == 600  # the inputs are left alone


@pytest.mark.parametrize("name", NAMES)
def test_algorithms_do_not_read_the_trainers_record(name: str) -> None:
    """What the trainer counts is the trainer's: merge and finalize keep counts of their own."""
    algo = _algorithm(name)
    a, b = _trained(algo, seed=1), _trained(algo, seed=2)
    plain = algo.merge(a, b)
    a.trainer = TrainerRecord(rows=10**9, batches=10**6, stopped_early=True)
    skewed = algo.merge(a, b)
    for key, value in plain.tensors.items():
        assert torch.equal(value, skewed.tensors[key]), key
    assert plain.meta == skewed.meta
    before, after = algo.finalize(plain), algo.finalize(skewed)
    assert before.meta == after.meta
    for key, value in before.tensors.items():
        assert torch.equal(value, after.tensors[key]), key


@pytest.mark.parametrize("name", NAMES)
def test_merge_refuses_states_of_other_widths(name: str) -> None:
    algo = _algorithm(name)
    if algo.expected_features() is not None:
        pytest.skip("feature_dim fixes the width (see the fixed hyperparameters' test)")
    with pytest.raises(IncompatibleStateError, match="cannot merge states of 8 and 9 features"):
        algo.merge(algo.init_state(8), algo.init_state(9))


@pytest.mark.parametrize("name", NAMES)
def test_adopt_refuses_a_feature_dim_other_than_the_states_width(name: str) -> None:
    if "feature_dim" not in get_algorithm(name).hyperparameters_class.model_fields:
        pytest.skip("no feature_dim: the other hyperparameters fix the width (windows)")
    algo = _algorithm(name)
    state = _trained(algo)
    wider = _algorithm(name, feature_dim=state.n_features + 1)
    with pytest.raises(IncompatibleStateError, match=f"feature_dim={state.n_features + 1}"):
        wider.adopt(state)


def _other(name: str, fixed: str) -> Algorithm[Any]:
    """The algorithm under another value of the fixed hyperparameter ``fixed``."""
    algo = _algorithm(name)
    for overrides in OTHER_VALUES[fixed]:
        other = _algorithm(name, **overrides)
        if other.fixed_settings(other.hp) != algo.fixed_settings(algo.hp):
            return other
    raise AssertionError(f"{name}: no value in OTHER_VALUES changes {fixed}")


@pytest.mark.parametrize("name", NAMES)
def test_fixed_hyperparameters_are_refused_by_adopt_and_merge(name: str) -> None:
    algo = _algorithm(name)
    assert algo.fixed_hyperparameters <= OTHER_VALUES.keys(), "add other values to OTHER_VALUES"
    state = _trained(algo)
    for fixed in sorted(algo.fixed_hyperparameters):
        other = _other(name, fixed)
        with pytest.raises(IncompatibleStateError, match=fixed):
            other.adopt(state)
        theirs = other.init_state(_width(other))
        for a, b in ((state, theirs), (theirs, state)):
            with pytest.raises(IncompatibleStateError, match=f"{fixed}=.* cannot be merged"):
                algo.merge(a, b)
    algo.adopt(state)  # the same values: fine
    assert state.hyperparameters == algo.hp.as_dict()
