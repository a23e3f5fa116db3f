"""The paper's tables from stored data, each with the paper's values beside ours.

Each ``table_*(ctx)`` returns a :class:`Table` (the first column says whose row it is) or
raises :class:`~glassdist.report.context.Missing`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from ..constants import CLASSES
from . import paper_values as pv
from .context import Context, Missing, ensembles_missing


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list] = field(default_factory=list)
    note: str = ""


def fmt(x, digits: int = 3) -> str:
    """A number for a table; '-' for missing (None / NaN)."""
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "-"
    if isinstance(x, (int, np.integer)):
        return str(x)
    return f"{x:.{digits}g}"


def _paper_label(ctx: Context) -> str:
    return f"paper ({ctx.system}, N = {pv.SCALE['N']})"


def table_i(ctx: Context) -> Table:
    """Table I: model parameters of the campaign (and the paper's system it matches)."""
    s, names = ctx.spec.system, ctx.spec.system.species
    S = len(names)
    pairs = [(i, j) for i in range(S) for j in range(i, S)]
    columns = (["row"] + [f"m_{n}" for n in names] + [f"σ_{names[i]}{names[j]}" for i, j in pairs]
               + [f"ε_{names[i]}{names[j]}" for i, j in pairs] + [f"N_{n}" for n in names] + ["ρ", "r_c"])

    def row(label, masses, sigma, epsilon, counts, density, cutoff):
        return ([label] + [fmt(m) for m in masses] + [fmt(sigma[i][j]) for i, j in pairs]
                + [fmt(epsilon[i][j]) for i, j in pairs] + [str(c) for c in counts]
                + [fmt(density), f"{cutoff:g} σ_ij"])

    t = Table("Table I: model parameters", columns)
    t.rows.append(row("this campaign", s.masses, s.sigma, s.epsilon, s.counts, s.density, s.cutoff_factor))
    ref = ctx.paper(pv.TABLE_I)
    if ref:
        t.rows.append(row(_paper_label(ctx), ref["masses"], ref["sigma"], ref["epsilon"], ref["counts"],
                          ref["density"], ref["cutoff_factor"]))
    t.note = "Units: σ* = σ_AA, ε* = ε_AA, m* = m_A (KAM); σ_AB, ε_AB, m_A (ABM)."
    return t


def table_ii(ctx: Context) -> Table:
    """Table II: test accuracy per class."""
    (acc,) = ctx.need("train", "train/test_accuracy")
    names = ctx.spec.class_names
    header = ["glass (G)", "liquid (L)"] if names == CLASSES else [names[1], names[0]]
    t = Table("Table II: classification accuracy for test data", ["row", *header])
    t.rows.append(["this campaign", fmt(acc[1]), fmt(acc[0])])
    ref = ctx.paper(pv.TABLE_II) if names == CLASSES else None  # the paper's contrast is liquid/glass
    if ref:
        t.rows.append([_paper_label(ctx), fmt(ref["glass"]), fmt(ref["liquid"])])
    return t


def table_iii(ctx: Context) -> Table:
    """Table III: coarse-graining lengths (xi_Delta(delta) measured; the fixed ones from the spec)."""
    iii, a = ctx.tables["III"], ctx.spec.analyze
    columns = (["row"] + [f"ξ_Δ(δ = {d:g}) [Figs. 1-3]" for d in ctx.deltas]
               + ["ξ_Δ [Figs. 5, 7]", "ξ_α [Figs. 1, 2, 5, 7]", "ξ_α [Fig. 6]"])
    t = Table("Table III: coarse-graining length for each variable", columns)
    for c, conf in enumerate(ctx.spec.propensity.configurations):
        for i, T in enumerate(ctx.temperatures):
            xi = [fmt(x) if ok else f"not reached (max δ {iii['max_delta'][c][i]:.2g})"
                  for x, ok in zip(iii["xi_Delta"][c][i], iii["reached"][c][i])]
            t.rows.append([f"configuration {conf}, T = {T:g}"] + xi
                          + [fmt(a.xi_propensity), fmt(a.xi_structure), fmt(a.xi_violin)])
    ref = ctx.paper(pv.TABLE_III)
    if ref:
        t.rows.append([_paper_label(ctx)] + [fmt(ref["xi_Delta"].get(float(d))) for d in ctx.deltas]
                      + [fmt(ref["xi_propensity"]), fmt(ref["xi_structure"]), fmt(ref["xi_violin"])])
    t.note = ("ξ_Δ(δ): first r with C_Δ(r) = 1/e (Fig. 3), measured here; the other columns are the campaign's "
              "analyze.xi_propensity, xi_structure and xi_violin.")
    return t


def table_iv(ctx: Context) -> Table:
    """Table IV: Pearson coefficients between the propensity fields of the sub-ensembles."""
    if "IV" not in ctx.tables:
        raise Missing(ensembles_missing(ctx))
    k = ctx.ensemble_delta
    t = Table(f"Table IV: Pearson coefficients between Δ({ctx.deltas[k]:g}) of different ensembles",
              ["row"] + list(ctx.store.root["analyze"].attrs["ensemble_columns"]))
    for c, conf in enumerate(ctx.spec.propensity.configurations):
        for i, T in enumerate(ctx.temperatures):
            t.rows.append([f"configuration {conf}, T = {T:g}"] + [fmt(x) for x in ctx.tables["IV"][c][i][k]])
    ref = ctx.paper(pv.TABLE_IV)
    if ref:
        t.rows.append([_paper_label(ctx) + f", δ = {pv.FIG4_DELTA:g}"] + [fmt(x) for x in ref])
    p = ctx.spec.propensity
    t.note = (f"ē: coarse-grained at ξ_Δ = {ctx.spec.analyze.xi_propensity:g}; e{p.main_samples} entries: mean over "
              f"the disjoint sub-ensembles A, B, C of {p.main_samples} runs each, e{p.samples}: all {p.samples} runs "
              f"(paper: 30 and 100).")
    return t


def table_v(ctx: Context) -> Table:
    """Table V: maximum of C_{alpha,Delta} over temperatures and times, and delta* there."""
    v = ctx.tables["V"]
    flip = ctx.flipped
    t = Table("Table V: maximum values of correlations and their locations",
              ["row"] + [f"{'1 - ' if f else ''}{ctx.symbol(n)}: {c}" for n, f in zip(ctx.indicators, flip)
                         for c in ("C_max", "δ*")])
    for c, conf in enumerate(ctx.spec.propensity.configurations):
        t.rows.append([f"configuration {conf}"] + [fmt(v[c][j][a]) for a in range(len(ctx.indicators)) for j in (0, 1)])
    ref = ctx.paper_indicators(pv.TABLE_V)
    if ref:
        t.rows.append([_paper_label(ctx)] + [fmt(x) for n in ctx.indicators for x in ref[n]])
    t.note = ("Over every temperature and output time of the propensity runs (δ* beyond the runs' reach cannot appear). "
              + ctx.gradcam_caveat)
    return t


def table_s1(ctx: Context) -> Table:
    """Table S1: best (C_max, delta*, xi*) over the analyze.deltas and xi grid, with and
    without coarse-graining Delta."""
    s1 = ctx.tables["S1"]          # (C, nT, 2, A, 3), index 1 = with CG
    cols = ["row", "indicator"] + [f"{w}: {c}" for w in ("with CG of Δ", "without CG of Δ")
                                   for c in ("C_max", "δ*", "ξ*")]
    t = Table("Table S1: maximum correlation and optimal δ and ξ", cols)
    for c, conf in enumerate(ctx.spec.propensity.configurations):
        for i, T in enumerate(ctx.temperatures):
            for a, name in enumerate(ctx.indicators):
                t.rows.append([f"configuration {conf}, T = {T:g}", ctx.symbol(name)]
                              + [fmt(x) for cg in (1, 0) for x in s1[c][i][cg][a]])
    ref = ctx.paper_indicators(pv.TABLE_S1)
    if ref:
        for name in ctx.indicators:
            t.rows.append([_paper_label(ctx), ctx.symbol(name)] + [fmt(x) for w in ("cg", "bare") for x in ref[w][name]])
    t.note = f"δ among {', '.join(f'{d:g}' for d in ctx.deltas)} (reached ones only); ξ among analyze.xi_grid."
    return t


def table_s2(ctx: Context) -> Table:
    """Table S2: mean ± std of the indicator correlations, Pearson (Spearman)."""
    s2, counts = ctx.tables["S2"], ctx.tables["S2_counts"]
    pair_names = [f"C({ctx.symbol(ctx.indicators[i])}, {ctx.symbol(ctx.indicators[j])})" for i, j in ctx.pairs]
    t = Table("Table S2: correlation coefficients between different structural indicators",
              ["row", "class"] + pair_names)

    def cell(v):
        return f"{fmt(v[0])} ± {fmt(v[1], 2)} ({fmt(v[2])} ± {fmt(v[3], 2)})"

    for cls in (1, 0):
        name = ctx.spec.class_names[cls]
        t.rows.append([f"this campaign ({counts[cls]} configurations)", name] + [cell(v) for v in s2[cls]])
        ref = ctx.paper_indicators(pv.TABLE_S2) if ctx.spec.class_names == CLASSES else None
        if ref:
            t.rows.append([_paper_label(ctx), name] + [cell(v) for v in ref[name]])
    t.note = (f"Pearson mean ± std (Spearman mean ± std) over test configurations at ξ = "
              f"{ctx.spec.analyze.xi_violin:g}; {ctx.tables['misclassified']} misclassified configuration(s) excluded. "
              + ctx.gradcam_caveat)
    return t


def table_glassbench(ctx: Context) -> Table:
    """GlassBench layout (glassdist.glassbench): Pearson (Spearman) between each signed bare indicator
    and the propensity per output time, per species and for all particles, propensity bare and
    coarse-grained; the mean over the propensity configurations."""
    pearson, spearman, times = ctx.need("analyze", "analyze/glassbench/pearson", "analyze/glassbench/spearman",
                                        "propensity/times")
    axes = ctx.store.root["analyze"].attrs["glassbench"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN: a time before any motion
        p, s = np.nanmean(pearson, axis=0), np.nanmean(spearman, axis=0)        # (nT, A, 2, G, T)
    t = Table("GlassBench-style correlations: Pearson (Spearman) of indicator and propensity per time and species",
              ["T", "indicator", "propensity", "particles"] + [f"t = {x:.3g}" for x in times])
    for k, T in enumerate(ctx.temperatures):
        for a, name in enumerate(ctx.indicators):
            for kind, label in enumerate(axes["propensity"]):
                for g, group in enumerate(axes["groups"]):
                    t.rows.append([f"{T:g}", ctx.label(name, ctx.flipped[a]), label, group]
                                  + [f"{fmt(p[k, a, kind, g, j])} ({fmt(s[k, a, kind, g, j])})"
                                     for j in range(len(times))])
    t.note = (f"Indicators bare, with the paper's sign (so positive = predicts mobility); propensity Δ_i(t) bare "
              f"and coarse-grained at ξ = {axes['xi']:g}; mean over {pearson.shape[0]} propensity configuration(s). "
              "Compare with published predictors at the same t/τ_α and species (Jung et al., GlassBench).")
    return t
