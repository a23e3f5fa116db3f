"""The random start of a block of replicas on the Warp engine (the quench's first step), apart from
the engine so that benchmarks/gpu_check.py runs it on a GPU node without the store's libraries."""

from __future__ import annotations

import numpy as np

from ..initial import random_positions
from ..isoconf import draw_velocities
from .fire import fire_minimise
from .system import Batch

# overlap removal of a random start, as the LAMMPS path: pair_style soft (A = 20, cutoff 0.8 sigma_ij)
# to force tolerance 1e-4, then eq. (1) to 1e-6, at most 1000 iterations each (FIRE here, CG there)
SOFT_A, SOFT_FTOL, START_FTOL, START_ITERATIONS = 20.0, 1e-4, 1e-6, 1000


def random_start(batch: Batch, rngs: list[np.random.Generator], temperature: float) -> None:
    """Every system of ``batch`` from its generator: random positions, overlaps removed by FIRE
    (soft repulsion, then eq. (1)), Maxwell-Boltzmann velocities with zero momentum scaled to
    ``temperature`` exactly (LAMMPS ``velocity create ... dist gaussian mom yes``)."""
    spec = batch.spec
    x0 = np.stack([random_positions(spec, rng) for rng in rngs])
    masses = np.asarray(spec.system.masses, dtype=float)[spec.types]
    v0 = np.stack([draw_velocities(rng, temperature, masses, spec.dim) for rng in rngs])
    batch.soft = SOFT_A
    batch.set_positions(x0)
    fire_minimise(batch, spec.md.dt, 0.0, SOFT_FTOL, START_ITERATIONS)
    batch.soft = 0.0
    batch.compute_forces()
    fire_minimise(batch, spec.md.dt, 0.0, START_FTOL, START_ITERATIONS)
    batch.set_velocities(v0)
    batch.set_velocities(v0 * np.sqrt(temperature / batch.temperature())[:, None, None])
