"""S(k), F_s(k, t) and tau_alpha (glassdist.dynamics.scattering) against known answers."""

import numpy as np
import pytest

from glassdist.dynamics.scattering import relaxation_time, self_intermediate_scattering, structure_factor


@pytest.mark.parametrize("dim", [2, 3])
def test_gaussian_displacements_give_the_gaussian_fs(dim):
    """Displacements N(0, s^2) per component (Brownian particles at time t, s^2 = 2 D t):
    F_s(k) = exp(-k^2 s^2 / 2) whatever the dimension."""
    rng = np.random.default_rng(1)
    origin = rng.uniform(0, 10, size=(200_000, dim))
    s = np.array([0.05, 0.2, 0.5])
    moved = origin + s[:, None, None] * rng.normal(size=(3, *origin.shape))
    k = 2 * np.pi
    fs = self_intermediate_scattering(np.broadcast_to(origin, moved.shape), moved, np.full(3, k))
    np.testing.assert_allclose(fs, np.exp(-0.5 * (k * s) ** 2), atol=5e-3)


def test_ballistic_free_particles():
    """Free particles with Maxwell velocities at T (mass m): F_s(k, t) = exp(-k^2 T t^2 / (2 m))."""
    rng = np.random.default_rng(2)
    T, m, k = 0.8, 1.0, 7.0
    origin = rng.uniform(0, 20, size=(100_000, 2))
    v = rng.normal(scale=np.sqrt(T / m), size=origin.shape)
    t = np.geomspace(0.01, 1.0, 12)
    fs = self_intermediate_scattering(
        np.broadcast_to(origin, (12, *origin.shape)), origin + t[:, None, None] * v, np.full(12, k)
    )
    np.testing.assert_allclose(fs, np.exp(-0.5 * k**2 * T * t**2 / m), atol=6e-3)


def test_relaxation_time_of_an_exponential_and_of_a_curve_that_never_decays():
    t = np.geomspace(0.01, 100, 40)
    tau = 3.7
    assert relaxation_time(t, np.exp(-t / tau)) == pytest.approx(tau, rel=1e-12)
    assert np.isnan(relaxation_time(t, np.full(40, 0.9)))
    # a stretched exponential (the glassy form): the 1/e time is still tau
    assert relaxation_time(t, np.exp(-((t / tau) ** 0.6))) == pytest.approx(tau, rel=0.02)


def test_structure_factor_of_a_lattice_and_of_an_ideal_gas():
    """A square lattice of spacing a: its Bragg peak at k = 2 pi / a is k* (within half a shell,
    pi / L: a shell averages vectors of |n| within 1/2), S = 0 below it; uniform random points:
    S(k) = 1 on average."""
    n, a = 24, 0.9
    grid = np.stack(np.meshgrid(np.arange(n), np.arange(n), indexing="ij"), -1).reshape(-1, 2) * a
    k, s = structure_factor(grid, n * a, 9.0)
    peak = np.argmax(s)
    half_shell = np.pi / (n * a)
    assert k[peak] == pytest.approx(2 * np.pi / a, abs=half_shell) and s[peak] > 1
    assert np.abs(s[k < 2 * np.pi / a - 0.1]).max() < 1e-8
    gas = np.random.default_rng(3).uniform(0, 30, size=(3000, 3))
    k, s = structure_factor(gas, 30.0, 6.0)
    assert abs(s.mean() - 1) < 0.05 and len(k) == int(6.0 * 30 / (2 * np.pi))
