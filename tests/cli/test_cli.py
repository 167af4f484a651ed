"""The command line: train, predict, finalize, convert, and exit codes scripts can use."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from streamfit.cli.main import cli
from tests.conftest import BinaryFiles

HP = ["--hp", "predictor_type=binary_classifier", "--hp", "num_models=4"]


def _run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def trained(binary_files: BinaryFiles, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("job")
    code, stdout, _ = _run(
        "train",
        "linear-learner",
        "--train",
        str(binary_files.train_csv),
        "--validation",
        str(binary_files.validation),
        "--output",
        str(out),
        *HP,
        "--json",
    )
    assert code == 0
    metrics = json.loads(stdout)
    assert metrics["validation:roc_auc_score"] > 0.7
    return out


def test_train_writes_the_job_folder(trained: Path) -> None:
    assert sorted(p.name for p in trained.iterdir()) == [
        "curves.jsonl",
        "metrics.json",
        "model",
        "state",
    ]


@pytest.mark.parametrize("accept", ["jsonl", "csv"])
def test_predict_answers_in_sagemaker_shapes(
    trained: Path, binary_files: BinaryFiles, tmp_path: Path, accept: str
) -> None:
    out = tmp_path / f"pred.{accept}"
    code, _, stderr = _run(
        "predict",
        str(trained / "model"),
        "--input",
        str(binary_files.test),
        "--labelled",
        "--output",
        str(out),
        "--accept",
        accept,
    )
    assert code == 0, stderr
    lines = out.read_text().splitlines()
    if accept == "jsonl":
        first = json.loads(lines[0])
        assert set(first) == {"score", "predicted_label"}
        assert len(lines) == 5000
    else:
        assert lines[0] == "score,predicted_label"
        assert len(lines) == 5001


def test_predict_reads_unlabelled_csv_from_stdin(trained: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "streamfit",
            "predict",
            str(trained / "model"),
            "--input",
            "-",
            "--content-type",
            "text/csv",
        ],
        input=b"0,0,0,0,0,0,0,0\n1,2,3,4,5,6,7,8\n",
        capture_output=True,
        check=True,
    )
    answers = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    assert len(answers) == 2 and 0 <= answers[0]["score"] <= 1


def test_finalize_makes_another_model_from_the_state(trained: Path, tmp_path: Path) -> None:
    code, stdout, _ = _run(
        "finalize",
        str(trained / "state"),
        "--output",
        str(tmp_path / "m"),
        "--hp",
        "binary_classifier_model_selection_criteria=precision_at_target_recall",
        "--hp",
        "target_recall=0.9",
        "--json",
    )
    assert code == 0
    meta = json.loads(stdout)
    assert meta["selection"]["criterion"] == "precision_at_target_recall"
    assert (tmp_path / "m" / "model.safetensors").exists()


def test_convert_round_trips_between_formats(binary_files: BinaryFiles, tmp_path: Path) -> None:
    for target in ("x.parquet", "x.jsonl", "x.libsvm", "x.csv.gz"):
        code, _, stderr = _run("convert", str(binary_files.train_csv), str(tmp_path / target))
        assert code == 0, stderr
        assert "20,000 rows" in stderr
    code, _, _ = _run(
        "convert", str(tmp_path / "x.libsvm"), str(tmp_path / "y.parquet"), "--feature-dim", "8"
    )
    assert code == 0


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["train", "nope", "--train", "x", "--output", "o"], 2, "unknown algorithm 'nope'"),
        (
            ["train", "linear-learner", "--train", "missing.csv", "--output", "o", *HP],
            2,
            "missing.csv: no such file",
        ),
        (
            [
                "train",
                "linear-learner",
                "--train",
                "{csv}",
                "--output",
                "o",
                "--hp",
                "predictor_type=binary_classifier",
                "--hp",
                "mini_batch_size=0",
            ],
            2,
            "mini_batch_size",
        ),
        (
            ["train", "linear-learner", "--train", "{bad}", "--output", "o", *HP],
            3,
            "line 3, column 2: could not parse 'x'",
        ),
        (["finalize", "{bad_state}", "--output", "o"], 4, "state.json"),
    ],
)
def test_errors_have_one_line_and_a_distinct_exit_code(
    tmp_path: Path, binary_files: BinaryFiles, args: list[str], code: int, message: str
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("1,2,3\n0,1,1\n1,x,3\n")
    bad_state = tmp_path / "state"
    bad_state.mkdir()
    (bad_state / "state.json").write_text("{}")
    (bad_state / "state.safetensors").write_bytes(b"")
    filled = [a.format(csv=binary_files.train_csv, bad=bad, bad_state=bad_state) for a in args]
    proc = subprocess.run(
        [sys.executable, "-m", "streamfit", *filled],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    assert proc.returncode == code, proc.stderr
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_options_come_from_streamfit_variables(binary_files: BinaryFiles, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("1,2,3\n0,1,1\n1,x,3\n0,2,2\n")
    code, stdout, _ = _run(
        "train",
        "linear-learner",
        "--train",
        str(bad),
        "--output",
        str(tmp_path / "o"),
        *HP,
        "--json",
        env={"STREAMFIT_TRAIN_ON_BAD_ROWS": "skip"},
    )
    assert code == 0
    assert json.loads(stdout)["train:bad_rows"] == 1


def test_algorithms_lists_the_registry() -> None:
    code, stdout, _ = _run("algorithms")
    assert code == 0 and "linear-learner" in stdout.split()


def test_an_unexpected_error_is_one_line_and_debug_shows_the_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Errors streamfit has no message for yet still end in one line and exit 1;
    ``--debug`` (or STREAMFIT_DEBUG=1) adds the traceback."""
    import streamfit.cli.train

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("something nobody planned for")

    monkeypatch.setattr(streamfit.cli.train, "train", broken)
    args = ["train", "pca", "--train", "x.csv", "--output", str(tmp_path)]
    quiet = CliRunner().invoke(cli, args)
    assert quiet.exit_code == 1
    assert quiet.stderr.startswith("error: unexpected RuntimeError: something nobody planned")
    assert "Traceback" not in quiet.stderr and "--debug" in quiet.stderr
    loud = CliRunner().invoke(cli, ["--debug", *args])
    assert loud.exit_code == 1 and "Traceback (most recent call last)" in loud.stderr
    env = CliRunner(env={"STREAMFIT_DEBUG": "1"}).invoke(cli, args)
    assert "Traceback (most recent call last)" in env.stderr


# -- outputs never touch inputs ----------------------------------------------------------------

ROWS = "1,0.5,0.25,0,1,2,3,4,5\n0,1.5,0.75,1,0,2,1,0,1\n"  # label + the 8 features of `trained`


def _links(tmp_path: Path, data: Path) -> dict[str, Path]:
    """Other names of ``data``: itself, a symbolic link, a hard link, a path with ``..``."""
    (tmp_path / "sym.csv").symlink_to(data)
    (tmp_path / "hard.csv").hardlink_to(data)
    (tmp_path / "sub").mkdir()
    return {
        "same": data,
        "symlink": tmp_path / "sym.csv",
        "hardlink": tmp_path / "hard.csv",
        "dotdot": tmp_path / "sub" / ".." / data.name,
    }


def _no_temp_files(folder: Path) -> None:
    assert not [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("name", ["same", "symlink", "hardlink", "dotdot"])
def test_convert_refuses_to_write_over_its_input(tmp_path: Path, name: str) -> None:
    data = tmp_path / "a.csv"
    data.write_text(ROWS)
    output = _links(tmp_path, data)[name]
    code, _, stderr = _run("convert", str(data), str(output), "--to", "csv")
    assert code == 2
    assert f"error: output {output} is the input" in stderr
    assert data.read_text() == ROWS
    _no_temp_files(tmp_path)


@pytest.mark.parametrize("name", ["same", "symlink", "hardlink", "dotdot"])
def test_predict_refuses_to_write_over_its_input(trained: Path, tmp_path: Path, name: str) -> None:
    data = tmp_path / "a.csv"
    data.write_text(ROWS)
    output = _links(tmp_path, data)[name]
    model = str(trained / "model")
    code, _, stderr = _run(
        "predict", model, "--input", str(data), "--labelled", "--output", str(output)
    )
    assert code == 2
    assert f"error: output {output} is the input" in stderr
    assert data.read_text() == ROWS
    _no_temp_files(tmp_path)


def test_predict_refuses_to_write_over_standard_input_or_the_model(
    trained: Path, tmp_path: Path
) -> None:
    data = tmp_path / "a.csv"
    data.write_text(ROWS)
    with open(data, "rb") as stdin:
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "streamfit",
                "predict",
                str(trained / "model"),
                "--input",
                "-",
                "--labelled",
                "--content-type",
                "text/csv",
                "--output",
                str(data),
            ],
            stdin=stdin,
            capture_output=True,
            text=True,
            check=False,
        )
    assert proc.returncode == 2, proc.stderr
    assert "is the input standard input" in proc.stderr
    assert data.read_text() == ROWS
    weights = trained / "model" / "model.safetensors"
    before = weights.read_bytes()
    code, _, stderr = _run(
        "predict",
        str(trained / "model"),
        "--input",
        str(data),
        "--labelled",
        "--output",
        str(weights),
    )
    assert code == 2 and "is the input" in stderr
    assert weights.read_bytes() == before


def test_convert_refuses_to_write_over_a_sqlite_database(tmp_path: Path) -> None:
    db = tmp_path / "d.db"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE t (label, x)")
    con.execute("INSERT INTO t VALUES (1, 2)")
    con.commit()
    con.close()
    before = db.read_bytes()
    code, _, stderr = _run("convert", f"sqlite:///{db}#SELECT * FROM t", str(db), "--to", "csv")
    assert code == 2 and f"output {db} is the input {db}" in stderr
    assert db.read_bytes() == before


def test_predict_to_a_folder_is_a_clear_error(trained: Path, tmp_path: Path) -> None:
    data = tmp_path / "a.csv"
    data.write_text(ROWS)
    folder = tmp_path / "out"
    folder.mkdir()
    code, _, stderr = _run(
        "predict",
        str(trained / "model"),
        "--input",
        str(data),
        "--labelled",
        "--output",
        str(folder),
    )
    assert code == 2
    assert stderr == f"error: output {folder} is a folder: name a file to write\n"
    assert list(folder.iterdir()) == []
    code, _, stderr = _run("convert", str(data), str(folder), "--to", "csv")
    assert code == 2 and "is a folder" in stderr


def test_a_failed_run_leaves_the_old_output_and_no_temporary_file(
    trained: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(ROWS * 3 + "1,x,0,0,0,0,0,0,0\n")
    for args in (
        ["convert", str(bad), str(tmp_path / "out.jsonl")],
        [
            "predict",
            str(trained / "model"),
            "--input",
            str(bad),
            "--labelled",
            "--output",
            str(tmp_path / "out.jsonl"),
        ],
    ):
        (tmp_path / "out.jsonl").write_text("old\n")
        code, _, stderr = _run(*args)
        assert code == 3, stderr
        assert (tmp_path / "out.jsonl").read_text() == "old\n"
        _no_temp_files(tmp_path)


def test_outputs_replace_an_old_file_whole_keeping_its_mode(trained: Path, tmp_path: Path) -> None:
    data = tmp_path / "a.csv"
    data.write_text(ROWS)
    out = tmp_path / "p.jsonl"
    out.write_text("old\n")
    out.chmod(0o640)
    code, _, _ = _run(
        "predict", str(trained / "model"), "--input", str(data), "--labelled", "--output", str(out)
    )
    assert code == 0
    assert len(out.read_text().splitlines()) == 2 and out.stat().st_mode & 0o777 == 0o640
    link = tmp_path / "link.csv"
    link.symlink_to(tmp_path / "target.csv")
    code, _, _ = _run("convert", str(data), str(link), "--to", "csv")
    assert code == 0
    assert link.is_symlink() and (tmp_path / "target.csv").read_text().count("\n") == 2
    _no_temp_files(tmp_path)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("big.libsvm", b"1 1" + b"0" * 23 + b":1\n", "line 1, token '1" + "0" * 23 + ":1': index"),
        ("neg.libsvm", b"1 -5:1\n", "line 1, feature index -5: index out of range [0, 8)"),
        ("deep.jsonl", b'{"label": 1, "features": ' + b"[" * 10**5 + b"]" * 10**5 + b"}\n", "deep"),
        ("null.jsonl", b'null\n{"label": 1, "features": [1]}\n', "line 1: not a JSON object"),
        ("label.parquet", None, "label column 'label' is string, not numbers"),
    ],
)
def test_bad_data_is_one_line_and_exit_3(
    tmp_path: Path, name: str, content: bytes | None, message: str
) -> None:
    path = tmp_path / name
    if content is None:
        pq.write_table(pa.table({"label": ["1", "0"], "x": [1.0, 2.0]}), path)
    else:
        path.write_bytes(content)
    code, _, stderr = _run(
        "train",
        "linear-learner",
        "--train",
        str(path),
        "--output",
        str(tmp_path / "o"),
        *HP,
        "--hp",
        "feature_dim=8",
    )
    assert code == 3, stderr
    assert stderr.startswith("data error: ") and message in stderr and stderr.count("\n") == 1
