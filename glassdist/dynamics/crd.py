"""Cage-relative displacement (CRD) and dynamic propensity (paper Sec. III E, IV B).

For an isoconfigurational ensemble of S runs started from one configuration r(0):

    d_i^s(t)     = r_i^s(t) - r_i(0)                         displacement (unwrapped)
    dbar_i^s(t)  = mean of d_j^s(t) over the cage of i       cage = Voronoi neighbours of i at t=0, plus i
    Delta_i^s(t) = |d_i^s(t) - dbar_i^s(t)|                  CRD of run s
    Delta_i(t)   = mean over s of Delta_i^s(t)               dynamic propensity
    delta(t)     = mean over i of Delta_i(t)                 the "time" axis of the paper's fields

The cage mean is one sparse (N, N) row-averaging matrix applied to all samples and times at
once. Every function takes numpy arrays; :func:`cage_relative_displacement` also takes a dask
array of trajectories chunked over (sample, time) and then returns a lazy dask array.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

# dask.array and freud (through structure.voronoi) are imported where they are used: every CLI
# command reads this module's sub_ensembles through glassdist.layout, and the two take a second.


def voronoi_cage(positions: np.ndarray, box_length: float) -> sparse.csr_array:
    """Cage matrix (N, N) of a periodic configuration (N, dim) from its Voronoi neighbours."""
    from ..structure.voronoi import voronoi

    cells = voronoi(positions, box_length)
    return cage_matrix(cells.i, cells.j, len(positions))


def cage_matrix(i: np.ndarray, j: np.ndarray, n: int) -> sparse.csr_array:
    """Row-averaging matrix A (N, N): (A @ d)_i is the mean of d over {i} and the neighbours j of i.

    Pairs (i, j) are read as "j is a neighbour of i"; repeated pairs count once.
    """
    rows = np.concatenate([np.asarray(i), np.arange(n)])
    cols = np.concatenate([np.asarray(j), np.arange(n)])
    member = sparse.csr_array((np.ones(len(rows)), (rows, cols)), shape=(n, n))
    member.data[:] = 1.0  # duplicates were summed: back to 0/1 membership
    return sparse.csr_array(member.multiply(1.0 / member.sum(axis=1)[:, None]))


def _crd(traj: np.ndarray, r0: np.ndarray, cage: sparse.csr_array) -> np.ndarray:
    """Delta_i^s(t), shape (S, T, N), of unwrapped trajectories (S, T, N, dim)."""
    d = np.asarray(traj, dtype=float) - r0
    s, t, n, dim = d.shape
    per_particle = np.moveaxis(d, 2, 0).reshape(n, s * t * dim)
    dbar = np.moveaxis((cage @ per_particle).reshape(n, s, t, dim), 0, 2)
    return np.linalg.norm(d - dbar, axis=-1)


def cage_relative_displacement(r0: np.ndarray, traj, cage: sparse.csr_array):
    """CRD Delta_i^s(t), shape (S, T, N).

    r0: unwrapped positions at t = 0 (N, dim), in the same image frame as ``traj``;
    traj: unwrapped positions (S, T, N, dim), numpy or dask (chunks over S and T; the N and dim
    axes are made whole); cage: :func:`cage_matrix` of the t = 0 Voronoi neighbours.
    """
    r0 = np.asarray(r0, dtype=float)
    if traj.ndim != 4 or traj.shape[2:] != r0.shape or cage.shape != (r0.shape[0],) * 2:
        raise ValueError(
            f"trajectory {traj.shape}, r0 {r0.shape} and cage {cage.shape} do not match: pass "
            "traj (S, T, N, dim), r0 (N, dim) and an (N, N) cage matrix"
        )
    import dask.array as da

    if isinstance(traj, da.Array):
        traj = traj.rechunk({2: -1, 3: -1})
        return traj.map_blocks(_crd, r0, cage, drop_axis=3, dtype=float, meta=np.empty((0, 0, 0)))
    return _crd(traj, r0, cage)


def propensity(crd):
    """Dynamic propensity Delta (T, N) and delta(t) (T,) from CRDs (S, T, N), numpy or dask."""
    field = crd.mean(axis=0)
    return field, field.mean(axis=1)


def sub_ensembles(n_samples: int, main: int) -> dict[str, np.ndarray]:
    """Sample indices of the Table IV ensembles: three disjoint sets of ``main`` runs (eMA, eMB,
    eMC; the paper's e30) and all ``n_samples`` runs (the paper's e100); empty unless
    0 < 3 main <= n_samples."""
    if not main or 3 * main > n_samples:
        return {}
    out = {f"e{main}{part}": np.arange(k * main, (k + 1) * main) for k, part in enumerate("ABC")}
    out[f"e{n_samples}"] = np.arange(n_samples)
    return out


def main_samples(n_samples: int, main: int) -> np.ndarray:
    """Sample indices (M,) of the main propensity Delta: the first ``main`` runs (all when 0)."""
    return np.arange(main or n_samples)


def propensity_at_delta(delta_t: np.ndarray, field: np.ndarray, targets) -> tuple[np.ndarray, np.ndarray]:
    """Propensity fields at given values of delta, shape (K, N), and a reached flag (K,).

    delta_t (T,) and field (T, N) are indexed by output time. For each target the field is
    interpolated linearly in delta between the two outputs that bracket the first time delta(t)
    reaches the target (NaN entries of delta_t, outputs not reached, are skipped). A target above
    max delta(t) was not reached by the runs: its row is NaN
    and its flag False (run longer to reach it).
    """
    delta_t, field = np.asarray(delta_t, dtype=float), np.asarray(field, dtype=float)
    targets = np.atleast_1d(np.asarray(targets, dtype=float))
    out = np.full((len(targets), field.shape[1]), np.nan)
    finite = np.isfinite(delta_t)  # NaN: outputs not every run reached (propensity.until_delta)
    reached = targets <= (delta_t[finite].max() if finite.any() else -np.inf)
    for k in np.flatnonzero(reached):
        hi = int(np.argmax(delta_t >= targets[k]))
        if hi == 0:
            out[k] = field[0]
            continue
        w = (targets[k] - delta_t[hi - 1]) / (delta_t[hi] - delta_t[hi - 1])
        out[k] = (1.0 - w) * field[hi - 1] + w * field[hi]
    return out, reached
