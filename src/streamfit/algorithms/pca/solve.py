"""From a state's sums to principal axes: PCA's ``finalize`` arithmetic, all in float64.

>>> c = torch.tensor([[4.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
>>> values, vectors = top_eigen(c, 1)
>>> values.tolist(), flip_signs(vectors.T).tolist()
([4.0], [[1.0, 0.0]])
"""

from __future__ import annotations

import math

import torch

__all__ = ["flip_signs", "nystrom_eigen", "top_eigen"]


def top_eigen(matrix: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` largest eigenvalues of a symmetric matrix, descending, and their eigenvectors
    as columns."""
    values, vectors = torch.linalg.eigh(matrix)
    return values.flip(0)[:k].clamp(min=0), vectors.flip(1)[:, :k]


def nystrom_eigen(
    sketch: torch.Tensor, omega: torch.Tensor, k: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The top ``k`` eigenpairs of the Nyström approximation ``Y (Ω^T Y)^+ Y^T`` of a PSD
    matrix ``A`` known only through ``Y = A Ω`` (Tropp, Yurtsever, Udell and Cevher, 2017,
    "Fixed-rank approximation of a positive-semidefinite matrix from streaming data", Alg. 3).

    A small shift ``ν`` keeps the core ``Ω^T Y`` positive definite; its pseudo-inverse square
    root comes from an eigendecomposition, so a rank-deficient ``A`` (fewer than ``l``
    directions of variance) is fine. Eigenvalues are biased low: the approximation is below
    ``A`` in the PSD order.
    """
    d, width = sketch.shape
    eps = torch.finfo(sketch.dtype).eps
    nu = math.sqrt(d) * eps * float(torch.linalg.matrix_norm(sketch, ord=2))
    shifted = sketch + nu * omega
    core = omega.T @ shifted
    core_values, core_vectors = torch.linalg.eigh((core + core.T) / 2)
    keep = core_values > core_values.max().clamp(min=0) * width * eps
    factor = shifted @ (core_vectors[:, keep] / core_values[keep].sqrt())
    vectors, singular, _ = torch.linalg.svd(factor, full_matrices=False)
    values = (singular * singular - nu).clamp(min=0)
    if vectors.shape[1] < k:  # fewer directions than asked: complete with zero-variance ones
        basis, _ = torch.linalg.qr(torch.cat([vectors, omega], 1))
        vectors = torch.cat([vectors, basis[:, vectors.shape[1] : k]], 1)
        values = torch.cat([values, values.new_zeros(k - values.numel())])
    return values[:k], vectors[:, :k]


def flip_signs(components: torch.Tensor) -> torch.Tensor:
    """Each row with its largest-magnitude entry positive (scikit-learn's ``svd_flip``), so
    that the same state always gives the same components."""
    largest = components.abs().argmax(1)
    signs = components.gather(1, largest.unsqueeze(1)).sign()
    return components * torch.where(signs == 0, 1.0, signs).to(components.dtype)
