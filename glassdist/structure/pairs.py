"""Periodic pair search with freud, for any cutoff.

Positions are (N, dim) in a periodic box of side lengths L: a number (cube; square in 2D)
or one length per axis (dim,). freud wants (N, 3) points with z = 0 in 2D. A cutoff
r_max >= L/2 (which freud refuses) is handled by tiling the box, so every periodic image
of j within r_max is its own pair.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import freud
import numpy as np

from ..errors import SpecError


def box_lengths(L, dim: int) -> np.ndarray:
    """Side lengths (dim,) from a number or a sequence."""
    return np.broadcast_to(np.asarray(L, dtype=float), (dim,)).copy()


def freud_box(L, dim: int) -> freud.box.Box:
    """The periodic box of side lengths L (a number or (dim,)), 2D or 3D."""
    if dim not in (2, 3):
        raise SpecError("system.dim", f"freud supports dim 2 or 3, got {dim}", "use dim = 2 or 3")
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
    """Pairs within a cutoff: ``i`` (M,), ``j`` (M,), ``vectors`` (M, dim) = r_j - r_i
    (periodic image resolved), ``distances`` (M,). ``i`` is sorted."""

    i: np.ndarray
    j: np.ndarray
    vectors: np.ndarray
    distances: np.ndarray


def periodic_pairs(positions: np.ndarray, L, r_max: float, self_pairs: bool = False) -> Pairs:
    """Every (i, j, image) with |r_j + n L - r_i| < r_max; ``self_pairs`` keeps i == j at r = 0.

    positions: (N, dim). Periodic images of the same j (and of i itself) are separate pairs
    when r_max >= L/2, so sums over pairs are the periodic sums over all images.
    """
    positions = np.asarray(positions, dtype=float)
    n, dim = positions.shape
    if not r_max > 0:
        raise SpecError("r_max", f"must be > 0, got {r_max}", "use a positive cutoff")
    lengths = box_lengths(L, dim)
    tiles = np.floor(2 * r_max / lengths).astype(int) + 1  # per axis, so that r_max < tiles L / 2
    offsets = np.array(list(itertools.product(*map(range, tiles))), dtype=float) * lengths
    tiled = (positions[None, :, :] + offsets[:, None, :]).reshape(-1, dim)
    box = freud_box(tiles * lengths, dim)
    query = freud.locality.AABBQuery(box, freud_points(box, tiled))
    nlist = query.query(freud_points(box, positions),
                        dict(r_max=r_max, exclude_ii=not self_pairs)).toNeighborList()
    return Pairs(i=np.asarray(nlist.query_point_indices, dtype=np.int64),
                 j=np.asarray(nlist.point_indices, dtype=np.int64) % n,
                 vectors=np.asarray(nlist.vectors)[:, :dim],
                 distances=np.asarray(nlist.distances))
