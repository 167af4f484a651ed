"""``streamfit demo``: generate a data set, train Linear Learner on it, show the results."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import click
from rich.console import Console

from streamfit.cli.options import handle_errors
from streamfit.cli.train import print_metrics
from streamfit.datagen import linear_task, write_batches
from streamfit.training.inference import finalize, predict_records
from streamfit.training.trainer import train

__all__ = ["demo_command"]


@click.command("demo")
@click.option(
    "--workdir",
    type=click.Path(path_type=Path),
    default=Path("demo-output"),
    show_default=True,
    help="Where the data and the job's output go.",
)
@click.option("--rows", type=int, default=1_000_000, show_default=True, help="Training rows.")
@handle_errors
def demo_command(workdir: Path, rows: int) -> None:
    """Train Linear Learner (32 models in one pass) on generated data and show its metrics."""
    console = Console()
    workdir.mkdir(parents=True, exist_ok=True)
    task = linear_task(50, "binary", seed=7)
    data = {"train": rows, "validation": 50_000, "test": 50_000}
    paths = {}
    started = time.perf_counter()
    for offset, (channel, n) in enumerate(data.items()):
        path = workdir / f"{channel}.parquet"
        if not path.exists():
            write_batches(path, task.blocks(n, offset=offset * 10**9))
        paths[channel] = str(path)
    console.print(
        f"[bold]data[/] {rows:,} x 50 training rows (+ validation, test) in {workdir} "
        f"({time.perf_counter() - started:.1f} s)"
    )
    shutil.rmtree(workdir / "job", ignore_errors=True)  # a fresh job, not a resumed one
    result = train(
        "linear-learner",
        paths["train"],
        validation=paths["validation"],
        test=paths["test"],
        hyperparameters={"predictor_type": "binary_classifier", "num_models": 32},
        output=workdir / "job",
        checkpoint_dir=workdir / "job" / "checkpoints",
    )
    m = result.metrics
    print_metrics(m, "linear-learner, 32 candidate models, one pass")
    meta = result.model.meta
    console.print(
        f"[bold]best candidate[/] #{meta['candidate']} of 32 (learning_rate "
        f"{meta['learning_rate']:.3g}, wd {meta['wd']:.2g}, l1 {meta['l1']:.2g}), "
        f"threshold {meta['threshold']:.3f} by {meta['selection']['criterion']}"
    )
    console.print(f"[bold]throughput[/] {m['train:rows_per_second']:,.0f} rows/s")
    tuned = finalize(
        workdir / "job" / "state",
        workdir / "model-recall",
        binary_classifier_model_selection_criteria="recall_at_target_precision",
        target_precision=0.9,
    )
    console.print(
        "[bold]post-training tuning[/] same state, recall at precision >= 0.9: candidate "
        f"#{tuned.meta['candidate']}, threshold {tuned.meta['threshold']:.3f}, recall "
        f"{tuned.meta['selection']['value']:.3f} (no data re-read)"
    )
    first = next(iter(predict_records(workdir / "job" / "model", paths["test"], labelled=True)))
    console.print(f"[bold]prediction[/] first test row -> {first}")
