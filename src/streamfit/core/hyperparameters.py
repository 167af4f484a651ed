"""Hyperparameters: pydantic models that accept SageMaker's string-valued settings.

SageMaker passes every hyperparameter as a string (``"0.01"``, ``"true"``, ``"auto"``,
``"[0.1, 0.9]"``); the same configurations work here unchanged.

Every number is finite (``nan`` and ``inf`` are refused everywhere) and within the range its
meaning allows; the aliases below say which, once, for every algorithm.

>>> class HP(Hyperparameters):
...     learning_rate: PositiveFloat | Auto = "auto"
>>> try:
...     parse_hyperparameters(HP, {"learning_rate": "-1"}, algorithm="x")
... except ConfigError as exc:
...     print(exc)
x: hyperparameter 'learning_rate'='-1': Input should be greater than 0 or 'auto'
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from streamfit.errors import ConfigError
from streamfit.text import clip

__all__ = [
    "Auto",
    "Fraction",
    "Hyperparameters",
    "NonNegativeFloat",
    "PositiveFloat",
    "Seed",
    "parse_hp_assignments",
    "parse_hyperparameters",
]

Auto = Literal["auto"]
#: A step size, scale or multiplier: above zero.
PositiveFloat = Annotated[float, Field(gt=0)]
#: A penalty or tolerance: zero turns it off.
NonNegativeFloat = Annotated[float, Field(ge=0)]
#: A decay rate such as Adam's betas or momentum: in [0, 1).
Fraction = Annotated[float, Field(ge=0, lt=1)]
#: What torch's generators accept.
Seed = Annotated[int, Field(ge=0, lt=2**63)]


class Hyperparameters(BaseModel):
    """Base of every algorithm's hyperparameters: unknown names are an error."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, validate_default=True, allow_inf_nan=False
    )

    def as_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


H = TypeVar("H", bound=Hyperparameters)


def _coerce(value: Any) -> Any:
    # "[0.1, 0.9]" and "{...}" arrive as strings from the CLI and from SageMaker configs.
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except (json.JSONDecodeError, RecursionError):  # the model's check names it
            return value
    return value


def parse_hyperparameters(cls: type[H], raw: Mapping[str, Any], *, algorithm: str) -> H:
    """Validate ``raw`` into ``cls``; an error names each bad hyperparameter and its value.

    >>> class HP(Hyperparameters):
    ...     learning_rate: float = 0.1
    >>> parse_hyperparameters(HP, {"learning_rate": "0.5"}, algorithm="x").learning_rate
    0.5
    """
    try:
        return cls.model_validate({k: _coerce(v) for k, v in raw.items()})
    except ValidationError as exc:
        messages: dict[str, list[str]] = {}  # a union's members each complain: one line a field
        for err in exc.errors():
            name = str(err["loc"][0]) if err["loc"] else ""
            if err["type"] == "extra_forbidden":
                known = ", ".join(sorted(cls.model_fields))
                messages.setdefault(name, []).append(f"unknown (known: {known})")
            else:
                messages.setdefault(name, []).append(err["msg"].removeprefix("Value error, "))
        problems = []
        for name, msgs in messages.items():
            if not name:
                problems.append("; ".join(msgs))
            elif msgs[0].startswith("unknown"):
                problems.append(f"unknown hyperparameter {name!r} ({msgs[0][9:-1]})")
            else:
                given = clip(repr(raw.get(name, "<missing>")))
                said = " or ".join(m.removeprefix("Input should be ") for m in msgs[1:])
                first = msgs[0] + (f" or {said}" if said else "")
                problems.append(f"hyperparameter {name!r}={given}: {first}")
        raise ConfigError(f"{algorithm}: " + "; ".join(problems)) from None


def parse_hp_assignments(items: list[str] | tuple[str, ...]) -> dict[str, str]:
    """``["k=5", "loss=auto"]`` -> ``{"k": "5", "loss": "auto"}`` (values stay strings).

    >>> parse_hp_assignments(["k=5", "init=kmeans++"])
    {'k': '5', 'init': 'kmeans++'}
    """
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ConfigError(f"--hp expects NAME=VALUE, got {item!r}")
        out[name.strip()] = value.strip()
    return out
