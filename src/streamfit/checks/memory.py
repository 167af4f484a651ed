"""Checks of an algorithm's memory: fixed by ``init_state``, estimated truly before
allocating, refused when too large, and not growing with the rows trained on."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

from streamfit.checks.data import AlgorithmClass, expect, parameters_of
from streamfit.errors import ConfigError

__all__ = ["check_oversized_state_refused", "check_peak_memory_flat", "check_state_bytes"]

#: How much more peak memory 10^6 rows may take than 10^4 (allocator noise, not data).
SLACK_MB = 16.0


def check_state_bytes(algorithm: AlgorithmClass) -> None:
    """``state_bytes(n)`` is within 5% of what ``init_state(n)`` allocates: states too large
    are refused by this estimate, so it must not drift from the truth."""
    algo = algorithm(parameters_of(algorithm).hyperparameters)
    width = algo.expected_features() or 50
    state = algo.init_state(width)
    actual = sum(t.numel() * t.element_size() for t in state.tensors.values())
    estimate = algo.state_bytes(width)
    expect(
        abs(estimate - actual) <= 0.05 * actual,
        f"state_bytes({width}) = {estimate:,} but init_state({width}) allocates {actual:,} bytes",
    )


def check_oversized_state_refused(algorithm: AlgorithmClass) -> None:
    """A state of 10^12 features is refused with a ConfigError that says how much it needs,
    before anything is allocated."""
    params = parameters_of(algorithm)
    hp = {**params.hyperparameters, **params.oversized}
    if "feature_dim" in hp:
        hp["feature_dim"] = 10**12
    algo = algorithm(hp)
    try:
        algo.init_state(10**12 if not params.oversized else algo.expected_features() or 1)
    except ConfigError as exc:
        expect(
            re.search(r"needs [\d.]+ [KMGTPE]B but only", str(exc)),
            f"the refusal does not say how much the state needs: {exc}",
        )
        return
    raise AssertionError("init_state(10**12) was not refused")


def check_peak_memory_flat(
    algorithm: AlgorithmClass,
    *,
    device: str = "cpu",
    rows: tuple[int, int] = (10_000, 1_000_000),
    slack_mb: float = SLACK_MB,
) -> None:
    """Training on 10^6 generated rows peaks at no more memory than on 10^4 (each in a child
    process of its own, so that peaks are the run's own): memory is fixed at ``init_state``."""
    small, large = (_peak_rss_mb(algorithm, n, device) for n in rows)
    expect(
        large - small < slack_mb,
        f"peak RSS {small:.0f} MB after {rows[0]:,} rows, {large:.0f} MB after {rows[1]:,}",
    )


def _peak_rss_mb(algorithm: AlgorithmClass, rows: int, device: str) -> float:
    params = parameters_of(algorithm)
    where = f"{algorithm.__module__}:{algorithm.__qualname__}"
    if "<locals>" in where:
        raise AssertionError(f"the memory check imports {where} again: define it in a module")
    spec = {
        "algorithm": where,
        "hyperparameters": dict(params.memory_hyperparameters),
        "data": [params.memory_data.task, list(params.memory_data.args)],
        "options": dict(params.memory_data.options),
        "rows": rows,
        "device": device,
    }
    # The child imports the algorithm's module as this process would.
    path = os.pathsep.join([p or os.getcwd() for p in sys.path])
    out = subprocess.run(
        [sys.executable, "-m", "streamfit.checks.memory_child", json.dumps(spec)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": path},
    )
    if out.returncode != 0:
        raise AssertionError(f"training {rows:,} rows failed: {out.stderr[-2000:]}")
    doc = json.loads(out.stdout.strip().splitlines()[-1])
    expect(doc["rows"] == rows, f"trained on {doc['rows']:,} of {rows:,} generated rows")
    return float(doc["rss_mb"])
