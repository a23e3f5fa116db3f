"""The paper's analysis (Sec. IV, supplement I E-F, III) on particle fields: arrays in, arrays out.

Indicators alpha are the campaign's analysed indicators (glassdist.structure.indicators.analysed: Grad-CAM
Gamma first, then Voronoi Upsilon, Tong-Tanaka Theta, ...); ``fields`` arrays are (N, A) in
that order. Every field is
coarse-grained (eq. 7, :func:`glassdist.fields.coarse.coarse_grain`) and normalised to
[0, 1]; the paper's sign convention (``1 - X`` for some indicators, Figs. 1, 2, 7) is a
boolean ``flip`` per indicator, applied after normalisation. Correlation coefficients are
:func:`~glassdist.fields.correlation.pearson` and ``spearman``; C_X(r) is eq. 8
(:func:`~glassdist.fields.correlation.spatial_correlation`).

- :func:`propensity_scan`: one propensity configuration at one temperature: xi_Delta
  (Fig. 3, Table III), the xi_alpha scans with and without coarse-graining Delta (Table S1,
  Figs. S3, S8) and the fields drawn in Figs. S4-S7.
- :func:`choose_xi`: the paper's rule for the coarse-graining lengths, from every scan.
- :func:`propensity_correlations`: C_{alpha,Delta}(delta) at every output time (Figs. 5, 7,
  Table V) at the chosen lengths and the indicator maps of Figs. 1, 2.
- :func:`configuration_analysis`: one test replica: Pearson and Spearman correlations between
  indicators at xi_violin (Fig. 6, Table S2) and the bare C_alpha(r) of the glass (Fig. 8).
- :func:`ensemble_table`: Table IV from the sub-ensemble propensity fields.
- :func:`table_v`, :func:`table_s1`, :func:`table_s2`, :func:`mean_correlation`: summaries.
- :func:`composition`, :func:`gamma_variants`, :func:`variant_propensity`: the evidence behind
  Gamma (inter-member agreement, the correlations of randomised / label-shuffled / input-only
  Gamma variants, partial correlations given Gamma^0 and the local composition); intervals and
  null bands: glassdist.fields.uncertainty.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from ..constants import bin_centres
from ..dynamics.crd import propensity_at_delta
from .coarse import coarse_grain, normalise
from .correlation import first_crossing, pearson, spatial_correlation, spearman
from .uncertainty import agreement, partial_pearson, pearson_matrix


def ensemble_columns(names) -> list[str]:
    """Table IV column names for the ensembles ``names`` (eMA, eMB, eMC, eS): ē is coarse-grained,
    an eM entry is the mean over the three sub-ensembles or their pairs (paper: M = 30, S = 100)."""
    m, s = names[0][:-1], names[3]
    return [
        f"C({m}i, {m}j)",
        f"C(ē{m[1:]}i, ē{m[1:]}j)",
        f"C({m}, ē{m[1:]})",
        f"C({s}, ē{s[1:]})",
        f"C(ē{m[1:]}, ē{s[1:]})",
    ]


def flips(one_minus, names) -> np.ndarray:
    """Boolean (A,): True where the indicator is shown and correlated as 1 - X."""
    return np.array([name in one_minus for name in names])


def smooth(positions: np.ndarray, fields: np.ndarray, L, xi: float, flip=False) -> np.ndarray:
    """Coarse-grain (eq. 7) at xi, normalise to [0, 1], then 1 - X where ``flip``.

    fields: (N,) or (N, F); flip: a bool or (F,) bools. Same shape as fields.
    """
    out = normalise(coarse_grain(positions, fields, L, xi))
    return np.where(flip, 1.0 - out, out)


def correlation_length(
    positions: np.ndarray, field: np.ndarray, L, r_max: float, bins: int, level: float = 1 / np.e
) -> tuple[np.ndarray, float]:
    """C_X(r) (bins + 1,) of a field (N,) and the first r where it falls to ``level``
    (1/e: xi_Delta of Table III; 0: r_Gamma of Fig. 8); NaN if it never does within r_max."""
    r, c = spatial_correlation(positions, field, L, r_max, bins)
    return c, first_crossing(r, c, level)


def correlation_radii(r_max: float, bins: int) -> np.ndarray:
    """The r (bins + 1,) of every C_X(r) with these bins: 0, then the bin centres."""
    return np.concatenate(([0.0], bin_centres(r_max, bins)))


def _coefficients(a: np.ndarray, b: np.ndarray, fn) -> np.ndarray:
    """fn between every column of a (N, F) and b (N,) -> (F,)."""
    return np.array([fn(a[:, f], b) for f in range(a.shape[1])])


def xi_scan(smoothed: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Pearson(alpha smoothed at xi, target) for every xi: (X, A).

    smoothed (X, N, A): the indicators smoothed at each xi of the grid (:func:`smooth`);
    target (N,): the (bare or coarse-grained) propensity field.
    """
    return np.array([_coefficients(s, target, pearson) for s in smoothed])


def scan_against(smoothed: np.ndarray, Delta_maps: np.ndarray) -> np.ndarray:
    """The xi scans (2, K, X, A) of indicators smoothed at each xi (X, N, A) against the propensity
    maps (K, 2, N) [bare, coarse-grained] of each delta; NaN where a map is not finite (delta not
    reached, xi_Delta unresolved)."""
    scan = np.full((2, len(Delta_maps), *smoothed.shape[::2]), np.nan)
    for k, maps in enumerate(Delta_maps):
        for cg in (0, 1):
            if np.isfinite(maps[cg]).all():
                scan[cg, k] = xi_scan(smoothed, maps[cg])
    return scan


def best(scan: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Maximum over the leading axes of ``scan`` (K, X, A) for each indicator (last axis).

    Returns C_max (A,), and the indices k* (A,) and x* (A,) of the maximum (-1 and NaN where
    every value is NaN, e.g. a delta the runs did not reach).
    """
    k_dim, x_dim, a_dim = scan.shape
    flat = scan.reshape(k_dim * x_dim, a_dim)
    c_max = np.full(a_dim, np.nan)
    k_star = np.full(a_dim, -1)
    x_star = np.full(a_dim, -1)
    for a in range(a_dim):
        if np.isfinite(flat[:, a]).any():
            i = int(np.nanargmax(flat[:, a]))
            c_max[a], (k_star[a], x_star[a]) = flat[i, a], divmod(i, x_dim)
    return c_max, k_star, x_star


@dataclass
class PropensityScan:
    """The coarse-graining lengths of one configuration at one temperature (K deltas, X xi
    values, A indicators, B = bins + 1 radii, N particles): what the rule for xi reads.

    reached (K,): the runs reached delta_k. C_Delta_r (K, B), xi_Delta (K,): C_Delta(r) of the
    bare Delta(delta_k) and its 1/e crossing (Fig. 3, Table III; NaN: never within r_max).
    scan (2, K, X, A): Pearson of alpha(xi) with Delta(delta_k) bare [0] and coarse-grained at
    xi_Delta(delta_k) [1] (Figs. S8, S3; NaN where xi_Delta(delta_k) is not resolved:
    :func:`unresolved`). xi_star (2, A): xi of the maximum of each scan (Table S1). Maps,
    normalised and signed: Delta (K, 2, N) bare and at xi_Delta (Figs. 1-2 d-f, S4-S5);
    optimal (2, A, N) at xi_star (Figs. S6-S7 middle, bottom).
    """

    reached: np.ndarray
    C_Delta_r: np.ndarray
    xi_Delta: np.ndarray
    scan: np.ndarray
    xi_star: np.ndarray
    Delta: np.ndarray
    optimal: np.ndarray


def unresolved(length: float, r_min: float, r_max: float) -> str:
    """'' when a measured length is usable, else why not: 'not found within r = r_max' (NaN:
    C(r) never fell to the level), 'below the resolution r = r_min' (the first bin of C(r)) or
    'beyond L/2 = r_max' (a periodic box shows nothing longer)."""
    if not np.isfinite(length):
        return f"C(r) does not fall to the level within r = {r_max:.3g}"
    if length < r_min:
        return f"below the resolution of C(r) (r = {r_min:.3g})"
    if length > r_max:
        return f"beyond L/2 = {r_max:.3g}"
    return ""


def propensity_scan(
    positions: np.ndarray,
    fields: np.ndarray,
    delta_t: np.ndarray,
    Delta_t: np.ndarray,
    L,
    *,
    deltas,
    xi_grid,
    flip,
    r_max: float,
    bins: int,
) -> PropensityScan:
    """xi_Delta(delta) and the xi_alpha scans of one propensity configuration at one temperature.

    positions (N, dim): the configuration at t = 0 (the glass); fields (N, A): its bare
    indicators; delta_t (T,), Delta_t (T, N): delta(t) and the propensity at each output time.
    """
    n, a_dim = fields.shape
    k_dim = len(deltas)
    at_delta, reached = propensity_at_delta(delta_t, Delta_t, deltas)  # (K, N), (K,)
    smoothed = np.stack([smooth(positions, fields, L, xi, flip) for xi in xi_grid])  # (X, N, A)
    r = correlation_radii(r_max, bins)
    C_Delta_r = np.full((k_dim, bins + 1), np.nan)
    xi_Delta = np.full(k_dim, np.nan)
    Delta_maps = np.full((k_dim, 2, n), np.nan)
    for k in np.flatnonzero(reached):
        C_Delta_r[k], xi_Delta[k] = correlation_length(positions, at_delta[k], L, r_max, bins)
        Delta_maps[k, 0] = normalise(at_delta[k])
        if not unresolved(xi_Delta[k], r[1], min(r_max, np.min(L) / 2)):
            Delta_maps[k, 1] = smooth(positions, at_delta[k], L, xi_Delta[k])
    scan = scan_against(smoothed, Delta_maps)
    xi_star = np.full((2, a_dim), np.nan)
    optimal = np.full((2, a_dim, n), np.nan)
    for cg in (0, 1):
        _, _, x_star = best(scan[cg])
        for a in np.flatnonzero(x_star >= 0):
            xi_star[cg, a] = xi_grid[x_star[a]]
            optimal[cg, a] = smoothed[x_star[a], :, a]
    return PropensityScan(reached, C_Delta_r, xi_Delta, scan, xi_star, Delta_maps, optimal)


def propensity_correlations(
    positions: np.ndarray, fields: np.ndarray, Delta_t: np.ndarray, L, *, xi_alpha: float, xi_Delta: float, flip
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """C_{alpha,Delta} at every output time (Figs. 5, 7) with alpha at xi_alpha and Delta at the
    fixed xi_Delta: Pearson (A, T) and Spearman (A, T); and the indicator maps (2, A, N),
    normalised and signed, bare and at xi_alpha (Figs. 1-2, S6-S7 top). Shapes as
    :func:`propensity_scan`."""
    alpha = smooth(positions, fields, L, xi_alpha, flip)  # (N, A)
    Delta_cg = smooth(positions, np.asarray(Delta_t).T, L, xi_Delta)  # (N, T)
    pearson_t, spearman_t = (
        np.array([_coefficients(alpha, d, fn) for d in Delta_cg.T]).T for fn in (pearson, spearman)
    )  # (A, T) each
    maps = np.stack([np.where(flip, 1.0 - normalise(fields), normalise(fields)).T, alpha.T])
    return pearson_t, spearman_t, maps


#: The delta whose xi_Delta becomes the fixed xi_Delta of Figs. 5, 7 (the paper's Table III:
#: KAM 4.0 and ABM 3.0 are its xi_Delta(1.0)); also the delta of Table IV and Fig. 4.
PAPER_DELTA = 1.0


@dataclass
class XiChoice:
    """The coarse-graining lengths the analysis uses after the scans.

    Delta: xi_Delta of Figs. 5, 7 and Table IV; alpha: xi_alpha of Figs. 1, 2, 5, 7; violin:
    xi_alpha of Fig. 6; Delta_at: the delta whose xi_Delta gave Delta (NaN: fixed); alpha_star
    (A,): each indicator's xi*_alpha (NaN: fixed or no scan); notes: what could not be resolved
    and what was used instead, in words; problem: '' or why the rule gives no value (the analysis
    cannot go on)."""

    rule: str
    Delta: float
    alpha: float
    violin: float
    Delta_at: float = float("nan")
    alpha_star: list = None
    notes: list = None
    problem: str = ""


def choose_xi(xi_Delta: np.ndarray, scan: np.ndarray, deltas, xi_grid, r_min: float, half_box: float) -> XiChoice:
    """The paper's rule (Sec. IV B, Supp. I E) on the scans of every configuration and temperature:
    xi_Delta (C, nT, K) and scan (C, nT, 2, K, X, A) of :class:`PropensityScan`.

    - xi_Delta (fixed, Figs. 5, 7): the median over configurations and temperatures of the
      resolved xi_Delta(delta) at PAPER_DELTA, or, when no run resolved it there, at the analysed
      delta closest to it that some run resolved (said in ``notes``).
    - xi_alpha (Figs. 1, 2, 5, 7): for each indicator, xi*_alpha = the xi of the largest Pearson
      with the coarse-grained Delta over every configuration, temperature and delta (Table S1);
      then the largest xi*_alpha over the indicators (the paper: "the largest value in Table
      S1"). An optimum at the top of analyze.xi_grid may lie beyond it (said in ``notes``).
    - xi_alpha of Fig. 6: xi_Delta (OUR CHOICE: the paper gives no rule; its Table III has
      xi_alpha(Fig. 6) = xi_Delta in both systems).
    """
    deltas, xi_grid = np.asarray(deltas, dtype=float), np.asarray(xi_grid, dtype=float)
    notes, problem = [], ""
    ok = np.array([not unresolved(x, r_min, half_box) for x in xi_Delta.ravel()], bool).reshape(xi_Delta.shape)
    usable = [k for k in np.argsort(np.abs(deltas - PAPER_DELTA), kind="stable") if ok[..., k].any()]
    Delta = Delta_at = float("nan")
    if usable:
        k = usable[0]
        Delta, Delta_at = float(np.median(xi_Delta[..., k][ok[..., k]])), float(deltas[k])
        if Delta_at != PAPER_DELTA:
            notes.append(f"ξ_Δ from δ = {Delta_at:g}: no run resolved ξ_Δ at the paper's δ = {PAPER_DELTA:g}")
    else:
        problem = (
            "no run resolved ξ_Δ(δ) at any analyze.deltas (not reached, or C_Δ(r) does not fall to 1/e "
            f"between r = {r_min:.3g} and min(analyze.correlation_rmax, L/2) = {half_box:.3g})"
        )
    cg = np.moveaxis(scan[:, :, 1], -1, 0).reshape(scan.shape[-1], -1, len(xi_grid))  # (A, C nT K, X)
    alpha_star = np.full(scan.shape[-1], np.nan)
    for a, values in enumerate(cg):
        if np.isfinite(values).any():
            alpha_star[a] = xi_grid[np.unravel_index(np.nanargmax(values), values.shape)[1]]
    alpha = float(np.nanmax(alpha_star)) if np.isfinite(alpha_star).any() else float("nan")
    if np.isfinite(alpha) and alpha == xi_grid.max():
        notes.append(f"ξ_α = {alpha:g} is the top of analyze.xi_grid: the optimum may lie beyond it")
    if not np.isfinite(alpha) and not problem:
        problem = "no ξ_α scan with the coarse-grained Δ has a value"
    return XiChoice("rule", Delta, alpha, Delta, Delta_at, alpha_star.tolist(), notes, problem)


def configuration_analysis(
    positions: np.ndarray, fields: np.ndarray, L, xi: float, r_max: float, bins: int, pairs
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One configuration (N, dim) with bare indicators (N, A): Pearson (P,) and Spearman (P,)
    of the indicator ``pairs`` (P index pairs) at xi (Fig. 6, Table S2; no sign flips) and the
    bare C_alpha(r) (A, B) (Fig. 8)."""
    cg = smooth(positions, fields, L, xi)
    p = np.array([pearson(cg[:, i], cg[:, j]) for i, j in pairs])
    s = np.array([spearman(cg[:, i], cg[:, j]) for i, j in pairs])
    c_r = np.stack([spatial_correlation(positions, fields[:, a], L, r_max, bins)[1] for a in range(fields.shape[1])])
    return p, s, c_r


def ensemble_delta(delta_t: np.ndarray) -> float:
    """The delta of Table IV and Fig. 4 from the delta(t) (E, T) of the ensembles: PAPER_DELTA
    when every ensemble reached it, else the largest delta every ensemble reached."""
    reach = float(np.min(np.max(delta_t, axis=-1)))
    return PAPER_DELTA if reach >= PAPER_DELTA else reach


def ensemble_table(positions: np.ndarray, fields: np.ndarray, L, xi: float) -> tuple[np.ndarray, np.ndarray]:
    """Table IV: Pearson coefficients between the propensity fields (4, N) of the ensembles
    eMA, eMB, eMC, eS (paper: e30A, e30B, e30C, e100), bare (e) and coarse-grained at xi (cg(e)).

    Returns the five numbers of :func:`ensemble_columns` (5,) (an eM entry is the mean over the
    three sub-ensembles or their three pairs) and the fields (4, 2, N), normalised, bare
    and coarse-grained (Fig. 4).
    """
    bare = normalise(np.asarray(fields, dtype=float).T).T  # (4, N)
    cg = smooth(positions, np.asarray(fields, dtype=float).T, L, xi).T  # (4, N)
    both = np.concatenate([bare, cg])  # (8, N)
    row = ensemble_row(np.array([[pearson(a, b) for b in both] for a in both]))
    return row, np.stack([bare, cg], axis=1)


def ensemble_row(matrix: np.ndarray) -> np.ndarray:
    """The five numbers of Table IV from the Pearson matrix (..., 8, 8) of the fields [e(eMA), e(eMB),
    e(eMC), e(eS), cg(eMA), ..., cg(eS)]: (..., 5) (see :func:`ensemble_columns`)."""
    pairs, cg = ((0, 1), (0, 2), (1, 2)), 4
    return np.stack(
        [
            np.mean([matrix[..., i, j] for i, j in pairs], axis=0),
            np.mean([matrix[..., cg + i, cg + j] for i, j in pairs], axis=0),
            np.mean([matrix[..., i, cg + i] for i in range(3)], axis=0),
            matrix[..., 3, cg + 3],
            np.mean([matrix[..., cg + i, cg + 3] for i in range(3)], axis=0),
        ],
        axis=-1,
    )


def table_v(pearson_t: np.ndarray, delta_t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Table V: max over temperatures and output times of C_{alpha,Delta} and the delta there.

    pearson_t (nT, A, T), delta_t (nT, T) -> C_max (A,), delta_star (A,) (NaN if all NaN).
    """
    a_dim = pearson_t.shape[1]
    c_max, d_star = np.full(a_dim, np.nan), np.full(a_dim, np.nan)
    for a in range(a_dim):
        values = pearson_t[:, a, :]
        if np.isfinite(values).any():
            t, i = np.unravel_index(np.nanargmax(values), values.shape)
            c_max[a], d_star[a] = values[t, i], delta_t[t, i]
    return c_max, d_star


def table_s1(scan: np.ndarray, deltas, xi_grid) -> np.ndarray:
    """Table S1 of one temperature: scan (2, K, X, A) -> (2, A, 3) with [C_max, delta*, xi*]
    per indicator, with [1] and without [0] coarse-graining of Delta (NaN: no delta reached)."""
    out = np.full((2, scan.shape[-1], 3), np.nan)
    for cg in (0, 1):
        c_max, k, x = best(scan[cg])
        ok = k >= 0
        out[cg, :, 0] = c_max
        out[cg, ok, 1] = np.asarray(deltas, dtype=float)[k[ok]]
        out[cg, ok, 2] = np.asarray(xi_grid, dtype=float)[x[ok]]
    return out


def table_s2(pearson_c: np.ndarray, spearman_c: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Table S2: mean and standard deviation over the valid configurations.

    pearson_c, spearman_c (R, 2, P) [class: liquid, glass]; valid (R, 2) bool (correctly
    classified and analysed). Returns (2, P, 4): [mean P, std P, mean S, std S] per class.
    """
    out = np.full((2, pearson_c.shape[-1], 4), np.nan)
    for cls in (0, 1):
        ok = valid[:, cls]
        if ok.any():
            for col, data in enumerate((pearson_c, spearman_c)):
                out[cls, :, 2 * col] = np.nanmean(data[ok, cls], axis=0)
                out[cls, :, 2 * col + 1] = np.nanstd(data[ok, cls], axis=0)
    return out


def mean_correlation(c_r: np.ndarray, r: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fig. 8: mean (A, B) and standard error (A, B) of C_alpha(r) over configurations
    c_r (R, A, B), and the first zero crossing of each mean (A,) (r_Gamma for Gamma)."""
    if not len(c_r):
        nan = np.full(c_r.shape[1:], np.nan)
        return nan, nan.copy(), np.full(c_r.shape[1], np.nan)
    with warnings.catch_warnings():  # a bin empty in every configuration stays NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(c_r, axis=0)
        sem = np.nanstd(c_r, axis=0) / np.sqrt(len(c_r))
    return mean, sem, np.array([first_crossing(r, m, 0.0) for m in mean])


#: The window of the local composition at xi = 0, in units of the largest sigma_ii: the first
#: coordination shell (the first minimum of g(r), about 1.5 sigma in both paper systems).
FIRST_SHELL = 1.5


def composition_xi(sigma: np.ndarray, xi: float) -> float:
    """The coarse-graining length of the local composition at the analysis length xi: xi itself,
    or at xi = 0 half the first-shell radius FIRST_SHELL max(sigma_ii) (eq. 7's kernel reaches 2 xi)."""
    return xi if xi > 0 else FIRST_SHELL * float(np.max(np.diag(sigma))) / 2


def composition(positions: np.ndarray, types: np.ndarray, sigma: np.ndarray, L, xi: float) -> np.ndarray:
    """Local composition (N,): the fraction of small particles (the species of smallest sigma_ii)
    around each particle, the species indicator coarse-grained (eq. 7) at :func:`composition_xi`."""
    small = (np.asarray(types) == int(np.argmin(np.diag(sigma)))).astype(float)
    return coarse_grain(positions, small, L, composition_xi(sigma, xi))


def gamma_variants(positions: np.ndarray, fields: np.ndarray, variants: dict, comp: np.ndarray, L, xi: float) -> dict:
    """Evidence behind Gamma in one test configuration (N, dim) at the Fig. 6 length xi.

    fields (N, A): bare indicators, Gamma-bar (the consensus) first; variants: name -> bare Gamma
    fields (N, F) ("members" (N, K), and any of "randomised", "shuffled", "input"); comp (N,): the
    local composition (:func:`composition`). Returns {"agreement": mean pairwise Pearson of the
    coarse-grained members (NaN for K < 2), name: Pearson (F, A - 1) of each variant column with
    each structural indicator (all coarse-grained at xi, no sign flips, as Table S2), "partial":
    (2, A - 1) partial Pearson of Gamma-bar with each structural indicator given Gamma^0 [0] (NaN
    without "input") and given comp [1]}.
    """
    cg = smooth(positions, fields, L, xi)
    out = {"agreement": agreement(smooth(positions, variants["members"], L, xi).T)}
    smoothed = {name: smooth(positions, v, L, xi) for name, v in variants.items()}
    out.update({name: pearson_matrix(v, cg[:, 1:]) for name, v in smoothed.items()})
    given = [smoothed["input"][:, 0] if "input" in smoothed else None, comp]
    out["partial"] = np.array(
        [
            [partial_pearson(cg[:, 0], cg[:, i], z) if z is not None else np.nan for i in range(1, cg.shape[1])]
            for z in given
        ]
    )
    return out


def variant_propensity(
    positions: np.ndarray,
    gamma: np.ndarray,
    variants: dict,
    comp: np.ndarray,
    Delta_t: np.ndarray,
    L,
    *,
    xi_alpha: float,
    xi_Delta: float,
    flip: bool,
) -> dict:
    """The Gamma variants against the propensity at every output time (as
    :func:`propensity_correlations`: Gamma at xi_alpha with Gamma's sign convention ``flip``, Delta
    at xi_Delta). gamma (N,): Gamma-bar; variants: name -> (N, F) as :func:`gamma_variants`;
    comp (N,); Delta_t (T, N). Returns {name: Pearson (F, T), "partial": (2, T) partial Pearson of
    Gamma-bar with Delta given Gamma^0 [0] (NaN without "input") and given comp [1]}."""
    Delta_cg = smooth(positions, np.asarray(Delta_t).T, L, xi_Delta)  # (N, T)
    sm = {name: smooth(positions, v, L, xi_alpha, flip) for name, v in variants.items()}
    out = {name: pearson_matrix(v, Delta_cg) for name, v in sm.items()}
    g = smooth(positions, gamma, L, xi_alpha, flip)
    given = [sm["input"][:, 0] if "input" in sm else None, comp]
    out["partial"] = np.array(
        [
            [
                partial_pearson(g, d, z) if z is not None and np.isfinite(d).all() and np.ptp(d) > 0 else np.nan
                for d in Delta_cg.T
            ]
            for z in given
        ]
    )
    return out
