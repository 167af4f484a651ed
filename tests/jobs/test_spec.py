"""Job specs: defaults, the kinds of job, and errors that name the file, job and field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from streamfit.jobs.errors import SpecError
from streamfit.jobs.spec import JobSpec, load_specs

BUILTIN = {
    "name": "ctr-lr-0.01",
    "owner": "alice@example.com",
    "algorithm": "linear-learner",
    "hyperparameters": {"predictor_type": "binary_classifier", "learning_rate": 0.01},
    "inputs": {"train": "data/train.parquet", "validation": "data/validation.parquet"},
    "resources": {"cpus": 1, "gpus": 0, "memory_mb": 2048},
    "max_runtime_seconds": 3600,
    "retry": {"algorithm": 2, "infrastructure": 5, "backoff_seconds": 30},
    "notify": {"on": ["completed", "failed"], "email": ["alice@example.com"], "digest": False},
    "tags": {"project": "ctr", "sweep": "lr"},
    "priority": 3,
}


def test_the_documented_example_parses() -> None:
    spec = JobSpec.model_validate(BUILTIN)
    assert spec.kind == "builtin" and spec.priority == 3
    assert spec.notify.on == ["completed", "failed"]
    command = JobSpec(name="x", owner="b@example.com", command=["python", "train.py"])
    assert command.kind == "command" and command.retry.infrastructure == 5


@pytest.mark.parametrize("suffix", [".yaml", ".json", ".jsonl"])
def test_files_of_every_kind_load(tmp_path: Path, suffix: str) -> None:
    jobs = [dict(BUILTIN, name=f"job-{i}") for i in range(3)]
    path = tmp_path / f"jobs{suffix}"
    if suffix == ".yaml":
        path.write_text(yaml.safe_dump_all(jobs))
    elif suffix == ".json":
        path.write_text(json.dumps(jobs))
    else:
        path.write_text("\n".join(json.dumps(j) for j in jobs) + "\n")
    assert [s.name for s in load_specs([path])] == ["job-0", "job-1", "job-2"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"owner": "nobody"}, "job 2 ('bad'): owner: 'nobody' is not an email address"),
        ({"command": ["x"]}, "give exactly one of 'algorithm'"),
        ({"inputs": {}}, "needs inputs.train"),
        (
            {"hyperparameters": {"predictor_type": "binary_classifier", "learning_rate": "fast"}},
            "hyperparameter 'learning_rate'='fast'",
        ),
        ({"algorithm": "nope"}, "unknown algorithm 'nope'"),
        ({"resources": {"cpus": 0}}, "resources.cpus"),
        ({"notify": {"webhook": "ftp://x"}}, "notify.webhook"),
        ({"colour": "red"}, "colour: Extra inputs are not permitted"),
    ],
)
def test_an_invalid_job_is_named_with_its_file_and_field(
    tmp_path: Path, change: dict[str, object], message: str
) -> None:
    jobs = [BUILTIN, {**BUILTIN, "name": "bad", **change}]
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump_all(jobs))
    with pytest.raises(SpecError) as info:
        load_specs([path])
    assert str(path) in str(info.value)
    assert message in str(info.value)


def test_broken_files_are_named(tmp_path: Path) -> None:
    bad = tmp_path / "x.jsonl"
    bad.write_text(json.dumps(BUILTIN) + "\n{oops\n")
    with pytest.raises(SpecError, match=r"x\.jsonl, line 2: not valid JSON"):
        load_specs([bad])
    with pytest.raises(SpecError, match="no such file"):
        load_specs([tmp_path / "missing.yaml"])
