"""Intervals, null bands, partial correlations and agreement (glassdist.fields.uncertainty) on
synthetic fields with known answers."""

import numpy as np
import pytest

from glassdist.fields import uncertainty as u
from glassdist.fields.coarse import coarse_grain

RHO = 1.2


def smooth_noise(pos, L, xi, rng, count=1):
    """(N, count) white noise coarse-grained at xi, each column standardised."""
    z = coarse_grain(pos, rng.normal(size=(len(pos), count)), L, xi)
    return (z - z.mean(axis=0)) / z.std(axis=0)


def test_block_interval_covers_a_known_correlation():
    """y = rho x + sqrt(1 - rho^2) x', x and x' independent smoothed noise: the block bootstrap
    interval of one configuration's Pearson covers rho in at least 90 of 100 configurations."""
    rho, n, xi, covered = 0.5, 2000, 1.0, 0
    L = np.sqrt(n / RHO)
    for trial in range(100):
        rng = np.random.default_rng(trial)
        pos = rng.uniform(0, L, (n, 2))
        z = smooth_noise(pos, L, xi, rng, 2)
        y = rho * z[:, 0] + np.sqrt(1 - rho**2) * z[:, 1]
        boot = u.block_pearson(pos, z[:, 0], y, L, length=4 * xi, n_resamples=400, seed=trial)
        low, high = u.interval(boot[:, 0, 0])
        covered += low <= rho <= high
    assert covered >= 90


def test_bootstrap_mean_covers_the_mean_and_needs_two_values():
    covered = 0
    for trial in range(100):
        values = np.random.default_rng(trial).normal(0.3, 1.0, 30)
        low, high = u.bootstrap_mean(values, 1000, seed=trial)
        covered += low <= 0.3 <= high
    assert covered >= 90
    # NaN-aware per column; a column with one finite value has no interval
    values = np.array([[1.0, np.nan], [2.0, 5.0], [np.nan, np.nan], [3.0, np.nan]])
    ci = u.bootstrap_mean(values, 500, seed=0)
    assert ci.shape == (2, 2) and 1.0 <= ci[0, 0] <= ci[0, 1] <= 3.0 and np.isnan(ci[1]).all()
    np.testing.assert_array_equal(ci, u.bootstrap_mean(values, 500, seed=0))  # seeded


def test_null_band_of_shifted_fields():
    """An indicator independent of the field lies inside the 95 % null band of periodic shifts
    (in most configurations); one that carries the field lies far outside it."""
    n, xi, inside = 1500, 1.5, 0
    L = np.sqrt(n / RHO)
    for trial in range(20):
        rng = np.random.default_rng(100 + trial)
        pos = rng.uniform(0, L, (n, 2))
        z = smooth_noise(pos, L, xi, rng, 2)
        index = u.shift_index(pos, L, 200, seed=trial)
        fields = np.column_stack([z[:, 1], z[:, 0] + 0.5 * z[:, 1]])  # independent, dependent
        null = u.shifted_pearson(fields, z[:, :1], index)[:, :, 0]  # (S, 2)
        band = u.interval(null)
        observed = u.pearson_matrix(fields, z[:, :1])[:, 0]
        inside += band[0, 0] <= observed[0] <= band[0, 1]
        assert observed[1] > band[1, 1] + 0.3
        # the shifted field keeps its values and its smoothness: a wider band than white noise
        assert index.shape == (200, n) and np.std(null[:, 0]) > 2 / np.sqrt(n)
    assert inside >= 17


def test_shift_index_is_the_nearest_particle_of_the_shifted_point():
    rng = np.random.default_rng(1)
    L = np.array([5.0, 7.0])
    pos = rng.uniform(0, 1, (50, 2)) * L
    index = u.shift_index(pos, L, 3, seed=4)
    s = np.random.default_rng(4).uniform(0, 1, (3, 2)) * L
    d = (pos[None, :, None, :] + s[:, None, None, :]) - pos[None, None, :, :]  # (S, i, j, dim)
    d -= L * np.round(d / L)
    np.testing.assert_array_equal(index, np.linalg.norm(d, axis=-1).argmin(axis=-1))


def test_block_pearson_resamples_blocks():
    rng = np.random.default_rng(2)
    L = 12.0
    pos = rng.uniform(0, L, (600, 2))
    label, nb = u.blocks(pos, L, 4.0)
    assert nb == 9 and label.min() == 0 and label.max() == 8
    x = rng.normal(size=(600, 2))
    y = x[:, :1] + rng.normal(size=(600, 1))
    boot = u.block_pearson(pos, x, y, L, 4.0, 200, seed=3)
    assert boot.shape == (200, 2, 1)
    # one resample by hand: the drawn blocks' particles, repeated as drawn
    draw = np.random.default_rng(3).integers(0, nb, (200, nb))[0]
    idx = np.concatenate([np.flatnonzero(label == b) for b in draw])
    np.testing.assert_allclose(boot[0, :, 0], [np.corrcoef(x[idx, f], y[idx, 0])[0, 1] for f in (0, 1)])
    assert np.isnan(u.block_pearson(pos, x, y, L, 7.0, 10, seed=0)).all()  # one block per side


def test_partial_correlation_removes_a_shared_driver():
    rng = np.random.default_rng(5)
    z = rng.normal(size=20000)
    x, y = z + 0.3 * rng.normal(size=z.size), z + 0.3 * rng.normal(size=z.size)
    assert u.pearson_matrix(x[:, None], y[:, None])[0, 0] > 0.9
    assert abs(u.partial_pearson(x, y, z)) < 0.03
    # a partial correlation that z does not explain stays: x = z + w, y = w + noise
    w = rng.normal(size=z.size)
    assert u.partial_pearson(z + w, w + 0.5 * rng.normal(size=z.size), z) == pytest.approx(2 / np.sqrt(5), abs=0.02)


def test_agreement_and_binomial_interval():
    rng = np.random.default_rng(6)
    f = rng.normal(size=500)
    assert u.agreement(np.stack([f, f, f])) == pytest.approx(1.0)
    assert u.agreement(np.stack([f, 2 * f + 1])) == pytest.approx(1.0)
    assert abs(u.agreement(rng.normal(size=(4, 5000)))) < 0.05
    assert u.agreement(np.stack([f, -f])) == pytest.approx(-1.0) and np.isnan(u.agreement(f[None]))
    # a member that drew no map (constant Γ) has no correlation: the agreement is the other pairs'
    g = f + rng.normal(size=500)
    assert u.agreement(np.stack([f, np.zeros(500), g])) == pytest.approx(np.corrcoef(f, g)[0, 1])
    assert np.isnan(u.agreement(np.stack([f, np.zeros(500)])))
    low, high = u.clopper_pearson(8, 10)
    assert low == pytest.approx(0.4439, abs=1e-4) and high == pytest.approx(0.9748, abs=1e-4)
    assert np.isnan(u.clopper_pearson(0, 0)).all()


def test_bootstrap_of_no_configuration_is_nan():
    """Every test configuration misclassified (none valid): NaN intervals of the right shape, no error."""
    out = u.bootstrap_mean(np.zeros((0, 3)), 100, 0)
    assert out.shape == (3, 2) and np.isnan(out).all()
    assert np.isnan(u.bootstrap_mean(np.ones((1, 2, 2)), 100, 0)).all()  # one is not enough
