"""Tiny real models trained by the library, and rows to ask them about."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from streamfit import train
from streamfit.data.chunk import dense_record_batch
from streamfit.data.writers import write
from streamfit.datagen import cluster_task, linear_task, low_rank_task, write_batches
from streamfit.serving import ServeSettings, create_app, load_served
from streamfit.training.inference import predict_records

N_FEATURES = 4


@dataclass(frozen=True)
class Models:
    """Model folders by name: ``ll`` (binary Linear Learner), ``kmeans`` and ``pca``."""

    root: Path
    ll: Path
    kmeans: Path
    pca: Path


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> Models:
    root = tmp_path_factory.mktemp("served")
    write_batches(root / "ll.parquet", linear_task(N_FEATURES, "binary", seed=1).blocks(400))
    train(
        "linear-learner",
        str(root / "ll.parquet"),
        hyperparameters={"predictor_type": "binary_classifier"},
        output=root / "ll-job",
        progress=False,
    )
    write_batches(root / "km.parquet", cluster_task(N_FEATURES, k=3, seed=1).blocks(400))
    train(
        "kmeans",
        str(root / "km.parquet"),
        hyperparameters={"k": 3, "feature_dim": N_FEATURES},
        output=root / "km-job",
        progress=False,
    )
    write_batches(root / "pca.parquet", low_rank_task(N_FEATURES, rank=2, seed=1).blocks(400))
    train(
        "pca",
        str(root / "pca.parquet"),
        hyperparameters={"num_components": 2, "feature_dim": N_FEATURES},
        output=root / "pca-job",
        progress=False,
    )
    ll, kmeans, pca = root / "ll", root / "kmeans", root / "pca"
    (root / "ll-job" / "model").rename(ll)
    (root / "km-job" / "model").rename(kmeans)
    (root / "pca-job" / "model").rename(pca)
    return Models(root, ll, kmeans, pca)


def rows(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, N_FEATURES)).astype(np.float32)


def csv_body(x: np.ndarray) -> bytes:
    return "".join(",".join(repr(float(v)) for v in row) + "\n" for row in x).encode()


def recordio_body(x: np.ndarray) -> bytes:
    out = io.BytesIO()
    write("recordio", [dense_record_batch(x, None)], out)
    return out.getvalue()


def expected(model: Path, x: np.ndarray, tmp_path: Path) -> list[dict[str, object]]:
    """What ``streamfit predict`` answers for rows ``x`` (read from a CSV file)."""
    path = tmp_path / "expected.csv"
    path.write_bytes(csv_body(x))
    return list(predict_records(model, str(path)))


@pytest.fixture
def client(models: Models) -> Iterator[TestClient]:
    """One Linear Learner, batching as ``streamfit serve`` does by default."""
    with TestClient(create_app(load_served([str(models.ll)]), ServeSettings())) as c:
        yield c


@pytest.fixture
def multi(models: Models) -> Iterator[TestClient]:
    """Three models, one named ``clusters=PATH``."""
    served = load_served([str(models.ll), f"clusters={models.kmeans}", str(models.pca)])
    with TestClient(create_app(served)) as c:
        yield c


def assert_close(got: object, want: object) -> None:
    """The same answers, floats within float32's last bits: rows predicted together may sum
    in another order than alone."""
    if isinstance(want, dict):
        assert isinstance(got, dict) and got.keys() == want.keys()
        for key in want:
            assert_close(got[key], want[key])
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want)
        for g, w in zip(got, want, strict=True):
            assert_close(g, w)
    elif isinstance(want, float):
        assert got == pytest.approx(want, rel=1e-5, abs=1e-6)
    else:
        assert got == want
