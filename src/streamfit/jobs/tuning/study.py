"""Optuna's studies, kept by its RDB storage in the store's own database.

Optuna's tables (``studies``, ``trials``, ``trial_params`` ...) sit beside the store's, but
the store's migrations do not make them: streamfit creates them (once, under the migrations'
lock on PostgreSQL) the first time a tuning job needs them. Optuna would record its schema
in ``alembic_version``, which is the store's own Alembic table: so its storage is opened
with its table creation and version check off (it then never writes that table), and
streamfit checks Optuna's ``version_info`` instead.

On SQLite each Optuna call opens its own connection (cheap there), so none stays open; on
PostgreSQL the storage keeps one open for the process's life (a connect per call made a
tuning pass ten times slower).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from streamfit.errors import ConfigError
from streamfit.jobs.database import database_url
from streamfit.jobs.store import Store
from streamfit.jobs.store_base import _MIGRATION_LOCK
from streamfit.jobs.tuning.spec import Range, TuningSpec

if TYPE_CHECKING:
    import optuna

__all__ = ["asked_distributions", "distributions", "open_storage", "sampler"]

#: By URL and store id: a store made again at the same URL has no Optuna tables yet.
_storages: dict[tuple[str, str], optuna.storages.RDBStorage] = {}


def open_storage(store: Store) -> optuna.storages.RDBStorage:
    """Optuna's storage in ``store``'s database (its tables made if need be)."""
    cached = _storages.get((store.url, store.id))
    if cached is not None:
        return cached
    import optuna
    from optuna.storages._rdb import models

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if store.path is None and store.engine.dialect.name == "sqlite":
        raise ConfigError("tuning jobs need a store in a file or on a server, not in memory")
    with store._write() as conn:
        if store.skip_locked:  # PostgreSQL: schedulers starting at once make them once
            conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_MIGRATION_LOCK)))
        models.BaseModel.metadata.create_all(conn)
        info = models.VersionInfoModel.__table__
        found = conn.execute(sa.select(info.c.schema_version)).scalar_one_or_none()
        if found is None:
            conn.execute(
                info.insert(),
                {
                    "version_info_id": 1,
                    "schema_version": models.SCHEMA_VERSION,
                    "library_version": optuna.__version__,
                },
            )
        elif found != models.SCHEMA_VERSION:
            raise ConfigError(
                f"{store.where}: Optuna's tables have schema version {found}, this Optuna "
                f"({optuna.__version__}) needs {models.SCHEMA_VERSION}: install the Optuna "
                "that made them"
            )
    url = database_url(store.url).render_as_string(hide_password=False)
    kwargs: dict[str, Any]
    if store.engine.dialect.name == "sqlite":
        # (a connection is cheap to open; wait for the store's writers, as it does)
        kwargs = {"poolclass": sa.pool.NullPool, "connect_args": {"timeout": 30}}
    else:  # one connection kept: Optuna opens a session per call, each a connect otherwise
        kwargs = {"pool_size": 1, "max_overflow": 2, "pool_pre_ping": True}
    storage = optuna.storages.RDBStorage(
        url, engine_kwargs=kwargs, skip_compatibility_check=True, skip_table_creation=True
    )
    _storages[store.url, store.id] = storage
    return storage


def distribution(r: Range) -> optuna.distributions.BaseDistribution:
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    log = r.scaling == "log"
    if r.categorical is not None:
        return CategoricalDistribution(r.categorical)
    if r.integer is not None:
        return IntDistribution(r.integer[0], r.integer[1], log=log)
    assert r.continuous is not None
    return FloatDistribution(r.continuous[0], r.continuous[1], log=log)


def distributions(spec: TuningSpec) -> dict[str, optuna.distributions.BaseDistribution]:
    return {name: distribution(r) for name, r in spec.search.items()}


def asked_distributions(spec: TuningSpec) -> dict[str, optuna.distributions.BaseDistribution]:
    """What a trial's job is asked for: the search less its swept post-training
    hyperparameter (its values are all finalized from the job's one run)."""
    swept = spec.swept
    return {name: d for name, d in distributions(spec).items() if name != swept}


def sampler(spec: TuningSpec, asked: int) -> optuna.samplers.BaseSampler:
    """The strategy's sampler for a pass. A sampler lives for one pass (the study outlives
    any process), so its seed moves on with the trials ``asked`` so far (the study's, every
    state): the same seed would propose the same first point on every pass. (Not the trials
    told: a paused multi-fidelity trial is told nothing, and every pass would repeat.)"""
    import optuna

    seed = None if spec.seed is None else (spec.seed * 1_000_003 + asked) % 2**32
    if spec.strategy == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if spec.strategy == "grid":
        # A grid's seed orders its points, and its trials name them by position: one order
        # for the study's life.
        swept = spec.swept
        grid = {name: r.grid() or [] for name, r in spec.search.items() if name != swept}
        return optuna.samplers.GridSampler(grid, seed=spec.seed or 0)
    startup = max(1, min(10, math.ceil(spec.trial_budget() / 4)))
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup, multivariate=False)
