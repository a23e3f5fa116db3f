"""The store's layout: every array each stage writes, as a function of the campaign spec.

:func:`arrays` is the one declaration of a stage's outputs (name, shape, dtype, chunks, fill
value) that everything else reads: the stages create their arrays from it, `glassdist estimate`
sums it into the store size (exact: it equals the arrays' bytes in a finished store, a test checks
it against a real run), `glassdist status --verify` checks a done stage's arrays against it, and a
test checks that docs/store.md names every array. Array paths are the store's ("quench/positions").
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .structure import indicators as registry
from .constants import HISTORY_KEYS
from .dynamics.crd import sub_ensembles
from .md.isoconf import output_steps
from .md.schedule import hold_steps, thermo_steps
from .pipeline import n_temperatures, propensity_shape, snapshot_shape
from .spec import Spec

#: Gamma variants of the gradcam stage besides the members: (Rt, M, V, 2, N), (Rt, 2, N), (Rt, 2, N).
VARIANTS = ("randomised", "shuffled", "input")


@dataclass(frozen=True)
class Array:
    """One stored array. chunks: None = one chunk; fill_value None = NaN for floats, else 0."""

    shape: tuple[int, ...]
    dtype: str = "float64"
    chunks: tuple[int, ...] | None = None
    fill_value: float | int | bool | None = None

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * np.dtype(self.dtype).itemsize

    @property
    def chunk_shape(self) -> tuple[int, ...]:
        return self.shape if self.chunks is None else self.chunks

    @property
    def fill(self):
        if self.fill_value is not None:
            return self.fill_value
        return np.nan if np.dtype(self.dtype).kind == "f" else 0


def per_task(shape: tuple[int, ...], dtype: str = "float64", axes: int = 1, fill_value=None) -> Array:
    """An array with one chunk per index of its first ``axes`` axes (one task's part)."""
    return Array(tuple(shape), dtype, (1,) * axes + tuple(shape[axes:]), fill_value)


def arrays(stage: str, spec: Spec, store=None, **given) -> dict[str, Array]:
    """{store path: Array} of every array ``stage`` writes for ``spec``. ``store``: the analyze
    stage's trust arrays follow the Gamma arrays the store holds; ``given``: the gradcam stage's
    model (members, levels, shuffled) when it explains another campaign's model."""
    if stage == "analyze":
        return analyze(spec, store)
    if stage == "gradcam":
        return gradcam(spec, **(given or stored_model(store)))
    return LAYOUTS[stage](spec)


def stored_model(store) -> dict:
    """The model a store's gradcam results explain (members, levels, shuffled; {} before it ran)."""
    attrs = store.root["gradcam"].attrs if store is not None and "gradcam" in store.root else {}
    if "model" not in attrs:
        return {}
    return {
        "members": len(attrs["model"]["members"]),
        "levels": len(attrs["randomisation_levels"]),
        "shuffled": bool(attrs["model"]["shuffled"]),
    }


def system(spec: Spec) -> dict[str, Array]:
    """Made with the store: the species index of every particle."""
    return {"system/types": Array((spec.system.n_particles,), "int8")}


def quench(spec: Spec) -> dict[str, Array]:
    R, N, dim = spec.quench.replicas, spec.system.n_particles, spec.dim
    P, (k, nT) = len(thermo_steps(spec)), snapshot_shape(spec)
    out = {
        "quench/positions": per_task((R, 2, N, dim)),
        "quench/pe": per_task((R, 2)),
        "quench/temperature": per_task((R, 2)),
    }
    out.update({f"quench/{name}": per_task((R, P)) for name in ("thermo_T", "thermo_target", "thermo_pe")})
    if k and nT:
        out["quench/snapshots"] = per_task((k, nT, N, dim))
    if spec.imported:  # which (replica, class) came from a file (glassdist.commands.importer)
        out["quench/imported"] = per_task((R, 2), "bool", fill_value=False)
    held = 0 if spec.imported else len(hold_steps(spec))  # imported liquids were not held here
    if held:
        out.update(
            {
                "quench/hold_fs": per_task((R, held)),
                "quench/hold_pe": per_task((R, held)),
                "quench/k_star": per_task((R,)),
                "quench/tau_alpha": per_task((R,)),
                "quench/liquid_held": per_task((R,), "bool", fill_value=False),
            }
        )
    return out


def inherent(spec: Spec) -> dict[str, Array]:
    if spec.imported:
        return {}
    (k, nT), N = snapshot_shape(spec), spec.system.n_particles
    return {
        "inherent/E0": per_task((k, nT), axes=2),
        "inherent/positions": per_task((k, nT, N, spec.dim), axes=2),
        "inherent/temperatures": Array((nT,)),
        "inherent/E0_mean": Array((nT,)),
        "inherent/fit_residuals": Array((nT,)),
    }


def dataset(spec: Spec) -> dict[str, Array]:
    R, image = spec.quench.replicas, (spec.dataset.grid,) * spec.dim
    return {"dataset/images": per_task((R, 2, *image), "float32"), "dataset/split": Array((R,), "int8")}


def train(spec: Spec) -> dict[str, Array]:
    K, epochs = spec.train.ensemble, spec.train.epochs
    out = {f"train/history/{key}": per_task((K, epochs)) for key in HISTORY_KEYS}
    out.update(
        {
            "train/test_accuracy": per_task((K, 2)),
            "train/consensus_accuracy": Array((2,)),
            "train/test_counts": Array((2,), "int64"),
        }
    )
    if spec.train.shuffled_control:
        out.update({f"train/shuffled_history/{key}": Array((epochs,)) for key in HISTORY_KEYS})
        out["train/shuffled_accuracy"] = Array((2,))
    return out


def gradcam(
    spec: Spec, members: int | None = None, levels: int | None = None, shuffled: bool | None = None
) -> dict[str, Array]:
    """Per test configuration (first axis): the model's K members, its V randomisation levels
    (output, hidden, each convolution) and whether it has a label-shuffled control default to
    this campaign's network (train.ensemble, model.channels, train.shuffled_control)."""
    T, N, grid = spec.n_test, spec.system.n_particles, spec.dataset.grid
    K = spec.train.ensemble if members is None else members
    V = 2 + len(spec.model.channels) if levels is None else levels
    out = {
        f"gradcam/{name}": per_task(shape)
        for name, shape in (
            ("gamma", (T, 2, N)),
            ("gamma_std", (T, 2, N)),
            ("members", (T, K, 2, N)),
            ("p_glass", (T, 2)),
            ("p_glass_members", (T, K, 2)),
            ("randomised", (T, K, V, 2, N)),
            ("input", (T, 2, N)),
        )
    }
    out.update(
        {
            "gradcam/map": per_task((T, 2, *(grid,) * spec.dim), "float32"),
            "gradcam/correct": per_task((T, 2), "bool", fill_value=False),
            "gradcam/replicas": Array((T,), "int64"),
        }
    )
    if spec.train.shuffled_control if shuffled is None else shuffled:
        out["gradcam/shuffled"] = per_task((T, 2, N))
    return out


def indicators(spec: Spec) -> dict[str, Array]:
    R, N, S, bins = spec.quench.replicas, spec.system.n_particles, spec.n_species, spec.indicators.rdf_bins
    out = {f"indicators/{ind.name}": per_task((R, 2, N)) for ind in registry.structural(spec)}
    out.update({"indicators/rdf": per_task((R, 2, S, S, bins)), "indicators/rdf_r": Array((bins,))})
    return out


def propensity(spec: Spec) -> dict[str, Array]:
    C, nT, S = propensity_shape(spec)
    if not C:
        return {}
    N, dim = spec.system.n_particles, spec.dim
    n_out = len(output_steps(spec.propensity.steps, spec.propensity.outputs))
    out = {
        "propensity/traj": per_task((C, nT, S, n_out, N, dim), axes=3),
        "propensity/steps": Array((n_out,), "int64"),
        "propensity/times": Array((n_out,)),
        "propensity/Delta": per_task((C, nT, n_out, N), axes=2),
        "propensity/delta": per_task((C, nT, n_out), axes=2),
        "propensity/run_outputs": per_task((C, nT, S), "int64", axes=3),
        "propensity/run_delta": per_task((C, nT, S), axes=3),
    }
    ensembles = sub_ensembles(S, spec.propensity.main_samples)
    if ensembles:
        out["propensity/Delta_ensembles"] = per_task((C, nT, len(ensembles), n_out, N), axes=3)
    return out


def has_ensembles(spec: Spec) -> bool:
    """Whether the propensity stage stores the Table IV sub-ensembles."""
    return bool(sub_ensembles(spec.propensity.samples, spec.propensity.main_samples))


def gamma_arrays(store) -> dict | None:
    """The stored Gamma arrays the trust analysis reads: {"members": gradcam/members, or None (a
    store made before members: gradcam/gamma is the single member), name: gradcam/<name> for the
    VARIANTS present}; None without a store (every array: size estimates)."""
    if store is None:
        return None
    g = store.root["gradcam"]
    out = {"members": g["members"] if "members" in g else None}
    out.update({name: g[name] for name in VARIANTS if name in g})
    return out


def dims(spec: Spec, store=None) -> dict[str, int]:
    """Sizes of the analyze arrays (names as in glassdist.stages.analyze's docstring); M and V from
    the stored Gamma arrays (:func:`gamma_arrays`; without a store, train.ensemble and the cascade of
    the spec's model: output, hidden, each conv layer)."""
    p, a = spec.propensity, spec.analyze
    A = len(registry.analysed(spec))
    g = gamma_arrays(store)
    M = spec.train.ensemble if g is None else g["members"].shape[1] if g["members"] is not None else 1
    V = 2 + len(spec.model.channels) if g is None else g["randomised"].shape[2] if "randomised" in g else 0
    return {
        "Rt": spec.n_test,
        "C": propensity_shape(spec)[0],
        "nT": n_temperatures(spec),
        "T": len(output_steps(p.steps, p.outputs)),
        "K": len(a.deltas),
        "X": len(a.xi_grid),
        "A": A,
        "P": len(registry.pairs(A)),
        "B": a.correlation_bins + 1,
        "N": spec.system.n_particles,
        "M": M,
        "V": V,
        "I": A - 1,
        "S": a.null_samples,
        "R": a.bootstrap,
    }


def analyze(spec: Spec, store=None) -> dict[str, Array]:
    """The task arrays (one chunk per test replica, or per (configuration, temperature): their
    first one or two axes) and the summaries. With a store, the trust arrays of the Gamma
    variants it holds only."""
    d = dims(spec, store)
    Rt, C, nT, T, K, X, A, P, B, N = (d[k] for k in ("Rt", "C", "nT", "T", "K", "X", "A", "P", "B", "N"))
    # E741: I is the structural indicator count, the letter the module docstring's shapes use
    M, V, I, S, R = (d[k] for k in ("M", "V", "I", "S", "R"))  # noqa: E741
    per_replica = {"pairs/pearson": (Rt, 2, P), "pairs/spearman": (Rt, 2, P), "structure/C_r": (Rt, A, B)}
    per_run = {
        "dynamics/delta": (C, nT, T),
        "dynamics/C_Delta_r": (C, nT, K, B),
        "dynamics/xi_Delta": (C, nT, K),
        "dynamics/scan": (C, nT, 2, K, X, A),
        "dynamics/pearson_t": (C, nT, A, T),
        "dynamics/spearman_t": (C, nT, A, T),
        "dynamics/xi_star": (C, nT, 2, A),
        "maps/indicators": (C, nT, 2, A, N),
        "maps/Delta": (C, nT, K, 2, N),
        "maps/optimal": (C, nT, 2, A, N),
    }
    if has_ensembles(spec):
        per_run.update(
            {
                "ensembles/table": (C, nT, 5),
                "ensembles/ci": (C, nT, 5, 2),
                "ensembles/null": (C, nT, 5, 2),
                "ensembles/delta": (C, nT),
                "ensembles/maps": (C, nT, 4, 2, N),
            }
        )
    per_species = (C, nT, A, 2, spec.n_species + 1, T)  # glassdist.fields.glassbench: propensity kind, group, time
    per_run.update({"glassbench/pearson": per_species, "glassbench/spearman": per_species})
    g = gamma_arrays(store)
    present = VARIANTS if g is None else [n for n in VARIANTS if n in g]
    wanted = lambda name: name.split("/")[-1] not in VARIANTS or name.split("/")[-1] in present  # noqa: E731
    trust_replica = {
        "agreement": (Rt, 2),
        "members": (Rt, 2, M, I),
        "randomised": (Rt, 2, M, V, I),
        "shuffled": (Rt, 2, I),
        "input": (Rt, 2, I),
        "partial": (Rt, 2, 2, I),
        "pairs_null": (Rt, 2, S, P),
        "C_r_members": (Rt, M, B),
    }
    trust_run = {
        "members": (C, nT, M, T),
        "randomised": (C, nT, M, V, T),
        "shuffled": (C, nT, T),
        "input": (C, nT, T),
        "partial": (C, nT, 2, T),
        "pearson_t_ci": (C, nT, A, T, 2),
        "pearson_t_null": (C, nT, A, T, 2),
        "V_boot": (C, nT, R, A),
        "V_null": (C, nT, S, A),
        "S1_boot": (C, nT, R, 2, A),
        "S1_null": (C, nT, S, 2, A),
        "S1_members": (C, nT, 2, M, 3),
    }
    per_replica.update({f"trust/{k}": v for k, v in trust_replica.items() if wanted(k)})
    per_run.update({f"trust/propensity/{k}": v for k, v in trust_run.items() if wanted(k)})
    out = {f"analyze/{k}": per_task(v) for k, v in per_replica.items()}
    out.update({f"analyze/{k}": per_task(v, axes=2) for k, v in per_run.items()})
    out["analyze/dynamics/reached"] = per_task((C, nT, K), "bool", axes=2, fill_value=False)
    out.update(
        {
            "analyze/structure/r": Array((B,)),
            "analyze/structure/mean": Array((A, B)),
            "analyze/structure/sem": Array((A, B)),
            "analyze/structure/members_mean": Array((M, B)),
        }
    )
    return out


def report(spec: Spec) -> dict[str, Array]:
    return {}


LAYOUTS = {
    "quench": quench,
    "inherent": inherent,
    "dataset": dataset,
    "train": train,
    "gradcam": gradcam,
    "indicators": indicators,
    "propensity": propensity,
    "analyze": analyze,
    "report": report,
}


def create(store, stage: str, spec: Spec, **kwargs) -> dict:
    """Open every array of ``stage`` in ``store``, creating the absent ones (rank 0, before its
    tasks start); {path: zarr array}."""
    return {path: store.require(path, array) for path, array in arrays(stage, spec, store, **kwargs).items()}


def store_bytes(spec: Spec) -> dict[str, int]:
    """Bytes of every stage's arrays for ``spec`` (uncompressed: what the arrays hold)."""
    return {stage: sum(a.nbytes for a in arrays(stage, spec).values()) for stage in LAYOUTS}
