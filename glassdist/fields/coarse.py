"""Gaussian coarse-graining of particle fields (eq. 7) and normalisation to [0, 1]."""

from __future__ import annotations

import numpy as np
import scipy.sparse

from ..structure.pairs import pair_blocks


def coarse_grain(positions: np.ndarray, fields: np.ndarray, L, xi: float) -> np.ndarray:
    """X̄_i = sum_j X_j P(r_ij) / sum_j P(r_ij), P(r) = exp(-(r/xi)^2), r_ij < 2 xi, j includes i.

    positions: (N, dim); fields: (N,) or (N, F) (several fields share one pair search);
    periodic box of side lengths L (number or (dim,)). xi = 0 returns the bare fields. Output has the shape of fields.
    """
    fields = np.asarray(fields, dtype=float)
    if xi < 0:
        raise ValueError(f"coarse-graining length xi must be >= 0, got {xi}")
    if xi == 0:
        return fields.copy()
    n = len(positions)
    total, norm = np.zeros_like(fields), np.zeros(n)
    for pairs in pair_blocks(positions, L, 2.0 * xi, self_pairs=True):
        weights = np.exp(-((pairs.distances / xi) ** 2))
        total += scipy.sparse.csr_matrix((weights, (pairs.i, pairs.j)), shape=(n, n)) @ fields
        norm += np.bincount(pairs.i, weights=weights, minlength=n)
    return total / norm.reshape((n,) + (1,) * (fields.ndim - 1))


def normalise(x: np.ndarray) -> np.ndarray:
    """(x - min) / (max - min) along axis 0 (each column of an (N, F) array); a constant gives 0."""
    x = np.asarray(x, dtype=float)
    low, span = x.min(axis=0), np.ptp(x, axis=0)
    return (x - low) / np.where(span > 0, span, 1.0)
