"""CSR batches."""

from __future__ import annotations

import torch

from streamfit import CSR, Batch
from streamfit.core.batch import Words


def test_csr_round_trips_dense_and_selects_rows() -> None:
    x = torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 0.0], [2.0, 0.0, 3.0]])
    csr = CSR.from_dense(x)
    assert csr.n_rows == 3 and csr.nnz == 3 and csr.n_cols == 3
    assert torch.equal(csr.to_dense(), x)
    assert torch.equal(csr.row_ids(), torch.tensor([0, 2, 2]))
    picked = csr.select_rows(torch.tensor([2, 0, 1]))
    assert torch.equal(picked.to_dense(), x[[2, 0, 1]])


def test_batch_reports_its_shape_for_dense_and_sparse() -> None:
    x = torch.eye(4)
    for feats in (x, CSR.from_dense(x)):
        batch = Batch(feats, torch.arange(4.0))
        assert (batch.n_rows, batch.n_features) == (4, 4)
        assert batch.is_sparse == isinstance(feats, CSR)
        sub = batch.select(torch.tensor([3, 1]))
        assert torch.equal(sub.dense_features(), x[[3, 1]])
        assert sub.labels is not None and sub.labels.tolist() == [3.0, 1.0]


def test_selected_rows_keep_their_words() -> None:
    entries = CSR.from_dense(torch.tensor([[2.0, 1.0, 0.0], [0.0, 0.0, 3.0], [1.0, 0.0, 0.0]]))
    batch = Batch(CSR.from_dense(entries.to_dense()), words=Words(entries, ["a", "b", "c", "d"]))
    picked = batch.select(torch.tensor([2, 0]))
    assert picked.words is not None
    assert picked.words.words == ["d", "a", "b"]
    assert picked.words.entries.indices.tolist() == [0, 0, 1]
    assert Batch(batch.features).select(torch.tensor([1])).words is None
