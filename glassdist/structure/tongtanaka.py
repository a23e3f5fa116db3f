"""Tong-Tanaka order parameter Theta_o (eq. 6 / S5 in 2D; Tong & Tanaka, PRX 8, 011041 (2018) in 3D).

2D: Theta_o = (1/N_o) sum_<ij> |theta1_ij - theta2_ij| over the N_o pairs (i, j) of Voronoi
neighbours of o that are adjacent around o (consecutive in angular order). theta1 is the
measured angle i-o-j; theta2 the angle at o of the triangle with sides sigma_oi, sigma_oj,
sigma_ij (contact sigma, law of cosines).

3D: Theta_o = mean of omega over the tetrahedra (o, j, k, m) whose four particles are mutual
Voronoi neighbours (4-cliques of the neighbour graph, as in partycls' compactness descriptor);
omega = sum_ab |r_ab - sigma_ab| / sum_ab sigma_ab over the six edges. The tetrahedra are the
cliques, not the Delaunay simplices: the two differ where a Delaunay edge pierces a triangle
(a "3-2 flip" configuration adds a clique that is no simplex; a liquid-like configuration has
~33 cliques per particle against ~26 simplices), and for a perfect fcc lattice
voro++ reports the 12 nearest neighbours only (the next-nearest ones meet o's cell only at a
vertex), so the cliques are the 8 regular tetrahedra per particle and Theta = 0 with sigma
the nearest-neighbour distance, whereas a Delaunay triangulation must split each octahedral
hole along a next-nearest diagonal.
"""

from __future__ import annotations

import numpy as np

from ..errors import GlassdistError
from .voronoi import Voronoi, voronoi


def ideal_angle(s_oi: np.ndarray, s_oj: np.ndarray, s_ij: np.ndarray) -> np.ndarray:
    """Angle at o of the triangle with sides s_oi, s_oj and s_ij (law of cosines)."""
    cos = (s_oi**2 + s_oj**2 - s_ij**2) / (2 * s_oi * s_oj)
    return np.arccos(np.clip(cos, -1.0, 1.0))


def require_supported(dim: int) -> None:
    """Raise a clear error where Theta is not defined (dimensions other than 2 and 3)."""
    if dim not in (2, 3):
        raise GlassdistError(f"Tong-Tanaka order parameter in {dim}D is not defined; use dim 2 or 3")


def tong_tanaka(
    positions: np.ndarray, types: np.ndarray, L, contact_sigma: np.ndarray, cells: Voronoi | None = None
) -> np.ndarray:
    """Theta_o of every particle, shape (N,).

    positions: (N, dim) with dim 2 or 3; types: (N,) species indices; contact_sigma: (S, S).
    ``cells`` reuses a tessellation of the same positions.
    """
    positions = np.asarray(positions, dtype=float)
    require_supported(positions.shape[1])
    cells = cells if cells is not None else voronoi(positions, L)
    sigma = np.asarray(contact_sigma, dtype=float)
    types = np.asarray(types)
    return (_theta_angles if positions.shape[1] == 2 else _theta_tetrahedra)(cells, types, sigma)


def _theta_angles(cells: Voronoi, types: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """2D: mean |theta1 - theta2| over the pairs of neighbours adjacent around each particle."""
    # pair k = (o, i) and its successor around o, (o, j), cyclic within each group of o
    k = np.arange(len(cells.i))
    last = cells.starts[cells.i] + cells.counts[cells.i] - 1
    nxt = np.where(k == last, cells.starts[cells.i], k + 1)
    a, b = cells.vectors, cells.vectors[nxt]
    theta1 = np.abs(np.arctan2(a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0], np.einsum("kd,kd->k", a, b)))
    to, ti, tj = types[cells.i], types[cells.j], types[cells.j[nxt]]
    theta2 = ideal_angle(sigma[to, ti], sigma[to, tj], sigma[ti, tj])
    total = np.bincount(cells.i, weights=np.abs(theta1 - theta2), minlength=len(types))
    return total / np.maximum(cells.counts, 1)


def _theta_tetrahedra(cells: Voronoi, types: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """3D: mean omega over the 4-cliques of the Voronoi neighbour graph containing each particle."""
    n = len(types)
    # each neighbour pair once, a < b, sorted by (a, b): row a of a forward adjacency (CSR)
    forward = cells.i < cells.j
    keys = cells.i[forward] * n + cells.j[forward]
    order = np.argsort(keys)
    keys, length = keys[order], np.linalg.norm(cells.vectors[forward][order], axis=1)
    if (np.diff(keys) == 0).any():
        raise ValueError(
            "a pair of particles are Voronoi neighbours through two periodic images; the box is too small for Theta"
        )
    a, b = keys // n, keys % n
    row_end = np.searchsorted(a, np.arange(n), side="right")  # end of row a in the edge list

    def edge(x, y):
        """Index of edge (x, y), x < y, in the edge list; -1 where x and y are not neighbours."""
        at = np.minimum(np.searchsorted(keys, x * n + y), len(keys) - 1)
        return np.where(keys[at] == x * n + y, at, -1)

    # triangles (a, b, c), a < b < c: edges ab = e and ac = f, a later edge of row a, and bc
    e, f = _later_in_row(np.arange(len(keys)), row_end[a])
    bc = edge(b[e], b[f])
    e, f, bc = e[bc >= 0], f[bc >= 0], bc[bc >= 0]
    # tetrahedra (a, b, c, d), c < d: ad = g, a later edge of row a than ac, with bd and cd
    t, g = _later_in_row(f, row_end[a[f]])
    bd, cd = edge(b[e[t]], b[g]), edge(b[f[t]], b[g])
    ok = (bd >= 0) & (cd >= 0)
    t, g, bd, cd = t[ok], g[ok], bd[ok], cd[ok]
    edges = np.stack([e[t], f[t], g, bc[t], bd, cd])  # (6, tetrahedra)
    ideal = sigma[types[a[edges]], types[b[edges]]]
    omega = np.abs(length[edges] - ideal).sum(0) / ideal.sum(0)
    vertices = np.concatenate([a[e[t]], b[e[t]], b[f[t]], b[g]])  # (4 * tetrahedra,)
    total = np.bincount(vertices, weights=np.tile(omega, 4), minlength=n)
    count = np.bincount(vertices, minlength=n)
    return total / np.maximum(count, 1)


def _later_in_row(edges: np.ndarray, row_end: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every (k, later) with ``edges[k] < later < row_end[k]``: the edges of the same row after
    ``edges[k]`` (larger second particle). Returns (k, later), two arrays of equal length."""
    count = row_end - edges - 1
    k = np.repeat(np.arange(len(edges)), count)
    later = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count) + edges[k] + 1
    return k, later
