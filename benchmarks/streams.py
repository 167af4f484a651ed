"""Rows a second from a Redis stream into Linear Learner, against the same rows from Parquet.

    python benchmarks/streams.py [--rows 200000] [--features 20] [--format json|csv]
                                 [--redis-url redis://127.0.0.1:6379/0] [--repeat 2]

The rows (``datagen.linear_task``, binary) are written once to a local Parquet file, to a local
file in the messages' format (JSON Lines or CSV: the same parse), and as one message each to a
fresh Redis stream (started here with ``redis-server`` on a free loopback
port unless ``--redis-url`` is given). Each round trains Linear Learner in this process on
each input in turn, the stream through a new consumer group from its start. Training time is
``train:seconds`` less the stream's idle timeout (the quiet wait that ends its read). The
target (issue 18): the stream at least half the file's rate.
"""

from __future__ import annotations

import argparse
import io
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import redis

from streamfit.data.writers import WRITERS
from streamfit.datagen import linear_task, write_batches
from streamfit.training.trainer import train

IDLE = 0.5
HYPERPARAMETERS = {"predictor_type": "binary_classifier", "mini_batch_size": 1000}


def start_redis() -> tuple[str, subprocess.Popen[bytes]]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = shutil.which("redis-server") or "redis-server"
    args = [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL)
    client = redis.Redis(port=port)
    for _ in range(100):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    return f"redis://127.0.0.1:{port}/0", proc


def fill(
    url: str, stream: str, folder: Path, rows: int, features: int, fmt: str
) -> tuple[Path, Path]:
    """The rows as Parquet, as a file in the messages' format, and as messages."""
    task = linear_task(features, "binary", seed=1)
    parquet = folder / "train.parquet"
    write_batches(parquet, task.blocks(rows))
    out = io.BytesIO()
    WRITERS["jsonl" if fmt == "json" else fmt](task.blocks(rows), out)
    text = folder / ("train.jsonl" if fmt == "json" else "train.csv")
    text.write_bytes(out.getvalue())
    client = redis.Redis.from_url(url)
    client.delete(stream)
    lines = out.getvalue().splitlines()
    for at in range(0, len(lines), 10_000):
        pipe = client.pipeline(transaction=False)
        for body in lines[at : at + 10_000]:
            pipe.xadd(stream, {"body": body})
        pipe.execute()
    return parquet, text


def rate(uri: str, idle: float) -> float:
    result = train("linear-learner", uri, hyperparameters=HYPERPARAMETERS, progress=False)
    return result.metrics["train:rows"] / (result.metrics["train:seconds"] - idle)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--format", choices=["json", "csv"], default="json")
    parser.add_argument("--redis-url", default=None)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    proc = None
    url = args.redis_url
    if url is None:
        url, proc = start_redis()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            parquet, text = fill(url, "bench", folder, args.rows, args.features, args.format)
            print(f"{args.rows:,} rows of {args.features} features; messages as {args.format}")
            for round_ in range(args.repeat):
                file_rate = rate(str(parquet), 0.0)
                text_rate = rate(str(text), 0.0)
                stream = f"{url}?stream=bench&group=r{round_}&format={args.format}"
                stream_rate = rate(f"{stream}&idle_timeout={IDLE}s", IDLE)
                print(
                    f"round {round_ + 1}: parquet {file_rate:,.0f} rows/s, {text.name} "
                    f"{text_rate:,.0f}, redis {stream_rate:,.0f} ({stream_rate / file_rate:.2f} "
                    f"of Parquet's rate, {stream_rate / text_rate:.2f} of {text.name}'s)"
                )
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait()


if __name__ == "__main__":
    main()
