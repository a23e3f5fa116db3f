"""Periodic boxes for freud and a periodic pair search for any cutoff.

Positions are (N, dim) in a periodic box of side lengths L: a number (cube; square in 2D)
or one length per axis (dim,). freud wants (N, 3) points with z = 0 in 2D.
The pair search uses scipy's periodic cKDTree (float64; about 10x faster than a freud
AABBQuery for the ~1000 neighbours per particle of xi = 8 at N = 2000, see
benchmarks/fields.py). A cutoff r_max >= L/2 is handled by tiling the box, so every
periodic image of j within r_max is its own pair. Sums over pairs go block by block
(:func:`pair_blocks`), so memory is bounded at any N.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
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


PAIRS_PER_BLOCK = 2**24  # ~17 M pairs (~400 MB of i, j, distances) per block of particles


def pair_blocks(
    positions: np.ndarray, L, r_max: float, self_pairs: bool = False, pairs_per_block: int | None = PAIRS_PER_BLOCK
) -> Iterator[Pairs]:
    """The pairs of :func:`periodic_pairs` in blocks of consecutive particles i, each block with
    about ``pairs_per_block`` pairs (ideal-gas estimate; None: one block), so that memory stays
    bounded at any N and r_max. The blocks' union is periodic_pairs(positions, L, r_max, self_pairs).
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
    big = tiles * lengths
    tiled = scipy.spatial.cKDTree((inside[None, :, :] + offsets[:, None, :]).reshape(-1, dim), boxsize=big)
    ball = np.pi ** (dim / 2) / math.gamma(dim / 2 + 1) * r_max**dim
    per_particle = n * ball / np.prod(lengths) + 1
    block = n if pairs_per_block is None else max(1, int(pairs_per_block / per_particle))
    for start in range(0, n, block):
        found = scipy.spatial.cKDTree(inside[start : start + block], boxsize=big).sparse_distance_matrix(
            tiled, r_max, output_type="ndarray"
        )
        i, j = found["i"].astype(np.int64) + start, found["j"].astype(np.int64)
        keep = slice(None) if self_pairs else i != j  # j == i only for i itself (other images have j >= N)
        yield Pairs(i=i[keep], j=j[keep] % n, distances=found["v"][keep])


def periodic_pairs(positions: np.ndarray, L, r_max: float, self_pairs: bool = False) -> Pairs:
    """Every (i, j, image) with |r_j + n L - r_i| <= r_max; ``self_pairs`` keeps i == j at r = 0.

    positions: (N, dim). Periodic images of the same j (and of i itself) are separate pairs
    when r_max >= L/2, so sums over pairs are the periodic sums over all images. All pairs at
    once: for sums over pairs at large N use :func:`pair_blocks`.
    """
    return next(pair_blocks(positions, L, r_max, self_pairs, pairs_per_block=None))
