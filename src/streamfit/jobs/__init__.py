"""Fire-and-forget job management: submit thousands of training jobs and forget them.

```
New ──launch ok──▶ Launched ──▶ InProgress ──▶ Completed
 ▲  └─ capacity error: stays New, backs off     ├──▶ Stopped  (asked by its owner)
 │                                              └──▶ Failed ──▶ budget left: New, attempt + 1
 └──────────────────────────────────────────────────────────┘   otherwise:  Failed, final
```

Jobs live in a store (SQLite by default, in ``$STREAMFIT_HOME``); three idempotent steps move
them along (``launch``, which orders waiting jobs by priority and fair share (``shares``),
``monitor`` and ``retry``, which restarts continuous jobs (``continuous``) and preempted ones
(``preempt``) without spending an attempt), a fourth runs tuning jobs' trials (``tuning/``)
and a fifth tells their owners (``notify``); the scheduler runs the steps. Every status
change is a guarded update with its event row in the same transaction: the history is
complete, and no job is launched twice. A job that ended for good (Completed, Stopped, or
Failed with no retry to come) is ``final``.

Backends (``backends/``) run the attempts: ``local`` processes, a ``ray`` cluster, and
``memory``, the fake a test drives; with :class:`~streamfit.jobs.clock.FakeClock` it lets the
steps' own tests run without processes or waiting.
"""
