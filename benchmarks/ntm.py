"""The Neural Topic Model against the topic models a user would pick instead, on real text.

    python benchmarks/ntm.py [--topics 20 50] [--match NAME[|NAME...]] [--json out.json]
    python benchmarks/ntm.py --curve [--topics 20]    # NPMI against documents read
    python benchmarks/ntm.py --scale [--rows 1000000] # generated LDA documents from disk
    python benchmarks/ntm.py --set learning_rate=0.005 --set replay=8 --match streamfit

Data: Debian's English package descriptions, frozen and preprocessed once by ntm_corpus.py
(5,000 words, 80/20 split by a fixed seed; see there). Every contender reads the same
documents and runs in its own process, one thread each (OMP/BLAS and torch), one after the
other: wall time runs from the parent starting it to the model being trained (start-up,
imports and reading included; scoring not), peak RSS is the process's own (VmHWM).

Every model is scored the same way, by streamfit.algorithms.ntm.evaluation: NPMI of each
topic's top 10 words by co-occurrence in the test documents, topic diversity of the top 25,
topic uniqueness of the top 10. A topic's words are ranked by its decoder weights (LDA: its
word probabilities; ProdLDA: its decoder column, as Pyro's example and topics.json rank them);
"NPMI, other ranking" scores the two ProdLDA networks by their batch-normalised logits (of a
document wholly of the topic) instead.
Perplexity is each model's own bound on the test documents, ``exp(-bound / words)``: the two
LDA rows bound it by online variational Bayes (comparable with each other), the ProdLDA rows
by the evidence lower bound at the posterior mean (comparable with each other, each under its
own prior); across the two families the bounds are not comparable.

``--curve`` trains streamfit (one read, replay, resumed from a checkpoint every 4,000
documents: resume is exact, so the run is the one-read run) and gensim (``update`` on
successive blocks of 4,000) and scores their topics along the way. ``--scale`` writes 10^5
and 10^6 documents drawn from a true LDA model (``datagen.lda_task``: 5,000 words, 20 topics,
50 words a document) and trains streamfit on each from disk: peak memory must not grow.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

import harness
import ntm_corpus
from ntm_corpus import Corpus
from ntm_peers import CURVE_STEP, PEERS, Fitted, bn_logits, csr_matrix

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
TOPICS = (20, 50)
SCALE_ROWS = (100_000, 1_000_000)
SCALE_TEST = 10_000
ONE_THREAD = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")

#: name: (function, keyword arguments); the first word is what --curve and --scale pick.
CONTENDERS: dict[str, tuple[str, dict[str, Any]]] = {
    "streamfit NTM, one read + replay (Parquet)": ("streamfit", {}),
    "streamfit NTM, one read + replay (raw text, vocab.txt)": ("streamfit", {"fmt": "txt"}),
    "streamfit NTM, one read, no replay (Parquet)": ("streamfit", {"replay": 0}),
    "scikit-learn online LDA, one pass": ("sklearn", {}),
    "gensim LdaModel, one pass": ("gensim", {}),
    "ProdLDA (Pyro's example), 10 epochs in memory": ("prodlda", {}),
}


# -- streamfit -------------------------------------------------------------------------------


def _source(path: Path, fmt: str, corpus: Corpus) -> Any:
    """A test split to score on: raw text counted by the corpus's vocabulary, or counts."""
    from streamfit import SourceOptions, open_source
    from streamfit.data.vocabulary import Vocabulary

    if fmt == "txt":
        words = Vocabulary.load(str(corpus.vocab))
        return open_source(
            str(path), SourceOptions(content_type="text/plain", labelled=False, vocabulary=words)
        )
    return open_source(str(path), SourceOptions(labelled=False))


def streamfit_ntm(
    corpus: Corpus, k: int, curve: int = 0, fmt: str = "parquet", **hp: Any
) -> Fitted:
    from streamfit import train as fit

    params = {"feature_dim": len(corpus.words()), "num_topics": k, **hp}
    train = str(corpus.path("train", fmt))
    options: dict[str, Any] = {"hyperparameters": params, "progress": False, "threads": 1}
    if fmt == "txt":  # the auxiliary channel's words count the text, as a user would
        options.update(auxiliary=str(corpus.vocab), content_type="text/plain")
    snapshots: list[tuple[int, np.ndarray]] = []
    if curve:
        result = _train_in_steps(fit, train, options, params, curve, snapshots)
        end = (int(result.state.trainer.rows), _decoder_topics(result.model))
        if snapshots and snapshots[-1][0] == end[0]:
            snapshots.pop()  # stopped after the last batch: the end of the read comes next
        snapshots.append(end)
    else:
        result = fit("ntm", train, checkpoint_seconds=None, **options)
    model = result.model

    def perplexity() -> float:
        from streamfit import Batcher
        from streamfit.core.registry import get_algorithm

        algo = get_algorithm("ntm")(params)
        test = _source(corpus.path("test", fmt), fmt, corpus)
        metrics = algo.evaluate(model, Batcher(test, 4096, n_features=params["feature_dim"]))
        return float(metrics["perplexity"])

    info = {k: v for k, v in result.metrics.items() if k.startswith("train:")}
    return Fitted(
        _decoder_topics(model), perplexity, info, snapshots, other_ranking=_normalised(model)
    )


def _decoder_topics(model: Any) -> np.ndarray:
    """Topics x words: each topic's decoder column (``topic_logits``), topics.json's order."""
    from streamfit.algorithms.ntm.model import topic_logits

    return topic_logits(model.tensors).numpy()


def _normalised(model: Any) -> np.ndarray:
    """Topics x words: each topic's logits, batch-normalised by each word's running mean and
    variance (a document wholly of that topic)."""
    t = model.tensors
    mean, var = (t[f"decoder_norm.running_{s}"].double().numpy() for s in ("mean", "var"))
    return bn_logits(_decoder_topics(model), mean, var, 1e-5)


def _train_in_steps(
    fit: Any,
    train: Any,
    options: dict[str, Any],
    params: dict[str, Any],
    every: int,
    out: list[Any],
) -> Any:
    """One read, stopped after every ``every`` documents (``max_batches``, which checkpoints)
    and resumed from the checkpoint; the topics at each stop go to ``out``."""
    from streamfit.core.registry import get_algorithm
    from streamfit.errors import TrainingInterrupted
    from streamfit.training.checkpoint import Checkpoints

    batch = int(params.get("mini_batch_size", get_algorithm("ntm")(params).hp.mini_batch_size))
    step = max(1, every // batch)
    with tempfile.TemporaryDirectory(prefix="sf-ntm-curve-") as folder:
        while True:
            try:
                return fit("ntm", train, checkpoint_dir=folder, max_batches=step, **options)
            except TrainingInterrupted:
                state = Checkpoints(folder).load_latest("ntm")
                assert state is not None
                model = get_algorithm("ntm")(state.hyperparameters).finalize(state)
                out.append((state.trainer.rows, _decoder_topics(model)))


# -- scoring ---------------------------------------------------------------------------------


def top_ids(topic_words: np.ndarray, n: int) -> np.ndarray:
    """Each topic's ``n`` heaviest words, heaviest first (ties by id).

    >>> top_ids(np.array([[0.1, 0.5, 0.2], [0.3, 0.3, 0.0]]), 2).tolist()
    [[1, 2], [0, 1]]
    """
    order: np.ndarray = np.argsort(-topic_words, axis=1, kind="stable")[:, :n]
    return order


def score(topic_words: np.ndarray, test: Any) -> dict[str, float]:
    from streamfit.algorithms.ntm.evaluation import npmi, topic_diversity, topic_uniqueness

    return {
        "npmi": npmi(top_ids(topic_words, 10), test),
        "topic_diversity": topic_diversity(top_ids(topic_words, 25)),
        "topic_uniqueness": topic_uniqueness(top_ids(topic_words, 10)),
    }


FUNCTIONS = {"streamfit": streamfit_ntm, **PEERS}


def child(name: str, args: Any) -> None:
    """Train one contender, then score its topics on the test documents (timed apart)."""
    corpus = Corpus(args.corpus)
    function, extra = CONTENDERS[name]
    kwargs = {**extra}
    if function == "streamfit":
        kwargs.update(harness.settings(args.set))
    elif function == "prodlda" and args.prodlda_epochs is not None:
        kwargs["epochs"] = args.prodlda_epochs
    started = time.perf_counter()
    curve = args.curve_step if args.curve else 0
    fitted = FUNCTIONS[function](corpus, args.topics[0], curve, **kwargs)
    out = {"train_seconds_inside": time.perf_counter() - started, **harness.trained()}
    scoring = time.perf_counter()
    test = csr_matrix(corpus, "test")
    out.update(score(fitted.topic_words, test))
    if fitted.other_ranking is not None:
        other = score(fitted.other_ranking, test)
        out["npmi_other"], out["diversity_other"] = other["npmi"], other["topic_diversity"]
    out["perplexity"] = fitted.perplexity() if fitted.perplexity else None
    words = corpus.words()
    out["topics"] = [" ".join(words[i] for i in row) for row in top_ids(fitted.topic_words, 10)]
    out["curve"] = [[n, score(tw, test)["npmi"]] for n, tw in fitted.curve]
    out["scoring_seconds"] = time.perf_counter() - scoring
    out.update(fitted.info, topics_k=args.topics[0], settings=kwargs)
    harness.send(out)


# -- the scale run ---------------------------------------------------------------------------


def scale_files(folder: Path, rows: int, test: int) -> tuple[Path, Path]:
    return folder / f"lda-{rows}-train.parquet", folder / f"lda-{test}-test.parquet"


def _scale_task() -> Any:
    from streamfit.datagen import lda_task

    return lda_task(5000, 20, seed=7, doc_length=50)


def make_scale_data(folder: Path, rows: int, test: int) -> None:
    from streamfit.datagen import write_batches

    task = _scale_task()
    splits = zip(scale_files(folder, rows, test), (rows, test), (0, 10**12), strict=True)
    for path, n, offset in splits:
        if not path.exists():
            folder.mkdir(parents=True, exist_ok=True)
            started = time.perf_counter()
            tmp = path.with_name(f".tmp-{path.name}")  # named .parquet: its format
            write_batches(tmp, task.blocks(n, offset=offset))
            tmp.rename(path)
            print(f"  wrote {path.name} ({time.perf_counter() - started:.0f} s)", flush=True)


def scale_child(rows: int, args: Any) -> None:
    import pyarrow.parquet as pq
    import scipy.sparse as sp

    from streamfit import train as fit

    train, test_path = scale_files(args.data, rows, args.test_rows)
    params = {"feature_dim": 5000, "num_topics": 20, **harness.settings(args.set)}
    result = fit("ntm", str(train), hyperparameters=params, progress=False, threads=1)
    out = harness.trained()
    table = pq.read_table(test_path)
    idx = table.column("indices").combine_chunks()
    test = sp.csr_matrix(
        (table.column("values").combine_chunks().flatten(), idx.flatten(), idx.offsets),
        shape=(len(table), 5000),
    )
    out.update(score(_decoder_topics(result.model), test), rows=rows)
    out["true_topics_npmi"] = score(np.log(_scale_task().topics), test)["npmi"]
    harness.send(out)


# -- the parent ------------------------------------------------------------------------------


def main() -> None:
    parser = harness.parser(__doc__, rows=None)
    parser.add_argument("--topics", type=int, nargs="+", default=list(TOPICS))
    parser.add_argument("--curve", action="store_true", help="NPMI against documents read")
    parser.add_argument("--curve-step", type=int, default=CURVE_STEP, help="documents a point")
    parser.add_argument("--scale", action="store_true", help="10^5 and 10^6 generated documents")
    parser.add_argument("--rows", type=int, nargs="+", default=list(SCALE_ROWS), help="--scale")
    parser.add_argument("--set", action="append", help="a streamfit hyperparameter, name=value")
    parser.add_argument("--prodlda-epochs", type=int, help="ProdLDA's epochs (default 10)")
    parser.add_argument("--corpus", type=Path, help="a prepared corpus folder (ntm_corpus.py)")
    parser.add_argument("--data", type=Path, default=DATA, help="--scale's data folder")
    parser.add_argument("--test-rows", type=int, default=SCALE_TEST, help="--scale's test set")
    args = parser.parse_args()
    for name in ONE_THREAD:
        os.environ[name] = "1"
    if args.child:
        if args.child.startswith("scale "):
            scale_child(int(args.child.split()[1]), args)
        else:
            child(args.child, args)
        return
    passed = [*(["--set", s] for s in args.set or [])]
    common = [x for pair in passed for x in pair]
    if args.prodlda_epochs is not None:
        common += ["--prodlda-epochs", str(args.prodlda_epochs)]
    if args.scale:
        run_scale(args, common)
    else:
        run_comparison(args, common)


def run_comparison(args: Any, common: list[str]) -> None:
    corpus = Corpus(args.corpus) if args.corpus else ntm_corpus.load()
    docs = corpus.documents("train")
    names = [
        n
        for n, (function, _) in CONTENDERS.items()
        if matches(n, args.match)
        and (not args.curve or function in ("streamfit", "gensim"))
        and not (args.curve and n != _first(function))
    ]
    results = []
    for k in args.topics:
        print(f"\nK = {k}:", flush=True)
        extra = ["--topics", str(k), "--corpus", str(corpus.folder), *common]
        if args.curve:
            extra += ["--curve", "--curve-step", str(args.curve_step)]
        for doc in harness.run_all(__file__, names, extra, rows=docs):
            results.append({**doc, "k": k})
    print()
    if args.curve:
        report_curve(results)
    else:
        harness.report(results, COLUMNS, baseline="gensim", group="k", labels=[("K", "k")])
    harness.write_json(args.json, results)


def matches(name: str, match: str | None) -> bool:
    """Whether ``--match`` picks contender ``name``: any of its ``|``-separated parts is in
    the name, so that one run times streamfit against gensim on the same files.

    >>> matches("gensim LdaModel, one pass", "replay (Parquet)|gensim")
    True
    """
    return not match or any(part in name for part in match.split("|"))


def _first(function: str) -> str:
    return next(n for n, (f, _) in CONTENDERS.items() if f == function)


COLUMNS = [
    harness.Column("NPMI", "npmi", ".3f"),
    harness.Column("vs ProdLDA", "npmi", "+.0%", vs="change", baseline="ProdLDA"),
    harness.Column("NPMI, other ranking", "npmi_other", ".3f"),
    harness.Column("diversity", "topic_diversity", ".2f"),
    harness.Column("TU", "topic_uniqueness", ".2f"),
    harness.Column("perplexity", "perplexity", ",.0f"),
    harness.Column("docs/s", "rows_per_second", ",.0f"),
    harness.Column("wall s", "wall"),
    harness.Column("x gensim", "wall", ".2f", vs="ratio"),
    harness.Column("peak RSS MB", "peak_rss_mb", ".0f"),
]


def report_curve(results: list[dict[str, Any]]) -> None:
    rows = []
    for doc in results:
        for n, value in doc.get("curve", []):
            rows.append({"name": doc["name"], "k": doc["k"], "read": n, "npmi": value})
    columns = [
        harness.Column("documents read", "read", ",.0f"),
        harness.Column("NPMI", "npmi", ".3f"),
    ]
    harness.report(rows, columns, labels=[("K", "k")])


def run_scale(args: Any, common: list[str]) -> None:
    results = []
    for rows in args.rows:
        print(f"data: {rows:,} generated documents (cached in {args.data})", flush=True)
        make_scale_data(args.data, rows, args.test_rows)
        extra = [*common, "--data", str(args.data), "--test-rows", str(args.test_rows)]
        for doc in harness.run_all(__file__, [f"scale {rows}"], extra, rows=rows):
            results.append(doc)
    print()
    harness.report(
        results,
        [
            harness.Column("documents", "rows", ",.0f"),
            harness.Column("docs/s", "rows_per_second", ",.0f"),
            harness.Column("wall s", "wall"),
            harness.Column("peak RSS MB", "peak_rss_mb", ".0f"),
            harness.Column("RSS vs first", "peak_rss_mb", "+.1%", vs="change"),
            harness.Column("NPMI", "npmi", ".3f"),
            harness.Column("true topics' NPMI", "true_topics_npmi", ".3f"),
        ],
        baseline=f"scale {args.rows[0]}",
    )
    harness.write_json(args.json, results)


if __name__ == "__main__":
    main()
