"""A submission's jobs compared, for the sweep page: the hyperparameters that vary, the final
metrics, which metric is the objective and which way is better, and the best job.

>>> objective_of(["validation:roc_auc_score", "train:rows", "validation:objective_loss"])
'validation:roc_auc_score'
>>> lower_is_better("validation:rmse"), lower_is_better("validation:roc_auc_score")
(True, False)
"""

from __future__ import annotations

from typing import Any

from streamfit.jobs.errors import NoSuchJob
from streamfit.jobs.records import Job
from streamfit.jobs.store import Store
from streamfit.server import charts

__all__ = ["MAX_SWEEP_JOBS", "lower_is_better", "objective_of", "sweep_view"]

#: The most jobs one sweep page compares (the job table pages through any more).
MAX_SWEEP_JOBS = 2000
#: Metrics people usually tune on, best first; otherwise the first validation metric.
_PREFERRED = (
    "validation:roc_auc_score",
    "validation:objective_loss",
    "validation:binary_classification_accuracy",
    "validation:multiclass_accuracy",
    "validation:rmse",
    "validation:mse",
    "validation:absolute_loss",
)
_LOWER = ("loss", "mse", "rmse", "mae", "error", "perplexity")


def lower_is_better(metric: str) -> bool:
    name = metric.rsplit(":", 1)[-1].lower()
    return any(word in name for word in _LOWER)


def objective_of(metrics: list[str]) -> str | None:
    """The metric a sweep is most likely judged by, among those its jobs recorded."""
    for name in _PREFERRED:
        if name in metrics:
            return name
    for prefix in ("validation:", "test:", "train:"):
        found = sorted(m for m in metrics if m.startswith(prefix) and ":rows" not in m)
        if found:
            return found[0]
    return sorted(metrics)[0] if metrics else None


def _numeric_metrics(job: Job) -> dict[str, float]:
    return {
        k: float(v)
        for k, v in (job.metrics or {}).items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }


def sweep_view(store: Store, submission: str, objective: str | None) -> dict[str, Any]:
    """Everything the sweep page shows; :class:`NoSuchJob` for a submission with no jobs."""
    jobs = store.find(submission=submission, limit=MAX_SWEEP_JOBS)
    if not jobs:
        raise NoSuchJob(f"no submission {submission!r}")
    metrics: list[str] = []
    for job in jobs:
        metrics += [m for m in _numeric_metrics(job) if m not in metrics]
    metrics.sort()
    if objective not in metrics:
        objective = objective_of(metrics)
    hps = [dict(job.spec.get("hyperparameters") or {}) for job in jobs]
    names: list[str] = []
    for hp in hps:
        names += [k for k in hp if k not in names]
    varying = [n for n in names if len({repr(hp.get(n)) for hp in hps}) > 1]
    constant = {n: hps[0].get(n) for n in names if n not in varying}
    values = [_numeric_metrics(job).get(objective) if objective else None for job in jobs]
    lower = lower_is_better(objective) if objective else False
    scored = [(v, job.id) for v, job in zip(values, jobs, strict=True) if v is not None]
    best = (min(scored) if lower else max(scored))[1] if scored else None
    # Best first; jobs without the objective after, by id.
    order = sorted(
        range(len(jobs)),
        key=lambda i: (
            values[i] is None,
            0.0 if values[i] is None else (values[i] if lower else -(values[i] or 0.0)),
            jobs[i].id,
        ),
    )
    shown_metrics = [objective] if objective else []
    shown_metrics += [m for m in metrics if m != objective and m.startswith("validation:")][:2]
    rows = [
        {
            "job": jobs[i],
            "hp": hps[i],
            "metrics": _numeric_metrics(jobs[i]),
            "best": jobs[i].id == best,
        }
        for i in order
    ]
    chart_list = (
        charts.hyperparameter_charts(
            [(hp, v) for hp, v in zip(hps, values, strict=True)], objective
        )
        if objective
        else []
    )
    return {
        "submission": submission,
        "jobs": jobs,
        "rows": rows,
        "varying": varying,
        "constant": constant,
        "metrics": metrics,
        "objective": objective,
        "lower_is_better": lower,
        "shown_metrics": shown_metrics,
        "charts": chart_list,
        "truncated": len(jobs) >= MAX_SWEEP_JOBS,
        "owners": sorted({j.owner for j in jobs}),
        "status_counts": _counts(jobs),
    }


def _counts(jobs: list[Job]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for job in jobs:
        counts[job.status.value] = counts.get(job.status.value, 0) + 1
    return counts
