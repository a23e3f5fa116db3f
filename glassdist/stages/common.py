"""What every stage shares: the MPI world, rank-0 preparation, the farm call with the campaign's
settings, exit codes, and the parts of an MPI stage that run as the elements of a SLURM job array
(``--chunk I/K``)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
from functools import partial
from pathlib import Path

import numpy as np

from hpc.farm import FarmResult, run_farm
from hpc.mpi import raise_collective

from ..errors import GlassdistError, UsageError
from ..spec import load
from ..store import Store
from ..pipeline import STAGES


# set for a process that an MPI launcher started (MPICH's PMI, Open MPI, PMIx, srun, hydra)
LAUNCHER_VARIABLES = (
    "PMI_RANK",
    "PMI_SIZE",
    "OMPI_COMM_WORLD_SIZE",
    "PMIX_RANK",
    "SLURM_STEP_NUM_TASKS",
    "HYDI_CONTROL_FD",
)


def world():
    """COMM_WORLD when started under an MPI launcher with more than one rank, else None."""
    if not any(variable in os.environ for variable in LAUNCHER_VARIABLES):
        return None
    from mpi4py import MPI

    return MPI.COMM_WORLD if MPI.COMM_WORLD.Get_size() > 1 else None


def rank_of(comm) -> int:
    return 0 if comm is None else comm.Get_rank()


def on_root(comm, fn):
    """Run ``fn()`` on rank 0 only and give every rank its result, or raise its GlassdistError on
    every rank as a collective one (so a bad spec stops all ranks, printed once, and nothing else
    runs; any other error of ``fn`` aborts every rank: hpc.mpi). ``comm``: an MPI communicator,
    hpc.ddp.comm() in a DDP job, or None in one process."""
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
        raise_collective(outcome[1])
    return outcome[1]


def mpi_spec(campaign_dir):
    """(comm, spec) of an MPI stage: rank 0 loads the campaign file, every rank gets it."""
    from ..spec import load

    comm = world()
    return comm, on_root(comm, lambda: load(campaign_dir))


def start_mpi_stage(campaign_dir, name: str, chunk: str | None = None):
    """(comm, spec, tasks to do) of an MPI-farm stage: rank 0 loads the campaign file and prepares
    the stage (:func:`prepare_part`), every rank gets both."""
    comm, spec = mpi_spec(campaign_dir)
    return comm, spec, on_root(comm, lambda: prepare_part(campaign_dir, spec, name, chunk))


def prepare_part(campaign_dir, spec, name: str, chunk: str | None = None) -> list[int]:
    """The stage's ``prepare(campaign_dir, spec)`` (checks, arrays, ledger) -> tasks to do; with
    ``chunk`` "I/K" only those of part I (:func:`chunk_tasks`), prepared under the campaign's lock
    (:func:`campaign_lock`): the elements of a job array prepare one at a time."""
    part = parse_chunk(chunk)
    with campaign_lock(campaign_dir, part is not None):
        todo = STAGES[name].prepare(campaign_dir, spec)
    return todo if part is None else chunk_tasks(todo, STAGES[name].tasks(spec), *part)


def parse_chunk(text: str | None) -> tuple[int, int] | None:
    """ "I/K" (0 <= I < K) -> (I, K); None -> None; anything else: UsageError (exit 2)."""
    if text is None:
        return None
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not match or not int(match[1]) < int(match[2]):
        raise UsageError(
            f"--chunk {text!r}: give I/K with 0 <= I < K (part I of K, e.g. 0/4), as `glassdist submit --array K` does"
        )
    return int(match[1]), int(match[2])


def chunk_tasks(todo, n_tasks: int, part: int, parts: int) -> list[int]:
    """The tasks of ``todo`` in part ``part`` of ``parts`` nearly equal contiguous ranges of the
    task ids 0 .. n_tasks - 1 (the parts of a job array: together every task, once)."""
    ids = np.array_split(np.arange(n_tasks), parts)[part]
    lo, hi = (int(ids[0]), int(ids[-1]) + 1) if len(ids) else (0, 0)
    return [int(t) for t in todo if lo <= t < hi]


@contextlib.contextmanager
def campaign_lock(campaign_dir, wanted: bool = True):
    """An exclusive lock on ``DIR/.lock`` (flock; on a cluster file system it needs flock support,
    e.g. Lustre's ``flock`` mount option): the elements of a job array prepare the stage and run its
    last steps one at a time, as one job would. A no-op unless ``wanted``."""
    if not wanted:
        yield
        return
    with open(Path(campaign_dir) / ".lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def farm(stage: str, tasks, work, ledger, spec, *, comm=None, block_size: int = 1) -> FarmResult:
    """Run ``work(block, comm)`` over ``tasks`` on the stage's back end (its registry kind:
    MPI stages over ``comm``, Dask stages on ``spec.dask``, the others in this process)."""
    kind = STAGES[stage].kind
    backend = {"mpi": "mpi", "dask": "dask"}.get(kind, "serial")
    return run_farm(
        tasks,
        work,
        ledger,
        backend=backend,
        comm=comm,
        ranks_per_task=spec.md.ranks_per_task,
        block_size=block_size,
        max_attempts=spec.md.max_attempts,
        dask_options=spec.dask,
        label=stage,
    )


def exit_code(result: FarmResult, label: str, comm=None) -> int:
    """0 when every task is done, 1 when some failed or were suspended (printed on rank 0)."""
    if rank_of(comm) != 0:
        return 0
    if result.failed:
        print(
            f"{label}: {len(result.failed)} task(s) failed after all attempts: {result.failed[:20]}; "
            f"see `glassdist status` for their errors"
        )
    if result.suspended:
        print(f"{label}: stopped on request with {len(result.suspended)} task(s) left; rerun to continue")
    return 0 if result.ok else 1


def quenched_todo(store, stage: str, replicas: int) -> list[int]:
    """Replicas whose quench is done and whose task of ``stage`` is not (creates its ledger)."""
    quenched = store.ledger("quench").done_mask()
    return [int(r) for r in store.ledger(stage, replicas).todo() if quenched[r]]


def run_replica_stage(stage: str, campaign_dir, prepare, block) -> int:
    """Run a stage with one task per quenched replica (dataset, indicators) on the farm:
    ``prepare(campaign_dir, spec)`` -> replicas to do, ``block(campaign_dir, spec, block)`` does
    them; says how many replicas still wait for their quench. Returns the exit code."""
    spec = load(campaign_dir)
    todo = prepare(Path(campaign_dir), spec)
    store = Store(campaign_dir)
    result = farm(stage, todo, partial(block, str(campaign_dir), spec), store.ledger(stage), spec)
    waiting = spec.quench.replicas - int(store.ledger(stage).done_mask().sum())
    if waiting and not result.failed:
        print(f"{stage}: {waiting} replica(s) wait for their quench; rerun after `glassdist quench`")
    return exit_code(result, stage)
