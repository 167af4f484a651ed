"""Tuning specs: a job spec's fixed part, the hyperparameters to search, and how.

A tuning spec is a job spec (name, owner, algorithm or command, inputs, resources, tags ...)
with the tuning keys beside it. ``search`` names each hyperparameter's range as SageMaker's
``ParameterRanges`` do: ``categorical`` values, or an ``integer`` / ``continuous`` interval
with ``linear`` or ``log`` scaling. Errors name the file, the tuning job and the field, as a
job spec's do.

>>> spec = TuningSpec.from_raw({
...     "name": "lr", "owner": "a@example.com", "command": ["train.sh"],
...     "search": {"lr": {"continuous": [1e-4, 1e-1], "scaling": "log", "steps": 3},
...                "depth": {"integer": [2, 4]}, "loss": {"categorical": ["l1", "l2"]}},
...     "objective": {"metric": "validation:rmse", "direction": "minimize"},
...     "strategy": "grid", "max_jobs": 100}, "sweep.yaml")
>>> spec.search["lr"].kind, spec.grid_size(), spec.trial_budget()
('continuous', 18, 18)
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from streamfit.errors import ConfigError
from streamfit.jobs.errors import SpecError
from streamfit.jobs.fields import Key, message
from streamfit.jobs.spec import JobSpec, _check_algorithm, _documents, _in_folder
from streamfit.text import clip, printable

__all__ = [
    "TUNING_KEYS",
    "Objective",
    "Range",
    "Resource",
    "Strategy",
    "TuningSpec",
    "load_tuning_spec",
]

Strategy = Literal["random", "grid", "bayesian", "hyperband"]
Value = str | int | float | bool
#: The points a grid takes of a continuous range that names no ``steps``.
_MAX_GRID = 100_000
#: The values a continuous post-training range is swept at when it names no ``steps``.
SWEEP_STEPS = 5
#: The models one training run finalizes at most (one per swept value).
MAX_SWEPT = 100


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Range(_Model):
    """One hyperparameter's range: exactly one of ``categorical``, ``integer``,
    ``continuous``. ``steps``: the points a grid takes of a continuous range (spaced by its
    ``scaling``); an integer range's grid is every integer in it."""

    categorical: list[Value] | None = Field(default=None, min_length=1, max_length=1000)
    integer: tuple[int, int] | None = None
    continuous: tuple[float, float] | None = None
    scaling: Literal["linear", "log"] = "linear"
    steps: int | None = Field(default=None, ge=2, le=1000)

    @model_validator(mode="after")
    def _one(self) -> Range:
        given = [k for k in ("categorical", "integer", "continuous") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError("give exactly one of categorical, integer or continuous")
        bounds = self.integer or self.continuous
        if bounds is not None:
            low, high = bounds
            if not (math.isfinite(low) and math.isfinite(high)) or low > high:
                raise ValueError(f"[{low}, {high}] is not a range: min <= max, both finite")
            if self.scaling == "log" and low <= 0:
                raise ValueError(f"log scaling needs a range above 0, not [{low}, {high}]")
        elif self.scaling != "linear" or self.steps is not None:
            raise ValueError("scaling and steps are for integer and continuous ranges")
        if self.categorical is not None and len(set(map(repr, self.categorical))) < len(
            self.categorical
        ):
            raise ValueError("categorical values repeat")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in ("categorical", "integer", "continuous") if getattr(self, k))

    def grid(self) -> list[Value] | None:
        """The points of a grid search; None for a continuous range without ``steps``.

        >>> Range(continuous=(0.001, 0.1), scaling="log", steps=3).grid()
        [0.001, 0.01, 0.1]
        >>> Range(integer=(1, 3)).grid(), Range(categorical=["a", 1]).grid()
        ([1, 2, 3], ['a', 1])
        """
        if self.categorical is not None:
            return list(self.categorical)
        if self.integer is not None:
            first, last = self.integer
            return list(range(first, last + 1)) if last - first < _MAX_GRID else None
        assert self.continuous is not None
        if self.steps is None:
            return None
        low, high = self.continuous
        if self.scaling == "log":
            low, high = math.log(low), math.log(high)
        points = [low + (high - low) * i / (self.steps - 1) for i in range(self.steps)]
        out = [math.exp(p) for p in points] if self.scaling == "log" else points
        return [float(f"{p:.12g}") for p in out]

    def sweep_values(self) -> list[Value]:
        """The values one training run finalizes a model at, for a post-training
        hyperparameter: the grid's points, and a continuous range without ``steps`` at
        :data:`SWEEP_STEPS` points (not sampled: one run gives them all at once).

        >>> Range(continuous=(0.5, 1.5)).sweep_values()
        [0.5, 0.75, 1.0, 1.25, 1.5]
        """
        points = self.grid()
        if points is None and self.continuous is not None:
            points = self.model_copy(update={"steps": SWEEP_STEPS}).grid()
        return points or []


class Objective(_Model):
    """The final metric a trial is judged by, as its job records it (``jobs show``'s metrics:
    ``validation:roc_auc_score``, ``train:objective_loss``, or a command's own)."""

    metric: Key = Field(min_length=1)
    direction: Literal["maximize", "minimize"] = "maximize"


class Resource(_Model):
    """The budget of a multi-fidelity trial: the hyperparameter its rungs set (``epochs``: a
    resumed trial trains further passes from its checkpoint), from ``min`` to ``max``, times
    ``reduction_factor`` a rung, whose best 1 in ``reduction_factor`` go on."""

    hyperparameter: Key = "epochs"
    min: int = Field(default=1, ge=1)
    max: int = Field(default=9, ge=1)
    reduction_factor: int = Field(default=3, ge=2)

    @model_validator(mode="after")
    def _order(self) -> Resource:
        if self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")
        return self

    def levels(self) -> list[int]:
        """The rungs' budgets: ``min`` times the factor's powers, and ``max``.

        >>> Resource(min=1, max=9).levels(), Resource(min=2, max=10).levels()
        ([1, 3, 9], [2, 6, 10])
        """
        out = [self.min]
        while out[-1] * self.reduction_factor < self.max:
            out.append(out[-1] * self.reduction_factor)
        if out[-1] != self.max:
            out.append(self.max)
        return out


class TuningSpec(_Model):
    """A tuning job: ``job`` is the fixed part every trial shares; its ``notify`` settings
    send one digest when the tuning job ends (the trials send none of their own)."""

    job: JobSpec
    search: dict[Key, Range] = Field(min_length=1, max_length=100)
    objective: Objective
    strategy: Strategy = "bayesian"
    max_jobs: int = Field(ge=1, le=10_000)
    max_parallel_jobs: int = Field(default=1, ge=1, le=1_000)
    early_stopping: Literal["off", "auto"] = "off"
    #: Earlier tuning jobs whose completed trials seed this one's study.
    warm_start: list[int] = Field(default_factory=list, max_length=20)
    seed: int | None = None
    #: What a multi-fidelity trial is given more of at each rung.
    resource: Resource = Field(default_factory=Resource)

    @model_validator(mode="after")
    def _consistent(self) -> TuningSpec:
        if both := sorted(self.search.keys() & self.job.hyperparameters.keys()):
            raise ValueError(f"both fixed and searched: {', '.join(both)}")
        missing = [n for n, r in self.search.items() if r.grid() is None]
        if self.strategy == "grid" and missing:
            raise ValueError(
                f"a grid needs points: give steps to the continuous ranges {', '.join(missing)}"
            )
        if self.multi_fidelity:
            if self.job.algorithm is None:
                raise ValueError(
                    "multi-fidelity tuning (hyperband, early_stopping auto) needs a built-in "
                    "algorithm: its trials pause and resume from their checkpoints"
                )
            name = self.resource.hyperparameter
            if name in self.search or name in self.job.hyperparameters:
                raise ValueError(f"resource.hyperparameter {name!r}: the rungs set it, not you")
        if self.job.sweep is not None:
            raise ValueError("sweep: the tuner sets it, from the post-training names searched")
        return self

    @property
    def swept(self) -> str | None:
        """The searched post-training hyperparameter (one a state changes without data:
        K-Means' ``k``), whose values each trial's one training run finalizes as a model each
        (``train --sweep``) instead of a trial apiece; ``SpecError`` if more than one."""
        if self.job.algorithm is None:
            return None
        names = sorted(self.search.keys() & _post_training(self.job.algorithm))
        if len(names) > 1:
            raise SpecError(
                f"search: {', '.join(names)} are post-training hyperparameters of "
                f"{self.job.algorithm}: a training run sweeps one of them, search one and fix "
                "the others in hyperparameters"
            )
        return names[0] if names else None

    def sweep_argument(self) -> str | None:
        """The trials' ``train --sweep``: ``k=2,3,4``.

        >>> TuningSpec.from_raw({"name": "k", "owner": "a@example.com", "algorithm": "kmeans",
        ...     "inputs": {"train": "t.csv"}, "hyperparameters": {"feature_dim": 2},
        ...     "search": {"k": {"integer": [2, 4]}}, "objective": {"metric": "validation:msd",
        ...     "direction": "minimize"}, "max_jobs": 3}, "k.yaml").sweep_argument()
        'k=2,3,4'
        """
        name = self.swept
        if name is None:
            return None
        return f"{name}=" + ",".join(str(v) for v in self.search[name].sweep_values())

    def training_value(self) -> Value:
        """What the run trains with for the swept hyperparameter: its largest value (a
        K-Means state trained for the largest ``k`` keeps centres enough for every smaller
        one), or a categorical range's first."""
        name = self.swept
        assert name is not None
        values = self.search[name].sweep_values()
        numbers = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
        return max(numbers) if len(numbers) == len(values) else values[0]

    def _check_swept(self) -> None:
        name = self.swept
        if name is None:
            return
        if self.multi_fidelity:
            raise SpecError(
                f"search.{name}: a post-training hyperparameter is swept from each trial's "
                "final state, not with hyperband or early_stopping auto"
            )
        values = self.search[name].sweep_values()
        if len(values) > MAX_SWEPT:
            raise SpecError(
                f"search.{name}: {len(values)} values, at most {MAX_SWEPT} models a run"
            )
        if any("," in str(v) or isinstance(v, bool) for v in values):
            raise SpecError(f"search.{name}: a swept value is a number or a word without ','")
        channel = self.objective.metric.partition(":")[0]
        measured = "test" if "test" in self.job.inputs else "validation"
        if channel in ("test", "validation") and channel != measured:
            raise SpecError(
                f"objective.metric: the swept models of {name} are measured on {measured}, "
                f"not {channel}"
            )

    @property
    def multi_fidelity(self) -> bool:
        """Whether trials pause at rungs and only the best resume (Hyperband's promotion)."""
        return self.strategy == "hyperband" or self.early_stopping == "auto"

    def grid_size(self) -> int | None:
        """The number of points of a grid search (None for other strategies), the swept
        post-training hyperparameter's left out (its values are one run's)."""
        if self.strategy != "grid":
            return None
        swept = self.swept
        return math.prod(len(r.grid() or ()) for n, r in self.search.items() if n != swept)

    def trial_budget(self) -> int:
        """The trials (training runs) this tuning job runs at most: ``max_jobs``, or a smaller
        grid; a single run if only a post-training hyperparameter is searched."""
        if self.swept is not None and len(self.search) == 1:
            return 1
        size = self.grid_size()
        return self.max_jobs if size is None else min(self.max_jobs, size)

    @classmethod
    def from_raw(cls, raw: Any, source: str) -> TuningSpec:
        """Validate one raw spec; errors name ``source``, the tuning job and the field."""
        where = _where(source, raw)
        if not isinstance(raw, dict):
            raise SpecError(f"{where}: a tuning spec is a mapping, not {type(raw).__name__}")
        tuning = {k: v for k, v in raw.items() if k in TUNING_KEYS}
        job = {k: v for k, v in raw.items() if k not in TUNING_KEYS}
        try:
            spec = cls.model_validate({**tuning, "job": job})
            _check_algorithm(spec.trial_job(spec.example_params(), "example", {}))
            spec._check_swept()
        except ValidationError as exc:
            problems = "; ".join(_problem(err) for err in exc.errors()[:5])
            raise SpecError(f"{where}: {problems}") from None
        except SpecError as exc:
            raise SpecError(f"{where}: {exc}") from None
        except ConfigError as exc:  # an unknown algorithm or a hyperparameter it refuses
            raise SpecError(f"{where}: {clip(str(exc), 300)}") from None
        return spec

    def example_params(self) -> dict[str, Value]:
        """A point of the search space (each range's low end): to check the algorithm
        accepts every searched name before anything is stored."""
        out: dict[str, Value] = {}
        for name, r in self.search.items():
            if r.categorical is not None:
                out[name] = r.categorical[0]
            else:
                bounds = r.integer or r.continuous
                assert bounds is not None
                out[name] = bounds[0]
        return out

    def trial_job(self, params: dict[str, Any], name: str, tags: dict[str, str]) -> JobSpec:
        """The job of one trial: the fixed part with ``params``. A command gets them as
        ``STREAMFIT_HP_<NAME>`` variables too (and must write its metrics itself). A searched
        post-training hyperparameter is the run's ``sweep``, not one of ``params``."""
        job = self.job
        swept = self.swept
        update: dict[str, Any] = {
            "name": name,
            "hyperparameters": {
                **job.hyperparameters,
                **{k: v for k, v in params.items() if k != swept},
                **({} if swept is None else {swept: self.training_value()}),
            },
            "tags": {**job.tags, **tags},
            "notify": {"on": []},  # the tuning job's digest tells the owner
            "sweep": self.sweep_argument(),
        }
        if job.command is not None:
            env = {f"STREAMFIT_HP_{_env_name(k)}": str(v) for k, v in params.items()}
            update["env"] = {**job.env, **env}
        return JobSpec.model_validate({**job.model_dump(mode="json"), **update})


#: The keys of a tuning spec that are not a job spec's.
TUNING_KEYS = frozenset(TuningSpec.model_fields) - {"job"}


@functools.cache
def _post_training(algorithm: str) -> frozenset[str]:
    from streamfit.core.registry import get_algorithm  # imports torch: only for built-ins

    try:
        return get_algorithm(algorithm).post_training
    except ConfigError:  # an unknown algorithm: from_raw says so
        return frozenset()


def _env_name(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name).upper()


def _where(source: str, raw: Any) -> str:
    name = raw.get("name") if isinstance(raw, dict) else None
    shown = f" ({clip(name)!r})" if isinstance(name, str) and name else ""
    return f"{printable(source)}, tuning job{shown}"


def _problem(err: Any) -> str:
    loc = list(err["loc"])
    if loc[:1] == ["job"]:  # the fixed part's fields are the spec's own top-level keys
        loc = loc[1:]
    field = ".".join(clip(printable(str(p)), 40) for p in loc) or "spec"
    return f"{field}: {message(err)}"


def load_tuning_spec(path: str | Path) -> TuningSpec:
    """The one tuning spec in a YAML or JSON file; its trials run in the file's folder unless
    its ``workdir`` says otherwise."""
    path = Path(path)
    docs = list(_documents(path))
    if len(docs) != 1:
        raise SpecError(f"{printable(str(path))}: {len(docs)} specs: a tuning spec file holds one")
    spec = TuningSpec.from_raw(docs[0], str(path))
    return spec.model_copy(update={"job": _in_folder(spec.job, path.parent)})
