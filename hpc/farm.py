"""One task farm with three back ends (serial, MPI, Dask) and one contract.

The contract, whatever runs the work:
- The ledger owns attempt counts: a task's next attempt is ``ledger.attempts[task]`` (a rerun
  continues the count, so every attempt has its own seed: :func:`task_rng`).
- Work comes in **blocks** of up to ``block_size`` task ids (a batch of replicas for a batched
  engine, a batch of images for one forward pass). ``work(block, comm)`` writes the data of
  every task of the block and returns; it raises to fail (every task of the block is recorded
  failed and the block is handed out again with the next attempt numbers, at most
  ``max_attempts`` tries in one call), raises :class:`Suspended` to stop cleanly after a
  checkpoint (SIGTERM before a walltime), or :class:`Deferred` when its inputs are not ready
  (the tasks stay pending). The done-marks are written after ``work`` returned.
- Back ends: ``serial`` (this process), ``mpi`` (collective over ``comm``: world rank 0 runs a
  dispatcher thread that hands blocks to whichever worker group asks next, every rank works;
  with ``ranks_per_task = k`` groups of k consecutive ranks run a block together on their own
  communicator) and ``dask`` (blocks run on the workers of ``hpc.dask_cluster.dask_client``;
  ``work`` must pickle and gets ``comm = None``; the client writes the ledger).
"""

from __future__ import annotations

import os
import sys
import queue
import threading
import time
import traceback
import zlib
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from . import signals
from .ledger import Ledger
from .mpi import inject_rank_error
from .progress import Progress

REQUEST, TASK = 11, 12
STOP = None
POLL_S = 0.01  # how often a rank waiting for its next block looks for it
BACKENDS = ("serial", "mpi", "dask")


class Suspended(Exception):
    """Raised by work that checkpointed and stopped because a stop was requested."""


class Deferred(Exception):
    """Raised by work whose inputs are not ready yet: its tasks stay pending, nothing is recorded."""


@dataclass(frozen=True)
class Block:
    """Task ids (B,) run together and the attempt number (0-based) of each."""

    tasks: tuple[int, ...]
    attempts: tuple[int, ...]

    def __iter__(self):
        return iter(zip(self.tasks, self.attempts))

    def __len__(self) -> int:
        return len(self.tasks)

    def retry(self) -> "Block":
        return Block(self.tasks, tuple(a + 1 for a in self.attempts))


@dataclass
class FarmResult:
    done: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    suspended: list[int] = field(default_factory=list)
    deferred: list[int] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed and not self.suspended


def task_rng(seed: int, stage: str, task: int, attempt: int) -> np.random.Generator:
    """The generator of one attempt of one task: a pure function of the campaign seed, the
    stage, the task index and the attempt (never of the rank, the block or the order of work)."""
    ss = np.random.SeedSequence([seed, zlib.crc32(stage.encode()), task, attempt])
    return np.random.default_rng(ss)


def make_blocks(tasks, ledger: Ledger, block_size: int) -> list[Block]:
    """Consecutive runs of ``block_size`` task ids with their next attempt from the ledger."""
    tasks = [int(t) for t in tasks]
    attempts = ledger.attempts[:] if tasks else []
    return [
        Block(tuple(chunk), tuple(int(attempts[t]) for t in chunk))
        for chunk in (tasks[i : i + block_size] for i in range(0, len(tasks), block_size))
    ]


def run_farm(
    tasks,
    work: Callable,
    ledger: Ledger,
    *,
    backend: str = "serial",
    comm=None,
    ranks_per_task: int = 1,
    block_size: int = 1,
    max_attempts: int = 3,
    dask_options: dict | None = None,
    label: str = "tasks",
) -> FarmResult:
    """Run every task id in ``tasks`` as blocks of ``work(block, comm)``. With ``backend="mpi"``
    the call is collective over ``comm`` and the result is on world rank 0 (empty elsewhere)."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    signals.install()
    if backend == "mpi" and comm is not None and comm.Get_size() > 1:
        return _mpi(tasks, work, ledger, comm, ranks_per_task, block_size, max_attempts, label)
    blocks = make_blocks(tasks, ledger, block_size)
    if backend == "dask":
        return _dask(blocks, work, ledger, max_attempts, dask_options or {}, label)
    return _serial(blocks, work, ledger, max_attempts, comm if backend == "mpi" else None, label)


def _injected_failures() -> set[int]:
    """Test hook: HPC_INJECT_FAILURES='3,5' fails the first attempt of tasks 3 and 5 after
    their data are written and before their done-mark (a crash at the worst moment)."""
    text = os.environ.get("HPC_INJECT_FAILURES", "")
    return {int(t) for t in text.split(",") if t.strip()}


def _check_injected(block: Block) -> None:
    hit = [t for t, a in block if a == 0 and t in _injected_failures()]
    if hit:
        raise RuntimeError(f"injected failure of task {hit[0]} (HPC_INJECT_FAILURES)")


def _record(block: Block, outcome: str, err: str, seconds: float, ledger: Ledger) -> None:
    """The ledger side of one attempt: done-marks after the data, or the error."""
    for task, attempt in block:
        if outcome == "done":
            ledger.mark_done(task, attempt + 1, seconds / len(block))
        elif outcome == "failed":
            ledger.mark_failed(task, attempt + 1, err)


def _attempt(block: Block, work: Callable, comm) -> tuple[str, str, float]:
    """Run one attempt of a block: ('done'|'failed'|'suspended'|'deferred', error, seconds)."""
    start = time.perf_counter()
    try:
        work(block, comm)
        _check_injected(block)
    except Suspended:
        return "suspended", "", 0.0
    except Deferred:
        return "deferred", "", 0.0
    except Exception as exc:  # any failure of the work is recorded, never propagated
        return "failed", f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}", 0.0
    return "done", "", time.perf_counter() - start


class _Tally:
    """FarmResult and progress of one farm call, updated per finished block."""

    def __init__(self, label: str, n_tasks: int):
        self.result, self.progress = FarmResult(), Progress(label, n_tasks)

    def finish(self, block: Block, outcome: str, err: str = "") -> None:
        getattr(self.result, outcome).extend(block.tasks)
        if outcome == "done":
            self.progress.update(done=len(block))
        elif outcome == "failed":
            self.progress.note(
                f"task(s) {_ids(block)} failed after attempt {block.attempts[0] + 1}: "
                f"{err.splitlines()[0] if err else '?'}"
            )
            self.progress.update(failed=len(block))

    def retrying(self, block: Block, err: str) -> None:
        self.progress.note(
            f"task(s) {_ids(block)} attempt {block.attempts[0] + 1} failed: "
            f"{err.splitlines()[0] if err else '?'}; retrying"
        )

    def close(self) -> FarmResult:
        self.progress.close()
        return self.result


def _ids(block: Block) -> str:
    return str(block.tasks[0]) if len(block) == 1 else f"{block.tasks[0]}..{block.tasks[-1]}"


def _serial(blocks, work, ledger, max_attempts, comm, label) -> FarmResult:
    tally = _Tally(label, sum(map(len, blocks)))
    for block in blocks:
        for tries in range(max_attempts):
            if signals.stop_requested():
                tally.finish(block, "suspended")
                break
            outcome, err, seconds = _attempt(block, work, comm)
            _record(block, outcome, err, seconds, ledger)
            if outcome != "failed":
                tally.finish(block, outcome)
                break
            if tries + 1 == max_attempts:
                tally.finish(block, "failed", err)
                break
            tally.retrying(block, err)
            block = block.retry()
    return tally.close()


def _dask(blocks, work, ledger, max_attempts, dask_options, label) -> FarmResult:
    """Every block is submitted at once; results are taken as they finish. After a stop request
    (polled twice a second) the blocks not finished are cancelled and left suspended (pending in
    the ledger), and leaving the client closes the cluster, so the call returns within seconds
    even while workers are busy with long blocks."""
    tally = _Tally(label, sum(map(len, blocks)))
    if not blocks or signals.stop_requested():  # no cluster started after a stop request
        for block in blocks:
            tally.finish(block, "suspended")
        return tally.close()
    from distributed import wait

    from .dask_cluster import dask_client

    with dask_client(**dask_options) as client:

        def submit(block, tries):
            key = f"{label}-{block.tasks[0]}-{len(block)}-{block.attempts[0]}"
            return client.submit(_timed, work, block, pure=False, key=key), (block, tries)

        futures = dict(submit(b, 0) for b in blocks)
        while futures:
            if signals.stop_requested():
                client.cancel(list(futures))
                for block, _ in futures.values():
                    tally.finish(block, "suspended")
                break
            try:
                wait(list(futures), timeout=0.5, return_when="FIRST_COMPLETED")
            except TimeoutError:
                continue
            for future in [f for f in futures if f.done()]:
                block, tries = futures.pop(future)
                outcome, err, seconds = _outcome(future, block)
                _record(block, outcome, err, seconds, ledger)
                if outcome == "failed" and tries + 1 < max_attempts and not signals.stop_requested():
                    tally.retrying(block, err)
                    retry, entry = submit(block.retry(), tries + 1)
                    futures[retry] = entry
                else:
                    tally.finish(block, outcome, err)
    return tally.close()


def _outcome(future, block: Block) -> tuple[str, str, float]:
    """('done'|'failed'|'suspended'|'deferred', error, seconds) of a finished Dask future."""
    if future.status == "finished":
        try:
            _check_injected(block)
        except RuntimeError as exc:
            return "failed", str(exc), 0.0
        return "done", "", future.result()
    exc = future.exception()
    outcome = "suspended" if isinstance(exc, Suspended) else "deferred" if isinstance(exc, Deferred) else "failed"
    return outcome, f"{type(exc).__name__}: {exc}", 0.0


def _timed(work: Callable, block: Block) -> float:
    """Dask worker side: run the block, return its seconds. Test hook: HPC_INJECT_DELAY=S makes
    each block take S seconds longer (a stage long enough to lose a node during)."""
    start = time.perf_counter()
    time.sleep(float(os.environ.get("HPC_INJECT_DELAY", 0)))
    work(block, None)
    return time.perf_counter() - start


def _mpi(tasks, work, ledger, comm, ranks_per_task, block_size, max_attempts, label) -> FarmResult:
    from mpi4py import MPI

    rank, size = comm.Get_rank(), comm.Get_size()
    k = ranks_per_task if size % ranks_per_task == 0 else 1
    group = comm.Split(rank // k, rank)
    leader = group.Get_rank() == 0
    dispatcher = None
    hosts = comm.gather(MPI.Get_processor_name(), root=0)
    if rank == 0:
        print(f"{label}: {placement(hosts)}", file=sys.stderr, flush=True)
        if MPI.Query_thread() < MPI.THREAD_MULTIPLE:
            raise RuntimeError("the MPI library does not provide MPI_THREAD_MULTIPLE")
        dispatcher = _Dispatcher(make_blocks(tasks, ledger, block_size), max_attempts, comm, size // k, label)
        dispatcher.start()
    report = None
    inject_rank_error(comm, "the MPI farm's worker loop")
    while True:
        if leader:
            comm.send(report, dest=0, tag=REQUEST)
            job = _receive(comm, 0, TASK)
            for member in range(1, group.Get_size()):
                group.send(job, dest=member, tag=TASK)
        else:
            job = _receive(group, 0, TASK)
        if job is STOP:
            break
        block, tries = job
        outcome, err, seconds = _attempt(block, work, group)
        if leader:
            _record(block, outcome, err, seconds, ledger)
        report = (block, tries, outcome, err)
    group.Free()
    if dispatcher is not None:
        dispatcher.join()
        return dispatcher.tally.close()
    return FarmResult()


def _receive(comm, source: int, tag: int):
    """``comm.recv`` that Ctrl-C can interrupt: a blocking MPI receive keeps the interpreter in C,
    where a SIGINT is only noted, and the rank would wait for ever for a block that the
    interrupted sender never sends."""
    while not comm.Iprobe(source=source, tag=tag):
        time.sleep(POLL_S)
    return comm.recv(source=source, tag=tag)


def placement(hosts: list[str]) -> str:
    """Where the ranks run, from each rank's host name (world rank order): 'P MPI rank(s) on
    H host(s): host0 (ranks 0-1), host1 (ranks 2-3)'."""
    ranks: dict[str, list[int]] = {}
    for rank, host in enumerate(hosts):
        ranks.setdefault(host, []).append(rank)
    where = ", ".join(f"{h} (rank{'s' if len(r) > 1 else ''} {_span(r)})" for h, r in ranks.items())
    return f"{len(hosts)} MPI rank(s) on {len(ranks)} host(s): {where}"


def _span(ranks: list[int]) -> str:
    return (
        f"{ranks[0]}-{ranks[-1]}"
        if len(ranks) > 1 and ranks[-1] - ranks[0] == len(ranks) - 1
        else ",".join(map(str, ranks))
    )


class _Dispatcher(threading.Thread):
    """World rank 0: hands (block, try) to worker-group leaders that ask, requeues failures."""

    def __init__(self, blocks, max_attempts, comm, n_groups, label):
        super().__init__(daemon=True)
        self.queue = queue.deque((b, 0) for b in blocks)
        self.max_attempts, self.comm, self.n_groups = max_attempts, comm, n_groups
        self.tally = _Tally(label, sum(map(len, blocks)))

    def run(self):
        from mpi4py import MPI

        outstanding, idle, stopped = 0, [], 0
        status = MPI.Status()
        while stopped < self.n_groups:
            if not self.comm.Iprobe(source=MPI.ANY_SOURCE, tag=REQUEST, status=status):
                time.sleep(0.02)  # polite polling: this thread shares a core with a worker
                continue
            source = status.Get_source()
            report = self.comm.recv(source=source, tag=REQUEST)
            if report is not None:
                outstanding -= 1
                self._record(*report)
            idle.append(source)
            while idle and self.queue and not signals.stop_requested():
                self.comm.send(self.queue.popleft(), dest=idle.pop(), tag=TASK)
                outstanding += 1
            if outstanding == 0 and (not self.queue or signals.stop_requested()):
                for block, _ in self.queue:
                    self.tally.finish(block, "suspended")
                self.queue.clear()
                while idle:
                    self.comm.send(STOP, dest=idle.pop(), tag=TASK)
                    stopped += 1

    def _record(self, block, tries, outcome, err):
        if outcome == "failed" and tries + 1 < self.max_attempts:
            self.tally.retrying(block, err)
            self.queue.append((block.retry(), tries + 1))
        else:
            self.tally.finish(block, outcome, err)
