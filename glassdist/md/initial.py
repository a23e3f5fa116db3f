"""Random starting configurations shared by the MD engines (NumPy, seeded per replica)."""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from ..errors import TaskError
from ..spec import Spec

# Overlap removal of a random start uses a soft repulsion of range SOFT_RANGE * sigma_ij. At
# the range sigma_ij itself the paper's mixtures are packed beyond jamming (ABM: area fraction
# 0.88 > 0.84), and the minimiser can lower the total soft energy by stacking two particles on
# top of each other (measured: 3 of 150 ABM starts at N = 2000, whose eq. (1) minimisation then
# blew up); at 0.8 sigma_ij (area fraction 0.56) every overlap goes away in ~40 iterations and
# no pair starts closer than 0.8 sigma_ij.
SOFT_RANGE = 0.8


def random_positions(spec: Spec, rng: np.random.Generator, max_rounds: int = 1000) -> np.ndarray:
    """Positions (N, dim) uniform in the periodic box, no pair closer than 0.5 * min(sigma).

    Particles are drawn all at once; while pairs are too close, the higher-indexed particle of
    each such pair is drawn again (the gap excludes a small fraction of the volume at the
    paper's densities, so this ends after a few rounds).
    """
    N, dim, L = spec.system.n_particles, spec.dim, spec.box_length
    gap = 0.5 * spec.sigma.min()
    x = rng.uniform(0.0, L, size=(N, dim))
    for _ in range(max_rounds):
        pairs = cKDTree(x, boxsize=L).query_pairs(gap, output_type="ndarray")
        if len(pairs) == 0:
            return x
        redraw = np.unique(pairs.max(axis=1))
        x[redraw] = rng.uniform(0.0, L, size=(len(redraw), dim))
    raise TaskError(
        f"no random start without pairs closer than {gap:g} after {max_rounds} rounds "
        "(density too high for a random start)"
    )
