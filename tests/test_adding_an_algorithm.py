"""docs/adding-an-algorithm.md's example runs as written: its Python blocks, in order, as one
script in a fresh interpreter (registering the example, passing the shared checks, training)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.test_readme import ROOT, blocks

PAGE = ROOT / "docs" / "adding-an-algorithm.md"


def test_the_example_algorithm_passes_the_checks_and_trains(tmp_path: Path) -> None:
    code = [b.text for b in blocks(PAGE) if b.lang == "python"]
    assert len(code) >= 6, "the page's Python blocks"
    script = tmp_path / "example.py"
    script.write_text("\n\n".join(code))
    out = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr[-3000:]
    names, mse = out.stdout.strip().splitlines()[-2:]
    assert "merge_within_tolerance" in names and "seeding" in names
    assert 0.9 < float(mse) < 1.1
