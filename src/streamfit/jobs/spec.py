"""Job specs: what to run, with what, how often to retry, whom to tell.

One YAML or JSON object per job; a list of them, several YAML documents, or JSON Lines for
many jobs in one file. Every spec is checked before anything is stored, and an error names the
file, the job and the field.

>>> spec = JobSpec.model_validate({
...     "name": "lr-0.01", "owner": "alice@example.com", "algorithm": "linear-learner",
...     "hyperparameters": {"predictor_type": "binary_classifier", "learning_rate": 0.01},
...     "inputs": {"train": "data/train.parquet"}})
>>> spec.retry.algorithm, spec.resources.cpus
(2, 1.0)
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from streamfit.errors import ConfigError
from streamfit.jobs.errors import SpecError

__all__ = ["JobSpec", "NotifySpec", "Resources", "RetryPolicy", "load_specs", "parse_specs"]

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
Terminal = Literal["completed", "failed", "stopped"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Resources(_Model):
    cpus: float = Field(default=1.0, gt=0)
    gpus: int = Field(default=0, ge=0)
    memory_mb: int = Field(default=1024, gt=0)


class RetryPolicy(_Model):
    """Attempt budgets per failure kind (retries after the first attempt), and backoff."""

    algorithm: int = Field(default=2, ge=0)
    infrastructure: int = Field(default=5, ge=0)
    backoff_seconds: float = Field(default=30.0, ge=0)
    max_backoff_seconds: float = Field(default=3600.0, ge=0)
    #: The same error this many times in a row is a crash loop: no more retries.
    crash_loop: int = Field(default=3, ge=2)


def _all_terminal() -> list[Terminal]:
    return ["completed", "failed", "stopped"]


class NotifySpec(_Model):
    on: list[Terminal] = Field(default_factory=_all_terminal)
    email: list[str] = Field(default_factory=list)
    webhook: str | None = None
    console: bool = False
    #: One message for the whole submission once all its jobs are terminal.
    digest: bool = False

    @field_validator("email")
    @classmethod
    def _emails(cls, value: list[str]) -> list[str]:
        for address in value:
            if not _EMAIL.match(address):
                raise ValueError(f"{address!r} is not an email address")
        return value

    @field_validator("webhook")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"{value!r} is not an http(s) URL")
        return value


class JobSpec(_Model):
    """A training job: a built-in ``algorithm`` with ``inputs``, or any ``command``."""

    name: str = Field(min_length=1, max_length=200)
    owner: str
    algorithm: str | None = None
    hyperparameters: dict[str, Any] = Field(default_factory=dict)
    inputs: dict[str, str] = Field(default_factory=dict)
    command: list[str] | None = None
    env: dict[str, str] = Field(default_factory=dict)
    workdir: str | None = None
    device: str = "cpu"
    checkpoint_seconds: float = Field(default=60.0, gt=0)
    resources: Resources = Field(default_factory=Resources)
    max_runtime_seconds: float = Field(default=86_400.0, gt=0)
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    notify: NotifySpec = Field(default_factory=NotifySpec)
    tags: dict[str, str] = Field(default_factory=dict)
    priority: int = 0

    @field_validator("owner")
    @classmethod
    def _owner(cls, value: str) -> str:
        if not _EMAIL.match(value):
            raise ValueError(f"{value!r} is not an email address")
        return value

    @field_validator("command")
    @classmethod
    def _command(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and not value:
            raise ValueError("an empty command")
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> JobSpec:
        if (self.algorithm is None) == (self.command is None):
            raise ValueError("give exactly one of 'algorithm' (a built-in) or 'command'")
        if self.algorithm is not None and "train" not in self.inputs:
            raise ValueError("a built-in algorithm needs inputs.train")
        return self

    @property
    def kind(self) -> str:
        return "builtin" if self.algorithm is not None else "command"


def _check_algorithm(spec: JobSpec) -> None:
    """The algorithm exists and accepts the hyperparameters (ConfigError naming them if not)."""
    if spec.algorithm is None:
        return
    from streamfit.core.registry import get_algorithm  # imports torch: only for built-ins

    get_algorithm(spec.algorithm)(spec.hyperparameters)


def _where(source: str, index: int, raw: Any) -> str:
    name = raw.get("name") if isinstance(raw, dict) else None
    return f"{source}, job {index + 1}" + (f" ({name!r})" if name else "")


def parse_specs(raws: Iterable[Any], source: str) -> list[JobSpec]:
    """Validate every raw spec; the first error names the source, the job and the field."""
    specs = []
    for index, raw in enumerate(raws):
        try:
            spec = JobSpec.model_validate(raw)
            _check_algorithm(spec)
            specs.append(spec)
        except ValidationError as exc:
            problems = []
            for err in exc.errors():
                field = ".".join(str(p) for p in err["loc"]) or "spec"
                problems.append(f"{field}: {err['msg'].removeprefix('Value error, ')}")
            raise SpecError(f"{_where(source, index, raw)}: {'; '.join(problems)}") from None
        except ConfigError as exc:  # an unknown algorithm or a hyperparameter it refuses
            raise SpecError(f"{_where(source, index, raw)}: {exc}") from None
    return specs


def _documents(path: Path) -> Iterator[Any]:
    text = path.read_text()
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as exc:
                    raise SpecError(f"{path}, line {number}: not valid JSON ({exc.msg})") from None
        return
    try:
        docs = [json.loads(text)] if suffix == ".json" else list(yaml.safe_load_all(text))
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise SpecError(f"{path}: not valid {suffix.lstrip('.') or 'YAML'} ({exc})") from None
    for doc in docs:
        if isinstance(doc, list):
            yield from doc
        elif doc is not None:
            yield doc


def load_specs(paths: Iterable[str | os.PathLike[str]]) -> list[JobSpec]:
    """Every job in every file, all validated before any is returned."""
    specs: list[JobSpec] = []
    for p in paths:
        path = Path(p)
        if not path.is_file():
            raise SpecError(f"{path}: no such file")
        specs.extend(parse_specs(_documents(path), str(path)))
    if not specs:
        raise SpecError("no jobs in " + ", ".join(str(p) for p in paths))
    return specs
