"""Tong-Tanaka Theta in 3D (tetrahedra of mutual Voronoi neighbours) against hand-computed
lattices and an independent route: the neighbour graph from scipy's Delaunay triangulation of
the periodic images and a brute-force search of its 4-cliques."""

import itertools

import numpy as np
import pytest
import scipy.spatial

from glassdist.structure.tongtanaka import tong_tanaka
from glassdist.structure.voronoi import voronoi

KAM_CONTACT = np.array([[1.0, 0.94], [0.94, 0.88]])


def fcc(cells: int, nn: float = 1.0):
    """fcc lattice of cells^3 cubic cells (4 particles each), nearest-neighbour distance nn.
    Returns positions (4 cells^3, 3), the sublattice (0-3) of each particle and the box side."""
    c = nn * np.sqrt(2)
    basis = np.array([[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
    corners = np.array(list(np.ndindex(cells, cells, cells)), dtype=float)
    pts = ((corners[:, None, :] + basis[None]) * c).reshape(-1, 3)
    return pts + 0.1, np.tile(np.arange(4), len(corners)), cells * c


def test_theta_zero_on_fcc():
    pts, _, L = fcc(4)
    theta = tong_tanaka(pts, np.zeros(len(pts), int), L, np.array([[1.0]]))
    np.testing.assert_allclose(theta, 0.0, atol=1e-6)


@pytest.mark.parametrize("scale", [0.95, 1.1])
def test_theta_on_l12_lattice_by_hand(scale):
    """fcc with one sublattice of species B (the L1_2 structure), lattice scaled by `scale`.
    Every tetrahedral hole has one particle of each sublattice: 1 B and 3 A, i.e. three A-A and
    three A-B edges of length `scale`, so every particle has
    Theta = (3 |s - 1| + 3 |s - 0.94|) / (3 * 1 + 3 * 0.94)."""
    pts, sub, L = fcc(3, nn=scale)
    types = (sub == 0).astype(int)
    expected = (3 * abs(scale - 1.0) + 3 * abs(scale - 0.94)) / (3 + 3 * 0.94)
    theta = tong_tanaka(pts, types, L, KAM_CONTACT)
    np.testing.assert_allclose(theta, expected, atol=1e-6)


def spread_configuration(n, L, d_min, seed):
    """n points in a periodic cube with pair distances >= d_min (random sequential addition):
    liquid-like, so the Voronoi neighbour graph has no near-degenerate faces."""
    rng = np.random.default_rng(seed)
    pts = np.empty((0, 3))
    while len(pts) < n:
        x = rng.uniform(0, L, 3)
        d = pts - x
        d -= L * np.round(d / L)
        if not len(pts) or (d**2).sum(1).min() >= d_min**2:
            pts = np.vstack([pts, x])
    return pts


def face_area(vertices):
    """Area of a planar convex polygon (k, 3) with its vertices in cyclic order."""
    c = vertices.mean(0)
    return 0.5 * sum(np.linalg.norm(np.cross(p - c, q - c)) for p, q in zip(vertices, np.roll(vertices, -1, axis=0)))


def test_theta_matches_brute_force_delaunay_cliques():
    """Reference neighbours: the Delaunay edges (qhull, on the 27 periodic copies) whose dual
    Voronoi face has an area above 5e-6: voro++ (freud) merges the faces of area <~ 2e-6 (this
    configuration has two; the next smallest is 1.1e-5). Reference tetrahedra: every triple
    of neighbours of o that are mutual neighbours, found by brute force."""
    n, L = 250, (250 / 1.2) ** (1 / 3)
    pts = spread_configuration(n, L, 0.75, seed=2)
    types = (np.arange(n) >= 200).astype(int)

    shifts = np.array(list(itertools.product((0, -1, 1), repeat=3))) * L
    ext = (pts[None] + shifts[:, None]).reshape(-1, 3)  # first n: the central copies
    ref = scipy.spatial.Voronoi(ext)
    neighbours, tiny = [set() for _ in range(n)], 0
    for (u, v), face in zip(ref.ridge_points, ref.ridge_vertices):
        if min(u, v) < n:
            if face_area(ref.vertices[face]) > 5e-6:
                neighbours[u % n].add(int(v % n))
                neighbours[v % n].add(int(u % n))
            else:
                tiny += 1
    assert tiny > 0  # the configuration does exercise the vanishing faces
    # the same graph as freud's Voronoi neighbours (else the comparison below is meaningless)
    cells = voronoi(pts, L)
    assert set(zip(cells.i.tolist(), cells.j.tolist())) == {(u, v) for u in range(n) for v in neighbours[u]}

    def dist(u, v):
        d = pts[u] - pts[v]
        return np.linalg.norm(d - L * np.round(d / L))

    expected = np.zeros(n)
    for o in range(n):
        omegas = []
        for tet in itertools.combinations(sorted(neighbours[o]), 3):
            if all(q in neighbours[p] for p, q in itertools.combinations(tet, 2)):
                pairs = list(itertools.combinations((o, *tet), 2))
                ideal = np.array([KAM_CONTACT[types[u], types[v]] for u, v in pairs])
                length = np.array([dist(u, v) for u, v in pairs])
                omegas.append(np.abs(length - ideal).sum() / ideal.sum())
        expected[o] = np.mean(omegas)
    theta = tong_tanaka(pts, types, L, KAM_CONTACT, cells=cells)
    np.testing.assert_allclose(theta, expected, rtol=1e-5)
