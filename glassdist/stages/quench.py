"""Stage `quench`: the replica farm (paper Sec. II B). One task = one replica.

Writes ``quench/positions`` (R, 2, N, dim) [liquid, glass], ``quench/pe`` and
``quench/temperature`` (R, 2), ``quench/thermo_T``, ``quench/thermo_target``,
``quench/thermo_pe`` (R, P) and ``quench/snapshots`` (k, n_T, N, dim) for the first k
replicas; the LAMMPS input of every replica goes to ``DIR/lammps/quench/``.
"""

from __future__ import annotations

from pathlib import Path


from hpc.farm import run_farm

from ..md.lammps import require_styles
from ..md.quench import quench, thermo_steps
from ..spec import Spec
from ..store import Store
from .common import exit_code, start_mpi_stage, task_rng

NAME = "quench"
SECTIONS = ("system", "md", "quench")
MPI = True


def prepare(campaign_dir: Path, spec: Spec) -> list[int]:
    """Rank 0: check the spec against stored results, create the arrays; return tasks to do."""
    require_styles(spec)
    store = Store.create(campaign_dir, spec)
    store.check_stage(NAME, spec, SECTIONS)
    R, N, dim, q = spec.quench.replicas, spec.system.n_particles, spec.dim, spec.quench
    P, k, nT = len(thermo_steps(spec)), q.snapshot_replicas, len(q.snapshot_temperatures)
    store.require_array("quench/positions", (R, 2, N, dim), (1, 2, N, dim), "float64")
    for name in ("pe", "temperature"):
        store.require_array(f"quench/{name}", (R, 2), (1, 2), "float64")
    for name in ("thermo_T", "thermo_target", "thermo_pe"):
        store.require_array(f"quench/{name}", (R, P), (1, P), "float64")
    if k and nT:
        store.require_array("quench/snapshots", (k, nT, N, dim), (1, nT, N, dim), "float64")
        store.root["quench"].attrs["snapshot_temperatures"] = list(q.snapshot_temperatures)
    (Path(campaign_dir) / "lammps" / NAME).mkdir(parents=True, exist_ok=True)
    return store.ledger(NAME, R).todo().tolist()


def run(campaign_dir, args=None) -> int:
    campaign_dir = Path(campaign_dir)
    comm, spec, todo = start_mpi_stage(campaign_dir, prepare)
    store = Store(campaign_dir)
    ledger = store.ledger(NAME)
    group = store.root["quench"]
    k = spec.quench.snapshot_replicas if spec.quench.snapshot_temperatures else 0

    def one_replica(replica: int, attempt: int, task_comm) -> None:
        rng = task_rng(spec.campaign.seed, NAME, replica, attempt)
        path = campaign_dir / "lammps" / NAME / f"replica-{replica:06d}.in"
        res = quench(spec, rng, snapshots=replica < k, comm=task_comm,
                     input_path=path if task_comm is None or task_comm.Get_rank() == 0 else None)
        if task_comm is not None and task_comm.Get_rank() != 0:
            return
        group["positions"][replica] = res.positions
        group["pe"][replica] = res.pe
        group["temperature"][replica] = res.temperature
        group["thermo_T"][replica] = res.thermo_T
        group["thermo_target"][replica] = res.thermo_target
        group["thermo_pe"][replica] = res.thermo_pe
        if replica < k:
            group["snapshots"][replica] = res.snapshots

    attempts = ledger.attempts[:]
    result = run_farm(todo, one_replica, ledger, max_attempts=spec.md.max_attempts,
                      first_attempt=lambda t: int(attempts[t]), comm=comm,
                      ranks_per_task=spec.md.ranks_per_task, label=NAME)
    return exit_code(result, NAME, comm)
