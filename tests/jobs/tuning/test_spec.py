"""Tuning specs: ranges as SageMaker's ParameterRanges, and errors that name the file, the
tuning job and the field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from streamfit.jobs.errors import SpecError
from streamfit.jobs.tuning.spec import Range, TuningSpec, load_tuning_spec


def _raw(**kw: Any) -> dict[str, Any]:
    return {
        "name": "sweep",
        "owner": "a@example.com",
        "algorithm": "linear-learner",
        "hyperparameters": {"predictor_type": "binary_classifier"},
        "inputs": {"train": "train.parquet"},
        "search": {"learning_rate": {"continuous": [1e-4, 1e-1], "scaling": "log"}},
        "objective": {"metric": "validation:roc_auc_score"},
        "max_jobs": 10,
        **kw,
    }


def test_a_spec_splits_into_the_fixed_job_and_the_search(tmp_path: Path) -> None:
    path = tmp_path / "sweep.json"
    path.write_text(json.dumps(_raw(max_parallel_jobs=3, seed=7, warm_start=[1])))
    spec = load_tuning_spec(path)
    assert spec.job.algorithm == "linear-learner" and spec.job.workdir == str(tmp_path)
    assert (spec.strategy, spec.max_parallel_jobs, spec.seed, spec.warm_start) == (
        "bayesian",
        3,
        7,
        [1],
    )
    assert spec.objective.direction == "maximize" and spec.early_stopping == "off"
    trial = spec.trial_job({"learning_rate": 0.01}, "sweep-0", {"tuning": "1", "trial": "0"})
    assert trial.hyperparameters == {"predictor_type": "binary_classifier", "learning_rate": 0.01}
    assert trial.tags == {"tuning": "1", "trial": "0"} and trial.notify.on == []
    assert trial.workdir == str(tmp_path)


def test_a_command_trial_gets_its_hyperparameters_as_variables() -> None:
    raw = _raw(command=["python", "train.py"], inputs={}, hyperparameters={})
    del raw["algorithm"]
    spec = TuningSpec.from_raw({**raw, "search": {"drop-out": {"categorical": [0.1]}}}, "s.yaml")
    trial = spec.trial_job({"drop-out": 0.1}, "t", {})
    assert trial.env == {"STREAMFIT_HP_DROP_OUT": "0.1"}


@pytest.mark.parametrize(
    ("change", "field", "says"),
    [
        ({"max_jobs": 0}, "max_jobs", "greater than or equal to 1"),
        ({"max_parallel_jobs": "many"}, "max_parallel_jobs", "integer"),
        ({"strategy": "annealing"}, "strategy", "'random', 'grid', 'bayesian' or 'hyperband'"),
        ({"objective": {"direction": "up"}}, "objective.metric", "Field required"),
        ({"search": {}}, "search", "at least 1 item"),
        ({"search": {"lr": {"integer": [5, 1]}}}, "search.lr", "not a range"),
        ({"search": {"lr": {"continuous": [0, 1], "scaling": "log"}}}, "search.lr", "above 0"),
        ({"search": {"lr": {"integer": [1, 2], "continuous": [1, 2]}}}, "search.lr", "exactly one"),
        ({"search": {"lr": {"categorical": ["a", "a"]}}}, "search.lr", "repeat"),
        ({"search": {"lr": {"categorical": ["a"], "scaling": "log"}}}, "search.lr", "scaling"),
        ({"search": {"lr": {"linear": [1, 2]}}}, "search.lr.linear", "Extra inputs"),
        ({"strategy": "grid"}, "spec", "give steps to the continuous ranges learning_rate"),
        ({"strategy": "hyperband", "hyperparameters": {"epochs": 2}}, "spec", "the rungs set it"),
        ({"early_stopping": "auto", "resource": {"min": 5, "max": 2}}, "resource", "above max"),
        (
            {"strategy": "hyperband", "resource": {"reduction_factor": 1}},
            "resource.reduction_factor",
            "greater than or equal to 2",
        ),
        ({"inputs": {}}, "spec", "needs inputs.train"),  # the fixed part: the job's own checks
        ({"owner": "nobody"}, "owner", "not an email address"),
        (
            {"search": {"predictor_type": {"categorical": ["regressor"]}}},
            "spec",
            "both fixed and searched: predictor_type",
        ),
    ],
)
def test_errors_name_the_file_the_tuning_job_and_the_field(
    change: dict[str, Any], field: str, says: str
) -> None:
    with pytest.raises(SpecError) as info:
        TuningSpec.from_raw(_raw(**change), "sweeps/lr.yaml")
    text = str(info.value)
    assert text.startswith(f"sweeps/lr.yaml, tuning job ('sweep'): {field}: "), text
    assert says in text


def test_the_algorithm_must_accept_every_searched_name() -> None:
    with pytest.raises(SpecError, match=r"sweep.yaml, tuning job \('sweep'\): .*no_such"):
        TuningSpec.from_raw(_raw(search={"no_such": {"integer": [1, 2]}}), "sweep.yaml")


def test_a_file_holds_one_tuning_spec(tmp_path: Path) -> None:
    path = tmp_path / "two.yaml"
    path.write_text("name: a\n---\nname: b\n")
    with pytest.raises(SpecError, match="2 specs: a tuning spec file holds one"):
        load_tuning_spec(path)
    with pytest.raises(SpecError, match="no such file"):
        load_tuning_spec(tmp_path / "missing.yaml")
    (tmp_path / "list.json").write_text("[1]")
    with pytest.raises(SpecError, match="a tuning spec is a mapping"):
        load_tuning_spec(tmp_path / "list.json")


def test_grids_and_budgets() -> None:
    assert Range(integer=(1, 4), scaling="log").grid() == [1, 2, 3, 4]
    assert Range(continuous=(0.0, 1.0), steps=3).grid() == [0.0, 0.5, 1.0]
    grid = _raw(
        strategy="grid",
        max_jobs=100,
        search={
            "learning_rate": {"continuous": [0.001, 0.1], "scaling": "log", "steps": 3},
            "mini_batch_size": {"categorical": [10, 100]},
        },
    )
    spec = TuningSpec.from_raw(grid, "g.yaml")
    assert (spec.grid_size(), spec.trial_budget()) == (6, 6)
    small = TuningSpec.from_raw({**grid, "max_jobs": 4}, "g.yaml")
    assert small.trial_budget() == 4
    assert TuningSpec.from_raw(_raw(), "r.yaml").grid_size() is None


def test_multi_fidelity_needs_a_built_in_and_its_rungs_set_the_resource() -> None:
    spec = TuningSpec.from_raw(_raw(strategy="hyperband", resource={"min": 1, "max": 9}), "hb.yaml")
    assert spec.multi_fidelity and spec.resource.levels() == [1, 3, 9]
    assert TuningSpec.from_raw(_raw(early_stopping="auto"), "a.yaml").multi_fidelity
    assert not TuningSpec.from_raw(_raw(), "b.yaml").multi_fidelity
    raw = _raw(command=["python", "train.py"], inputs={}, hyperparameters={})
    del raw["algorithm"]
    with pytest.raises(SpecError, match="needs a built-in algorithm"):
        TuningSpec.from_raw({**raw, "strategy": "hyperband"}, "c.yaml")
