"""PCA against the peers a user would pick instead, on the same files, in one run.

    python benchmarks/pca.py [--rows 1000000] [--match NAME] [--json out.json]
    python benchmarks/pca.py --real [--json out.json]  # digits and MNIST: see pca_real.py

Data (generated deterministically, cached under benchmarks/data/): 1,000,000 x 200 float32
rows of a rank-10 signal (scales 20 down to 5) plus unit noise around a mean
(``low_rank_task(200, 10)``), as Parquet, plus 100,000 held-out rows. Every contender fits
k=10 components.

Each contender runs in its own process: wall time runs from the parent starting it to the
model being trained (interpreter start-up, imports and reading included, scoring not); peak RSS
is the process's own (VmHWM). Quality is measured the same way for all, in float64, on the
held-out rows centred at their own mean: the variance along the top 10 components (their
explained variance, ``sum_i var(T v_i)``), relative to that of the exact components. The exact
components come from an independent float64 pass in numpy (``X^T X`` per row group, then
``numpy.linalg.eigh``), computed once and cached.

``IncrementalPCA`` is fed 10,000 rows per ``partial_fit`` (a Parquet row group at a time, so it
streams like the others); its cost is an SVD of each batch, so larger batches only save call
overhead. The floor is reading the file into batches and summing them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

import harness

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
D = 200
RANK = 10
K = 10
TEST_ROWS = 100_000
IPCA_BATCH = 10_000

Components = tuple[np.ndarray, np.ndarray | None]  # (k, d) components, (k,) variances


# -- data ------------------------------------------------------------------------------------


def paths(rows: int) -> dict[str, Path]:
    return {
        "train": DATA / f"lowrank-{rows}-train.parquet",
        "test": DATA / f"lowrank-{TEST_ROWS}-test.parquet",
        "exact": DATA / f"lowrank-{rows}-exact.npz",
    }


def make_data(rows: int) -> dict[str, Path]:
    from streamfit.datagen import low_rank_task, write_batches

    DATA.mkdir(parents=True, exist_ok=True)
    task = low_rank_task(D, RANK)
    files = paths(rows)
    for split, n, offset in (("train", rows, 0), ("test", TEST_ROWS, 10**12)):
        path = files[split]
        if path.exists():
            continue
        started = time.perf_counter()
        tmp = path.with_suffix(".tmp.parquet")
        write_batches(tmp, task.blocks(n, block=100_000, offset=offset))
        tmp.rename(path)
        print(f"  wrote {path.name} ({time.perf_counter() - started:.0f} s)", flush=True)
    if not files["exact"].exists():
        started = time.perf_counter()
        _exact(files["train"], files["exact"])
        print(f"  wrote {files['exact'].name} ({time.perf_counter() - started:.0f} s)", flush=True)
    return files


def _row_groups(path: Path) -> Iterator[np.ndarray]:
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    for group in range(pf.num_row_groups):
        col = pf.read_row_group(group, columns=["features"]).column("features").combine_chunks()
        yield col.flatten().to_numpy().reshape(len(col), -1)


def _exact(train: Path, out: Path) -> None:
    """The reference: float64 sums in numpy, an eigendecomposition of the covariance."""
    n, s, gram = 0, np.zeros(D), np.zeros((D, D))
    for x in _row_groups(train):
        x64 = x.astype(np.float64)
        n += len(x64)
        s += x64.sum(0)
        gram += x64.T @ x64
    cov = (gram - np.outer(s, s) / n) / (n - 1)
    values, vectors = np.linalg.eigh(cov)
    np.savez(out, components=vectors[:, ::-1][:, :K].T, variances=values[::-1][:K])


def _test_rows(test: Path) -> np.ndarray:
    x = np.concatenate(list(_row_groups(test))).astype(np.float64)
    return x - x.mean(0)


def held_out_variance(components: np.ndarray, centred: np.ndarray) -> float:
    """Variance of the held-out rows along the (orthonormalised) components."""
    q, _ = np.linalg.qr(np.asarray(components, dtype=np.float64).T)
    return float(((centred @ q) ** 2).sum() / (len(centred) - 1))


# -- contenders (each runs in a child process) -----------------------------------------------


def _floor(train: Path) -> Components:
    import torch

    from streamfit import Batcher, SourceOptions, open_source

    total = torch.zeros(D, dtype=torch.float64)
    for batch in Batcher(open_source(str(train), SourceOptions(labelled=False)), 5000):
        total += batch.dense_features().sum(0)
    return np.eye(K, D), None


def _streamfit(train: Path, **hp: Any) -> Components:
    from streamfit import train as fit

    result = fit("pca", str(train), hyperparameters={"num_components": K, **hp}, progress=False)
    t = result.model.tensors
    return t["components"].numpy(), t["explained_variance"].double().numpy()


def _sklearn_pca(train: Path) -> Components:
    from sklearn.decomposition import PCA

    x = np.concatenate(list(_row_groups(train)))
    pca = PCA(K, svd_solver="covariance_eigh").fit(x)
    return pca.components_, pca.explained_variance_


def _incremental(train: Path) -> Components:
    from sklearn.decomposition import IncrementalPCA

    ipca = IncrementalPCA(K)
    for x in _row_groups(train):
        for i in range(0, len(x), IPCA_BATCH):
            ipca.partial_fit(x[i : i + IPCA_BATCH])
    return ipca.components_, ipca.explained_variance_


CONTENDERS: dict[str, tuple[Callable[..., Components], dict[str, Any]]] = {
    "floor, Parquet -> batches + sum": (_floor, {}),
    "streamfit regular, one pass": (_streamfit, {}),
    "streamfit randomized, one pass": (_streamfit, {"algorithm_mode": "randomized"}),
    "streamfit randomized, l = 20 (the default before issue 15)": (
        _streamfit,
        {"algorithm_mode": "randomized", "extra_components": 10},
    ),
    "scikit-learn PCA(covariance_eigh), in memory": (_sklearn_pca, {}),
    "scikit-learn IncrementalPCA, one pass": (_incremental, {}),
}


def child(name: str, rows: int) -> None:
    """Train one contender, then score its components on the held-out rows."""
    fn, extra = CONTENDERS[name]
    files = paths(rows)
    started = time.perf_counter()
    components, variances = fn(files["train"], **extra)
    out = {"train_seconds_inside": time.perf_counter() - started, **harness.trained()}
    if not name.startswith("floor"):
        exact = np.load(files["exact"])
        test = _test_rows(files["test"])
        got = held_out_variance(components, test)
        best = held_out_variance(exact["components"], test)
        out["held_out_variance"] = got
        out["vs_exact"] = got / best - 1
        if variances is not None:  # the model's own variances against the exact ones
            out["variance_error"] = float(np.max(np.abs(variances / exact["variances"] - 1)))
    harness.send(out)


COLUMNS = [
    harness.Column("wall s", "wall"),
    harness.Column("IncrementalPCA / this", "wall", ".1f", vs="inverse", suffix="x"),
    harness.Column("peak RSS MB", "peak_rss_mb", ".0f"),
    harness.Column("held-out variance vs exact", "vs_exact", "+.1e"),
    harness.Column("own variances vs exact (max)", "variance_error", ".1e"),
]


def main() -> None:
    parser = harness.parser(__doc__, rows=1_000_000)
    parser.add_argument("--real", action="store_true", help="real images instead (pca_real.py)")
    args = parser.parse_args()
    if args.real:
        import pca_real

        pca_real.main(args.json)
        return
    if args.child:
        child(args.child, args.rows)
        return
    print(f"data: {args.rows:,} x {D} training rows (cached in {DATA})", flush=True)
    make_data(args.rows)
    names = [name for name in CONTENDERS if not args.match or args.match in name]
    results = harness.run_all(__file__, names, ["--rows", str(args.rows)])
    print()
    harness.report(results, COLUMNS, baseline="Incremental")
    harness.write_json(args.json, results)


if __name__ == "__main__":
    main()
