"""A trained DeepAR: forecasts of each series' next ``prediction_length`` steps, as sample
paths summarised the way SageMaker's endpoint answers.

``predict`` takes window rows in forecast mode (each series' context, and the steps after its
end) and answers ``samples`` ``(series, num_samples, prediction_length)``; ``records`` gives
one answer per series, ``{"mean": [...], "quantiles": {"0.1": [...], ...}, "samples": [...]}``
with the parts ``output_types`` names. ``num_samples``, ``output_types`` and ``quantiles``
are the inference configuration (:meth:`DeepARModel.configured`), ``prediction_length`` is
the model's.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch

from streamfit.algorithms.deepar.network import DeepARNetwork
from streamfit.algorithms.deepar.quantiles import sample_quantiles
from streamfit.core.batch import Features
from streamfit.core.model import Model
from streamfit.core.nn import seeded
from streamfit.core.windows import SeriesReading, WindowLayout, Windows
from streamfit.errors import ConfigError

__all__ = ["OUTPUT_TYPES", "DeepARModel", "inference_config"]

OUTPUT_TYPES = ("mean", "quantiles", "samples")
_MODULE = "network."


def inference_config(config: Mapping[str, Any] | None, meta: Mapping[str, Any]) -> dict[str, Any]:
    """SageMaker's inference configuration (``num_samples``, ``output_types``,
    ``quantiles``) checked, over the model's defaults.

    >>> inference_config({"quantiles": ["0.5"], "output_types": ["mean", "quantiles"]},
    ...                  {"num_samples": 100, "output_types": ["mean"], "quantiles": ["0.1"]})
    {'num_samples': 100, 'output_types': ['mean', 'quantiles'], 'quantiles': ['0.5']}
    """
    out = {k: meta[k] for k in ("num_samples", "output_types", "quantiles")}
    unknown = sorted(set(config or {}) - set(out))
    if unknown:
        raise ConfigError(
            f"deepar: unknown inference configuration {unknown} (known: {sorted(out)})"
        )
    out.update(config or {})
    if not isinstance(out["num_samples"], int) or out["num_samples"] < 1:
        got = out["num_samples"]
        raise ConfigError(f"deepar: num_samples must be an integer >= 1, got {got!r}")
    bad = [t for t in out["output_types"] if t not in OUTPUT_TYPES]
    if bad or not out["output_types"]:
        raise ConfigError(f"deepar: output_types must be among {list(OUTPUT_TYPES)}, got {bad}")
    quantiles = []
    for q in out["quantiles"]:
        try:
            value = float(q)
        except (TypeError, ValueError):
            value = math.nan
        if not 0 < value < 1:
            raise ConfigError(f"deepar: a quantile must be a number in (0, 1), got {q!r}")
        quantiles.append(str(q))
    out["quantiles"] = quantiles
    return out


class DeepARModel(Model):
    """The network's tensors, and in ``meta`` its shape, the frequency and the inference
    configuration."""

    algorithm = "deepar"

    @property
    def layout(self) -> WindowLayout:
        return WindowLayout(**self.meta["layout"])

    def input_series(self) -> SeriesReading:
        """How series to forecast are read: the steps after each one's end."""
        return SeriesReading(
            self.meta["time_freq"], self.layout, "forecast", 1, tuple(self.meta["cardinality"])
        )

    def network(self) -> DeepARNetwork:
        m = self.meta
        net = DeepARNetwork(
            self.layout,
            list(m["lags"]),
            list(m["cardinality"]),
            m["embedding_dimension"],
            m["num_cells"],
            m["num_layers"],
            0.0,
            m["likelihood"],
        )
        net.load_state_dict({k[len(_MODULE) :]: v for k, v in self.tensors.items()})
        return net.to(self.device).eval()

    def configured(self, config: Mapping[str, Any] | None) -> DeepARModel:
        """This model under another inference configuration (SageMaker's
        ``DEEPAR_INFERENCE_CONFIG``)."""
        meta = {**self.meta, **inference_config(config, self.meta)}
        return DeepARModel(self.tensors, meta)

    def sample(self, windows: Windows, num_samples: int) -> torch.Tensor:
        """Sample paths ``(series, num_samples, P)``; the same paths every call (seed 0)."""
        with torch.no_grad(), seeded(int(self.meta.get("seed", 0)), self.device):
            return self.network().sample(windows, num_samples)

    def predict(self, features: Features) -> dict[str, torch.Tensor]:
        x = features.to_dense() if not isinstance(features, torch.Tensor) else features
        windows = self.layout.unpack(x.to(self.device).float())
        return {"samples": self.sample(windows, int(self.meta["num_samples"]))}

    def records(self, predictions: dict[str, torch.Tensor]) -> list[dict[str, Any]]:
        samples = predictions["samples"]
        types = self.meta["output_types"]
        out: list[dict[str, Any]] = [{} for _ in range(samples.shape[0])]
        if "mean" in types:
            for row, mean in zip(out, samples.mean(1).tolist(), strict=True):
                row["mean"] = mean
        if "quantiles" in types:
            names = list(self.meta["quantiles"])
            qs = [float(q) for q in names]
            values = sample_quantiles(samples, qs).permute(1, 0, 2).tolist()
            for row, per in zip(out, values, strict=True):
                row["quantiles"] = dict(zip(names, per, strict=True))
        if "samples" in types:
            for row, paths in zip(out, samples.tolist(), strict=True):
                row["samples"] = paths
        return out
