"""Settings of the job manager: from ``$STREAMFIT_HOME/settings.yaml``, overridden by
``STREAMFIT_<NAME>`` variables (e.g. ``STREAMFIT_SMTP_HOST``). Secrets never print.

Named secrets, which jobs get by reference (``env_from: {KEY: "secret:NAME"}``), come from
``secrets: {NAME: value}`` in ``settings.yaml`` and ``STREAMFIT_SECRET_<NAME>`` variables.

>>> s = Settings.load(env={"STREAMFIT_HOME": "/tmp/x", "STREAMFIT_SMTP_PASSWORD": "hunter2",
...                        "STREAMFIT_SECRET_hf": "hf_abc"})
>>> s
Settings(home=PosixPath('/tmp/x'), database_url=None, smtp_host=None, ...)
>>> s.secrets
{'hf': SecretStr('**********')}
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from streamfit.errors import ConfigError
from streamfit.jobs import yaml12

__all__ = ["SECRET_PREFIX", "FairShare", "Settings", "ShareLimits", "default_home"]

#: ``STREAMFIT_SECRET_<NAME>``: a named secret, as ``secrets: {NAME: ...}`` in settings.yaml.
SECRET_PREFIX = "STREAMFIT_SECRET_"


def default_home(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    return Path(env.get("STREAMFIT_HOME") or Path.home() / ".streamfit")


class ShareLimits(BaseModel):
    """One share's weight and its optional caps (what its running jobs may hold at once)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    weight: float = Field(default=1.0, gt=0)
    max_jobs: int | None = Field(default=None, ge=0)
    max_cpus: float | None = Field(default=None, ge=0)
    max_gpus: int | None = Field(default=None, ge=0)
    max_memory_mb: int | None = Field(default=None, ge=0)


class FairShare(BaseModel):
    """How the launch step shares the capacity (``fair_share:`` in ``settings.yaml``).

    >>> fair = FairShare.model_validate({"shares": {"vision": {"weight": 3, "max_gpus": 2}}})
    >>> fair.limits("vision").weight, fair.limits("someone@example.com").weight
    (3.0, 1.0)
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: A share's past usage counts half as much this many seconds later.
    half_life_seconds: float = Field(default=86_400.0, gt=0)
    #: Shares by name (a job's ``share``: its owner unless its spec names one).
    shares: dict[str, ShareLimits] = Field(default_factory=dict)
    #: Shares not listed: this weight, no caps.
    default_weight: float = Field(default=1.0, gt=0)

    def limits(self, share: str) -> ShareLimits:
        found = self.shares.get(share)
        return found if found is not None else ShareLimits(weight=self.default_weight)


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    home: Path
    database_url: str | None = None  # default: sqlite:///$home/streamfit.db
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_starttls: bool = False
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None
    smtp_sender: str = "streamfit@localhost"
    smtp_timeout: float = 10.0
    webhook_timeout: float = 10.0
    backend: Literal["local", "ray"] = "local"  # where runs happen
    ray_address: str | None = None  # the Ray dashboard (Jobs API), e.g. http://head:8265
    capacity_cpus: float | None = None  # default: the machine's
    capacity_gpus: int | None = None
    capacity_memory_mb: int | None = None
    launch_interval: float = Field(default=1.0, gt=0)
    monitor_interval: float = Field(default=1.0, gt=0)
    retry_interval: float = Field(default=2.0, gt=0)
    notify_interval: float = Field(default=2.0, gt=0)
    fair_share: FairShare = Field(default_factory=FairShare)
    #: Secrets jobs may ask for by name (``env_from``); never printed, stored or inherited.
    secrets: dict[str, SecretStr] = Field(default_factory=dict)

    @field_validator("secrets")
    @classmethod
    def _names(cls, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
        for name in value:
            if not re.match(r"^[A-Za-z0-9_.-]+$", name):
                raise ValueError(f"{name!r} is not a secret's name (letters, digits, _ . -)")
        return value

    def hidden(self) -> list[SecretStr]:
        """Every secret value the scheduler holds: masked wherever a job's output is shown."""
        own = [self.smtp_password] if self.smtp_password is not None else []
        return [*self.secrets.values(), *own]

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in list(self.__dict__.items())[:3])
        return f"Settings({shown}, ...)"

    @classmethod
    def load(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        env = os.environ if env is None else env
        home = Path(overrides.pop("home", None) or default_home(env))
        values: dict[str, Any] = {}
        path = home / "settings.yaml"
        if path.is_file():
            try:
                doc = yaml12.load(path.read_text()) or {}
            except yaml.YAMLError as exc:
                raise ConfigError(f"{path}: not valid YAML ({exc})") from None
            if not isinstance(doc, dict):
                raise ConfigError(f"{path}: expected a mapping of settings")
            values.update(doc)
        for name in cls.model_fields:
            key = f"STREAMFIT_{name.upper()}"
            if name not in ("home", "secrets", "fair_share") and key in env:
                values[name] = env[key]
        named = {
            k.removeprefix(SECRET_PREFIX): v for k, v in env.items() if k.startswith(SECRET_PREFIX)
        }
        if named:
            from_file = values.get("secrets") or {}
            if not isinstance(from_file, dict):
                raise ConfigError(f"{path}: secrets: expected a mapping of names to values")
            values["secrets"] = {**from_file, **named}
        values.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return cls(home=home, **values)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()
            )
            raise ConfigError(f"settings: {problems}") from None
