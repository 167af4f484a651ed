"""Drift: how soon continuous training's published model recovers from an abrupt change.

    python benchmarks/drift.py [--rows 60000] [--rate 2000] [--features 10]
                               [--publish-every 0.5] [--only linear-learner]

A generated binary stream (``x ~ N(0, I)``, ``y = [x.w + logistic noise > 0]``) whose true
weights ``w`` are replaced by independent ones halfway, written at ``--rate`` rows a second
to a Redis stream (one JSON row a message; ``redis-server`` started here on a loopback port)
that a real ``streamfit train --train redis://... --publish-every`` reads. Each published
version is scored on the ``--window`` rows that follow the rows it had seen (its progressive
accuracy: rows it had not trained on, as a served model meets them). The pre-drift level is
the mean accuracy of the versions of the second quarter; recovery is the first version after
the drift within 1 point (absolute) of it: rows after the drift, and wall time from the first
drifted row written to that version's publication.

Each algorithm runs with its defaults and with its recency settings (what lets it forget).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import redis
import torch

from streamfit.core.registry import load_model
from streams import start_redis

#: name -> (algorithm, hyperparameters), each run once.
CONFIGS: dict[str, tuple[str, dict[str, Any]]] = {
    "linear-learner (defaults)": ("linear-learner", {}),
    # The learning rate stops decaying (by default x0.99 every 100 steps, to 1e-5).
    "linear-learner (use_lr_scheduler=false)": ("linear-learner", {"use_lr_scheduler": False}),
    "factorization-machines (defaults: adagrad)": ("factorization-machines", {}),
    # RMSProp's gradient scale is a moving average (beta_2): Adagrad's sum only grows, so
    # its steps shrink for good.
    "factorization-machines (optimizer=rmsprop)": (
        "factorization-machines",
        {"optimizer": "rmsprop", "linear_lr": 0.05, "factors_lr": 0.01, "beta_2": 0.99},
    ),
}


def stream(rows: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``rows`` rows whose true weights change at ``rows // 2``."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, d)).astype(np.float32)
    half = rows // 2
    w = [rng.normal(size=d) * 3 / np.sqrt(d) for _ in range(2)]
    score = np.concatenate([x[:half] @ w[0], x[half:] @ w[1]])
    noise = rng.logistic(size=rows)
    return x, (score + noise > 0).astype(np.int64)


def bodies(x: np.ndarray, y: np.ndarray) -> list[bytes]:
    """One message body a row, as JSON."""
    return [
        json.dumps({"label": int(label), "features": [round(float(v), 5) for v in row]}).encode()
        for label, row in zip(y, x, strict=True)
    ]


def run(
    name: str,
    algorithm: str,
    hp: dict[str, Any],
    x: np.ndarray,
    y: np.ndarray,
    args: Any,
    url: str,
) -> dict[str, Any]:
    out = Path(tempfile.mkdtemp(prefix="drift-"))
    hp = {"predictor_type": "binary_classifier", "mini_batch_size": 200, **hp}
    if algorithm == "factorization-machines":
        hp = {"feature_dim": x.shape[1], "num_factors": 4, **hp}
    key = f"drift-{out.name}"
    uri = f"{url}?stream={key}&group=trainer&idle_timeout=5s"
    argv = [sys.executable, "-m", "streamfit", "train", algorithm, "--train", uri]
    argv += ["--output", str(out / "out"), "--checkpoint-dir", str(out / "ck"), "--no-progress"]
    argv += ["--publish-every", f"{args.publish_every}s", "--keep-versions", "100000"]
    for hp_name, value in hp.items():
        shown = str(value).lower() if isinstance(value, bool) else value
        argv += ["--hp", f"{hp_name}={shown}"]
    log = out / "stderr.log"
    client = redis.Redis.from_url(url)
    first = args.rate  # a second's rows before the trainer starts: it reads from there on
    pipe = client.pipeline(transaction=False)
    for body in bodies(x[:first], y[:first]):
        pipe.xadd(key, {"body": body})
    pipe.execute()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=log.open("wb"))
    drift_at: list[float] = []
    half, chunk = len(y) // 2, max(1, args.rate // 20)

    def produce() -> None:
        start = time.monotonic()
        for i in range(first, len(y), chunk):
            if i <= half < i + chunk:
                drift_at.append(time.time())
            pipe = client.pipeline(transaction=False)
            for body in bodies(x[i : i + chunk], y[i : i + chunk]):
                pipe.xadd(key, {"body": body})
            pipe.execute()
            time.sleep(max(0.0, start + (i + chunk - first) / args.rate - time.monotonic()))

    writer = threading.Thread(target=produce)
    writer.start()
    writer.join()
    if proc.wait(timeout=600) != 0:
        raise SystemExit(f"{name}: exit {proc.returncode}\n{log.read_text()[-2000:]}")
    versions = []
    for folder in sorted((out / "out" / "models").glob("[0-9]*")):
        doc = json.loads((folder / "metrics.json").read_text())
        seen = int(doc["train:rows"])
        ahead = slice(seen, min(len(y), seen + args.window))
        if ahead.stop - ahead.start < args.window // 2:
            continue
        model = load_model(folder / "model")
        guess = model.predict(torch.from_numpy(x[ahead]))["predicted_label"].numpy()
        acc = float((guess == y[ahead]).mean())
        versions.append((seen, doc["published_at"], acc))
    before = [a for s, _, a in versions if half // 2 <= s and s + args.window <= half]
    level = float(np.mean(before))
    after = [(s, t, a) for s, t, a in versions if s >= half]
    dip = min(a for _, _, a in after)
    back = next(((s, t, a) for s, t, a in after if a >= level - 0.01), None)
    return {
        "config": name,
        "versions": len(versions),
        "pre_drift_accuracy": round(level, 4),
        "lowest_after_drift": round(dip, 4),
        "rows_to_recover": None if back is None else back[0] - half,
        "seconds_to_recover": None if back is None else round(back[1] - drift_at[0], 2),
        "final_accuracy": round(after[-1][2], 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=60_000)
    parser.add_argument("--rate", type=int, default=2_000, help="rows a second")
    parser.add_argument("--features", type=int, default=10)
    parser.add_argument("--publish-every", type=float, default=0.5)
    parser.add_argument("--window", type=int, default=2_000, help="rows each version is scored on")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", default=None, help="configs whose name contains this")
    args = parser.parse_args()
    x, y = stream(args.rows, args.features, args.seed)
    url, server = start_redis()
    try:
        for name, (algorithm, hp) in CONFIGS.items():
            if args.only is None or args.only in name:
                print(json.dumps(run(name, algorithm, hp, x, y, args, url)), flush=True)
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    main()
