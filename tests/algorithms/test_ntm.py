"""The Neural Topic Model: its metrics, network, streaming learner, model and outputs."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import scipy.sparse
import torch
import torch.nn.functional as F

from streamfit.algorithms.ntm import NTM, evaluation
from streamfit.algorithms.ntm.evaluation import (
    CoDocumentCounts,
    npmi,
    topic_diversity,
    topic_uniqueness,
)
from streamfit.algorithms.ntm.likelihood import decoder_nll
from streamfit.checks import check_algorithm
from streamfit.core.batch import CSR, Batch, Words
from streamfit.core.replay import open_reservoir
from streamfit.core.state import State
from streamfit.datagen import LDATask, lda_task
from streamfit.errors import DataError, IncompatibleStateError
from streamfit.training.loop import fold

# -- metrics -----------------------------------------------------------------------------------


def _npmi_by_hand(top: list[list[int]], docs: list[set[int]]) -> float:
    """The README's NPMI, one pair at a time over sets of words."""
    d = len(docs)
    topics = []
    for words in top:
        values = []
        for v, w in itertools.combinations(words, 2):
            dv = sum(v in doc for doc in docs)
            dw = sum(w in doc for doc in docs)
            both = sum(v in doc and w in doc for doc in docs)
            if both == 0:
                values.append(0.0)
            elif both == d:
                values.append(1.0)
            else:
                values.append(math.log(both * d / (dv * dw)) / -math.log(both / d))
        topics.append(sum(values) / len(values))
    return sum(topics) / len(topics)


def _random_corpus(seed: int, n_docs: int = 300, vocab: int = 40) -> scipy.sparse.csr_matrix:
    rng = np.random.default_rng(seed)
    counts = rng.poisson(rng.gamma(0.3, 1.0, size=(n_docs, vocab)))
    counts[:, 3] = 0  # a word that never occurs
    return scipy.sparse.csr_matrix(counts)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_npmi_is_the_stated_formula(seed: int) -> None:
    docs = _random_corpus(seed)
    rng = np.random.default_rng(seed + 10)
    top = [list(rng.choice(40, 10, replace=False)) for _ in range(6)]
    top[0][1] = 3  # pairs with a word no document holds count 0
    sets = [set(row.indices[row.data > 0].tolist()) for row in docs]
    assert npmi(top, docs) == pytest.approx(_npmi_by_hand(top, sets), abs=1e-12)


def test_npmi_reads_any_csr_the_same_and_in_pieces(monkeypatch: pytest.MonkeyPatch) -> None:
    docs = _random_corpus(5)
    top = [[0, 1, 2, 4, 5], [6, 7, 8, 9, 10]]
    expected = npmi(top, docs, top_n=5)
    dense = torch.tensor(docs.toarray(), dtype=torch.float32)
    assert npmi(top, CSR.from_dense(dense), top_n=5) == pytest.approx(expected, abs=1e-12)
    assert npmi(top, dense, top_n=5) == pytest.approx(expected, abs=1e-12)
    monkeypatch.setattr(evaluation, "_CHUNK_ROWS", 7)  # many chunks of a batch
    counts = CoDocumentCounts(top, top_n=5)
    for start in range(0, 300, 64):  # and many batches
        counts.update(docs[start : start + 64])
    assert counts.documents == 300
    assert counts.npmi() == pytest.approx(expected, abs=1e-12)


def test_npmi_uses_the_first_top_n_words_and_bounds() -> None:
    docs = scipy.sparse.csr_matrix(np.eye(4) + np.eye(4, k=1))
    top = [[0, 1, 2, 3]]
    assert npmi(top, docs, top_n=2) == npmi([[0, 1]], docs, top_n=2)
    together = scipy.sparse.csr_matrix(np.ones((5, 3)))
    assert npmi([[0, 1, 2]], together, top_n=3) == 1.0  # in every document
    apart = scipy.sparse.csr_matrix(np.eye(3))
    assert npmi([[0, 1, 2]], apart, top_n=3) == 0.0  # never together: 0, not -1


@pytest.mark.parametrize(
    ("top", "docs", "message"),
    [
        ([[0, 1]], np.ones((2, 2)), "top 10 words"),
        ([0, 1], np.ones((2, 2)), "topics, words"),
        ([[0.5, 1.0]], np.ones((2, 2)), "word ids"),
        ([[0, 0, 1]], np.ones((2, 2)), "repeats a word"),
        ([[0, 1]], np.ones(2), "2-d"),
        ([[0, 1]], np.ones((0, 2)), "no documents"),
        ([[0, 1]], "docs", "CSR matrix"),
    ],
)
def test_npmi_refuses_what_it_cannot_measure(top: object, docs: object, message: str) -> None:
    top_n = 10 if message == "top 10 words" else 2 if message != "repeats a word" else 3
    with pytest.raises(ValueError, match=message):
        npmi(top, docs, top_n=top_n)


def test_topic_diversity_and_uniqueness() -> None:
    distinct = np.arange(50).reshape(2, 25)
    assert topic_diversity(distinct) == 1.0
    assert topic_uniqueness(distinct) == 1.0
    same = np.tile(np.arange(25), (4, 1))
    assert topic_diversity(same) == 0.25
    assert topic_uniqueness(same) == 0.25  # 1/K: every word in all K topics
    # Topic uniqueness looks at the top 10 only: topics that differ beyond them are not unique.
    tail = np.concatenate([same[:, :10], 100 + np.arange(60).reshape(4, 15)], 1)
    assert topic_uniqueness(tail) == 0.25
    assert topic_diversity(tail) == (10 + 60) / 100
    with pytest.raises(ValueError, match="top 25 words"):
        topic_diversity(same[:, :10])
    assert topic_diversity(torch.tensor(same)) == 0.25


# -- the learner on documents of a true LDA model -----------------------------------------------

V, K = 300, 6


def _lda_batches(task: LDATask, n: int, size: int, offset: int = 0) -> Iterator[Batch]:
    done = offset
    for block in task.blocks(n, block=size, offset=offset):
        ip, ix, vv = (block.column(c) for c in ("indices", "indices", "values"))
        indptr = torch.from_numpy(ip.offsets.to_numpy().astype(np.int64))
        indices = torch.from_numpy(ix.values.to_numpy().astype(np.int64))
        values = torch.from_numpy(vv.values.to_numpy().astype(np.float32))
        done += block.num_rows
        yield Batch(CSR(indptr, indices, values, task.n_features), end_position=done - offset)


def _train(
    hp: dict[str, Any], n: int = 6000, seed: int = 1, device: str = "cpu"
) -> tuple[NTM, State]:
    task = lda_task(V, K, seed=seed, doc_length=40)
    algo = NTM({"feature_dim": V, "num_topics": K, "mini_batch_size": 200, **hp})
    state = algo.init_state(V, device)
    for batch in _lda_batches(task, n, 200):
        fold(algo, state, batch.to(device) if device != "cpu" else batch)
    return algo, state


@pytest.fixture(scope="module")
def trained() -> tuple[NTM, State]:
    torch.set_num_threads(1)
    return _train({"replay": 4}, n=12000)


def _overlap(learned: np.ndarray, truth: np.ndarray, n: int = 10) -> float:
    """Each true topic's best share of top-n words in common with a learned topic, averaged."""
    true_top = [set(row) for row in np.argsort(-truth, 1)[:, :n]]
    found = [set(row[:n]) for row in learned]
    return float(np.mean([max(len(t & f) / n for f in found) for t in true_top]))


def test_one_pass_with_replay_recovers_the_true_topics(trained: tuple[NTM, State]) -> None:
    algo, state = trained
    task = lda_task(V, K, seed=1, doc_length=40)
    test = next(_lda_batches(task, 3000, 3000, offset=10**9))
    model = algo.finalize(state, num_top_words=25)
    untrained = algo.finalize(algo.init_state(V), num_top_words=25)
    ids = np.array([[w["id"] for w in topic] for topic in model.meta["topics"]])
    blank = np.array([[w["id"] for w in topic] for topic in untrained.meta["topics"]])
    # Measured (seeds 0 and 1): 0.68 and 0.75 of each true topic's top 10 words found together
    # in one learned topic (0.17 untrained); NPMI 0.46 and 0.45 against the true topics' 0.42
    # (0.00 untrained): learned top words co-occur more than the truth's, which are drawn.
    assert _overlap(ids, task.topics) > 0.6
    assert _overlap(blank, task.topics) < 0.3
    true_npmi = npmi(np.argsort(-task.topics, 1), test.features)
    metrics = algo.evaluate(model, [test])
    assert metrics["npmi"] > 0.85 * true_npmi
    assert algo.evaluate(untrained, [test])["npmi"] < 0.1
    assert metrics["topic_diversity"] > 0.7 and metrics["topic_uniqueness"] > 0.7
    assert metrics["perplexity"] < algo.evaluate(untrained, [test])["perplexity"]


def test_lda_task_draws_documents_of_its_model() -> None:
    task = lda_task(50, 3, seed=2, doc_length=30)
    first = next(task.blocks(4000, block=4000))
    again = next(task.blocks(4000, block=4000))
    assert first.equals(again)  # deterministic
    assert not first.equals(next(task.blocks(4000, block=4000, offset=4000)))
    indptr = first.column("indices").offsets.to_numpy()
    indices = first.column("indices").values.to_numpy()
    counts = first.column("values").values.to_numpy()
    assert (np.diff(indptr) > 0).all()  # no empty document
    assert counts.sum() / 4000 == pytest.approx(30, rel=0.05)
    freq = np.bincount(indices, weights=counts, minlength=50) / counts.sum()
    assert np.abs(freq - task.topics.mean(0)).sum() < 0.1  # E[theta] is uniform


def test_predict_answers_topic_weights_per_document(trained: tuple[NTM, State]) -> None:
    algo, state = trained
    model = algo.finalize(state)
    docs = next(_lda_batches(lda_task(V, K, seed=1, doc_length=40), 5, 5, offset=7)).features
    assert isinstance(docs, CSR)
    sparse = model.predict(docs)["topic_weights"]
    dense = model.predict(docs.to_dense())["topic_weights"]
    assert sparse.shape == (5, K)
    assert torch.allclose(sparse, dense, atol=1e-6)
    assert torch.allclose(sparse.sum(1), torch.ones(5))
    records = model.records(model.predict(docs))
    assert list(records[0]) == ["topic_weights"] and len(records[0]["topic_weights"]) == K
    assert model.predict(docs)["topic_weights"].equal(sparse)  # no sampling, no dropout


def test_topics_name_words_from_the_vocabulary_or_the_sketch(trained: tuple[NTM, State]) -> None:
    algo, state = trained
    state = state.clone()
    assert all(w["word"] is None for t in algo.finalize(state).meta["topics"] for w in t)
    # Hashed text: each column's words, seen in batches that carry them.
    hashed = CSR(torch.tensor([0, 2, 3]), torch.tensor([5, 9, 5]), torch.tensor([3.0, 1, 1]), V)
    words = Words(hashed, ["kernel", "gpu", "colonel"])  # kernel and colonel share column 5
    algo.update(state, Batch(hashed, words=words))
    topics = algo.finalize(state, num_top_words=V).meta["topics"]
    by_id = {w["id"]: w for w in topics[0]}
    assert by_id[9] == {"id": 9, "word": "gpu", "weight": by_id[9]["weight"]}
    assert by_id[5]["word"] == "kernel" and by_id[5]["collision"] is True  # colonel: 1 of 4
    assert by_id[6]["word"] is None
    words = [f"w{i}" for i in range(V)]  # the auxiliary channel's, as the trainer records them
    state.inputs["text"] = {"stop_words": True, "vocabulary": {"words": words, "source": "v"}}
    assert algo.finalize(state, num_top_words=3).meta["topics"][0][0]["word"].startswith("w")


def test_bad_counts_are_refused_and_empty_documents_left_out() -> None:
    algo = NTM(feature_dim=4, num_topics=2)
    state = algo.init_state(4)
    for bad in (-1.0, math.nan, math.inf):
        x = torch.tensor([[1.0, 0, 2, 0], [0, 1, bad, 0]])
        for features in (x, CSR.from_dense(x)):
            with pytest.raises(
                DataError,
                match=rf"document 10 \(row 2 of its batch\) has count {bad} for word id 2",
            ):
                algo.update(state, Batch(features, end_position=10))
    before = state.clone()
    assert algo.update(state, Batch(torch.zeros(3, 4))) == 0.0  # only empty: nothing trained
    assert all(torch.equal(state.tensors[k], v) for k, v in before.tensors.items())
    algo.update(state, Batch(torch.tensor([[0.0, 0, 0, 0], [1, 2, 0, 0], [0, 0, 1, 1]])))
    assert state.counters["empty_documents"] == 4
    assert state.meta["epoch_documents"] == 2


def test_fused_likelihood_matches_torch_batch_norm_and_log_softmax() -> None:
    torch.manual_seed(0)
    theta = torch.softmax(torch.randn(7, 3, dtype=torch.float64), 1).requires_grad_()
    weight = torch.randn(9, 3, dtype=torch.float64, requires_grad=True)
    x = torch.poisson(torch.rand(7, 9, dtype=torch.float64) * 2)
    weights = torch.randn(7, dtype=torch.float64)
    for features in (x, CSR.from_dense(x)):
        stats = [torch.zeros(9, dtype=torch.float64), torch.ones(9, dtype=torch.float64)]
        fused = decoder_nll(theta, weight, features, *stats)
        grads = torch.autograd.grad((fused * weights).sum(), (theta, weight))
        plain_stats = [torch.zeros(9, dtype=torch.float64), torch.ones(9, dtype=torch.float64)]
        logits = theta @ weight.T
        normalised = F.batch_norm(logits, *plain_stats, training=True, momentum=0.1)
        plain = -(x * torch.log_softmax(normalised, 1)).sum(1)
        plain_grads = torch.autograd.grad((plain * weights).sum(), (theta, weight))
        assert torch.allclose(fused, plain)
        assert all(torch.allclose(a, b) for a, b in zip(grads, plain_grads, strict=True))
        assert all(torch.allclose(a, b) for a, b in zip(stats, plain_stats, strict=True))
        evaluated = decoder_nll(theta, weight, features, *stats, training=False)
        eval_plain = -(x * torch.log_softmax(F.batch_norm(logits, *stats), 1)).sum(1)
        assert torch.allclose(evaluated, eval_plain)


def test_fused_likelihood_refuses_a_second_backward() -> None:
    theta = torch.softmax(torch.randn(4, 2), 1).requires_grad_()
    x = CSR.from_dense(torch.tensor([[1.0, 0, 2], [0, 1, 0], [1, 1, 1], [0, 0, 5]]))
    loss = decoder_nll(theta, torch.randn(3, 2), x, torch.zeros(3), torch.ones(3)).sum()
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()


@pytest.mark.parametrize(
    "hp",
    [
        {"optimizer": "adadelta", "learning_rate": 1.0},
        {"optimizer": "sgd", "learning_rate": 0.1, "clip_gradient": 0.01},
        {"optimizer": "adagrad", "weight_decay": 0.01},
        {"optimizer": "rmsprop", "encoder_layers_activation": "relu", "rescale_gradient": 0.5},
        {"batch_norm": False, "encoder_layers": [16], "encoder_layers_activation": "tanh"},
        {"sub_sample": 0.5, "encoder_layers_activation": "sigmoid", "replay": 0},
    ],
)
def test_every_optimizer_and_option_trains(hp: dict[str, Any]) -> None:
    algo, state = _train({**hp}, n=1000)
    untrained = algo.init_state(V)
    task = lda_task(V, K, seed=1, doc_length=40)
    test = list(_lda_batches(task, 1000, 1000, offset=10**9))
    loss = algo.evaluate(algo.finalize(state), test)["total_loss"]
    assert math.isfinite(loss)
    assert loss < algo.evaluate(algo.finalize(untrained), test)["total_loss"]
    if hp.get("sub_sample"):  # about half of the 1,000 documents, and no replay
        assert 400 < state.meta["epoch_documents"] < 600


@pytest.mark.parametrize(
    ("hp", "ratio"),
    [
        ({"num_topics": 20}, 3.0),
        ({"num_topics": 32}, 4.0),
        ({"num_topics": 50}, 6.25),
        ({"num_topics": 50, "replay": 1}, 1.0),
    ],
)
def test_replay_auto_grows_with_the_number_of_topics(hp: dict[str, Any], ratio: float) -> None:
    algo = NTM(feature_dim=V, **hp)
    assert algo.replay_ratio() == ratio
    assert "replay" in algo.init_state(V).meta  # the reservoir of the resolved ratio


def test_clip_gradient_bounds_each_step() -> None:
    algo = NTM(feature_dim=V, num_topics=K, optimizer="sgd", learning_rate=1.0, clip_gradient=1e-3)
    state = algo.init_state(V)
    before = state.tensors["net.module.decoder.weight"].clone()
    algo.update(state, next(_lda_batches(lda_task(V, K, doc_length=40), 200, 200)))
    # float32 rounding of weight - step: within a few ulps of the weights (about 0.3)
    assert (state.tensors["net.module.decoder.weight"] - before).abs().max() <= 1e-3 + 1e-6


def test_early_stopping_after_patience_epochs_without_improvement() -> None:
    algo = NTM(feature_dim=V, num_topics=K, num_patience_epochs=2, tolerance=0.1)
    state = algo.init_state(V)
    stops = []
    for loss in (100.0, 95.0, 92.0, 80.0, 79.0):  # 95 and 92 are within 10% of 100
        state.meta["epoch_loss"], state.meta["epoch_documents"] = loss, 1
        stops.append(algo.end_epoch(state, None))
    assert stops == [False, False, True, False, False]
    assert state.meta["early_stopping"]["history"] == [100.0, 95.0, 92.0, 80.0, 79.0]


def test_incremental_training_takes_the_new_learning_rate(trained: tuple[NTM, State]) -> None:
    _, state = trained
    algo = NTM(feature_dim=V, num_topics=K, mini_batch_size=200, replay=4, learning_rate=1e-4)
    state = state.clone()
    algo.adopt(state)
    assert {g["lr"] for g in state.meta["net"]["optimizer"]["param_groups"]} == {1e-4}
    steps = state.meta["net"]["steps"]
    fold(algo, state, next(_lda_batches(lda_task(V, K, seed=1, doc_length=40), 200, 200)))
    assert state.meta["net"]["steps"] == steps + 5  # the batch and its 4 replays
    with pytest.raises(IncompatibleStateError, match="num_topics"):
        NTM(feature_dim=V, num_topics=K + 1).adopt(state)


def test_merge_averages_networks_by_steps_and_pools_reservoirs(
    trained: tuple[NTM, State],
) -> None:
    algo, state = trained
    _, other = _train({"replay": 4}, n=2000, seed=1)
    merged = algo.merge(state, other)
    sa, sb = state.meta["net"]["steps"], other.meta["net"]["steps"]
    assert merged.meta["net"]["steps"] == sa + sb
    key = "net.module.decoder.weight"
    expected = (state.tensors[key] * sa + other.tensors[key] * sb) / (sa + sb)
    assert torch.allclose(merged.tensors[key], expected, atol=1e-6)
    reservoir = open_reservoir(merged)
    assert reservoir.offered == open_reservoir(state).offered + open_reservoir(other).offered
    assert len(reservoir) >= len(open_reservoir(state))


def test_state_bytes_is_what_the_state_holds() -> None:
    for hp in ({"replay": 0}, {"replay": 2, "replay_capacity_mb": 3}, {"num_topics": 50}):
        algo = NTM({"feature_dim": 1000, "num_topics": 10, **hp})
        state = algo.init_state(1000)
        held = sum(t.numel() * t.element_size() for t in state.tensors.values())
        assert algo.state_bytes(1000) == held


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_the_same_code_trains_on_cuda() -> None:
    names = check_algorithm(NTM, device="cuda", slow=False)
    assert "merge_within_tolerance" in names
    algo, state = _train({"replay": 1}, n=2000, device="cuda")
    model = algo.finalize(state)
    assert model.device.type == "cuda"
    docs = next(_lda_batches(lda_task(V, K, seed=1, doc_length=40), 50, 50)).features
    cpu = model.to("cpu").predict(docs)["topic_weights"]
    gpu = model.to("cuda").predict(docs.to("cuda"))["topic_weights"].cpu()
    assert torch.allclose(cpu, gpu, atol=1e-4)
