"""The driver of a distributed run: starts the workers (and the parameter server), feeds
them steps, combines their states, checkpoints, and restarts from the latest checkpoint
when a worker or the server is lost.

Three ways to combine workers, by algorithm and ``sync``:

- ``merge`` (PCA, K-Means: states that merge well): each worker trains a state of its own
  from its shard's first rows; the driver merges them, with the state it started from, at
  each checkpoint and at the end of each epoch.
- ``async`` (SGD: Linear Learner, Factorization Machines): worker 0 prepares a state on its
  first rows (scalers), the parameter server holds it, and workers push deltas as they go.
- ``sync``: as ``async`` but without a server: every ``exchange_every`` batches the driver
  merges all workers' states with ``Algorithm.merge`` and hands the result back to them.

Epochs are barriers: the end-of-epoch hook (early stopping) runs on the combined state.
Progress, ``max_batches``, the checkpoint cadence, the stop flag and the end of an epoch are
the training loop's (:class:`~streamfit.training.loop.Loop`), fed the workers' reports.
A checkpoint is the combined state plus each worker's position in its shard, in the
trainer's record (``state.trainer.distributed``); rerunning the same command resumes from it.
"""

from __future__ import annotations

import functools
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Literal

import torch

from streamfit.core.delta import fix_counts
from streamfit.core.state import Layout, Position, State
from streamfit.data.source import FileSource, Source
from streamfit.distributed.cluster import connect, new_run_id, start_server, start_worker
from streamfit.distributed.options import DistributedOptions
from streamfit.distributed.shards import describe, split_source
from streamfit.distributed.worker import StepReport
from streamfit.errors import ConfigError
from streamfit.training.loop import AnyAlgorithm, Loop, StopFlag
from streamfit.training.progress import TrainingProgress
from streamfit.training.schema import input_record
from streamfit.training.trainer import TrainingRun

__all__ = ["Mode", "RayFitter", "fit_distributed", "mode_of", "resume_point"]

log = logging.getLogger(__name__)

Mode = Literal["merge", "async", "sync"]


def mode_of(algo: AnyAlgorithm, sync: bool) -> Mode:
    if algo.distribution.mode == "merge":
        if sync:
            raise ConfigError(
                f"{algo.name} merges workers' states once, at checkpoints and at the end; "
                "sync applies to parameter-server algorithms (linear-learner, "
                "factorization-machines)"
            )
        return "merge"
    return "sync" if sync else "async"


@dataclass(frozen=True)
class RayFitter:
    """A :class:`~streamfit.training.trainer.Fitter` that trains on Ray workers."""

    options: DistributedOptions

    def fit(
        self, run: TrainingRun, state: State | None, progress: TrainingProgress
    ) -> tuple[State, float, int]:
        return fit_distributed(run, state, progress, self.options)


def fit_distributed(
    run: TrainingRun, state: State | None, bar: TrainingProgress, opts: DistributedOptions
) -> tuple[State, float, int]:
    """:meth:`TrainingRun.fit` on Ray workers; returns the state, seconds and rows."""
    mode = mode_of(run.algo, opts.sync)
    train = _named(run.train, state)
    if run.checkpoints is not None:
        run.checkpoints.inputs.update(input_record(train))
    shards = split_source(train, opts.workers)
    resume_point(state, describe(shards))  # a checkpoint that cannot resume fails before Ray
    initial = None if state is None else state.clone()
    started = time.perf_counter()
    rows = restarts = 0
    stats: dict[str, float] = {}
    startup = math.nan
    with connect(opts.ray_address, opts.workers) as ray, StopFlag() as stop:
        while True:
            session = _Session(run, opts, ray, mode, shards, run.loop(bar, stop))
            try:
                session.wait_ready(opts.start_timeout)
                if math.isnan(startup):  # Ray (if started here) and the first set of actors
                    startup = time.perf_counter() - started
                state = session.train(state)
                stats = session.stats()
                break
            except ray.exceptions.RayActorError as exc:
                restarts += 1
                if restarts > opts.max_restarts:
                    raise
                state = _restart_state(run, initial)
                where = "its latest checkpoint" if run.checkpoints else "the start"
                log.warning("lost an actor (%s); restarting from %s", exc, where)
            finally:
                rows += session.loop.rows
                session.close()
    state.trainer.distributed = None
    state.inputs.update(input_record(train))
    run.extra_metrics.update(
        {
            "train:workers": float(opts.workers),
            "train:restarts": float(restarts),
            "train:startup_seconds": startup,
            **stats,
        }
    )
    return state, time.perf_counter() - started, rows


def _named(source: Source, state: State | None) -> Source:
    """``source`` with its named columns fixed before it is split: every worker then reads its
    files by the same names (a state's, else the first file's), whatever their order."""
    if state is not None and "schema" in state.inputs:
        return source.expecting(state.inputs["schema"])
    if not isinstance(source, FileSource):  # not split (and a pipe must not be read twice)
        return source
    reader = source.read()
    try:
        next(reader, None)  # the first chunk: enough to know the columns
    finally:
        close = getattr(reader, "close", None)
        if close is not None:
            close()
    return source.expecting(source.schema)


def resume_point(state: State | None, layout: list[str]) -> tuple[int, list[int]]:
    """The epoch and each worker's position to start from; refuses a checkpoint of another
    split of the input (another input, another number of workers) or of one process."""
    n = len(layout)
    if state is None:
        return 0, [0] * n
    info = state.trainer.distributed
    if info is None:
        if state.position.epoch or state.position.rows:
            raise ConfigError(
                "the checkpoint was written by training in one process: resume it without workers"
            )
        return 0, [0] * n  # incremental training from an earlier job's state
    if info.shards != layout:
        raise ConfigError(
            f"the checkpoint split its input among {info.workers} workers as "
            f"{info.shards}; this run splits it as {layout}: resume with the same input "
            "and number of workers"
        )
    return state.position.epoch, list(info.positions)


def _weighted_mean(
    parts: list[dict[str, torch.Tensor]], weights: list[float]
) -> dict[str, torch.Tensor]:
    """Each tensor's mean over ``parts``, weighted."""
    total = sum(weights)
    return {
        name: sum(
            (p[name] * (w / total) for p, w in zip(parts, weights, strict=True)),
            torch.zeros_like(parts[0][name]),
        )
        for name in parts[0]
    }


def _average(states: list[State], prefixes: tuple[str, ...]) -> dict[str, torch.Tensor]:
    """The floating tensors under ``prefixes`` of ``states``, averaged equally (after the
    last round the workers hold the same network: this only makes that explicit)."""
    parts = [
        {k: t for k, t in s.tensors.items() if k.startswith(prefixes) and t.is_floating_point()}
        for s in states
    ]
    return _weighted_mean(parts, [1.0] * len(parts))


def _restart_state(run: TrainingRun, initial: State | None) -> State | None:
    if run.checkpoints is not None:
        latest = run.checkpoints.load_latest(run.algo.name, run.device)
        if latest is not None:
            return latest
    return None if initial is None else initial.clone()


class _Session:
    """One attempt: a set of actors, from a state to the end or to the first lost actor."""

    def __init__(
        self,
        run: TrainingRun,
        opts: DistributedOptions,
        ray: ModuleType,
        mode: Mode,
        shards: list[Source],
        loop: Loop,
    ) -> None:
        self.run, self.ray, self.mode, self.loop = run, ray, mode, loop
        self.stop = loop.stop
        self.algo = run.algo
        self.layout = describe(shards)
        self.n = len(shards)
        self.exchange_every = opts.exchange_every
        self.step_batches = opts.step_batches
        run_id = new_run_id()
        self.server = (
            start_server(ray, run_id, self.algo.distribution.delta_rules, self.n)
            if mode == "async"
            else None
        )
        self.workers = [
            start_worker(
                ray, run_id, i, self.algo, shard, str(run.device), self.server, opts.exchange_every
            )
            for i, shard in enumerate(shards)
        ]

    def wait_ready(self, timeout: float) -> None:
        """Wait for every worker to start; a cluster without room for them is an error rather
        than a wait without end (each worker takes one CPU)."""
        refs = [w.ready.remote() for w in self.workers]
        _, pending = self.ray.wait(refs, num_returns=len(refs), timeout=timeout)
        if pending:
            cpus = self.ray.cluster_resources().get("CPU", 0)
            raise ConfigError(
                f"{len(pending)} of {self.n} workers did not start within {timeout:.0f} s; "
                f"each takes one CPU and the Ray cluster has {cpus:g}"
            )
        self.ray.get(refs)  # raises if one died while starting

    def close(self) -> None:
        for actor in [*self.workers, self.server]:
            if actor is not None:
                self.ray.kill(actor)

    def stats(self) -> dict[str, float]:
        if self.server is None:
            return {}
        stats = self.ray.get(self.server.stats.remote())
        return {f"train:server_{k}": float(v) for k, v in stats.items()}

    # -- epochs ------------------------------------------------------------------------------

    def train(self, state: State | None) -> State:
        epoch, positions = resume_point(state, self.layout)
        run = self.run
        while not run.done(state):
            state = self._epoch(state, epoch, positions)
            positions = [0] * self.n  # where the next epoch's workers start
            self._mark(state, epoch, positions)
            self.loop.end_epoch(state, run.stream(run.validation, state))  # then epoch + 1
            epoch += 1
        assert state is not None
        return state

    def _epoch(self, state: State | None, epoch: int, positions: list[int]) -> State:
        if self.mode == "merge":
            return self._merge_epoch(state, epoch, positions)
        state, active = self._shared_start(state, epoch, positions)
        if self.mode == "sync":
            return self._sync_epoch(state, epoch, positions, active)
        assert self.server is not None
        server = self.server
        self.ray.get(server.replace.remote(state, positions))
        self._free_run(active, epoch, lambda: self.ray.get(server.snapshot.remote()))
        combined: State = self.ray.get(server.snapshot.remote())[0]
        return combined

    def _merge_epoch(self, base: State | None, epoch: int, positions: list[int]) -> State:
        width = base.n_features if base is not None else self.algo.expected_features()
        alive = self.ray.get(
            [
                w.begin.remote(epoch, p, None, width)
                for w, p in zip(self.workers, positions, strict=True)
            ]
        )
        active = [i for i, a in enumerate(alive) if a]
        averaged = self.algo.distribution.averaged
        if averaged and base is not None:  # the workers' networks continue the base's
            start = {k: t for k, t in base.tensors.items() if k.startswith(averaged)}
            self.ray.get([self.workers[i].share.remote(start) for i in active])

        def merged() -> tuple[State, list[int]]:
            snaps = self.ray.get([w.snapshot.remote() for w in self.workers])
            states = [s for s, _ in snaps if s is not None]
            workers = len(states)
            if base is not None:
                states.insert(0, base)
            if not states:
                raise ConfigError(f"{self.run.train.name}: no rows to train on")
            out = functools.reduce(self.algo.merge, states)
            if averaged and workers:  # the averaged network, not one weighed against the base
                mean = _average([s for s in states[len(states) - workers :]], averaged)
                out.tensors.update(mean)
            return out, [p for _, p in snaps]

        if averaged and len(active) > 1:
            self._averaged_run(active, epoch, merged, averaged)
        else:
            self._free_run(active, epoch, merged)
        return merged()[0]

    def _averaged_run(
        self,
        active: list[int],
        epoch: int,
        snapshot: Callable[[], tuple[State, list[int]]],
        prefixes: tuple[str, ...],
    ) -> None:
        """Rounds of ``exchange_every`` batches on every active worker, after each of which
        the workers' ``prefixes`` tensors are averaged (weighted by the batches each trained)
        and given back to all; checkpoints from ``snapshot()`` when due."""
        ray, begun = self.ray, list(active)
        while active:
            reports: list[StepReport] = ray.get(
                [self.workers[i].step.remote(self.exchange_every) for i in active]
            )
            self._account(reports, epoch)
            trained = [r for r in reports if r.batches]
            if trained:
                parts = ray.get([self.workers[r.index].shared.remote(prefixes) for r in trained])
                weights = [float(r.batches) for r in trained]
                mean = _weighted_mean(parts, weights)
                ray.get([self.workers[i].share.remote(mean) for i in begun])
            active = [r.index for r in reports if not r.finished]
            if self.stop.requested:
                state, positions = snapshot()
                self._mark(state, epoch, positions)
                self.loop.interrupt(state)
            if active and self.loop.due():
                state, positions = snapshot()
                self._save(state, epoch, positions)

    def _shared_start(
        self, state: State | None, epoch: int, positions: list[int]
    ) -> tuple[State, list[int]]:
        """One state for every worker: ``state``, or one worker 0 prepares on its first rows."""
        begun: list[bool] = []
        if state is None:
            first = self.workers[0]
            width = self.algo.expected_features()
            if not self.ray.get(first.begin.remote(epoch, positions[0], None, width)):
                raise ConfigError(f"{self.run.train.name}: no rows in the first shard")
            state = self.ray.get(first.snapshot.remote())[0]
            begun = [True]
        assert state is not None
        rest = self.workers[len(begun) :]
        begun += self.ray.get(
            [
                w.begin.remote(epoch, p, state, None)
                for w, p in zip(rest, positions[len(begun) :], strict=True)
            ]
        )
        return state, [i for i, alive in enumerate(begun) if alive]

    def _sync_epoch(
        self, base: State, epoch: int, positions: list[int], active: list[int]
    ) -> State:
        rules = self.algo.distribution.delta_rules
        while active:
            reports: list[StepReport] = self.ray.get(
                [self.workers[i].step.remote(self.exchange_every) for i in active]
            )
            self._account(reports, epoch)
            for r in reports:
                positions[r.index] = r.position
            trained = [r.index for r in reports if r.batches]
            states = [
                s for s, _ in self.ray.get([self.workers[i].snapshot.remote() for i in trained])
            ]
            if states:
                merged = functools.reduce(self.algo.merge, states)
                fix_counts(merged, base, states, rules)
                base = merged
            active = [r.index for r in reports if not r.finished]
            self.ray.get([self.workers[i].replace.remote(base) for i in active])
            if self.stop.requested:
                self._mark(base, epoch, positions)
                self.loop.interrupt(base)
            if self.loop.due():
                self._save(base, epoch, positions)
        return base

    # -- steps, progress, checkpoints --------------------------------------------------------

    def _free_run(
        self, active: list[int], epoch: int, snapshot: Callable[[], tuple[State, list[int]]]
    ) -> None:
        """Keep each active worker stepping until its shard ends; checkpoint from
        ``snapshot()`` (the combined state and positions) when due."""
        ray = self.ray
        inflight = {self.workers[i].step.remote(self.step_batches): i for i in active}
        while inflight:
            ready, _ = ray.wait(list(inflight), num_returns=1, timeout=1.0)
            for ref in ready:
                i = inflight.pop(ref)
                report: StepReport = ray.get(ref)
                self._account([report], epoch)
                if not report.finished and not self.stop.requested:
                    inflight[self.workers[i].step.remote(self.step_batches)] = i
            if inflight and not self.stop.requested and self.loop.due():
                state, positions = snapshot()
                self._save(state, epoch, positions)
        if self.stop.requested:
            state, positions = snapshot()
            self._mark(state, epoch, positions)
            self.loop.interrupt(state)

    def _account(self, reports: list[StepReport], epoch: int) -> None:
        for r in reports:
            per_row = r.loss / r.loss_rows if r.loss_rows else math.nan
            self.loop.account(r.batches, r.rows, per_row, epoch)

    def _mark(self, state: State, epoch: int, positions: list[int]) -> None:
        """Where ``state`` stands: ``epoch``, each worker's position in its shard."""
        state.position = Position(epoch, sum(positions))
        state.trainer.distributed = Layout(self.n, self.mode, self.layout, list(positions))

    def _save(self, state: State, epoch: int, positions: list[int]) -> None:
        self._mark(state, epoch, positions)
        self.loop.save(state)
