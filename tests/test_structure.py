"""Structural indicators against independent computations: Voronoi (scipy), Tong-Tanaka
(hand-computed lattices, scipy Delaunay), g(r) (ideal gas, freud RDF), the T* fit and
LAMMPS minimisation."""

import itertools

import freud
import numpy as np
import pytest
import scipy.spatial

from glassdist import spec as specmod
from glassdist.errors import GlassdistError
from glassdist.md.minimise import minimise
from glassdist.structure.inherent import FitError, fit_t_star
from glassdist.structure.pairs import pair_blocks, periodic_pairs
from glassdist.structure.rdf import partial_rdf
from glassdist.structure.tongtanaka import ideal_angle, tong_tanaka
from glassdist.structure.voronoi import voronoi


def tiled(points, L):
    """Points (N, dim) and their 3^dim - 1 periodic images; index k maps to particle k % N."""
    dim = points.shape[1]
    shifts = np.array(list(itertools.product((0, -1, 1), repeat=dim))) * L
    return (points[None] + shifts[:, None]).reshape(-1, dim)


def random_config(n, dim, L, seed=0):
    return np.random.default_rng(seed).uniform(0, L, (n, dim))


TRIANGULAR_ROW_SPACING = np.sqrt(3) / 2  # of unit spacing


def triangular_lattice(nx, ny, b=1.0, h=TRIANGULAR_ROW_SPACING):
    """nx x ny (ny even) triangular lattice, row spacing h, spacing b along x; box (nx b, ny h)."""
    pts = np.array([[(x + 0.5 * (y % 2)) * b, y * h] for y in range(ny) for x in range(nx)])
    return pts, np.array([nx * b, ny * h])


# ---- Voronoi ---------------------------------------------------------------------------


@pytest.mark.parametrize("dim,n", [(2, 200), (3, 60)])
def test_voronoi_matches_scipy_on_periodic_images(dim, n):
    L = 8.0
    pts = random_config(n, dim, L, seed=dim)
    cells = voronoi(pts, L)
    assert cells.volumes.shape == (n,)
    assert cells.volumes.sum() == pytest.approx(L**dim, rel=1e-5)

    ref = scipy.spatial.Voronoi(tiled(pts, L))  # first n points are the central copies
    ref_vol = [scipy.spatial.ConvexHull(ref.vertices[ref.regions[ref.point_region[k]]]).volume for k in range(n)]
    np.testing.assert_allclose(cells.volumes, ref_vol, rtol=1e-4)

    # neighbours: freud (float32) may drop faces of vanishing size that scipy keeps
    ours = set(zip(cells.i.tolist(), cells.j.tolist()))
    ref_pairs, ref_big = set(), set()
    for (a, b), verts in zip(ref.ridge_points, ref.ridge_vertices):
        if min(a, b) < n:
            pair = {(int(a % n), int(b % n)), (int(b % n), int(a % n))}
            ref_pairs |= pair
            if np.ptp(ref.vertices[verts], axis=0).max() > 0.02:
                ref_big |= pair
    assert ref_big <= ours <= ref_pairs
    assert cells.counts.sum() == len(cells.i) and (np.diff(cells.i) >= 0).all()


def test_voronoi_neighbours_in_angular_order():
    L = 7.0
    pts = random_config(150, 2, L, seed=3)
    cells = voronoi(pts, L)
    angle = np.arctan2(cells.vectors[:, 1], cells.vectors[:, 0])
    same = np.diff(cells.i) == 0
    assert (np.diff(angle)[same] > 0).all()
    d = pts[cells.j] - pts[cells.i]
    np.testing.assert_allclose(cells.vectors, d - L * np.round(d / L), atol=1e-5)


# ---- Tong-Tanaka ------------------------------------------------------------------------


def test_ideal_angle_law_of_cosines():
    assert ideal_angle(1.0, 1.0, 1.0) == pytest.approx(np.pi / 3)
    assert ideal_angle(3.0, 4.0, 5.0) == pytest.approx(np.pi / 2)
    # KAM A-A-B contact: sides 0.94, 0.94, 1.0 -> angle opposite the A-A side
    assert ideal_angle(0.94, 0.94, 1.0) == pytest.approx(2 * np.arcsin(0.5 / 0.94))


def test_theta_zero_on_perfect_triangular_lattice():
    pts, box = triangular_lattice(10, 12)
    theta = tong_tanaka(pts, np.zeros(len(pts), int), box, np.array([[1.0]]))
    np.testing.assert_allclose(theta, 0.0, atol=1e-5)


def test_theta_on_stretched_lattice_by_hand():
    # stretched along x: triangles with base b = 1.1 and height sqrt(3)/2; around each particle
    # four angles alpha = atan(h / (b/2)) and two beta = pi - 2 alpha; the ideal angle is pi/3
    b, h = 1.1, np.sqrt(3) / 2
    pts, box = triangular_lattice(10, 12, b=b)
    alpha = np.arctan(h / (b / 2))
    beta = np.pi - 2 * alpha
    expected = (4 * abs(alpha - np.pi / 3) + 2 * abs(beta - np.pi / 3)) / 6
    theta = tong_tanaka(pts, np.zeros(len(pts), int), box, np.array([[1.0]]))
    np.testing.assert_allclose(theta, expected, atol=1e-5)


def test_theta_matches_delaunay_triangles_binary_mixture():
    """Independent route: the Delaunay triangles at o (scipy, periodic images) are exactly the
    triangles o-i-j of neighbours adjacent around o."""
    n, L = 300, np.sqrt(300 / 1.2)
    rng = np.random.default_rng(5)
    pts = rng.uniform(0, L, (n, 2))
    types = (np.arange(n) >= 195).astype(int)
    sigma = np.array([[1.0, 0.94], [0.94, 0.88]])
    theta = tong_tanaka(pts, types, L, sigma)

    ext = tiled(pts, L)
    tri = scipy.spatial.Delaunay(ext).simplices
    total, count = np.zeros(n), np.zeros(n)
    for o, i, j in np.concatenate([tri, tri[:, [1, 2, 0]], tri[:, [2, 0, 1]]]):
        if o >= n:
            continue
        u, v = ext[i] - ext[o], ext[j] - ext[o]
        theta1 = np.arccos(np.dot(u, v) / np.linalg.norm(u) / np.linalg.norm(v))
        to, ti, tj = types[o], types[i % n], types[j % n]
        theta2 = ideal_angle(sigma[to, ti], sigma[to, tj], sigma[ti, tj])
        total[o] += abs(theta1 - theta2)
        count[o] += 1
    np.testing.assert_allclose(theta, total / count, atol=1e-5)


def test_theta_other_dimensions_are_a_clear_error():
    with pytest.raises(GlassdistError, match="4D"):
        tong_tanaka(random_config(50, 4, 5.0), np.zeros(50, int), 5.0, np.array([[1.0]]))


# ---- pairs and g(r) ----------------------------------------------------------------------


def test_periodic_pairs_count_all_images_beyond_half_box():
    # one particle in a box of side 1: its images at distance 1 (4 of them) and sqrt(2) (4)
    pairs = periodic_pairs(np.array([[0.3, 0.6]]), 1.0, 1.5)
    np.testing.assert_allclose(np.sort(pairs.distances), [1] * 4 + [np.sqrt(2)] * 4, rtol=1e-6)
    assert (pairs.i == 0).all() and (pairs.j == 0).all()


@pytest.mark.parametrize("dim,r_max", [(2, 3.0), (3, 4.5)])
def test_pair_blocks_are_the_pairs_in_bounded_blocks(dim, r_max):
    """Blocks of consecutive i whose union is every pair (r_max > L/2 in 3D: images included)."""
    L = 8.0
    pts = random_config(300, dim, L, seed=dim)
    blocks = list(pair_blocks(pts, L, r_max, pairs_per_block=2000))
    assert len(blocks) > 5
    for a, b in zip(blocks, blocks[1:]):
        assert a.i.max() < b.i.min()

    def rows(p):
        return np.sort(np.rec.fromarrays([p.i, p.j, np.round(p.distances, 9)]))

    merged = type(blocks[0])(*(np.concatenate([getattr(b, k) for b in blocks]) for k in ("i", "j", "distances")))
    np.testing.assert_array_equal(rows(merged), rows(periodic_pairs(pts, L, r_max)))


def test_rdf_ideal_gas_is_one():
    n, L = 2000, np.sqrt(2000 / 1.2)
    types = (np.arange(n) >= 1300).astype(int)
    gs = []
    for seed in range(4):
        r, g = partial_rdf(random_config(n, 2, L, seed), types, L, r_max=5.0, bins=50)
        gs.append(g)
    g = np.mean(gs, axis=0)
    assert r.shape == (50,) and g.shape == (2, 2, 50)
    far = r > 1.0
    for a, b in [(0, 0), (0, 1), (1, 1)]:
        assert g[a, b, far].mean() == pytest.approx(1.0, abs=0.01)
        assert np.abs(g[a, b, far] - 1).max() < 0.15
    np.testing.assert_allclose(g[0, 1], g[1, 0])


def test_rdf_cross_species_matches_freud():
    n, L = 500, np.sqrt(500 / 1.2)
    pts = random_config(n, 2, L, seed=7)
    types = (np.arange(n) >= 325).astype(int)
    r, g = partial_rdf(pts, types, L, r_max=4.0, bins=40)
    box = freud.box.Box.square(L)
    p3 = box.wrap(np.c_[pts, np.zeros(n)])
    rdf = freud.density.RDF(bins=40, r_max=4.0, normalization_mode="exact")
    rdf.compute((box, p3[types == 1]), query_points=p3[types == 0])
    np.testing.assert_allclose(r, rdf.bin_centers, rtol=1e-6)
    np.testing.assert_allclose(g[0, 1], rdf.rdf, rtol=1e-4, atol=1e-6)


# ---- T* fit ------------------------------------------------------------------------------


def two_line_data(seed=0):
    """E0 = -3.0 + 0.02 T (T < 0.4) and -3.4 + 1.02 T above: T* = 0.4, plus noise."""
    rng = np.random.default_rng(seed)
    T = np.linspace(0.05, 0.8, 16)
    E = np.where(T < 0.4, -3.0 + 0.02 * T, -3.4 + 1.02 * T) + rng.normal(0, 0.002, T.size)
    return T, E


def test_t_star_automatic_recovers_crossing():
    T, E = two_line_data()
    fit = fit_t_star(T, E)
    assert fit.t_star == pytest.approx(0.4, abs=0.02)
    assert fit.low[0] == pytest.approx(0.02, abs=0.05) and fit.mid[0] == pytest.approx(1.02, abs=0.05)
    assert (fit.low_mask ^ fit.mid_mask).all()
    assert np.nanmax(np.abs(fit.residuals)) < 0.01


def test_t_star_given_regimes_and_upper_bound():
    T, E = two_line_data(1)
    T = np.r_[T, 1.0, 1.5]  # curved high-T points beyond the linear regime
    E = np.r_[E, -2.5, -2.4]
    fit = fit_t_star(T, E, low_max=0.3, mid=[0.45, 0.8])
    assert fit.t_star == pytest.approx(0.4, abs=0.02)
    assert np.isnan(fit.residuals[T > 0.8]).all()
    assert fit_t_star(T, E, upper=0.8).t_star == pytest.approx(0.4, abs=0.02)
    assert fit_t_star(T, E, mid=[0.45, 0.8]).t_star == pytest.approx(0.4, abs=0.02)


def test_t_star_without_a_kink_is_a_failed_fit():
    """E0(T) bending the wrong way (the mid-T line shallower than the low-T one): no split makes
    a kink, so the fit says it failed, why, and with which slopes; the two-line data make one."""
    assert fit_t_star(*two_line_data()).ok
    T = np.linspace(0.05, 0.8, 16)
    E = np.where(T < 0.4, -3.0 + 1.0 * T, -2.8 + 0.5 * T)
    fit = fit_t_star(T, E)
    assert not fit.ok and "not steeper" in fit.reason and "low-T slope" in fit.reason
    assert f"{fit.low[0]:.4g}" in fit.reason and f"{fit.mid[0]:.4g}" in fit.reason
    falling = fit_t_star(T, np.where(T < 0.3, -3.0, -2.95 - 0.1 * T), low_max=0.3)
    assert not falling.ok and "does not rise" in falling.reason


def test_t_star_too_few_points_is_a_fit_error():
    with pytest.raises(FitError, match="quench.snapshot_temperatures"):
        fit_t_star([0.1, 0.2, 0.3, 0.4], [1.0, 1.0, 2.0, 3.0])


# ---- LAMMPS minimisation --------------------------------------------------------------------


def tiny_spec(**sets):
    text = specmod.apply_overrides(
        specmod.preset_text("demo-kam"),
        ["system.n_particles=64", "system.counts=[42, 22]", *[f"{k}={v}" for k, v in sets.items()]],
    )
    return specmod.loads(text)


def test_minimising_a_minimum_returns_its_energy(tmp_path):
    spec = tiny_spec()
    n, L = spec.system.n_particles, spec.box_length
    side = int(np.ceil(np.sqrt(n)))
    grid = np.array(list(itertools.product(range(side), repeat=2)))[:n] * (L / side)
    pts = grid + np.random.default_rng(0).uniform(-0.05, 0.05, grid.shape)
    e1, x1 = minimise(spec, pts, spec.types, tmp_path / "a.data", input_path=tmp_path / "a.in")
    assert x1.shape == (n, 2)
    e2, x2 = minimise(spec, x1, spec.types, tmp_path / "b.data")
    assert "min_style fire" in (tmp_path / "a.in").read_text()
    assert e1 < 0
    assert e2 == pytest.approx(e1, abs=1e-8)
    d = x2 - x1
    d -= L * np.round(d / L)
    assert np.abs(d).max() < 1e-5
