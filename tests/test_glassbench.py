"""GlassBench-layout correlations against an independent evaluation (scipy.stats on each species,
a brute-force periodic coarse-graining)."""

from __future__ import annotations

import numpy as np
import scipy.stats

from glassdist.fields.glassbench import species_correlations


def brute_coarse(positions, values, L, xi):
    """eq. 7 by all pairs with minimum images (cutoff 2 xi, j includes i)."""
    d = positions[:, None, :] - positions[None, :, :]
    r = np.linalg.norm(d - L * np.round(d / L), axis=-1)
    w = np.where(r < 2 * xi, np.exp(-((r / xi) ** 2)), 0.0)
    return w @ values / w.sum(axis=1, keepdims=True)


def test_matches_scipy_per_species_bare_and_coarse_grained():
    rng = np.random.default_rng(3)
    n, L, xi = 120, 9.0, 1.3
    positions = rng.uniform(0, L, (n, 2))
    types = np.repeat([0, 1], [80, 40])
    fields = rng.uniform(0, 2, (n, 2))  # two indicators
    Delta_t = np.stack([np.zeros(n), fields[:, 0] * 0.3 + rng.normal(0, 0.1, n), rng.uniform(0, 1, n)])
    pearson, spearman = species_correlations(positions, fields, Delta_t, types, 2, L, xi, np.array([False, True]))
    assert pearson.shape == spearman.shape == (2, 2, 3, 3)
    assert np.isnan(pearson[:, :, :, 0]).all()  # t = 0: no motion yet
    targets = (Delta_t.T, brute_coarse(positions, Delta_t.T, L, xi))
    for a, sign in ((0, 1), (1, -1)):  # indicator 1 enters as 1 - X
        for kind in (0, 1):
            for g, mask in enumerate((types == 0, types == 1, np.ones(n, bool))):
                for t in (1, 2):
                    x, y = sign * fields[mask, a], targets[kind][mask, t]
                    assert np.isclose(pearson[a, kind, g, t], scipy.stats.pearsonr(x, y).statistic, atol=1e-12)
                    assert np.isclose(spearman[a, kind, g, t], scipy.stats.spearmanr(x, y).statistic, atol=1e-12)
    assert pearson[0, 0, 0, 1] > 0.8  # species A: Delta built from indicator 0
