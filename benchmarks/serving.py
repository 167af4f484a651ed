"""The model server's speed: rows/s and latency of Linear Learner, one row per request.

    python benchmarks/serving.py [--features 100] [--clients 32] [--seconds 10]

A binary Linear Learner on 100-feature rows is served three ways, each in its own process
with the client in this one: ``streamfit serve`` with server-side batching (2 ms window),
``streamfit serve --batch-window-ms 0`` (no batching), and a plain FastAPI endpoint that
parses the CSV row with numpy and calls ``predict`` per request (no batching, no checks: the
floor a hand-written server gives). ``--clients`` connections (HTTP/1.1 keep-alive, a minimal
asyncio client so that the client is not what is measured) each send one CSV row, wait for
the answer and send the next, for ``--seconds`` after a warm-up. Reported: requests/s (= rows/s),
p50 and p99 latency as the client sees it, rows per model call (from ``/metrics``) and the
server process's CPU time per row (from /proc: a figure that depends less than rows/s on what
else the machine runs, as the client and other work share its cores).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Request  # at the top: the endpoint's annotations name them
from fastapi.responses import Response

PLAIN = "plain FastAPI, no batching"


def _plain_app(model_dir: str) -> Any:
    """The same model behind the simplest FastAPI endpoint: numpy parses, predict answers."""
    import torch

    from streamfit import load_model

    model = load_model(model_dir)
    app = FastAPI()

    @app.post("/invocations")
    async def invocations(request: Request) -> Response:
        body = await request.body()
        x = np.loadtxt(body.decode().splitlines(), delimiter=",", dtype=np.float32, ndmin=2)
        with torch.inference_mode():
            records = model.records(model.predict(torch.from_numpy(x)))
        return Response(json.dumps({"predictions": records}), media_type="application/json")

    @app.get("/ping")
    async def ping() -> dict[str, str]:
        return {"status": "ok"}

    return app


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _train(folder: Path, n_features: int) -> Path:
    from streamfit import train
    from streamfit.datagen import linear_task, write_batches

    write_batches(
        folder / "train.parquet", linear_task(n_features, "binary", seed=1).blocks(20_000)
    )
    hp = {"predictor_type": "binary_classifier"}
    train(
        "linear-learner",
        str(folder / "train.parquet"),
        hyperparameters=hp,
        output=folder / "job",
        progress=False,
    )
    return folder / "job" / "model"


def _start(command: list[str], port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {proc.stderr.read().decode() if proc.stderr else ''}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("server never listened")


async def _client(
    port: int, body: bytes, stop_at: float, record_from: float, latencies: list[float], path: str
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/csv\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    while True:
        start = time.perf_counter()  # uvloop's loop.time() counts whole milliseconds
        if start >= stop_at:
            break
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            raise SystemExit(f"bad answer: {head!r}")
        length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))  # type: ignore[union-attr]
        await reader.readexactly(length)
        if start >= record_from:
            latencies.append(time.perf_counter() - start)
    writer.close()


def _cpu_seconds(pid: int) -> float:
    """The CPU time process ``pid`` has used, all its threads (Linux's /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _load(
    port: int, pid: int, rows: np.ndarray, clients: int, seconds: float, warmup: float
) -> dict[str, Any]:
    record_from = time.perf_counter() + warmup
    stop_at = record_from + seconds
    latencies: list[float] = []
    bodies = [(",".join(f"{v:.6g}" for v in row) + "\n").encode() for row in rows]
    cpu: list[float] = []

    async def server_cpu() -> None:
        await asyncio.sleep(warmup)
        cpu.append(_cpu_seconds(pid))
        await asyncio.sleep(seconds)
        cpu.append(_cpu_seconds(pid))

    await asyncio.gather(
        server_cpu(),
        *(
            _client(port, bodies[i % len(bodies)], stop_at, record_from, latencies, "/invocations")
            for i in range(clients)
        ),
    )
    lat = np.array(latencies)
    return {
        "requests_per_second": len(lat) / seconds,
        "p50_ms": float(np.percentile(lat, 50) * 1e3),
        "p99_ms": float(np.percentile(lat, 99) * 1e3),
        # What the server spent per row, whatever else ran: its capacity on an idle core is
        # about 1000 / this rows/s (its event loop is one thread; predict runs beside it).
        "server_cpu_ms_per_row": (cpu[1] - cpu[0]) / max(len(lat), 1) * 1e3,
    }


def _run_loop(main: Any) -> Any:
    """``main`` on uvloop where installed (``streamfit serve`` uses it too): the client must
    not be what is measured."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


def _rows_per_call(port: int) -> float | None:
    import urllib.request

    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
    except OSError:
        return None
    total = re.search(r"streamfit_serving_batch_rows_sum\{[^}]*\} (\S+)", text)
    calls = re.search(r"streamfit_serving_batch_rows_count\{[^}]*\} (\S+)", text)
    if not total or not calls or float(calls.group(1)) == 0:
        return None
    return float(total.group(1)) / float(calls.group(1))


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    folder = Path(tempfile.mkdtemp(prefix="serving-bench-"))
    model = _train(folder, args.features)
    rows = np.random.default_rng(0).normal(size=(256, args.features)).astype(np.float32)
    serve = [sys.executable, "-m", "streamfit", "serve", str(model)]
    contenders = {
        "streamfit serve, batching 2 ms": [*serve, "--batch-window-ms", "2"],
        "streamfit serve, no batching": [*serve, "--batch-window-ms", "0"],
        PLAIN: [sys.executable, __file__, "--plain-server", str(model)],
    }
    results = []
    for name, command in contenders.items():
        if args.only and args.only not in name:
            continue
        port = _free_port()
        proc = _start([*command, "--port", str(port)], port)
        try:
            result = _run_loop(_load(port, proc.pid, rows, args.clients, args.seconds, args.warmup))
            result = {"server": name, **result, "rows_per_call": _rows_per_call(port)}
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        results.append(result)
        print(
            f"{name:34s} {result['requests_per_second']:8,.0f} rows/s  "
            f"p50 {result['p50_ms']:6.2f} ms  p99 {result['p99_ms']:6.2f} ms  "
            f"rows/call {result['rows_per_call'] or float('nan'):5.1f}  "
            f"server CPU {result['server_cpu_ms_per_row']:.3f} ms/row",
            flush=True,
        )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--features", type=int, default=100)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--only", default=None, help="Run only the servers whose name has this.")
    parser.add_argument("--json", type=Path, default=None, help="Write the results here.")
    parser.add_argument("--plain-server", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.plain_server:
        import uvicorn

        uvicorn.run(
            _plain_app(args.plain_server), host="127.0.0.1", port=args.port, log_level="warning"
        )
        return
    results = run(args)
    if args.json:
        # The load average says how much of the machine the run had (others may share it).
        doc = {"cpus": os.cpu_count(), "load_average": os.getloadavg(), "results": results}
        args.json.write_text(json.dumps(doc, indent=2))


if __name__ == "__main__":
    main()
