"""Spatial correlation C_X(r) (eq. 8), its crossing lengths, Pearson and Spearman."""

from __future__ import annotations

import numpy as np
import scipy.stats

from ..constants import bin_centres
from ..structure.pairs import pair_blocks


def spatial_correlation(
    positions: np.ndarray, field: np.ndarray, L, r_max: float, bins: int
) -> tuple[np.ndarray, np.ndarray]:
    """C_X(r) = <dX_i dX_j>_{|r_ij| in bin} / <dX^2>, dX = X - mean(X), periodic.

    positions: (N, dim); field: (N,). Returns r (bins + 1,) and C (bins + 1,): r[0] = 0 with
    C[0] = 1 (the i = j term), then the bin centres of [0, r_max); an empty bin gives NaN.
    """
    dx = np.asarray(field, dtype=float)
    dx = dx - dx.mean()
    total, count = np.zeros(bins), np.zeros(bins)
    for pairs in pair_blocks(positions, L, r_max):
        which = np.minimum((pairs.distances / r_max * bins).astype(np.int64), bins - 1)
        total += np.bincount(which, weights=dx[pairs.i] * dx[pairs.j], minlength=bins)
        count += np.bincount(which, minlength=bins)
    with np.errstate(divide="ignore", invalid="ignore"):
        c = total / count / np.mean(dx**2)
    return np.concatenate(([0.0], bin_centres(r_max, bins))), np.concatenate(([1.0], c))


def first_crossing(r: np.ndarray, c: np.ndarray, level: float) -> float:
    """First r where c falls to ``level`` (linear interpolation); NaN if it never does.

    Use level = 1/e for xi_Delta and 0 for r_Gamma. NaN entries of c are skipped.
    """
    ok = np.isfinite(c)
    r, c = np.asarray(r)[ok], np.asarray(c)[ok]
    below = np.flatnonzero(c <= level)
    if len(below) == 0:
        return float("nan")
    k = below[0]
    if k == 0:
        return float(r[0])
    return float(r[k - 1] + (level - c[k - 1]) * (r[k] - r[k - 1]) / (c[k] - c[k - 1]))


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation coefficient of two fields (N,)."""
    return float(scipy.stats.pearsonr(a, b).statistic)


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation coefficient of two fields (N,)."""
    return float(scipy.stats.spearmanr(a, b).statistic)
