"""DeepAR's network (Salinas et al., 2020; GluonTS's torch ``DeepARModel`` is the reference
design): an LSTM unrolled over a window's context and prediction steps, fed at each step the
lagged targets (divided by the series' scale), the step's calendar features and covariates,
and the series' static features (an embedding of each category and the log of its scale);
a likelihood head (:mod:`.likelihoods`) turns each step's output into a distribution of the
target there.

Training is teacher-forced over every step whose target is observed; a forecast runs the
context, then samples ``num_samples`` paths step by step, each sample fed back as the next
steps' lags.

>>> import numpy as np
>>> from streamfit.core.windows import WindowLayout
>>> layout = WindowLayout(history=2, context=4, prediction=2, time_features=1)
>>> net = DeepARNetwork(layout, lags=[1, 2], cardinality=[], embedding_dimension=3,
...                     num_cells=8, num_layers=1, dropout=0.0, likelihood="gaussian")
>>> rows = layout.pack(np.arange(8.0)[None], np.ones((1, 8)), np.zeros((1, 6, 1)))
>>> windows = layout.unpack(torch.from_numpy(rows))
>>> total, observed = net.loss(windows)
>>> float(observed)
6.0
>>> net.sample(windows, 5).shape
torch.Size([1, 5, 2])
"""

from __future__ import annotations

import torch
from torch import nn

from streamfit.algorithms.deepar.likelihoods import HEADS
from streamfit.core.windows import WindowLayout, Windows

__all__ = ["DeepARNetwork", "mean_scale"]

#: The smallest scale a series gets (GluonTS's ``minimum_scale``).
MIN_SCALE = 1e-10


def mean_scale(windows: Windows) -> torch.Tensor:
    """Each window's scale, ``(n, 1)``: the mean absolute observed target of its context
    (GluonTS's ``MeanScaler``); a window with none observed takes the batch's mean scale,
    else 1."""
    lo = windows.layout.history
    hi = lo + windows.layout.context
    target, observed = windows.target[:, lo:hi], windows.observed[:, lo:hi]
    total = (target.abs() * observed).sum(1)
    count = observed.sum(1)
    batch = total.sum() / count.sum().clamp_min(1.0)
    default = torch.where(batch > 0, batch, torch.ones_like(batch))
    scale = torch.where(count > 0, total / count.clamp_min(1.0), default)
    return scale.clamp_min(MIN_SCALE)[:, None]


class DeepARNetwork(nn.Module):
    """The LSTM, its embeddings and its likelihood head, for windows of ``layout``."""

    def __init__(
        self,
        layout: WindowLayout,
        lags: list[int],
        cardinality: list[int],
        embedding_dimension: int,
        num_cells: int,
        num_layers: int,
        dropout: float,
        likelihood: str,
    ) -> None:
        super().__init__()
        if max(lags) > layout.history:
            raise ValueError(f"lag {max(lags)} reaches before the window's {layout.history}")
        self.layout = layout
        self.head = HEADS[likelihood]
        self.lags: torch.Tensor
        self.register_buffer("lags", torch.tensor(lags, dtype=torch.long), persistent=False)
        self.embeds = nn.ModuleList(nn.Embedding(c, embedding_dimension) for c in cardinality)
        inputs = (
            len(lags)
            + layout.time_features
            + layout.dynamic
            + embedding_dimension * len(cardinality)
            + 1  # log(scale)
        )
        self.rnn = nn.LSTM(
            inputs,
            num_cells,
            num_layers,
            batch_first=True,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.project = nn.Linear(num_cells, self.head.args)

    def scale(self, windows: Windows) -> torch.Tensor:
        if self.head.name == "beta":  # targets in (0, 1): no scaling
            return torch.ones(windows.n, 1, device=windows.target.device)
        return mean_scale(windows)

    def _static(self, windows: Windows, scale: torch.Tensor) -> torch.Tensor:
        parts = []
        for i, embed in enumerate(self.embeds):
            assert isinstance(embed, nn.Embedding)
            # "auto" cardinality folds ids beyond the table into it (the hashing trick)
            parts.append(embed(windows.cat[:, i] % embed.num_embeddings))
        parts.append(torch.log(scale))
        return torch.cat(parts, 1)

    def _inputs(
        self, scaled: torch.Tensor, windows: Windows, static: torch.Tensor, first: int, n: int
    ) -> torch.Tensor:
        """The network's inputs at steps ``first .. first + n - 1`` from ``scaled`` targets
        (``(rows, length)``; rows may repeat each window for sample paths)."""
        h = self.layout.history
        steps = torch.arange(first, first + n, device=scaled.device)
        where = h + steps[:, None] - self.lags[None, :]  # (n, lags)
        lagged = scaled[:, where]  # (rows, n, lags)
        rows = scaled.shape[0]
        repeat = rows // windows.n
        time = windows.time[:, first : first + n]
        dynamic = windows.dynamic[:, first : first + n]
        per_step = torch.cat([time, dynamic], 2)
        if repeat > 1:
            per_step = per_step.repeat_interleave(repeat, 0)
        return torch.cat([lagged, per_step, static[:, None, :].expand(rows, n, static.shape[1])], 2)

    def loss(self, windows: Windows) -> tuple[torch.Tensor, torch.Tensor]:
        """The summed negative log-likelihood of every observed target of the windows'
        context and prediction steps, and how many there are."""
        scale = self.scale(windows)
        scaled = windows.target / scale
        static = self._static(windows, scale)
        steps = self.layout.steps
        out, _ = self.rnn(self._inputs(scaled, windows, static, 0, steps))
        raw = self.project(out)
        h = self.layout.history
        target, observed = windows.target[:, h:], windows.observed[:, h:]
        nll = self.head.loss(raw, target, scale)
        return (nll * observed).sum(), observed.sum()

    def sample(self, windows: Windows, num_samples: int) -> torch.Tensor:
        """``num_samples`` paths of each window's prediction range: ``(n, samples, P)``."""
        layout = self.layout
        scale = self.scale(windows)
        static = self._static(windows, scale)
        scaled = windows.target / scale
        _, state = self.rnn(self._inputs(scaled, windows, static, 0, layout.context))
        rows = windows.n * num_samples
        paths = scaled.repeat_interleave(num_samples, 0).clone()
        hc = (
            state[0].repeat_interleave(num_samples, 1),
            state[1].repeat_interleave(num_samples, 1),
        )
        static_r = static.repeat_interleave(num_samples, 0)
        scale_r = scale.repeat_interleave(num_samples, 0)
        out = torch.empty(rows, layout.prediction, device=scaled.device)
        for k in range(layout.prediction):
            step = layout.context + k
            x = self._inputs(paths, windows, static_r, step, 1)
            hidden, hc = self.rnn(x, hc)
            raw = self.project(hidden)[:, 0]
            draw = self.head.distribution(raw[:, None, :], scale_r).sample()[:, 0]
            out[:, k] = draw
            paths[:, layout.history + step] = draw / scale_r[:, 0]
        return out.reshape(windows.n, num_samples, layout.prediction)
