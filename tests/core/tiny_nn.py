"""A tiny neural algorithm for the tests: a one-hidden-layer regressor with dropout, trained
through :mod:`streamfit.core.nn` and replaying through :mod:`streamfit.core.replaying`.

It is not registered (the registry's algorithms are the shipped ones); the trainer takes the
instance. Run as a module it trains in a process of its own, as the tests need:

    python -m tests.core.tiny_nn train-pipe OUTPUT CHECKPOINTS '{"replay": 1}' < rows.csv
    python -m tests.core.tiny_nn quality '{"replay": 4}' EPOCHS ROWS MORE_ROWS
"""

from __future__ import annotations

import json
import resource
import sys
from collections.abc import Iterable, Iterator
from typing import Any, ClassVar, Literal

import torch
from torch import nn

from streamfit.core.algorithm import Algorithm
from streamfit.core.batch import Batch, Features
from streamfit.core.check_parameters import CheckParameters, GeneratedData
from streamfit.core.model import Model
from streamfit.core.nn import Net, NetKeeper, merge_nets, net_bytes
from streamfit.core.replay import open_reservoir
from streamfit.core.replaying import ReplayHyperparameters, Replaying
from streamfit.core.state import State

OPTIMIZERS = {
    "sgd": lambda p, lr: torch.optim.SGD(p, lr=lr, momentum=0.9),
    "adam": lambda p, lr: torch.optim.Adam(p, lr=lr),
    "adamw": lambda p, lr: torch.optim.AdamW(p, lr=lr, weight_decay=0.01),
    "adagrad": lambda p, lr: torch.optim.Adagrad(p, lr=lr),
    "rmsprop": lambda p, lr: torch.optim.RMSprop(p, lr=lr, momentum=0.5, centered=True),
    "adadelta": lambda p, lr: torch.optim.Adadelta(p, lr=lr * 100),
}


class TinyHyperparameters(ReplayHyperparameters):
    hidden: int = 16
    dropout: float = 0.1
    batch_norm: bool = False
    learning_rate: float = 0.01
    optimizer: Literal["sgd", "adam", "adamw", "adagrad", "rmsprop", "adadelta"] = "adam"
    #: Each step multiplies the learning rate by this (ExponentialLR), or every 4 steps halve it.
    lr_decay: float = 1.0
    step_lr: bool = False
    mini_batch_size: int = 64
    epochs: int = 1
    seed: int = 0


class TinyNetwork(nn.Module):
    def __init__(self, n_features: int, hidden: int, dropout: float, batch_norm: bool) -> None:
        super().__init__()
        self.inner = nn.Linear(n_features, hidden)
        self.norm = nn.BatchNorm1d(hidden) if batch_norm else nn.Identity()
        self.dropout = nn.Dropout(dropout)
        self.outer = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.dropout(torch.relu(self.norm(self.inner(x))))
        return self.outer(h).squeeze(1)


class TinyModel(Model):
    algorithm = "tiny-nn"

    def network(self) -> TinyNetwork:
        m = self.meta
        net = TinyNetwork(m["n_features"], m["hidden"], 0.0, m["batch_norm"])
        net.load_state_dict(self.tensors)
        return net.eval()

    def predict(self, features: Features) -> dict[str, torch.Tensor]:
        x = features if isinstance(features, torch.Tensor) else features.to_dense()
        with torch.no_grad():
            return {"score": self.network()(x)}

    def records(self, predictions: dict[str, torch.Tensor]) -> list[dict[str, Any]]:
        return [{"score": float(v)} for v in predictions["score"]]


class MSE:
    def __init__(self, model: TinyModel) -> None:
        self.model, self.sum, self.n = model, 0.0, 0

    def update(self, batch: Batch) -> None:
        assert batch.labels is not None
        error = self.model.predict(batch.features)["score"] - batch.labels
        self.sum += float((error**2).sum())
        self.n += batch.n_rows

    def result(self) -> dict[str, float]:
        return {"mse": self.sum / max(self.n, 1)}


class TinyNN(Replaying, Algorithm[TinyHyperparameters]):
    name = "tiny-nn"
    hyperparameters_class = TinyHyperparameters
    model_class = TinyModel
    merge_tolerance: ClassVar[float] = 0.5
    fixed_hyperparameters: ClassVar[frozenset[str]] = frozenset(
        {"hidden", "batch_norm", "optimizer", "step_lr"}
    )
    check_parameters = CheckParameters(
        hyperparameters={
            "mini_batch_size": 500,
            "dropout": 0.2,
            "replay": 0.5,
            "replay_capacity_mb": 0.05,
        },
        metric="mse",
        memory_hyperparameters={"mini_batch_size": 1000, "replay": 1, "replay_capacity_mb": 1},
        memory_data=GeneratedData("linear_task", (8, "regression"), {"seed": 3}),
        data=GeneratedData("linear_task", (8, "regression"), {"seed": 3}),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._keepers: dict[int, NetKeeper] = {}  # a cache of networks, not learned state

    def _build(self, n_features: int) -> Any:
        hp = self.hp

        def build(device: torch.device) -> Net:
            module = TinyNetwork(n_features, hp.hidden, hp.dropout, hp.batch_norm).to(device)
            optimizer = OPTIMIZERS[hp.optimizer](module.parameters(), hp.learning_rate)
            scheduler: torch.optim.lr_scheduler.LRScheduler | None = None
            if hp.step_lr:
                scheduler = torch.optim.lr_scheduler.StepLR(optimizer, 4, 0.5)
            elif hp.lr_decay != 1.0:
                scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, hp.lr_decay)
            return Net(module, optimizer, scheduler)

        return build

    def _keeper(self, n_features: int) -> NetKeeper:
        # One keeper per width; it rebuilds the network for a state it has not seen.
        if n_features not in self._keepers:
            self._keepers[n_features] = NetKeeper(self._build(n_features))
        return self._keepers[n_features]

    def init_state(self, n_features: int, device: torch.device | str = "cpu") -> State:
        state = self.new_state(n_features)
        seed = int(torch.randint(2**62, (), generator=state.generator))
        self._keeper(n_features).create(state, seed, device)
        self.init_replay(state, device)
        return state

    def state_bytes(self, n_features: int) -> int:
        replay = self.replay_capacity_bytes() if self.replay_ratio() > 0 else 0
        return net_bytes(self._build(n_features)) + replay

    def _update(self, state: State, batch: Batch) -> float:
        assert batch.labels is not None
        x = batch.dense_features()
        with self._keeper(state.n_features).step(state) as net:
            error = net.module(x) - batch.labels
            loss = (error**2).sum()
            (loss / batch.n_rows).backward()
            net.optimizer.step()
            if net.scheduler is not None:
                net.scheduler.step()
        return float(loss.detach())

    def _adopt(self, state: State) -> None:
        self.adopt_replay(state)

    def _merge(self, a: State, b: State) -> State:
        out = a.clone()
        merge_nets(a, b, out)
        if "replay" in a.meta:
            open_reservoir(out).merge(open_reservoir(b))
        return out

    def _finalize(self, state: State, **post_training: Any) -> Model:
        head = "net.module."
        tensors = {
            k[len(head) :]: v.clone() for k, v in state.tensors.items() if k.startswith(head)
        }
        meta = {
            "n_features": state.n_features,
            "hidden": self.hp.hidden,
            "batch_norm": self.hp.batch_norm,
        }
        return TinyModel(tensors, meta)

    def evaluator(self, model: Model) -> MSE:
        assert isinstance(model, TinyModel)
        return MSE(model)


def regression_batches(n: int, size: int, seed: int = 0) -> Iterator[Batch]:
    """``n`` rows of a smooth nonlinear task in 8 features, in batches of ``size``, each batch
    generated on its own (from ``seed`` and its index) so that no more than one is in memory."""
    for index, start in enumerate(range(0, n, size)):
        g = torch.Generator().manual_seed(seed * 1_000_003 + index)
        m = min(size, n - start)
        x = torch.randn(m, 8, generator=g)
        y = torch.sin(2 * x[:, 0]) + x[:, 1] * x[:, 2] + 0.5 * x[:, 3] ** 2
        yield Batch(x, y + 0.1 * torch.randn(m, generator=g))


def fold_all(algo: TinyNN, batches: Iterable[Batch], state: State | None = None) -> State:
    """Train on ``batches`` with the training loop's fold: each fresh batch, then its
    replays."""
    from streamfit.training.loop import fold

    for batch in batches:
        if state is None:
            state = algo.init_state(batch.n_features)
        fold(algo, state, batch)
    assert state is not None
    return state


def train_csv(source: str, output: str, checkpoints: str, hp: dict[str, Any]) -> None:
    """Train on CSV rows (``-``: standard input) with a checkpoint after every batch."""
    from streamfit.training.trainer import train

    train(
        TinyNN(hp),
        source,
        output=output,
        checkpoint_dir=checkpoints,
        checkpoint_batches=1,
        progress=False,
        content_type="text/csv",
    )


def _quality(hp: dict[str, Any], epochs: int, rows: int, more_rows: int) -> None:
    """Train ``epochs`` passes over ``rows`` generated rows; print the validation MSE, the
    optimiser steps and this process's peak RSS as JSON; then, if ``more_rows``, train on that
    many new rows and add the peak RSS after them."""
    torch.set_num_threads(1)
    algo = TinyNN(hp)
    state = None
    for _ in range(epochs):
        state = fold_all(algo, regression_batches(rows, algo.mini_batch_size), state)
    assert state is not None
    mse = algo.evaluate(algo.finalize(state), regression_batches(2000, 2000, seed=1))["mse"]
    result = {"mse": mse, "steps": state.meta["net"]["steps"], "peak_mb": _peak_mb()}
    if more_rows:
        fold_all(algo, regression_batches(more_rows, algo.mini_batch_size, seed=2), state)
        result["peak_mb_after_more"] = _peak_mb()
    print(json.dumps(result))


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


if __name__ == "__main__":
    if sys.argv[1] == "train-pipe":
        train_csv("-", sys.argv[2], sys.argv[3], json.loads(sys.argv[4]))
    else:
        _quality(json.loads(sys.argv[2]), *map(int, sys.argv[3:6]))
