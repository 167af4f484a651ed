"""Sums over rows, dense or CSR, in float64: the arithmetic of PCA's ``update``.

Sparse batches stay sparse: products go through ``embedding_bag`` (rows times a dense matrix),
``index_add_`` (a dense matrix's rows scattered back to columns) and a sparse-sparse product
for the Gram matrix, never through a dense copy of the batch.

>>> x = torch.tensor([[1.0, 2.0], [0.0, 3.0]])
>>> out = torch.zeros(2, 2, dtype=torch.float64)
>>> add_gram_(out, x).tolist(), add_gram_(out.zero_(), CSR.from_dense(x)).tolist()
([[1.0, 2.0], [2.0, 13.0]], [[1.0, 2.0], [2.0, 13.0]])
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F

from streamfit.core.batch import CSR, Features

__all__ = ["add_gram_", "add_sketch_", "column_sums", "row_sq_norms", "times"]

_F64 = torch.float64


def column_sums(x: Features) -> torch.Tensor:
    """The sum of the rows, ``(d,)`` float64."""
    if isinstance(x, CSR):
        out = torch.zeros(x.n_cols, dtype=_F64, device=x.device)
        return out.index_add_(0, x.indices, x.values.to(_F64))
    return x.to(_F64).sum(0)


def times(x: Features, w: torch.Tensor) -> torch.Tensor:
    """``X @ W`` for a ``(d, m)`` matrix ``W``, in ``W``'s dtype."""
    if isinstance(x, CSR):
        if x.nnz == 0:  # embedding_bag wants at least one index
            return torch.zeros(x.n_rows, w.shape[1], dtype=w.dtype, device=w.device)
        return F.embedding_bag(
            x.indices,
            w,
            x.indptr[:-1],
            mode="sum",
            per_sample_weights=x.values.to(w.dtype),
        )
    return x.to(w.dtype) @ w


def add_gram_(out: torch.Tensor, x: Features) -> torch.Tensor:
    """``out += X^T X`` for a ``(d, d)`` float64 ``out``: float64 products and sums (the
    products of float32 inputs are exact)."""
    if isinstance(x, CSR):
        d = x.n_cols
        coo = torch.sparse_coo_tensor(
            torch.stack([x.row_ids(), x.indices]),
            x.values.to(_F64),
            (x.n_rows, d),
            check_invariants=False,
        )
        with warnings.catch_warnings():  # torch's notice about its internal CSR conversion
            warnings.filterwarnings("ignore", "Sparse CSR tensor support is in beta")
            product = torch.sparse.mm(coo.t(), coo).coalesce()
        rows, cols = product.indices()
        return out.index_put_((rows, cols), product.values(), accumulate=True)
    x64 = x.to(_F64)
    return out.addmm_(x64.T, x64)


def add_sketch_(out: torch.Tensor, x: Features, omega: torch.Tensor) -> torch.Tensor:
    """``out += X^T (X Ω)``, float64 ``(d, l)``: the scatter matrix applied to ``Ω``."""
    xo = times(x, omega)
    if isinstance(x, CSR):
        contrib = xo.index_select(0, x.row_ids()) * x.values.to(_F64).unsqueeze(1)
        return out.index_add_(0, x.indices, contrib)
    return out.addmm_(x.to(_F64).T, xo)


def row_sq_norms(x: Features) -> torch.Tensor:
    """``||x_i||^2`` of each row, float64; repeated column indices in a CSR row add up."""
    if not isinstance(x, CSR):
        x64 = x.to(_F64)
        return (x64 * x64).sum(1)
    values = x.values.to(_F64)
    rows = x.row_ids()
    out = torch.zeros(x.n_rows, dtype=_F64, device=x.device)
    keys = rows * x.n_cols + x.indices
    if x.nnz < 2 or bool((keys[1:] > keys[:-1]).all()):  # sorted without repeats: the norm
        return out.index_add_(0, rows, values * values)
    found, where = torch.unique(keys, return_inverse=True)
    summed = torch.zeros(found.numel(), dtype=_F64, device=x.device).index_add_(0, where, values)
    return out.index_add_(0, torch.div(found, x.n_cols, rounding_mode="floor"), summed * summed)
