"""Periodic boxes for freud and a periodic pair search for any cutoff.

Positions are (N, dim) in a periodic box of side lengths L: a number (cube; square in 2D)
or one length per axis (dim,). freud wants (N, 3) points with z = 0 in 2D.
The pair search uses scipy's periodic cKDTree (float64; about 10x faster than a freud
AABBQuery for the ~1000 neighbours per particle of xi = 8 at N = 2000, see
benchmarks/fields.py). A cutoff r_max >= L/2 is handled by tiling the box, so every
periodic image of j within r_max is its own pair.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import freud
import numpy as np
import scipy.spatial


def box_lengths(L, dim: int) -> np.ndarray:
    """Side lengths (dim,) from a number or a sequence."""
    return np.broadcast_to(np.asarray(L, dtype=float), (dim,)).copy()


def freud_box(L, dim: int) -> freud.box.Box:
    """The periodic box of side lengths L (a number or (dim,)), 2D or 3D."""
    if dim not in (2, 3):
        raise ValueError(f"dim must be 2 or 3, got {dim}")
    lengths = box_lengths(L, dim)
    return freud.box.Box(*lengths, is2D=True) if dim == 2 else freud.box.Box(*lengths)


def freud_points(box: freud.box.Box, positions: np.ndarray) -> np.ndarray:
    """Positions (N, dim) -> wrapped freud points (N, 3), z = 0 in 2D."""
    positions = np.asarray(positions, dtype=float)
    points = np.zeros((len(positions), 3))
    points[:, : positions.shape[1]] = positions
    return box.wrap(points)


@dataclass(frozen=True)
class Pairs:
    """Pairs within a cutoff: ``i`` (M,), ``j`` (M,) and ``distances`` (M,), in no set order."""

    i: np.ndarray
    j: np.ndarray
    distances: np.ndarray


def periodic_pairs(positions: np.ndarray, L, r_max: float, self_pairs: bool = False) -> Pairs:
    """Every (i, j, image) with |r_j + n L - r_i| <= r_max; ``self_pairs`` keeps i == j at r = 0.

    positions: (N, dim). Periodic images of the same j (and of i itself) are separate pairs
    when r_max >= L/2, so sums over pairs are the periodic sums over all images.
    """
    positions = np.asarray(positions, dtype=float)
    n, dim = positions.shape
    if not r_max > 0:
        raise ValueError(f"r_max must be > 0, got {r_max}")
    lengths = box_lengths(L, dim)
    tiles = np.floor(2 * r_max / lengths).astype(int) + 1  # per axis, so that r_max < tiles L / 2
    offsets = np.array(list(itertools.product(*map(range, tiles))), dtype=float) * lengths
    inside = np.mod(positions, lengths)
    inside[inside >= lengths] = 0.0  # np.mod(-1e-17, L) rounds to L
    tiled = (inside[None, :, :] + offsets[:, None, :]).reshape(-1, dim)
    big = tiles * lengths
    found = scipy.spatial.cKDTree(inside, boxsize=big).sparse_distance_matrix(
        scipy.spatial.cKDTree(tiled, boxsize=big), r_max, output_type="ndarray")
    i, j = found["i"].astype(np.int64), found["j"].astype(np.int64)
    keep = slice(None) if self_pairs else i != j  # j == i only for i itself (other images have j >= N)
    return Pairs(i=i[keep], j=j[keep] % n, distances=found["v"][keep])
