"""The sparse read floor: libsvm and sparse Parquet into CSR batches, before and after a change.

    python benchmarks/sparse_read.py [--rows 200000] [--baseline REV] [--repeat 3]

The data are linear_learner.py's click-like rows (30 fields one-hot in 2^20 columns), the same
cached files. Each contender runs in its own process: ``Batcher`` (1,000-row batches, read ahead
in its thread) over ``open_source(path, SourceOptions(max_index=2**20))``, plus one
matrix-vector product per batch, as linear_learner.py's floors do. ``--baseline REV`` runs the
same children on ``git archive REV src`` as well, so the ratio comes from one run on one
machine. Reported: the loop's rows/s (the reader's rate once the process is up), the whole
process's wall time (interpreter start and imports included) and the best of ``--repeat``.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import harness
import linear_learner

HERE = Path(__file__).resolve().parent
FILES = {"libsvm": "train.libsvm", "sparse Parquet": "train.parquet"}
D = linear_learner.D_SPARSE


def _data(rows: int) -> dict[str, Path]:
    """The training files of linear_learner.py's sparse task (written if missing)."""
    files = linear_learner.paths(rows)["sparse"]
    for key in FILES.values():
        path = files[key]
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(path.suffix + ".tmp")
            blocks = linear_learner._tasks()["sparse"].blocks(rows, block=50_000, offset=0)
            linear_learner._write(tmp, key.split(".")[1], blocks)
            tmp.rename(path)
    return {name: files[key] for name, key in FILES.items()}


def child(name: str, rows: int) -> None:
    import torch

    from streamfit import Batcher, SourceOptions, open_source
    from streamfit.algorithms.linear_learner.model import linear_scores

    torch.set_num_threads(1)
    path = _data(rows)[name.split(", ", maxsplit=1)[0]]
    w, b = torch.randn(D, 1), torch.zeros(1)
    started = time.perf_counter()
    seen, total = 0, 0.0
    for batch in Batcher(open_source(str(path), SourceOptions(max_index=D)), 1000, n_features=D):
        total += float(linear_scores(batch.features, w, b).sum())
        seen += batch.n_rows
    loop = time.perf_counter() - started
    assert seen == rows, (seen, rows)
    harness.send({**harness.trained(), "loop_seconds": loop, "loop_rows_per_second": rows / loop})


def _baseline_src(rev: str, into: Path) -> Path:
    archive = subprocess.run(
        ["git", "archive", rev, "src"], cwd=HERE.parent, check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into / "src"


def main() -> None:
    parser = harness.parser(__doc__, rows=200_000)
    parser.add_argument("--baseline", help="a git revision to compare with, in the same run")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each; the best is kept")
    args = parser.parse_args()
    if args.child:
        child(args.child, args.rows)
        return
    _data(args.rows)
    versions: list[tuple[str, str | None]] = [("this tree", None)]
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="sf-baseline-") as tmp:
        if args.baseline:
            src = _baseline_src(args.baseline, Path(tmp))
            versions.insert(0, (args.baseline, str(src)))
        before = os.environ.get("PYTHONPATH")
        for version, src in versions:
            os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (src, before) if p)
            for name in FILES:
                runs = [
                    harness.spawn(__file__, f"{name}, {version}", ["--rows", str(args.rows)])
                    for _ in range(args.repeat)
                ]
                ok = [r for r in runs if "error" not in r] or runs
                best = min(ok, key=lambda r: r.get("loop_seconds", float("inf")))
                results.append({**best, "format": name, "version": version})
                print(f"  {name}, {version}: {best}", flush=True)
        if before is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = before
    _report(results, args.rows)
    harness.write_json(args.json, results)


def _report(results: list[dict[str, Any]], rows: int) -> None:
    print(f"\n{rows:,} rows, 1,000-row batches + matvec, best of runs")
    header = (
        f"{'format':16} {'version':12} {'loop s':>8} {'rows/s':>12} {'x before':>9} {'wall s':>7}"
    )
    print(header)
    print("-" * len(header))
    first: dict[str, dict[str, Any]] = {}
    for r in results:
        if "error" in r:
            print(f"{r['format']:16} {r['version']:12} {r['error']}")
            continue
        base = first.setdefault(r["format"], r)
        ratio = base["loop_seconds"] / r["loop_seconds"]
        print(
            f"{r['format']:16} {r['version'][:12]:12} {r['loop_seconds']:8.2f} "
            f"{r['loop_rows_per_second']:12,.0f} {ratio:9.2f} {r['wall']:7.2f}"
        )


if __name__ == "__main__":
    main()
