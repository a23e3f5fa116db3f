"""Gridization M and its inverse M^-1 against brute-force minimum-image evaluations."""

import numpy as np
import pytest

from glassdist.structure import grid as g

SIGMA_II = np.array([1.0, 0.88])


def brute_kernels(positions, types, L, n_grid, sigma_ii, cutoff_factor=2.5):
    """f(|r_i - r_kl|) of eq. S2 by a dense loop, minimum image; shape (N, n_grid**dim)."""
    n, dim = positions.shape
    a = L / (0.64 * n) ** (1 / dim)
    axes = [(np.arange(n_grid) + 0.5) * L / n_grid] * dim
    points = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, dim)
    out = np.zeros((n, len(points)))
    for i, (x, t) in enumerate(zip(positions, types)):
        d = points - x
        d -= L * np.round(d / L)
        r = np.linalg.norm(d, axis=1)
        inside = r < cutoff_factor * sigma_ii[t]
        out[i, inside] = np.exp(-(r[inside] ** 2) / (a * sigma_ii[t]) ** 2)
    return out


def brute_image(positions, types, L, n_grid, sigma_ii):
    dim = positions.shape[1]
    return brute_kernels(positions, types, L, n_grid, sigma_ii).sum(0).reshape((n_grid,) * dim)


@pytest.mark.parametrize("dim", [2, 3])
def test_single_particle_image_is_the_kernel(dim):
    L, n_grid = 10.0, 20
    rng = np.random.default_rng(1)
    x = rng.uniform(0, L, (1, dim))
    rho = g.gridize(x, [1], L, n_grid, SIGMA_II)
    assert np.allclose(rho, brute_image(x, [1], L, n_grid, SIGMA_II), atol=1e-14)
    assert rho.max() > 0.5 and (rho == 0).mean() > 0.5  # a real bump and a real cutoff


@pytest.mark.parametrize("edge", [0.0, 1e-9, 10.0 - 1e-9])
def test_periodic_wrap_at_the_box_edge(edge):
    L, n_grid = 10.0, 25
    x = np.array([[edge, 3.3]])
    rho = g.gridize(x, [0], L, n_grid, SIGMA_II)
    assert np.allclose(rho, brute_image(x, [0], L, n_grid, SIGMA_II), atol=1e-12)
    assert rho[0].sum() > 0 and rho[-1].sum() > 0  # the bump wraps round
    # unwrapped positions (images of the same point) give the same image
    assert np.allclose(g.gridize(x + [[L, -2 * L]], [0], L, n_grid, SIGMA_II), rho, atol=1e-12)


def test_translation_by_one_cell_rolls_the_image():
    L, n_grid, rng = 12.0, 24, np.random.default_rng(2)
    x, t = rng.uniform(0, L, (30, 2)), rng.integers(0, 2, 30)
    rho = g.gridize(x, t, L, n_grid, SIGMA_II)
    shifted = g.gridize(x + [L / n_grid, 0], t, L, n_grid, SIGMA_II)
    assert np.allclose(shifted, np.roll(rho, 1, axis=0), atol=1e-12)


@pytest.mark.parametrize("dim,n,n_grid", [(2, 300, 24), (3, 400, 10)])
def test_many_particles_match_brute_force(dim, n, n_grid):
    rng = np.random.default_rng(3)
    L = (n / 1.2) ** (1 / dim)
    x, t = rng.uniform(0, L, (n, dim)), rng.integers(0, 2, n)
    assert np.allclose(g.gridize(x, t, L, n_grid, SIGMA_II), brute_image(x, t, L, n_grid, SIGMA_II), atol=1e-12)


@pytest.mark.parametrize("dim,n,n_grid", [(2, 500, 32), (3, 300, 12)])
def test_inverse_conserves_the_total(dim, n, n_grid):
    rng = np.random.default_rng(4)
    L = (n / 1.2) ** (1 / dim)
    for _ in range(3):
        x, t = rng.uniform(0, L, (n, dim)), rng.integers(0, 2, n)
        field = rng.normal(size=(n_grid,) * dim)
        gamma = g.to_particles(field, x, t, L, SIGMA_II)
        assert gamma.shape == (n,)
        assert np.isclose(gamma.sum(), field.sum(), rtol=1e-10, atol=1e-10)


def test_inverse_is_eq_s4():
    """Gamma_i = sum_kl L_kl f(|r_i - r_kl|) / rho_kl, one particle at a time."""
    rng, L, n_grid = np.random.default_rng(5), 8.0, 16
    x, t = rng.uniform(0, L, (40, 2)), rng.integers(0, 2, 40)
    field = rng.uniform(size=(n_grid, n_grid))
    f = brute_kernels(x, t, L, n_grid, SIGMA_II)
    expected = [(field.ravel() * f[i] / f.sum(0)).sum() for i in range(len(x))]
    assert np.allclose(g.to_particles(field, x, t, L, SIGMA_II), expected, rtol=1e-10)


def test_kernel_matrix_in_chunks_is_the_same(monkeypatch):
    """Particles are processed in chunks (bounded memory at large N): the result does not change."""
    from glassdist.structure import grid as gridmod

    rng = np.random.default_rng(4)
    L = (300 / 1.2) ** (1 / 3)
    x, t = rng.uniform(0, L, (300, 3)), rng.integers(0, 2, 300)
    whole = gridmod.kernel_matrix(x, t, L, 10, [1.0, 0.88])
    monkeypatch.setattr(gridmod, "STENCIL_ENTRIES", 5000)  # ~4 particles per chunk
    chunked = gridmod.kernel_matrix(x, t, L, 10, [1.0, 0.88])
    assert (whole != chunked).nnz == 0 and whole.nnz > 0
