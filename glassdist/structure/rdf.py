"""Partial radial distribution functions g_ab(r) (supplement II D, Fig. S10)."""

from __future__ import annotations

import math

import numpy as np

from ..constants import bin_centres
from .pairs import box_lengths, pair_blocks


def shell_volumes(edges: np.ndarray, dim: int) -> np.ndarray:
    """Volumes of the shells between consecutive bin edges (bins,)."""
    unit_ball = math.pi ** (dim / 2) / math.gamma(dim / 2 + 1)
    return unit_ball * np.diff(edges**dim)


def partial_rdf(
    positions: np.ndarray, types: np.ndarray, L, r_max: float, bins: int, n_species: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """g_ab(r) = V / (N_a (N_b - delta_ab)) * <pairs a-b in the shell> / shell volume.

    positions: (N, dim), types: (N,) species indices. The (N_b - delta_ab) normalisation
    makes g -> 1 for an ideal gas of any composition, like-species included.
    Returns r (bins,) bin centres and g (S, S, bins); a species absent gives g = 0.
    """
    positions = np.asarray(positions, dtype=float)
    types = np.asarray(types, dtype=np.int64)
    n, dim = positions.shape
    s = int(n_species if n_species is not None else types.max() + 1)
    edges = np.linspace(0.0, r_max, bins + 1)
    hist = np.zeros(s * s * bins)
    for pairs in pair_blocks(positions, L, r_max):
        which = np.minimum((pairs.distances / r_max * bins).astype(np.int64), bins - 1)
        hist += np.bincount((types[pairs.i] * s + types[pairs.j]) * bins + which, minlength=s * s * bins)
    hist = hist.reshape(s, s, bins)
    count = np.bincount(types, minlength=s).astype(float)
    norm = count[:, None] * (count[None, :] - np.eye(s)) / np.prod(box_lengths(L, dim))
    with np.errstate(divide="ignore", invalid="ignore"):
        g = np.where(norm[:, :, None] > 0, hist / (norm[:, :, None] * shell_volumes(edges, dim)), 0.0)
    return bin_centres(r_max, bins), g
