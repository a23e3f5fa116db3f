"""DDP: one process per GPU (or CPU process), started by :func:`spawn` (one node, nothing
listening beyond loopback), by ``srun`` (several nodes: jobs/ddp.sh), or by ``torchrun``.

``with ddp_context() as device:`` joins the process group described in the environment
(WORLD_SIZE > 1): NCCL with one GPU per process (cuda:LOCAL_RANK) when CUDA is available,
gloo on CPU otherwise; the rendezvous is the file named in ``HPC_DDP_INIT`` (:func:`spawn`'s,
or a multi-node job's on the shared filesystem, whose name carries a per-job secret), else
torchrun's TCP store (``env://``). A process that srun started takes its rank and the world
size from SLURM (SLURM_PROCID, SLURM_STEP_NUM_TASKS, SLURM_LOCALID). Alone it is a single process on cuda:0 or the CPU,
and no process group exists.

Teardown. A normal end passes a barrier (no rank leaves while rank 0 still writes the
results), then destroys the group. A worker process must then end without Python's
interpreter finalization, which :func:`worker` does (flush, ``os._exit``): gloo's worker
threads outlive ``destroy_process_group``, and each drops its reference to a finished
collective only after the caller has returned from it; when that reference is the last
owner of a tensor made in Python, dropping it takes the GIL, and a thread that takes the
GIL while the interpreter finalizes is ended inside ``take_gil`` -> ``std::terminate`` ->
SIGABRT ("terminate called without an active exception": 4 of 83 runs of the 2-process
training under load, always the rank that finished first; found in core dumps).
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import tempfile
import traceback
from contextlib import contextmanager
from typing import Callable, Iterator

import torch
import torch.distributed as dist
import torch.multiprocessing

from . import localhost, network

INIT_ENV = network.DDP_INIT_ENV


def adopt_srun_task() -> None:
    """In a task of an srun step with a file rendezvous (jobs/ddp.sh): RANK, WORLD_SIZE,
    LOCAL_RANK and LOCAL_WORLD_SIZE from SLURM's variables, unless a launcher set them."""
    env = os.environ
    if INIT_ENV in env and "RANK" not in env and "SLURM_STEP_NUM_TASKS" in env:
        env.update(
            RANK=env["SLURM_PROCID"],
            WORLD_SIZE=env["SLURM_STEP_NUM_TASKS"],
            LOCAL_RANK=env.get("SLURM_LOCALID", "0"),
            LOCAL_WORLD_SIZE=env.get("SLURM_STEP_TASKS_PER_NODE", "1").split("(")[0].split(",")[0],
        )


def is_worker() -> bool:
    """True in one process of a DDP job (spawn's, srun's or torchrun's) of more than one process."""
    adopt_srun_task()
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


@contextmanager
def ddp_context() -> Iterator[torch.device]:
    """Yields this process's device; inside, torch.distributed is initialised when this is a
    DDP worker (:func:`is_worker`); torn down on exit (see Teardown above)."""
    cuda = torch.cuda.is_available()
    device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if cuda else "cpu")
    if cuda:
        torch.cuda.set_device(device)
    if not is_worker():
        yield device
        return
    dist.init_process_group(
        "nccl" if cuda else "gloo",
        init_method=os.environ.get(INIT_ENV, "env://"),
        rank=int(os.environ["RANK"]),
        world_size=int(os.environ["WORLD_SIZE"]),
        device_id=device if cuda else None,
    )
    print(
        f"DDP rank {dist.get_rank()} of {dist.get_world_size()} on {socket.gethostname()} ({dist.get_backend()})",
        file=sys.stderr,
        flush=True,
    )
    try:
        yield device
        dist.barrier()  # after an error on one rank the others would wait here: no barrier then
    finally:
        dist.destroy_process_group()


class ObjectComm:
    """The two calls of an mpi4py communicator that rank-0 work needs (``Get_rank``, ``bcast`` of a
    picklable object), over the torch.distributed process group."""

    def Get_rank(self) -> int:  # noqa: N802 - mpi4py's spelling
        return dist.get_rank()

    def bcast(self, obj, root: int = 0):
        box = [obj]
        dist.broadcast_object_list(box, src=root)
        return box[0]


def comm() -> ObjectComm | None:
    """The DDP process group as an :class:`ObjectComm`; None outside a job of several processes."""
    return ObjectComm() if dist.is_initialized() and dist.get_world_size() > 1 else None


def worker(fn: Callable[..., int], *args) -> None:
    """Run ``fn(*args)`` as the body of a DDP worker process and end the process with its
    exit status, without interpreter finalization (see Teardown). An exception is printed
    (its message only when it carries an ``exit_code``, as glassdist's errors do) and ends
    the process with that code, else 1."""
    try:
        code = int(fn(*args) or 0)
    except BaseException as exc:  # noqa: BLE001 - the process ends here either way
        code = getattr(exc, "exit_code", None)
        if isinstance(code, int):
            print(f"error: {exc}", file=sys.stderr)
        else:
            traceback.print_exc()
            code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _spawned(index: int, nproc: int, init: str, fn: Callable[..., int], args: tuple) -> None:
    os.environ.update(
        localhost.ENV,
        RANK=str(index),
        LOCAL_RANK=str(index),
        WORLD_SIZE=str(nproc),
        LOCAL_WORLD_SIZE=str(nproc),
        **{INIT_ENV: init},
    )
    worker(fn, *args)


def spawn(nproc: int, fn: Callable[..., int], *args) -> int:
    """Run ``fn(*args)`` (importable by name) as a DDP job of ``nproc`` processes on this
    host; its exit status: 0 when every process returned 0, else the first failure's status
    (128+N for a process killed by signal N).

    Rendezvous through a file in a temporary directory (no TCP store); gloo on loopback
    (hpc.localhost.ENV). SIGTERM to this process is passed on to the workers (a terminal's
    Ctrl-C reaches them directly). When one worker fails, the others get 30 s to end on their
    own (a stop request ends them all at the same epoch), then SIGTERM, then SIGKILL.
    """
    with tempfile.TemporaryDirectory(prefix="hpc-ddp-") as tmp:
        context = torch.multiprocessing.start_processes(
            _spawned, args=(nproc, f"file://{tmp}/rendezvous", fn, args), nprocs=nproc, join=False, start_method="spawn"
        )

        def forward(signum, _frame):
            for process in context.processes:
                if process.is_alive():
                    os.kill(process.pid, signum)

        previous = signal.signal(signal.SIGTERM, forward)
        try:
            while not context.join(grace_period=30):  # after a failure the others may finish
                pass
        except torch.multiprocessing.ProcessExitedException as exc:
            return exc.exit_code if exc.exit_code >= 0 else 128 - exc.exit_code
        finally:
            signal.signal(signal.SIGTERM, previous)
    return 0
