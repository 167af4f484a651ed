"""Job specs: what to run, with what, how often to retry, whom to tell.

One YAML or JSON object per job; a list of them, several YAML documents, or JSON Lines for
many jobs in one file. YAML is read as YAML 1.2 (``on``, ``yes``, ``no`` are text), with its
aliases limited (:mod:`streamfit.jobs.yaml12`). Every spec is checked before anything is stored,
and an error names the file, the job and the field, never echoing a long value whole.

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
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

import pydantic_core
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from streamfit.errors import ConfigError
from streamfit.jobs import yaml12
from streamfit.jobs.environment import check_reference
from streamfit.jobs.errors import SpecError
from streamfit.jobs.fields import (
    Address,
    EnvName,
    Key,
    Line,
    PathText,
    Text,
    Url,
    check_hyperparameter,
    message,
)
from streamfit.text import clip, printable

__all__ = [
    "MAX_FILE_BYTES",
    "MAX_SPEC_BYTES",
    "JobSpec",
    "NotifySpec",
    "Resources",
    "RetryPolicy",
    "load_specs",
    "parse_specs",
]

MAX_SPEC_BYTES = 256 * 1024  # one spec, as JSON (as stored)
MAX_FILE_BYTES = 64 * 1024 * 1024  # one spec file, read before parsing
_BOUNDED = {"resources", "retry", "notify", "continuous", "publish_every_seconds", "keep_versions"}

#: CPUs are fractional: what fits is compared with this much slack for rounding.
_CPU_TOLERANCE = 1e-9
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
Terminal = Literal["completed", "failed", "stopped"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Resources(_Model):
    """What a job asks for, and what a backend has (in all, or free): the one arithmetic of
    capacity. Sums and differences are not validated, so that what is free may reach zero
    (or below, where a cluster's report lags behind what was just launched).

    >>> machine = Resources(cpus=4, memory_mb=8000)
    >>> free = machine - Resources(cpus=3) - Resources(cpus=0.5)
    >>> str(free), Resources(cpus=1).fits_within(free), Resources(cpus=0.5).fits_within(free)
    ('0.5 CPUs, 0 GPUs, 5952 MB', False, True)
    """

    cpus: float = Field(default=1.0, gt=0)
    gpus: int = Field(default=0, ge=0)
    memory_mb: int = Field(default=1024, gt=0)

    @classmethod
    def zero(cls) -> Resources:
        return cls.model_construct(cpus=0.0, gpus=0, memory_mb=0)

    @classmethod
    def total(cls, parts: Iterable[Resources]) -> Resources:
        """The sum of ``parts`` (zero for none)."""
        return sum(parts, cls.zero())

    def __add__(self, other: Resources) -> Resources:
        return Resources.model_construct(
            cpus=self.cpus + other.cpus,
            gpus=self.gpus + other.gpus,
            memory_mb=self.memory_mb + other.memory_mb,
        )

    def __sub__(self, other: Resources) -> Resources:
        return Resources.model_construct(
            cpus=self.cpus - other.cpus,
            gpus=self.gpus - other.gpus,
            memory_mb=self.memory_mb - other.memory_mb,
        )

    def fits_within(self, room: Resources) -> bool:
        """Whether this much fits in ``room``. CPUs are fractional: sums of fractions are
        compared with a tolerance, so that 0.1 + 0.2 CPUs fit in 0.3."""
        return (
            self.cpus <= room.cpus + _CPU_TOLERANCE
            and self.gpus <= room.gpus
            and self.memory_mb <= room.memory_mb
        )

    @property
    def cpus_exhausted(self) -> bool:
        """No CPU left in this room (every job asks for some, so none can fit)."""
        return self.cpus <= _CPU_TOLERANCE

    def __str__(self) -> str:
        return f"{self.cpus:g} CPUs, {self.gpus} GPUs, {self.memory_mb} MB"


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
    email: list[Address] = Field(default_factory=list, max_length=50)
    webhook: Url | None = None
    console: bool = False
    #: One message for the whole submission once all its jobs are terminal.
    digest: bool = False

    @field_validator("email")
    @classmethod
    def _emails(cls, value: list[str]) -> list[str]:
        for address in value:
            if not _EMAIL.match(address):
                raise ValueError(f"{clip(address)!r} is not an email address")
        return value

    @field_validator("webhook")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"{clip(value)!r} is not an http(s) URL")
        return value


class JobSpec(_Model):
    """A training job: a built-in ``algorithm`` with ``inputs``, or any ``command``.

    Limits, so that a spec stays small to store, list and mail (in characters unless said):
    ``name`` 1-200; ``owner`` and each ``notify.email`` address 254 (at most 50 addresses);
    ``algorithm``, ``device`` and the keys of ``tags``, ``inputs`` and ``hyperparameters`` 100;
    tag values 200 (at most 50 tags); paths in ``inputs`` (at most 32) and ``workdir`` 4,096;
    ``notify.webhook`` 2,048; ``command`` 1-4,096 arguments of up to 64 KiB each; ``env`` at
    most 256 variables, names 256 (no ``=``), values 64 KiB; at most 200 hyperparameters, each
    JSON-like, 8 levels deep, 10,000 values, texts of 4,096; and the spec 256 KiB as JSON
    (less ``resources``, ``retry``, ``notify`` and the continuous settings, which their types
    keep small). Names, owners, keys, tags, paths and URLs hold no control characters (C0, DEL,
    C1, Unicode line separators and bidi overrides); arguments, env values and hyperparameter
    texts may hold tabs and newlines.
    """

    name: Line = Field(min_length=1)
    owner: Address
    algorithm: Key | None = None
    hyperparameters: dict[Key, Any] = Field(default_factory=dict, max_length=200)
    inputs: dict[Key, PathText] = Field(default_factory=dict, max_length=32)
    command: list[Text] | None = Field(default=None, max_length=4_096)
    env: dict[EnvName, Text] = Field(default_factory=dict, max_length=256)
    #: Secrets by reference, read when the job is launched, never stored or written to disk:
    #: ``{KEY: "file:/absolute/path"}`` or ``{KEY: "secret:NAME"}`` (the scheduler's settings).
    env_from: dict[EnvName, PathText] = Field(default_factory=dict, max_length=64)
    #: Where the job runs, and what relative ``inputs`` and command paths are relative to.
    #: A spec read from a file runs in that file's folder unless it says otherwise.
    workdir: PathText | None = None
    device: Key = "cpu"
    checkpoint_seconds: float = Field(default=60.0, gt=0)
    resources: Resources = Field(default_factory=Resources)
    max_runtime_seconds: float = Field(default=86_400.0, gt=0)
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    notify: NotifySpec = Field(default_factory=NotifySpec)
    tags: dict[Key, Line] = Field(default_factory=dict, max_length=50)
    #: Higher launches first, whatever the shares' usage.
    priority: int = 0
    #: Whose fair share of the capacity the job runs on (the settings' ``shares``); its
    #: owner's when not given.
    share: Address = ""
    #: The job checkpoints, so it may be stopped and queued again, without spending an
    #: attempt, when a job of higher priority waits for its room.
    preemptible: bool = False
    #: Kept running (:mod:`~streamfit.jobs.continuous`): after a failure that followed
    #: progress (a new checkpoint or model version) it restarts from its checkpoint without
    #: spending an attempt; ``retry.crash_loop`` failures in a row without progress end it.
    #: A built-in needs ``publish_every_seconds``; a command publishes as it likes.
    continuous: bool = False
    #: A built-in's model versions, published this often (``train --publish-every``).
    publish_every_seconds: float | None = Field(default=None, gt=0)
    #: Published versions kept (``train --keep-versions``).
    keep_versions: int = Field(default=5, ge=1)
    #: A built-in's models of one training run, one per value of a post-training
    #: hyperparameter (``train --sweep``: ``k=2..40``, ``k=2,5,9``); their metrics are the
    #: job's ``metrics["sweep"]``.
    sweep: Text | None = None

    @model_validator(mode="before")
    @classmethod
    def _own_share(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("share") and isinstance(data.get("owner"), str):
            return {**data, "share": data["owner"]}
        return data

    @field_validator("owner")
    @classmethod
    def _owner(cls, value: str) -> str:
        if not _EMAIL.match(value):
            raise ValueError(f"{clip(value)!r} is not an email address")
        return value

    @field_validator("hyperparameters")
    @classmethod
    def _hyperparameters(cls, value: dict[str, Any]) -> dict[str, Any]:
        for name, item in value.items():
            try:
                check_hyperparameter(name, item)
            except ValueError as exc:
                raise ValueError(f"{clip(name)!r}: {exc}") from None
        return value

    @field_validator("command")
    @classmethod
    def _command(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and not value:
            raise ValueError("an empty command")
        return value

    @field_validator("env_from")
    @classmethod
    def _references(cls, value: dict[str, str]) -> dict[str, str]:
        for key, reference in value.items():
            check_reference(key, reference)
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> JobSpec:
        if (self.algorithm is None) == (self.command is None):
            raise ValueError("give exactly one of 'algorithm' (a built-in) or 'command'")
        if self.algorithm is not None and "train" not in self.inputs:
            raise ValueError("a built-in algorithm needs inputs.train")
        if self.command is not None and self.publish_every_seconds is not None:
            raise ValueError(
                "publish_every_seconds is for a built-in algorithm (a command publishes itself)"
            )
        if self.continuous and self.algorithm is not None and self.publish_every_seconds is None:
            raise ValueError(
                "continuous: a built-in algorithm runs continuously only with "
                "publish_every_seconds (its published versions are how it shows progress)"
            )
        if both := sorted(self.env.keys() & self.env_from.keys()):
            raise ValueError(f"in both env and env_from: {', '.join(both)}")
        if self.sweep is not None and self.algorithm is None:
            raise ValueError("sweep is for a built-in algorithm (train --sweep)")
        return self

    @model_validator(mode="after")
    def _small(self) -> JobSpec:
        # The fields of the nested models are few and bounded by their types; leaving them out
        # makes this measure cost a third of the whole spec's JSON.
        size = len(pydantic_core.to_json(self.__dict__, exclude=_BOUNDED))
        if size > MAX_SPEC_BYTES:
            raise ValueError(
                f"the spec is {size:,} bytes as JSON: at most {MAX_SPEC_BYTES // 1024} KiB"
            )
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
    shown = f" ({clip(name)!r})" if isinstance(name, str) and name else ""
    return f"{printable(source)}, job {index + 1}{shown}"


def _problem(err: Any) -> str:
    field = ".".join(clip(printable(str(p)), 40) for p in err["loc"]) or "spec"
    return f"{field}: {message(err)}"


def parse_specs(raws: Iterable[Any], source: str) -> list[JobSpec]:
    """Validate every raw spec; the first error names the source, the job and the field."""
    specs = []
    for index, raw in enumerate(raws):
        try:
            spec = JobSpec.model_validate(raw)
            _check_algorithm(spec)
            specs.append(spec)
        except ValidationError as exc:
            problems = "; ".join(_problem(err) for err in exc.errors()[:5])
            raise SpecError(f"{_where(source, index, raw)}: {problems}") from None
        except ConfigError as exc:  # an unknown algorithm or a hyperparameter it refuses
            raise SpecError(f"{_where(source, index, raw)}: {clip(str(exc), 300)}") from None
        except RecursionError:  # a hyperparameter's text that is JSON nested past the stack
            raise SpecError(f"{_where(source, index, raw)}: nested too deep") from None
    return specs


def _read(path: Path) -> str:
    """The file's text, refused unread past :data:`MAX_FILE_BYTES` (streams: past reading that
    much), and refused unless UTF-8."""
    try:
        with path.open("rb") as f:
            info = os.fstat(f.fileno())
            if stat.S_ISDIR(info.st_mode):
                raise SpecError(f"{printable(str(path))}: a folder, not a spec file")
            if stat.S_ISREG(info.st_mode) and info.st_size > MAX_FILE_BYTES:
                raise SpecError(_too_big(path, f"{info.st_size:,} bytes"))
            data = f.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise SpecError(f"{printable(str(path))}: no such file") from None
    except IsADirectoryError:
        raise SpecError(f"{printable(str(path))}: a folder, not a spec file") from None
    except OSError as exc:
        raise SpecError(f"{printable(str(path))}: cannot read it ({exc.strerror})") from None
    if len(data) > MAX_FILE_BYTES:
        raise SpecError(_too_big(path, f"over {MAX_FILE_BYTES // 2**20} MiB"))
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SpecError(f"{printable(str(path))}: not UTF-8 text (byte {exc.start:,})") from None


def _too_big(path: Path, size: str) -> str:
    limit = MAX_FILE_BYTES // 2**20
    return f"{printable(str(path))}: {size} (a spec file holds at most {limit} MiB)"


def _json(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise SpecError(f"{where}: not valid JSON ({exc.msg}, column {exc.colno})") from None
    except ValueError:  # Python reads no integer of more than 4,300 digits
        raise SpecError(f"{where}: not valid JSON (a number too long)") from None
    except RecursionError:
        raise SpecError(f"{where}: not valid JSON (nested too deep)") from None


def _documents(path: Path) -> Iterator[Any]:
    text = _read(path)
    shown = printable(str(path))
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        for number, line in enumerate(text.split("\n"), 1):  # not splitlines: U+2028 is text
            if line.strip():
                yield _json(line, f"{shown}, line {number}")
        return
    if suffix == ".json":
        docs = [_json(text, shown)]
    else:
        try:
            docs = list(yaml12.load_all(text))
        except yaml12.YAMLLimitError as exc:
            raise SpecError(f"{shown}: refused: {yaml12.describe(exc)}") from None
        except yaml.YAMLError as exc:
            raise SpecError(f"{shown}: not valid YAML ({yaml12.describe(exc)})") from None
    for doc in docs:
        if isinstance(doc, list):
            yield from doc
        elif doc is not None:
            yield doc


def _in_folder(spec: JobSpec, folder: Path) -> JobSpec:
    """``spec`` running in ``folder`` (its file's), or in its own ``workdir`` taken from there:
    relative paths then mean the same wherever the scheduler was started."""
    workdir = folder / spec.workdir if spec.workdir is not None else folder
    return spec.model_copy(update={"workdir": os.path.abspath(workdir)})


def load_specs(paths: Iterable[str | os.PathLike[str]]) -> list[JobSpec]:
    """Every job in every file, all validated before any is returned. A job runs in its
    file's folder unless its ``workdir`` says otherwise (relative to that folder)."""
    specs: list[JobSpec] = []
    for p in paths:
        path = Path(p)
        folder = path.parent
        specs.extend(_in_folder(s, folder) for s in parse_specs(_documents(path), str(path)))
    if not specs:
        raise SpecError("no jobs in " + ", ".join(printable(str(p)) for p in paths))
    return specs
