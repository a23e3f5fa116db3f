"""Uncertainty of correlations between particle fields: bootstrap intervals, periodic-shift null
bands, partial correlations, inter-member agreement and binomial intervals. Arrays in, arrays out.

- :func:`bootstrap_mean`: percentile bootstrap interval of a mean over configurations.
- :func:`block_pearson`: Pearson correlations of ONE configuration recomputed on spatial blocks of
  particles resampled with replacement (the periodic box cut into blocks of side >= a length).
- :func:`shift_index`, :func:`shifted_pearson`: the null distribution of a correlation: a field's
  value at particle i replaced by the field at the particle nearest r_i + s, s a random periodic
  shift (the same spatial smoothness, no relation to the other field). One shift index serves
  every field of a configuration, so the null of a maximum over a grid is the maximum over the
  same grid of the shifted correlations.
- :func:`interval`: percentile interval of resampled statistics (NaN-aware).
- :func:`partial_pearson`, :func:`agreement`, :func:`clopper_pearson`.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import scipy.spatial
import scipy.stats


def interval(samples: np.ndarray, confidence: float = 0.95, axis: int = 0) -> np.ndarray:
    """Central percentile interval of resampled statistics ``samples`` along ``axis``: the other
    axes' shape + (2,) [low, high]; NaN samples are left out, an all-NaN column gives NaN."""
    q = 50 * np.array([1 - confidence, 1 + confidence])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # All-NaN slice
        return np.moveaxis(np.nanpercentile(np.asarray(samples, dtype=float), q, axis=axis), 0, -1)


def bootstrap_mean(values: np.ndarray, n_resamples: int, seed, confidence: float = 0.95) -> np.ndarray:
    """Percentile bootstrap interval of the mean over axis 0 (configurations) of ``values`` (R, ...):
    (..., 2) [low, high]. NaN entries are left out column by column; a column with fewer than
    2 finite values gives NaN. ``seed``: anything np.random.default_rng takes (fixed = reproducible)."""
    values = np.asarray(values, dtype=float)
    flat = values.reshape(len(values), math.prod(values.shape[1:]))  # also with no configuration at all
    out = np.full((flat.shape[1], 2), np.nan)
    rng = np.random.default_rng(seed)
    for col in range(flat.shape[1]):
        v = flat[np.isfinite(flat[:, col]), col]
        if len(v) >= 2:
            out[col] = interval(v[rng.integers(0, len(v), (n_resamples, len(v)))].mean(axis=1), confidence)
    return out.reshape(values.shape[1:] + (2,))


def _standardise(x: np.ndarray) -> np.ndarray:
    """Columns of x (N, F) to zero mean and unit norm (NaN where constant or not finite)."""
    x = np.asarray(x, dtype=float)
    x = x - x.mean(axis=0)
    norm = np.sqrt((x**2).sum(axis=0))
    with np.errstate(divide="ignore", invalid="ignore"):
        return x / np.where(norm > 0, norm, np.nan)


def pearson_matrix(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson of every column of x (N, F) with every column of y (N, G): (F, G) (NaN where a
    column is constant or holds NaN)."""
    return _standardise(x).T @ _standardise(y)


def blocks(positions: np.ndarray, L, length: float) -> tuple[np.ndarray, int]:
    """Block index (N,) of each particle when the periodic box of side(s) L is cut into
    floor(L / length) blocks per dimension (at least 1), and the number of blocks."""
    positions = np.asarray(positions, dtype=float)
    side = np.broadcast_to(np.asarray(L, dtype=float), positions.shape[1:])
    per_dim = np.maximum(np.floor(side / length).astype(int), 1)
    cell = np.minimum((np.mod(positions, side) / side * per_dim).astype(int), per_dim - 1)
    return np.ravel_multi_index(cell.T, per_dim), int(per_dim.prod())


def block_pearson(
    positions: np.ndarray, x: np.ndarray, y: np.ndarray, L, length: float, n_resamples: int, seed
) -> np.ndarray:
    """Spatial block bootstrap of the Pearson correlations of one configuration (N, dim).

    x (N, F), y (N, G): fields; the periodic box is cut into blocks of side >= ``length``
    (:func:`blocks`), and each resample draws as many blocks as there are, with replacement,
    and recomputes every Pearson from the drawn blocks' particles (block sums of the moments, so
    one resample costs O(blocks F G)). Returns (n_resamples, F, G), NaN for a constant or
    non-finite column; all NaN when there are fewer than 2 blocks (the box is shorter than 2 ``length``). The
    same seed and blocks draw the same resamples, so maxima over several calls (temperatures) share them.
    """
    x, y = (np.asarray(a, dtype=float).reshape(len(positions), -1) for a in (x, y))
    label, nb = blocks(positions, L, length)
    if nb < 2:
        return np.full((n_resamples, x.shape[1], y.shape[1]), np.nan)
    x, y = x - x.mean(axis=0), y - y.mean(axis=0)  # centred: small cancellation in the moments
    member = np.zeros((nb, len(x)))
    member[label, np.arange(len(x))] = 1.0
    count, sx, sy = member.sum(axis=1), member @ x, member @ y  # (nb,), (nb, F), (nb, G)
    sxx, syy = member @ x**2, member @ y**2
    sxy = (member @ (x[:, :, None] * y[:, None, :]).reshape(len(x), -1)).reshape(nb, x.shape[1], y.shape[1])
    draws = np.random.default_rng(seed).integers(0, nb, (n_resamples, nb))
    weight = np.stack([np.bincount(d, minlength=nb) for d in draws]).astype(float)  # (B, nb)
    n = weight @ count
    mx, my = (weight @ sx) / n[:, None], (weight @ sy) / n[:, None]
    vx, vy = (weight @ sxx) / n[:, None] - mx**2, (weight @ syy) / n[:, None] - my**2
    cov = np.einsum("rb,bfg->rfg", weight, sxy) / n[:, None, None] - mx[:, :, None] * my[:, None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        out = cov / np.sqrt(np.maximum(vx, 0)[:, :, None] * np.maximum(vy, 0)[:, None, :])
    constant = (np.ptp(x, axis=0) == 0)[:, None] | (np.ptp(y, axis=0) == 0)[None, :]  # (F, G): no correlation
    return np.where(constant, np.nan, out)


def shift_index(positions: np.ndarray, L, n_shifts: int, seed) -> np.ndarray:
    """(n_shifts, N) int: for each random periodic shift s (uniform in the box), the index of the
    particle nearest r_i + s for every particle i (scipy.spatial.cKDTree with boxsize)."""
    positions = np.asarray(positions, dtype=float)
    side = np.broadcast_to(np.asarray(L, dtype=float), positions.shape[1:])
    tree = scipy.spatial.cKDTree(np.mod(positions, side), boxsize=side)
    shifts = np.random.default_rng(seed).uniform(0, 1, (n_shifts, positions.shape[1])) * side
    return np.stack([tree.query(np.mod(positions + s, side))[1] for s in shifts])


def shifted_pearson(x: np.ndarray, y: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Null distribution (S, F, G): Pearson of x (N, F) taken at the shifted particles
    ``index`` (S, N) (:func:`shift_index`) with y (N, G) as it is."""
    x, yz = (
        np.asarray(x, dtype=float).reshape(index.shape[1], -1),
        _standardise(np.asarray(y).reshape(index.shape[1], -1)),
    )
    return np.stack([_standardise(x[i]).T @ yz for i in index])


def partial_pearson(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> float:
    """Partial correlation of x (N,) and y (N,) given z (N,) or (N, k): the Pearson of the
    residuals of least-squares fits of x and y on [1, z]. NaN if a residual is constant."""
    design = np.column_stack([np.ones(len(x)), np.asarray(z, dtype=float).reshape(len(x), -1)])
    xy = np.column_stack([x, y]).astype(float)
    residual = xy - design @ np.linalg.lstsq(design, xy, rcond=None)[0]
    return float(pearson_matrix(residual[:, :1], residual[:, 1:])[0, 0])


def agreement(fields: np.ndarray) -> float:
    """Inter-member agreement of K fields (K, N): the mean over the K (K - 1) / 2 member pairs of
    their Pearson correlation (1 for identical members). A pair with a constant field (a member
    whose Γ is zero everywhere) has no correlation and is left out; NaN for K < 2 or no such pair."""
    fields = np.asarray(fields, dtype=float)
    if len(fields) < 2:
        return float("nan")
    pairs = pearson_matrix(fields.T, fields.T)[np.triu_indices(len(fields), 1)]
    return float(pairs[np.isfinite(pairs)].mean()) if np.isfinite(pairs).any() else float("nan")


def clopper_pearson(successes: int, trials: int, confidence: float = 0.95) -> np.ndarray:
    """Exact (Clopper-Pearson) interval (2,) of a binomial proportion (scipy.stats.binomtest);
    NaN for trials = 0."""
    if trials == 0:
        return np.full(2, np.nan)
    ci = scipy.stats.binomtest(int(successes), int(trials)).proportion_ci(confidence, method="exact")
    return np.array([ci.low, ci.high])
