"""benchmarks/gpu.sh, the GPU machine's one script, runs here too (``--device cpu``), so that it
cannot rot between the rare runs on a GPU."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from streamfit import algorithm_names

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu.sh"
ALGORITHMS = tuple(algorithm_names())


def _run(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMFIT_")}
    return subprocess.run(
        ["bash", str(SCRIPT), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
        env=env,
    )


def test_the_script_parses_and_explains_itself() -> None:
    assert subprocess.run(["bash", "-n", str(SCRIPT)], check=False).returncode == 0
    usage = _run("--help")
    assert usage.returncode == 0
    assert "--device cpu" in usage.stdout
    assert _run("--frobnicate").returncode == 2
    assert _run("--device", "tpu").returncode == 2


@pytest.mark.slow
def test_a_quick_cpu_run_passes_every_stage_and_prints_one_table(tmp_path: Path) -> None:
    proc = _run("--device", "cpu", "--quick", "--python", sys.executable, "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    report = out[out.index("## benchmarks/gpu.sh --device cpu --quick") :]
    for stage in ("setup", "info", "tests", "agree", "bench"):
        assert re.search(rf"^- {stage}: ok \(\d+ s\)", report, re.MULTILINE), stage
    assert re.search(r"^- tests: ok .*\d+ passed", report, re.MULTILINE)
    assert "torch " + torch.__version__ in out
    table = [line for line in report.splitlines() if line.startswith("|")]
    assert len(table) == 2 + len(ALGORITHMS)  # one table: header, rule, one row each
    rows = {cells[0]: cells for cells in (_cells(line) for line in table[2:])}
    assert sorted(rows) == list(ALGORITHMS)
    for name, cells in rows.items():
        assert cells[2] == "yes", name  # cpu against cpu: the same model, bit for bit
        assert cells[3] == cells[4], name
        rates = [float(c.replace(",", "")) for c in cells[7:9]]
        assert all(rate > 0 for rate in rates), name
    assert (tmp_path / "agree.json").exists()
    assert (tmp_path / "bench.json").exists()


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_the_shared_checks_train_on_the_device_the_environment_names() -> None:
    """gpu.sh runs them with STREAMFIT_TEST_DEVICE=cuda: here, with no GPU, asking for cuda
    must fail in the trainer, which shows that the checks did pass the device on."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/core/test_algorithm_checks.py",
            "-k",
            "round_trip and kmeans",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "STREAMFIT_TEST_DEVICE": "cuda"},
    )
    assert proc.returncode == 1, proc.stdout[-2000:]
    assert "device 'cuda' requested but no CUDA device is available" in proc.stdout


def test_an_algorithm_without_a_workload_runs_from_its_check_parameters(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A newly registered algorithm is covered by gpu.sh without an entry of its own."""
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location("benchmarks_gpu", ROOT / "benchmarks" / "gpu.py")
    assert spec is not None and spec.loader is not None
    gpu = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "benchmarks_gpu", gpu)
    spec.loader.exec_module(gpu)
    built_in = ("factorization-machines", "kmeans", "linear-learner", "pca")
    assert all(gpu.workloads()[name].output for name in built_in)  # benchmark-sized, own
    monkeypatch.setattr(gpu, "_workloads", dict)
    assert all(w.output is None for w in gpu.workloads().values())
    assert gpu.agree("cpu", 3000, tmp_path)
    agreed = json.loads((tmp_path / "agree.json").read_text())
    assert [r["algorithm"] for r in agreed] == list(ALGORITHMS)
