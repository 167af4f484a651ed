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

    python benchmarks/serving.py --swap-every 1 [--seconds 10]

serves a continuous training's output folder instead (``streamfit serve OUTPUT``, batching):
``--seconds`` steady, then ``--seconds`` while a new version is published every
``--swap-every`` seconds, then ``--seconds`` steady again (each version written beforehand by
the trainer's Publisher, moved into place and ``latest`` renamed over, as the Publisher does
last). Reported for each phase: p50, p99 and the slowest request, and how many requests took
over twice the first steady p99; every answer's version header is checked (a published
version, never older than the one before).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
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
    port: int,
    body: bytes,
    stop_at: float,
    record_from: float,
    latencies: list[float],
    path: str,
    versions: list[bytes] | None = None,
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
        if versions is not None:
            version = re.search(rb"(?i)x-streamfit-model-version: *(\d+)", head)
            if version is None or (versions and version.group(1) < versions[-1]):
                raise SystemExit(f"no version, or an older one than {versions[-1:]}: {head!r}")
            versions.append(version.group(1))
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


def _trainer(n_features: int) -> Any:
    """A Linear Learner that trains a batch further at each call and publishes the version."""
    import torch

    from streamfit import Batch, get_algorithm
    from streamfit.datagen import linear_task
    from streamfit.training.loop import Loop, warm_up
    from streamfit.training.publish import Publisher

    algo = get_algorithm("linear-learner")(predictor_type="binary_classifier")
    blocks = linear_task(n_features, "binary", seed=1).blocks(1000 * 1000, block=1000)
    end = 0

    def batch() -> Batch:
        nonlocal end
        block = next(blocks)
        flat = block.column("features").flatten().to_numpy()
        x = torch.from_numpy(flat.reshape(-1, n_features).copy())
        y = torch.tensor(block.column("label").to_numpy(), dtype=torch.float32)
        end += len(y)
        return Batch(x.float(), y, end_position=end)

    state, batches = warm_up(algo, None, iter([batch()]), torch.device("cpu"), "bench")
    loop = Loop(algo)
    for b in batches:
        loop.step(state, b)

    def publish(publisher: Publisher) -> Path:
        loop.step(state, batch())
        return publisher.publish(algo, state)

    return publish


def _phase(latencies: list[float], over: float) -> dict[str, Any]:
    lat = np.array(latencies) * 1e3
    return {
        "requests": len(lat),
        "p50_ms": float(np.percentile(lat, 50)),
        "p99_ms": float(np.percentile(lat, 99)),
        "max_ms": float(lat.max()),
        "over_2x_steady_p99": int((lat > over).sum()),
    }


def run_swaps(args: argparse.Namespace) -> dict[str, Any]:
    """Latency of ``streamfit serve OUTPUT`` steady, then while versions are swapped in."""
    from streamfit.training.publish import LATEST, MODELS, Publisher

    folder = Path(tempfile.mkdtemp(prefix="serving-swap-bench-"))
    publish = _trainer(args.features)
    served, staged = folder / "served", folder / "staged"
    publish(Publisher(served, every=3600, keep=3))
    n_swaps = int(args.seconds / args.swap_every) + 2
    staging = Publisher(staged, every=3600, keep=n_swaps + 2)
    for _ in range(n_swaps + 1):
        publish(staging)  # numbered 000001...: the first is left out below

    rows = np.random.default_rng(0).normal(size=(256, args.features)).astype(np.float32)
    bodies = [(",".join(f"{v:.6g}" for v in row) + "\n").encode() for row in rows]
    port = _free_port()
    command = [sys.executable, "-m", "streamfit", "serve", str(served), "--port", str(port)]
    proc = _start([*command, "--poll-seconds", str(args.poll_seconds)], port)

    async def phase(swapping: bool) -> tuple[list[float], int]:
        # Each phase on new connections, measured after the same warm-up.
        record_from = time.perf_counter() + args.warmup
        stop_at = record_from + args.seconds
        latencies: list[float] = []
        swaps = 0

        async def swapper() -> None:
            nonlocal swaps
            version = 2
            await asyncio.sleep(args.warmup)
            while time.perf_counter() + args.swap_every < stop_at:
                await asyncio.sleep(args.swap_every)
                name = f"{version:06d}"
                (staged / MODELS / name).rename(served / MODELS / name)
                link = served / MODELS / ".latest.bench"
                link.symlink_to(name)
                link.replace(served / MODELS / LATEST)
                version, swaps = version + 1, swaps + 1

        await asyncio.gather(
            *([swapper()] if swapping else []),
            *(
                _client(
                    port,
                    bodies[i % len(bodies)],
                    stop_at,
                    record_from,
                    latencies,
                    "/invocations",
                    [],
                )
                for i in range(args.clients)
            ),
        )
        return latencies, swaps

    try:
        steady, _ = _run_loop(phase(False))
        swapping, swaps = _run_loop(phase(True))
        # Steady again: what the machine's other work did to the run, apart from the swaps.
        after, _ = _run_loop(phase(False))
        metrics = urllib_get(f"http://127.0.0.1:{port}/metrics")
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(folder, ignore_errors=True)
    over = 2 * float(np.percentile(steady, 99)) * 1e3
    swapped = re.search(r"streamfit_serving_model_swaps_total\{[^}]*\} (\S+)", metrics)
    errors = re.findall(
        r'streamfit_serving_requests_total\{[^}]*status="[^2]\d\d"\} (\S+)', metrics
    )
    result = {
        "clients": args.clients,
        "swap_every_s": args.swap_every,
        "versions_published": swaps,
        "swaps_counted_by_server": float(swapped.group(1)) if swapped else 0.0,
        "non_200_answers": sum(float(e) for e in errors),
        "steady": _phase(steady, over),
        "swapping": _phase(swapping, over),
        "steady_after": _phase(after, over),
    }
    for name in ("steady", "swapping", "steady_after"):
        r = result[name]
        print(
            f"{name:12s} {r['requests'] / args.seconds:7,.0f} req/s  p50 {r['p50_ms']:6.2f} ms  "
            f"p99 {r['p99_ms']:6.2f} ms  max {r['max_ms']:7.2f} ms  "
            f"over 2x steady p99 ({over:.2f} ms): {r['over_2x_steady_p99']}",
            flush=True,
        )
    print(
        f"versions published {swaps}, swapped in by the server "
        f"{result['swaps_counted_by_server']:.0f}, "
        f"answers other than 200: {result['non_200_answers']:.0f}",
        flush=True,
    )
    return result


def urllib_get(url: str) -> str:
    import urllib.request

    return str(urllib.request.urlopen(url).read().decode())


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
    parser.add_argument(
        "--swap-every",
        type=float,
        default=None,
        help="Measure latency while a new version is published every this many seconds.",
    )
    parser.add_argument("--poll-seconds", type=float, default=0.5, help="streamfit serve's.")
    parser.add_argument("--plain-server", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.plain_server:
        import uvicorn

        uvicorn.run(
            _plain_app(args.plain_server), host="127.0.0.1", port=args.port, log_level="warning"
        )
        return
    results: Any = run_swaps(args) if args.swap_every else run(args)
    if args.json:
        # The load average says how much of the machine the run had (others may share it).
        doc = {"cpus": os.cpu_count(), "load_average": os.getloadavg(), "results": results}
        args.json.write_text(json.dumps(doc, indent=2))


if __name__ == "__main__":
    main()
