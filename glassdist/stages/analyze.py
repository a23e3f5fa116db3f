"""Stage `analyze`: the paper's analysis (Sec. IV, supp. I E-F, III) from stored fields only,
in parallel with Dask (hpc.dask_farm on hpc.dask_cluster). Science: glassdist.fields.analysis.

Two phases, one ledger (``analyze``), each task writing only its own chunks:
1. Scans, task ``R_test + c nT + T``: propensity configuration c at temperature index T:
   :class:`glassdist.fields.analysis.PropensityScan` under ``analyze/dynamics/*`` (reached, C_Delta_r,
   xi_Delta, scan, xi_star) and ``analyze/maps/Delta``, ``maps/optimal`` with leading axes
   (C, nT), and ``analyze/dynamics/delta`` (C, nT, n_out).
   When every scan is done the coarse-graining lengths are chosen (``analyze.xi``: the paper's
   rule, :func:`glassdist.fields.analysis.choose_xi`, or fixed values) and stored as the attribute
   ``xi`` of group ``analyze`` ({rule, Delta, alpha, violin, Delta_at, alpha_star, notes}).
2. With those lengths: task ``t`` < R_test: test replica t (row t of ``gradcam/*``):
   Pearson and Spearman between the indicators at xi violin for its liquid and glass (Fig. 6,
   Table S2) in ``analyze/pairs/pearson`` and ``spearman`` (R_test, 2, P), and the bare
   C_alpha(r) of its glass in ``analyze/structure/C_r`` (R_test, A, B) with radii
   ``analyze/structure/r`` (B,). Task ``R_test + C nT + c nT + T``: C_{alpha,Delta} at every
   output time in ``analyze/dynamics/pearson_t``, ``spearman_t`` (C, nT, A, T), the maps of
   Figs. 1, 2 in ``analyze/maps/indicators`` (C, nT, 2, A, N) and, when the propensity stage
   stored sub-ensembles, Table IV at delta = 1 (or the largest delta all four ensembles reached)
   in ``analyze/ensembles/table`` (C, nT, 5) with its spatial-block 95 % interval in
   ``analyze/ensembles/ci`` (C, nT, 5, 2) and shifted-field null band in ``analyze/ensembles/null``
   (C, nT, 5, 2), that delta in ``analyze/ensembles/delta`` (C, nT),
   and the fields of Fig. 4 in ``analyze/ensembles/maps`` (C, nT, 4, 2, N).
   The GlassBench-layout correlations (glassdist.fields.glassbench) of the same task in
   ``analyze/glassbench/pearson`` and ``spearman`` (C, nT, A, 2, S + 1, T): indicator, propensity
   [bare, coarse-grained at the chosen xi_Delta], group [each species, all], output time
   (attribute ``glassbench`` of group analyze names the axes).
The evidence behind Gamma (``analyze/trust/*``; M = members: gradcam/members, or gradcam/gamma as
the single member of a store without it; V = randomisation levels, attribute randomisation_levels
of group gradcam; I = A - 1 structural indicators; S = analyze.null_samples; R = analyze.bootstrap;
arrays of an absent gradcam variant are not made). Test replica t, at xi violin, no sign flips:
``trust/agreement`` (Rt, 2) mean pairwise Pearson of the coarse-grained members; ``trust/members``
(Rt, 2, M, I), ``trust/randomised`` (Rt, 2, M, V, I), ``trust/shuffled``, ``trust/input`` (Rt, 2, I):
Pearson of each Gamma variant with each structural indicator; ``trust/partial`` (Rt, 2, 2, I):
Gamma-bar with each indicator given Gamma^0 [0] and given the local composition [1] (the fraction
of small particles coarse-grained at xi; at xi = 0 in a window of the first-shell radius 1.5 max
sigma_ii); ``trust/pairs_null`` (Rt, 2, S, P): each Table S2 pair with its first field periodically
shifted; ``trust/C_r_members`` (Rt, M, B): each member's bare C_Gamma(r) of the glass (Fig. 8; their
mean over the valid glasses in ``structure/members_mean`` (M, B), first zeros in the tables'
``r_Gamma_members``). Configuration c, temperature T: ``trust/propensity/members`` (C, nT, M, T),
``randomised`` (C, nT, M, V, T), ``shuffled``, ``input`` (C, nT, T): C(variant, Delta)(t) as
dynamics/pearson_t (Gamma's sign convention); ``partial`` (C, nT, 2, T); ``pearson_t_ci``,
``pearson_t_null`` (C, nT, A, T, 2): spatial-block 95 % interval and shifted-field null band of each
C_{alpha,Delta}(t) (Fig. 5); ``V_boot`` (C, nT, R, A), ``V_null`` (C, nT, S, A): their maxima over
output times per block resample / shift; ``S1_boot`` (C, nT, R, 2, A), ``S1_null`` (C, nT, S, 2, A):
the Table S1 maxima over (delta, xi) per resample / shift (every xi uses the same shift);
``S1_members`` (C, nT, 2, M, 3): Table S1's (C_max, delta*, xi*) of each member's Gamma.
When every task is done, the summaries (Tables III, IV, V, S1, S2, r_alpha of Fig. 8) go to
the attribute ``tables`` of group ``analyze`` and the mean C_alpha(r) to
``analyze/structure/mean`` and ``sem`` (A, B). Intervals ([low, high] last axis; NaN = None:
fewer than 2 values or blocks): ``S2_ci`` (2, P, 2) bootstrap of the mean over valid configurations,
``S2_null`` (2, P, 2) band of that mean with shifted fields; ``III_ci`` (K, 2) mean resolved xi_Delta
over configurations and temperatures; ``IV_ci``, ``IV_null`` (C, nT, 5, 2) of each Table IV entry
(block resamples; the row's first field shifted); ``V_ci``, ``V_null`` (C, A, 2) of the maximum over
temperatures and times (block resamples; shifted fields, same grid);
``S1_ci``, ``S1_null`` (C, nT, 2, A, 2); ``fig5_ci``, ``fig5_null`` (C, nT, A, T, 2); ``II_ci``
(M, 2, 2) Clopper-Pearson of each member's class accuracies. ``trust``: {members, member_source,
indicators, classes, agreement {mean, ci, n, median, quantiles {q, values}, hist {edges, counts},
threshold}, verdict ("agree" | "disagree" | "one member"), sentence, flat_members (members whose Gamma
is constant everywhere), member_mean (2, M, I),
members_disagreeing_in_sign [{class, indicator, positive, negative, values}], consensus {mean, ci}
(2, I) of Gamma-bar, randomised {mean, ci (V, 2, I), reproduces, levels, no_learnt_information
(2, I)}, shuffled and input {mean, ci (2, I), reproduces, no_map (2,): valid configurations where its
Gamma is constant (no correlation; the mean is over the others)} (or {absent: why}), partial {given_input,
given_composition: {mean, ci}, composition_xi, note}, propensity {at, members (C, M), randomised
(C, M, V), shuffled, input (C,), partial (C, 2), consensus (C, 3) Gamma-bar's value and Fig. 5's
interval there, reproduces {randomised (C, V), shuffled, input (C,)}: the value lies in that
interval}, notes}; "reproduces": the variant's mean lies in Gamma-bar's 95 % interval or Gamma-bar's
mean in the variant's. A = the analysed indicators (attribute
``indicators``: Grad-CAM first, then indicators.compute; glassdist.structure.indicators), P = their pairs
(attribute ``pairs``; 3 for the paper's Gamma, Upsilon, Theta), K = len(analyze.deltas), X = len(analyze.xi_grid),
B = correlation_bins + 1.
"""

from __future__ import annotations

import warnings
import zlib
from pathlib import Path

import numpy as np

from functools import partial

from .. import layout
from ..fields import analysis, glassbench
from ..structure import indicators as registry
from ..fields import uncertainty
from ..dynamics.crd import propensity_at_delta, sub_ensembles
from ..spec import Spec, fixed_xi, load
from ..layout import VARIANTS, dims, gamma_arrays, has_ensembles
from ..store import Store
from .common import exit_code, farm
from .propensity import glass_replicas, stored_temperatures

NAME = "analyze"


def phases(spec: Spec) -> tuple[range, range, range]:
    """Task ids of the scans, the test replicas and the correlations (module docstring)."""
    d = dims(spec)
    Rt, CT = d["Rt"], d["C"] * d["nT"]
    return range(Rt, Rt + CT), range(Rt), range(Rt + CT, Rt + 2 * CT)


def n_tasks(spec: Spec) -> int:
    return phases(spec)[2].stop


def ready(store: Store, spec: Spec) -> np.ndarray:
    """(n_tasks,) bool: the inputs of each task are done upstream (and, in phase 2, the
    coarse-graining lengths are chosen)."""
    d = dims(spec)
    scans, replicas, correlations = phases(spec)
    done = {
        name: (store.ledger(name).done_mask() if f"ledger/{name}" in store.root else None)
        for name in ("gradcam", "indicators", "propensity_reduce")
    }
    out = np.zeros(n_tasks(spec), bool)
    if done["gradcam"] is None or done["indicators"] is None:
        return out
    test = spec.replicas_of("test")
    config_ok = done["gradcam"] & done["indicators"][test]  # (Rt,)
    chosen = NAME in store.root and "xi" in store.root[NAME].attrs
    out[replicas.start : replicas.stop] = config_ok & chosen
    if done["propensity_reduce"] is not None:
        conf = np.asarray(spec.propensity.configurations)
        reduced = (done["propensity_reduce"].reshape(d["C"], d["nT"]) & config_ok[conf][:, None]).ravel()
        out[scans.start : scans.stop] = reduced
        out[correlations.start : correlations.stop] = reduced & chosen
    return out


def prepare(campaign_dir: Path, spec: Spec) -> list[int]:
    """Check the spec, create the arrays and the ledger; return the tasks to do now (the others
    wait for an upstream stage or the coarse-graining lengths: :func:`waiting`)."""
    store = Store(campaign_dir)
    store.require_needs(NAME, spec=spec)
    store.check_stage(NAME, spec)
    tasks_write = [path for path, array in layout.arrays(NAME, spec, store).items() if array.chunks is not None]
    missing = [path.removeprefix(f"{NAME}/") for path in tasks_write if path not in store.root]  # a newer glassdist's
    older = bool(missing) and store.stage_started(NAME) and store.ledger(NAME).done_mask().any()
    a = spec.analyze
    ensembles = sub_ensembles(spec.propensity.samples, spec.propensity.main_samples)
    store.create_arrays(NAME, spec)[f"{NAME}/structure/r"][:] = analysis.correlation_radii(
        a.correlation_rmax, a.correlation_bins
    )
    store.root[NAME].attrs.update(
        {
            "indicators": [i.name for i in registry.analysed(spec)],
            "pairs": [list(p) for p in registry.pairs(dims(spec)["A"])],
            "one_minus": list(a.one_minus),
            "deltas": list(a.deltas),
            "xi_grid": list(a.xi_grid),
            "temperatures": stored_temperatures(store).tolist(),
            "replicas": glass_replicas(spec).tolist(),
            "glassbench": {
                "propensity": list(glassbench.PROPENSITY),
                "groups": glassbench.groups(spec.system.species),
                "xi": "Delta",
            },  # the coarse-graining of the propensity: attribute xi's "Delta"
            "test_replicas": spec.replicas_of("test").tolist(),
            "ensemble_columns": analysis.ensemble_columns(list(ensembles)) if ensembles else [],
        }
    )
    if older:  # an analysis by a glassdist that did not make some of today's arrays: every task again
        print(
            f"{NAME}: this analysis predates arrays of this glassdist ({', '.join(missing[:3])}"
            f"{', ...' if len(missing) > 3 else ''}): it is redone"
        )
        store.ledger(NAME).reopen_all()
        store.root[NAME].attrs.pop("tables", None)
    todo = store.ledger(NAME, n_tasks(spec)).todo()
    ok = ready(store, spec)
    return [int(t) for t in todo if ok[t]]


def waiting(store: Store, spec: Spec) -> int:
    """Tasks not done whose inputs are not ready (:func:`ready`)."""
    return int((~ready(store, spec)[store.ledger(NAME).todo()]).sum())


def _fields(store: Store, spec: Spec, t: int) -> np.ndarray:
    """Bare indicators of test replica t: (2, N, A) [class axis: liquid, glass], A in the order
    of glassdist.structure.indicators.analysed (Grad-CAM first)."""
    replica = int(store.root["gradcam/replicas"][t])
    ind = store.root["indicators"]
    return np.stack(
        [store.root["gradcam/gamma"][t]] + [ind[i.name][replica] for i in registry.structural(spec)], axis=-1
    )


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
            results = [
                analysis.configuration_analysis(
                    positions[cls],
                    fields[cls],
                    L,
                    chosen_xi(store)["violin"],
                    a.correlation_rmax,
                    a.correlation_bins,
                    pairs,
                )
                for cls in (0, 1)
            ]
            group["pairs/pearson"][t] = np.stack([r[0] for r in results])
            group["pairs/spearman"][t] = np.stack([r[1] for r in results])
            group["structure/C_r"][t] = results[1][2]
            trust_replica(store, spec, t, positions, fields)
        else:
            correlation_task(store, spec, *divmod(task - correlations.start, dims(spec)["nT"]))


def seed(spec: Spec, label: str, *index: int) -> list[int]:
    """Seed of one resampling (bootstrap, shifts): the campaign seed, the label and indices."""
    return [spec.campaign.seed, zlib.crc32(label.encode()), *index]


def _variants(store: Store, t: int, cls: int) -> dict:
    """The bare Gamma variants of test replica t, class cls: name -> (N, F) (members (N, M),
    randomised (N, M V), shuffled and input (N, 1)) for those stored (:func:`gamma_arrays`)."""
    g = gamma_arrays(store)
    members = g["members"][t][:, cls] if g["members"] is not None else store.root["gradcam/gamma"][t, cls][None]
    out = {"members": members.T}
    if "randomised" in g:
        r = g["randomised"][t][:, :, cls]  # (M, V, N)
        out["randomised"] = r.reshape(-1, r.shape[-1]).T
    out.update({name: g[name][t, cls][:, None] for name in ("shuffled", "input") if name in g})
    return out


def trust_replica(store: Store, spec: Spec, t: int, positions: np.ndarray, fields: np.ndarray) -> None:
    """Phase 2, test replica t: inter-member agreement, the Gamma variants' Pearson with the
    structural indicators, the partial correlations and the shifted-field null of every Table S2
    pair at xi violin into ``analyze/trust/*`` (module docstring)."""
    a, L, group = spec.analyze, spec.box_length, store.root[NAME]
    xi, pairs = chosen_xi(store)["violin"], registry.pairs(fields.shape[-1])
    rows = {}
    for cls in (0, 1):
        comp = analysis.composition(positions[cls], store.types(), spec.sigma, L, xi)
        variants = _variants(store, t, cls)
        res = analysis.gamma_variants(positions[cls], fields[cls], variants, comp, L, xi)
        cg = analysis.smooth(positions[cls], fields[cls], L, xi)
        null = uncertainty.shifted_pearson(
            cg, cg, uncertainty.shift_index(positions[cls], L, a.null_samples, seed(spec, "null", t, cls))
        )
        res["pairs_null"] = np.stack([null[:, i, j] for i, j in pairs], axis=-1)  # (S, P): pair's first field shifted
        for name, value in res.items():
            rows.setdefault(name, []).append(value)
    M = rows["members"][0].shape[0]
    glass = variants["members"]  # (N, M): the loop ends on the glass (cls = 1)
    group["trust/C_r_members"][t] = np.stack(
        [
            analysis.spatial_correlation(positions[1], glass[:, m], L, a.correlation_rmax, a.correlation_bins)[1]
            for m in range(M)
        ]
    )
    group["trust/agreement"][t] = rows["agreement"]
    for name in ("members", "partial", "pairs_null"):
        group[f"trust/{name}"][t] = np.stack(rows[name])
    if "randomised" in rows:
        group["trust/randomised"][t] = np.stack([r.reshape(M, -1, r.shape[-1]) for r in rows["randomised"]])
    for name in ("shuffled", "input"):
        if name in rows:
            group[f"trust/{name}"][t] = np.stack([r[0] for r in rows[name]])


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
    res = analysis.propensity_scan(
        positions,
        fields,
        delta_t,
        Delta_t,
        spec.box_length,
        deltas=a.deltas,
        xi_grid=a.xi_grid,
        flip=flip,
        r_max=a.correlation_rmax,
        bins=a.correlation_bins,
    )
    group["dynamics/delta"][c, t] = delta_t
    for key in ("reached", "C_Delta_r", "xi_Delta", "scan", "xi_star"):
        group[f"dynamics/{key}"][c, t] = getattr(res, key)
    for key in ("Delta", "optimal"):
        group[f"maps/{key}"][c, t] = getattr(res, key)
    trust_scan(store, spec, c, t, positions, fields, res, flip)


def block_length(spec: Spec, *xi: float) -> float:
    """Side of the spatial blocks of a one-configuration interval: twice the largest
    coarse-graining length of the statistic (eq. 7's kernel reach), at least the first-shell radius."""
    finite = [x for x in xi if np.isfinite(x)]
    return max(2 * max(finite, default=0.0), analysis.FIRST_SHELL * float(np.max(np.diag(spec.sigma))))


def scan_grid(
    positions: np.ndarray, fields: np.ndarray, Delta: np.ndarray, spec: Spec, flip: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The fields of Table S1's (delta, xi) grid: the indicators (N, A) smoothed at every xi, x (N, X A),
    and the maps Delta (K, 2, N) (bare, coarse-grained; PropensityScan.Delta) as y (N, 2 K) ordered
    [cg][k]: their Pearson matrix reshaped (X, A, 2, K) is PropensityScan.scan (2, K, X, A), axes moved."""
    x = np.concatenate(
        [analysis.smooth(positions, fields, spec.box_length, xi, flip) for xi in spec.analyze.xi_grid], 1
    )
    y = np.transpose(Delta, (1, 0, 2)).reshape(2 * len(spec.analyze.deltas), -1).T  # (K, 2, N) -> (N, 2 K)
    return x, y


def trust_scan(
    store: Store,
    spec: Spec,
    c: int,
    t: int,
    positions: np.ndarray,
    fields: np.ndarray,
    res: analysis.PropensityScan,
    flip: np.ndarray,
) -> None:
    """Phase 1, configuration c at temperature index t: the Table S1 maxima over (delta, xi) of
    spatial-block resamples (``trust/propensity/S1_boot`` (R, 2, A), blocks of :func:`block_length` of
    the largest resolved xi_Delta) and of periodically shifted indicators (``S1_null`` (S, 2, A):
    every xi of one shift uses the same shift index)."""
    a, L, group = spec.analyze, spec.box_length, store.root[NAME]
    X, A, K = len(a.xi_grid), fields.shape[1], len(a.deltas)
    x, y = scan_grid(positions, fields, res.Delta, spec, flip)
    boot = uncertainty.block_pearson(
        positions, x, y, L, block_length(spec, *res.xi_Delta), a.bootstrap, seed(spec, "block", c)
    )
    null = uncertainty.shifted_pearson(
        x, y, uncertainty.shift_index(positions, L, a.null_samples, seed(spec, "null-glass", c))
    )

    def grid_max(v):  # (n, X A, 2 K) -> (n, 2, A): max over xi and delta
        return _nanmax(v.reshape(len(v), X, A, 2, K), (1, 4)).transpose(0, 2, 1)

    group["trust/propensity/S1_boot"][c, t], group["trust/propensity/S1_null"][c, t] = grid_max(boot), grid_max(null)
    members = _variants(store, spec.propensity.configurations[c], 1)["members"]  # (N, M)
    smoothed = np.stack([analysis.smooth(positions, members, L, xi, bool(flip[0])) for xi in a.xi_grid])
    group["trust/propensity/S1_members"][c, t] = analysis.table_s1(
        analysis.scan_against(smoothed, res.Delta), a.deltas, a.xi_grid
    )  # (2, M, 3)


def correlation_task(store: Store, spec: Spec, c: int, t: int) -> None:
    """Phase 2, configuration c at temperature index t: C_{alpha,Delta}(t), the maps of Figs. 1, 2
    and Table IV at the chosen lengths into the store."""
    L, group, xi = spec.box_length, store.root[NAME], chosen_xi(store)
    positions, fields, _, Delta_t, flip = _propensity_inputs(store, spec, c, t)
    pearson_t, spearman_t, maps = analysis.propensity_correlations(
        positions, fields, Delta_t, L, xi_alpha=xi["alpha"], xi_Delta=xi["Delta"], flip=flip
    )
    group["dynamics/pearson_t"][c, t], group["dynamics/spearman_t"][c, t] = pearson_t, spearman_t
    group["maps/indicators"][c, t] = maps
    group["glassbench/pearson"][c, t], group["glassbench/spearman"][c, t] = glassbench.species_correlations(
        positions, fields, Delta_t, store.types(), spec.n_species, L, xi["Delta"], flip
    )
    trust_propensity(store, spec, c, t, positions, fields, Delta_t, flip)
    if has_ensembles(spec):
        ens = store.root["propensity/Delta_ensembles"][c, t]  # (4, T, N)
        delta = analysis.ensemble_delta(ens.mean(axis=2))
        fields_at = np.stack([propensity_at_delta(e.mean(axis=1), e, [delta])[0][0] for e in ens])  # (4, N)
        row, maps = analysis.ensemble_table(positions, fields_at, L, xi["Delta"])
        group["ensembles/table"][c, t], group["ensembles/maps"][c, t], group["ensembles/delta"][c, t] = row, maps, delta
        both = np.concatenate([maps[:, 0], maps[:, 1]]).T  # (N, 8): bare, then cg
        boot = uncertainty.block_pearson(
            positions,
            both,
            both,
            L,
            block_length(spec, xi["Delta"]),
            spec.analyze.bootstrap,
            seed(spec, "ensembles", c),
        )  # (R, 8, 8)
        group["ensembles/ci"][c, t] = uncertainty.interval(analysis.ensemble_row(boot))  # (5, 2)
        shifts = uncertainty.shift_index(positions, L, spec.analyze.null_samples, seed(spec, "null-ensembles", c))
        null = uncertainty.shifted_pearson(both, both, shifts)  # (S, 8, 8): the row's first field shifted
        group["ensembles/null"][c, t] = uncertainty.interval(analysis.ensemble_row(null))  # (5, 2)


def trust_propensity(
    store: Store,
    spec: Spec,
    c: int,
    t: int,
    positions: np.ndarray,
    fields: np.ndarray,
    Delta_t: np.ndarray,
    flip: np.ndarray,
) -> None:
    """Phase 2, configuration c at temperature index t, at the chosen lengths: the Gamma variants'
    C(., Delta)(t) and Gamma-bar's partial correlations (``trust/propensity/<variant>``, ``partial``),
    the spatial-block interval and the shifted-field null band of every C_{alpha,Delta}(t) (Fig. 5:
    ``pearson_t_ci``, ``pearson_t_null`` (A, T, 2)) and their maxima over the output times for Table V
    (``V_boot`` (R, A), ``V_null`` (S, A); the same resamples and shifts at every temperature)."""
    a, L, group, xi = spec.analyze, spec.box_length, store.root[NAME], chosen_xi(store)
    conf = spec.propensity.configurations[c]
    comp = analysis.composition(positions, store.types(), spec.sigma, L, xi["alpha"])
    res = analysis.variant_propensity(
        positions,
        fields[:, 0],
        _variants(store, conf, 1),
        comp,
        Delta_t,
        L,
        xi_alpha=xi["alpha"],
        xi_Delta=xi["Delta"],
        flip=bool(flip[0]),
    )
    M = res["members"].shape[0]
    group["trust/propensity/members"][c, t], group["trust/propensity/partial"][c, t] = res["members"], res["partial"]
    if "randomised" in res:
        group["trust/propensity/randomised"][c, t] = res["randomised"].reshape(M, -1, res["randomised"].shape[-1])
    for name in ("shuffled", "input"):
        if name in res:
            group[f"trust/propensity/{name}"][c, t] = res[name][0]
    alpha = analysis.smooth(positions, fields, L, xi["alpha"], flip)  # (N, A)
    Delta_cg = analysis.smooth(positions, np.asarray(Delta_t).T, L, xi["Delta"])  # (N, T)
    boot = uncertainty.block_pearson(
        positions, alpha, Delta_cg, L, block_length(spec, xi["alpha"], xi["Delta"]), a.bootstrap, seed(spec, "block", c)
    )  # (R, A, T)
    null = uncertainty.shifted_pearson(
        alpha, Delta_cg, uncertainty.shift_index(positions, L, a.null_samples, seed(spec, "null-glass", c))
    )  # (S, A, T)
    group["trust/propensity/pearson_t_ci"][c, t] = uncertainty.interval(boot)
    group["trust/propensity/pearson_t_null"][c, t] = uncertainty.interval(null)
    group["trust/propensity/V_boot"][c, t] = _nanmax(boot, -1)
    group["trust/propensity/V_null"][c, t] = _nanmax(null, -1)


def _nanmax(x: np.ndarray, axis) -> np.ndarray:
    """np.nanmax that gives NaN for an all-NaN slice without a warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmax(x, axis=axis)


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
        return analysis.XiChoice(
            "rule",
            float("nan"),
            float("nan"),
            0.0,
            notes=[
                "no propensity runs, so the paper's rule has no xi_Delta: Fig. 6 and Table S2 use the bare fields "
                "(xi = 0); give fixed lengths (analyze.xi = {Delta = ..., alpha = ..., violin = ...}) to coarse-grain"
            ],
        )
    return analysis.choose_xi(
        group["dynamics/xi_Delta"][:],
        group["dynamics/scan"][:],
        a.deltas,
        a.xi_grid,
        r_min=float(r[1]),
        half_box=min(a.correlation_rmax, spec.box_length / 2),
    )


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
    members_mean, _, r_members = analysis.mean_correlation(group["trust/C_r_members"][:][valid[:, 1]], r)
    group["structure/mean"][:], group["structure/sem"][:] = mean, sem
    group["structure/members_mean"][:] = members_mean
    dyn = {k: group[f"dynamics/{k}"][:] for k in ("delta", "reached", "xi_Delta", "scan", "pearson_t")}
    C = dyn["delta"].shape[0]
    half_box, r_min = min(a.correlation_rmax, spec.box_length / 2), float(r[1])
    tables = {
        "III": {
            "xi_Delta": _json(dyn["xi_Delta"]),
            "reached": dyn["reached"].tolist(),
            "unresolved": [
                [[analysis.unresolved(x, r_min, half_box) for x in row] for row in conf] for conf in dyn["xi_Delta"]
            ],
            "max_delta": _json(np.nanmax(dyn["delta"], axis=-1) if C else np.zeros((0, dyn["delta"].shape[1]))),
            "xi": chosen_xi(store),
            "r_Gamma_unresolved": analysis.unresolved(r_alpha[0], r_min, half_box) if len(r_alpha) else "",
        },
        "V": [[_json(v) for v in analysis.table_v(dyn["pearson_t"][c], dyn["delta"][c])] for c in range(C)],
        "S1_members": _json(group["trust/propensity/S1_members"][:]),
        "S1": _json(
            [
                [analysis.table_s1(dyn["scan"][c, t], a.deltas, a.xi_grid) for t in range(dyn["scan"].shape[1])]
                for c in range(C)
            ]
        ),
        "S2": _json(analysis.table_s2(p, s, valid)),
        "S2_counts": valid.sum(axis=0).tolist(),
        "misclassified": int((~correct).sum()),
        "r_alpha": _json(r_alpha),
        "r_Gamma_members": _json(r_members),
    }
    if "ensembles/table" in group:
        tables["IV"] = _json(group["ensembles/table"][:])
        tables["IV_delta"] = _json(group["ensembles/delta"][:])
    tables.update(interval_tables(store, spec, valid, tables))
    tables["trust"] = trust_tables(store, spec, valid)
    group.attrs["tables"] = tables
    return tables


def interval_tables(store: Store, spec: Spec, valid: np.ndarray, tables: dict) -> dict:
    """95 % intervals and null bands of Tables II, III, IV, V, S1, S2 and Fig. 5 (``tables`` keys
    ``<table>_ci``, ``<table>_null``: module docstring)."""
    a, group, R = spec.analyze, store.root[NAME], spec.analyze.bootstrap
    p, pairs_null = group["pairs/pearson"][:], group["trust/pairs_null"][:]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a class without valid configurations: NaN
        s2_null = np.stack([uncertainty.interval(np.nanmean(pairs_null[valid[:, cls], cls], axis=0)) for cls in (0, 1)])
    out = {
        "S2_ci": _json(
            np.stack([uncertainty.bootstrap_mean(p[valid[:, cls], cls], R, seed(spec, "S2", cls)) for cls in (0, 1)])
        ),
        "S2_null": _json(s2_null),
    }
    xi_Delta = group["dynamics/xi_Delta"][:]
    xi_Delta = np.where(
        np.array(tables["III"]["unresolved"], dtype=object).reshape(xi_Delta.shape) == "", xi_Delta, np.nan
    )
    out["III_ci"] = _json(uncertainty.bootstrap_mean(xi_Delta.reshape(-1, len(a.deltas)), R, seed(spec, "III")))
    if "ensembles/ci" in group:
        out["IV_ci"] = _json(group["ensembles/ci"][:])  # (C, nT, 5, 2)
        out["IV_null"] = _json(group["ensembles/null"][:])  # (C, nT, 5, 2)
    t = group["trust/propensity"]
    out["V_ci"] = _json(uncertainty.interval(_nanmax(t["V_boot"][:], 1), axis=1))  # (C, A, 2)
    out["V_null"] = _json(uncertainty.interval(_nanmax(t["V_null"][:], 1), axis=1))
    out["S1_ci"] = _json(uncertainty.interval(t["S1_boot"][:], axis=2))  # (C, nT, 2, A, 2)
    out["S1_null"] = _json(uncertainty.interval(t["S1_null"][:], axis=2))
    out["fig5_ci"], out["fig5_null"] = _json(t["pearson_t_ci"][:]), _json(t["pearson_t_null"][:])
    acc = np.atleast_2d(store.root["train/test_accuracy"][:])  # (M or 1, 2)
    n = store.root["train/test_counts"][:] if "train/test_counts" in store.root else np.full(2, valid.shape[0])
    out["II_ci"] = _json([[uncertainty.clopper_pearson(round(x * k), k) for x, k in zip(row, n)] for row in acc])
    return out


def _configuration_summary(values: np.ndarray, valid: np.ndarray, spec: Spec, label: str) -> dict:
    """{"mean": (2, ...), "ci": (2, ..., 2)} over the valid test configurations of each class of
    ``values`` (Rt, 2, ...): the mean and its bootstrap interval."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.stack([np.nanmean(values[valid[:, cls], cls], axis=0) for cls in (0, 1)])
    ci = np.stack(
        [
            uncertainty.bootstrap_mean(values[valid[:, cls], cls], spec.analyze.bootstrap, seed(spec, label, cls))
            for cls in (0, 1)
        ]
    )
    return {"mean": mean, "ci": ci}


def _reproduces(variant: dict, reference: dict) -> np.ndarray:
    """(bool array) where the variant's mean lies in the reference's interval or the reference's
    mean in the variant's: the variant reproduces the correlation within the 95 % interval."""

    def inside(x, ci):
        return (ci[..., 0] <= x) & (x <= ci[..., 1])

    return inside(variant["mean"], reference["ci"]) | inside(reference["mean"], variant["ci"])


def trust_tables(store: Store, spec: Spec, valid: np.ndarray) -> dict:
    """``tables["trust"]``: what says whether Gamma is a property of the glass (module docstring)."""
    a, group, classes = spec.analyze, store.root[NAME], list(spec.class_names)
    names = list(group.attrs["indicators"])[1:]
    t, n_ind = group["trust"], len(names)
    g = gamma_arrays(store)
    agree = t["agreement"][:]  # (Rt, 2)
    members = t["members"][:]  # (Rt, 2, M, I)
    M = members.shape[2]
    notes = [
        f"95 % intervals: percentile bootstrap, {a.bootstrap} resamples (analyze.bootstrap) over the correctly "
        "classified test configurations, or over spatial blocks of one configuration (side: twice the largest "
        "coarse-graining length, at least the first-shell radius); null bands: 2.5-97.5 % of the same statistic "
        f"with one field periodically shifted ({a.null_samples} random shifts, analyze.null_samples; a maximum "
        f"over a grid against the maximum over the same grid); seeds: campaign.seed = {spec.campaign.seed} and a "
        "label."
    ]
    out = {
        "members": M,
        "indicators": names,
        "classes": classes,
        "member_source": "gradcam/members"
        if g["members"] is not None
        else "gradcam/gamma as the only member (the store has no gradcam/members: one training)",
    }
    hist_edges = np.linspace(-1, 1, 21)
    q = [0.05, 0.25, 0.5, 0.75, 0.95]
    per_class = [agree[valid[:, cls], cls] for cls in (0, 1)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        summary = _configuration_summary(agree, valid, spec, "agreement")
        out["agreement"] = {
            "mean": _json(summary["mean"]),
            "ci": _json(summary["ci"]),
            "n": [int(len(v)) for v in per_class],
            "median": _json([np.nanmedian(v) if len(v) else np.nan for v in per_class]),
            "quantiles": {
                "q": q,
                "values": _json([np.nanquantile(v, q) if len(v) else np.full(5, np.nan) for v in per_class]),
            },
            "hist": {
                "edges": hist_edges.tolist(),
                "counts": [np.histogram(v[np.isfinite(v)], hist_edges)[0].tolist() for v in per_class],
            },
            "threshold": a.agreement_threshold,
        }
        member_mean = np.stack([np.nanmean(members[valid[:, cls], cls], axis=0) for cls in (0, 1)])  # (2, M, I)
    if M < 2:
        out["verdict"] = "one member"
        out["sentence"] = (
            "One training only (train.ensemble = 1 or a store without gradcam/members): the agreement "
            "between trainings is not measured, so nothing here tells whether Γ is a property of the "
            "glass."
        )
    else:
        low = np.nanmin(summary["mean"]) if np.isfinite(summary["mean"]).any() else np.nan
        out["verdict"] = "agree" if low >= a.agreement_threshold else "disagree"
        out["sentence"] = (
            f"The {M} members agree (mean agreement {low:.2f} >= {a.agreement_threshold:g} in both "
            "classes): Γ̄ is a property of the glass at this training size."
            if out["verdict"] == "agree"
            else f"The {M} members disagree (mean agreement {low:.2f} < {a.agreement_threshold:g} in at "
            "least one class): the Γ results are not a property of the glass at this training size."
        )
    # a member whose Gamma correlates with nothing in any configuration drew no map (a constant Gamma:
    # a training that did not learn); the agreement leaves its pairs out, so say so
    drew = np.isfinite(member_mean).any(axis=(0, 2))  # (M,)
    out["flat_members"] = np.flatnonzero(~drew).tolist() if M > 1 and drew.any() else []
    if out["flat_members"]:
        out["sentence"] += (
            f" Member(s) {', '.join(map(str, out['flat_members']))} drew no map (Γ constant in every "
            "test configuration: a training that did not learn, see Table II and the learning curves); "
            "the agreement is over the other members' pairs, and a constant map does not change Γ̄'s "
            "correlations."
        )
    out["member_mean"] = _json(member_mean)
    out["members_disagreeing_in_sign"] = [
        {
            "class": classes[cls],
            "indicator": names[i],
            "positive": np.flatnonzero(member_mean[cls, :, i] > 0).tolist(),
            "negative": np.flatnonzero(member_mean[cls, :, i] < 0).tolist(),
            "values": _json(member_mean[cls, :, i]),
        }
        for cls in (0, 1)
        for i in range(n_ind)
        if (member_mean[cls, :, i] > 0).any() and (member_mean[cls, :, i] < 0).any()
    ]
    consensus = _configuration_summary(group["pairs/pearson"][:][..., :n_ind], valid, spec, "consensus")
    out["consensus"] = {k: _json(v) for k, v in consensus.items()}
    levels = list(store.root["gradcam"].attrs.get("randomisation_levels", [])) if "randomised" in g else []
    for name in VARIANTS:
        if name not in g:
            out[name] = {"absent": f"no gradcam/{name} in the store (a gradcam stage without it)"}
            continue
        values = t[name][:]
        if name == "randomised":  # (Rt, 2, M, V, I)
            values = np.nanmean(values, axis=2)  # (Rt, 2, V, I): member mean
        res = _configuration_summary(values, valid, spec, name)
        if name == "randomised":
            res = {k: np.moveaxis(v, 1, 0) for k, v in res.items()}  # (V, 2, I[, 2])
        out[name] = {k: _json(v) for k, v in res.items()}
        out[name]["reproduces"] = _reproduces(res, consensus).tolist()
        if name != "randomised":  # a model that learnt nothing can draw no map: Gamma zero, no correlation
            out[name]["no_map"] = [int((np.isnan(values[:, cls]).all(axis=-1) & valid[:, cls]).sum()) for cls in (0, 1)]
        if name == "randomised":
            out[name]["levels"] = levels or [f"level {v}" for v in range(values.shape[2])]
            out[name]["no_learnt_information"] = np.asarray(out[name]["reproduces"]).any(axis=0).tolist()
    partial = _configuration_summary(t["partial"][:], valid, spec, "partial")  # (2, 2, I[, 2])
    xi = chosen_xi(store)["violin"]
    out["partial"] = {
        "given_input": {k: _json(v[:, 0]) for k, v in partial.items()},
        "given_composition": {k: _json(v[:, 1]) for k, v in partial.items()},
        "composition_xi": analysis.composition_xi(spec.sigma, xi),
        "note": (
            "local composition: the fraction of small particles (species of smallest σ_ii) coarse-grained at "
            + (
                f"ξ = {xi:g}"
                if xi > 0
                else f"ξ = {analysis.composition_xi(spec.sigma, xi):.3g}: at ξ = 0 a "
                f"window of the first-shell radius {analysis.FIRST_SHELL:g} max σ_ii"
            )
        )
        + ("" if "input" in g else "; no gradcam/input: no partial correlation given Γ⁰"),
    }
    out["propensity"] = _propensity_trust(store, t, g)
    out["notes"] = notes
    return out


def _propensity_trust(store: Store, t, g: dict) -> dict:
    """The Gamma variants against Delta at Gamma-bar's Table V maximum (the temperature and output
    time of each configuration's largest C(Gamma-bar, Delta)): members (C, M), randomised (C, M, V),
    shuffled (C,), input (C,), partial (C, 2) [given Gamma^0, given the composition]; Gamma-bar's own
    value there with its spatial-block interval (Fig. 5's), consensus (C, 3) [C, low, high]; and
    reproduces {randomised (C, V) (the member mean of each level), shuffled, input (C,)}: the variant's
    value lies in that interval."""
    p = store.root[NAME]["dynamics/pearson_t"][:, :, 0]  # (C, nT, T)
    ci = t["propensity/pearson_t_ci"][:, :, 0]  # (C, nT, T, 2)
    out = {"at": "the temperature and output time of each configuration's largest C(Γ̄, Δ) (Table V)"}
    variants = [n for n in VARIANTS if n in g]
    names = ["members", "partial", *variants]
    reproduces = {}
    for c in range(p.shape[0]):
        at = np.unravel_index(np.nanargmax(p[c]), p[c].shape) if np.isfinite(p[c]).any() else None
        values = {}
        for name in names:
            v = t[f"propensity/{name}"][c]  # (nT, ..., T)
            values[name] = v[at[0], ..., at[1]] if at else np.full(v.shape[1:-1], np.nan)
            out.setdefault(name, []).append(_json(values[name]))
        own = np.array([p[c][at], *ci[c][at]]) if at else np.full(3, np.nan)
        out.setdefault("consensus", []).append(_json(own))
        for name in variants:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # a level with no value (no propensity)
                value = np.nanmean(values[name], axis=0) if name == "randomised" else values[name]  # (V,) or ()
            inside = (own[1] <= value) & (value <= own[2])  # False where anything is NaN
            reproduces.setdefault(name, []).append(np.asarray(inside).tolist())
    out["reproduces"] = reproduces
    return out


def run(campaign_dir, args=None) -> int:
    campaign_dir = Path(campaign_dir)
    spec = load(campaign_dir)
    store = Store(campaign_dir)
    todo = prepare(campaign_dir, spec)
    ledger = store.ledger(NAME)
    if not todo and "tables" in store.root[NAME].attrs and ledger.done_mask().all():
        print(f"{NAME}: already done")
        return 0
    work = partial(analyze_block, str(campaign_dir), spec)
    result = farm(NAME, todo, work, ledger, spec)
    scans = phases(spec)[0]
    if ledger.done_mask()[scans.start : scans.stop].all() and "xi" not in store.root[NAME].attrs:
        xi = choose(store, spec)
        if xi.problem:
            print(
                f"{NAME}: the paper's rule gives no coarse-graining length: {xi.problem}. Fix: run the "
                f"propensity longer (propensity.steps) or widen analyze.correlation_rmax, or start a new "
                f"campaign with fixed lengths: `glassdist init NEWDIR --from {campaign_dir} --set "
                f"'analyze.xi={{Delta = 4.0, alpha = 8.0, violin = 4.0}}'`"
            )
            return 1
        store.root[NAME].attrs["xi"] = {
            "rule": xi.rule,
            **{k: _json(getattr(xi, k)) for k in ("Delta", "alpha", "violin", "Delta_at")},
            "alpha_star": _json(xi.alpha_star or []),
            "notes": xi.notes,
        }
        for note in xi.notes:
            print(f"{NAME}: {note}")
        print(
            f"{NAME}: coarse-graining lengths ({xi.rule}): xi_Delta = {xi.Delta:.3g}, xi_alpha = {xi.alpha:.3g}, "
            f"Fig. 6 xi = {xi.violin:.3g}"
        )
        result = farm(NAME, prepare(campaign_dir, spec), work, ledger, spec)
    if ledger.done_mask().all():
        tables = summarize(store, spec)
        report_reach(spec, tables, stored_temperatures(store))
    elif (left := waiting(store, spec)) and not result.failed:
        print(f"{NAME}: {left} task(s) wait for gradcam/indicators/propensity results; rerun after those stages")
    return exit_code(result, NAME)


def report_reach(spec: Spec, tables: dict, temperatures: np.ndarray) -> None:
    """Say which analyze.deltas the propensity runs did not reach (their results are NaN)."""
    reached, max_delta = np.asarray(tables["III"]["reached"]), tables["III"]["max_delta"]
    if not reached.size:  # no propensity (stage skipped)
        return
    for c, t in zip(*np.nonzero(~reached.all(axis=-1))):
        missed = [d for d, ok in zip(spec.analyze.deltas, reached[c, t]) if not ok]
        print(
            f"{NAME}: configuration {spec.propensity.configurations[c]} at T = "
            f"{temperatures[t]:.4g} reached delta = {max_delta[c][t]:.3g} only: delta "
            f"{', '.join(f'{d:g}' for d in missed)} not reached (run propensity longer: propensity.steps)"
        )
