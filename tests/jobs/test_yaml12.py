"""YAML 1.2 core schema on PyYAML's C parser: each 1.1-vs-1.2 difference, the explicit tags,
and the limits on aliases, expansion and depth (each found before anything is built)."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from streamfit.errors import ConfigError
from streamfit.jobs import yaml12
from streamfit.jobs.settings import Settings
from streamfit.jobs.yaml12 import YAMLLimitError, describe, load, load_all


def test_the_c_parser_is_used_when_pyyaml_has_it() -> None:
    # The speed of large sweeps depends on it (pure Python is ~4x slower here).
    assert yaml.__with_libyaml__
    assert issubclass(yaml12._Loader, yaml.CSafeLoader)


@pytest.mark.parametrize(
    ("text", "yaml11", "yaml12_"),
    [
        ("on", True, "on"),
        ("off", False, "off"),
        ("yes", True, "yes"),
        ("No", False, "No"),
        ("y", "y", "y"),  # PyYAML never took y/n as booleans; 1.2 does not either
        ("012", 10, 12),  # octal in 1.1, decimal in 1.2
        ("0o17", "0o17", 15),  # 1.2's octal
        ("0b101", 5, "0b101"),  # no binary in the core schema
        ("1_000", 1000, "1_000"),
        ("1:30", 90, "1:30"),  # sexagesimal
        ("1e3", "1e3", 1000.0),  # 1.1 needs a dot
        ("2026-01-01", "date", "2026-01-01"),  # no implicit timestamps
        ("=", "error", "="),
        ("", None, None),
    ],
)
def test_scalars_resolve_by_the_core_schema_not_yaml_1_1(
    text: str, yaml11: Any, yaml12_: Any
) -> None:
    try:
        old: Any = yaml.safe_load(f"k: {text}")["k"]
        old = "date" if type(old).__name__ == "date" else old
    except yaml.YAMLError:
        old = "error"
    assert old == yaml11 and type(old) is type(yaml11)  # what PyYAML does (the bug)
    new = load(f"k: {text}")["k"]
    assert new == yaml12_ and type(new) is type(yaml12_)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("true", True),
        ("True", True),
        ("TRUE", True),
        ("false", False),
        ("FALSE", False),
        ("tRUE", "tRUE"),
        ("null", None),
        ("Null", None),
        ("NULL", None),
        ("~", None),
        ("nULL", "nULL"),
        ("-12", -12),
        ("+7", 7),
        ("0x1F", 31),
        ("-0x1F", "-0x1F"),  # no sign on hex or octal
        ("0o8", "0o8"),
        (".5", 0.5),
        ("-1.", -1.0),
        ("1E-3", 0.001),
        ("+.inf", math.inf),
        ("-.Inf", -math.inf),
        (".INF", math.inf),
        ("'1'", "1"),  # quoted: always text
        ('"true"', "true"),
        ("!!str 12", "12"),
        ("!!int 012", 12),
        ("!!float 1", 1.0),
    ],
)
def test_core_schema_forms(text: str, value: Any) -> None:
    got = load(f"k: {text}")["k"]
    assert got == value and type(got) is type(value)


def test_nan_and_merge_keys() -> None:
    assert math.isnan(load("k: .NaN")["k"])
    doc = load("base: &b {cpus: 1, gpus: 0}\njob: {<<: *b, cpus: 4}\nsign: <<")
    assert doc["job"] == {"cpus": 4, "gpus": 0} and doc["sign"] == "<<"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("k: !!bool yes", "'yes' is not a boolean"),
        ("k: !!int 0b1", "'0b1' is not an integer"),
        ("k: !!null x", "'x' is not null"),
        ("k: !!int [1]", "expected a scalar"),
        ("k: !!timestamp 2026-01-01", "could not determine a constructor"),
        ("k: !!python/object:os.system x", "could not determine a constructor"),
        ("k: !!binary aGk=", "could not determine a constructor"),
        ("k: !!set {a}", "could not determine a constructor"),
        ("k: " + "9" * 5000, "an integer too long"),
        ("a: 1\nb: 2\na: 3", "found duplicate key 'a' (line 3, column 1)"),
        ("k: *nowhere", "found undefined alias"),
    ],
)
def test_refused_forms_are_one_line_errors(text: str, message: str) -> None:
    with pytest.raises(yaml.YAMLError) as info:
        load(text)
    shown = describe(info.value)
    assert message in shown and "\n" not in shown


def test_a_duplicate_key_may_still_override_a_merged_one() -> None:
    doc = load("a: &a {x: 1, y: 2}\nb: &b {<<: *a, z: 3}\nc: {<<: *b, x: 9}")
    assert doc["c"] == {"x": 9, "y": 2, "z": 3}


def billion_laughs(levels: int, fanout: int = 10) -> str:
    lines = ["a0: &a0 [" + ", ".join(["lol"] * fanout) + "]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * fanout) + "]")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("levels", [9, 30])
def test_an_alias_bomb_is_refused_before_it_expands(levels: int) -> None:
    text = billion_laughs(levels)
    assert len(text) < 2500
    started = time.perf_counter()
    with pytest.raises(YAMLLimitError, match="aliases expand the document by more than 100,000"):
        load(text)
    assert time.perf_counter() - started < 1.0  # not a pass over the 10^30 strings it names


def test_aliases_are_counted() -> None:
    ok = "a: &a x\nb: [" + ", ".join(["*a"] * yaml12.MAX_ALIASES) + "]"
    assert len(load(ok)["b"]) == yaml12.MAX_ALIASES
    with pytest.raises(YAMLLimitError, match="more than 1,000 aliases"):
        load(ok.replace("[", "[*a, "))


def test_small_expansions_pass() -> None:
    # 9 levels of 3: 3^9 = 19,683 strings from aliases, within the 100,000 limit
    doc = load(billion_laughs(9, fanout=3))
    assert len(doc) == 9


def test_an_alias_inside_its_own_anchor_is_refused() -> None:
    with pytest.raises(YAMLLimitError, match="an alias inside its own anchor"):
        load("a: &a [1, *a]")
    with pytest.raises(YAMLLimitError, match="an alias inside its own anchor"):
        load("a: &a {k: {j: *a}}")


@pytest.mark.parametrize("text", ["- " * 65 + "x", "[" * 65 + "]" * 65, "{a: " * 65 + "}" * 65])
def test_nesting_is_limited_while_composing(text: str) -> None:
    with pytest.raises(YAMLLimitError, match="nested deeper than 64 levels"):
        load(text)
    assert load("- " * 63 + "x") is not None


def test_nesting_100000_deep_is_an_error_not_a_crash() -> None:
    for text in ("[" * 100_000 + "]" * 100_000, "- " * 100_000 + "x"):
        with pytest.raises(yaml.YAMLError):
            load(text)


def test_documents_are_checked_one_by_one() -> None:
    text = "a: 1\n---\n" + billion_laughs(9)
    documents = load_all(text)
    assert next(documents) == {"a": 1}
    with pytest.raises(YAMLLimitError):
        next(documents)
    with pytest.raises(yaml.YAMLError, match="expected one document"):
        load("a: 1\n---\nb: 2")
    assert load("") is None and load("# nothing") is None


def test_settings_read_yaml_1_2(tmp_path: Path) -> None:
    (tmp_path / "settings.yaml").write_text("smtp_host: on\nsmtp_starttls: true\n")
    settings = Settings.load(env={"STREAMFIT_HOME": str(tmp_path)})
    assert settings.smtp_host == "on" and settings.smtp_starttls is True  # 1.1: host True
    (tmp_path / "settings.yaml").write_text(billion_laughs(9))
    with pytest.raises(ConfigError, match="aliases expand"):
        Settings.load(env={"STREAMFIT_HOME": str(tmp_path)})


def test_nodes_are_counted_per_document(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(yaml12, "MAX_NODES", 1_000)  # the real one takes 300 MB to reach
    six_hundred = "[" + ", ".join(["0"] * 599) + "]"
    assert [len(d) for d in load_all(f"{six_hundred}\n---\n{six_hundred}")] == [599, 599]
    with pytest.raises(YAMLLimitError, match="more than 1,000 nodes in one document"):
        load("[" + ", ".join(["0"] * 1_000) + "]")
