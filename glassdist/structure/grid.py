"""Gridization M (Supp. eqs. S1-S2) and its inverse M^-1 (eq. S4).

Both operators are one sparse matrix W of shape (N, G) with G = grid**dim:
``W[i, g] = f(|r_i - r_g|) = exp(-|r_i - r_g|^2 / s_i^2)`` for ``|r_i - r_g| < c * sigma_ii``
(periodic), where ``s_i = a * sigma_ii``. Then

* M:    rho_g   = sum_i W[i, g]                       (the density image, ``W.T @ 1``)
* M^-1: Gamma_i = sum_g W[i, g] * L_g / rho_g           (``W @ (L / rho)``)

so M^-1 redistributes each grid value over the particles that made it and
``sum_i Gamma_i = sum_g L_g`` (for every grid point with at least one particle in range).

The CNN's input scaling of rho is part of the model (glassdist.learn.model.InputNorm).
Grid point k (per axis) sits at the cell centre ``(k + 0.5) * L / grid``; axis order of
the image is the coordinate order (image[k, l] is x index k, y index l).
The kernel scale is ``a = L / (0.64 N)^(1/dim)``: the paper's ``L / sqrt(0.64 N)`` in 2D
and its natural generalisation (same particles per a^dim) in 3D.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

STENCIL_ENTRIES = 2**22  # (particle, stencil cell) entries per chunk of kernel_matrix (~100 MB)


def kernel_scale(box_length: float, n_particles: int, dim: int) -> float:
    """a = L / (0.64 N)^(1/dim) (of order one; the paper's L / sqrt(0.64 N) in 2D)."""
    return box_length / (0.64 * n_particles) ** (1.0 / dim)


def kernel_matrix(
    positions, types, box_length: float, grid: int, sigma_ii, cutoff_factor: float = 2.5
) -> sparse.csr_array:
    """W[i, g] = exp(-d^2 / (a sigma_ii)^2) for periodic distances d < cutoff_factor * sigma_ii.

    positions (N, dim), wrapped or not; types (N,) species indices; sigma_ii (S,) the
    diagonal of sigma. Returns a CSR array of shape (N, grid**dim); the column of grid
    point (k, l, ...) is ``np.ravel_multi_index((k, l, ...), (grid,) * dim)``.
    """
    positions = np.asarray(positions, dtype=float)
    n, dim = positions.shape
    sig = np.asarray(sigma_ii, dtype=float)[np.asarray(types)]  # (N,)
    width = kernel_scale(box_length, n, dim) * sig  # s_i
    cutoff = cutoff_factor * sig  # r_c,i
    h = box_length / grid
    # every grid point within reach of a particle lies in a (2 reach + 1)^dim stencil of
    # unwrapped cells around the particle's cell; their indices are wrapped afterwards
    reach = int(np.ceil(cutoff.max() / h + 0.5))
    axis = np.arange(-reach, reach + 1)
    offsets = np.stack(np.meshgrid(*[axis] * dim, indexing="ij"), -1).reshape(-1, dim)
    rows, cols, values = [], [], []
    chunk = max(1, STENCIL_ENTRIES // len(offsets))  # particles per chunk: bounded temporaries
    for start in range(0, n, chunk):
        x = positions[start : start + chunk]
        cells = np.floor(x / h).astype(np.int64)[:, None, :] + offsets  # (n_c, O, dim)
        r2 = ((x[:, None, :] - (cells + 0.5) * h) ** 2).sum(-1)  # (n_c, O)
        r, c = np.nonzero(r2 < cutoff[start : start + chunk, None] ** 2)
        rows.append(r + start)
        cols.append(np.ravel_multi_index(np.mod(cells[r, c], grid).T, (grid,) * dim))
        values.append(np.exp(-r2[r, c] / width[start : start + chunk][r] ** 2))
    # duplicates (only when a cutoff exceeds L/2) are summed: the sum over periodic images
    return sparse.csr_array(
        (np.concatenate(values), (np.concatenate(rows), np.concatenate(cols))), shape=(n, grid**dim)
    )


def density(weights: sparse.csr_array, dim: int) -> np.ndarray:
    """M: the unnormalised density image rho (grid,)*dim from W (N, grid**dim)."""
    grid = round(weights.shape[1] ** (1.0 / dim))
    return np.asarray(weights.sum(axis=0)).reshape((grid,) * dim)


def redistribute(weights: sparse.csr_array, field) -> np.ndarray:
    """M^-1: Gamma (N,) = W @ (field / rho); field (grid,)*dim, rho from the same W.

    Grid points with no particle in range (rho = 0) have no one to give their value to
    and contribute nothing.
    """
    rho = np.asarray(weights.sum(axis=0)).ravel()
    share = np.divide(np.ravel(field), rho, out=np.zeros_like(rho), where=rho > 0)
    return weights @ share


def gridize(positions, types, box_length: float, grid: int, sigma_ii, cutoff_factor: float = 2.5) -> np.ndarray:
    """M (eqs. S1-S2): the unnormalised density image rho, shape (grid,)*dim."""
    w = kernel_matrix(positions, types, box_length, grid, sigma_ii, cutoff_factor)
    return density(w, np.shape(positions)[1])


def to_particles(field, positions, types, box_length: float, sigma_ii, cutoff_factor: float = 2.5) -> np.ndarray:
    """M^-1 (eq. S4): per-particle values Gamma (N,) of a grid field (grid,)*dim.

    The kernel and rho are rebuilt from the configuration (the unnormalised rho of eq. S4).
    """
    field = np.asarray(field)
    w = kernel_matrix(positions, types, box_length, field.shape[0], sigma_ii, cutoff_factor)
    return redistribute(w, field)


def to_particles_many(fields, positions, types, box_length: float, sigma_ii, cutoff_factor: float = 2.5) -> np.ndarray:
    """M^-1 (eq. S4) of several grid fields (F, grid, ...) of one configuration: Gamma (F, N),
    row f equal to ``to_particles(fields[f], ...)``; the kernel is built once."""
    fields = np.asarray(fields)
    w = kernel_matrix(positions, types, box_length, fields.shape[1], sigma_ii, cutoff_factor)
    return np.array([redistribute(w, field) for field in fields])
