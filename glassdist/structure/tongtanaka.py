"""Tong-Tanaka order parameter Theta_o (eq. 6 / S5).

Theta_o = (1/N_o) sum_<ij> |theta1_ij - theta2_ij| over the N_o pairs (i, j) of Voronoi
neighbours of o that are adjacent around o (2D: consecutive in angular order).
theta1 is the measured angle i-o-j; theta2 the angle at o of the triangle with sides
sigma_oi, sigma_oj, sigma_ij (contact sigma, law of cosines).
"""

from __future__ import annotations

import numpy as np

from ..errors import GlassdistError
from .voronoi import Voronoi, voronoi


def ideal_angle(s_oi: np.ndarray, s_oj: np.ndarray, s_ij: np.ndarray) -> np.ndarray:
    """Angle at o of the triangle with sides s_oi, s_oj and s_ij (law of cosines)."""
    cos = (s_oi ** 2 + s_oj ** 2 - s_ij ** 2) / (2 * s_oi * s_oj)
    return np.arccos(np.clip(cos, -1.0, 1.0))


def require_supported(dim: int) -> None:
    """Raise a clear error where Theta is not implemented (3D)."""
    if dim != 2:
        raise GlassdistError(f"Tong-Tanaka order parameter in {dim}D (triangles of Delaunay faces) "
                             "is not implemented yet; only 2D is supported")


def tong_tanaka(positions: np.ndarray, types: np.ndarray, L, contact_sigma: np.ndarray,
                cells: Voronoi | None = None) -> np.ndarray:
    """Theta_o of every particle, shape (N,).

    positions: (N, dim); types: (N,) species indices; contact_sigma: (S, S).
    ``cells`` reuses a tessellation of the same positions. 2D only for now.
    """
    positions = np.asarray(positions, dtype=float)
    require_supported(positions.shape[1])
    cells = cells if cells is not None else voronoi(positions, L)
    sigma = np.asarray(contact_sigma, dtype=float)
    types = np.asarray(types)
    # pair k = (o, i) and its successor around o, (o, j), cyclic within each group of o
    k = np.arange(len(cells.i))
    last = cells.starts[cells.i] + cells.counts[cells.i] - 1
    nxt = np.where(k == last, cells.starts[cells.i], k + 1)
    a, b = cells.vectors, cells.vectors[nxt]
    theta1 = np.abs(np.arctan2(a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0], np.einsum("kd,kd->k", a, b)))
    to, ti, tj = types[cells.i], types[cells.j], types[cells.j[nxt]]
    theta2 = ideal_angle(sigma[to, ti], sigma[to, tj], sigma[ti, tj])
    total = np.bincount(cells.i, weights=np.abs(theta1 - theta2), minlength=len(positions))
    return total / np.maximum(cells.counts, 1)
