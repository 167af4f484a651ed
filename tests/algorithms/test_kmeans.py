"""K-Means: recovery, quality against scikit-learn, any k from one state, merging, decay,
sparse rows, and sweeps through the library and the CLI."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import streamfit
from streamfit import Batch, ConfigError, State
from streamfit.algorithms.kmeans import KMeans, KMeansModel
from streamfit.algorithms.kmeans.lloyd import weighted_kmeans
from streamfit.cli.main import cli
from streamfit.core.batch import CSR
from streamfit.data.chunk import dense_arrays
from streamfit.datagen import ClusterTask, cluster_task, write_batches

pytestmark = pytest.mark.usefixtures("one_thread")


def _rows(task: ClusterTask, n: int, offset: int = 0) -> torch.Tensor:
    blocks = task.blocks(n, block=20_000, offset=offset)
    return torch.from_numpy(np.concatenate([dense_arrays(b) for b in blocks]))


def _fit(algo: KMeans, x: torch.Tensor | CSR, bs: int = 1000) -> State:
    n = x.n_rows if isinstance(x, CSR) else x.shape[0]
    width = x.n_cols if isinstance(x, CSR) else x.shape[1]
    state = algo.init_state(width)
    for i in range(0, n, bs):
        rows = torch.arange(i, min(i + bs, n))
        feats = x.select_rows(rows) if isinstance(x, CSR) else x[i : i + bs]
        algo.update(state, Batch(feats))
    return state


def _msd(model: KMeansModel, x: torch.Tensor) -> float:
    return float(model.assign(x)[1].double().mean())


@pytest.fixture(scope="module")
def blobs() -> tuple[ClusterTask, torch.Tensor, torch.Tensor]:
    """8 well-separated clusters in 10 dimensions: 20,000 training and 5,000 test rows."""
    task = cluster_task(10, 8, seed=1)
    x = _rows(task, 20_000)
    test = _rows(task, 5000, offset=10**9)
    return task, x, test


@pytest.fixture(scope="module")
def blob_state(blobs: tuple[ClusterTask, torch.Tensor, torch.Tensor]) -> tuple[KMeans, State]:
    algo = KMeans(k=8)
    return algo, _fit(algo, blobs[1])


def test_recovers_well_separated_clusters(
    blobs: tuple[ClusterTask, torch.Tensor, torch.Tensor], blob_state: tuple[KMeans, State]
) -> None:
    task, _, test = blobs
    algo, state = blob_state
    model = algo.finalize(state)
    truth = torch.from_numpy(task.centers).float()
    gap = torch.cdist(truth, model.centers)
    # Each true centre has its own found centre, within a few standard errors (2,500 rows each).
    assert sorted(gap.argmin(1).tolist()) == list(range(8))
    assert float(gap.min(1).values.max()) < 0.15
    assert _msd(model, test) == pytest.approx(10.0, rel=0.05)  # unit noise in 10 dimensions


def test_msd_close_to_scikit_learn() -> None:
    from sklearn.cluster import KMeans as SkKMeans
    from threadpoolctl import threadpool_limits

    task = cluster_task(20, 10, seed=4, separation=2.5)  # overlapping: a real optimisation
    x = _rows(task, 30_000)
    test = _rows(task, 5000, offset=10**9)
    algo = KMeans(k=10)
    ours = _msd(algo.finalize(_fit(algo, x)), test)
    # One thread: scikit-learn's OpenMP workers would otherwise keep spinning after the fit
    # and slow every later torch operation of this process (measured 50x on two cores).
    with threadpool_limits(1):
        theirs = SkKMeans(10, n_init=3, random_state=0).fit(x.numpy()).cluster_centers_
    ref = _msd(KMeansModel({"centers": torch.from_numpy(theirs).float()}, {}), test)
    assert ours < ref * 1.01


def test_any_k_from_one_state(blob_state: tuple[KMeans, State]) -> None:
    algo, state = blob_state
    before = state.clone()
    K = state.tensors["centers"].shape[0]
    assert K == 80  # extra_center_factor auto: 10 per cluster
    sse = {k: algo.finalize(state, k=k).meta["weighted_sse"] for k in (1, 2, 4, 8, 16, 80)}
    assert [m.k for m in (algo.finalize(state, k=k) for k in (1, 5, K))] == [1, 5, K]
    assert sse[1] > sse[2] > sse[4] > sse[8] > sse[16] > sse[80]
    assert sse[80] == pytest.approx(0.0, abs=1e-6)  # every centre its own cluster
    # Deterministic, and the state is untouched (its generator included).
    a, b = algo.finalize(state, k=5), algo.finalize(state, k=5)
    assert torch.equal(a.centers, b.centers)
    assert torch.equal(state.tensors["centers"], before.tensors["centers"])
    assert torch.equal(state.generator.get_state(), before.generator.get_state())
    # Post-training settings arrive as strings from the CLI and SageMaker configs.
    assert algo.finalize(state, k="3", local_lloyd_init_method="random").k == 3


def test_spread_is_the_exact_sse_of_the_absorbed_rows_about_each_centre() -> None:
    """The parallel-axis bookkeeping equals the sum recomputed from the rows each centre took
    in (with the assignments made as training made them), batch after batch."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(6000, 4, generator=g, dtype=torch.float64).float() * 3
    algo = KMeans(k=3, extra_center_factor=2, mini_batch_size=500)
    state = algo.init_state(4)
    absorbed: list[list[torch.Tensor]] = [[] for _ in range(6)]
    for i in range(0, 6000, 500):
        batch = x[i : i + 500]
        if state.meta["prepared"]:
            which = ((batch[:, None, :] - state.tensors["centers"]) ** 2).sum(-1).argmin(1)
        else:
            algo.prepare(state, [Batch(batch)])
            which = ((batch[:, None, :] - state.tensors["centers"]) ** 2).sum(-1).argmin(1)
        algo.update(state, Batch(batch))
        for c in range(6):
            absorbed[c].append(batch[which == c])
    assert state.counters.get("reseeded_centers", 0) == 0
    for c in range(6):
        rows = torch.cat(absorbed[c]).double()
        centre = state.tensors["centers"][c].double()
        expected = float(((rows - centre) ** 2).sum())
        assert float(state.tensors["spread"][c]) == pytest.approx(expected, rel=1e-4)


def test_k_beyond_the_state_is_an_error(blob_state: tuple[KMeans, State]) -> None:
    algo, state = blob_state
    with pytest.raises(ConfigError, match=r"k=81 is more than the 80 centres.*k from 1 to 80"):
        algo.finalize(state, k=81)
    with pytest.raises(ConfigError, match="'k'"):
        algo.finalize(state, k=0)
    with pytest.raises(ConfigError, match="cannot change after training"):
        algo.finalize(state, init_method="kmeans++")
    with pytest.raises(ConfigError, match="'k'"):
        KMeans({})


def test_finalize_is_fast_for_250_centres_in_50_dimensions() -> None:
    g = torch.Generator().manual_seed(0)
    points = torch.randn(250, 50, generator=g, dtype=torch.float64) * 5
    weights = torch.rand(250, generator=g, dtype=torch.float64) * 1000
    seconds = []
    for _ in range(3):  # the best of three: the machine may be busy
        started = time.perf_counter()
        fit = weighted_kmeans(points, weights, 25, generator=g, trials=10)
        seconds.append(time.perf_counter() - started)
    assert min(seconds) < 0.25
    assert fit.centers.shape == (25, 50)
    assert float(fit.masses.sum()) == pytest.approx(float(weights.sum()))


def test_merge_of_two_shards_is_close_to_one_pass(
    blobs: tuple[ClusterTask, torch.Tensor, torch.Tensor], blob_state: tuple[KMeans, State]
) -> None:
    _, x, test = blobs
    algo, whole = blob_state
    a = _fit(algo, x[:10_000])
    b = _fit(KMeans(k=8, seed=1), x[10_000:])
    merged = algo.merge(a, b)
    assert float(merged.tensors["masses"].sum()) == pytest.approx(20_000, rel=0.01)
    assert merged.tensors["centers"].shape == whole.tensors["centers"].shape
    one_pass = _msd(algo.finalize(whole), test)
    assert _msd(algo.finalize(merged), test) == pytest.approx(one_pass, rel=0.01)


def test_half_life_follows_a_moving_distribution() -> None:
    before = cluster_task(5, 3, seed=2)
    after = ClusterTask(before.centers + 8.0, seed=3)  # every cluster moves
    x = torch.cat([_rows(before, 20_000), _rows(after, 10_000)])
    test = _rows(after, 3000, offset=10**9)
    forgetful = KMeans(k=3, half_life_time_size=1000)
    stubborn = KMeans(k=3)
    near = _msd(forgetful.finalize(_fit(forgetful, x)), test)
    far = _msd(stubborn.finalize(_fit(stubborn, x)), test)
    assert near == pytest.approx(5.0, rel=0.1)  # the new clusters, unit noise in 5 dimensions
    assert far > 5 * near  # still splitting its centres between old and new clusters


def test_csr_rows_give_the_dense_result(
    blobs: tuple[ClusterTask, torch.Tensor, torch.Tensor],
) -> None:
    _, x, test = blobs
    x = x[:8000].clamp_min(0)  # about half the entries are zeros
    for init in ("random", "kmeans++"):
        algo = KMeans(k=8, init_method=init)
        dense = _fit(algo, x)
        sparse = _fit(algo, CSR.from_dense(x))
        torch.testing.assert_close(sparse.tensors["centers"], dense.tensors["centers"])
        # The trainer hands ``prepare`` several warm-up batches.
        starts = [algo.init_state(x.shape[1]) for _ in range(2)]
        algo.prepare(starts[0], [Batch(x[:300]), Batch(x[300:700])])
        halves = [CSR.from_dense(x[:300]), CSR.from_dense(x[300:700])]
        algo.prepare(starts[1], [Batch(h) for h in halves])
        assert torch.equal(starts[0].tensors["centers"], starts[1].tensors["centers"])
        assert torch.equal(sparse.tensors["masses"], dense.tensors["masses"])
        model = algo.finalize(dense)
        a, b = model.predict(test.clamp_min(0)), model.predict(CSR.from_dense(test.clamp_min(0)))
        assert torch.equal(a["closest_cluster"], b["closest_cluster"])
        # Sparse rows get |x|^2 - 2 x.c + |c|^2; dense rows |x - c|^2 (no cancellation).
        torch.testing.assert_close(
            a["distance_to_cluster"], b["distance_to_cluster"], rtol=1e-3, atol=1e-4
        )


def test_predictions_answer_as_sagemaker(blob_state: tuple[KMeans, State]) -> None:
    algo, state = blob_state
    model = algo.finalize(state)
    x = model.centers[:2] + torch.tensor([3.0] + [0.0] * 9)
    answers = model.records(model.predict(x))
    assert answers == [
        {"closest_cluster": 0.0, "distance_to_cluster": pytest.approx(3.0, rel=1e-5)},
        {"closest_cluster": 1.0, "distance_to_cluster": pytest.approx(3.0, rel=1e-5)},
    ]
    metrics = algo.evaluate(model, [Batch(x)])
    assert metrics == {"msd": pytest.approx(9.0, rel=1e-5)}
    both = KMeans(k=8, eval_metrics='["msd", "ssd"]').evaluate(model, [Batch(x)])
    assert both == {"msd": pytest.approx(9.0, rel=1e-5), "ssd": pytest.approx(18.0, rel=1e-5)}


def test_wrong_width_and_feature_dim_are_errors() -> None:
    with pytest.raises(ConfigError, match="feature_dim=4 but the data has 3"):
        KMeans(k=2, feature_dim=4).init_state(3)


@pytest.fixture(scope="module")
def cluster_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("clusters")
    task = cluster_task(6, 5, seed=5)
    write_batches(root / "train.parquet", task.blocks(20_000, block=5000))
    write_batches(root / "test.parquet", task.blocks(4000, offset=10**9))
    return root / "train.parquet", root / "test.parquet"


def test_sweep_writes_a_model_and_metrics_per_k(
    cluster_files: tuple[Path, Path], tmp_path: Path
) -> None:
    train, test = cluster_files
    result = streamfit.train(
        "kmeans",
        str(train),
        test=str(test),
        hyperparameters={"k": 5, "mini_batch_size": 1000},
        sweep="k=2..8",
        output=tmp_path,
        progress=False,
    )
    assert [p.value for p in result.sweep] == list(range(2, 9))
    msd = {p.value: p.metrics["test:msd"] for p in result.sweep}
    estimate = {p.value: p.metrics["train:msd"] for p in result.sweep}
    # The state's own estimate (no data read) follows the measured curve and bounds it.
    for k in range(2, 9):
        assert msd[k] * 0.97 <= estimate[k] <= msd[k] * 1.25, (k, estimate[k], msd[k])
    assert msd[5] == pytest.approx(result.metrics["test:msd"], rel=1e-6)
    assert msd[5] == pytest.approx(6.0, rel=0.1)  # five clusters of unit noise in 6 dimensions
    assert msd[2] > msd[3] > msd[4] > 1.5 * msd[5]  # the elbow
    assert all(msd[k] <= msd[5] * 1.01 for k in (6, 7, 8))
    table = json.loads((tmp_path / "sweep.json").read_text())
    assert [row["k"] for row in table] == list(range(2, 9))
    assert table[3]["test:msd"] == pytest.approx(msd[5])
    loaded = streamfit.load_model(tmp_path / "sweep" / "k=7")
    assert isinstance(loaded, KMeansModel)
    assert loaded.k == 7


def test_cli_sweep_prints_the_table(cluster_files: tuple[Path, Path], tmp_path: Path) -> None:
    train, test = cluster_files
    out = tmp_path / "job"
    args = ["train", "kmeans", "--train", str(train), "--test", str(test), "--output", str(out)]
    result = CliRunner().invoke(
        cli, [*args, "--hp", "k=4", "--sweep", "k=2..6"], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    assert "sweep" in result.stdout
    assert "msd" in result.stdout
    lines = [
        line for line in result.stdout.splitlines() if line.strip("│ ").startswith(("2 ", "6 "))
    ]
    assert len(lines) == 2
    assert sorted(p.name for p in (out / "sweep").iterdir()) == [f"k={k}" for k in range(2, 7)]
    # A saved state gives another k later, with no data read.
    again = CliRunner().invoke(
        cli,
        ["finalize", str(out / "state"), "--output", str(tmp_path / "k3"), "--hp", "k=3"],
        catch_exceptions=False,
    )
    assert again.exit_code == 0, again.output
    assert streamfit.load_model(tmp_path / "k3").meta["k"] == 3
    too_many = CliRunner().invoke(
        cli, ["finalize", str(out / "state"), "--output", str(tmp_path / "k99"), "--hp", "k=99"]
    )
    assert too_many.exit_code != 0
    assert "supports k from 1 to 40" in too_many.output


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu(blobs: tuple[ClusterTask, torch.Tensor, torch.Tensor]) -> None:
    _, x, test = blobs
    algo = KMeans(k=8)
    cpu = _fit(algo, x)
    state = algo.init_state(x.shape[1], "cuda")
    for i in range(0, len(x), 1000):
        algo.update(state, Batch(x[i : i + 1000].cuda()))
    assert state.device.type == "cuda"
    torch.testing.assert_close(state.tensors["centers"].cpu(), cpu.tensors["centers"])
    model = algo.finalize(state)
    assert model.device.type == "cuda"
    assert _msd(model, test.cuda()) == pytest.approx(_msd(algo.finalize(cpu), test), rel=1e-4)
