"""Stage `analyze`: the paper's analysis (Sec. IV, supp. I E-F, III) from stored fields only,
in parallel with Dask (hpc.dask_farm on hpc.dask_cluster). Science: glassdist.analysis.

Two phases, one ledger (``analyze``), each task writing only its own chunks:
1. Scans, task ``R_test + c nT + T``: propensity configuration c at temperature index T:
   :class:`glassdist.analysis.PropensityScan` under ``analyze/dynamics/*`` (reached, C_Delta_r,
   xi_Delta, scan, xi_star) and ``analyze/maps/Delta``, ``maps/optimal`` with leading axes
   (C, nT), and ``analyze/dynamics/delta`` (C, nT, n_out).
   When every scan is done the coarse-graining lengths are chosen (``analyze.xi``: the paper's
   rule, :func:`glassdist.analysis.choose_xi`, or fixed values) and stored as the attribute
   ``xi`` of group ``analyze`` ({rule, Delta, alpha, violin, Delta_at, alpha_star, notes}).
2. With those lengths: task ``t`` < R_test: test replica t (row t of ``gradcam/*``):
   Pearson and Spearman between the indicators at xi violin for its liquid and glass (Fig. 6,
   Table S2) in ``analyze/pairs/pearson`` and ``spearman`` (R_test, 2, P), and the bare
   C_alpha(r) of its glass in ``analyze/structure/C_r`` (R_test, A, B) with radii
   ``analyze/structure/r`` (B,). Task ``R_test + C nT + c nT + T``: C_{alpha,Delta} at every
   output time in ``analyze/dynamics/pearson_t``, ``spearman_t`` (C, nT, A, T), the maps of
   Figs. 1, 2 in ``analyze/maps/indicators`` (C, nT, 2, A, N) and, when the propensity stage
   stored sub-ensembles, Table IV at delta = 1 (or the largest delta all four ensembles reached)
   in ``analyze/ensembles/table`` (C, nT, 5), that delta in ``analyze/ensembles/delta`` (C, nT),
   and the fields of Fig. 4 in ``analyze/ensembles/maps`` (C, nT, 4, 2, N).
   The GlassBench-layout correlations (glassdist.glassbench) of the same task in
   ``analyze/glassbench/pearson`` and ``spearman`` (C, nT, A, 2, S + 1, T): indicator, propensity
   [bare, coarse-grained at the chosen xi_Delta], group [each species, all], output time
   (attribute ``glassbench`` of group analyze names the axes).
When every task is done, the summaries (Tables III, IV, V, S1, S2, r_alpha of Fig. 8) go to
the attribute ``tables`` of group ``analyze`` and the mean C_alpha(r) to
``analyze/structure/mean`` and ``sem`` (A, B). A = the analysed indicators (attribute
``indicators``: Grad-CAM first, then indicators.compute; glassdist.indicators), P = their pairs
(attribute ``pairs``; 3 for the paper's Gamma, Upsilon, Theta), K = len(analyze.deltas), X = len(analyze.xi_grid), B = correlation_bins + 1.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from functools import partial

from .. import analysis, glassbench
from .. import indicators as registry
from ..dynamics.crd import propensity_at_delta, sub_ensembles
from ..md.isoconf import output_steps
from ..spec import Spec, fixed_xi, load
from ..store import Store
from . import n_temperatures, propensity_shape
from .common import exit_code, farm
from .propensity import glass_replicas, stored_temperatures

NAME = "analyze"


def dims(spec: Spec) -> dict[str, int]:
    """Sizes of the analyze arrays (names as in the module docstring)."""
    p, a = spec.propensity, spec.analyze
    A = len(registry.analysed(spec))
    return {"Rt": len(spec.replicas_of("test")), "C": propensity_shape(spec)[0], "nT": n_temperatures(spec),
            "T": len(output_steps(p.steps, p.outputs)), "K": len(a.deltas), "X": len(a.xi_grid),
            "A": A, "P": len(registry.pairs(A)), "B": a.correlation_bins + 1,
            "N": spec.system.n_particles}


def phases(spec: Spec) -> tuple[range, range, range]:
    """Task ids of the scans, the test replicas and the correlations (module docstring)."""
    d = dims(spec)
    Rt, CT = d["Rt"], d["C"] * d["nT"]
    return range(Rt, Rt + CT), range(Rt), range(Rt + CT, Rt + 2 * CT)


def array_shapes(spec: Spec) -> dict[str, tuple[int, ...]]:
    """Every analyze array's shape; its chunks are one task's part (first one or two axes = 1)."""
    d = dims(spec)
    Rt, C, nT, T, K, X, A, P, B, N = (d[k] for k in ("Rt", "C", "nT", "T", "K", "X", "A", "P", "B", "N"))
    shapes = {
        "pairs/pearson": (Rt, 2, P), "pairs/spearman": (Rt, 2, P), "structure/C_r": (Rt, A, B),
        "dynamics/delta": (C, nT, T), "dynamics/reached": (C, nT, K), "dynamics/C_Delta_r": (C, nT, K, B),
        "dynamics/xi_Delta": (C, nT, K), "dynamics/scan": (C, nT, 2, K, X, A),
        "dynamics/pearson_t": (C, nT, A, T), "dynamics/spearman_t": (C, nT, A, T),
        "dynamics/xi_star": (C, nT, 2, A), "maps/indicators": (C, nT, 2, A, N),
        "maps/Delta": (C, nT, K, 2, N), "maps/optimal": (C, nT, 2, A, N),
    }
    if has_ensembles(spec):
        shapes.update({"ensembles/table": (C, nT, 5), "ensembles/delta": (C, nT), "ensembles/maps": (C, nT, 4, 2, N)})
    per_species = (C, nT, A, 2, spec.n_species + 1, T)  # glassdist.glassbench: propensity kind, group, time
    shapes.update({"glassbench/pearson": per_species, "glassbench/spearman": per_species})
    return shapes


def has_ensembles(spec: Spec) -> bool:
    """Whether the propensity stage stores the Table IV sub-ensembles."""
    return bool(sub_ensembles(spec.propensity.samples, spec.propensity.main_samples))


def n_tasks(spec: Spec) -> int:
    return phases(spec)[2].stop


def ready(store: Store, spec: Spec) -> np.ndarray:
    """(n_tasks,) bool: the inputs of each task are done upstream (and, in phase 2, the
    coarse-graining lengths are chosen)."""
    d = dims(spec)
    scans, replicas, correlations = phases(spec)
    done = {name: (store.ledger(name).done_mask() if f"ledger/{name}" in store.root else None)
            for name in ("gradcam", "indicators", "propensity_reduce")}
    out = np.zeros(n_tasks(spec), bool)
    if done["gradcam"] is None or done["indicators"] is None:
        return out
    test = spec.replicas_of("test")
    config_ok = done["gradcam"] & done["indicators"][test]                     # (Rt,)
    chosen = NAME in store.root and "xi" in store.root[NAME].attrs
    out[replicas.start:replicas.stop] = config_ok & chosen
    if done["propensity_reduce"] is not None:
        conf = np.asarray(spec.propensity.configurations)
        reduced = (done["propensity_reduce"].reshape(d["C"], d["nT"]) & config_ok[conf][:, None]).ravel()
        out[scans.start:scans.stop] = reduced
        out[correlations.start:correlations.stop] = reduced & chosen
    return out


def prepare(campaign_dir: Path, spec: Spec) -> tuple[list[int], int]:
    """Check the spec, create the arrays and the ledger; return (tasks to do now, tasks that
    wait for an upstream stage)."""
    store = Store(campaign_dir)
    store.require_needs(NAME, spec=spec)
    store.check_stage(NAME, spec)
    for name, shape in array_shapes(spec).items():
        dtype = "bool" if name == "dynamics/reached" else "float64"
        chunks = (1,) + shape[1:] if name.split("/")[0] in ("pairs", "structure") else (1, 1) + shape[2:]
        store.require_array(f"{NAME}/{name}", shape, chunks, dtype,
                            fill_value=False if dtype == "bool" else None)
    a = spec.analyze
    ensembles = sub_ensembles(spec.propensity.samples, spec.propensity.main_samples)
    r = analysis.correlation_radii(a.correlation_rmax, a.correlation_bins)
    store.require_array(f"{NAME}/structure/r", r.shape, r.shape, "float64")[:] = r
    store.root[NAME].attrs.update({
        "indicators": [i.name for i in registry.analysed(spec)],
        "pairs": [list(p) for p in registry.pairs(dims(spec)["A"])],
        "one_minus": list(a.one_minus), "deltas": list(a.deltas), "xi_grid": list(a.xi_grid),
        "temperatures": stored_temperatures(store).tolist(), "replicas": glass_replicas(spec).tolist(),
        "glassbench": {"propensity": list(glassbench.PROPENSITY), "groups": glassbench.groups(spec.system.species),
                       "xi": "Delta"},  # the coarse-graining of the propensity: attribute xi's "Delta"
        "test_replicas": spec.replicas_of("test").tolist(), "ensemble_columns": analysis.ensemble_columns(list(ensembles)) if ensembles else []})
    todo = store.ledger(NAME, n_tasks(spec)).todo()
    ok = ready(store, spec)
    return [int(t) for t in todo if ok[t]], int((~ok[todo]).sum())


def _fields(store: Store, spec: Spec, t: int) -> np.ndarray:
    """Bare indicators of test replica t: (2, N, A) [class axis: liquid, glass], A in the order
    of glassdist.indicators.analysed (Grad-CAM first)."""
    replica = int(store.root["gradcam/replicas"][t])
    ind = store.root["indicators"]
    return np.stack([store.root["gradcam/gamma"][t]]
                    + [ind[i.name][replica] for i in registry.structural(spec)], axis=-1)


def analyze_block(campaign_dir: str, spec: Spec, block, comm=None) -> None:
    """Dask task: test replicas and (configuration, temperature) pairs of a block."""
    for task in block.tasks:
        analyze_task(Store(campaign_dir), spec, task)


def analyze_task(store: Store, spec: Spec, task: int) -> None:
    """One test replica or one (configuration, temperature) into the store."""
    a, L = spec.analyze, spec.box_length
    scans, replicas, correlations = phases(spec)
    group = store.root[NAME]
    with warnings.catch_warnings():  # Delta(t = 0) = 0 is constant: its coefficients are NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.filterwarnings("ignore", message=".*constant.*")
        if task in scans:
            scan_task(store, spec, *divmod(task - scans.start, dims(spec)["nT"]))
        elif task in replicas:
            t = task - replicas.start
            replica = int(store.root["gradcam/replicas"][t])
            positions, fields = store.root["quench/positions"][replica], _fields(store, spec, t)
            pairs = registry.pairs(fields.shape[-1])
            results = [analysis.configuration_analysis(positions[cls], fields[cls], L, chosen_xi(store)["violin"],
                                                       a.correlation_rmax, a.correlation_bins, pairs)
                       for cls in (0, 1)]
            group["pairs/pearson"][t] = np.stack([r[0] for r in results])
            group["pairs/spearman"][t] = np.stack([r[1] for r in results])
            group["structure/C_r"][t] = results[1][2]
        else:
            correlation_task(store, spec, *divmod(task - correlations.start, dims(spec)["nT"]))


def _propensity_inputs(store: Store, spec: Spec, c: int, t: int):
    """(glass positions (N, dim), its bare indicators (N, A), delta(t) (T,), Delta(t) (T, N),
    sign flips (A,)) of configuration c at temperature index t."""
    prop = store.root["propensity"]
    positions = store.root["quench/positions"][int(glass_replicas(spec)[c]), 1]
    fields = _fields(store, spec, spec.propensity.configurations[c])[1]
    flip = analysis.flips(spec.analyze.one_minus, [i.name for i in registry.analysed(spec)])
    return positions, fields, prop["delta"][c, t], prop["Delta"][c, t], flip


def scan_task(store: Store, spec: Spec, c: int, t: int) -> None:
    """Phase 1, configuration c at temperature index t: PropensityScan into the store."""
    a, group = spec.analyze, store.root[NAME]
    positions, fields, delta_t, Delta_t, flip = _propensity_inputs(store, spec, c, t)
    res = analysis.propensity_scan(positions, fields, delta_t, Delta_t, spec.box_length, deltas=a.deltas,
                                   xi_grid=a.xi_grid, flip=flip, r_max=a.correlation_rmax, bins=a.correlation_bins)
    group["dynamics/delta"][c, t] = delta_t
    for key in ("reached", "C_Delta_r", "xi_Delta", "scan", "xi_star"):
        group[f"dynamics/{key}"][c, t] = getattr(res, key)
    for key in ("Delta", "optimal"):
        group[f"maps/{key}"][c, t] = getattr(res, key)


def correlation_task(store: Store, spec: Spec, c: int, t: int) -> None:
    """Phase 2, configuration c at temperature index t: C_{alpha,Delta}(t), the maps of Figs. 1, 2
    and Table IV at the chosen lengths into the store."""
    L, group, xi = spec.box_length, store.root[NAME], chosen_xi(store)
    positions, fields, _, Delta_t, flip = _propensity_inputs(store, spec, c, t)
    pearson_t, spearman_t, maps = analysis.propensity_correlations(positions, fields, Delta_t, L, xi_alpha=xi["alpha"],
                                                                   xi_Delta=xi["Delta"], flip=flip)
    group["dynamics/pearson_t"][c, t], group["dynamics/spearman_t"][c, t] = pearson_t, spearman_t
    group["maps/indicators"][c, t] = maps
    group["glassbench/pearson"][c, t], group["glassbench/spearman"][c, t] = glassbench.species_correlations(
        positions, fields, Delta_t, store.types(), spec.n_species, L, xi["Delta"], flip)
    if has_ensembles(spec):
        ens = store.root["propensity/Delta_ensembles"][c, t]                   # (4, T, N)
        delta = analysis.ensemble_delta(ens.mean(axis=2))
        fields_at = np.stack([propensity_at_delta(e.mean(axis=1), e, [delta])[0][0] for e in ens])  # (4, N)
        group["ensembles/table"][c, t], group["ensembles/maps"][c, t] = analysis.ensemble_table(
            positions, fields_at, L, xi["Delta"])
        group["ensembles/delta"][c, t] = delta


def chosen_xi(store: Store) -> dict:
    """The coarse-graining lengths of phase 2 (attribute ``xi`` of group analyze)."""
    return dict(store.root[NAME].attrs["xi"])


def choose(store: Store, spec: Spec) -> analysis.XiChoice:
    """The lengths of phase 2 from the stored scans (rule) or the campaign (fixed)."""
    a = spec.analyze
    fixed = fixed_xi(a)
    if fixed:
        return analysis.XiChoice("fixed", fixed["Delta"], fixed["alpha"], fixed["violin"], notes=[])
    r = analysis.correlation_radii(a.correlation_rmax, a.correlation_bins)
    group = store.root[NAME]
    if group["dynamics/xi_Delta"].shape[0] == 0:  # no propensity runs (skipped): the rule has no Delta
        return analysis.XiChoice("rule", float("nan"), float("nan"), 0.0, notes=[
            "no propensity runs, so the paper's rule has no xi_Delta: Fig. 6 and Table S2 use the bare fields "
            "(xi = 0); give fixed lengths (analyze.xi = {Delta = ..., alpha = ..., violin = ...}) to coarse-grain"])
    return analysis.choose_xi(group["dynamics/xi_Delta"][:], group["dynamics/scan"][:], a.deltas, a.xi_grid,
                              r_min=float(r[1]), half_box=min(a.correlation_rmax, spec.box_length / 2))


def _json(x):
    """Arrays to nested lists with NaN -> None (strict JSON attributes)."""
    arr = np.asarray(x, dtype=float)
    return np.where(np.isfinite(arr), arr, None).tolist() if arr.ndim else (float(arr) if np.isfinite(arr) else None)


def summarize(store: Store, spec: Spec) -> dict:
    """Tables III, IV, V, S1, S2 and Fig. 8's r_alpha from the task results (attribute
    ``tables`` of group analyze; NaN = None: not computed or delta not reached)."""
    a, group = spec.analyze, store.root[NAME]
    correct = store.root["gradcam/correct"][:]
    p, s = group["pairs/pearson"][:], group["pairs/spearman"][:]
    valid = correct & np.isfinite(p).all(axis=-1)
    r = group["structure/r"][:]
    C_r = group["structure/C_r"][:][valid[:, 1]]
    mean, sem, r_alpha = analysis.mean_correlation(C_r, r)
    for name, value in (("mean", mean), ("sem", sem)):
        store.require_array(f"{NAME}/structure/{name}", value.shape, value.shape, "float64")[:] = value
    dyn = {k: group[f"dynamics/{k}"][:] for k in ("delta", "reached", "xi_Delta", "scan", "pearson_t")}
    C = dyn["delta"].shape[0]
    half_box, r_min = min(a.correlation_rmax, spec.box_length / 2), float(r[1])
    tables = {
        "III": {"xi_Delta": _json(dyn["xi_Delta"]), "reached": dyn["reached"].tolist(),
                "unresolved": [[[analysis.unresolved(x, r_min, half_box) for x in row] for row in conf]
                               for conf in dyn["xi_Delta"]],
                "max_delta": _json(np.nanmax(dyn["delta"], axis=-1) if C else np.zeros((0, dyn["delta"].shape[1]))), "xi": chosen_xi(store),
                "r_Gamma_unresolved": analysis.unresolved(r_alpha[0], r_min, half_box) if len(r_alpha) else ""},
        "V": [[_json(v) for v in analysis.table_v(dyn["pearson_t"][c], dyn["delta"][c])] for c in range(C)],
        "S1": _json([[analysis.table_s1(dyn["scan"][c, t], a.deltas, a.xi_grid) for t in range(dyn["scan"].shape[1])]
                     for c in range(C)]),
        "S2": _json(analysis.table_s2(p, s, valid)),
        "S2_counts": valid.sum(axis=0).tolist(), "misclassified": int((~correct).sum()),
        "r_alpha": _json(r_alpha),
    }
    if "ensembles/table" in group:
        tables["IV"] = _json(group["ensembles/table"][:])
        tables["IV_delta"] = _json(group["ensembles/delta"][:])
    group.attrs["tables"] = tables
    return tables


def run(campaign_dir, args=None) -> int:
    campaign_dir = Path(campaign_dir)
    spec = load(campaign_dir)
    store = Store(campaign_dir)
    todo, waiting = prepare(campaign_dir, spec)
    ledger = store.ledger(NAME)
    if not todo and "tables" in store.root[NAME].attrs and ledger.done_mask().all():
        print(f"{NAME}: already done")
        return 0
    work = partial(analyze_block, str(campaign_dir), spec)
    result = farm(NAME, todo, work, ledger, spec)
    scans = phases(spec)[0]
    if ledger.done_mask()[scans.start:scans.stop].all() and "xi" not in store.root[NAME].attrs:
        xi = choose(store, spec)
        if xi.problem:
            print(f"{NAME}: the paper's rule gives no coarse-graining length: {xi.problem}. Fix: run the "
                  f"propensity longer (propensity.steps) or widen analyze.correlation_rmax, or start a new "
                  f"campaign with fixed lengths: `glassdist init NEWDIR --from {campaign_dir} --set "
                  f"'analyze.xi={{Delta = 4.0, alpha = 8.0, violin = 4.0}}'`")
            return 1
        store.root[NAME].attrs["xi"] = {"rule": xi.rule, **{k: _json(getattr(xi, k)) for k in (
            "Delta", "alpha", "violin", "Delta_at")}, "alpha_star": _json(xi.alpha_star or []), "notes": xi.notes}
        for note in xi.notes:
            print(f"{NAME}: {note}")
        print(f"{NAME}: coarse-graining lengths ({xi.rule}): xi_Delta = {xi.Delta:.3g}, xi_alpha = {xi.alpha:.3g}, "
              f"Fig. 6 xi = {xi.violin:.3g}")
        todo, waiting = prepare(campaign_dir, spec)
        result = farm(NAME, todo, work, ledger, spec)
    if ledger.done_mask().all():
        tables = summarize(store, spec)
        report_reach(spec, tables, stored_temperatures(store))
    elif waiting and not result.failed:
        print(f"{NAME}: {waiting} task(s) wait for gradcam/indicators/propensity results; rerun after those stages")
    return exit_code(result, NAME)


def report_reach(spec: Spec, tables: dict, temperatures: np.ndarray) -> None:
    """Say which analyze.deltas the propensity runs did not reach (their results are NaN)."""
    reached, max_delta = np.asarray(tables["III"]["reached"]), tables["III"]["max_delta"]
    if not reached.size:  # no propensity (stage skipped)
        return
    for c, t in zip(*np.nonzero(~reached.all(axis=-1))):
        missed = [d for d, ok in zip(spec.analyze.deltas, reached[c, t]) if not ok]
        print(f"{NAME}: configuration {spec.propensity.configurations[c]} at T = "
              f"{temperatures[t]:.4g} reached delta = {max_delta[c][t]:.3g} only: delta "
              f"{', '.join(f'{d:g}' for d in missed)} not reached (run propensity longer: propensity.steps)")
