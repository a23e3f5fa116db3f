"""The evidence behind Γ (issue: "Γ a physicist can trust"), read from ``tables["trust"]`` of the
analyze stage (glassdist.stages.analyze): the agreement of the training-ensemble members and its
verdict, each member's correlations, the sanity checks (cascading model randomisation, a model
trained on shuffled labels), the input-only baseline Γ⁰ and the partial correlations. The
report computes nothing here; an interval is "mean [low, high]" (95 %, analyze.bootstrap resamples).
"""

from __future__ import annotations

import numpy as np

from .context import Context, Missing
from .tables import Table, fmt


def trust(ctx: Context) -> dict:
    """``tables["trust"]``, or Missing when the analysis predates it."""
    if "trust" not in ctx.tables:
        raise Missing(f"the analysis predates the evidence behind Γ: `glassdist analyze {ctx.campaign_dir}` redoes it")
    return ctx.tables["trust"]


def verdict(ctx: Context) -> str:
    """The one plain sentence on Γ (members agree or not), '' when there is none yet."""
    try:
        return trust(ctx)["sentence"]
    except Missing:
        return ""


def interval(mean, ci) -> str:
    """'0.412 [0.301, 0.522]'; '-' for a value not computed."""
    if mean is None:
        return "-"
    return f"{fmt(mean)} [{fmt(ci[0])}, {fmt(ci[1])}]" if ci is not None and None not in ci else fmt(mean)


def _row(label: str, cls_name: str, agreement: str, cells: list[str], delta: str) -> list[str]:
    return [label, cls_name, agreement, *cells, delta]


def table_trust(ctx: Context) -> Table:
    """Γ's evidence per class: agreement, C(Γ̄, X), each member, every randomisation level, the
    shuffled-label model, Γ⁰ and the partial correlations, with C(·, Δ) at Table V's maximum."""
    tr = trust(ctx)
    names = tr["indicators"]
    M = tr["members"]
    cols = (
        ["row", "class", f"agreement of the {M} members"]
        + [f"C(·, {ctx.symbol(n)})" for n in names]
        + ["C(·, Δ) at Table V's maximum (configuration 0)"]
    )
    t = Table(f"Γ's evidence: {M} training(s), sanity checks and baselines", cols)
    prop = tr["propensity"]
    has_prop = bool(prop.get("members"))

    reproduces = {name: marks[0] for name, marks in prop.get("reproduces", {}).items()}  # configuration 0

    def dcell(value, name: str | None = None, v: int | None = None) -> str:
        """C(variant, Δ) of configuration 0, with "≈ Γ̄" where it lies in Γ̄'s interval (an older analysis: no mark)."""
        if not has_prop:
            return ""
        if value is None:  # no correlation: a map constant in configuration 0
            return "no map" if name in ("shuffled", "input") else ""
        marks = reproduces.get(name)  # (V,) for the randomised levels, one bool otherwise
        inside = marks is not None and (marks[v] if v is not None else marks)
        return fmt(value) + (" ≈ Γ̄" if inside else "")

    table_v = ctx.tables.get("V") or []
    a = tr["agreement"]
    levels = tr["randomised"].get("levels", [])
    for cls in (1, 0):
        name = tr["classes"][cls]
        glass = cls == 1  # the propensity runs start from glasses
        consensus = tr["consensus"]
        agreement = (
            interval(a["mean"][cls], a["ci"][cls]) + f" (median {fmt(a['median'][cls])}, {a['n'][cls]} configurations)"
        )
        vmax = table_v[0][0][0] if glass and table_v and table_v[0] else None
        t.rows.append(
            _row(
                f"consensus Γ̄ (mean of {M})",
                name,
                agreement,
                [interval(consensus["mean"][cls][i], consensus["ci"][cls][i]) for i in range(len(names))],
                (interval(prop["consensus"][0][0], prop["consensus"][0][1:]) if "consensus" in prop else dcell(vmax))
                if glass and has_prop
                else "",
            )
        )
        for k in range(M if M > 1 else 0):
            t.rows.append(
                _row(
                    f"member {k}",
                    name,
                    "",
                    [fmt(x) for x in tr["member_mean"][cls][k]],
                    dcell(prop["members"][0][k]) if glass and has_prop else "",
                )
            )
        rnd = tr["randomised"]
        for v in range(len(levels)):
            marks = rnd["reproduces"][v][cls]
            t.rows.append(
                _row(
                    randomised_label(levels, v),
                    name,
                    "",
                    [
                        interval(rnd["mean"][v][cls][i], rnd["ci"][v][cls][i]) + (" ≈ Γ̄" if marks[i] else "")
                        for i in range(len(names))
                    ],
                    dcell(np.nanmean(np.array(prop["randomised"][0], dtype=float)[:, v]), "randomised", v)
                    if glass and has_prop and "randomised" in prop
                    else "",
                )
            )
        for key, label in (("shuffled", "trained on shuffled labels"), ("input", "input only, Γ⁰")):
            entry = tr[key]
            if "absent" in entry:
                continue
            t.rows.append(
                _row(
                    label,
                    name,
                    "",
                    [
                        interval(entry["mean"][cls][i], entry["ci"][cls][i])
                        + (" ≈ Γ̄" if entry["reproduces"][cls][i] else "")
                        for i in range(len(names))
                    ],
                    dcell(prop[key][0], key) if glass and has_prop and key in prop else "",
                )
            )
        for j, (key, label) in enumerate(
            (("given_input", "partial: Γ̄ given Γ⁰"), ("given_composition", "partial: Γ̄ given the local composition"))
        ):
            if key == "given_input" and "absent" in tr["input"]:
                continue
            part = tr["partial"][key]
            t.rows.append(
                _row(
                    label,
                    name,
                    "",
                    [interval(part["mean"][cls][i], part["ci"][cls][i]) for i in range(len(names))],
                    dcell(prop["partial"][0][j]) if glass and has_prop else "",
                )
            )
    t.note = " ".join(
        [
            tr["sentence"],
            _disagreeing(ctx, tr),
            _no_information(ctx, tr),
            "C(·, X): Pearson at the ξ of Fig. 6 without the 1 − X signs (as Table S2); "
            "'≈ Γ̄': the value is inside Γ̄'s 95 % interval or Γ̄'s inside its own, so that baseline "
            "reproduces the correlation.",
            _no_map(tr),
            tr["partial"]["note"] + ".",
            *tr["notes"],
        ]
    )
    return t


def _no_map(tr: dict) -> str:
    """Where the label-shuffled model (or Γ⁰) drew no map: its rows are over the other configurations."""
    parts = []
    for key, label in (("shuffled", "label-shuffled model"), ("input", "input-only Γ⁰")):
        no_map = tr[key].get("no_map", [0, 0])
        counts = [f"{no_map[c]} of {tr['agreement']['n'][c]} {tr['classes'][c]}" for c in (1, 0) if no_map[c]]
        if counts:
            parts.append(f"The {label} drew no map (Γ zero everywhere) in {' and '.join(counts)} configurations")
    return "; ".join(parts) + ": its rows are over the others." if parts else ""


def randomised_label(levels: list[str], v: int) -> str:
    """'randomised: output … conv2': the layers level v re-initialised (the cascade from the output down)."""
    return f"randomised: {levels[0]}" + (f" … {levels[v]}" if v else "")


def _disagreeing(ctx: Context, tr: dict) -> str:
    """Who disagrees in sign, per class and indicator."""
    parts = [
        f"{d['class']}, C(Γ, {ctx.symbol(d['indicator'])}): members {d['positive']} positive, {d['negative']} negative"
        for d in tr["members_disagreeing_in_sign"]
    ]
    return (
        ("Members whose correlations differ in sign: " + "; ".join(parts) + ".")
        if parts
        else ("No two members differ in the sign of a correlation." if tr["members"] > 1 else "")
    )


def _no_information(ctx: Context, tr: dict) -> str:
    """Which correlations a randomised model reproduces: they carry no learnt information."""
    flags = tr["randomised"].get("no_learnt_information")
    if not flags:
        return ""
    hits = [
        f"C(Γ̄, {ctx.symbol(n)}) ({tr['classes'][cls]})"
        for cls in (1, 0)
        for n, flag in zip(tr["indicators"], flags[cls])
        if flag
    ]
    if any(tr["propensity"].get("reproduces", {}).get("randomised", [[]])[0]):
        hits.append("C(Γ̄, Δ) (configuration 0)")
    return (
        (
            "Reproduced by a randomised model within the 95 % interval, so carrying no learnt information: "
            + ", ".join(hits)
            + "."
        )
        if hits
        else "No randomised model reproduces a correlation of Γ̄."
    )


def fig_trust(ctx: Context, path) -> str:
    """Left: the distribution of the inter-member agreement per class with the threshold; right:
    C(·, X) of the first structural indicator for Γ̄, each member and every baseline (glasses)."""
    import matplotlib.pyplot as plt

    from .figures import _save

    tr = trust(ctx)
    a = tr["agreement"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    edges = np.asarray(a["hist"]["edges"])
    for cls in (1, 0):
        left.stairs(a["hist"]["counts"][cls], edges, label=f"{tr['classes'][cls]} (n = {a['n'][cls]})", lw=1.5)
    left.axvline(a["threshold"], color="k", ls="--", lw=1, label=f"threshold {a['threshold']:g}")
    left.set(
        xlabel="inter-member agreement (mean pairwise Pearson of coarse-grained Γ)",
        ylabel="test configurations",
        title=f"{tr['members']} members: {tr['verdict']}",
    )
    left.legend(fontsize=7)
    name = tr["indicators"][0]
    labels, means, lows, highs = [], [], [], []

    def add(label, mean, ci=None):
        labels.append(label)
        means.append(np.nan if mean is None else mean)
        lo, hi = ci if ci is not None and None not in ci else (mean, mean)
        lows.append(np.nan if lo is None else lo)
        highs.append(np.nan if hi is None else hi)

    cls = 1
    add("Γ̄", tr["consensus"]["mean"][cls][0], tr["consensus"]["ci"][cls][0])
    for k in range(tr["members"] if tr["members"] > 1 else 0):
        add(f"member {k}", tr["member_mean"][cls][k][0])
    for v in range(len(tr["randomised"].get("levels", []))):
        add(
            randomised_label(tr["randomised"]["levels"], v),
            tr["randomised"]["mean"][v][cls][0],
            tr["randomised"]["ci"][v][cls][0],
        )
    for key, label in (("shuffled", "shuffled labels"), ("input", "Γ⁰ (input)")):
        if "absent" not in tr[key]:
            add(label, tr[key]["mean"][cls][0], tr[key]["ci"][cls][0])
    y = np.arange(len(labels))[::-1]
    m = np.asarray(means, float)
    right.errorbar(m, y, xerr=[m - np.asarray(lows, float), np.asarray(highs, float) - m], fmt="o", ms=4, capsize=3)
    right.axvline(0, color="0.5", lw=0.8)
    ci = tr["consensus"]["ci"][cls][0]
    if ci is not None and None not in ci:
        right.axvspan(ci[0], ci[1], color="C0", alpha=0.15, label="Γ̄'s 95 % interval")
        right.legend(fontsize=7)
    right.set_yticks(y, labels, fontsize=7)
    right.set(
        xlabel=f"C(·, {ctx.symbol(name)}) on {tr['classes'][cls]} configurations (Pearson, Fig. 6's ξ)",
        xlim=(-1, 1),
        title="trained vs randomised vs baselines",
    )
    _save(fig, ctx, path)
    return tr["sentence"] + " Right: mean over test configurations with 95 % bootstrap intervals."
