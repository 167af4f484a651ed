"""Linear Learner's compiled sparse step against its PyTorch reference, and the packed table
the kernel keeps the weights in.

The kernel and the reference differ by float32 rounding only (sums in another order, and
Cephes' exp and log for logistic loss). After six steps every parameter and optimiser buffer
agrees within ``rtol=1e-4, atol=1e-4``, the held-out scores (label units) within ``1e-3``,
losses within ``rtol=1e-5``. Rounding alone moves that far: the reference fed the same rows
with each row's columns in reverse order ends 5.7e-5 from itself (Huber loss, RMSProp, where
sign-like gradients and normalised steps amplify it), as far as the kernel ends from it.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from streamfit import Batch, DataError
from streamfit.algorithms.linear_learner import LinearLearner
from streamfit.algorithms.linear_learner.model import linear_scores
from streamfit.algorithms.linear_learner.optim import OptimConfig, moment_names, step
from streamfit.algorithms.linear_learner.scaling import scale_features
from streamfit.algorithms.linear_learner.sparse_kernel import _update_rows
from streamfit.algorithms.linear_learner.sparse_step import pack
from streamfit.core.batch import CSR
from streamfit.core.state import State

D = 40
LOSSES = [
    ("binary_classifier", "logistic"),
    ("binary_classifier", "hinge_loss"),
    ("multiclass_classifier", "softmax_loss"),
    ("regressor", "squared_loss"),
    ("regressor", "absolute_loss"),
    ("regressor", "eps_insensitive_squared_loss"),
    ("regressor", "eps_insensitive_absolute_loss"),
    ("regressor", "quantile_loss"),
    ("regressor", "huber_loss"),
]


def _batches(kind: str, n: int = 64, count: int = 6, seed: int = 0) -> list[Batch]:
    """Random sparse rows: some empty, some with a column twice, scores of every sign."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(count):
        dense = torch.where(
            torch.rand(n, D, generator=g) < 0.15, torch.randn(n, D, generator=g), 0.0
        )
        dense[:3] = 0.0  # empty rows
        x = CSR.from_dense(dense)
        # Row 3 holds column 5 twice (hashed features collide): the gradients add up.
        x = CSR(
            torch.cat([x.indptr[:4], x.indptr[4:] + 1]),
            torch.cat([x.indices[: x.indptr[3]], torch.tensor([5]), x.indices[x.indptr[3] :]]),
            torch.cat([x.values[: x.indptr[3]], torch.tensor([0.5]), x.values[x.indptr[3] :]]),
            D,
        )
        if kind == "binary_classifier":
            y = (torch.rand(n, generator=g) < 0.3).float()
        elif kind == "multiclass_classifier":
            y = torch.randint(0, 3, (n,), generator=g).float()
        else:
            y = torch.randn(n, generator=g) * 3 + 1
        out.append(Batch(x, y))
    return out


def _pair(hp: dict[str, Any], batches: list[Batch]) -> tuple[LinearLearner, State, State]:
    algo = LinearLearner(hp)
    kernel = algo.init_state(D)
    algo.prepare(kernel, batches[:2])
    return algo, kernel, kernel.clone()


def _assert_same(kernel: State, reference: State) -> None:
    assert kernel.meta == reference.meta
    names = [n for n in reference.tensors if n.split(".")[0] in ("weight", "bias")]
    for name in (*names, "calib_scores", "calib_labels", "epoch_loss"):
        value = reference.tensors[name]
        if name == "epoch_loss":
            torch.testing.assert_close(kernel.tensors[name], value, rtol=1e-5, atol=1e-6)
        elif name == "calib_scores":
            torch.testing.assert_close(kernel.tensors[name], value, rtol=1e-4, atol=1e-3)
        else:
            torch.testing.assert_close(kernel.tensors[name], value, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("optimizer", ["adam", "sgd", "rmsprop"])
@pytest.mark.parametrize(("kind", "loss"), LOSSES)
def test_kernel_matches_the_reference_step(kind: str, loss: str, optimizer: str) -> None:
    hp: dict[str, Any] = {
        "predictor_type": kind,
        "loss": loss,
        "optimizer": optimizer,
        "num_models": 8,  # the default grid: candidates with L2, with L1, with neither
        "num_calibration_samples": 1000,
        "lr_scheduler_step": 2,  # the scheduler decays within the test
        "lr_scheduler_minimum_lr": 0.01,
        "bias_lr_mult": 2.0,
        "bias_wd_mult": 0.5,
        "quantile": 0.3,
        "huber_delta": 0.7,
        "loss_insensitivity": 0.2,
    }
    if kind == "binary_classifier":
        hp["positive_example_weight_mult"] = "balanced"
    if kind == "multiclass_classifier":
        hp.update(num_classes=3, balance_multiclass_weights=True)
    batches = _batches(kind)
    algo, kernel, reference = _pair(hp, batches)
    for batch in batches:
        fused = algo._update(kernel, batch)
        expected = algo._update_reference(reference, batch)
        assert fused == pytest.approx(expected, rel=1e-5)
    _assert_same(kernel, reference)


def test_kernel_without_bias_and_with_a_fixed_learning_rate() -> None:
    hp = {
        "predictor_type": "binary_classifier",
        "num_models": 3,
        "use_bias": False,
        "use_lr_scheduler": False,
        "learning_rate": 0.3,
        "l1": 0.01,
        "wd": 0.001,
    }
    batches = _batches("binary_classifier")
    algo, kernel, reference = _pair(hp, batches)
    for batch in batches:
        algo._update(kernel, batch)
        algo._update_reference(reference, batch)
    _assert_same(kernel, reference)
    assert float(kernel.tensors["bias"].abs().sum()) == 0.0


def test_kernel_follows_per_feature_scales_and_changes_to_them() -> None:
    """Sparse scaling has one factor for every feature, which the kernel divides by; scales
    changed in place to one per feature, or replaced, are read as they are now."""
    hp = {"predictor_type": "binary_classifier", "num_models": 4}
    batches = _batches("binary_classifier")
    algo, kernel, reference = _pair(hp, batches)
    scales = torch.rand(D, generator=torch.Generator().manual_seed(5)) + 0.5
    for i, batch in enumerate(batches):
        for state in (kernel, reference):
            if i == 2:
                state.tensors["x_scale"].copy_(scales)  # in place: the tensor the kernel saw
            if i == 4:
                state.tensors["x_scale"] = torch.full((D,), 3.0)
        algo._update(kernel, batch)
        algo._update_reference(reference, batch)
    _assert_same(kernel, reference)


@pytest.mark.parametrize("kind", ["sgd", "adam", "rmsprop", "adagrad"])
def test_row_update_is_the_optimisers_step(kind: str) -> None:
    """Every optimiser :func:`optim.step` knows, adagrad included (Factorization Machines'
    default; Linear Learner's hyperparameters do not offer it yet), L1 and L2 on."""
    cfg = OptimConfig(kind=kind, beta_1=0.9, beta_2=0.99, momentum=0.8)
    g = torch.Generator().manual_seed(3)
    param = torch.randn(20, 4, generator=g) * 0.1
    buffers = {b: torch.rand(20, 4, generator=g) * 0.01 for b in moment_names(kind)}
    rows = torch.tensor([7, 2, 11])
    grad = torch.randn(3, 4, generator=g)
    lr = torch.tensor([0.1, 0.01, 0.3, 0.05])
    wd = torch.tensor([0.0, 1e-3, 0.0, 1e-2])
    l1 = torch.tensor([0.0, 0.0, 1e-2, 1e-1])
    table = {"w": param.clone(), **{f"w.{b}": v.clone() for b, v in buffers.items()}}
    packed = pack(table, "w", moment_names(kind)).numpy()
    constants = np.array([cfg.beta_1, cfg.beta_2, cfg.momentum, cfg.eps, 1, 0], np.float32)
    t = 3
    bc1, bc2 = np.float32(1 - cfg.beta_1**t), np.float32(1 - cfg.beta_2**t)
    args = (wd.numpy(), lr.numpy(), l1.numpy(), True, constants, bc1, bc2)
    _update_rows(
        {"sgd": 0, "adam": 1, "rmsprop": 2, "adagrad": 3}[kind],
        packed,
        rows.numpy(),
        grad.numpy(),
        *args,
    )
    step(cfg, param, grad.clone(), buffers, lr, t, rows=rows, l1=l1, wd=wd)
    torch.testing.assert_close(table["w"], param, rtol=1e-6, atol=1e-7)
    for b, v in buffers.items():
        torch.testing.assert_close(table[f"w.{b}"], v, rtol=1e-6, atol=1e-9)


def test_validation_scores_read_the_packed_table() -> None:
    algo = LinearLearner(predictor_type="binary_classifier", num_models=5)
    batches = _batches("binary_classifier")
    state = algo.init_state(D)
    algo.prepare(state, batches[:2])
    for batch in batches:
        algo._update(state, batch)
    t = state.tensors
    x = batches[0].features
    expected = linear_scores(scale_features(x, t["x_shift"], t["x_scale"]), t["weight"], t["bias"])
    torch.testing.assert_close(algo._scores(state, batches[0]), expected)


def test_state_tensors_are_views_of_one_table_and_save_as_before(tmp_path: Path) -> None:
    algo = LinearLearner(predictor_type="binary_classifier", num_models=4)
    batches = _batches("binary_classifier")
    state = algo.init_state(D)
    algo.prepare(state, batches[:2])
    for batch in batches[:3]:
        algo._update(state, batch)
    t = state.tensors
    table = t["weight"]._base
    assert table is not None and table.shape == (D, 3, 4)
    assert t["weight.m"]._base is table and t["weight.v"]._base is table
    assert t["weight"].shape == (D, 4)  # names and shapes as a checkpoint has them
    state.save(tmp_path / "state")
    loaded = State.load(tmp_path / "state", "linear-learner")
    assert loaded.tensors["weight"].is_contiguous()  # as written before the kernel
    for name, value in t.items():
        assert torch.equal(loaded.tensors[name], value), name
    # A loaded (unpacked) state continues exactly as the one that was saved.
    for batch in batches[3:]:
        assert algo._update(loaded, batch) == algo._update(state, batch)
    for name, value in state.tensors.items():
        assert torch.equal(loaded.tensors[name], value), name
    assert loaded.tensors["weight"]._base is not None


def test_a_one_feature_state_saves(tmp_path: Path) -> None:
    """One feature: the views of the table are contiguous and share its storage."""
    algo = LinearLearner(predictor_type="binary_classifier", num_models=2)
    state = algo.init_state(1)
    x = CSR(torch.tensor([0, 1, 1]), torch.tensor([0]), torch.tensor([2.0]), 1)
    algo._update(state, Batch(x, torch.tensor([1.0, 0.0])))
    state.save(tmp_path / "one")
    loaded = State.load(tmp_path / "one", "linear-learner")
    assert torch.equal(loaded.tensors["weight.v"], state.tensors["weight.v"])


def test_refused_batches_change_nothing() -> None:
    algo = LinearLearner(predictor_type="binary_classifier", num_models=2)
    batches = _batches("binary_classifier")
    state = algo.init_state(D)
    algo.prepare(state, batches[:2])
    before = state.clone()
    bad_label = Batch(batches[0].features, batches[0].labels + 2)
    with pytest.raises(DataError, match="is not a class"):
        algo._update(state, bad_label)
    x = batches[0].features
    wide = Batch(CSR(x.indptr, x.indices + D, x.values, 2 * D), batches[0].labels)
    with pytest.raises(IndexError):
        algo._update(state, wide)
    assert state.meta == before.meta
    for name, value in before.tensors.items():
        assert torch.equal(state.tensors[name], value), name


def test_threads_train_their_own_states_at_once() -> None:
    """The kernel runs without the GIL; its column-to-slot table is one per thread."""
    algo = LinearLearner(predictor_type="binary_classifier", num_models=3)
    batches = _batches("binary_classifier", n=256, count=20)

    def fresh() -> State:
        state = algo.init_state(D)
        algo.prepare(state, batches[:2])
        return state

    alone = fresh()
    for batch in batches:
        algo._update(alone, batch)
    states = [fresh() for _ in range(4)]
    threads = [
        threading.Thread(target=lambda s=s: [algo._update(s, b) for b in batches]) for s in states
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for state in states:
        assert torch.equal(state.tensors["weight"], alone.tensors["weight"])


def test_dense_batches_train_a_packed_state_as_an_unpacked_one() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2000, 6, generator=g)
    y = (x[:, 0] > 0).float()
    algo = LinearLearner(predictor_type="binary_classifier", num_models=4)
    packed = algo.init_state(6)
    algo.prepare(packed, [Batch(x[:500], y[:500])])
    plain = packed.clone()
    assert packed.tensors["weight"]._base is not None and plain.tensors["weight"]._base is None
    for i in range(0, 2000, 250):
        algo._update(packed, Batch(x[i : i + 250], y[i : i + 250]))
        algo._update(plain, Batch(x[i : i + 250], y[i : i + 250]))
    for name, value in plain.tensors.items():
        torch.testing.assert_close(packed.tensors[name], value, rtol=1e-6, atol=1e-7)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_trains_sparse_rows_as_the_cpu_kernel() -> None:
    """CUDA keeps the PyTorch step: the same model as the CPU kernel, within rounding."""
    algo = LinearLearner(predictor_type="binary_classifier", num_models=4)
    batches = _batches("binary_classifier")
    cpu = algo.init_state(D)
    gpu = algo.init_state(D, "cuda")
    algo.prepare(cpu, batches[:2])
    algo.prepare(gpu, [Batch(b.features.to("cuda"), b.labels.cuda()) for b in batches[:2]])
    for batch in batches:
        algo._update(cpu, batch)
        algo._update(gpu, Batch(batch.features.to("cuda"), batch.labels.cuda()))
    assert gpu.tensors["weight"]._base is None  # not packed: the reference step's layout
    for name in ("weight", "weight.m", "weight.v", "bias", "calib_scores"):
        torch.testing.assert_close(gpu.tensors[name].cpu(), cpu.tensors[name], rtol=1e-4, atol=1e-4)


def test_dense_training_does_not_import_numba() -> None:
    """numba's import (0.3 s, 70 MB) is paid by the first sparse step only."""
    code = (
        "import sys, torch\n"
        "from streamfit import Batch\n"
        "from streamfit.algorithms.linear_learner import LinearLearner\n"
        "algo = LinearLearner(predictor_type='binary_classifier')\n"
        "state = algo.init_state(3)\n"
        "algo.update(state, Batch(torch.randn(8, 3), torch.ones(8)))\n"
        "print('numba' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
