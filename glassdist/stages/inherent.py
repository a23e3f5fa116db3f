"""Stage `inherent`: inherent-structure energies E0(T) of the cooling snapshots and the
two-line fit that gives T* (supp. II B, C; Fig. S9). MPI farm: one task = one snapshot
(replica k < quench.snapshot_replicas, temperature t), task id k * n_T + t; the MD engine
minimises blocks of ``md.replicas_per_task`` snapshots.

Writes ``inherent/E0`` (k, n_T) [energy per particle], ``inherent/positions``
(k, n_T, N, dim) [the inherent structures], ``inherent/temperatures`` (n_T,); when every
snapshot is done, ``inherent/E0_mean`` (n_T,) [mean over replicas], ``inherent/fit_residuals``
(n_T,) [NaN outside both regimes] and the fit (T*, both lines, regimes) in the attributes of
group ``inherent``, with ``fit_ok`` and ``fit_reason`` (a fit without a kink is stored as
failed; read it through :func:`stored_fit`). The engine's inputs go to ``DIR/lammps/inherent/``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hpc import signals

from ..errors import SpecError
from ..md.engine import get_engine
from ..spec import Spec
from ..store import Store
from ..structure.inherent import FitError, fit_t_star, t_star_error
from ..pipeline import snapshot_shape
from .common import campaign_lock, exit_code, farm, mpi_spec, on_root, prepare_part, rank_of

NAME = "inherent"


def prepare(campaign_dir: Path, spec: Spec) -> list[int]:
    """Rank 0: check the spec, create the arrays; return the snapshot tasks to do (their
    replica's quench done)."""
    get_engine(spec).check(spec)
    k, nT = snapshot_shape(spec)
    store = Store(campaign_dir)
    store.require_needs(NAME, spec=spec)
    store.check_stage(NAME, spec)
    store.create_arrays(NAME, spec)[f"{NAME}/temperatures"][:] = spec.quench.snapshot_temperatures
    (Path(campaign_dir) / "lammps" / NAME).mkdir(parents=True, exist_ok=True)
    quenched = store.ledger("quench").done_mask()
    return [int(t) for t in store.ledger(NAME, k * nT).todo() if quenched[t // nT]]


@dataclass(frozen=True)
class StoredFit:
    """The stored T* fit (:func:`stored_fit`). ``ok`` False: the two lines make no kink
    (``reason``, with the slopes) and ``t_star`` is no glass transition point: do not use it."""

    t_star: float
    ok: bool
    reason: str
    low_line: tuple[float, float]
    mid_line: tuple[float, float]
    error: float = float("nan")  # standard error of T* (structure.inherent.t_star_error); NaN: unknown

    def summary(self, campaign_dir="DIR") -> str:
        """One line: T* and both lines, or why the fit failed and what to do."""
        lines = (
            f"low-T line E0 = {self.low_line[0]:.4g} T {self.low_line[1]:+.6g}, "
            f"mid-T line E0 = {self.mid_line[0]:.4g} T {self.mid_line[1]:+.6g}"
        )
        if self.ok:
            return f"T* = {self.t_star:.4g} +- {self.error:.2g} ({lines})"
        return (
            f"the T* fit FAILED: {self.reason}; no T* ({lines}). Choose the regimes by hand from Fig. S9: "
            f"`glassdist init NEWDIR --from {campaign_dir} --set inherent.fit_low_T_max=... "
            f"--set inherent.fit_mid_T=[...]`"
        )


def stored_fit(store: Store) -> StoredFit | None:
    """The T* fit stored by this stage, or None before it ran. Every reader of T* goes through
    here and checks ``ok``. A fit stored before glassdist recorded ``fit_ok`` counts as ok."""
    attrs = store.root[NAME].attrs if NAME in store.root else {}
    if "t_star" not in attrs:
        return None
    error = attrs.get("t_star_error")
    return StoredFit(
        float(attrs["t_star"]),
        bool(attrs.get("fit_ok", True)),
        str(attrs.get("fit_reason", "")),
        tuple(attrs["low_line"]),
        tuple(attrs["mid_line"]),
        float("nan") if error is None else float(error),
    )


def fit(store: Store, spec: Spec) -> None:
    """The T* fit of the replica-mean E0(T), stored with its residuals and whether it makes a
    kink (all snapshots done)."""
    inh, T = spec.inherent, np.asarray(spec.quench.snapshot_temperatures)
    E0 = store.root[f"{NAME}/E0"][:].mean(axis=0)
    try:
        result = fit_t_star(
            T, E0, low_max=inh.fit_low_T_max, mid=inh.fit_mid_T, upper=inh.fit_upper_T or spec.quench.T_liquid
        )
    except FitError as exc:
        raise SpecError(exc.key, exc.problem, exc.fix) from None
    error = t_star_error(T, E0, result)
    group = store.root[NAME]
    group["E0_mean"][:], group["fit_residuals"][:] = E0, result.residuals
    store.root[NAME].attrs.update(
        {
            "t_star": result.t_star,
            "t_star_error": error if np.isfinite(error) else None,
            "low_line": list(result.low),
            "mid_line": list(result.mid),
            "low_temperatures": T[result.low_mask].tolist(),
            "mid_temperatures": T[result.mid_mask].tolist(),
            "fit_ok": result.ok,
            "fit_reason": result.reason,
        }
    )
    print(f"{NAME}: {stored_fit(store).summary(store.dir)}")


def stored_t_star(store: Store, key: str = "propensity.temperatures") -> tuple[float, float]:
    """(T*, its standard error; NaN if unknown) of the stored fit (:func:`stored_fit`), or a
    SpecError naming ``key`` (whose 'auto' needs T*) and the fix when the inherent stage has not
    fitted T* or its fit failed."""
    fit_ = stored_fit(store)
    fixed = "or give fixed values, e.g. temperatures = [0.37, 0.55] under [propensity]"
    if fit_ is None:
        raise SpecError(
            key,
            f"'auto' needs the fitted T*, and {store.dir} has none yet",
            f"run `glassdist inherent {store.dir}` first, {fixed}",
        )
    if not fit_.ok:
        raise SpecError(
            key,
            f"'auto' needs the fitted T*, but the T* fit of {store.dir} failed ({fit_.reason})",
            f"fix the fit (inherent.fit_mid_T, inherent.fit_low_T_max), {fixed}",
        )
    return fit_.t_star, fit_.error


def run(campaign_dir, args=None) -> int:
    campaign_dir = Path(campaign_dir)
    comm, spec = mpi_spec(campaign_dir)
    if not snapshot_shape(spec)[0]:
        if rank_of(comm) == 0:
            print(
                f"{NAME}: no cooling snapshots in this campaign (quench.snapshot_replicas = 0 or no "
                "quench.snapshot_temperatures): nothing to do"
            )
        return 0
    todo = on_root(comm, lambda: prepare_part(campaign_dir, spec, NAME, args.chunk))
    store = Store(campaign_dir)
    ledger = store.ledger(NAME)
    group = store.root[NAME]
    snapshots = store.root["quench/snapshots"]
    types = store.types()
    engine = get_engine(spec)
    nT = snapshot_shape(spec)[1]

    def minimise_block(block, task_comm) -> None:
        where = [divmod(task, nT) for task in block.tasks]
        e0, minima = engine.minimise_block(
            spec,
            np.stack([snapshots[k, t] for k, t in where]),
            types,
            labels=[f"replica-{k:06d}-T{t:03d}" for k, t in where],
            comm=task_comm,
            workdir=campaign_dir / "lammps" / NAME,
            should_stop=signals.stop_requested,
        )
        if rank_of(task_comm) == 0:
            for (k, t), e, x in zip(where, e0, minima):
                group["positions"][k, t] = x
                group["E0"][k, t] = e

    result = farm(NAME, todo, minimise_block, ledger, spec, comm=comm, block_size=spec.md.replicas_per_task)
    code = exit_code(result, NAME, comm)

    def finish():
        with campaign_lock(campaign_dir, args.chunk is not None):  # one part of a job array at a time
            if ledger.done_mask().all():
                fit(store, spec)
            else:
                print(f"{NAME}: the T* fit waits until every snapshot is minimised")

    on_root(comm, finish)
    return code
