"""streamfit.train: in this process unless asked for workers, and no layer below knows."""

from __future__ import annotations

import subprocess
import sys

import pytest

from streamfit import ConfigError, train
from tests.conftest import BinaryFiles


@pytest.mark.parametrize("option", [{"ray_address": "auto"}, {"sync": True}, {"exchange_every": 2}])
def test_distributed_options_need_workers(
    option: dict[str, object], binary_files: BinaryFiles
) -> None:
    with pytest.raises(ConfigError, match="need workers"):
        train("pca", str(binary_files.train), hyperparameters={"num_components": 2}, **option)  # type: ignore[arg-type]


def test_training_in_process_imports_neither_the_distributed_package_nor_ray(
    binary_files: BinaryFiles,
) -> None:
    script = f"""
import sys
import streamfit.training.trainer
assert not [m for m in sys.modules if m.startswith("streamfit.distributed")], "training imports it"
from streamfit import train
train("pca", {str(binary_files.train)!r}, hyperparameters={{"num_components": 2}}, progress=False)
assert "ray" not in sys.modules
"""
    subprocess.run([sys.executable, "-c", script], check=True)
