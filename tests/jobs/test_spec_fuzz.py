"""Random and mutated spec files, through real files into ``load_specs`` and as objects into
``parse_specs``: the result is a list of specs or a SpecError/ConfigError, with a message of
one printable line, never any other exception, and never slow (Hypothesis' deadlines)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import streamfit.core.registry  # noqa: F401 - torch loads once here, not in a timed example
from streamfit.errors import ConfigError
from streamfit.jobs import yaml12
from streamfit.jobs.spec import JobSpec, load_specs, parse_specs
from streamfit.text import control_character

FUZZ = settings(
    max_examples=150,
    deadline=1000,  # ms per example: a loader that hangs or goes quadratic fails here
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

VALID: dict[str, Any] = {
    "name": "ctr-lr-0.01",
    "owner": "alice@example.com",
    "algorithm": "linear-learner",
    "hyperparameters": {"predictor_type": "binary_classifier", "learning_rate": 0.01},
    "inputs": {"train": "data/train.parquet"},
    "resources": {"cpus": 1, "gpus": 0, "memory_mb": 2048},
    "retry": {"algorithm": 2, "backoff_seconds": 30},
    "notify": {"on": ["completed", "failed"], "email": ["alice@example.com"]},
    "tags": {"project": "ctr"},
    "priority": 3,
}
VALID_YAML = (
    yaml.safe_dump(VALID, sort_keys=False)
    + "---\n"
    + yaml.safe_dump({"name": "cmd", "owner": "b@example.com", "command": ["python", "-c", "pass"]})
)

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=30)
    | st.sampled_from(["on", "no", "~", "0o17", ".inf", "2026-01-01", "<<", "*a", "&a", "!!int"])
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=40,
)
# Characters that mean something to YAML or JSON, control characters, and a little text.
SYNTAX = "[]{}:,-?&*!|>'\"#%@`~\\\n\t =<.0123456789"
yaml_alphabet = st.sampled_from(
    [*SYNTAX, "\x00", "\x1b", "\x85", "\u2028", "\ufeff"]
) | st.characters(codec="utf-8")


def _outcome(load: Callable[[], list[JobSpec]]) -> None:
    """The one acceptable pair of outcomes: specs, or a clear one-line error."""
    try:
        specs = load()
    except ConfigError as exc:  # SpecError is one
        message = str(exc)
        assert message and len(message) < 2_000, message[:300]
        assert control_character(message) is None, message[:300]
        return
    assert all(isinstance(s, JobSpec) for s in specs)  # none at all: parse_specs([])


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def _file(folder: Path, suffix: str, content: str | bytes) -> Path:
    path = folder / f"spec{suffix}"
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8", errors="surrogatepass")
    else:
        path.write_bytes(content)
    return path


@FUZZ
@given(
    text=st.text(yaml_alphabet, max_size=300), suffix=st.sampled_from([".yaml", ".json", ".jsonl"])
)
def test_random_text(folder: Path, text: str, suffix: str) -> None:
    _outcome(lambda: load_specs([_file(folder, suffix, text)]))


@FUZZ
@given(data=st.binary(max_size=200), suffix=st.sampled_from([".yaml", ".json", ".jsonl"]))
def test_random_bytes(folder: Path, data: bytes, suffix: str) -> None:
    _outcome(lambda: load_specs([_file(folder, suffix, data)]))


@FUZZ
@given(value=json_values, style=st.sampled_from(["yaml", "flow", "json", "jsonl"]))
def test_random_documents(folder: Path, value: Any, style: str) -> None:
    if style == "yaml":
        path = _file(folder, ".yaml", yaml.safe_dump(value, allow_unicode=True))
    elif style == "flow":
        path = _file(folder, ".yml", yaml.safe_dump(value, default_flow_style=True))
    elif style == "json":
        path = _file(folder, ".json", json.dumps(value, ensure_ascii=False))
    else:
        items = value if isinstance(value, list) else [value]
        path = _file(folder, ".jsonl", "\n".join(json.dumps(v) for v in items))
    _outcome(lambda: load_specs([path]))
    _outcome(lambda: parse_specs(value if isinstance(value, list) else [value], "api"))


@FUZZ
@given(
    edits=st.lists(
        st.tuples(
            st.integers(0, len(VALID_YAML)), st.integers(0, 3), st.text(yaml_alphabet, max_size=4)
        ),
        min_size=1,
        max_size=6,
    ),
    suffix=st.sampled_from([".yaml", ".json"]),
)
def test_mutated_valid_files(folder: Path, edits: list[tuple[int, int, str]], suffix: str) -> None:
    text = VALID_YAML if suffix == ".yaml" else json.dumps([VALID, VALID])
    for at, cut, insert in edits:  # replace `cut` characters at `at` with `insert`
        text = text[:at] + insert + text[at + cut :]
    _outcome(lambda: load_specs([_file(folder, suffix, text)]))


@FUZZ
@given(
    changes=st.dictionaries(
        st.sampled_from([*JobSpec.model_fields, "colour"]) | st.text(max_size=8),
        json_values,
        max_size=4,
    ),
    drop=st.sets(st.sampled_from(sorted(VALID)), max_size=3),
)
def test_mutated_valid_specs(changes: dict[str, Any], drop: set[str]) -> None:
    raw = {k: v for k, v in {**VALID, **changes}.items() if k not in drop}
    _outcome(lambda: parse_specs([raw], "api"))


@FUZZ
@given(
    text=st.lists(
        st.sampled_from([*"ab *&[]{},:-\n?'\"#|/.!", "x*", "&a ", "*a", "- "]), max_size=40
    ).map("".join)
)
def test_files_skipped_by_the_alias_walk_hold_no_alias(text: str) -> None:
    # The walk that counts aliases is skipped on text without a "*" that can start one.
    if yaml12._ALIAS.search(text) is not None:
        return
    try:
        events = list(yaml.parse(text, Loader=yaml.CSafeLoader))
    except yaml.YAMLError:
        return
    assert not any(isinstance(e, yaml.AliasEvent) for e in events)
