"""The report's first section: the campaign against the paper's protocol, row by row.

Every row is generated from the campaign file, the store and :data:`paper_values.PROTOCOL`
(the paper's values, one place); a row says whether this campaign departs from the paper and,
where docs/validation.md measured it, that the departure moves a result
(:data:`paper_values.EFFECTS`). Nothing here is written per preset.
"""

from __future__ import annotations

import numpy as np

from ..pipeline import auto_temperatures
from . import paper_values as pv
from .context import Context
from .tables import Table, fmt

NOT_MEASURED = "not measured"


def _per_system(value, ctx: Context):
    """A per-system protocol value for this campaign's system (None: not a paper system)."""
    return value.get(ctx.system) if isinstance(value, dict) else value


def _attrs(ctx: Context, group: str) -> dict:
    return dict(ctx.store.root[group].attrs) if group in ctx.store.root else {}


def _t_star(ctx: Context) -> str:
    """The fitted T* with its standard error, or why there is none."""
    attrs = _attrs(ctx, "inherent")
    if attrs.get("ok") is False:
        return f"fit failed ({attrs.get('reason', '?')})"
    if attrs.get("t_star") is None:
        return "not fitted (run the inherent stage)"
    error = attrs.get("t_star_error")
    return f"{attrs['t_star']:.3g}" + (f" ± {error:.2g}" if error is not None else " (error unknown)")


def _temperatures(ctx: Context) -> str:
    p, ran = ctx.spec.propensity, _attrs(ctx, "propensity").get("temperatures")
    used = f" = {', '.join(f'{t:.3g}' for t in ran)}" if ran else ""
    if auto_temperatures(ctx.spec):
        return f"auto: {', '.join(f'{m:g}' for m in p.t_star_multiples)} × T*{used}"
    return f"fixed: {', '.join(f'{t:g}' for t in p.temperatures)}"


def _liquid_hold(ctx: Context) -> str:
    """The liquid hold at T_L and the stored tau_alpha (keys and arrays of issue 20 item 3)."""
    hold = ctx.spec.quench.get("hold_liquid")
    if not hold:
        return "not held (the liquid is saved while the thermostat passes T_L)"
    if "quench/tau_alpha" not in ctx.store.root:
        return f"held {hold:g} τ, τ_α not measured yet"
    tau, held = ctx.store.root["quench/tau_alpha"][:], ctx.store.root["quench/liquid_held"][:]
    return (
        f"held {hold:g} τ, median τ_α = {np.nanmedian(tau):.3g}"
        if np.isfinite(tau).any()
        else f"held {hold:g} τ, τ_α not reached"
    ) + f"; {int(held.sum())} of {len(held)} liquids held ≥ the τ_α multiple"


def _delta_reached(ctx: Context) -> np.ndarray | None:
    """The largest delta each propensity run set reached (C, nT), or None before the runs."""
    if "propensity/delta" not in ctx.store.root or not ctx.store.stage_state("propensity").name == "done":
        return None
    return np.nanmax(ctx.store.root["propensity/delta"][...], axis=-1)


def _run_length(ctx: Context, reached) -> str:
    p = ctx.spec.propensity
    steps = f"{p.steps:.3g} steps" + (f", until δ = {p.until_delta:g}" if p.get("until_delta") else "")
    if reached is None:
        return steps + "; δ reached: not run yet"
    return steps + f"; δ reached {np.min(reached):.3g} to {np.max(reached):.3g}"


def _network(m) -> str:
    act = "ReLU between the dense layers" if m["hidden_activation"] == "relu" else "no ReLU between the dense layers"
    return f"3 × (Conv–ReLU), Dense, Dropout {m['dropout']:g}, Dense; {act}; head {m['head']}"


def rows(ctx: Context) -> list[list[str]]:
    """[quantity (keys), paper, this campaign, departs?, known to move a result?] per row."""
    s, P = ctx.spec, pv.PROTOCOL
    q, tr, p, a = s.quench, s.train, s.propensity, s.analyze
    reached = _delta_reached(ctx)
    ensemble = tr.get("ensemble", 1)
    xi = _attrs(ctx, "analyze").get("xi", {})
    paper_net = {"hidden_activation": P["hidden_activation"], "head": P["head"], "dropout": P["dropout"]}
    table = [
        (
            "N (system.n_particles)",
            P["n_particles"],
            s.system.n_particles,
            s.system.n_particles != P["n_particles"],
            "",
        ),
        (
            "replicas and split (quench.replicas, quench.split)",
            f"{P['replicas']}: {P['split']}",
            f"{q.replicas}: {q.split}",
            q.split[0] < P["split"][0],
            "replicas",
        ),
        ("test-set size (quench.split[2])", P["split"][2], q.split[2], q.split[2] != P["split"][2], ""),
        (
            "cooling rate (quench.cooling_rate)",
            P["cooling_rate"],
            q.cooling_rate,
            not np.isclose(q.cooling_rate, P["cooling_rate"], rtol=0.01),
            "",
        ),
        (
            "equilibration (quench.T_start, equilibration_time)",
            f"T = {P['T_start']:g}, time not given",
            f"T = {q.T_start:g}, {q.equilibration_time:g} τ",
            q.T_start != P["T_start"],
            "",
        ),
        (
            "T_L, T_G (quench.T_liquid, T_glass)",
            f"{fmt(_per_system(P['T_liquid'], ctx))}, {P['T_glass']:g}",
            f"{q.T_liquid:g}, {q.T_glass:g}",
            q.T_liquid != _per_system(P["T_liquid"], ctx) or q.T_glass != P["T_glass"],
            "T_liquid",
        ),
        (
            "liquid hold at T_L and τ_α (quench.hold_liquid)",
            "held: 'equilibrium' supercooled liquids (time not given)",
            _liquid_hold(ctx),
            not q.get("hold_liquid"),
            "hold",
        ),
        ("grid (dataset.grid)", "not given", s.dataset.grid, None, "grid"),
        (
            "input normalisation (dataset.normalise)",
            "'to [0, 1]' (per image: image)",
            s.dataset.normalise,
            s.dataset.normalise != P["normalise"],
            "normalise",
        ),
        (
            "network (model.*)",
            _network(paper_net) + "; sizes: Fig. S1",
            _network(s.model)
            + f"; channels {s.model.channels}, kernels {s.model.kernel_sizes}, hidden {s.model.hidden}",
            any(s.model[k] != v for k, v in paper_net.items()),
            "",
        ),
        (
            "optimiser (train.lr, batch_size, augment)",
            f"Adam lr {P['lr']:g}, batch {P['batch_size']}, no augmentation",
            f"Adam lr {tr.lr:g}, batch {tr.batch_size}, augmentation {'on' if tr.augment else 'off'}",
            (tr.lr, tr.batch_size, tr.augment) != (P["lr"], P["batch_size"], P["augment"]),
            "optimiser",
        ),
        ("epochs (train.epochs)", P["epochs"], tr.epochs, tr.epochs != P["epochs"], ""),
        ("ensemble size (train.ensemble)", P["ensemble"], ensemble, ensemble != P["ensemble"], ""),
        (
            "N_s (propensity.samples, main_samples)",
            f"{P['samples']} runs, main Δ from {P['main_samples']}",
            f"{p.samples} runs, main Δ from {p.main_samples or p.samples}",
            (p.samples, p.main_samples or p.samples) != (P["samples"], P["main_samples"]),
            "",
        ),
        (
            "run length and δ reached (propensity.steps)",
            f"{P['steps']:.0e} steps; δ up to ~{P['delta_reached']:g}",
            _run_length(ctx, reached),
            reached is None or np.max(reached) < P["delta_reached"],
            "",
        ),
        ("T* (inherent fit: a result, not a setting)", fmt(_per_system(P["t_star"], ctx)), _t_star(ctx), "-", ""),
        (
            "propensity temperatures (propensity.temperatures)",
            P["t_star_multiples"],
            _temperatures(ctx),
            not auto_temperatures(s),
            "",
        ),
        (
            "analysed δ (analyze.deltas)",
            ", ".join(f"{d:g}" for d in P["deltas"]),
            ", ".join(f"{d:g}" for d in a.deltas),
            list(a.deltas) != P["deltas"],
            "",
        ),
        (
            "ξ rule (analyze.xi)",
            "rule (Sec. IV B)",
            (f"{a.xi}" if a.xi == "rule" else f"fixed {a.xi}")
            + (
                f": ξ_Δ {fmt(xi.get('Delta'))}, ξ_α {fmt(xi.get('alpha'))}, Fig. 6 {fmt(xi.get('violin'))}"
                if xi
                else ""
            ),
            a.xi != P["xi"],
            "",
        ),
    ]
    out = []
    for name, paper, ours, departs, effect in table:
        moves = "" if departs in (False, "-") else (pv.EFFECTS[effect] if effect else NOT_MEASURED)
        label = departs if isinstance(departs, str) else {True: "yes", False: "no", None: "paper silent"}[departs]
        out.append([name, str(paper), str(ours), label, moves])
    return out


def table_departures(ctx: Context) -> Table:
    """The departure table (the report's first section)."""
    t = Table(
        "Departures from the paper's protocol",
        ["quantity (campaign keys)", "paper", "this campaign", "departs", "known to move a result"],
    )
    t.rows = rows(ctx)
    system = ctx.system or "none (a system of its own: the paper's per-system values do not apply)"
    t.note = (
        f"Paper system: {system}. Generated from campaign.toml and the store against "
        "glassdist/report/paper_values.py (PROTOCOL, EFFECTS); 'not measured': no study in "
        "docs/validation.md says how this departure moves the results."
    )
    return t
