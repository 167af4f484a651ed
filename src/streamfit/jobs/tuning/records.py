"""A tuning job's row and its statuses.

```
Running ──all trials ended, one with a value──▶ Completed
   │    └─all trials ended, none with a value──▶ Failed
   └──stop asked, running trials ended─────────▶ Stopped
```
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from enum import StrEnum
from typing import Any

from streamfit.jobs.tuning.spec import TuningSpec

__all__ = ["TuningJob", "TuningStatus"]


class TuningStatus(StrEnum):
    RUNNING = "Running"  # trials being asked for, run and told
    COMPLETED = "Completed"  # every trial ended; the best one is recorded
    FAILED = "Failed"  # every trial ended and none gave the objective
    STOPPED = "Stopped"  # stopped at its owner's request; the best so far is kept


@dataclass(frozen=True)
class TuningJob:
    """A row of the ``tuning_jobs`` table."""

    id: int
    name: str
    owner: str
    spec: dict[str, Any]
    status: TuningStatus
    study: str
    created_at: float
    ended_at: float | None
    trials: int
    completed: int
    failed: int
    best_trial: int | None
    best_job_id: int | None
    best_value: float | None
    best_params: dict[str, Any] | None
    stop_requested: bool
    lease_until: float | None
    version: int
    leased_by: str | None

    @property
    def final(self) -> bool:
        return self.status != TuningStatus.RUNNING

    def spec_model(self) -> TuningSpec:
        return TuningSpec.model_validate(self.spec)

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> TuningJob:
        values = {f.name: row[f.name] for f in fields(cls)}
        values["status"] = TuningStatus(values["status"])
        return cls(**values)
