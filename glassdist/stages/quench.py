"""Stage `quench`: the replica farm (paper Sec. II B). One task = one replica; the MD engine
(md.engine) quenches blocks of ``md.replicas_per_task`` replicas.

Writes ``quench/positions`` (R, 2, N, dim) [liquid, glass], ``quench/pe`` and
``quench/temperature`` (R, 2), ``quench/thermo_T``, ``quench/thermo_target``,
``quench/thermo_pe`` (R, P) and ``quench/snapshots`` (k, n_T, N, dim) for the first k
replicas; the engine's inputs of every replica go to ``DIR/lammps/quench/``; the engine that
ran (name, version, device, precision) is the attribute ``engine`` of group ``quench``.

With ``quench.hold_liquid`` the liquid is saved after a hold at T_L and the stage also writes
``quench/k_star``, ``quench/tau_alpha`` (R,), ``quench/liquid_held`` (R,) bool (the hold lasted
TAU_MULTIPLE tau_alpha), ``quench/hold_fs`` and ``quench/hold_pe`` (R, n_hold) (F_s(k*, t) and
the potential energy per particle at the hold times, attribute ``hold_times``).

With ``classes.cooling_rates`` each replica is quenched once per class (class c: the glass after
cooling at rate c). A campaign with ``quench.source = 'import'`` runs no MD: `glassdist import`
(glassdist.commands.importer) fills the same arrays.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hpc import signals
from hpc.farm import task_rng

from ..dynamics.scattering import relaxation_time
from ..errors import UsageError
from ..md.engine import get_engine
from ..md.schedule import hold_steps
from ..spec import Spec
from ..store import Store
from .common import exit_code, farm, rank_of, start_mpi_stage

NAME = "quench"
TAU_MULTIPLE = 10  # a liquid counts as held (equilibrated at T_L) when its hold lasts this many tau_alpha


def prepare(campaign_dir: Path, spec: Spec) -> list[int]:
    """Rank 0: check the spec against stored results, create the arrays; return tasks to do."""
    if spec.imported:
        return imported_todo(campaign_dir, spec)
    engine = get_engine(spec)
    engine.check(spec)
    store = create_arrays(campaign_dir, spec)
    store.root["quench"].attrs["engine"] = engine.versions()
    (Path(campaign_dir) / "lammps" / NAME).mkdir(parents=True, exist_ok=True)
    return store.ledger(NAME).todo().tolist()


def create_arrays(campaign_dir: Path, spec: Spec) -> Store:
    """Open (create) the store, check the spec against stored results, create the quench arrays and
    ledger (also used by `glassdist import`, glassdist.commands.importer)."""
    store = Store.create(campaign_dir, spec)
    store.check_stage(NAME, spec)
    made = store.create_arrays(NAME, spec)
    if "quench/snapshots" in made:
        store.root[NAME].attrs["snapshot_temperatures"] = list(spec.quench.snapshot_temperatures)
    if "quench/hold_fs" in made:
        held = hold_steps(spec)
        store.root[NAME].attrs.update({"hold_times": (held * spec.md.dt).tolist(), "tau_multiple": TAU_MULTIPLE})
    store.ledger(NAME, spec.quench.replicas)
    return store


def imported_todo(campaign_dir: Path, spec: Spec) -> list[int]:
    """An imported campaign (quench.source = 'import') runs no MD: nothing to do once every replica
    has both its configurations; otherwise a UsageError says how many are missing."""
    store = Store(campaign_dir) if (Path(campaign_dir) / "store.zarr").exists() else None
    done = (
        store.ledger(NAME).done_mask() if store and store.stage_started(NAME) else np.zeros(spec.quench.replicas, bool)
    )
    if not done.all():
        a, b = spec.class_names
        raise UsageError(
            f"{campaign_dir}: {int((~done).sum())} of {spec.quench.replicas} replicas lack imported "
            f"configurations (quench.source = 'import'; each replica needs one '{a}' and one '{b}'): "
            f"`glassdist import {campaign_dir} FILE... --class NAME` (docs/import.md), or lower "
            "quench.replicas and quench.split"
        )
    print(f"{NAME}: the {spec.quench.replicas} replicas are imported (quench.source = 'import'): no MD")
    return []


def run(campaign_dir, args=None) -> int:
    campaign_dir = Path(campaign_dir)
    comm, spec, todo = start_mpi_stage(campaign_dir, NAME, args.chunk)
    store = Store(campaign_dir)
    group = store.root["quench"]
    engine = get_engine(spec)
    k = spec.quench.snapshot_replicas if spec.quench.snapshot_temperatures else 0
    held = hold_steps(spec)

    def quench_block(block, task_comm) -> None:
        if spec.classes.cooling_rates:
            return quench_block_per_class(block, task_comm)
        results = engine.quench_block(
            spec,
            [task_rng(spec.campaign.seed, NAME, r, a) for r, a in block],
            [r < k for r in block.tasks],
            labels=[f"replica-{r:06d}" for r in block.tasks],
            comm=task_comm,
            workdir=campaign_dir / "lammps" / NAME,
            should_stop=signals.stop_requested,
        )
        if rank_of(task_comm) != 0:
            return
        for replica, res in zip(block.tasks, results):
            for key in ("positions", "pe", "temperature", "thermo_T", "thermo_target", "thermo_pe"):
                group[key][replica] = getattr(res, key)
            if replica < k:
                group["snapshots"][replica] = res.snapshots
        if len(held):
            _store_hold(spec, group, block.tasks, results)

    def quench_block_per_class(block, task_comm) -> None:
        """classes.cooling_rates: each replica quenched once per class from the same start (same
        seed); class c = the glass at T_G after cooling at rate c. The thermo curve and the cooling
        snapshots are those of class 1's cooling."""
        per_class = [
            engine.quench_block(
                spec.class_quench(c),
                [task_rng(spec.campaign.seed, NAME, r, a) for r, a in block],
                [c == 1 and r < k for r in block.tasks],
                labels=[f"replica-{r:06d}-{name}" for r in block.tasks],
                comm=task_comm,
                workdir=campaign_dir / "lammps" / NAME,
                should_stop=signals.stop_requested,
            )
            for c, name in enumerate(spec.class_names)
        ]
        if rank_of(task_comm) != 0:
            return
        for i, replica in enumerate(block.tasks):
            glasses = [per_class[c][i] for c in range(2)]
            for key in ("positions", "pe", "temperature"):
                group[key][replica] = np.stack([getattr(res, key)[1] for res in glasses])
            for key in ("thermo_T", "thermo_target", "thermo_pe"):
                group[key][replica] = getattr(glasses[1], key)
            if replica < k:
                group["snapshots"][replica] = glasses[1].snapshots

    result = farm(NAME, todo, quench_block, store.ledger(NAME), spec, comm=comm, block_size=spec.md.replicas_per_task)
    if rank_of(comm) == 0 and (line := hold_summary(spec, store)):
        print(line)
    return exit_code(result, NAME, comm)


# ---- the liquid hold at T_L (quench.hold_liquid) -------------------------------------------------


def _store_hold(spec: Spec, group, replicas, results) -> None:
    """k*, F_s(k*, t), the energy, tau_alpha (F_s = 1/e) and the held flag (hold >= TAU_MULTIPLE
    tau_alpha) of each replica of a block."""
    times = hold_steps(spec) * spec.md.dt
    for replica, res in zip(replicas, results):
        tau = relaxation_time(times, res.hold_fs)
        group["hold_fs"][replica], group["hold_pe"][replica] = res.hold_fs, res.hold_pe
        group["k_star"][replica], group["tau_alpha"][replica] = res.k_star[0], tau
        group["liquid_held"][replica] = bool(times[-1] >= TAU_MULTIPLE * tau)  # False when tau is NaN


def hold_summary(spec: Spec, store: Store) -> str:
    """One line on the done replicas whose liquid was held less than TAU_MULTIPLE tau_alpha ('' when
    none was, or without a hold)."""
    if "quench/liquid_held" not in store.root:
        return ""
    done = store.ledger(NAME).done_mask()
    held, tau = store.root["quench/liquid_held"][:][done], store.root["quench/tau_alpha"][:][done]
    short = ~held
    if not short.any():
        return ""
    hold = hold_steps(spec)[-1] * spec.md.dt
    reached = tau[short & np.isfinite(tau)]
    taus = f"tau_alpha {np.median(reached):.3g} ({reached.min():.3g} to {reached.max():.3g})" if reached.size else ""
    never = int((short & ~np.isfinite(tau)).sum())
    return (
        f"{NAME}: {int(short.sum())} of {int(done.sum())} liquids held {hold:g} < {TAU_MULTIPLE} tau_alpha at "
        f"T_L = {spec.quench.T_liquid:g} ({taus}{'; ' if taus and never else ''}"
        f"{f'{never} never decayed to 1/e' if never else ''}): they may not be equilibrated "
        f"(quench/liquid_held false); raise quench.hold_liquid"
    )
