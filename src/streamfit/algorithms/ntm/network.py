"""ProdLDA (Srivastava and Sutton, 2017) as a plain module: ``forward`` and ``loss``, no
training loop (the learner is :class:`~streamfit.algorithms.ntm.algorithm.NTM`).

A document's bag of words ``x`` (counts over ``V`` words) is encoded by an MLP into the mean
and log-variance of a Gaussian over ``K`` logits; ``theta = softmax(z)`` are its topic
proportions (logistic normal). The prior is the Laplace approximation of a symmetric
Dirichlet(1) in that space: mean 0, variance ``1 - 1/K``. The decoder is a product of experts:
word probabilities ``softmax(BN(W theta))``, ``W`` a ``(V, K)`` matrix whose column ``k`` is
topic ``k``'s log-weights over words. Batch normalisation (without affine parameters) of the
encoder's outputs and of the decoder's logits, and dropout on the encoder's output and on
``theta``, are what keep every topic in use (ProdLDA's remedy for component collapse).

The loss of a document is the negative evidence lower bound, reconstruction plus KL:
``-sum_v x_v log p_v + KL(q(z|x) || prior)``. Randomness (the sample of ``z``, dropout) comes
from torch's global generator, which the learner seeds per step from the state.

>>> net = ProdLDA(vocabulary=6, topics=2, layers=[4], activation="softplus")
>>> x = torch.tensor([[1.0, 0, 2, 0, 0, 1], [0, 3, 0, 1, 0, 0]])
>>> recon, kl = net.loss(x)
>>> recon.shape, kl.shape, bool((recon > 0).all() and (kl >= 0).all())
(torch.Size([2]), torch.Size([2]), True)
"""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F
from torch import nn

from streamfit.algorithms.ntm.likelihood import decoder_nll
from streamfit.core.batch import CSR, Features

__all__ = ["BagOfWords", "ProdLDA", "laplace_prior"]

_ACTIVATIONS: dict[str, type[nn.Module]] = {
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "softplus": nn.Softplus,
}


def laplace_prior(topics: int, alpha: float = 1.0) -> tuple[float, float]:
    """Mean and variance of the Laplace approximation of a symmetric ``Dirichlet(alpha)`` over
    ``topics`` in the softmax basis (MacKay, 1998): ``mu = 0``,
    ``var = (1 - 2/K) / alpha + 1 / (K alpha)``.

    >>> laplace_prior(4)
    (0.0, 0.75)
    """
    k = float(topics)
    return 0.0, (1.0 - 2.0 / k) / alpha + 1.0 / (k * alpha)


class BagOfWords(nn.Module):
    """A linear layer from ``V`` words to ``h`` units of ``log(1 + counts)``, from a dense
    batch or a CSR batch (summing the rows of its weight that a document's words select: no
    dense copy of a sparse batch). Logarithms, because raw counts let one long document (a
    word repeated hundreds of times) drive the posterior's variance to overflow."""

    def __init__(self, vocabulary: int, width: int) -> None:
        super().__init__()
        bound = 1.0 / math.sqrt(vocabulary)  # nn.Linear's initialisation
        self.weight = nn.Parameter(torch.empty(vocabulary, width).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(width).uniform_(-bound, bound))

    def forward(self, x: Features) -> torch.Tensor:
        if isinstance(x, CSR):
            out = F.embedding_bag(
                x.indices,
                self.weight,
                x.indptr[:-1],
                mode="sum",
                per_sample_weights=torch.log1p(x.values),
                include_last_offset=False,
            )
            return out + self.bias
        return torch.addmm(self.bias, torch.log1p(x), self.weight)


class ProdLDA(nn.Module):
    """The encoder, the logistic-normal latent and the product-of-experts decoder."""

    def __init__(
        self,
        vocabulary: int,
        topics: int,
        layers: list[int],
        activation: str = "softplus",
        dropout: float = 0.2,
        batch_norm: bool = True,
    ) -> None:
        super().__init__()
        self.topics = topics
        self.embed = BagOfWords(vocabulary, layers[0])
        hidden: list[nn.Module] = [_ACTIVATIONS[activation]()]
        for a, b in itertools.pairwise(layers):
            hidden += [nn.Linear(a, b), _ACTIVATIONS[activation]()]
        self.hidden = nn.Sequential(*hidden)
        self.drop = nn.Dropout(dropout)
        self.mean = nn.Linear(layers[-1], topics)
        self.logvar = nn.Linear(layers[-1], topics)
        self.decoder = nn.Linear(topics, vocabulary, bias=not batch_norm)
        self.batch_norm = batch_norm
        if batch_norm:
            self.mean_norm = nn.BatchNorm1d(topics, affine=False)
            self.logvar_norm = nn.BatchNorm1d(topics, affine=False)
            self.decoder_norm = nn.BatchNorm1d(vocabulary, affine=False)
        prior_mean, prior_var = laplace_prior(topics)
        self.prior_mean, self.prior_var = prior_mean, prior_var

    def _norm(self, name: str, x: torch.Tensor) -> torch.Tensor:
        if not self.batch_norm:
            return x
        norm: nn.BatchNorm1d = getattr(self, name)
        if self.training and x.shape[0] < 2:
            # A batch of one document has no batch statistics: use the running ones.
            assert norm.running_mean is not None and norm.running_var is not None
            return F.batch_norm(x, norm.running_mean, norm.running_var, eps=norm.eps)
        out: torch.Tensor = norm(x)
        return out

    def forward(self, x: Features) -> tuple[torch.Tensor, torch.Tensor]:
        """The posterior's mean and log-variance of each document's topic logits."""
        h = self.drop(self.hidden(self.embed(x)))
        return self._norm("mean_norm", self.mean(h)), self._norm("logvar_norm", self.logvar(h))

    def loss(self, x: Features, sample: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """Each document's reconstruction loss and KL divergence from the prior; ``sample``
        draws ``z`` from the posterior (training), else takes its mean (evaluation)."""
        mean, logvar = self(x)
        z = mean + torch.randn_like(mean) * torch.exp(0.5 * logvar) if sample else mean
        theta = self.drop(torch.softmax(z, dim=1))
        weight = self.decoder.weight
        if self.batch_norm:
            norm = self.decoder_norm
            momentum = 0.1 if norm.momentum is None else norm.momentum
            stats = (norm.running_mean, norm.running_var)
            recon = decoder_nll(theta, weight, x, *stats, None, self.training, momentum, norm.eps)
            if self.training and norm.num_batches_tracked is not None and len(theta) > 1:
                norm.num_batches_tracked.add_(1)
        else:
            recon = decoder_nll(theta, weight, x, None, None, self.decoder.bias)
        var = torch.exp(logvar)
        kl = 0.5 * (
            (var + (mean - self.prior_mean) ** 2) / self.prior_var
            - 1.0
            + math.log(self.prior_var)
            - logvar
        ).sum(1)
        return recon, kl

    def topic_weights(self, x: Features) -> torch.Tensor:
        """Each document's topic proportions at the posterior mean: (docs, K), rows sum to 1."""
        mean, _ = self(x)
        return torch.softmax(mean, dim=1)
