"""Kill -9 of a real scheduler during a tuning job, at random instants: no trial is lost or
launched twice, and the tuning job completes with its trial count and its best."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import sqlalchemy as sa

from streamfit.jobs.store import Store
from streamfit.jobs.tables import events
from streamfit.jobs.tuning import Tunings, TuningSpec, TuningStatus

_TRIAL = (
    "import json, os, time; time.sleep(0.3); x = float(os.environ['STREAMFIT_HP_X']); "
    "d = os.environ['STREAMFIT_OUTPUT_DIR']; os.makedirs(d, exist_ok=True); "
    "json.dump({'validation:score': -(x - 0.3) ** 2}, open(os.path.join(d, 'metrics.json'), 'w'))"
)


def _scheduler(home: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "STREAMFIT_HOME": str(home),
        "STREAMFIT_CAPACITY_CPUS": "2",
        "STREAMFIT_CAPACITY_MEMORY_MB": "8000",
    }
    env.pop("STREAMFIT_DATABASE_URL", None)
    return subprocess.Popen(
        [sys.executable, "-m", "streamfit", "scheduler", "run"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.mark.slow  # real schedulers started and killed, trials run as processes: ~15 s
def test_kill_9_of_the_scheduler_loses_and_repeats_no_trial(tmp_path: Path) -> None:
    home = tmp_path / "home"
    store = Store.open(home)
    spec = TuningSpec.from_raw(
        {
            "name": "crash",
            "owner": "a@example.com",
            "command": [sys.executable, "-c", _TRIAL],
            "resources": {"cpus": 0.5, "memory_mb": 100},
            "search": {"x": {"continuous": [0.0, 1.0]}},
            "objective": {"metric": "validation:score", "direction": "maximize"},
            "strategy": "bayesian",
            "max_jobs": 8,
            "max_parallel_jobs": 3,
            "seed": 5,
        },
        "crash.yaml",
    )
    tunings = Tunings(store)
    tuning = tunings.create(spec, time.time())
    rand = random.Random(7)
    kills = 0
    deadline = time.monotonic() + 150
    try:
        while not tunings.get(tuning.id).final and time.monotonic() < deadline:
            proc = _scheduler(home)
            if kills < 4:  # killed at a random instant of its work, then started again
                time.sleep(rand.uniform(1.5, 3.5))
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                kills += 1
                continue
            while not tunings.get(tuning.id).final and time.monotonic() < deadline:
                time.sleep(0.2)
            proc.terminate()
            proc.wait(timeout=30)
        done = tunings.get(tuning.id)
        trials = tunings.trials(tuning.id)
        jobs = store.find(tags={"tuning": str(tuning.id)})
        with store.engine.connect() as conn:
            launched = Counter(
                conn.execute(
                    sa.select(events.c.job_id).where(events.c.to_status == "Launched")
                ).scalars()
            )
    finally:
        store.close()
    assert kills == 4
    assert done.status == TuningStatus.COMPLETED, done
    assert done.trials == 8 and sorted(trials) == list(range(8))  # none lost
    assert len(jobs) == 8 and {j.id for j in jobs} == {j.id for j in trials.values()}
    assert all(launched[j.id] == 1 for j in jobs), launched  # none launched twice
    scores = {
        n: json.loads(Path(j.output_uri or "", "metrics.json").read_text())
        for n, j in trials.items()
    }
    best = max(scores, key=lambda n: scores[n]["validation:score"])
    assert done.best_trial == best and done.completed == 8
