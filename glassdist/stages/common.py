"""What every stage shares: the MPI world, rank-0 preparation, derived seeds, exit codes."""

from __future__ import annotations

import os
import zlib

import numpy as np

from hpc.dask_farm import run_dask_farm
from hpc.farm import FarmResult

from ..errors import GlassdistError


def world():
    """COMM_WORLD when started under an MPI launcher with more than one rank, else None."""
    if not any(k in os.environ for k in ("PMI_RANK", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE",
                                         "PMIX_RANK", "SLURM_STEP_NUM_TASKS", "HYDI_CONTROL_FD")):
        return None
    from mpi4py import MPI

    return MPI.COMM_WORLD if MPI.COMM_WORLD.Get_size() > 1 else None


def rank_of(comm) -> int:
    return 0 if comm is None else comm.Get_rank()


def on_root(comm, fn):
    """Run ``fn()`` on rank 0 only and give every rank its result, or raise its error on every
    rank (so a bad spec stops all ranks with the same message and nothing else runs)."""
    if comm is None:
        return fn()
    outcome = None
    if comm.Get_rank() == 0:
        try:
            outcome = ("ok", fn())
        except GlassdistError as exc:
            outcome = ("error", exc)
    outcome = comm.bcast(outcome, root=0)
    if outcome[0] == "error":
        raise outcome[1]
    return outcome[1]


def start_mpi_stage(campaign_dir, prepare):
    """(comm, spec, tasks to do) of an MPI-farm stage: every rank loads the campaign file, rank 0
    runs ``prepare(campaign_dir, spec)`` (checks, arrays, ledger) and every rank gets its tasks."""
    from ..spec import load

    comm, spec = world(), load(campaign_dir)
    return comm, spec, on_root(comm, lambda: prepare(campaign_dir, spec))


def task_rng(seed: int, stage: str, task: int, attempt: int) -> np.random.Generator:
    """The generator of one attempt of one task: a pure function of the campaign seed, the
    stage, the task index and the attempt (never of the rank or the order of work)."""
    ss = np.random.SeedSequence([seed, zlib.crc32(stage.encode()), task, attempt])
    return np.random.default_rng(ss)


def exit_code(result: FarmResult, label: str, comm=None) -> int:
    """0 when every task is done, 1 when some failed or were suspended (printed on rank 0)."""
    if rank_of(comm) != 0:
        return 0
    if result.failed:
        print(f"{label}: {len(result.failed)} task(s) failed after all attempts: {result.failed[:20]}; "
              f"see `glassdist status` for their errors")
    if result.suspended:
        print(f"{label}: stopped on request with {len(result.suspended)} task(s) left; rerun to continue")
    return 0 if result.ok else 1


def quenched_todo(store, stage: str, replicas: int) -> list[int]:
    """Replicas whose quench is done and whose task of ``stage`` is not (creates its ledger)."""
    quenched = store.ledger("quench").done_mask()
    return [int(r) for r in store.ledger(stage, replicas).todo() if quenched[r]]


def run_replica_stage(campaign_dir, spec, stage: str, todo: list[int], replica_task) -> int:
    """Run ``replica_task(campaign_dir, replica) -> seconds`` for every replica in ``todo`` on
    Dask (hpc.dask_farm); say which replicas still wait for their quench."""
    from ..store import Store

    ledger = Store(campaign_dir).ledger(stage)
    result = run_dask_farm(todo, replica_task, ledger, args=(str(campaign_dir),), client_options=spec.dask,
                           max_attempts=spec.md.max_attempts, label=stage)
    waiting = spec.quench.replicas - int(ledger.done_mask().sum())
    if waiting and not result.failed:
        print(f"{stage}: {waiting} replica(s) wait for their quench; rerun after `glassdist quench`")
    return exit_code(result, stage)
