"""The peers of benchmarks/ntm.py, each trained on the prepared corpus (ntm_corpus.py) the way
a user of that library would, one thread each:

- scikit-learn ``LatentDirichletAllocation``, online variational Bayes: one pass of
  ``partial_fit`` over the training Parquet read 4,096 documents at a time (each split into
  its default mini-batches of 128), ``total_samples`` set to the number of documents;
- gensim ``LdaModel``: one pass (``passes=1``, chunks of 2,000) streamed from Matrix Market
  on disk by ``MmCorpus``, ``eval_every=None`` (its periodic perplexity estimate costs time
  and is not used);
- ProdLDA trained for 10 epochs in memory: Pyro's example model (pyro.ai/examples/prodlda,
  Srivastava and Sutton 2017: softplus MLP encoder of 100 units, batch-normalised
  logistic-normal posterior, dropout 0.2, unnormalised product-of-experts decoder with batch
  normalisation; a standard normal prior on the log-proportions), Adam at 1e-3, batches of
  32, the training documents held as a sparse matrix and densified a batch at a time. Its
  topics' words are ranked as Pyro's example ranks them, by the decoder's weights; the
  batch-normalised ranking is scored too, as ``npmi_other``.

Each returns a :class:`Fitted`: the topic-word weights (topics x words, larger is more
important), a perplexity on the test split by the peer's own bound, and, for the learning
curve, snapshots of the topic-word weights as documents are read.

    python benchmarks/ntm_peers.py   # lists the peers (run benchmarks/ntm.py to compare)
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ntm_corpus import Corpus

CURVE_STEP = 4000  # documents between the learning curve's points (gensim's chunks divide it)
SKLEARN_READ = 4096
GENSIM_CHUNK = 2000
PRODLDA = {"epochs": 10, "batch": 32, "learning_rate": 1e-3, "hidden": 100, "dropout": 0.2}


@dataclass
class Fitted:
    topic_words: np.ndarray
    perplexity: Callable[[], float] | None = None
    info: dict[str, Any] = field(default_factory=dict)
    #: ``(documents read, topic-word weights then)`` for the learning curve.
    curve: list[tuple[int, np.ndarray]] = field(default_factory=list)
    #: A product-of-experts decoder's other ranking of words: its batch-normalised logits.
    other_ranking: np.ndarray | None = None


def bn_logits(decoder: np.ndarray, mean: np.ndarray, var: np.ndarray, eps: float) -> np.ndarray:
    """Topics x words: each topic's decoder column batch-normalised by each word's running
    mean and variance (the logits of a document wholly of that topic), the other ranking.

    >>> bn_logits(np.array([[1.0, 3.0]]), np.array([1.0, 1.0]), np.array([4.0, 1.0]), 0.0)
    array([[0., 2.]])
    """
    out: np.ndarray = (decoder - mean) / np.sqrt(var + eps)
    return out


def csr_matrix(corpus: Corpus, split: str) -> Any:
    import scipy.sparse as sp

    indptr, indices, values = corpus.csr(split)
    return sp.csr_matrix((values, indices, indptr), shape=(len(indptr) - 1, len(corpus.words())))


# -- scikit-learn ----------------------------------------------------------------------------


def sklearn_lda(corpus: Corpus, k: int, curve: int = 0) -> Fitted:
    import pyarrow.parquet as pq
    import scipy.sparse as sp
    from sklearn.decomposition import LatentDirichletAllocation

    width = len(corpus.words())
    lda = LatentDirichletAllocation(
        n_components=k,
        learning_method="online",
        total_samples=corpus.documents("train"),
        random_state=0,
    )
    for batch in pq.ParquetFile(corpus.path("train", "parquet")).iter_batches(SKLEARN_READ):
        idx = batch.column("indices")
        x = sp.csr_matrix(
            (
                batch.column("values").flatten().to_numpy(),
                idx.flatten().to_numpy(),
                idx.offsets.to_numpy(),
            ),
            shape=(batch.num_rows, width),
        )
        lda.partial_fit(x)

    def perplexity() -> float:
        return float(lda.perplexity(csr_matrix(corpus, "test")))

    return Fitted(lda.components_, perplexity, {"batch_size": lda.batch_size})


# -- gensim ----------------------------------------------------------------------------------


def gensim_lda(corpus: Corpus, k: int, curve: int = 0) -> Fitted:
    import itertools

    from gensim.corpora import MmCorpus
    from gensim.models import LdaModel

    words = dict(enumerate(corpus.words()))  # id2word: else gensim scans the corpus for it
    train = MmCorpus(str(corpus.path("train", "mm")))
    settings = {"num_topics": k, "id2word": words, "chunksize": GENSIM_CHUNK, "random_state": 0}
    snapshots: list[tuple[int, np.ndarray]] = []
    if curve:
        # update() on successive blocks is the same online pass (its step size counts the
        # chunks seen so far), with a look at the topics between blocks.
        lda = LdaModel(**settings, eval_every=None)
        stream = iter(train)
        seen = 0
        while block := list(itertools.islice(stream, curve)):
            lda.update(block)
            seen += len(block)
            snapshots.append((seen, lda.get_topics().copy()))
    else:
        lda = LdaModel(corpus=train, passes=1, eval_every=None, **settings)

    def perplexity() -> float:
        test = list(MmCorpus(str(corpus.path("test", "mm"))))
        # log_perplexity is the per-word bound in nats (gensim's log prints 2^-bound).
        return math.exp(-lda.log_perplexity(test))

    return Fitted(lda.get_topics(), perplexity, {"chunksize": GENSIM_CHUNK}, snapshots)


# -- ProdLDA (Pyro's example model) ----------------------------------------------------------


def _prodlda_network(vocab: int, k: int, hidden: int, dropout: float) -> Any:
    import pyro
    import pyro.distributions as dist
    import torch
    import torch.nn.functional as F
    from torch import nn

    class Encoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.drop = nn.Dropout(dropout)
            self.fc1 = nn.Linear(vocab, hidden)
            self.fc2 = nn.Linear(hidden, hidden)
            self.fcmu = nn.Linear(hidden, k)
            self.fclv = nn.Linear(hidden, k)
            self.bnmu = nn.BatchNorm1d(k, affine=False)
            self.bnlv = nn.BatchNorm1d(k, affine=False)

        def forward(self, docs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            h = self.drop(F.softplus(self.fc2(F.softplus(self.fc1(docs)))))
            return self.bnmu(self.fcmu(h)), (0.5 * self.bnlv(self.fclv(h))).exp()

    class Decoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.beta = nn.Linear(k, vocab, bias=False)
            self.bn = nn.BatchNorm1d(vocab, affine=False)
            self.drop = nn.Dropout(dropout)

        def forward(self, theta: torch.Tensor) -> torch.Tensor:
            return F.softmax(self.bn(self.beta(self.drop(theta))), dim=1)

    class ProdLDA(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = Encoder()
            self.decoder = Decoder()

        def model(self, docs: torch.Tensor) -> None:
            pyro.module("decoder", self.decoder)
            with pyro.plate("documents", docs.shape[0]):
                zeros = docs.new_zeros((docs.shape[0], k))
                logtheta = pyro.sample(
                    "logtheta", dist.Normal(zeros, torch.ones_like(zeros)).to_event(1)
                )
                probs = self.decoder(F.softmax(logtheta, -1))
                # Multinomial.log_prob does not use total_count: the largest one serves.
                total = int(docs.sum(-1).max())
                pyro.sample("obs", dist.Multinomial(total, probs), obs=docs)

        def guide(self, docs: torch.Tensor) -> None:
            pyro.module("encoder", self.encoder)
            with pyro.plate("documents", docs.shape[0]):
                loc, scale = self.encoder(docs)
                pyro.sample("logtheta", dist.Normal(loc, scale).to_event(1))

    return ProdLDA()


def prodlda(corpus: Corpus, k: int, curve: int = 0, **settings: Any) -> Fitted:
    import pyro
    import torch
    from pyro.infer import SVI, TraceMeanField_ELBO

    hp = {**PRODLDA, **settings}
    torch.set_num_threads(1)
    pyro.set_rng_seed(0)
    pyro.clear_param_store()
    x = csr_matrix(corpus, "train")
    n, vocab = x.shape
    net = _prodlda_network(vocab, k, hp["hidden"], hp["dropout"])
    svi = SVI(
        net.model, net.guide, pyro.optim.Adam({"lr": hp["learning_rate"]}), TraceMeanField_ELBO()
    )
    rng = np.random.default_rng(0)
    batch = hp["batch"]
    for _ in range(hp["epochs"]):
        order = rng.permutation(n)
        for start in range(0, n, batch):
            rows = order[start : start + batch]
            if len(rows) > 1:  # batch normalisation needs two documents
                svi.step(torch.from_numpy(x[rows].toarray()))
    net.eval()
    beta = net.decoder.beta.weight.detach().T.numpy().copy()
    bn = net.decoder.bn  # the other ranking: batch-normalised logits of a one-topic document
    logits = bn_logits(beta, bn.running_mean.numpy(), bn.running_var.numpy(), bn.eps)

    def perplexity() -> float:
        return _vae_perplexity(net, csr_matrix(corpus, "test"))

    info = {"epochs": hp["epochs"], "steps": svi_steps(n, hp)}
    return Fitted(beta, perplexity, info, other_ranking=logits)


def svi_steps(n: int, hp: dict[str, Any]) -> int:
    full, rest = divmod(n, hp["batch"])
    return hp["epochs"] * (full + (rest > 1))


def _vae_perplexity(net: Any, x: Any, samples: int = 1, chunk: int = 2048) -> float:
    """``exp(-ELBO / words)`` on held-out documents, the ELBO without the multinomial
    coefficient (the words in order, as LDA's perplexities count them), one sample of the
    posterior, networks in evaluation mode."""
    import torch
    import torch.nn.functional as F

    total, words = 0.0, 0.0
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for start in range(0, x.shape[0], chunk):
            docs = torch.from_numpy(x[start : start + chunk].toarray())
            loc, scale = net.encoder(docs)
            for _ in range(samples):
                eps = torch.randn(loc.shape, generator=gen)
                theta = F.softmax(loc + scale * eps, -1)
                log_probs = torch.log(net.decoder(theta) + 1e-10)
                total -= float((docs * log_probs).sum()) / samples
            kl = 0.5 * (scale**2 + loc**2 - 1 - 2 * torch.log(scale)).sum()
            total += float(kl)
            words += float(docs.sum())
    return math.exp(total / words)


PEERS: dict[str, Callable[..., Fitted]] = {
    "sklearn": sklearn_lda,
    "gensim": gensim_lda,
    "prodlda": prodlda,
}


def main() -> None:
    argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0]).parse_args()
    for name, fn in PEERS.items():
        print(f"{name}: {fn.__module__}.{fn.__name__}")


if __name__ == "__main__":
    main()
