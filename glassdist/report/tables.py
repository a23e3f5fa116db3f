"""The paper's tables from stored data, each with the paper's values beside ours.

Each ``table_*(ctx)`` returns a :class:`Table` (the first column says whose row it is) or
raises :class:`~glassdist.report.context.Missing`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from ..fields.analysis import PAPER_DELTA
from ..constants import CLASSES
from . import paper_values as pv
from .context import Context, Missing, ensembles_missing, not_reached


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list] = field(default_factory=list)
    note: str = ""


INTERVALS_NOTE = (
    "Intervals: 95 %, percentile bootstrap (analyze.bootstrap resamples) over configurations, or over "
    "spatial blocks where a value comes from one configuration ('-': fewer than two configurations or "
    "blocks); null band: 2.5-97.5 % of the same statistic with one field periodically shifted "
    "(analyze.null_samples shifts): a value inside it is what a field of the same smoothness without "
    "information gives. "
)


def band(pair) -> str:
    """'[low, high]' of an interval; '-' when it was not computed."""
    return "-" if pair is None or None in pair else f"[{fmt(pair[0])}, {fmt(pair[1])}]"


DEPARTURES_NOTE = (
    "Where this campaign departs from the paper's protocol, and which departures are known to "
    "move the Γ correlations: the departure table, first section of this report."
)


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
    columns = (
        ["row"]
        + [f"m_{n}" for n in names]
        + [f"σ_{names[i]}{names[j]}" for i, j in pairs]
        + [f"ε_{names[i]}{names[j]}" for i, j in pairs]
        + [f"N_{n}" for n in names]
        + ["ρ", "r_c"]
    )

    def row(label, masses, sigma, epsilon, counts, density, cutoff):
        return (
            [label]
            + [fmt(m) for m in masses]
            + [fmt(sigma[i][j]) for i, j in pairs]
            + [fmt(epsilon[i][j]) for i, j in pairs]
            + [str(c) for c in counts]
            + [fmt(density), f"{cutoff:g} σ_ij"]
        )

    t = Table("Table I: model parameters", columns)
    t.rows.append(row("this campaign", s.masses, s.sigma, s.epsilon, s.counts, s.density, s.cutoff_factor))
    ref = ctx.paper(pv.TABLE_I)
    if ref:
        t.rows.append(
            row(
                _paper_label(ctx),
                ref["masses"],
                ref["sigma"],
                ref["epsilon"],
                ref["counts"],
                ref["density"],
                ref["cutoff_factor"],
            )
        )
    t.note = "Units: σ* = σ_AA, ε* = ε_AA, m* = m_A (KAM); σ_AB, ε_AB, m_A (ABM)."
    return t


def accuracy_interval(accuracy: float, n: int) -> tuple[float, float]:
    """95 % Clopper-Pearson (exact binomial) interval of an accuracy measured on n configurations."""
    from scipy.stats import binomtest

    ci = binomtest(int(round(accuracy * n)), n).proportion_ci(confidence_level=0.95, method="exact")
    return ci.low, ci.high


def table_ii(ctx: Context) -> Table:
    """Table II: test accuracy per class of the K members (mean ± std), of their consensus
    (argmax of the member-mean softmax, with its 95 % Clopper-Pearson interval) and of the
    label-shuffled control (chance, 0.5, when the networks learn from the labels)."""
    acc, consensus, counts = ctx.need("train", "train/test_accuracy", "train/consensus_accuracy", "train/test_counts")
    names = ctx.spec.class_names
    header = ["glass (G)", "liquid (L)"] if names == CLASSES else [names[1], names[0]]
    order, K = (1, 0), len(acc)
    t = Table("Table II: classification accuracy for test data", ["row", *header])

    def with_interval(a, c) -> str:
        return (
            f"{fmt(a)} [{', '.join(fmt(x) for x in accuracy_interval(a, int(counts[c])))}]"
            if np.isfinite(a) and counts[c]
            else fmt(a)
        )

    spread = np.std(acc, axis=0, ddof=1) if K > 1 else np.full(2, np.nan)
    t.rows.append(
        [f"members (K = {K}): mean ± std"] + [f"{fmt(acc[:, c].mean())} ± {fmt(spread[c], 2)}" for c in order]
    )
    t.rows.append([f"consensus of the {K} members"] + [with_interval(consensus[c], c) for c in order])
    if "train/shuffled_accuracy" in ctx.store.root:
        (shuffled,) = ctx.need("train", "train/shuffled_accuracy")
        t.rows.append(["label-shuffled control"] + [with_interval(shuffled[c], c) for c in order])
    ref = ctx.paper(pv.TABLE_II) if names == CLASSES else None  # the paper's contrast is liquid/glass
    if ref:
        t.rows.append([_paper_label(ctx), fmt(ref["glass"]), fmt(ref["liquid"])])
    t.note = (
        f"Test configurations: {int(counts[1])} {names[1]}, {int(counts[0])} {names[0]}. Members differ in "
        "initial weights and data order (train.ensemble); std over members (ddof = 1). Brackets: 95 % "
        "Clopper-Pearson interval. The label-shuffled control is trained on permuted labels and tested "
        "against the true ones: near 0.5 when the members' accuracy comes from the labels."
    )
    return t


def table_iii(ctx: Context) -> Table:
    """Table III: coarse-graining lengths: xi_Delta(delta) measured per run, the lengths the
    analysis used (derived by the paper's rule, or fixed) and r_Gamma (Fig. 8), beside the paper's."""
    iii = ctx.tables["III"]
    xi = iii["xi"]
    columns = (
        ["row"]
        + [f"ξ_Δ(δ = {d:g}) [Figs. 1-3]" for d in ctx.deltas]
        + ["ξ_Δ [Figs. 5, 7]", "ξ_α [Figs. 1, 2, 5, 7]", "ξ_α [Fig. 6]", "r_Γ [Fig. 8]"]
    )
    t = Table("Table III: coarse-graining length for each variable", columns)
    for c, conf in enumerate(ctx.spec.propensity.configurations):
        for i, T in enumerate(ctx.temperatures):
            cells = [
                fmt(x) + (f" ({why})" if why else "") if ok else not_reached(d, iii["max_delta"][c][i])
                for d, x, ok, why in zip(
                    ctx.deltas, iii["xi_Delta"][c][i], iii["reached"][c][i], iii["unresolved"][c][i]
                )
            ]
            t.rows.append([f"configuration {conf}, T = {T:.4g}"] + cells + ["", "", "", ""])
    if "III_ci" in ctx.tables:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a delta no run resolved
            mean = np.nanmean(
                np.array(
                    [
                        [
                            [np.nan if x is None or why else x for x, why in zip(row, whys)]
                            for row, whys in zip(conf, unres)
                        ]
                        for conf, unres in zip(iii["xi_Delta"], iii["unresolved"])
                    ],
                    dtype=float,
                ).reshape(-1, len(ctx.deltas)),
                axis=0,
            )
        t.rows.append(
            ["mean over runs [95 % interval over configurations and T]"]
            + [f"{fmt(m)} {band(b)}" for m, b in zip(mean, ctx.tables["III_ci"])]
            + ["", "", "", ""]
        )
    derived = xi["rule"] == "rule"
    r_gamma = ctx.tables["r_alpha"][0] if ctx.tables["r_alpha"] else None
    t.rows.append(
        [f"this campaign ({'derived by the paper' + chr(39) + 's rule' if derived else 'fixed: analyze.xi'})"]
        + [""] * len(ctx.deltas)
        + [
            fmt(xi["Delta"]) + (f" (from δ = {xi['Delta_at']:g})" if derived else ""),
            fmt(xi["alpha"]),
            fmt(xi["violin"]),
            fmt(r_gamma)
            + (f" ({iii['r_Gamma_unresolved']})" if iii["r_Gamma_unresolved"] else "")
            + _members_range(ctx.tables.get("r_Gamma_members")),
        ]
    )
    ref = ctx.paper(pv.TABLE_III)
    if ref:
        t.rows.append(
            [_paper_label(ctx)]
            + [fmt(ref["xi_Delta"].get(float(d))) for d in ctx.deltas]
            + [
                fmt(ref["xi_propensity"]),
                fmt(ref["xi_structure"]),
                fmt(ref["xi_violin"]),
                "-".join(f"{r:g}" for r in pv.R_GAMMA),
            ]
        )
    stars = ", ".join(f"{ctx.symbol(n)} {fmt(x)}" for n, x in zip(ctx.indicators, xi["alpha_star"]))
    rule = (
        (
            'Derived (analyze.xi = "rule", docs/physics.md): ξ_Δ(δ) is the first r with C_Δ(r) = 1/e (Fig. 3); '
            f"ξ_Δ of Figs. 5, 7 its median over runs at δ = {PAPER_DELTA:g} (or the analysed δ closest to it); "
            f"ξ_α the largest ξ*_α (Table S1 with coarse-grained Δ: {stars}); Fig. 6 at ξ_Δ; r_Γ the first zero "
            "of the mean C_Γ(r). " + " ".join(xi["notes"])
        )
        if derived
        else "The lengths of Figs. 5-7 and Table IV are the campaign's fixed analyze.xi; ξ_Δ(δ) is measured."
    )
    t.note = rule + " A length in parentheses could not be resolved and is not used."
    return t


def _span(values) -> str:
    """'a to b' of the finite values (one: 'a'); '-' when none is."""
    found = [x for x in values if x is not None and np.isfinite(x)]
    if not found:
        return "-"
    low, high = min(found), max(found)
    return fmt(low) if low == high else f"{fmt(low)} to {fmt(high)}"


def _members_range(values) -> str:
    """' (members a to b)' for the per-member values of a Γ statistic (None: not resolved); '' for one member."""
    found = [x for x in values or [] if x is not None]
    if len(values or []) < 2 or not found:
        return ""
    return f" (members {_span(found)}" + (
        f", {len(values) - len(found)} unresolved)" if len(found) < len(values) else ")"
    )


def table_hold(ctx: Context) -> Table:
    """The liquid hold at T_L (quench.hold_liquid): tau_alpha, k*, how many liquids were held
    10 tau_alpha, and the liquid's energy against the hold's late-time (equilibrium) energy."""
    q = ctx.spec.quench
    t = Table(
        f"Liquid hold at T_L = {q.T_liquid:g}: τ_α and the liquid's energy",
        [
            "row",
            "hold",
            "τ_α (median, min-max)",
            "k*",
            "replicas held ≥ 10 τ_α",
            "E_L after the hold",
            "E at the hold's second half (equilibrium)",
            "E as the cooling reaches T_L",
        ],
    )
    if not q.hold_liquid:
        t.note = (
            "quench.hold_liquid = 0: every liquid is saved as the cooling passes T_L (its energy lags the "
            "equilibrium value at T_L; no τ_α measured)."
        )
        return t
    pe, hold_pe, tau, k, held = ctx.need(
        "quench", "quench/pe", "quench/hold_pe", "quench/tau_alpha", "quench/k_star", "quench/liquid_held"
    )
    times = np.asarray(ctx.store.root["quench"].attrs["hold_times"])
    late = hold_pe[:, times >= times[-1] / 2]

    def mean_err(x):
        return f"{np.mean(x):.4g} ± {np.std(x, ddof=1) / np.sqrt(np.size(x)):.2g}"

    t.rows.append(
        [
            "this campaign",
            f"{q.hold_liquid:g}",
            f"{np.nanmedian(tau):.3g} ({np.nanmin(tau):.3g}-{np.nanmax(tau):.3g})",
            f"{np.median(k):.3g}",
            f"{int(held.sum())} of {len(held)}",
            mean_err(pe[:, 0]),
            mean_err(late.mean(axis=1)),
            mean_err(hold_pe[:, 0]),
        ]
    )
    t.note = (
        "τ_α: F_s(k*, t) = 1/e during the hold (origin: its start); energies per particle, mean ± standard "
        "error over replicas; the hold's second half estimates the equilibrium energy at T_L."
    )
    return t


def table_runs(ctx: Context) -> Table:
    """The isoconfigurational runs: their length, the delta they reached and whether they hit the
    step cap before ``propensity.until_delta``."""
    steps, delta, outputs, run_delta = ctx.need(
        "propensity", "propensity/steps", "propensity/delta", "propensity/run_outputs", "propensity/run_delta"
    )
    p = ctx.spec.propensity
    target = p.until_delta or None
    t = Table(
        "Propensity runs (Sec. III E): run length and δ reached",
        ["row", "runs", "steps (longest run)", "δ reached (all runs)", "runs at the step cap"],
    )
    for c, conf in enumerate(p.configurations):
        for i, T in enumerate(ctx.temperatures):
            n = int(outputs[c, i].min())
            capped = int((run_delta[c, i] < target).sum()) if target else len(run_delta[c, i])
            t.rows.append(
                [
                    f"configuration {conf}, T = {T:g}",
                    str(p.samples),
                    str(int(steps[outputs[c, i].max() - 1])),
                    fmt(delta[c, i, n - 1]),
                    f"{capped} of {p.samples}",
                ]
            )
    t.note = (
        f"Each run stops at the first output where its own δ reaches propensity.until_delta = {target:g}, "
        f"or at the cap propensity.steps = {p.steps:.3g}; δ reached: at the last output every run reached."
        if target
        else f"propensity.until_delta = 0: every run lasts propensity.steps = {p.steps:.3g} "
        "(the cap); δ reached: at the last output."
    )
    if target and (run_delta < target).any():
        t.note += f" Runs that hit the cap did not reach δ = {target:g}: raise propensity.steps to reach it."
    return t


def table_iv(ctx: Context) -> Table:
    """Table IV: Pearson coefficients between the propensity fields of the sub-ensembles at the
    paper's delta = 1, or at the largest delta all four ensembles reached (printed per row)."""
    if "IV" not in ctx.tables:
        raise Missing(ensembles_missing(ctx))
    deltas = ctx.tables["IV_delta"]
    t = Table(
        f"Table IV: Pearson coefficients between Δ(δ) of different ensembles (paper: δ = {PAPER_DELTA:g})",
        ["row", "δ"] + list(ctx.store.root["analyze"].attrs["ensemble_columns"]),
    )
    for c, conf in enumerate(ctx.spec.propensity.configurations):
        for i, T in enumerate(ctx.temperatures):
            d = deltas[c][i]
            label = (
                "-"
                if d is None
                else (f"{d:g}" if d == PAPER_DELTA else f"{d:.3g} (largest reached; paper {PAPER_DELTA:g})")
            )
            ci, null = ([None] * 5 if key not in ctx.tables else ctx.tables[key][c][i] for key in ("IV_ci", "IV_null"))
            t.rows.append(
                [f"configuration {conf}, T = {T:.4g}", label]
                + [f"{fmt(x)} {band(b)}; null {band(n)}" for x, b, n in zip(ctx.tables["IV"][c][i], ci, null)]
            )
    ref = ctx.paper(pv.TABLE_IV)
    if ref:
        t.rows.append([_paper_label(ctx), f"{PAPER_DELTA:g}"] + [fmt(x) for x in ref])
    p = ctx.spec.propensity
    t.note = (
        f"ē: coarse-grained at ξ_Δ = {ctx.xi['Delta']:g}; e{p.main_samples} entries: mean over "
        f"the disjoint sub-ensembles A, B, C of {p.main_samples} runs each, e{p.samples}: all {p.samples} runs "
        f"(paper: 30 and 100). Brackets: 95 % interval, spatial blocks of the configuration resampled "
        f"(analyze.bootstrap resamples); null: the same coefficient with its first field periodically shifted "
        f"(analyze.null_samples shifts), what two unrelated fields of the same smoothness give."
    )
    return t


def table_v(ctx: Context) -> Table:
    """Table V: maximum of C_{alpha,Delta} over temperatures and times, and delta* there."""
    v = ctx.tables["V"]
    flip = ctx.flipped
    t = Table(
        "Table V: maximum values of correlations and their locations",
        ["row"]
        + [f"{'1 - ' if f else ''}{ctx.symbol(n)}: {c}" for n, f in zip(ctx.indicators, flip) for c in ("C_max", "δ*")],
    )
    members = ctx.optional("analyze/trust/propensity/members")  # (C, nT, M, T)
    for c, conf in enumerate(ctx.spec.propensity.configurations):
        t.rows.append([f"configuration {conf}"] + [fmt(v[c][j][a]) for a in range(len(ctx.indicators)) for j in (0, 1)])
        if members is not None and members.shape[2] > 1:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # a member whose every C is NaN
                best = np.nanmax(members[c], axis=(0, 2))  # (M,)
            t.rows.append(
                [f"configuration {conf}: the {len(best)} members' C_max of Γ (min to max)", _span(best), ""]
                + [""] * (2 * len(ctx.indicators) - 2)
            )
        if "V_ci" in ctx.tables:
            t.rows.append(
                [f"configuration {conf}: 95 % interval; null band of the maximum"]
                + [
                    x
                    for a in range(len(ctx.indicators))
                    for x in (f"{band(ctx.tables['V_ci'][c][a])}; null {band(ctx.tables['V_null'][c][a])}", "")
                ]
            )
    ref = ctx.paper_indicators(pv.TABLE_V)
    if ref:
        t.rows.append([_paper_label(ctx)] + [fmt(x) for n in ctx.indicators for x in ref[n]])
    t.note = (
        "Over every temperature and output time of the propensity runs (δ* beyond the runs' reach cannot "
        "appear). Interval: spatial blocks of the configuration resampled; null band: the maximum over the same "
        "temperatures and times with the indicator periodically shifted. " + INTERVALS_NOTE + DEPARTURES_NOTE
    )
    return t


def table_s1(ctx: Context) -> Table:
    """Table S1: best (C_max, delta*, xi*) over the analyze.deltas and xi grid, with and
    without coarse-graining Delta."""
    s1 = ctx.tables["S1"]  # (C, nT, 2, A, 3), index 1 = with CG
    cols = ["row", "indicator"] + [
        f"{w}: {c}"
        for w in ("with CG of Δ", "without CG of Δ")
        for c in ("C_max", "δ*", "ξ*", "95 % interval; null band of C_max")
    ]
    ci, null = ctx.tables.get("S1_ci"), ctx.tables.get("S1_null")
    t = Table("Table S1: maximum correlation and optimal δ and ξ", cols)
    members = ctx.tables.get("S1_members")  # (C, nT, 2, M, 3)
    for c, conf in enumerate(ctx.spec.propensity.configurations):
        for i, T in enumerate(ctx.temperatures):
            for a, name in enumerate(ctx.indicators):
                t.rows.append(
                    [f"configuration {conf}, T = {T:g}", ctx.symbol(name)]
                    + [
                        x
                        for cg in (1, 0)
                        for x in [fmt(y) for y in s1[c][i][cg][a]]
                        + [f"{band(ci[c][i][cg][a])}; null {band(null[c][i][cg][a])}" if ci else "-"]
                    ]
                )
                if a == 0 and members and len(members[c][i][0]) > 1:
                    t.rows.append(
                        [
                            f"configuration {conf}, T = {T:g}",
                            f"{ctx.symbol(name)} of the {len(members[c][i][0])} members (min to max)",
                        ]
                        + [
                            x
                            for cg in (1, 0)
                            for x in [_span([m[j] for m in members[c][i][cg]]) for j in range(3)] + [""]
                        ]
                    )
    ref = ctx.paper_indicators(pv.TABLE_S1)
    if ref:
        for name in ctx.indicators:
            t.rows.append(
                [_paper_label(ctx), ctx.symbol(name)]
                + [x for w in ("cg", "bare") for x in [fmt(y) for y in ref[w][name]] + [""]]
            )
    t.note = (
        f"δ among {', '.join(f'{d:g}' for d in ctx.deltas)} (reached ones only); ξ among analyze.xi_grid. "
        "Interval: the maximum over the same (δ, ξ) grid in spatial-block resamples of the configuration; "
        "null band: that maximum with the indicator periodically shifted. " + INTERVALS_NOTE
    )
    return t


def table_s2(ctx: Context) -> Table:
    """Table S2: mean ± std of the indicator correlations, Pearson (Spearman)."""
    s2, counts = ctx.tables["S2"], ctx.tables["S2_counts"]
    pair_names = [f"C({ctx.symbol(ctx.indicators[i])}, {ctx.symbol(ctx.indicators[j])})" for i, j in ctx.pairs]
    t = Table(
        "Table S2: correlation coefficients between different structural indicators", ["row", "class"] + pair_names
    )

    def cell(v):
        return f"{fmt(v[0])} ± {fmt(v[1], 2)} ({fmt(v[2])} ± {fmt(v[3], 2)})"

    for cls in (1, 0):
        name = ctx.spec.class_names[cls]
        t.rows.append([f"this campaign ({counts[cls]} configurations)", name] + [cell(v) for v in s2[cls]])
        spread = ctx.member_means(cls)  # (M, I) or None
        if spread is not None:
            t.rows.append(
                [f"Γ of each of the {len(spread)} members: mean (min to max)", name]
                + [_span(spread[:, j - 1]) if i == 0 else "" for i, j in ctx.pairs]
            )
        if "S2_ci" in ctx.tables:
            t.rows.append(
                ["95 % interval of the mean; null band", name]
                + [
                    f"{band(ci)}; null {band(null)}"
                    for ci, null in zip(ctx.tables["S2_ci"][cls], ctx.tables["S2_null"][cls])
                ]
            )
        ref = ctx.paper_indicators(pv.TABLE_S2) if ctx.spec.class_names == CLASSES else None
        if ref:
            t.rows.append([_paper_label(ctx), name] + [cell(v) for v in ref[name]])
    t.note = (
        f"Pearson mean ± std (Spearman mean ± std) over test configurations at ξ = "
        f"{ctx.xi['violin']:g}; {ctx.tables['misclassified']} misclassified configuration(s) excluded. "
        + INTERVALS_NOTE
        + DEPARTURES_NOTE
    )
    return t


def table_glassbench(ctx: Context) -> Table:
    """GlassBench layout (glassdist.fields.glassbench): Pearson (Spearman) between each signed bare indicator
    and the propensity per output time, per species and for all particles, propensity bare and
    coarse-grained; the mean over the propensity configurations."""
    pearson, spearman, times = ctx.need(
        "analyze", "analyze/glassbench/pearson", "analyze/glassbench/spearman", "propensity/times"
    )
    axes = ctx.store.root["analyze"].attrs["glassbench"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN: a time before any motion
        p, s = np.nanmean(pearson, axis=0), np.nanmean(spearman, axis=0)  # (nT, A, 2, G, T)
    t = Table(
        "GlassBench-style correlations: Pearson (Spearman) of indicator and propensity per time and species",
        ["T", "indicator", "propensity", "particles"] + [f"t = {x:.3g}" for x in times],
    )
    for k, T in enumerate(ctx.temperatures):
        for a, name in enumerate(ctx.indicators):
            for kind, label in enumerate(axes["propensity"]):
                for g, group in enumerate(axes["groups"]):
                    t.rows.append(
                        [f"{T:g}", ctx.label(name, ctx.flipped[a]), label, group]
                        + [f"{fmt(p[k, a, kind, g, j])} ({fmt(s[k, a, kind, g, j])})" for j in range(len(times))]
                    )
    t.note = (
        f"Indicators bare, with the paper's sign (so positive = predicts mobility); propensity Δ_i(t) bare "
        f"and coarse-grained at ξ = {ctx.store.root['analyze'].attrs['xi'][axes['xi']]:.3g} (the chosen ξ_Δ); "
        f"mean over {pearson.shape[0]} propensity configuration(s). "
        "Compare with published predictors at the same t/τ_α and species (Jung et al., GlassBench)."
    )
    return t
