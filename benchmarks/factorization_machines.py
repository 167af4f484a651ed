"""Factorization Machines against the peers a user would pick instead, on the same data.

    python benchmarks/factorization_machines.py [--rows 2000000] [--match NAME] [--json out.json]
    python benchmarks/factorization_machines.py --curve 20000000   # test AUC against rows seen

Data (generated deterministically, cached under benchmarks/data/): click-like rows from
``fm_task()``: 30 categorical fields with Zipf-distributed ids (vocabularies from 4 to about
100,000 ids), every (field, id) hashed into 2^20 columns, labelled by a true factorization
machine (8 factors; linear part of the logit with standard deviation about 1, pairwise part
about 1.5) through a Bernoulli draw. The generating model's own AUC on the test rows is the
ceiling. Each format holds the same rows: Parquet (indices/values lists), libsvm and
Vowpal Wabbit text (one namespace ``f``, features ``f<index>``).

Each contender runs in its own process: wall time runs from the parent starting it to the
model being trained (interpreter start-up, imports and reading included, scoring not); peak
RSS is the process's own (VmHWM). Every model scores the same 100,000 test rows.

Contenders: streamfit Factorization Machines (one pass, num_factors 16; at its defaults, 8
packed candidates, and the same with ``num_models=1``, whose wall times' ratio is what packing
costs; Adam with the parameters averaged over the last ~300 batches, and Adagrad), streamfit
Linear Learner (one pass: what interactions add), Vowpal Wabbit with all quadratic
interactions (``-q ff``) and with its low-rank quadratic model (``--lrq ff16``, a
factorization machine), and xLearn's FM (``epoch=1``, on disk) when it is installed (``pip
install xlearn``; it needs ``USER`` set); and, as a ceiling rather than a peer, myFM's
Bayesian FM (Gibbs sampling, in memory, 30 sweeps; ``pip install "setuptools<81"`` then ``pip
install --no-build-isolation myfm``). fastFM and tffm install here too but train in memory
only, for many iterations (see the note in the issue); torchfm is a model without a trainer.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import harness

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
TEST_ROWS = 100_000
BITS = 20
FM_HP = {
    "feature_dim": 1 << BITS,
    "num_factors": 16,
    "predictor_type": "binary_classifier",
    "linear_lr": 0.003,
    "factors_lr": 0.003,
    "linear_wd": 0.0,
    "factors_wd": 0.0,
    "factors_init_sigma": 0.01,
    "averaging_batches": 300,
}
FM_ADAGRAD = {**FM_HP, "optimizer": "adagrad", "linear_lr": 0.03, "factors_lr": 0.03}
del FM_ADAGRAD["averaging_batches"]
#: The defaults: 8 packed candidates (num_models auto) around Adagrad 0.05 / 0.02.
FM_DEFAULTS = {"feature_dim": 1 << BITS, "num_factors": 16, "predictor_type": "binary_classifier"}
PACKED = "streamfit FM defaults (8 candidates), one pass, k=16"
SINGLE = "streamfit FM defaults, num_models=1, one pass, k=16"


def paths(rows: int) -> dict[str, Path]:
    return {
        "parquet": DATA / f"fm-{rows}-train.parquet",
        "libsvm": DATA / f"fm-{rows}-train.libsvm",
        "vw": DATA / f"fm-{rows}-train.vw",
        "test.parquet": DATA / "fm-test.parquet",
        "test.libsvm": DATA / "fm-test.libsvm",
        "test.vw": DATA / "fm-test.vw",
        "test.scores": DATA / "fm-test-scores.npy",
    }


def _write_vw(batches: list[Any], path: Path) -> None:
    with open(path, "w") as f:
        for b in batches:
            y = b.column("label").to_numpy()
            idx = b.column("indices").values.to_numpy().reshape(len(y), -1)
            for label, row in zip(y, idx, strict=True):
                f.write(
                    ("1" if label > 0 else "-1") + " |f " + " ".join(f"f{i}" for i in row) + "\n"
                )


def make_data(rows: int) -> dict[str, Path]:
    from streamfit.datagen import fm_task, write_batches

    DATA.mkdir(parents=True, exist_ok=True)
    task = fm_task(n_features=1 << BITS)
    files = paths(rows)
    for split, n, offset in (("", rows, 0), ("test.", TEST_ROWS, 10**12)):
        if files[f"{split}vw"].exists():
            continue
        started = time.perf_counter()
        scores: list[np.ndarray] = []
        batches = list(task.blocks(n, block=100_000, offset=offset, scores=scores))
        write_batches(files[f"{split}parquet"], iter(batches))
        write_batches(files[f"{split}libsvm"], iter(batches))
        if split:
            np.save(files["test.scores"], np.concatenate(scores))
        _write_vw(batches, files[f"{split}vw"])
        print(f"  wrote {n:,} rows ({time.perf_counter() - started:.0f} s)", flush=True)
    return files


def _labels(path: Path) -> np.ndarray:
    import pyarrow.parquet as pq

    return np.asarray(pq.read_table(path, columns=["label"]).column(0))


def _test_labels(files: dict[str, Path]) -> np.ndarray:
    return _labels(files["test.parquet"])


# -- contenders (each in a child process) ----------------------------------------------------


def _streamfit(files: dict[str, Path], algorithm: str, hp: dict[str, Any]) -> Callable[[], Any]:
    import streamfit

    result = streamfit.train(algorithm, str(files["parquet"]), hyperparameters=hp, progress=False)

    def score() -> np.ndarray:
        answers = streamfit.predict_records(result.model, str(files["test.parquet"]), labelled=True)
        return np.array([a["score"] for a in answers])

    return score


def _vw(files: dict[str, Path], options: str) -> Callable[[], Any]:
    import tempfile

    import vowpalwabbit

    folder = Path(tempfile.mkdtemp())
    model = folder / "model.vw"
    ws = vowpalwabbit.Workspace(
        f"-d {files['vw']} --loss_function logistic -b {BITS + 2} {options} -f {model} --quiet"
    )
    ws.run_parser()
    ws.finish()

    def score() -> np.ndarray:
        preds = folder / "preds.txt"
        tester = vowpalwabbit.Workspace(
            f"-t -i {model} -d {files['test.vw']} --link logistic -p {preds} --quiet"
        )
        tester.run_parser()
        tester.finish()
        return np.loadtxt(preds)

    return score


def _xlearn(files: dict[str, Path]) -> Callable[[], Any]:
    import tempfile

    os.environ.setdefault("USER", "streamfit")  # xLearn aborts without it
    import xlearn as xl

    folder = Path(tempfile.mkdtemp())
    fm = xl.create_fm()
    fm.setTrain(str(files["libsvm"]))
    fm.setOnDisk()
    fm.disableEarlyStop()
    params = {"task": "binary", "lr": 0.05, "lambda": 0.0, "k": 16, "epoch": 1, "nthread": 2}
    fm.fit(params, str(folder / "model.out"))

    def score() -> np.ndarray:
        fm.setTest(str(files["test.libsvm"]))
        fm.setSigmoid()
        fm.predict(str(folder / "model.out"), str(folder / "out.txt"))
        return np.loadtxt(folder / "out.txt")

    return score


def _parquet_csr(path: Path) -> Any:
    import pyarrow.parquet as pq
    import scipy.sparse as sp

    table = pq.read_table(path, columns=["indices", "values"]).combine_chunks()
    col = table.column("indices").chunk(0)
    values = table.column("values").chunk(0).values.to_numpy()
    shape = (len(col), 1 << BITS)
    return sp.csr_matrix((values, col.values.to_numpy(), col.offsets.to_numpy()), shape=shape)


def _myfm(files: dict[str, Path]) -> Callable[[], Any]:
    """Bayesian FM by Gibbs sampling, in memory, 30 sweeps: what a learner can get out of
    these rows when memory and passes are free (a ceiling, as in-memory logistic regression
    is in the Linear Learner benchmark)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # myFM imports pkg_resources
        import myfm

    x, y = _parquet_csr(files["parquet"]), _labels(files["parquet"])
    # Only the columns training uses (about 141,000 of 2^20): myFM samples every column's
    # parameters each sweep, and a column no row uses only adds time.
    used = np.unique(x.indices)
    fm = myfm.MyFMClassifier(rank=16, random_seed=0)
    fm.fit(x[:, used], y, n_iter=30, n_kept_samples=20)

    def score() -> np.ndarray:
        return np.asarray(fm.predict_proba(_parquet_csr(files["test.parquet"])[:, used]))

    return score


LL_HP = {"predictor_type": "binary_classifier", "feature_dim": 1 << BITS, "num_models": 1}
CONTENDERS: dict[str, Callable[[dict[str, Path]], Callable[[], Any]]] = {
    "streamfit FM, one pass, k=16": lambda f: _streamfit(f, "factorization-machines", FM_HP),
    "streamfit FM Adagrad, one pass, k=16": lambda f: _streamfit(
        f, "factorization-machines", FM_ADAGRAD
    ),
    PACKED: lambda f: _streamfit(f, "factorization-machines", FM_DEFAULTS),
    SINGLE: lambda f: _streamfit(f, "factorization-machines", {**FM_DEFAULTS, "num_models": 1}),
    "streamfit Linear Learner, one pass": lambda f: _streamfit(f, "linear-learner", LL_HP),
    "Vowpal Wabbit -q ff, one pass": lambda f: _vw(f, "-q ff"),
    "Vowpal Wabbit --lrq ff16, one pass": lambda f: _vw(f, "--lrq ff16 --lrqdropout"),
    "Vowpal Wabbit linear, one pass": lambda f: _vw(f, ""),
    "xLearn FM, one pass on disk, k=16": _xlearn,
    "myFM Bayesian FM, in memory, 30 Gibbs sweeps, k=16": _myfm,
}


def child(name: str, rows: int) -> None:
    from sklearn.metrics import log_loss, roc_auc_score

    files = paths(rows)
    score = CONTENDERS[name](files)
    out = harness.trained()
    p = np.clip(score(), 1e-7, 1 - 1e-7)
    y = _test_labels(files)
    out["test_auc"] = float(roc_auc_score(y, p))
    out["test_log_loss"] = float(log_loss(y, p))
    harness.send(out)


def _csr(block: Any) -> Any:
    import torch

    from streamfit.core.batch import CSR

    col = block.column("indices")  # a slice of a list array: offsets need not start at 0
    offsets = col.offsets.to_numpy().astype(np.int64)
    return CSR(
        torch.from_numpy(offsets - offsets[0]),
        torch.from_numpy(col.flatten().to_numpy().astype(np.int64)),
        torch.from_numpy(block.column("values").flatten().to_numpy(zero_copy_only=False).copy()),
        1 << BITS,
    )


def curve(max_rows: int) -> None:
    """How far one pass gets with more rows: the same task, test AUC after 1M, 2M, 5M, ...
    rows (generated on the fly, in memory), for both streamfit FM configurations."""
    import pyarrow.parquet as pq
    import torch
    from sklearn.metrics import roc_auc_score

    from streamfit import Batch, get_algorithm
    from streamfit.datagen import fm_task

    files = make_data(TEST_ROWS)
    test = pq.read_table(files["test.parquet"]).to_batches(max_chunksize=10_000)
    y = _test_labels(files)
    marks = [m for m in (10**6, 2 * 10**6, 5 * 10**6, 10**7, 2 * 10**7, 5 * 10**7) if m <= max_rows]
    task = fm_task(n_features=1 << BITS)
    torch.set_num_threads(1)
    for name, hp in (("Adam, averaged", FM_HP), ("Adagrad", FM_ADAGRAD)):
        algo = get_algorithm("factorization-machines")(**hp)
        state = algo.init_state(1 << BITS)
        seen = 0
        for block in task.blocks(marks[-1], block=100_000):
            x, labels = _csr(block), torch.from_numpy(block.column("label").to_numpy().copy())
            for i in range(0, block.num_rows, 1000):
                rows = torch.arange(i, min(i + 1000, block.num_rows))
                algo.update(state, Batch(x.select_rows(rows), labels[rows]))
            seen += block.num_rows
            if seen in marks:
                model = algo.finalize(state)
                p = np.concatenate([model.predict(_csr(b))["score"].numpy() for b in test])
                print(f"| {name} | {seen:,} | {roc_auc_score(y, p):.4f} |", flush=True)


COLUMNS = [
    harness.Column("wall s", "wall"),
    harness.Column("rows/s", "rows_per_second", ",.0f"),
    harness.Column("x streamfit FM", "wall", ".2f", vs="ratio"),
    harness.Column("CPU s", "cpu_seconds"),
    harness.Column("peak RSS MB", "peak_rss_mb", ".0f"),
    harness.Column("test AUC", "test_auc", ".4f"),
    harness.Column("log loss", "test_log_loss", ".4f"),
]


def main() -> None:
    parser = harness.parser(__doc__, rows=2_000_000)
    parser.add_argument("--skip", help="leave out contenders naming any of these: a,b")
    parser.add_argument("--curve", type=int, help="test AUC against rows seen, up to this many")
    args = parser.parse_args()
    if args.curve:
        curve(args.curve)
        return
    if args.child:
        child(args.child, args.rows)
        return
    print(f"data: {args.rows:,} click-like rows, 30 fields, 2^{BITS} columns ({DATA})", flush=True)
    files = make_data(args.rows)
    from sklearn.metrics import log_loss, roc_auc_score

    y = _test_labels(files)
    truth = np.load(files["test.scores"])
    p = 1 / (1 + np.exp(-truth))
    ceiling = {"auc": float(roc_auc_score(y, truth)), "log_loss": float(log_loss(y, p))}
    skip = args.skip.split(",") if args.skip else []
    names = [
        name
        for name in CONTENDERS
        if (not args.match or args.match in name) and not any(part in name for part in skip)
    ]
    results = harness.run_all(__file__, names, ["--rows", str(args.rows)], args.rows)
    print(
        f"\ngenerating model: test AUC {ceiling['auc']:.4f}, log loss {ceiling['log_loss']:.4f}\n"
    )
    harness.report(results, COLUMNS, baseline="streamfit FM")
    packing = packing_cost(results)
    if packing:
        print(f"\n{packing}")
    harness.write_json(args.json, {"ceiling": ceiling, "results": results})


def packing_cost(results: list[dict[str, Any]]) -> str | None:
    """What the 8 packed candidates of the defaults cost against one model, same run.

    >>> packing_cost([{"name": PACKED, "wall": 30.0, "rows_per_second": 1e5},
    ...               {"name": SINGLE, "wall": 10.0, "rows_per_second": 3e5}])
    'defaults, 8 candidates against num_models=1: 3.00x the wall time, 0.33x the rows/s'
    """
    by_name = {r["name"]: r for r in results if "wall" in r}
    if PACKED not in by_name or SINGLE not in by_name:
        return None
    packed, single = by_name[PACKED], by_name[SINGLE]
    return (
        f"defaults, 8 candidates against num_models=1: {packed['wall'] / single['wall']:.2f}x "
        f"the wall time, {packed['rows_per_second'] / single['rows_per_second']:.2f}x the rows/s"
    )


if __name__ == "__main__":
    main()
