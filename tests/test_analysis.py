"""The paper's analysis (glassdist.fields.analysis) on synthetic fields with known correlation lengths
and known correlations, and the summaries (Tables IV, V, S1, S2, Fig. 8) on hand-made arrays."""

import numpy as np
import pytest

from glassdist.fields import analysis
from glassdist.structure import indicators as registry
from glassdist.dynamics.crd import propensity_at_delta
from glassdist.fields.coarse import coarse_grain
from glassdist.fields.correlation import spatial_correlation

RHO = 1.2


def particles(n, seed=0, dim=2):
    rng = np.random.default_rng(seed)
    L = (n / RHO) ** (1 / dim)
    return rng, rng.uniform(0, L, (n, dim)), L


def expected_crossing(xi, level=1 / np.e, h=0.02):
    """1/e crossing of the autocorrelation of white noise smoothed by eq. 7's kernel
    exp(-(r/xi)^2), r < 2 xi, in the continuum limit (2D FFT on a fine grid)."""
    n = int(np.ceil(8 * xi / h))
    x = (np.arange(n) - n // 2) * h
    r = np.hypot(*np.meshgrid(x, x, indexing="ij"))
    kernel = np.where(r < 2 * xi, np.exp(-((r / xi) ** 2)), 0.0)
    auto = np.real(np.fft.ifft2(np.abs(np.fft.fft2(kernel)) ** 2))
    profile = auto[0, : n // 2] / auto[0, 0]
    k = np.argmax(profile <= level)
    return x[n // 2 + k - 1] + (level - profile[k - 1]) / (profile[k] - profile[k - 1]) * h


@pytest.mark.parametrize("xi", [2.0, 3.0])
def test_correlation_length_of_coarse_grained_noise(xi):
    rng, pos, L = particles(4000, seed=int(xi))
    field = coarse_grain(pos, rng.normal(size=len(pos)), L, xi)
    c, length = analysis.correlation_length(pos, field, L, r_max=10.0, bins=50)
    assert c[0] == 1 and c.shape == (51,)
    np.testing.assert_allclose(
        analysis.correlation_radii(10.0, 50), spatial_correlation(pos, field, L, r_max=10.0, bins=50)[0]
    )
    assert length == pytest.approx(expected_crossing(xi), rel=0.06)
    assert np.isnan(analysis.correlation_length(pos, field, L, r_max=0.5, bins=5)[1])


def correlated_fields(n, cov, rng):
    """(n, len(cov)) Gaussian fields with covariance ``cov``."""
    return rng.normal(size=(n, len(cov))) @ np.linalg.cholesky(np.asarray(cov)).T


def test_pair_correlations_recover_known_coefficients():
    rng, pos, L = particles(20000, seed=5)
    cov = [[1.0, -0.8, 0.4], [-0.8, 1.0, -0.5], [0.4, -0.5, 1.0]]  # Gamma, Upsilon, Theta
    fields = correlated_fields(len(pos), cov, rng)
    pairs = registry.pairs(3)
    assert pairs == [(0, 1), (0, 2), (2, 1)]  # the paper's C(Γ, Υ), C(Γ, Θ), C(Θ, Υ)
    p, s, c_r = analysis.configuration_analysis(pos, fields, L, xi=0.0, r_max=3.0, bins=6, pairs=pairs)
    want = np.array([cov[i][j] for i, j in pairs])
    np.testing.assert_allclose(p, want, atol=0.02)
    # Spearman of a bivariate normal: (6 / pi) arcsin(rho / 2)
    np.testing.assert_allclose(s, 6 / np.pi * np.arcsin(want / 2), atol=0.02)
    assert c_r.shape == (3, 7) and np.allclose(c_r[:, 0], 1.0)
    assert np.abs(c_r[:, 1:]).max() < 0.05  # white noise: uncorrelated beyond r = 0


def test_sign_convention_and_smoothing():
    rng, pos, L = particles(500, seed=1)
    x = rng.normal(size=(500, 3))
    flip = analysis.flips(["gradcam", "ttop"], ["gradcam", "voronoi", "ttop"])
    np.testing.assert_array_equal(flip, [True, False, True])
    out = analysis.smooth(pos, x, L, 2.0, flip)
    assert out.min() == 0 and out.max() == 1
    ref = analysis.smooth(pos, x, L, 2.0)
    np.testing.assert_allclose(out[:, flip], 1 - ref[:, flip])
    np.testing.assert_allclose(out[:, ~flip], ref[:, ~flip])


def synthetic_propensity(pos, L, rng, xi0, deltas_t):
    """A propensity Delta(t) (T, N) = delta(t) (1 + 0.3 z), z = normalised noise smoothed at xi0."""
    z = coarse_grain(pos, rng.normal(size=len(pos)), L, xi0)
    z = (z - z.mean()) / z.std()
    Delta_t = np.outer(deltas_t, 1 + 0.3 * z)
    return z, Delta_t, Delta_t.mean(axis=1)


def test_propensity_analysis_recovers_lengths_and_correlations():
    rng, pos, L = particles(3000, seed=7)
    xi0 = 2.5
    z, Delta_t, delta_t = synthetic_propensity(pos, L, rng, xi0, np.geomspace(0.05, 1.5, 12))
    # Gamma ~ -z (shown as 1 - Gamma), Upsilon = z buried in white noise, Theta unrelated
    fields = np.stack(
        [
            -(z + 0.5 * coarse_grain(pos, rng.normal(size=len(pos)), L, 1.0)),
            z + 2.0 * rng.normal(size=len(pos)),
            rng.normal(size=len(pos)),
        ],
        axis=1,
    )
    xi_grid = [0.0, 1.0, 2.0, 3.0, 4.0, 6.0]
    flip = analysis.flips(["gradcam"], ["gradcam", "voronoi", "ttop"])
    res = analysis.propensity_scan(
        pos, fields, delta_t, Delta_t, L, deltas=[0.3, 1.0, 3.0], xi_grid=xi_grid, flip=flip, r_max=10.0, bins=50
    )
    pearson_t, _, maps = analysis.propensity_correlations(
        pos, fields, Delta_t, L, xi_alpha=2.0, xi_Delta=2.0, flip=flip
    )
    np.testing.assert_array_equal(res.reached, [True, True, False])  # delta(t) stops at 1.5
    assert np.isnan(res.xi_Delta[2]) and np.isnan(res.scan[:, 2]).all() and np.isnan(res.Delta[2]).all()
    # Delta(delta) = delta (1 + 0.3 z): its C(r) is that of z, smoothed white noise at xi0
    np.testing.assert_allclose(res.xi_Delta[:2], expected_crossing(xi0), rtol=0.08)
    # 1 - Gamma follows Delta closely at every t > 0; Theta does not
    assert (pearson_t[0] > 0.9).all() and (np.abs(pearson_t[2]) < 0.15).all()
    # Upsilon = z + strong white noise: its best xi with the bare Delta is near xi0 (matched filter)
    c_max, k, x = analysis.best(res.scan[0])
    assert abs(xi_grid[x[1]] - xi0) <= 1.0 and c_max[1] > 0.5
    np.testing.assert_array_equal(res.xi_star[0], np.array(xi_grid, dtype=float)[x])
    assert maps.shape == (2, 3, 3000) and res.Delta.shape == (3, 2, 3000)
    assert np.nanmin(maps) == 0 and np.nanmax(maps) == 1
    # the stored map of the optimum is the indicator smoothed at xi*
    np.testing.assert_allclose(res.optimal[0, 1], analysis.smooth(pos, fields[:, 1], L, xi_grid[x[1]]))


def test_ensemble_table_orders_like_the_paper():
    rng, pos, L = particles(2000, seed=3)
    truth = coarse_grain(pos, rng.normal(size=len(pos)), L, 3.0)
    truth /= truth.std()
    e30 = [truth + 0.8 * rng.normal(size=len(pos)) for _ in range(3)]
    e100 = truth + 0.8 * np.sqrt(30 / 100) * rng.normal(size=len(pos))
    fields = np.stack(e30 + [e100])
    row, maps = analysis.ensemble_table(pos, fields, L, xi=3.0)
    corr = np.corrcoef(fields)
    assert row[0] == pytest.approx(np.mean([corr[0, 1], corr[0, 2], corr[1, 2]]))
    cg = np.stack([coarse_grain(pos, f, L, 3.0) for f in fields])
    assert row[3] == pytest.approx(np.corrcoef(fields[3], cg[3])[0, 1])
    # coarse-graining removes the sample noise: the paper's ordering (Table IV)
    assert row[1] > 0.9 > row[0] and row[4] > row[1] - 0.05 and row[3] > row[2]
    assert maps.shape == (4, 2, 2000)


def test_summary_tables():
    # Table V: max over temperatures and times, delta there
    pearson_t = np.full((2, 3, 4), np.nan)
    pearson_t[0, 0] = [0.1, 0.5, 0.7, 0.6]
    pearson_t[1, 0] = [0.2, 0.9, 0.3, 0.1]
    pearson_t[:, 1] = 0.4
    delta_t = np.array([[0.0, 0.1, 0.2, 0.3], [0.0, 0.5, 1.0, 2.0]])
    c_max, d_star = analysis.table_v(pearson_t, delta_t)
    np.testing.assert_allclose(c_max[:2], [0.9, 0.4])
    np.testing.assert_allclose(d_star[:2], [0.5, 0.0])
    assert np.isnan(c_max[2]) and np.isnan(d_star[2])
    # Table S1: maxima over (delta, xi) with and without CG
    scan = np.full((2, 3, 4, 3), np.nan)
    scan[1, 0, :, 0] = [0.1, 0.2, 0.3, 0.25]
    scan[1, 1, :, 0] = [0.1, 0.6, 0.5, 0.4]
    scan[0, 1, :, 2] = [0.3, 0.2, 0.1, 0.0]
    s1 = analysis.table_s1(scan, [0.3, 1.0, 3.0], [0.0, 2.0, 4.0, 8.0])
    np.testing.assert_allclose(s1[1, 0], [0.6, 1.0, 2.0])
    np.testing.assert_allclose(s1[0, 2], [0.3, 1.0, 0.0])
    assert np.isnan(s1[0, 0]).all() and np.isnan(s1[1, 1]).all()
    # Table S2: mean and std over valid (correctly classified) configurations only
    p = np.zeros((3, 2, 3))
    p[:, 1, 0] = [0.2, 0.4, 99.0]
    valid = np.array([[True, True], [True, True], [True, False]])
    s2 = analysis.table_s2(p, -p, valid)
    np.testing.assert_allclose(s2[1, 0], [0.3, 0.1, -0.3, 0.1])
    # Fig. 8: mean C(r), standard error and first zero crossing
    r = np.array([0.0, 1.0, 2.0, 3.0])
    c_r = np.array([[[1.0, 0.5, -0.5, 0.0]], [[1.0, 0.3, -0.1, 0.0]]])
    mean, sem, zero = analysis.mean_correlation(c_r, r)
    np.testing.assert_allclose(mean[0], [1.0, 0.4, -0.3, 0.0])
    np.testing.assert_allclose(sem[0, 1], 0.1 / np.sqrt(2))
    assert zero[0] == pytest.approx(1 + 0.4 / 0.7)


def test_propensity_analysis_ignores_outputs_not_every_run_reached():
    """propensity.until_delta leaves NaN at the outputs after the last one every run reached:
    the analysis of the reached outputs is unchanged and the others stay NaN."""
    rng, pos, L = particles(1000, seed=3)
    _, Delta_t, delta_t = synthetic_propensity(pos, L, rng, 2.0, np.geomspace(0.05, 1.5, 8))
    fields = rng.normal(size=(len(pos), 2))
    kw = dict(deltas=[0.3, 1.0, 3.0], xi_grid=[0.0, 1.0, 2.0], flip=np.array([False, False]), r_max=6.0, bins=20)
    pad = np.full((3, len(pos)), np.nan)
    cut_delta, cut_Delta = np.concatenate([delta_t, pad[:, 0]]), np.concatenate([Delta_t, pad])
    full = analysis.propensity_scan(pos, fields, delta_t, Delta_t, L, **kw)
    cut = analysis.propensity_scan(pos, fields, cut_delta, cut_Delta, L, **kw)
    np.testing.assert_array_equal(cut.reached, full.reached)
    np.testing.assert_allclose(cut.xi_Delta, full.xi_Delta)
    corr = dict(xi_alpha=2.0, xi_Delta=2.0, flip=kw["flip"])
    full_t = analysis.propensity_correlations(pos, fields, Delta_t, L, **corr)[0]
    cut_t = analysis.propensity_correlations(pos, fields, cut_Delta, L, **corr)[0]
    np.testing.assert_allclose(cut_t[:, :8], full_t)
    assert np.isnan(cut_t[:, 8:]).all()


def test_xi_rule_recovers_known_lengths_within_a_grid_step():
    """analyze.xi = "rule" on synthetic fields: xi_Delta is the 1/e length of C_Delta at delta = 1
    (known: smoothed white noise), xi_alpha the largest xi*_alpha, Fig. 6 at xi_Delta; lengths the
    data cannot resolve are reported, not clamped."""
    rng, pos, L = particles(3000, seed=11)
    xi0, r_max, bins = 2.5, 10.0, 50
    z, Delta_t, delta_t = synthetic_propensity(pos, L, rng, xi0, np.geomspace(0.05, 1.5, 12))
    fields = np.stack([z + 2.0 * rng.normal(size=len(pos)), rng.normal(size=len(pos))], axis=1)  # (N, 2)
    xi_grid = [0.0, 1.0, 2.0, 3.0, 4.0, 6.0]
    kw = dict(deltas=[0.3, 1.0, 3.0], xi_grid=xi_grid, flip=np.array([False, False]), r_max=r_max, bins=bins)
    scans = [analysis.propensity_scan(pos, fields, delta_t, Delta_t, L, **kw) for _ in range(2)]  # two "temperatures"
    xi_Delta = np.stack([s.xi_Delta for s in scans])[None]  # (C = 1, nT = 2, K = 3)
    scan = np.stack([s.scan for s in scans])[None]  # (1, 2, 2, K, X, A)
    r = analysis.correlation_radii(r_max, bins)
    choice = analysis.choose_xi(xi_Delta, scan, kw["deltas"], xi_grid, r_min=r[1], half_box=L / 2)
    assert not choice.problem and choice.rule == "rule"
    assert choice.Delta_at == 1.0 and not choice.notes
    # the 1/e length of one finite sample (N = 3000): within 8 % of the continuum value, as in
    # test_correlation_length_of_coarse_grained_noise (well inside one step of xi_grid)
    assert choice.Delta == pytest.approx(expected_crossing(xi0), rel=0.08)
    # xi*_alpha: the xi of the largest Pearson with the coarse-grained Delta over delta and xi, here
    # recomputed directly (np.corrcoef on eq. 7); Upsilon = z + noise peaks there, the unrelated Theta
    # at some xi; xi_alpha is the larger of the two (the paper: "the largest value in Table S1")
    at, _ = propensity_at_delta(delta_t, Delta_t, [0.3, 1.0])
    ref = [
        max(
            (
                (
                    np.corrcoef(
                        coarse_grain(pos, fields[:, a], L, x), coarse_grain(pos, at[k], L, scans[0].xi_Delta[k])
                    )[0, 1],
                    x,
                )
                for k in (0, 1)
                for x in xi_grid
            )
        )[1]
        for a in (0, 1)
    ]
    assert choice.alpha_star == ref and choice.alpha == max(ref) and choice.violin == choice.Delta
    # delta = 1 not reached by any run: the analysed delta closest to it, said so
    short = xi_Delta.copy()
    short[..., 1:] = np.nan
    fallback = analysis.choose_xi(short, scan, kw["deltas"], xi_grid, r_min=r[1], half_box=L / 2)
    assert fallback.Delta_at == 0.3 and "δ = 0.3" in fallback.notes[0]
    # unresolvable: beyond L/2, below the resolution of C(r), never falls to 1/e
    assert "beyond L/2" in analysis.unresolved(choice.Delta, r[1], choice.Delta / 2)
    assert "below the resolution" in analysis.unresolved(0.5 * r[1], r[1], L / 2)
    assert "does not fall" in analysis.unresolved(np.nan, r[1], L / 2)
    none = analysis.choose_xi(xi_Delta, scan, kw["deltas"], xi_grid, r_min=r[1], half_box=choice.Delta / 2)
    assert "no run resolved" in none.problem and np.isnan(none.Delta)
    # an optimum at the top of the grid may lie beyond it: noted
    coarse = analysis.choose_xi(xi_Delta, scan[..., :3, :], kw["deltas"], xi_grid[:3], r_min=r[1], half_box=L / 2)
    assert coarse.alpha == 2.0 and any("top of analyze.xi_grid" in n for n in coarse.notes)
