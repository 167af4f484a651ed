"""Tuning jobs over the JSON API, as ``streamfit tune`` has them: the same spec checks, store
and JSON (:mod:`streamfit.jobs.tuning.views`).

================================  ============================================
``POST /api/tuning``              submit a tuning spec (``tune submit``)
``GET /api/tuning``               tuning jobs, newest first (``tune list``)
``GET /api/tuning/{id}``          trials best first, budget (``tune show``)
``POST /api/tuning/{id}/stop``    as ``tune stop``
================================  ============================================
"""

from __future__ import annotations

import os
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query, Request
from pydantic import BaseModel, ConfigDict

from streamfit.jobs.errors import SpecError
from streamfit.jobs.tuning import Tunings, TuningSpec, TuningStatus
from streamfit.jobs.tuning.views import tuning_detail, tuning_summary
from streamfit.server.state import manager_of, store_of

__all__ = ["TuningDetail", "TuningSummary", "router"]

router = APIRouter(prefix="/api", tags=["tuning"])

TuningId = Annotated[int, Path(ge=1, le=2**62, description="The tuning job's id.")]


class _Tuning(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: int
    name: str
    owner: str
    status: str
    strategy: str
    max_trials: int
    best_value: float | None
    best_params: dict[str, Any] | None


class TuningSummary(_Tuning):
    """A tuning job (``tune list --json``): ``trials`` is how many it has run."""

    trials: int


class TuningDetail(_Tuning):
    """A tuning job with its trials, best first, and the rows and seconds they spent
    (``tune show --json``)."""

    trials: list[dict[str, Any]]
    budget: dict[str, float]


@router.post("/tuning", response_model=TuningSummary, status_code=201)
def submit_tuning(
    request: Request, body: Annotated[dict[str, Any], Body(description="A tuning spec.")]
) -> dict[str, Any]:
    """Submit one tuning spec, checked as ``tune submit`` checks a file (422 naming the
    field); its trials' ``workdir`` must be absolute over the API, as a job's."""
    spec = TuningSpec.from_raw(body, "request")
    workdir = spec.job.workdir
    if workdir is not None and not os.path.isabs(workdir):
        raise SpecError(
            f"request, tuning job: workdir: {workdir[:80]!r} is relative: give an "
            "absolute path over the API"
        )
    tunings = Tunings(store_of(request))
    for earlier in spec.warm_start:
        tunings.get(earlier)  # an unknown id is refused (404) before anything is stored
    return tuning_summary(tunings.create(spec, manager_of(request).ctx.clock.now()))


@router.get("/tuning", response_model=list[TuningSummary])
def list_tuning(
    request: Request,
    owner: Annotated[str | None, Query(max_length=320)] = None,
    status: Annotated[TuningStatus | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    """Tuning jobs, newest first, optionally one owner's or in one status."""
    tunings = Tunings(store_of(request))
    found = tunings.find(owner=owner, status=[status] if status else None, limit=limit)
    return [tuning_summary(t) for t in found]


@router.get("/tuning/{tuning_id}", response_model=TuningDetail)
def show_tuning(request: Request, tuning_id: TuningId) -> dict[str, Any]:
    """A tuning job, its trials by objective (best first) and the rows and time they spent."""
    return tuning_detail(Tunings(store_of(request)), tuning_id)


@router.post("/tuning/{tuning_id}/stop", response_model=TuningSummary)
def stop_tuning(request: Request, tuning_id: TuningId) -> dict[str, Any]:
    """Stop a tuning job: no new trials; those running are stopped."""
    return tuning_summary(Tunings(store_of(request)).request_stop(tuning_id))
