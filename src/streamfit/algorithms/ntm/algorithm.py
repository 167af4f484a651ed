"""SageMaker's Neural Topic Model as a streaming learner: ProdLDA trained on one read of a
stream of documents, replaying a reservoir of past documents (:mod:`streamfit.core.replaying`)
so that one pass trains about as much as ``1 + replay`` epochs, at fixed memory.

The state holds the network, its optimiser's moments and batch-norm statistics
(:mod:`streamfit.core.nn`), the reservoir of documents (CSR rows, sized in non-zeros) and the
early-stopping record; nothing learned lives on the algorithm object.

>>> import torch
>>> from streamfit.core.batch import CSR, Batch
>>> algo = NTM(feature_dim=6, num_topics=2, mini_batch_size=2)
>>> state = algo.init_state(6)
>>> docs = CSR.from_dense(torch.tensor([[2.0, 1, 0, 0, 0, 0], [0, 0, 0, 1, 3, 1]]))
>>> loss = algo.update(state, Batch(docs))
>>> model = algo.finalize(state, num_top_words=3)
>>> [len(topic) for topic in model.meta["topics"]]
[3, 3]
>>> weights = model.predict(docs)["topic_weights"]
>>> weights.shape, bool(torch.allclose(weights.sum(1), torch.ones(2)))
(torch.Size([2, 2]), True)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch

from streamfit.algorithms.ntm.evaluation import NTMEvaluator
from streamfit.algorithms.ntm.hyperparameters import CHECK_PARAMETERS, NTMHyperparameters
from streamfit.algorithms.ntm.likelihood import document_lengths
from streamfit.algorithms.ntm.model import WORD_COUNTS, NTMModel, top_words, topic_logits
from streamfit.algorithms.ntm.network import ProdLDA
from streamfit.core.algorithm import Algorithm, BatchStream
from streamfit.core.batch import CSR, Batch, Features
from streamfit.core.model import Model
from streamfit.core.nn import Net, NetBuilder, NetKeeper, merge_nets, net_bytes
from streamfit.core.registry import register
from streamfit.core.replay import create_csr, csr_capacity, open_reservoir
from streamfit.core.replaying import Replaying
from streamfit.core.sketch import SLOTS, WIDTH, WordSketch
from streamfit.core.state import State
from streamfit.errors import DataError

__all__ = ["NTM"]

#: The reservoir's row slots are sized for documents of this many distinct words on average;
#: longer documents fill its non-zeros first, shorter ones its slots.
RESERVOIR_ROW_NNZ = 16

#: Fused kernels where torch has them (one pass over each parameter for the whole update: a
#: third less time a step than foreach at 64 documents), foreach elsewhere.
_OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "adam": lambda p, lr, wd: torch.optim.Adam(
        p, lr=lr, betas=(0.99, 0.999), weight_decay=wd, fused=True
    ),
    "adadelta": lambda p, lr, wd: torch.optim.Adadelta(p, lr=lr, weight_decay=wd, foreach=True),
    "sgd": lambda p, lr, wd: torch.optim.SGD(p, lr=lr, weight_decay=wd, fused=True),
    "adagrad": lambda p, lr, wd: torch.optim.Adagrad(p, lr=lr, weight_decay=wd, fused=True),
    "rmsprop": lambda p, lr, wd: torch.optim.RMSprop(p, lr=lr, weight_decay=wd, foreach=True),
}
_MODULE = "net.module."
_SKETCH = "sketch"
#: Each word's count over the documents trained on (replays included): a topic lists only
#: words that were seen. Batch norm gives every word's logit mean 0 over a batch, so a word no
#: document has is never pushed down, and its topic logit is noise (hashed text over more
#: columns than words: whole topics of empty columns).
_COUNTS = WORD_COUNTS


@register
class NTM(Replaying, Algorithm[NTMHyperparameters]):
    """ProdLDA under SageMaker NTM's names: topics from one read of a stream of documents."""

    name = "ntm"
    hyperparameters_class = NTMHyperparameters
    model_class = NTMModel
    supervised = False
    post_training = frozenset({"num_top_words"})
    #: Two halves trained apart from one initial state and averaged by steps, against one
    #: pass over both: measured 6.9% apart in validation loss on the checks' data at the
    #: defaults (2% at learning_rate 0.002: the halves drift further apart at a larger step).
    #: Their topics stay matched (no topic trades places), so aligning them first gains
    #: nothing; distributed training merges at each checkpoint, so its halves drift less.
    merge_tolerance: ClassVar[float] = 0.10
    fixed_hyperparameters = frozenset(
        {"num_topics", "encoder_layers", "encoder_layers_activation", "optimizer", "batch_norm"}
    )
    size_hyperparameters = ("num_topics", "encoder_layers", "replay_capacity_mb")
    check_parameters = CHECK_PARAMETERS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._keepers: dict[int, NetKeeper] = {}  # networks rebuilt per state: a cache

    def expected_features(self) -> int | None:
        return self.hp.feature_dim

    def replay_ratio(self) -> float:
        return self.hp.resolved_replay

    def bag_of_words(self) -> bool:
        return True

    def fixed_settings(self, hp: NTMHyperparameters) -> dict[str, Any]:
        return {**super().fixed_settings(hp), "encoder_layers": hp.resolved_encoder_layers}

    # -- the network ---------------------------------------------------------------------------

    def network(self, n_features: int) -> ProdLDA:
        hp = self.hp
        return ProdLDA(
            n_features,
            hp.num_topics,
            hp.resolved_encoder_layers,
            hp.encoder_layers_activation,
            hp.dropout,
            hp.batch_norm,
        )

    def _build(self, n_features: int) -> NetBuilder:
        hp = self.hp

        def build(device: torch.device) -> Net:
            module = self.network(n_features).to(device)
            make = _OPTIMIZERS[hp.optimizer]
            return Net(module, make(module.parameters(), hp.learning_rate, hp.weight_decay))

        return build

    def _keeper(self, n_features: int) -> NetKeeper:
        if n_features not in self._keepers:
            self._keepers[n_features] = NetKeeper(self._build(n_features))
        return self._keepers[n_features]

    # -- state ---------------------------------------------------------------------------------

    def state_bytes(self, n_features: int) -> int:
        sketch = n_features * (SLOTS * (WIDTH + 16) + 8)
        counts = 4 * n_features
        return net_bytes(self._build(n_features)) + self._reservoir_bytes() + sketch + counts

    def _reservoir_bytes(self) -> int:
        if self.replay_ratio() <= 0:
            return 0
        nnz, rows = csr_capacity(self.replay_capacity_bytes(), RESERVOIR_ROW_NNZ)
        buffer = nnz + nnz // 2
        return 12 * buffer + 25 * rows + 8  # indices, values; key, held, start, length; floor

    def init_state(self, n_features: int, device: torch.device | str = "cpu") -> State:
        state = self.new_state(n_features)
        seed = int(torch.randint(2**62, (), generator=state.generator))
        self._keeper(n_features).create(state, seed, device)
        self.init_replay(state, device)
        # The words behind hashed columns (raw text without a vocabulary), to show topics as
        # words: allocated with the state, so that its memory is fixed whatever the input.
        state.tensors.update(WordSketch.empty(n_features, device=device).tensors(_SKETCH))
        state.tensors[_COUNTS] = torch.zeros(n_features, device=device)
        state.meta["epoch_loss"], state.meta["epoch_documents"] = 0.0, 0
        state.meta["early_stopping"] = {"best": None, "bad_epochs": 0, "history": []}
        return state

    def init_replay(self, state: State, device: torch.device | str = "cpu") -> None:
        """A reservoir of documents as CSR rows, ``replay_capacity_mb`` in all."""
        if self.replay_ratio() > 0:
            nnz, rows = csr_capacity(self.replay_capacity_bytes(), RESERVOIR_ROW_NNZ)
            prefix = self.replay_prefix
            create_csr(state, state.n_features, nnz, rows, False, prefix, device)

    def _adopt(self, state: State) -> None:
        self.adopt_replay(state)
        # Learning rate and weight decay may change between runs; the moments carry over.
        for group in state.meta["net"]["optimizer"]["param_groups"]:
            group["lr"], group["weight_decay"] = self.hp.learning_rate, self.hp.weight_decay

    # -- training ------------------------------------------------------------------------------

    def documents(self, state: State, batch: Batch) -> Features | None:
        """The batch's documents to train on, on the state's device: refused if a count is
        negative or not finite; empty documents and (with ``sub_sample``) a random share
        left out; None if none is left."""
        x = batch.features.to(state.device)
        keep: torch.Tensor | None = None  # None: every document
        if not batch.replayed:  # a replayed one was checked, and not empty, when fresh
            values = x.values if isinstance(x, CSR) else x
            bad = ~torch.isfinite(values) | (values < 0)
            if bool(bad.any()):
                self._refuse(batch, x, bad)
            nonempty = document_lengths(x) > 0
            if not bool(nonempty.all()):
                state.count("empty_documents", int((~nonempty).sum()))
                keep = nonempty
        if self.hp.sub_sample < 1.0:
            draw = torch.rand(batch.n_rows, generator=state.generator) < self.hp.sub_sample
            keep = draw.to(x.device) if keep is None else keep & draw.to(keep.device)
        if keep is None:
            return x if isinstance(x, CSR) else x.float()
        rows = keep.nonzero().squeeze(1)
        if rows.numel() == 0:
            return None
        return x.select_rows(rows) if isinstance(x, CSR) else x[rows].float()

    def _refuse(self, batch: Batch, x: Features, bad: torch.Tensor) -> None:
        if isinstance(x, CSR):
            entry = int(bad.nonzero()[0, 0])
            row = int(torch.searchsorted(x.indptr, entry, right=True)) - 1
            word, value = int(x.indices[entry]), float(x.values[entry])
        else:
            row, word = (int(i) for i in bad.nonzero()[0])
            value = float(x[row, word])
        first = batch.end_position - batch.n_rows + 1  # exact when no row before was skipped
        raise DataError(
            f"document {first + row} (row {row + 1} of its batch) has count {value} for word "
            f"id {word}: a bag of words holds finite counts >= 0",
            source=self.name,
            field=f"word {word}",
        )

    def _update(self, state: State, batch: Batch) -> float:
        if batch.words is not None:  # fresh hashed text (replayed documents carry no words)
            entries = batch.words.entries
            sketch = WordSketch.from_tensors(state.tensors, _SKETCH)
            sketch.update(entries.indices, batch.words.words, entries.values)
        x = self.documents(state, batch)
        if x is None:
            return 0.0
        hp = self.hp
        n = x.n_rows if isinstance(x, CSR) else x.shape[0]
        counts = state.tensors[_COUNTS]
        if isinstance(x, CSR):
            counts.index_add_(0, x.indices, x.values.to(counts.dtype))
        else:
            counts.add_(x.sum(0).to(counts.dtype))
        with self._keeper(state.n_features).step(state) as net:
            module: ProdLDA = net.module  # type: ignore[assignment]
            recon, kl = module.loss(x)
            total = (recon + kl).sum()
            torch.autograd.backward(total * (hp.rescale_gradient / n))
            if hp.clip_gradient is not None:
                for p in net.module.parameters():
                    if p.grad is not None:
                        p.grad.clamp_(-hp.clip_gradient, hp.clip_gradient)
            net.optimizer.step()
        loss = float(total.detach())
        state.meta["epoch_loss"] = float(state.meta["epoch_loss"]) + loss
        state.meta["epoch_documents"] = int(state.meta["epoch_documents"]) + n
        return loss

    def remember(self, state: State, batch: Batch) -> None:
        """Offer the batch's non-empty documents to the reservoir."""
        x = batch.features
        keep = document_lengths(x) > 0
        if not bool(keep.all()):
            batch = batch.select(keep.nonzero().squeeze(1))
        if batch.n_rows:
            self.reservoir(state).offer_batch(batch)

    def end_epoch(self, state: State, validation: BatchStream | None) -> bool:
        """Stop when the loss (validation's, else training's) has improved by less than
        ``tolerance`` (relative) for ``num_patience_epochs`` epochs in a row."""
        hp = self.hp
        if validation is not None:
            current = self.evaluate(self._finalize(state), validation())["total_loss"]
        else:
            current = state.meta["epoch_loss"] / max(int(state.meta["epoch_documents"]), 1)
        state.meta["epoch_loss"], state.meta["epoch_documents"] = 0.0, 0
        record = state.meta["early_stopping"]
        record["history"].append(current)
        best = record["best"]
        if best is None or current < best - hp.tolerance * abs(best):
            record["best"], record["bad_epochs"] = current, 0
        else:
            record["bad_epochs"] += 1
        return bool(record["bad_epochs"] >= hp.num_patience_epochs)

    # -- merge and finalize ----------------------------------------------------------------------

    def _merge(self, a: State, b: State) -> State:
        out = a.clone()
        merge_nets(a, b, out)
        if self.replay_prefix in a.meta and self.replay_prefix in b.meta:
            open_reservoir(out, self.replay_prefix).merge(open_reservoir(b, self.replay_prefix))
        sketch = WordSketch.from_tensors(a.tensors, _SKETCH)
        out.tensors.update(
            sketch.merged(WordSketch.from_tensors(b.tensors, _SKETCH)).tensors(_SKETCH)
        )
        out.tensors[_COUNTS] = a.tensors[_COUNTS] + b.tensors[_COUNTS]
        out.meta["epoch_loss"] = float(a.meta["epoch_loss"]) + float(b.meta["epoch_loss"])
        out.meta["epoch_documents"] = int(a.meta["epoch_documents"]) + int(
            b.meta["epoch_documents"]
        )
        return out

    def _finalize(self, state: State, **post_training: Any) -> NTMModel:
        hp = self.hp
        n_top = int(post_training.get("num_top_words", hp.num_top_words))
        tensors = {
            k[len(_MODULE) :]: v.detach().clone()
            for k, v in state.tensors.items()
            if k.startswith(_MODULE)
        }
        tensors[_COUNTS] = state.tensors[_COUNTS].clone()
        ids, weights = top_words(topic_logits(tensors), n_top)
        word = _words(state)
        topics = [
            [
                {"id": i, **word(i), "weight": float(f"{w:.4g}")}
                for i, w in zip(row, wrow, strict=True)
            ]
            for row, wrow in zip(ids.tolist(), weights.tolist(), strict=True)
        ]
        meta = {
            "n_features": state.n_features,
            "num_topics": hp.num_topics,
            "encoder_layers": hp.resolved_encoder_layers,
            "activation": hp.encoder_layers_activation,
            "batch_norm": hp.batch_norm,
            "num_top_words": n_top,
            "topics": topics,
        }
        return NTMModel(tensors, meta)

    def evaluator(self, model: Model) -> NTMEvaluator:
        assert isinstance(model, NTMModel)
        return NTMEvaluator(model)


def _words(state: State) -> Callable[[int], dict[str, Any]]:
    """The word of a column: the vocabulary's (:attr:`State.vocabulary`, recorded from the
    auxiliary channel), else the most frequent word the sketch saw
    in it (``"collision": True`` when another word holds a real share of the column), else
    None."""
    vocabulary = state.vocabulary
    if vocabulary is not None:
        return lambda i: {"word": vocabulary[i] if i < len(vocabulary) else None}
    sketch = WordSketch.from_tensors(state.tensors, _SKETCH)
    if int(sketch.totals.sum()) == 0:
        return lambda i: {"word": None}

    def word(i: int) -> dict[str, Any]:
        top = sketch.top(i)
        found = {"word": top.words[0].word if top.words else None}
        return {**found, "collision": True} if top.collisions else found

    return word
