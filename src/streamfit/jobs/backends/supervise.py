"""The supervisor of one local run. Standard library only: started as a script
(``python -I supervise.py RUN_DIR``) so that it starts in milliseconds.

It detaches (double fork: the launcher waits only for the first), starts the command in its
own session with its output in ``output.log``, forwards SIGTERM and SIGINT to the command's
process group, and writes the exit status to ``exit.json`` when the command ends. It outlives
the scheduler that launched it.
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
    with open(tmp, "w") as f:
        json.dump(doc, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _start_ticks(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def main(run_dir: str) -> None:
    ready_r, ready_w = os.pipe()
    if os.fork() > 0:
        # The launcher waits for this parent, which waits until the supervisor (the child,
        # adopted by init once we exit) has recorded itself: a run is never seen half-born.
        os.close(ready_w)
        os.read(ready_r, 1)
        os._exit(0)
    os.close(ready_r)
    os.setsid()
    with open(os.path.join(run_dir, "request.json")) as f:
        request = json.load(f)
    pid = os.getpid()
    _write(os.path.join(run_dir, "supervisor.json"), {"pid": pid, "start_ticks": _start_ticks(pid)})
    os.write(ready_w, b"1")
    os.close(ready_w)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
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
    with open(os.path.join(run_dir, "output.log"), "ab") as log:
        try:
            child = subprocess.Popen(
                request["argv"],
                cwd=request.get("workdir") or None,
                env=request["env"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
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
