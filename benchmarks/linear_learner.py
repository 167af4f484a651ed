"""Linear Learner against the peers a user would pick instead, on the same files, in one run.

    python benchmarks/linear_learner.py [--rows 2000000] [--only dense|sparse] [--with-slow]
                                        [--repeat N]

Data (generated deterministically, cached under benchmarks/data/):
- dense: 2,000,000 x 100 float32 rows, features of mixed scale and mean, labels drawn from a
  known logistic model (best possible AUC about 0.93), as Parquet, CSV and VW text;
- sparse: 2,000,000 click-like rows, 30 categorical fields with Zipf-distributed ids one-hot in
  2^20 columns, as libsvm, Parquet and VW text.
Each contender runs in its own process: wall time runs from the parent starting it to the
model being trained (interpreter start-up and imports included, test scoring not); peak RSS is
the process's own. Every model is scored with the same exact ROC AUC and log-loss on the same
200,000 test rows. The floor is reading the file into
batches plus one matrix-vector product per batch.

``--repeat N`` runs every contender N times, taking turns (round 1 runs each once, then
round 2, ...), so that a shared machine's load falls on all of them alike: the table gives
each number's median over the rounds, and ``x VW`` is the median of each round's wall time
over Vowpal Wabbit's in that round. ``CPU s`` is the process's CPU time (all threads):
streamfit trains on one thread beside its read-ahead thread (the trainer leaves a core to
the reader), Vowpal Wabbit parses on one thread beside its learner. The two ``kernel``
rows time the sparse kernel's first call in a fresh process: loaded from numba's cache (what
every run but a machine's first pays, inside the streamfit rows' times) and compiled (the
first run on a machine, or after the kernel's source changed).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import harness

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
BATCH = 1000
D_DENSE = 100
D_SPARSE = 1 << 20


# -- data ------------------------------------------------------------------------------------


def _tasks() -> dict[str, Any]:
    from streamfit.datagen import linear_task, sparse_click_task

    return {
        "dense": linear_task(D_DENSE, "binary", seed=11, signal=3.5),
        "sparse": sparse_click_task(D_SPARSE, nnz=30, seed=12),
    }


def _write_vw(path: Path, batches: Any) -> None:
    """VW text: ``1 |f 3:0.5 7:1`` (labels -1/1); dense rows list every feature."""
    with path.open("w") as f:
        for batch in batches:
            labels = batch.column("label").to_numpy()
            if "indices" in batch.schema.names:
                idx = batch.column("indices")
                offsets = idx.offsets.to_numpy()
                flat = idx.flatten().to_numpy()
                for i, y in enumerate(labels):
                    feats = " ".join(f"{j}" for j in flat[offsets[i] : offsets[i + 1]])
                    f.write(f"{1 if y > 0.5 else -1} |f {feats}\n")
            else:
                x = batch.column("features").flatten().to_numpy().reshape(len(labels), -1)
                names = [f"{j}:" for j in range(x.shape[1])]
                for y, row in zip(labels, x, strict=True):
                    feats = " ".join(n + f"{v:.6g}" for n, v in zip(names, row, strict=True))
                    f.write(f"{1 if y > 0.5 else -1} |f {feats}\n")


FORMATS = {"dense": ("parquet", "csv", "vw"), "sparse": ("parquet", "libsvm", "vw")}
SPLITS = (("train", 0), ("test", 10**12))
TEST_ROWS = 200_000


def paths(rows: int) -> dict[str, dict[str, Path]]:
    """The data files, by kind and ``split.format`` (nothing imported, nothing written)."""
    return {
        kind: {
            f"{split}.{fmt}": DATA / f"{kind}-{rows}-{split}.{fmt}"
            for split, _ in SPLITS
            for fmt in formats
        }
        for kind, formats in FORMATS.items()
    }


def make_data(rows: int) -> dict[str, dict[str, Path]]:
    DATA.mkdir(parents=True, exist_ok=True)
    files = paths(rows)
    for kind, task in _tasks().items():
        for split, offset in SPLITS:
            n = rows if split == "train" else TEST_ROWS
            for fmt in FORMATS[kind]:
                path = files[kind][f"{split}.{fmt}"]
                if path.exists():
                    continue
                started = time.perf_counter()
                tmp = path.with_suffix(path.suffix + ".tmp")
                blocks = task.blocks(n, block=50_000, offset=offset)
                if fmt == "vw":
                    _write_vw(tmp, blocks)
                else:
                    _write(tmp, fmt, blocks)
                tmp.rename(path)
                print(f"  wrote {path.name} ({time.perf_counter() - started:.0f} s)", flush=True)
    return files


def _write(path: Path, fmt: str, blocks: Any) -> None:
    from streamfit.data.writers import WRITERS

    with path.open("wb") as f:
        WRITERS[fmt](blocks, f)


# -- contenders (each runs in a child process) -----------------------------------------------


def _test_arrays(path: Path, sparse: bool) -> tuple[Any, np.ndarray]:
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    y = table.column("label").to_numpy()
    if sparse:
        import scipy.sparse as sp

        idx = table.column("indices").combine_chunks()
        offsets = idx.offsets.to_numpy()
        indices = idx.flatten().to_numpy()
        values = table.column("values").combine_chunks().flatten().to_numpy()
        x = sp.csr_matrix((values, indices, offsets), shape=(len(y), D_SPARSE))
        return x, y
    x = table.column("features").combine_chunks().flatten().to_numpy().reshape(len(y), -1)
    return x, y


def _floor(
    train: Path, test: Path, sparse: bool
) -> tuple[Callable[[], np.ndarray], dict[str, Any]]:
    import torch

    from streamfit import Batcher, SourceOptions, open_source
    from streamfit.algorithms.linear_learner.model import linear_scores

    torch.set_num_threads(1)
    d = D_SPARSE if sparse else D_DENSE
    w = torch.randn(d, 1)
    b = torch.zeros(1)
    opts = SourceOptions(max_index=d if sparse else None)
    total = 0.0
    for batch in Batcher(open_source(str(train), opts), BATCH, n_features=d):
        total += float(linear_scores(batch.features, w, b).sum())
    return (lambda: np.full(TEST_ROWS, 0.5)), {"checksum": total}


def _streamfit(
    train: Path, test: Path, sparse: bool, **hp: Any
) -> tuple[Callable[[], np.ndarray], dict[str, Any]]:
    import torch

    from streamfit import Batcher, SourceOptions, open_source
    from streamfit import train as fit

    params = {"predictor_type": "binary_classifier", "num_models": 32, "mini_batch_size": BATCH}
    if sparse:
        params["feature_dim"] = D_SPARSE
    params.update(hp)
    result = fit("linear-learner", str(train), hyperparameters=params, progress=False)
    model = result.model

    def score() -> np.ndarray:
        opts = SourceOptions(max_index=D_SPARSE if sparse else None)
        out = []
        with torch.inference_mode():
            for batch in Batcher(
                open_source(str(test), opts), 50_000, n_features=model.meta["n_features"]
            ):
                out.append(model.predict(batch.features)["score"].numpy())
        return np.concatenate(out)

    meta = {k: model.meta[k] for k in ("candidate", "learning_rate", "wd", "l1", "threshold")}
    return score, {"rows_per_second_inside": result.metrics["train:rows_per_second"], **meta}


def _kernel(
    train: Path, test: Path, sparse: bool, *, cold: bool
) -> tuple[Callable[[], np.ndarray], dict[str, Any]]:
    """The sparse kernel's first call on a one-row batch: loaded from numba's cache, or
    (``cold``) compiled, into an empty cache folder."""
    import os
    import tempfile

    if cold:  # read by numba when it is first imported, below
        os.environ["NUMBA_CACHE_DIR"] = tempfile.mkdtemp(prefix="sf-numba-")
    import torch

    from streamfit import Batch
    from streamfit.algorithms.linear_learner import LinearLearner
    from streamfit.core.batch import CSR

    algo = LinearLearner(predictor_type="binary_classifier", num_models=1)
    state = algo.init_state(D_SPARSE)
    x = CSR(torch.tensor([0, 1]), torch.tensor([7]), torch.tensor([1.0]), D_SPARSE)
    started = time.perf_counter()
    algo._update(state, Batch(x, torch.tensor([1.0])))  # the step alone (no held-out rows)
    first = time.perf_counter() - started
    return (lambda: np.full(TEST_ROWS, 0.5)), {"first_call_seconds": first}


def _sgd(train: Path, test: Path, sparse: bool) -> tuple[Callable[[], np.ndarray], dict[str, Any]]:
    from sklearn.linear_model import SGDClassifier

    clf = SGDClassifier(loss="log_loss", random_state=0)
    if sparse:
        from sklearn.datasets import load_svmlight_file

        size = train.stat().st_size
        step = 64 << 20
        for offset in range(0, size, step):
            x, y = load_svmlight_file(
                str(train), n_features=D_SPARSE, offset=offset, length=step, zero_based=True
            )
            clf.partial_fit(x, y, classes=[0.0, 1.0])
    else:
        import pyarrow.parquet as pq

        pf = pq.ParquetFile(train)
        for group in range(pf.num_row_groups):
            t = pf.read_row_group(group)
            y = t.column("label").to_numpy()
            x = t.column("features").combine_chunks().flatten().to_numpy().reshape(len(y), -1)
            clf.partial_fit(x, y, classes=[0.0, 1.0])
    x_test, _ = _test_arrays(test, sparse)
    return (lambda: clf.predict_proba(x_test)[:, 1]), {}


def _logreg(
    train: Path, test: Path, sparse: bool
) -> tuple[Callable[[], np.ndarray], dict[str, Any]]:
    from sklearn.linear_model import LogisticRegression

    x, y = _test_arrays(train, sparse)
    clf = LogisticRegression(max_iter=200).fit(x, y)
    x_test, _ = _test_arrays(test, sparse)
    return (lambda: clf.predict_proba(x_test)[:, 1]), {}


def _vw(train: Path, test: Path, sparse: bool) -> tuple[Callable[[], np.ndarray], dict[str, Any]]:
    import tempfile

    import vowpalwabbit

    folder = Path(tempfile.mkdtemp())
    model = folder / "model.vw"
    bits = 20 if sparse else 18
    ws = vowpalwabbit.Workspace(f"-d {train} --loss_function logistic -b {bits} -f {model} --quiet")
    ws.run_parser()
    ws.finish()

    def score() -> np.ndarray:
        preds = folder / "preds.txt"
        tester = vowpalwabbit.Workspace(
            f"-t -i {model} -d {test} --link logistic -p {preds} --quiet"
        )
        tester.run_parser()
        tester.finish()
        return np.loadtxt(preds)

    return score, {}


CONTENDERS: dict[str, tuple[str, str, Callable[..., Any], dict[str, Any]]] = {
    # name: (kind, train file key, function, extra keyword arguments)
    "floor, Parquet -> batches + matvec": ("dense", "train.parquet", _floor, {}),
    "floor, CSV -> batches + matvec": ("dense", "train.csv", _floor, {}),
    "streamfit, 32 models, Parquet": ("dense", "train.parquet", _streamfit, {}),
    "streamfit, 32 models, CSV": ("dense", "train.csv", _streamfit, {}),
    "streamfit, 1 model, Parquet": ("dense", "train.parquet", _streamfit, {"num_models": 1}),
    "scikit-learn SGD, one pass": ("dense", "train.parquet", _sgd, {}),
    "Vowpal Wabbit, one pass (text)": ("dense", "train.vw", _vw, {}),
    "scikit-learn LogisticRegression, in memory": ("dense", "train.parquet", _logreg, {}),
    "floor, libsvm -> batches + matvec": ("sparse", "train.libsvm", _floor, {}),
    "floor, sparse Parquet -> batches + matvec": ("sparse", "train.parquet", _floor, {}),
    "streamfit, 32 models, libsvm": ("sparse", "train.libsvm", _streamfit, {}),
    "streamfit, 32 models, Parquet ": ("sparse", "train.parquet", _streamfit, {}),
    "streamfit, 1 model, libsvm": ("sparse", "train.libsvm", _streamfit, {"num_models": 1}),
    "streamfit, 1 model, Parquet ": ("sparse", "train.parquet", _streamfit, {"num_models": 1}),
    "Vowpal Wabbit, one pass (text) ": ("sparse", "train.vw", _vw, {}),
    "streamfit kernel, first call (cached)": ("sparse", "train.parquet", _kernel, {"cold": False}),
    "streamfit kernel, first call (compiling)": (
        "sparse",
        "train.parquet",
        _kernel,
        {"cold": True},
    ),
    "scikit-learn SGD, one pass from libsvm": ("sparse", "train.libsvm", _sgd, {}),
    "scikit-learn LogisticRegression, in memory ": ("sparse", "train.parquet", _logreg, {}),
}
SLOW = {"scikit-learn SGD, one pass from libsvm", "scikit-learn LogisticRegression, in memory "}


def child(name: str, rows: int) -> None:
    """Train one contender, then score the test set (timed separately)."""
    kind, key, fn, extra = CONTENDERS[name]
    files = paths(rows)[kind]
    test = files["test.vw"] if fn is _vw else files["test.parquet"]
    started = time.perf_counter()
    score, info = fn(files[key], test, kind == "sparse", **extra)
    out = {"train_seconds_inside": time.perf_counter() - started, **harness.trained(), **info}
    scoring = time.perf_counter()
    p = score()
    out["scoring_seconds"] = time.perf_counter() - scoring
    if not name.startswith(("floor", "streamfit kernel")):
        import pyarrow.parquet as pq
        from sklearn.metrics import log_loss, roc_auc_score

        y = pq.read_table(files["test.parquet"], columns=["label"]).column("label").to_numpy()
        p = np.clip(p, 1e-7, 1 - 1e-7)
        out["auc"] = float(roc_auc_score(y, p))
        out["log_loss"] = float(log_loss(y, p))
    harness.send(out)


def main() -> None:
    parser = harness.parser(__doc__, rows=2_000_000)
    parser.add_argument("--only", choices=["dense", "sparse"])
    parser.add_argument("--with-slow", action="store_true", help="also the slow sparse peers")
    parser.add_argument("--repeat", type=int, default=1, help="rounds, contenders taking turns")
    args = parser.parse_args()
    if args.child:
        child(args.child, args.rows)
        return
    print(f"data: {args.rows:,} training rows per set (cached in {DATA})", flush=True)
    make_data(args.rows)
    runs = []
    for round_ in range(args.repeat):
        for kind in ("dense", "sparse"):
            names = [
                name
                for name, (k, *_rest) in CONTENDERS.items()
                if k == kind
                and args.only in (None, kind)
                and (args.with_slow or name not in SLOW)
                and (not args.match or args.match in name)
            ]
            for doc in harness.run_all(__file__, names, ["--rows", str(args.rows)], args.rows):
                runs.append({**doc, "kind": kind, "round": round_})
    results = summarise(runs, "Vowpal Wabbit")
    for kind in ("dense", "sparse"):
        rows = [r for r in results if r["kind"] == kind]
        if rows:
            print()
            harness.report(rows, COLUMNS, baseline="floor", label_header=kind)
    harness.write_json(args.json, {"rounds": args.repeat, "results": results, "runs": runs})


def summarise(runs: list[dict[str, Any]], baseline: str) -> list[dict[str, Any]]:
    """One row per contender: the median over its rounds of each number, ``runs`` the
    rounds without an error, and ``vs_baseline`` the median over rounds of its wall time
    over that of the contender named ``baseline`` (of its kind) in the same round.

    >>> runs = [{"name": n, "kind": "s", "round": r, "wall": w}
    ...         for r, pair in enumerate([(2.0, 4.0), (3.0, 9.0), (2.0, 5.0)])
    ...         for n, w in zip(("VW", "sf"), pair)]
    >>> [(r["name"], r["wall"], r["vs_baseline"]) for r in summarise(runs, "VW")]
    [('VW', 2.0, 1.0), ('sf', 5.0, 2.5)]
    """
    base = {
        (r["kind"], r["round"]): r["wall"]
        for r in runs
        if baseline in r["name"] and "error" not in r
    }
    out = []
    for name in dict.fromkeys(r["name"] for r in runs):
        mine = [r for r in runs if r["name"] == name]
        good = [r for r in mine if "error" not in r]
        if not good:
            out.append(mine[0])
            continue
        row: dict[str, Any] = {"name": name, "kind": good[0]["kind"], "runs": len(good)}
        for key, first in good[0].items():
            if isinstance(first, int | float) and not isinstance(first, bool) and key != "round":
                row[key] = statistics.median(r[key] for r in good if key in r)
            elif key not in row:
                row[key] = first
        ratios = [
            r["wall"] / base[r["kind"], r["round"]] for r in good if (r["kind"], r["round"]) in base
        ]
        if ratios:
            row["vs_baseline"] = statistics.median(ratios)
        out.append(row)
    return out


COLUMNS = [
    harness.Column("wall s", "wall"),
    harness.Column("x VW", "vs_baseline", ".2f"),
    harness.Column("x floor", "wall", ".2f", vs="ratio"),
    harness.Column("CPU s", "cpu_seconds"),
    harness.Column("first call s", "first_call_seconds", ".2f"),
    harness.Column("rows/s", "rows_per_second", ",.0f"),
    harness.Column("peak RSS MB", "peak_rss_mb", ".0f"),
    harness.Column("test AUC", "auc", ".4f"),
    harness.Column("log-loss", "log_loss", ".4f"),
]


if __name__ == "__main__":
    main()
