"""Settings of the job manager: from ``$STREAMFIT_HOME/settings.yaml``, overridden by
``STREAMFIT_<NAME>`` variables (e.g. ``STREAMFIT_SMTP_HOST``). Secrets never print.

>>> Settings.load(env={"STREAMFIT_HOME": "/tmp/x", "STREAMFIT_SMTP_PASSWORD": "hunter2"})
Settings(home=PosixPath('/tmp/x'), database_url=None, smtp_host=None, ...)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from streamfit.errors import ConfigError

__all__ = ["Settings", "default_home"]


def default_home(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    return Path(env.get("STREAMFIT_HOME") or Path.home() / ".streamfit")


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
                doc = yaml.safe_load(path.read_text()) or {}
            except yaml.YAMLError as exc:
                raise ConfigError(f"{path}: not valid YAML ({exc})") from None
            if not isinstance(doc, dict):
                raise ConfigError(f"{path}: expected a mapping of settings")
            values.update(doc)
        for name in cls.model_fields:
            key = f"STREAMFIT_{name.upper()}"
            if name != "home" and key in env:
                values[name] = env[key]
        values.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return cls(home=home, **values)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()
            )
            raise ConfigError(f"settings: {problems}") from None
