"""DeepAR's parts on hand-made windows: likelihood heads, scaling, sampling, the inference
configuration (the reader and training end to end: test_deepar.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from streamfit.algorithms.deepar import DeepAR
from streamfit.algorithms.deepar.evaluation import quantile_losses
from streamfit.algorithms.deepar.likelihoods import HEADS
from streamfit.algorithms.deepar.model import inference_config
from streamfit.algorithms.deepar.network import DeepARNetwork, mean_scale
from streamfit.core.batch import Batch
from streamfit.core.windows import WindowLayout
from streamfit.errors import ConfigError

LAYOUT = WindowLayout(history=2, context=3, prediction=2, time_features=1)


def _windows(targets: np.ndarray, observed: np.ndarray | None = None) -> torch.Tensor:
    n = targets.shape[0]
    obs = np.ones_like(targets) if observed is None else observed
    rows = LAYOUT.pack(targets, obs, np.zeros((n, LAYOUT.steps, 1)))
    return torch.from_numpy(rows)


@pytest.mark.parametrize("name", sorted(HEADS))
def test_each_head_gives_a_finite_loss_and_samples_in_its_domain(name: str) -> None:
    head = HEADS[name]
    raw = torch.randn(4, 5, head.args, generator=torch.Generator().manual_seed(0))
    scale = torch.tensor([[1.0], [2.0], [5.0], [0.5]])
    target = torch.rand(4, 5, generator=torch.Generator().manual_seed(1)) * 3
    if name == "beta":
        target = target / 4
    loss = head.loss(raw, target, scale)
    assert loss.shape == (4, 5) and bool(torch.isfinite(loss).all())
    draws = head.distribution(raw, scale).sample((50,))
    assert draws.shape == (50, 4, 5)
    if name == "negative-binomial":
        assert bool((draws >= 0).all()) and bool((draws == draws.round()).all())
    if name == "beta":
        assert bool(((draws > 0) & (draws < 1)).all())
    if name == "deterministic-L1":
        assert bool((draws == draws[0]).all())


def test_real_heads_scale_with_the_series() -> None:
    """A series ten times larger gets a distribution ten times wider, at the same raw output:
    the network works in scaled units."""
    raw = torch.tensor([[[0.5, 0.3, 1.0]]])
    small = HEADS["student-T"].distribution(raw, torch.tensor([[1.0]]))
    large = HEADS["student-T"].distribution(raw, torch.tensor([[10.0]]))
    assert torch.allclose(large.mean, 10 * small.mean)
    assert torch.allclose(large.stddev, 10 * small.stddev)


def test_mean_scale_of_the_context_with_defaults_for_empty_ones() -> None:
    targets = np.array(
        [
            [100.0, 100.0, 1.0, -3.0, 2.0, 50.0, 50.0],  # history and prediction do not count
            [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
            [9.0, 9.0, 9.0, 9.0, 9.0, 9.0, 9.0],
        ]
    )
    observed = np.ones_like(targets)
    observed[2, 2:5] = 0  # nothing observed in its context
    scale = mean_scale(LAYOUT.unpack(_windows(targets, observed)))[:, 0]
    assert scale[0].item() == pytest.approx(2.0)
    assert scale[1].item() == pytest.approx(1e-10)  # all zero: the minimum, not 0
    assert scale[2].item() == pytest.approx(6.0 / 6.0)  # the batch's: (1+3+2+0) / 6 points


def test_point_forecasts_feed_back_their_own_samples() -> None:
    """A deterministic head's sample paths are all the same, and each step's lags read the
    steps sampled before it (a change of the last context value changes both steps)."""
    torch.manual_seed(0)
    net = DeepARNetwork(LAYOUT, [1, 2], [], 3, 8, 1, 0.0, "deterministic-L1").eval()
    targets = np.array([[1.0, 2.0, 3.0, 4.0, 5.0, 0.0, 0.0]])
    paths = net.sample(LAYOUT.unpack(_windows(targets)), 4)
    assert paths.shape == (1, 4, 2) and bool((paths == paths[:, :1]).all())
    targets[0, 4] = 50.0
    changed = net.sample(LAYOUT.unpack(_windows(targets)), 1)
    assert bool((changed[0, 0] != paths[0, 0]).all())


def test_quantile_loss_is_gluonts_formula() -> None:
    y = torch.tensor([[10.0, 0.0]])
    forecast = torch.tensor([[8.0, 1.0]])
    losses = quantile_losses(y, {0.1: forecast, 0.9: forecast}, torch.ones(1, 2))
    # 2 |(y - f)(1{y <= f} - q)|: (10-8)(0-0.1) and (0-1)(1-0.1)
    assert losses[0.1].item() == pytest.approx(2 * (2 * 0.1 + 1 * 0.9))
    assert losses[0.9].item() == pytest.approx(2 * (2 * 0.9 + 1 * 0.1))


def test_inference_configuration_is_checked() -> None:
    meta = {"num_samples": 100, "output_types": ["mean", "quantiles"], "quantiles": ["0.1"]}
    out = inference_config({"num_samples": 7, "output_types": ["samples"]}, meta)
    assert out == {"num_samples": 7, "output_types": ["samples"], "quantiles": ["0.1"]}
    for bad, message in [
        ({"num_samples": 0}, "num_samples"),
        ({"output_types": ["median"]}, "output_types"),
        ({"quantiles": ["1.5"]}, "quantile"),
        ({"quantiles": ["high"]}, "quantile"),
        ({"samples": 3}, "unknown inference configuration"),
    ]:
        with pytest.raises(ConfigError, match=message):
            inference_config(bad, meta)


def test_answers_have_sagemakers_shape() -> None:
    algo = DeepAR(
        time_freq="Q",
        context_length=3,
        prediction_length=2,
        cardinality="ignore",
        num_dynamic_feat="ignore",
        num_cells=4,
        num_layers=1,
    )
    layout = algo.layout()
    state = algo.init_state(layout.width)
    n = 3
    rows = layout.pack(
        np.ones((n, layout.length)),
        np.ones((n, layout.length)),
        np.zeros((n, layout.steps, layout.time_features)),
    )
    algo.update(state, Batch(torch.from_numpy(rows)))
    model = algo.finalize(state, test_quantiles=[0.25, 0.75])
    config = {"num_samples": 20, "output_types": ["mean", "quantiles", "samples"]}
    configured = model.configured(config)
    answers = configured.records(configured.predict(torch.from_numpy(rows)))
    assert len(answers) == n
    first = answers[0]
    assert sorted(first) == ["mean", "quantiles", "samples"]
    assert len(first["mean"]) == 2 and sorted(first["quantiles"]) == ["0.25", "0.75"]
    assert len(first["samples"]) == 20 and all(len(p) == 2 for p in first["samples"])
    assert all(math.isfinite(v) for v in first["mean"])
    again = model.configured(config).predict(torch.from_numpy(rows))["samples"]
    assert torch.equal(again, model.configured(config).predict(torch.from_numpy(rows))["samples"])
