"""The paper's figures from stored data (matplotlib, Agg). Each ``fig_*(ctx, path)`` writes one
PNG and returns its caption, or raises :class:`~glassdist.report.context.Missing`."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from ..constants import CLASSES  # noqa: E402
from ..learn.plots import history_figure  # noqa: E402
from ..fields.analysis import PAPER_DELTA  # noqa: E402
from . import paper_values as pv  # noqa: E402
from ..stages.inherent import stored_fit  # noqa: E402
from .context import Context, Missing, ensembles_missing, not_reached  # noqa: E402

CMAP = "coolwarm"  # paper: red mobile / blue immobile
MARKERS = "osD^v<>p*h"


def _save(fig, ctx: Context, path) -> None:
    """Save with the campaign's scale in a footer line."""
    fig.get_layout_engine().set(rect=(0, 0.04, 1, 0.96))
    fig.text(0.5, 0.005, ctx.scale, ha="center", va="bottom", fontsize=6, color="0.35", wrap=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


SLAB = 1.5  # particle maps of a 3D box show the particles with |z - L/2| < SLAB, seen along z


def particle_map(ax, positions: np.ndarray, values: np.ndarray, L: float, title: str) -> None:
    """Particles coloured by values in [0, 1] inside the periodic box; positions (N, dim), values
    (N,). In 3D, the slab |z - L/2| < SLAB of the box, seen along z."""
    if positions.shape[1] == 3:
        slab = np.abs(np.mod(positions[:, 2], L) - L / 2) < SLAB
        positions, values = positions[slab], None if values is None else np.asarray(values)[slab]
        title = f"{title}\n(slab |z - L/2| < {SLAB:g})"
    ax.add_patch(Rectangle((0, 0), L, L, fill=False, lw=0.8, color="k"))
    if values is None or not np.isfinite(values).any():
        ax.text(0.5 * L, 0.5 * L, "no data", ha="center", va="center", fontsize=8)
    else:
        wrapped = np.mod(positions[:, :2], L)
        size = (ax.get_window_extent().width * 72 / ax.figure.dpi / L) ** 2 * 0.7
        ax.scatter(wrapped[:, 0], wrapped[:, 1], c=values, s=size, cmap=CMAP, vmin=0, vmax=1, linewidths=0)
    ax.set(xlim=(0, L), ylim=(0, L), aspect="equal", xticks=[], yticks=[])
    ax.set_title(title, fontsize=8)


def _colorbar(fig, axes) -> None:
    fig.colorbar(plt.cm.ScalarMappable(cmap=CMAP, norm=plt.Normalize(0, 1)), ax=axes, shrink=0.7)


def _reached_text(ctx: Context, t: int, k: int) -> str:
    max_delta = ctx.tables["III"]["max_delta"][0][t]
    return f"δ = {ctx.deltas[k]:g}: {not_reached(ctx.deltas[k], max_delta)}"


def fig_maps(ctx: Context, path) -> str:
    """Figs. 1, 2: 1-Gamma (or Gamma), Upsilon, Theta at xi_alpha and Delta at three delta."""
    ind, Delta = ctx.need("analyze", "analyze/maps/indicators", "analyze/maps/Delta")
    t, L, pos = ctx.map_temperature, ctx.spec.box_length, ctx.glass_positions
    xi_Delta = ctx.tables["III"]["xi_Delta"][0][t]
    cols = max(3, len(ctx.indicators))
    fig, axes = plt.subplots(2, cols, figsize=(3 * cols, 6.2), constrained_layout=True)
    for ax in axes.flat:
        ax.set_axis_off()
    for a, (name, flip) in enumerate(zip(ctx.indicators, ctx.flipped)):
        particle_map(
            axes[0, a], pos, ind[0, t, 1, a], L, f"({chr(97 + a)}) {ctx.label(name, flip)}, ξ = {ctx.xi['alpha']:g}"
        )
    for k in range(min(3, len(ctx.deltas))):
        label, cg = f"({chr(97 + len(ctx.indicators) + k)}) Δ({ctx.deltas[k]:g})", 1
        if not ctx.tables["III"]["reached"][0][t][k]:
            label = _reached_text(ctx, t, k)
        elif xi_Delta[k] is None:  # C_Delta stays above 1/e within analyze.correlation_rmax
            label, cg = f"{label} bare: C_Δ > 1/e up to r_max", 0
        else:
            label = f"{label}, ξ_Δ = {xi_Delta[k]:.2g}"
        particle_map(axes[1, k], pos, Delta[0, t, k, cg], L, label)
    _colorbar(fig, axes)
    fig.suptitle(f"Fig. {ctx.figure_number('maps')}: glass configuration, T = {ctx.temperatures[t]:g}")
    _save(fig, ctx, path)
    return (
        "Coarse-grained, normalised indicators of the propensity configuration (glass at T_G) and its "
        f"dynamic propensity at T = {ctx.temperatures[t]:g} (the temperature whose runs reached the most, then the "
        "largest, δ)."
    )


def fig_propensity_maps(ctx: Context, path) -> str:
    """Figs. S4, S5: bare (top) and coarse-grained (bottom) Delta at three delta."""
    (Delta,) = ctx.need("analyze", "analyze/maps/Delta")
    t, L, pos = ctx.map_temperature, ctx.spec.box_length, ctx.glass_positions
    K = min(3, len(ctx.deltas))
    fig, axes = plt.subplots(2, K, figsize=(3 * K, 6.2), constrained_layout=True, squeeze=False)
    for k in range(K):
        for cg, what in enumerate(("bare", "coarse-grained")):
            reached = np.isfinite(Delta[0, t, k, 0]).any()
            particle_map(
                axes[cg, k],
                pos,
                Delta[0, t, k, cg],
                L,
                f"Δ({ctx.deltas[k]:g}) {what}" if reached else _reached_text(ctx, t, k),
            )
    _colorbar(fig, axes)
    fig.suptitle(f"Fig. {ctx.figure_number('propensity_maps')}: dynamic propensity, T = {ctx.temperatures[t]:g}")
    _save(fig, ctx, path)
    return "Bare (top) and coarse-grained at ξ_Δ(δ) (bottom) dynamic propensity."


def fig_indicator_maps(ctx: Context, path) -> str:
    """Figs. S6, S7: indicators bare, at xi* of the bare-Delta scan, at xi* of the CG-Delta scan."""
    ind, opt, xi_star = ctx.need(
        "analyze", "analyze/maps/indicators", "analyze/maps/optimal", "analyze/dynamics/xi_star"
    )
    t, L, pos = ctx.map_temperature, ctx.spec.box_length, ctx.glass_positions
    cols = max(3, len(ctx.indicators))
    fig, axes = plt.subplots(3, cols, figsize=(3 * cols, 9), constrained_layout=True)
    for ax in axes.flat:
        ax.set_axis_off()
    for a, (name, flip) in enumerate(zip(ctx.indicators, ctx.flipped)):
        lo, hi = np.nanpercentile(ind[0, t, 0, a], [1, 99])  # bare: extreme values clipped (as the paper)
        bare = np.clip((ind[0, t, 0, a] - lo) / (hi - lo), 0, 1) if hi > lo else ind[0, t, 0, a]
        particle_map(axes[0, a], pos, bare, L, f"{ctx.label(name, flip)} bare")
        for row, (cg, what) in enumerate(((0, "bare Δ"), (1, "coarse-grained Δ")), start=1):
            xi = xi_star[0, t, cg, a]
            particle_map(
                axes[row, a],
                pos,
                opt[0, t, cg, a],
                L,
                f"{ctx.label(name, flip)}, ξ* = {xi:g} (best with {what})"
                if np.isfinite(xi)
                else f"{ctx.label(name, flip)}: no δ reached",
            )
    _colorbar(fig, axes)
    fig.suptitle(f"Fig. {ctx.figure_number('indicator_maps')}: structural indicators, T = {ctx.temperatures[t]:g}")
    _save(fig, ctx, path)
    return "Top: bare; middle: ξ maximising C with the bare Δ; bottom: ξ maximising C with the coarse-grained Δ."


def fig_correlation_delta(ctx: Context, path) -> str:
    """Fig. 3: C_Delta(r) at the analyze.deltas, every temperature, and the 1/e line."""
    C, r = ctx.need("analyze", "analyze/dynamics/C_Delta_r", "analyze/structure/r")
    fig, ax = plt.subplots(figsize=(5.5, 4), constrained_layout=True)
    styles = ["-", "--", ":", "-."]
    paper = ctx.paper(pv.TABLE_III)
    for t, T in enumerate(ctx.temperatures):
        for k, d in enumerate(ctx.deltas):
            if np.isfinite(C[0, t, k]).any():
                ax.plot(r, C[0, t, k], styles[k % 4], color=f"C{t}", label=f"T = {T:g}, δ = {d:g}")
    ax.axhline(1 / np.e, color="k", ls=":", lw=0.8)
    ax.set(xlabel="r", ylabel="C_Δ(r)", title="Fig. 3: spatial correlation of the propensity")
    ax.legend(fontsize=7)
    _save(fig, ctx, path)
    ref = (
        f" Paper ({ctx.system}): ξ_Δ = " + ", ".join(f"{v:g} at δ = {d:g}" for d, v in paper["xi_Delta"].items())
        if paper
        else ""
    )
    return "C_Δ(r) of the bare propensity; ξ_Δ is where it first falls to 1/e (dotted)." + ref


def fig_ensembles(ctx: Context, path) -> str:
    """Fig. 4: bare (top) and coarse-grained (bottom) Delta of the Table IV ensembles (paper: e30A,
    e30B, e30C, e100)."""
    if "analyze/ensembles/maps" not in ctx.store.root:
        raise Missing(ensembles_missing(ctx))
    (maps,) = ctx.need("analyze", "analyze/ensembles/maps")
    t, L, pos = ctx.map_temperature, ctx.spec.box_length, ctx.glass_positions
    delta = ctx.tables["IV_delta"][0][t]
    fig, axes = plt.subplots(2, 4, figsize=(12, 6.2), constrained_layout=True)
    for e, name in enumerate(ctx.store.root["propensity/Delta_ensembles"].attrs["ensembles"]):
        for cg in (0, 1):
            particle_map(axes[cg, e], pos, maps[0, t, e, cg], L, f"{'cg ' if cg else ''}{name}")
    _colorbar(fig, axes)
    reach = "" if delta == PAPER_DELTA else f" (the largest δ all four reached; paper {PAPER_DELTA:g})"
    fig.suptitle(
        f"Fig. 4: Δ({delta:.3g}){reach} of four ensembles, T = {ctx.temperatures[t]:.4g}, ξ_Δ = {ctx.xi['Delta']:.3g}"
    )
    _save(fig, ctx, path)
    return (
        f"Bare and coarse-grained propensity of the sub-ensembles at δ = {delta:.3g}{reach} "
        f"(paper: Δ({PAPER_DELTA:g}), KAM, ξ_Δ = 4)."
    )


def _vlines(ax, ctx: Context) -> None:
    for d in ctx.deltas:
        ax.axvline(d, color="0.6", ls=":", lw=0.8)


def fig_gradcam_delta(ctx: Context, path) -> str:
    """Fig. 5: C_{Gamma,Delta}(delta) at every temperature."""
    p, delta = ctx.need("analyze", "analyze/dynamics/pearson_t", "analyze/dynamics/delta")
    flip = ctx.flipped[0]
    fig, ax = plt.subplots(figsize=(5.5, 4), constrained_layout=True)
    bands = "fig5_ci" in ctx.tables
    members = ctx.optional("analyze/trust/propensity/members")  # (C, nT, M, T)
    for t, T in enumerate(ctx.temperatures):
        ok = delta[0, t] > 0
        (line,) = ax.plot(delta[0, t, ok], p[0, t, 0, ok], MARKERS[t % len(MARKERS)] + "-", ms=4, label=f"T = {T:g}")
        if members is not None and members.shape[2] > 1:
            for m, curve in enumerate(members[0, t]):
                ax.plot(
                    delta[0, t, ok],
                    curve[ok],
                    "-",
                    color=line.get_color(),
                    lw=0.6,
                    alpha=0.6,
                    label=f"the {members.shape[2]} members" if t == 0 and m == 0 else None,
                )
        if bands:
            ci, null = (np.array(ctx.tables[k][0][t][0], dtype=float)[ok] for k in ("fig5_ci", "fig5_null"))
            ax.fill_between(delta[0, t, ok], ci[:, 0], ci[:, 1], color=line.get_color(), alpha=0.2, lw=0)
            ax.fill_between(
                delta[0, t, ok],
                null[:, 0],
                null[:, 1],
                color="0.5",
                alpha=0.15,
                lw=0,
                label="null band (shifted Γ)" if t == 0 else None,
            )
    _vlines(ax, ctx)
    paper = ctx.paper(pv.TABLE_V)
    if paper:
        c, d = paper["gradcam"]
        ax.plot([d], [c], "k*", ms=10, label=f"paper max {c:g} at δ = {d:g}")
    ax.set(
        xscale="log",
        xlabel="δ",
        ylabel=f"C({ctx.label('gradcam', flip)}, Δ)",
        title="Fig. 5: Grad-CAM vs dynamic propensity",
    )
    ax.legend(fontsize=7)
    _save(fig, ctx, path)
    return (
        f"Pearson C_Γ,Δ with Γ̄ (the members' consensus) at ξ = {ctx.xi['alpha']:.3g} and Δ at ξ_Δ = "
        f"{ctx.xi['Delta']:.3g} ({ctx.xi['rule']}); thin lines: each member's Γ; dotted: the δ of Figs. 1, 2"
        + (
            "; shaded: 95 % interval (spatial blocks of configuration 0 resampled) and, grey, the null band "
            "(Γ periodically shifted)."
            if bands
            else "."
        )
    )


def fig_indicators_delta(ctx: Context, path) -> str:
    """Fig. 7: C_{alpha,Delta}(delta) of the three indicators, every temperature."""
    p, delta = ctx.need("analyze", "analyze/dynamics/pearson_t", "analyze/dynamics/delta")
    fig, ax = plt.subplots(figsize=(5.5, 4), constrained_layout=True)
    paper = ctx.paper_indicators(pv.TABLE_V)
    members = ctx.optional("analyze/trust/propensity/members")  # (C, nT, M, T)
    for a, (name, flip) in enumerate(zip(ctx.indicators, ctx.flipped)):
        ok = delta[0] > 0
        ax.plot(delta[0][ok], p[0, :, a][ok], MARKERS[a], ms=4, color=f"C{a}", ls="none", label=ctx.label(name, flip))
        if a == 0 and members is not None and members.shape[2] > 1:
            for m in range(members.shape[2]):
                ax.plot(
                    delta[0][ok],
                    members[0, :, m][ok],
                    ".",
                    ms=2,
                    color="C0",
                    alpha=0.5,
                    label=f"each of the {members.shape[2]} members' Γ" if m == 0 else None,
                )
        if paper:
            c, d = paper[name]
            ax.plot([d], [c], "*", color=f"C{a}", ms=11, mec="k", label=f"paper max ({ctx.symbol(name)})")
    _vlines(ax, ctx)
    ax.set(xscale="log", xlabel="δ", ylabel="C(α, Δ)", title="Fig. 7: structural indicators vs propensity")
    ax.legend(fontsize=7)
    _save(fig, ctx, path)
    return (
        "All temperatures together; Γ is the members' consensus Γ̄, small dots each member's Γ; stars: the "
        "paper's maxima (Table V)."
    )


def fig_violins(ctx: Context, path) -> str:
    """Fig. 6: distributions over test configurations of the indicator correlations."""
    p, correct = ctx.need("analyze", "analyze/pairs/pearson", "gradcam/correct")
    labelled = False
    fig, ax = plt.subplots(figsize=(6, 4), constrained_layout=True)
    for cls, (name, color) in enumerate(zip(ctx.spec.class_names, ("0.75", "0.35"))):
        ok = correct[:, cls] & np.isfinite(p[:, cls]).all(axis=-1)
        pos = np.arange(len(ctx.pairs)) + (cls - 0.5) * 0.35
        data = [p[ok, cls, j] for j in range(len(ctx.pairs))]
        if ok.sum() >= 2:
            parts = ax.violinplot(
                data, positions=pos, widths=0.33, showextrema=False, quantiles=[[0.25, 0.5, 0.75]] * len(ctx.pairs)
            )
            for body in parts["bodies"]:
                body.set(facecolor=color, alpha=0.9)
            parts["cquantiles"].set(color="k", linestyle="--", linewidth=0.8)
        for x, values in zip(pos, data):
            ax.plot(np.full(len(values), x), values, ".", color="k", ms=2)
        ax.plot([], [], "s", color=color, label=f"{name} ({int(ok.sum())} configurations)")
        means = ctx.member_means(cls)  # (M, I) or None
        if means is not None:
            for j, (i, k) in enumerate(ctx.pairs):
                if i == 0:  # the pairs (Gamma, indicator k)
                    ax.plot(
                        np.full(len(means), pos[j]),
                        means[:, k - 1],
                        "D",
                        mfc="none",
                        mec="C0",
                        ms=5,
                        label=None if labelled else f"member means ({len(means)})",
                    )
                    labelled = True
    paper = ctx.paper_indicators(pv.TABLE_S2) if ctx.spec.class_names == CLASSES else None
    if paper:
        for cls, marker in ((0, "x"), (1, "+")):
            means = [row[0] for row in paper[("liquid", "glass")[cls]]]
            ax.plot(
                np.arange(len(ctx.pairs)) + (cls - 0.5) * 0.35,
                means,
                marker,
                color="r",
                ms=9,
                label=f"paper mean ({('liquid', 'glass')[cls]})",
            )
    ax.set_xticks(
        range(len(ctx.pairs)),
        [f"C({ctx.symbol(ctx.indicators[i])}, {ctx.symbol(ctx.indicators[j])})" for i, j in ctx.pairs],
    )
    ax.set(ylabel="Pearson", ylim=(-1.05, 1.05), title=f"Fig. 6: indicator correlations, ξ = {ctx.xi['violin']:.3g}")
    ax.legend(fontsize=7)
    _save(fig, ctx, path)
    return (
        "Test configurations, misclassified ones excluded; dashed lines: quartiles; dots: configurations; "
        "Γ is the members' consensus Γ̄, open diamonds: each member's mean over the same configurations."
    )


def fig_structure_correlation(ctx: Context, path) -> str:
    """Fig. 8: C_alpha(r) of the bare indicators (mean over test glasses), r_Gamma."""
    mean, sem, r = ctx.need("analyze", "analyze/structure/mean", "analyze/structure/sem", "analyze/structure/r")
    r_alpha = ctx.tables["r_alpha"]
    fig, ax = plt.subplots(figsize=(5.5, 4), constrained_layout=True)
    for a, name in enumerate(ctx.indicators):
        ax.errorbar(
            r, mean[a], yerr=sem[a], fmt=["-", "--", ":", "-."][a % 4], capsize=2, label=f"C_{ctx.symbol(name)}"
        )
    ax.axhline(0, color="k", lw=0.6)
    ax.axvspan(*pv.R_GAMMA, color="0.9", label="paper r_Γ ≈ 3-4")
    members = ctx.optional("analyze/structure/members_mean")  # (M, B)
    if members is not None and len(members) > 1:
        for m, curve in enumerate(members):
            ax.plot(
                r,
                curve,
                "-",
                color="C0",
                lw=0.6,
                alpha=0.6,
                label=f"C_Γ of the {len(members)} members" if m == 0 else None,
            )
    if r_alpha[0] is not None:
        ax.axvline(r_alpha[0], color="C0", ls=":", label=f"r_Γ = {r_alpha[0]:.2f}")
    inset = ax.inset_axes([0.5, 0.45, 0.45, 0.3])
    inset.errorbar(r, mean[0], yerr=sem[0], fmt=".", ms=3, capsize=1)
    inset.axhline(0, color="k", lw=0.6)
    inset.set(ylim=(-0.1, 0.1), xlim=(0, r[-1]))
    inset.tick_params(labelsize=6)
    ax.set(xlabel="r", ylabel="C_α(r)", title="Fig. 8: spatial correlation of the indicators")
    ax.legend(fontsize=7, loc="lower left")
    _save(fig, ctx, path)
    names = ", ".join(
        f"r_{ctx.symbol(n)} = {v:.2f}" if v is not None else f"r_{ctx.symbol(n)}: no zero within range"
        for n, v in zip(ctx.indicators, r_alpha)
    )
    spread = ctx.tables.get("r_Gamma_members") or []
    found = [x for x in spread if x is not None]
    members_text = (
        f"; the members' r_Γ: {min(found):.2f} to {max(found):.2f} ({len(found)} of {len(spread)} cross zero)"
        if len(spread) > 1 and found
        else ""
    )
    return (
        f"Mean ± standard error over correctly classified test glasses (Γ: the consensus Γ̄; thin lines: each "
        f"member's Γ); first zero crossings: {names}{members_text}."
    )


def _xi_scan(ctx: Context, path, cg: int, number: str) -> str:
    scan, xi_Delta = ctx.need("analyze", "analyze/dynamics/scan", "analyze/dynamics/xi_Delta")
    t, xi = ctx.map_temperature, np.asarray(ctx.spec.analyze.xi_grid)
    K = len(ctx.deltas)
    fig, axes = plt.subplots(1, K, figsize=(3.3 * K, 3.4), constrained_layout=True, squeeze=False, sharey=True)
    for k in range(K):
        ax = axes[0, k]
        for a, (name, flip) in enumerate(zip(ctx.indicators, ctx.flipped)):
            ax.plot(xi, scan[0, t, cg, k, :, a], MARKERS[a] + "-", ms=4, label=ctx.label(name, flip))
        reached = np.isfinite(scan[0, t, cg, k]).any()
        title = f"δ = {ctx.deltas[k]:g}" + (f", ξ_Δ = {xi_Delta[0, t, k]:.2g}" if cg and reached else "")
        if not reached:
            title = (
                _reached_text(ctx, t, k)
                if ctx.tables["III"]["reached"][0][t][k] is False
                else f"δ = {ctx.deltas[k]:g}: C_Δ > 1/e up to r_max (no ξ_Δ)"
            )
            ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center", va="center", fontsize=8)
        ax.set(xlabel="ξ_α", title=title, xlim=(xi[0], xi[-1]))
        ax.title.set_fontsize(8)
    axes[0, 0].set_ylabel("C(α, Δ)")
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(f"Fig. {number}: C(α, Δ) vs ξ_α, {'coarse-grained' if cg else 'bare'} Δ, T = {ctx.temperatures[t]:g}")
    _save(fig, ctx, path)
    return "Maxima are in Table S1."


def fig_xi_scan_cg(ctx: Context, path) -> str:
    """Fig. S3: Pearson vs xi_alpha with Delta coarse-grained at xi_Delta(delta)."""
    return _xi_scan(ctx, path, 1, "S3")


def fig_xi_scan_bare(ctx: Context, path) -> str:
    """Fig. S8: the same with the bare Delta."""
    return _xi_scan(ctx, path, 0, "S8")


def fig_energy(ctx: Context, path) -> str:
    """Fig. S9: E(T) along the cooling, E0(T) of the inherent structures and the T* fit."""
    T, E = ctx.need("quench", "quench/thermo_T", "quench/thermo_pe")
    T_in, E0 = ctx.need("inherent", "inherent/temperatures", "inherent/E0_mean")
    attrs = ctx.store.root["inherent"].attrs
    fit = stored_fit(ctx.store)
    t_star = fit.t_star
    fig, (a, b, c) = plt.subplots(1, 3, figsize=(12, 3.6), constrained_layout=True)
    for r in range(min(5, len(T))):
        a.plot(T[r], E[r], lw=0.8)
    q = ctx.spec.quench
    for ax in (a, b):
        ax.axvline(q.T_glass, color="0.3", ls=":")
        ax.axvline(q.T_liquid, color="0.7", ls=":")
    a.set(xlabel="T", ylabel="E per particle", title="(a) E(T) along the cooling")
    for ax in (b, c):
        ax.plot(T_in, E0, "o", ms=4)
        ax.set(xlabel="T", ylabel="E0 per particle")
    grid = np.linspace(0, max(attrs["mid_temperatures"] + [t_star]) * 1.1, 50)
    for line, label in ((attrs["low_line"], "low-T fit"), (attrs["mid_line"], "mid-T fit")):
        c.plot(grid, np.polyval(line, grid), ":", label=label)
    if fit.ok:
        c.axvline(t_star, color="k", lw=0.8, label=f"T* = {t_star:.3g}")
    paper = ctx.paper(pv.T_STAR)
    if paper:
        c.axvline(paper, color="r", ls="--", lw=0.8, label=f"paper T* ≈ {paper:g}")
    c.set_xlim(0, grid[-1])
    b.set_title("(b) inherent-structure energy E0(T)")
    c.set_title("(c) close-up and the T* fit")
    c.legend(fontsize=7)
    fig.suptitle("Fig. S9: potential energy along the cooling")
    _save(fig, ctx, path)
    if not fit.ok:
        return f"The T* fit FAILED: {fit.reason}; no T* is given (the lines drawn are the failed fit)."
    return f"T* = {t_star:.3g} (paper {paper:g} at cooling rate 8.33e-5)." if paper else f"T* = {t_star:.3g}."


def fig_rdf(ctx: Context, path) -> str:
    """Fig. S10: total g(r) of liquids and glasses (mean over configurations)."""
    g, r = ctx.need("indicators", "indicators/rdf", "indicators/rdf_r")
    x = np.asarray(ctx.spec.system.counts, dtype=float) / ctx.spec.system.n_particles
    total = np.einsum("a,b,rcabk->rck", x, x, g).mean(axis=0)  # (2, bins)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), constrained_layout=True)
    for ax, xlim in zip(axes, ((0, r[-1]), (0.6, 2.0))):
        for cls, name in enumerate(ctx.spec.class_names):
            ax.plot(r, total[cls], color="0.6" if cls == 0 else "k", label=name)
        ax.set(xlabel="r", ylabel="g(r)", xlim=xlim)
    axes[0].legend()
    fig.suptitle("Fig. S10: radial distribution function")
    _save(fig, ctx, path)
    return "g(r) = Σ_ab x_a x_b g_ab(r), averaged over every configuration (right: close-up)."


def fig_training(ctx: Context, path) -> str:
    """Training curves: loss and accuracy per epoch (Sec. IV A)."""
    keys = ("train_loss", "val_loss", "train_accuracy", "val_accuracy")
    fig = history_figure(dict(zip(keys, ctx.need("train", *(f"train/history/{k}" for k in keys)))))
    fig.suptitle("Training of the CNN (Sec. IV A)")
    _save(fig, ctx, path)
    return f"{ctx.spec.train.epochs} epochs (paper 250; accuracy ~100% on train and validation)."
