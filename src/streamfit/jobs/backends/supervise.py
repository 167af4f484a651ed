"""The supervisor of one local run. Standard library only: exec'd as a script
(``python -I supervise.py RUN_DIR``) by the local backend, already detached from the
scheduler (its own session, adopted by init), and already recorded in ``supervisor.json``.

It starts the command in its own process group with its output in ``output.log``, forwards
SIGTERM and SIGINT to that group, and writes the exit status to ``exit.json`` when the command
ends. It outlives the scheduler that launched it.

The files it writes are its user's alone (0600). The job's secrets come in its own environment
(``STREAMFIT_RUN_SECRETS``, JSON), never in ``request.json``; the command gets them as
variables of its environment, and the scheduler's umask, not the supervisor's.
"""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time


def _write(path: str, doc: dict) -> None:  # type: ignore[type-arg]
    tmp = f"{path}.tmp"
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        json.dump(doc, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def main(run_dir: str) -> None:
    umask = os.umask(0o077)
    secrets = json.loads(os.environ.pop("STREAMFIT_RUN_SECRETS", "{}"))
    with open(os.path.join(run_dir, "request.json")) as f:
        request = json.load(f)
    exit_path = os.path.join(run_dir, "exit.json")
    # Signals are handled from the start: one that comes before the command exists is passed
    # on as soon as it does, so a stop can never lose the command or leave it orphaned.
    children: list[subprocess.Popen[bytes]] = []
    pending: list[int] = []

    def forward(signum: int, _frame: object) -> None:
        if not children:
            pending.append(signum)
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(children[0].pid, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})  # see launch
    if pending:  # stopped before the command started: it never starts
        _write(
            exit_path,
            {
                "exit_code": -pending[0],
                "ended_at": time.time(),
                "error": "stopped before the command started",
            },
        )
        return
    log_fd = os.open(
        os.path.join(run_dir, "output.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600
    )
    with open(log_fd, "ab") as log:
        try:
            child = subprocess.Popen(
                request["argv"],
                cwd=request.get("workdir") or None,
                env={**request["env"], **secrets},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                umask=umask,
            )
        except OSError as exc:
            log.write(f"streamfit: cannot start {request['argv'][0]!r}: {exc}\n".encode())
            _write(exit_path, {"exit_code": 127, "ended_at": time.time(), "error": str(exc)})
            return

        children.append(child)
        _write(os.path.join(run_dir, "child.json"), {"pid": child.pid, "started_at": time.time()})
        for signum in pending:
            forward(signum, None)
        code = child.wait()
    _write(exit_path, {"exit_code": code, "ended_at": time.time()})


if __name__ == "__main__":
    main(sys.argv[1])
