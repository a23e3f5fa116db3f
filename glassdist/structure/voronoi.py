"""Voronoi volumes Upsilon (eq. 5) and Voronoi neighbours, periodic, with freud."""

from __future__ import annotations

from dataclasses import dataclass

import freud
import numpy as np

from .pairs import freud_box, freud_points


@dataclass(frozen=True)
class Voronoi:
    """Periodic Voronoi tessellation of N particles in dim dimensions.

    volumes: (N,) cell volumes Upsilon_i (areas in 2D), summing to L^dim.
    i, j: (M,) neighbour pairs (cells i and j share a face; both directions listed), grouped
      by i; in 2D the neighbours of each i are in counter-clockwise angular order.
    vectors: (M, dim) r_j - r_i of the neighbouring periodic image.
    counts: (N,) number of neighbours N_i; starts: (N,) index of i's first pair.
    """

    volumes: np.ndarray
    i: np.ndarray
    j: np.ndarray
    vectors: np.ndarray
    counts: np.ndarray
    starts: np.ndarray


def voronoi(positions: np.ndarray, L) -> Voronoi:
    """Voronoi cells of positions (N, dim) in the periodic box of side lengths L (a number or (dim,))."""
    positions = np.asarray(positions, dtype=float)
    n, dim = positions.shape
    box = freud_box(L, dim)
    vor = freud.locality.Voronoi()
    vor.compute((box, freud_points(box, positions)))
    nlist = vor.nlist
    i = np.asarray(nlist.query_point_indices, dtype=np.int64)
    j = np.asarray(nlist.point_indices, dtype=np.int64)
    vectors = np.asarray(nlist.vectors)[:, :dim]
    # group by i; in 2D order each group by the polar angle of r_j - r_i
    angle = np.arctan2(vectors[:, 1], vectors[:, 0]) if dim == 2 else np.zeros(len(i))
    order = np.lexsort((angle, i))
    i, j, vectors = i[order], j[order], vectors[order]
    counts = np.bincount(i, minlength=n)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    return Voronoi(volumes=np.array(vor.volumes), i=i, j=j, vectors=vectors, counts=counts, starts=starts)
