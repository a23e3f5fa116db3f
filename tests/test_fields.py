"""Coarse-graining (eq. 7), normalisation, C_X(r) (eq. 8) and correlation coefficients against
brute-force NumPy evaluations."""

import itertools

import numpy as np
import pytest

from glassdist.fields.coarse import coarse_grain, normalise
from glassdist.fields.correlation import first_crossing, pearson, spatial_correlation, spearman


def config(n, dim, L, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(0, L, (n, dim)), rng.normal(size=(n, 3))


def brute_coarse(pos, x, L, xi):
    """O(N^2 images) eq. 7: every periodic image of j with r < 2 xi, j = i included."""
    n, dim = pos.shape
    k = int(np.ceil(2 * xi / L)) + 1
    shifts = np.array(list(itertools.product(range(-k, k + 1), repeat=dim))) * L
    out = np.zeros_like(x)
    for i in range(n):
        d = pos[None, :, :] + shifts[:, None, :] - pos[i]
        r = np.linalg.norm(d, axis=-1)
        w = np.where(r < 2 * xi, np.exp(-((r / xi) ** 2)), 0.0).sum(axis=0)
        out[i] = w @ x / w.sum()
    return out


@pytest.mark.parametrize("dim,xi", [(2, 1.5), (2, 3.0), (3, 1.2)])
def test_coarse_grain_matches_brute_force(dim, xi):
    # xi = 3 in a box of 8: 2 xi > L/2, several images of a particle lie within the cutoff
    L = 8.0 if dim == 2 else 5.0
    pos, x = config(90, dim, L, seed=dim)
    got = coarse_grain(pos, x, L, xi)
    assert got.shape == x.shape
    np.testing.assert_allclose(got, brute_coarse(pos, x, L, xi), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(coarse_grain(pos, x[:, 1], L, xi), got[:, 1])


def test_coarse_grain_constant_and_bare():
    pos, x = config(300, 2, 15.0)
    np.testing.assert_allclose(coarse_grain(pos, np.full(300, 2.5), 15.0, 4.0), 2.5)
    np.testing.assert_array_equal(coarse_grain(pos, x, 15.0, 0.0), x)
    # a tiny xi keeps only the particle itself
    np.testing.assert_allclose(coarse_grain(pos, x, 15.0, 1e-3), x)
    with pytest.raises(ValueError):
        coarse_grain(pos, x, 15.0, -1.0)


def test_normalise_per_column():
    x = np.array([[1.0, 5.0, 3.0], [3.0, 1.0, 3.0], [2.0, 3.0, 3.0]])
    np.testing.assert_allclose(normalise(x), [[0, 1, 0], [1, 0, 0], [0.5, 0.5, 0]])
    np.testing.assert_allclose(normalise(np.array([2.0, 4.0, 3.0])), [0, 1, 0.5])


def brute_correlation(pos, x, L, r_max, bins):
    d = pos[:, None, :] - pos[None, :, :]
    r = np.linalg.norm(d - L * np.round(d / L), axis=-1)
    dx = x - x.mean()
    prod = dx[:, None] * dx[None, :]
    off = ~np.eye(len(x), dtype=bool) & (r < r_max)
    which = (r[off] / (r_max / bins)).astype(int)
    return np.array([prod[off][which == b].mean() for b in range(bins)]) / dx.var()


def test_correlation_matches_brute_force_on_smooth_field():
    L = 12.0
    pos, x = config(400, 2, L, seed=4)
    field = coarse_grain(pos, x[:, 0], L, 1.5)
    r, c = spatial_correlation(pos, field, L, r_max=5.0, bins=20)
    assert r.shape == c.shape == (21,) and r[0] == 0 and c[0] == 1
    np.testing.assert_allclose(r[1:], (np.arange(20) + 0.5) * 0.25)
    np.testing.assert_allclose(c[1:], brute_correlation(pos, field, L, 5.0, 20), rtol=1e-6, atol=1e-9)
    assert c[1] > 0.5  # smoothed on 1.5: strongly correlated at short range


def test_correlation_of_uncorrelated_field_vanishes():
    L = np.sqrt(2000 / 1.2)
    pos, x = config(2000, 2, L, seed=9)
    r, c = spatial_correlation(pos, x[:, 0], L, r_max=8.0, bins=16)
    # each bin averages >= ~2000 * 1.2 * pi * 0.25 pair products of unit variance
    assert np.abs(c[1:]).max() < 5 / np.sqrt(2000 * 1.2 * np.pi * 0.25)


def test_first_crossing_interpolates():
    r = np.linspace(0, 10, 201)
    assert first_crossing(r, np.exp(-r / 2.0), 1 / np.e) == pytest.approx(2.0, rel=1e-3)
    assert first_crossing(r, np.cos(r), 0.0) == pytest.approx(np.pi / 2, rel=1e-3)
    # linear between samples, NaN bins skipped
    assert first_crossing([0, 1, 2, 3], [1.0, np.nan, 0.5, -0.5], 0.0) == pytest.approx(2.5)
    assert np.isnan(first_crossing(r, np.ones_like(r), 0.5))


def test_pearson_and_spearman():
    rng = np.random.default_rng(2)
    a = rng.normal(size=500)
    b = a + rng.normal(size=500)
    assert pearson(a, b) == pytest.approx(np.corrcoef(a, b)[0, 1])
    ranks = lambda v: np.argsort(np.argsort(v))  # noqa: E731 (no ties in continuous data)
    assert spearman(a, b) == pytest.approx(np.corrcoef(ranks(a), ranks(b))[0, 1])
    assert spearman(a, np.exp(a)) == pytest.approx(1.0)
