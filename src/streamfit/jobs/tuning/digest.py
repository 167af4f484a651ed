"""What a tuning job's digest says, and its trials table: shared by the notification sent
when it ends and by ``streamfit tune show``.

>>> params_text({"learning_rate": 0.0131234, "loss": "logistic", "mini_batch_size": 64})
'learning_rate=0.01312, loss=logistic, mini_batch_size=64'
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from streamfit.jobs.records import Job
from streamfit.jobs.tuning.post_training import point_objectives
from streamfit.jobs.tuning.progress import objective_value
from streamfit.jobs.tuning.records import TuningJob
from streamfit.jobs.tuning.spec import TuningSpec
from streamfit.text import printable

__all__ = ["Budget", "TrialRow", "budget", "digest", "params_text", "trial_rows"]


def _number(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def params_text(params: Mapping[str, Any]) -> str:
    return ", ".join(f"{printable(k)}={printable(_number(v))}" for k, v in sorted(params.items()))


@dataclass(frozen=True)
class TrialRow:
    """One trial, as ``tune show`` lists it: its latest job (a multi-fidelity trial's highest
    rung), its objective there, the rows it read in all and its jobs' run time."""

    trial: int
    job_id: int
    status: str
    value: float | None
    params: dict[str, Any]
    rows: float | None
    seconds: float | None
    rung: int = 0
    #: Which model of its trial's one training run (swept post-training hyperparameter):
    #: the rows of one run share ``trial``, ``job_id``, ``rows`` and ``seconds``.
    point: int | None = None


def trial_rows(tuning: TuningJob, jobs: Mapping[tuple[int, int], Job]) -> list[TrialRow]:
    """The trials (``jobs`` by trial and rung: :meth:`Tunings.rungs`), best objective first
    (those without one last, by number). A resumed trial's ``train:rows`` counts its earlier
    rungs' rows too: its last job's is what the trial read."""
    spec = tuning.spec_model()
    names = list(spec.search)
    if spec.multi_fidelity:
        names.append(spec.resource.hyperparameter)
    latest: dict[int, tuple[int, Job]] = {}
    seconds: dict[int, float] = {}
    for (trial, rung), job in jobs.items():
        if trial not in latest or rung > latest[trial][0]:
            latest[trial] = (rung, job)
        if job.started_at is not None and job.ended_at is not None:
            seconds[trial] = seconds.get(trial, 0.0) + job.ended_at - job.started_at
    out = []
    for trial, (rung, job) in latest.items():
        rows = (job.metrics or {}).get("train:rows")
        params = {k: job.spec.get("hyperparameters", {}).get(k) for k in names}
        row = TrialRow(
            trial,
            job.id,
            job.status.value,
            objective_value(job, spec.objective),
            params,
            float(rows) if isinstance(rows, int | float) else None,
            seconds.get(trial),
            rung,
        )
        out += _points(row, job, spec)
    sign = -1.0 if spec.objective.direction == "maximize" else 1.0
    # a higher rung's objective, after more training, ranks first
    return sorted(
        out,
        key=lambda r: (r.value is None, -r.rung, sign * (r.value or 0.0), r.trial, r.point or 0),
    )


def _points(row: TrialRow, job: Job, spec: TuningSpec) -> list[TrialRow]:
    """A trial's row, or one a model its run's sweep finalized."""
    name = spec.swept
    if name is None:
        return [row]
    values = spec.search[name].sweep_values()
    scores = point_objectives(job, spec.objective, len(values))
    if scores is None:  # no model: the run's own row, without a value for the swept name
        return [replace(row, value=None, params={**row.params, name: None})]
    return [
        replace(row, value=score, params={**row.params, name: value}, point=index)
        for index, (value, score) in enumerate(zip(values, scores, strict=True))
    ]


@dataclass(frozen=True)
class Budget:
    """What the trials spent: rows read (the trainers' ``train:rows``) and run time."""

    rows: float
    seconds: float


def budget(rows: list[TrialRow]) -> Budget:
    """Each trial's spending once (the models of one training run share it)."""
    runs = list({(r.trial, r.job_id): r for r in rows}.values())
    return Budget(
        sum(r.rows or 0.0 for r in runs),
        sum(r.seconds or 0.0 for r in runs if r.seconds is not None and math.isfinite(r.seconds)),
    )


def digest(
    tuning: TuningJob, jobs: Mapping[tuple[int, int], Job]
) -> tuple[str, str, dict[str, Any]]:
    """The digest's subject, text and webhook payload."""
    spec = tuning.spec_model()
    rows = trial_rows(tuning, jobs)
    failed = sum(1 for r in rows if r.value is None)
    metric = printable(spec.objective.metric)
    head = f"tuning job {tuning.id} '{printable(tuning.name)}' {tuning.status.value}"
    counts = f"{len(rows)} trials, {failed} failed"
    if spec.swept is not None:
        counts += f" ({len({(r.trial, r.job_id) for r in rows})} training runs)"
    best = ""
    if tuning.best_value is not None and tuning.best_params is not None:
        best = (
            f", best {metric} {_number(tuning.best_value)} with {params_text(tuning.best_params)}"
        )
    subject = printable(f"{head}: {counts}{best}")[:200]
    spent = budget(rows)
    lines = [
        f"{head}: {counts}{best}",
        "",
        f"owner:     {printable(tuning.owner)}",
        f"strategy:  {spec.strategy}, {spec.objective.direction} {metric}",
        f"budget:    {spent.rows:,.0f} rows read, {spent.seconds:,.0f} s of run time",
    ]
    if tuning.best_job_id is not None:
        lines.append(f"best job:  {tuning.best_job_id} (trial {tuning.best_trial})")
    lines += ["", f"streamfit tune show {tuning.id}"]
    payload = {
        "kind": "tuning",
        "tuning_id": tuning.id,
        "name": tuning.name,
        "owner": tuning.owner,
        "status": tuning.status.value,
        "trials": len(rows),
        "failed": failed,
        "objective": spec.objective.metric,
        "best_value": tuning.best_value,
        "best_params": tuning.best_params,
        "best_job_id": tuning.best_job_id,
        "rows_read": spent.rows,
        "run_seconds": spent.seconds,
    }
    return subject, "\n".join(lines) + "\n", payload
