"""Job specs: defaults, the kinds of job, and errors that name the file, job and field; YAML
1.2, the limits on aliases, sizes and nesting, and control characters."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from streamfit.jobs.errors import SpecError
from streamfit.jobs.spec import MAX_FILE_BYTES, JobSpec, Resources, load_specs, parse_specs

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


# -- YAML 1.2 -----------------------------------------------------------------------------------

README = Path(__file__).parents[2] / "README.md"


def readme_spec() -> str:
    """The YAML block under "A job spec" in the README, as written there."""
    text = README.read_text()
    found = re.search(r"A job spec .*?\n```yaml\n(.*?)```", text, re.DOTALL)
    assert found is not None, "the README has no job spec block"
    return found[1]


def test_the_readme_spec_loads_and_validates(tmp_path: Path) -> None:
    block = readme_spec()
    assert "notify: {on: [completed, failed, stopped]" in block
    assert True in next(yaml.safe_load_all(block))["notify"]  # YAML 1.1 read `on:` as true
    path = tmp_path / "spec.yaml"
    path.write_text(block)
    spec, second = load_specs([path])
    assert second.name == "ctr-lr-0.1"
    assert spec.workdir == str(tmp_path)  # a file's jobs run in its folder
    assert spec.notify.on == ["completed", "failed", "stopped"]
    assert spec.name == "ctr-lr-0.01" and spec.algorithm == "linear-learner"
    assert spec.hyperparameters["num_models"] == 32 and spec.notify.webhook is None


def test_words_yaml_1_1_took_for_booleans_stay_text(tmp_path: Path) -> None:
    path = tmp_path / "jobs.yaml"
    path.write_text(
        "name: no\nowner: a@example.com\ncommand: [echo, yes, on, off, n, y]\n"
        "tags: {debug: off, review: yes}\nenv: {COLOR: on}\n"
        "notify: {on: [failed], console: true}\n"
    )
    (spec,) = load_specs([path])
    assert spec.name == "no"
    assert spec.command == ["echo", "yes", "on", "off", "n", "y"]
    assert spec.tags == {"debug": "off", "review": "yes"} and spec.env == {"COLOR": "on"}
    assert spec.notify.on == ["failed"] and spec.notify.console is True


def test_yaml_numbers_are_read_as_1_2_defines_them(tmp_path: Path) -> None:
    path = tmp_path / "jobs.yaml"
    path.write_text(
        "name: n\nowner: a@example.com\ncommand: [x]\npriority: 012\n"
        "hyperparameters: {a: 1e3, b: .inf, c: 0x10, d: 0o10, e: ~, f: 2026-01-01}\n"
    )
    (spec,) = load_specs([path])
    assert spec.priority == 12  # YAML 1.1: 10 (octal)
    hp = spec.hyperparameters
    assert hp["a"] == 1000.0 and hp["b"] == float("inf") and (hp["c"], hp["d"]) == (16, 8)
    assert hp["e"] is None and hp["f"] == "2026-01-01"


# -- limits -------------------------------------------------------------------------------------

COMMAND = {"name": "x", "owner": "a@example.com", "command": ["true"]}


def _refused(tmp_path: Path, doc: object, suffix: str = ".json") -> str:
    path = tmp_path / f"spec{suffix}"
    path.write_text(json.dumps(doc))
    with pytest.raises(SpecError) as info:
        load_specs([path])
    message = str(info.value)
    assert message.startswith(str(path))
    return message


def billion_laughs(levels: int) -> str:
    lines = ["name: lol", "owner: a@example.com", "command: [true]", "hyperparameters:"]
    lines.append("  a0: &a0 [" + ", ".join(["lol"] * 10) + "]")
    for i in range(1, levels):
        lines.append(f"  a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("levels", [9, 40])
def test_an_alias_bomb_is_refused_naming_the_file(tmp_path: Path, levels: int) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(billion_laughs(levels))
    assert path.stat().st_size < 4096  # 9 levels: stored as 39 MB before
    started = time.perf_counter()
    with pytest.raises(SpecError, match=r"bomb\.yaml: refused: aliases expand the document"):
        load_specs([path])
    assert time.perf_counter() - started < 1.0


@pytest.mark.parametrize(
    ("suffix", "text"),
    [
        (".json", "[" * 100_000 + "]" * 100_000),
        (".json", '{"a":' * 100_000 + "1" + "}" * 100_000),
        (".jsonl", json.dumps(COMMAND) + "\n" + "[" * 100_000 + "]" * 100_000),
        (".yaml", "[" * 100_000 + "]" * 100_000),
        (".yaml", "- " * 100_000 + "x"),
        (".yaml", "".join(" " * i + "a:\n" for i in range(2_000))),
    ],
)
def test_nesting_100000_deep_is_a_spec_error(tmp_path: Path, suffix: str, text: str) -> None:
    path = tmp_path / f"deep{suffix}"
    path.write_text(text)
    with pytest.raises(SpecError, match=r"deep\.\w+(, line 2)?: (not valid|refused)"):
        load_specs([path])


def test_a_deep_value_given_as_python_is_a_spec_error() -> None:
    deep: list[object] = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(SpecError, match=r"hyperparameters: 'w': nested deeper than 8"):
        parse_specs([{**COMMAND, "hyperparameters": {"w": deep}}], "api")
    # A text the algorithm's hyperparameters read as JSON ("[0.1, 0.9]"), nested past the stack
    layers = {**BUILTIN, "hyperparameters": {"predictor_type": "[" * 4_000}}
    with pytest.raises(SpecError, match=r"'predictor_type'='\[\[\[.*\.\.\. \(4,002 characters\)"):
        parse_specs([layers], "api")


def test_a_value_shared_a_billion_times_costs_no_more_than_the_limits() -> None:
    shared: list[object] = ["lol"] * 10
    for _ in range(7):  # 10^8 strings, 8 levels deep
        shared = [shared] * 10
    started = time.perf_counter()
    with pytest.raises(SpecError, match="more than 10,000 values"):
        parse_specs([{**COMMAND, "hyperparameters": {"w": shared}}], "api")
    assert time.perf_counter() - started < 1.0


def test_a_megabyte_name_is_not_echoed_whole(tmp_path: Path) -> None:
    message = _refused(tmp_path, {**COMMAND, "name": "n" * 1_000_000})
    assert "n" * 60 + "... (1,000,000 characters)" in message
    assert "name: String should have at most 200 characters" in message
    assert len(message) < 300
    for doc in (
        {**COMMAND, "owner": "o" * 1_000_000},
        {**COMMAND, "k" * 1_000_000: 1},
        {**COMMAND, "tags": {"t" * 1_000_000: "v"}},
        {**COMMAND, "notify": {"email": ["e" * 1_000_000]}},
        {**COMMAND, "hyperparameters": {"h" * 1_000_000: 1}},
        {**COMMAND, "env_from": {"E" * 1_000_000: "secret:x"}},
    ):
        assert len(_refused(tmp_path, doc)) < 500


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"owner": "a" * 250 + "@x.io"}, "owner: String should have at most 254 characters"),
        ({"tags": {"k" * 101: "v"}}, "at most 100 characters"),
        ({"tags": {"k": "v" * 201}}, "tags.k: String should have at most 200 characters"),
        ({"tags": {str(i): "v" for i in range(51)}}, "tags: Dictionary should have at most 50"),
        ({"hyperparameters": {"h" * 101: 1}}, "at most 100 characters"),
        ({"hyperparameters": {str(i): 1 for i in range(201)}}, "at most 200 items"),
        ({"hyperparameters": {"h": "x" * 4097}}, "'h': a text of 4,097 characters"),
        ({"hyperparameters": {"h": list(range(10_001))}}, "more than 10,000 values"),
        ({"command": ["x"] * 4097}, "command: List should have at most 4096 items"),
        ({"command": ["x" * 65_537]}, "command.0: String should have at most 65536"),
        ({"env": {str(i): "v" for i in range(257)}}, "env: Dictionary should have at most 256"),
        ({"env": {"A": "v" * 65_537}}, "env.A: String should have at most 65536"),
        ({"env": {"A=B": "v"}}, "'=' is not allowed in a variable's name"),
        ({"env": {"": "v"}}, "at least 1 character"),
        ({"inputs": {str(i): "p" for i in range(33)}}, "inputs: Dictionary should have at most 32"),
        ({"inputs": {"train": "p" * 4097}}, "inputs.train: String should have at most 4096"),
        ({"workdir": "w" * 4097}, "workdir: String should have at most 4096"),
        ({"device": "d" * 101}, "device: String should have at most 100"),
        ({"notify": {"webhook": "https://" + "w" * 2041}}, "at most 2048 characters"),
        ({"notify": {"email": ["a@b.c"] * 51}}, "notify.email: List should have at most 50"),
    ],
)
def test_fields_are_limited(tmp_path: Path, change: dict[str, object], message: str) -> None:
    assert message in _refused(tmp_path, {**COMMAND, **change})


def test_hyperparameters_are_json_like() -> None:
    for value, message in (({"a": {1.5: 2}}, "a key of type float"), ({1, 2}, "type set")):
        with pytest.raises(SpecError, match=message):
            parse_specs([{**COMMAND, "hyperparameters": {"h": value}}], "api")


def test_the_whole_spec_is_limited_as_json(tmp_path: Path) -> None:
    fits = {**COMMAND, "command": ["x" * 60_000] * 4}
    assert load_specs([_write(tmp_path / "ok.json", fits)])[0].command == fits["command"]
    message = _refused(tmp_path, {**COMMAND, "command": ["x" * 60_000] * 5})
    assert "spec: the spec is 300,3" in message and "bytes as JSON: at most 256 KiB" in message
    with pytest.raises(ValidationError, match="at most 256 KiB"):
        JobSpec.model_validate({**COMMAND, "env": {f"V{i}": "x" * 60_000 for i in range(5)}})


def _write(path: Path, doc: object) -> Path:
    path.write_text(json.dumps(doc))
    return path


def test_spec_files_are_refused_past_64_mib_before_reading(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    with big.open("wb") as f:
        f.truncate(MAX_FILE_BYTES + 1)  # sparse: reading it whole would take 64 MiB
    started = time.perf_counter()
    with pytest.raises(SpecError, match=r"big\.yaml: 67,108,865 bytes \(a spec file holds"):
        load_specs([big])
    assert time.perf_counter() - started < 0.05
    with pytest.raises(SpecError, match=r"/dev/zero: over 64 MiB \(a spec file holds at most"):
        load_specs(["/dev/zero"])  # a stream without end: read up to the limit, no further


def test_unreadable_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="a folder, not a spec file"):
        load_specs([tmp_path])
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(b"name: caf\xe9\n")
    with pytest.raises(SpecError, match=r"latin\.yaml: not UTF-8 text \(byte 9\)"):
        load_specs([latin])
    bom = tmp_path / "bom.json"
    bom.write_bytes(b"\xef\xbb\xbf" + json.dumps(COMMAND).encode())
    assert load_specs([bom])[0].name == "x"
    numbers = tmp_path / "n.json"
    numbers.write_text('{"priority": ' + "9" * 5000 + "}")
    with pytest.raises(SpecError, match=r"n\.json: not valid JSON \(a number too long\)"):
        load_specs([numbers])


# -- control characters ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"name": "red\x1b[31m"}, r"name: a control character (\x1b) is not allowed"),
        ({"name": "two\nlines"}, r"name: a control character (\n) is not allowed"),
        ({"name": "tab\there"}, r"name: a control character (\t) is not allowed"),
        ({"name": "del\x7f"}, r"(\x7f)"),
        ({"name": "c1\x9b31m"}, r"(\x9b)"),
        ({"name": "evil\u202egnp.exe"}, r"(\u202e)"),
        ({"name": "line\u2028sep"}, r"(\u2028)"),
        ({"owner": "a\x07@example.com"}, r"owner: a control character (\x07)"),
        ({"tags": {"k": "v\x1b"}}, r"tags.k: a control character (\x1b)"),
        ({"tags": {"k\x00": "v"}}, r"tags.k\x00.[key]: a control character (\x00)"),
        ({"workdir": "/tmp/\x1b"}, r"workdir: a control character (\x1b)"),
        ({"command": ["echo", "\x1b]0;title\x07"]}, r"command.1: a control character (\x1b)"),
        ({"command": ["echo", "a\rb"]}, r"(\r) is not allowed (tabs and newlines are)"),
        ({"env": {"A": "\x00"}}, r"env.A: a control character (\x00)"),
        ({"hyperparameters": {"h": ["\x1b"]}}, r"'h': a control character (\x1b) in a text"),
        ({"hyperparameters": {"h\x1b": 1}}, r"a control character (\x1b) is not allowed"),
        ({"notify": {"email": ["a@b\x1b.c"]}}, r"notify.email.0: a control character (\x1b)"),
    ],
)
def test_control_characters_are_refused(
    tmp_path: Path, change: dict[str, object], message: str
) -> None:
    refused = _refused(tmp_path, {**COMMAND, **change})
    assert message in refused
    assert not any(c in refused for c in "\x00\x07\x1b\x7f\x9b\r\u202e\u2028")


def test_free_text_may_hold_tabs_and_newlines() -> None:
    script = "import sys\nfor line in sys.stdin:\n\tprint(line)\n"
    (spec,) = parse_specs(
        [
            {
                **COMMAND,
                "command": ["python", "-c", script],
                "env": {"CERT": "-----BEGIN-----\nabc\n-----END-----\n"},
                "hyperparameters": {"note": "a\tb\nc"},
            }
        ],
        "api",
    )
    assert spec.command is not None and spec.command[2] == script


def test_json_lines_split_only_at_newlines(tmp_path: Path) -> None:
    path = tmp_path / "jobs.jsonl"
    line = json.dumps({**COMMAND, "name": "a\u2028b"}, ensure_ascii=False)
    path.write_text(json.dumps(COMMAND) + "\r\n" + line + "\n")
    with pytest.raises(SpecError, match=r"job 2 \('a\\u2028b'\): name: a control character"):
        load_specs([path])


def test_a_jobs_relative_workdir_is_taken_from_its_files_folder(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    path = tmp_path / "sub" / "jobs.yaml"
    path.write_text(
        "name: a\nowner: a@example.com\ncommand: [echo]\n---\n"
        "name: b\nowner: a@example.com\ncommand: [echo]\nworkdir: ../run\n---\n"
        "name: c\nowner: a@example.com\ncommand: [echo]\nworkdir: /srv/x\n"
    )
    assert [s.workdir for s in load_specs([path])] == [
        str(tmp_path / "sub"),
        str(tmp_path / "run"),
        "/srv/x",
    ]
    # specs that come from no file (the API) keep what they say
    assert parse_specs([{**COMMAND}], "api")[0].workdir is None


# -- resources: the one arithmetic of capacity ------------------------------------------------

#: CPUs in eighths (exact in binary, so that sums compare exactly), as jobs ask for them.
_resources = st.builds(
    Resources,
    cpus=st.integers(1, 64).map(lambda n: n / 8),
    gpus=st.integers(0, 4),
    memory_mb=st.integers(1, 1 << 20),
)


@given(_resources, _resources)
def test_sums_and_differences_undo_each_other(a: Resources, b: Resources) -> None:
    zero = Resources.zero()
    assert a + zero == a == a - zero and a + b == b + a
    assert (a + b) - b == a and Resources.total([a, b]) == a + b
    assert Resources.total([]) == zero and zero.fits_within(zero)


@given(_resources, _resources, _resources)
def test_a_part_fits_within_any_whole_it_is_part_of(
    a: Resources, b: Resources, c: Resources
) -> None:
    assert a.fits_within(a) and a.fits_within(a + b)
    assert a.fits_within(c) == Resources.zero().fits_within(c - a)
    if not a.fits_within(c):
        assert not (a + b).fits_within(c)


@given(_resources, st.lists(_resources, max_size=30))
def test_what_the_launch_step_takes_never_exceeds_the_capacity(
    capacity: Resources, wants: list[Resources]
) -> None:
    free, taken = capacity, []
    for want in wants:  # as the launch step takes jobs from the queue
        if want.fits_within(free):
            free, taken = free - want, [*taken, want]
    assert Resources.total(taken).fits_within(capacity)
    assert free == capacity - Resources.total(taken)


def test_fractions_of_cpus_fit_despite_rounding_and_read_as_they_are_asked() -> None:
    room = Resources(cpus=0.3, memory_mb=2048)
    third = Resources(cpus=0.1) + Resources(cpus=0.2)
    assert third.fits_within(room) and third.cpus != 0.3
    assert not Resources(cpus=0.30001).fits_within(room)
    assert (Resources(cpus=1) - Resources(cpus=1)).cpus_exhausted
    assert not Resources(cpus=0.5).cpus_exhausted
    assert str(Resources(cpus=1.5, gpus=1, memory_mb=2048)) == "1.5 CPUs, 1 GPUs, 2048 MB"
