"""K-Means against the peers a user would pick instead, on the same files, in one run.

    python benchmarks/kmeans.py [--rows 1000000] [--separation 6] [--match NAME] [--json out.json]

Data (generated deterministically, cached under benchmarks/data/): 1,000,000 x 50 float32 rows
from 25 unit-variance Gaussian clusters (``cluster_task(50, 25)``, centres about 6 standard
deviations apart; ``--separation 1.5`` makes them overlap), as Parquet, plus 100,000 held-out
test rows from the same clusters. Every contender fits k=25.

Each contender runs in its own process: wall time runs from the parent starting it to the
model being trained (interpreter start-up, imports and reading included, test scoring not);
peak RSS is the process's own (VmHWM). Every model's centres are scored the same way: the
mean squared distance of each test row to its closest centre (msd), in float64.

The sweep contender trains the same one pass and also finalizes one model per k=2..40 from
its state (``--sweep k=2..40``); its extra wall time over the plain run is the sweep's cost.
It then measures all 39 models in one read of the test rows (reported, not in its wall time).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import harness

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
D = 50
K = 25
TEST_ROWS = 100_000
CHUNK = 5000  # rows per mini-batch, for streamfit and MiniBatchKMeans alike
SEPARATION = 6.0  # cluster_task's default


# -- data ------------------------------------------------------------------------------------


def paths(rows: int, separation: float) -> dict[str, Path]:
    tag = "" if separation == SEPARATION else f"-sep{separation:g}"
    return {
        "train": DATA / f"clusters{tag}-{rows}-train.parquet",
        "test": DATA / f"clusters{tag}-{TEST_ROWS}-test.parquet",
    }


def make_data(rows: int, separation: float) -> dict[str, Path]:
    from streamfit.datagen import cluster_task, write_batches

    DATA.mkdir(parents=True, exist_ok=True)
    task = cluster_task(D, K, separation=separation)
    files = paths(rows, separation)
    for split, n, offset in (("train", rows, 0), ("test", TEST_ROWS, 10**12)):
        path = files[split]
        if path.exists():
            continue
        started = time.perf_counter()
        tmp = path.with_suffix(".tmp.parquet")
        write_batches(tmp, task.blocks(n, block=50_000, offset=offset))
        tmp.rename(path)
        print(f"  wrote {path.name} ({time.perf_counter() - started:.0f} s)", flush=True)
    return files


def _read_all(path: Path) -> np.ndarray:
    import pyarrow.parquet as pq

    col = pq.read_table(path, columns=["features"]).column("features").combine_chunks()
    return np.asarray(col.flatten().to_numpy(), dtype=np.float32).reshape(len(col), -1)


def test_msd(centers: np.ndarray, x: np.ndarray) -> float:
    """Mean squared distance of each row of ``x`` to its closest centre, in float64."""
    c = centers.astype(np.float64)
    total = 0.0
    for i in range(0, len(x), 20_000):
        xb = x[i : i + 20_000].astype(np.float64)
        d2 = (xb * xb).sum(1)[:, None] - 2 * xb @ c.T + (c * c).sum(1)[None, :]
        total += float(np.maximum(d2.min(1), 0).sum())
    return total / len(x)


# -- contenders (each runs in a child process) -----------------------------------------------

Result = tuple[np.ndarray, dict[str, Any], Callable[[np.ndarray], dict[str, Any]] | None]


def _floor(train: Path) -> Result:
    """Reading the file into the same batches streamfit trains on, plus one product each."""
    import torch

    from streamfit import Batcher, open_source

    c = torch.randn(K, D)
    total = 0.0
    for batch in Batcher(open_source(str(train)), CHUNK, n_features=D):
        total += float((batch.dense_features() @ c.t()).sum())
    return np.zeros((K, D)), {"checksum": total}, None


def _streamfit(train: Path, sweep: str | None = None, **hp: Any) -> Result:
    from streamfit import train as fit

    params = {"k": K, "mini_batch_size": CHUNK, **hp}
    result = fit("kmeans", str(train), hyperparameters=params, progress=False, sweep=sweep)
    info: dict[str, Any] = {
        "train_seconds": result.metrics["train:seconds"],
        "num_centers": result.model.meta["num_centers"],
    }
    if result.sweep:
        info["sweep_finalize_seconds"] = sum(p.seconds for p in result.sweep)

    def measure_sweep(x_test: np.ndarray) -> dict[str, Any]:
        """All sweep models in one read of the test rows, as ``train(test=...)`` does."""
        import torch

        from streamfit.algorithms.kmeans.evaluation import KMeansEvaluator
        from streamfit.core.batch import Batch
        from streamfit.training.trainer import compute_threads

        started = time.perf_counter()
        accs = [KMeansEvaluator(p.model, ["msd"]) for p in result.sweep]
        # The trainer's thread setting (train() measures a sweep outside it: see the notes).
        with compute_threads(torch.device("cpu"), None):
            for i in range(0, len(x_test), CHUNK):
                batch = Batch(torch.from_numpy(x_test[i : i + CHUNK]))
                for acc in accs:
                    acc.update(batch)
        msd = {str(p.value): acc.result()["msd"] for p, acc in zip(result.sweep, accs, strict=True)}
        return {"sweep_measure_seconds": time.perf_counter() - started, "sweep_msd": msd}

    centers = result.model.tensors["centers"].cpu().numpy()
    return centers, info, measure_sweep if result.sweep else None


def _kmeans(train: Path) -> Result:
    from sklearn.cluster import KMeans

    x = _read_all(train)
    model = KMeans(n_clusters=K, init="k-means++", random_state=0).fit(x)
    return model.cluster_centers_, {"n_iter": int(model.n_iter_)}, None


def _minibatch(train: Path) -> Result:
    import pyarrow.parquet as pq
    from sklearn.cluster import MiniBatchKMeans

    model = MiniBatchKMeans(n_clusters=K, random_state=0, batch_size=CHUNK, n_init=1)
    for batch in pq.ParquetFile(train).iter_batches(batch_size=CHUNK, columns=["features"]):
        col = batch.column("features")
        x = np.asarray(col.flatten().to_numpy(), dtype=np.float32).reshape(len(col), -1)
        model.partial_fit(x)
    return model.cluster_centers_, {}, None


CONTENDERS: dict[str, tuple[Callable[..., Result], dict[str, Any]]] = {
    "floor: Parquet -> batches + one product": (_floor, {}),
    "streamfit kmeans, one pass": (_streamfit, {}),
    "streamfit kmeans, one pass + --sweep k=2..40": (_streamfit, {"sweep": "k=2..40"}),
    "streamfit kmeans, one pass, init kmeans++": (_streamfit, {"init_method": "kmeans++"}),
    "scikit-learn MiniBatchKMeans.partial_fit, one pass": (_minibatch, {}),
    "scikit-learn KMeans, in memory (k-means++)": (_kmeans, {}),
}


def child(name: str, rows: int, separation: float) -> None:
    """Train one contender, then score its centres on the test rows (timed separately)."""
    fn, extra = CONTENDERS[name]
    files = paths(rows, separation)
    centers, info, after = fn(files["train"], **extra)
    out = {**harness.trained(), **info}
    if not name.startswith("floor"):
        x_test = _read_all(files["test"])
        out["test_msd"] = test_msd(np.asarray(centers), x_test)
        if after is not None:
            out.update(after(x_test))
    harness.send(out)


COLUMNS = [
    harness.Column("wall s", "wall"),
    harness.Column("x MiniBatchKMeans", "wall", ".2f", vs="ratio"),
    harness.Column("peak RSS MB", "peak_rss_mb", ".0f"),
    harness.Column("test msd", "test_msd", ".2f"),
    harness.Column("vs KMeans", "test_msd", "+.2%", vs="change", baseline="KMeans, in memory"),
]


def main() -> None:
    parser = harness.parser(__doc__, rows=1_000_000)
    parser.add_argument("--separation", type=float, default=SEPARATION)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.rows, args.separation)
        return
    print(
        f"data: {args.rows:,} x {D} training rows, {K} clusters {args.separation:g} apart "
        f"(cached in {DATA})",
        flush=True,
    )
    make_data(args.rows, args.separation)
    names = [name for name in CONTENDERS if not args.match or args.match in name]
    child_args = ["--rows", str(args.rows), "--separation", str(args.separation)]
    results = harness.run_all(__file__, names, child_args)
    print()
    harness.report(results, COLUMNS, baseline="MiniBatch")
    _sweep_cost(results)
    harness.write_json(args.json, results)


def _sweep_cost(results: list[dict[str, Any]]) -> None:
    plain = next((r for r in results if r["name"] == "streamfit kmeans, one pass"), None)
    swept = next((r for r in results if "--sweep" in r["name"] and "wall" in r), None)
    if plain and swept and "wall" in plain:
        print(
            f"\n--sweep k=2..40: {swept['wall'] - plain['wall']:+.2f} s wall over the plain pass "
            f"({swept['sweep_finalize_seconds']:.2f} s inside finalize for 39 models); measuring "
            f"all 39 on the {TEST_ROWS:,} test rows in one read: "
            f"{swept['sweep_measure_seconds']:.2f} s"
        )


if __name__ == "__main__":
    main()
