"""Cage-relative displacement and dynamic propensity (glassdist.dynamics.crd) against
hand-computed values and an independent per-particle loop."""

import dask.array as da
import numpy as np
import pytest

from glassdist.dynamics.crd import (
    cage_matrix,
    cage_relative_displacement,
    propensity,
    propensity_at_delta,
    sub_ensembles,
    voronoi_cage,
)
from glassdist.structure.voronoi import voronoi

L = 12.0


def configuration(n=200, dim=2, seed=0):
    """Random points (n, dim) with a minimum separation (no degenerate Voronoi cells)."""
    rng = np.random.default_rng(seed)
    points = []
    while len(points) < n:
        p = rng.uniform(0, L, dim)
        if all(np.linalg.norm((p - q + L / 2) % L - L / 2) > 0.5 for q in points):
            points.append(p)
    return np.array(points)


def neighbour_sets(r0):
    cells = voronoi(r0, L)
    sets = [set() for _ in range(len(r0))]
    for i, j in zip(cells.i, cells.j):
        sets[i].add(int(j))
    return sets


@pytest.mark.parametrize("dim", [2, 3])
def test_uniform_translation_gives_zero(dim):
    r0 = configuration(150 if dim == 2 else 120, dim)
    shifts = np.random.default_rng(1).normal(size=(4, 3, 1, dim)) * 5.0  # per sample and time
    crd = cage_relative_displacement(r0, r0 + shifts, voronoi_cage(r0, L))
    assert crd.shape == (4, 3, len(r0))
    np.testing.assert_allclose(crd, 0.0, atol=1e-12)


def test_single_particle_move_matches_hand_computation():
    r0 = configuration()
    sets = neighbour_sets(r0)
    cage = voronoi_cage(r0, L)
    mover, d = 17, np.array([0.3, -0.4])  # |d| = 0.5
    traj = np.broadcast_to(r0, (1, 2, *r0.shape)).copy()
    traj[0, 1, mover] += d
    crd = cage_relative_displacement(r0, traj, cage)[0]
    np.testing.assert_allclose(crd[0], 0.0)
    expected = np.zeros(len(r0))
    k = len(sets[mover])
    expected[mover] = k * 0.5 / (k + 1)  # |d - d/(k+1)|
    for j in range(len(r0)):
        if mover in sets[j]:
            expected[j] = 0.5 / (len(sets[j]) + 1)  # |0 - d/(k_j+1)|
    assert (expected > 0).sum() == k + 1  # Voronoi neighbourhood is symmetric
    np.testing.assert_allclose(crd[1], expected, rtol=1e-12, atol=1e-15)


def test_matches_independent_loop_and_dask():
    rng = np.random.default_rng(3)
    r0 = configuration(80)
    sets = neighbour_sets(r0)
    traj = r0 + rng.normal(scale=0.3, size=(5, 4, len(r0), 2)).cumsum(axis=1)
    crd = cage_relative_displacement(r0, traj, voronoi_cage(r0, L))
    ref = np.empty((5, 4, len(r0)))
    for s in range(5):
        for t in range(4):
            d = traj[s, t] - r0
            for i in range(len(r0)):
                cage = [i, *sets[i]]
                ref[s, t, i] = np.linalg.norm(d[i] - d[cage].mean(axis=0))
    np.testing.assert_allclose(crd, ref, rtol=1e-12)
    field, delta = propensity(crd)
    np.testing.assert_allclose(field, ref.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(delta, ref.mean(axis=(0, 2)), rtol=1e-12)
    # dask over (sample, time) chunks, with N split too (rechunked inside)
    lazy = cage_relative_displacement(r0, da.from_array(traj, chunks=(2, 3, 40, 2)), voronoi_cage(r0, L))
    assert isinstance(lazy, da.Array) and lazy.shape == crd.shape
    dfield, ddelta = propensity(lazy)
    np.testing.assert_allclose(dfield.compute(), field, rtol=1e-12)
    np.testing.assert_allclose(ddelta.compute(), delta, rtol=1e-12)


def test_cage_matrix_counts_repeated_pairs_once():
    cage = cage_matrix(np.array([0, 0, 0, 1, 2]), np.array([1, 1, 2, 0, 0]), 4)
    np.testing.assert_allclose(
        cage.toarray(), [[1 / 3, 1 / 3, 1 / 3, 0], [0.5, 0.5, 0, 0], [0.5, 0, 0.5, 0], [0, 0, 0, 1]]
    )


def test_shape_mismatch_is_an_error():
    r0 = configuration(50)
    with pytest.raises(ValueError):
        cage_relative_displacement(r0, np.zeros((2, 3, 49, 2)), voronoi_cage(r0, L))


def test_propensity_at_delta_interpolates_and_flags():
    delta = np.array([0.0, 0.1, 0.4, 0.2, 1.0])  # not monotonic: the first crossing counts
    field = delta[:, None] * np.arange(1, 4)  # Delta_i(t) = i * delta(t)
    out, reached = propensity_at_delta(delta, field, [0.3, 0.05, 1.0, 1.5])
    np.testing.assert_array_equal(reached, [True, True, True, False])
    np.testing.assert_allclose(out[:3], np.array([0.3, 0.05, 1.0])[:, None] * np.arange(1, 4))
    assert np.isnan(out[3]).all()


def test_sub_ensembles_are_table_iv():
    assert sub_ensembles(89, 30) == {} and sub_ensembles(100, 0) == {}
    ens = sub_ensembles(100, 30)
    assert list(ens) == ["e30A", "e30B", "e30C", "e100"]
    assert all(len(ens[k]) == 30 for k in ("e30A", "e30B", "e30C"))
    assert len(np.unique(np.concatenate([ens["e30A"], ens["e30B"], ens["e30C"]]))) == 90
    np.testing.assert_array_equal(ens["e100"], np.arange(100))
    assert list(sub_ensembles(15, 5)) == ["e5A", "e5B", "e5C", "e15"]  # the demo's smaller ensembles
