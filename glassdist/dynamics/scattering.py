"""Static structure factor S(k), self-intermediate scattering function F_s(k, t) and the
structural relaxation time tau_alpha (the liquid hold at T_L, ``quench.hold_liquid``).

    S(k)      = < |sum_j exp(-i k.r_j)|^2 > / N     over the box's wave vectors k = 2 pi n / L
    F_s(k, t) = mean_j < exp(i k.(r_j(t) - r_j(0))) >_{|k| = k}
              = mean_j J0(k |dr_j|)  (2D),  mean_j sin(k |dr_j|) / (k |dr_j|)  (3D)
    tau_alpha: the first t with F_s(k*, t) = 1/e, k* the first peak of S(k)

The direction average of F_s is exact (isotropic average of a plane wave), so F_s needs no
wave-vector sampling. Arrays in, arrays out.
"""

from __future__ import annotations

import numpy as np
from scipy import special

SHELL_VECTORS = 64  # at most this many wave vectors per |n| shell of S(k) (evenly strided)
CHUNK = 1 << 22  # wave vectors x particles per block of exp(-i k.r)


def structure_factor(positions: np.ndarray, box_length: float, k_max: float) -> tuple[np.ndarray, np.ndarray]:
    """S(k) of one periodic configuration (N, dim) on the shells |n| = 1, 2, ... of the box's
    wave vectors k = 2 pi n / L up to k_max -> (k (K,), S (K,)): per shell the mean |k| and the
    mean of |rho_k|^2 / N over at most SHELL_VECTORS of its vectors (one of each pair +-k)."""
    x = np.asarray(positions, dtype=float)
    n, dim = x.shape
    n_max = int(k_max * box_length / (2 * np.pi))
    if n_max < 1:
        raise ValueError(f"k_max = {k_max} is below the smallest wave vector 2 pi / L of the box")
    axis = np.arange(-n_max, n_max + 1)
    lattice = np.stack(np.meshgrid(*[axis] * dim, indexing="ij"), axis=-1).reshape(-1, dim)
    first = lattice[np.arange(len(lattice)), np.argmax(lattice != 0, axis=1)]
    norm = np.linalg.norm(lattice, axis=1)
    keep = (first > 0) & (norm <= n_max)  # half space: S(k) = S(-k)
    lattice, shell = lattice[keep], np.rint(norm[keep]).astype(int)
    chosen = []
    for s in np.unique(shell):
        members = np.flatnonzero(shell == s)
        chosen.append(members[:: max(1, len(members) // SHELL_VECTORS)][:SHELL_VECTORS])
    chosen = np.concatenate(chosen)
    k_vec, shell = 2 * np.pi / box_length * lattice[chosen], shell[chosen]
    s_k = np.empty(len(k_vec))
    step = max(1, CHUNK // n)
    for a in range(0, len(k_vec), step):
        phase = x @ k_vec[a : a + step].T  # (N, block)
        s_k[a : a + step] = (np.cos(phase).sum(axis=0) ** 2 + np.sin(phase).sum(axis=0) ** 2) / n
    shells = np.unique(shell)
    k_abs = np.linalg.norm(k_vec, axis=1)
    return (np.array([k_abs[shell == s].mean() for s in shells]), np.array([s_k[shell == s].mean() for s in shells]))


def first_peak(positions: np.ndarray, box_length: float) -> float:
    """k* (float): the wave number of the largest S(k) for k up to 3 pi rho^(1/dim), 1.5 times
    2 pi over the mean interparticle distance (the first peak; the second lies near twice it)."""
    n, dim = np.shape(positions)
    k, s = structure_factor(positions, box_length, 3 * np.pi * (n / box_length**dim) ** (1 / dim))
    return float(k[np.argmax(s)])


def self_intermediate_scattering(origin: np.ndarray, positions: np.ndarray, k) -> np.ndarray:
    """F_s(k, t), direction-averaged, mean over particles: origin (..., N, dim) and positions
    (..., N, dim) unwrapped, k (...) -> (...)."""
    dr = np.linalg.norm(np.asarray(positions, dtype=float) - origin, axis=-1)  # (..., N)
    x = np.asarray(k, dtype=float)[..., None] * dr
    dim = np.shape(origin)[-1]
    if dim == 2:
        return special.j0(x).mean(axis=-1)
    if dim == 3:
        return np.sinc(x / np.pi).mean(axis=-1)
    raise ValueError(f"dimension {dim}: F_s is defined here for 2D and 3D")


def relaxation_time(times: np.ndarray, fs: np.ndarray, level: float = np.exp(-1.0)) -> float:
    """tau (float): the first time F_s falls to ``level`` (default 1/e), ln F_s interpolated
    linearly in t between the two samples around it (exact for an exponential decay); NaN
    when F_s stays above ``level`` over ``times`` (T,)."""
    times, fs = np.asarray(times, dtype=float), np.asarray(fs, dtype=float)
    below = np.flatnonzero(fs <= level)
    if not len(below):
        return float("nan")
    hi = int(below[0])
    if hi == 0:
        return float(times[0])
    lo = hi - 1
    if fs[hi] > 0:
        f_lo, f_hi, f = np.log(fs[lo]), np.log(fs[hi]), np.log(level)
    else:  # a noisy F_s at or below 0: interpolate F_s itself
        f_lo, f_hi, f = fs[lo], fs[hi], level
    return float(times[lo] + (f - f_lo) / (f_hi - f_lo) * (times[hi] - times[lo]))
