"""MPI task farm with dynamic hand-out, bounded retries and a resumable ledger.

Started under ``mpiexec -n P``, world rank 0 runs a dispatcher thread that hands task ids
to whichever worker group asks next; every rank (rank 0 included) also works. With
``ranks_per_task = k`` the world is split into groups of k consecutive ranks that run one
task together on their own communicator. With one process the same code runs serially.

A task is ``run_task(task_id, attempt, comm)``: it writes its own data and returns; it
raises to fail (the farm records the error and hands the task out again with the next
attempt number, up to ``max_attempts``) or raises :class:`Suspended` to stop cleanly
(SIGTERM before a walltime). The done-mark is written by the worker after ``run_task``.
"""

from __future__ import annotations

import os
import queue
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Callable

from . import signals
from .ledger import Ledger
from .progress import Progress

REQUEST, TASK = 11, 12
STOP = None


class Suspended(Exception):
    """Raised by a task that checkpointed and stopped because a stop was requested."""


@dataclass
class FarmResult:
    done: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    suspended: list[int] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed and not self.suspended


def _injected_failures() -> set[int]:
    """Test hook: HPC_INJECT_FAILURES='3,5' fails the first attempt of tasks 3 and 5 after
    their data are written and before their done-mark (a crash at the worst moment)."""
    text = os.environ.get("HPC_INJECT_FAILURES", "")
    return {int(t) for t in text.split(",") if t.strip()}


def _attempt(task: int, attempt: int, run_task: Callable, ledger: Ledger, comm, leader: bool):
    """Run one attempt; the group leader writes the ledger. Returns ('done'|'failed'|'suspended', err)."""
    start = time.perf_counter()
    try:
        run_task(task, attempt, comm)
        if attempt == 0 and task in _injected_failures():
            raise RuntimeError(f"injected failure of task {task} (HPC_INJECT_FAILURES)")
    except Suspended:
        return "suspended", ""
    except Exception as exc:  # any task failure is recorded, never propagated
        err = f"{type(exc).__name__}: {exc}"
        if leader:
            ledger.mark_failed(task, attempt + 1, err + "\n" + traceback.format_exc(limit=3))
        return "failed", err
    if leader:
        ledger.mark_done(task, attempt + 1, time.perf_counter() - start)
    return "done", ""


def run_farm(tasks, run_task: Callable, ledger: Ledger, *, max_attempts: int = 3,
             first_attempt: Callable[[int], int] = lambda t: 0, comm=None, ranks_per_task: int = 1,
             label: str = "tasks") -> FarmResult:
    """Run every task id in ``tasks`` (collective over ``comm``); result is on world rank 0.

    ``first_attempt(task)`` gives the attempt number to start from (a rerun continues the
    ledger's count so every attempt has its own derived seed).
    """
    signals.install()
    tasks = [int(t) for t in tasks]
    if comm is None or comm.Get_size() == 1:
        return _serial(tasks, run_task, ledger, max_attempts, first_attempt, comm, label)
    return _parallel(tasks, run_task, ledger, max_attempts, first_attempt, comm, ranks_per_task, label)


def _serial(tasks, run_task, ledger, max_attempts, first_attempt, comm, label) -> FarmResult:
    result = FarmResult()
    progress = Progress(label, len(tasks))
    for task in tasks:
        start = first_attempt(task)
        for attempt in range(start, start + max_attempts):
            if signals.stop_requested():
                result.suspended.append(task)
                break
            outcome, err = _attempt(task, attempt, run_task, ledger, comm, True)
            if outcome == "done":
                result.done.append(task)
                progress.update(done=1)
                break
            if outcome == "suspended":
                result.suspended.append(task)
                break
            progress.note(f"task {task} attempt {attempt + 1} failed: {err}")
        else:
            result.failed.append(task)
            progress.update(failed=1)
    progress.close()
    return result


def _parallel(tasks, run_task, ledger, max_attempts, first_attempt, comm, ranks_per_task, label):
    from mpi4py import MPI

    rank, size = comm.Get_rank(), comm.Get_size()
    k = ranks_per_task if size % ranks_per_task == 0 else 1
    group = comm.Split(rank // k, rank)
    leader = group.Get_rank() == 0
    dispatcher = None
    if rank == 0:
        if MPI.Query_thread() < MPI.THREAD_MULTIPLE:
            raise RuntimeError("the MPI library does not provide MPI_THREAD_MULTIPLE")
        dispatcher = _Dispatcher(tasks, max_attempts, first_attempt, comm, size // k, k, label)
        dispatcher.start()
    report = None
    while True:
        if leader:
            comm.send(report, dest=0, tag=REQUEST)
            job = comm.recv(source=0, tag=TASK)
        else:
            job = None
        job = group.bcast(job, root=0)
        if job is STOP:
            break
        task, attempt = job
        outcome, err = _attempt(task, attempt, run_task, ledger, group, leader)
        report = (task, attempt, outcome, err)
    group.Free()
    if dispatcher is not None:
        dispatcher.join()
        return dispatcher.result
    return FarmResult()


class _Dispatcher(threading.Thread):
    """World rank 0: hands (task, attempt) to worker-group leaders that ask, requeues failures."""

    def __init__(self, tasks, max_attempts, first_attempt, comm, n_groups, k, label):
        super().__init__(daemon=True)
        self.queue = queue.deque((t, first_attempt(t)) for t in tasks)
        self.limit = {t: first_attempt(t) + max_attempts for t in tasks}
        self.comm, self.n_groups, self.k = comm, n_groups, k
        self.result = FarmResult()
        self.progress = Progress(label, len(tasks))

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
                self.result.suspended.extend(t for t, _ in self.queue)
                self.queue.clear()
                while idle:
                    self.comm.send(STOP, dest=idle.pop(), tag=TASK)
                    stopped += 1
        self.progress.close()

    def _record(self, task, attempt, outcome, err):
        if outcome == "done":
            self.result.done.append(task)
            self.progress.update(done=1)
        elif outcome == "suspended":
            self.result.suspended.append(task)
        elif attempt + 1 < self.limit[task]:
            self.progress.note(f"task {task} attempt {attempt + 1} failed: {err}; retrying")
            self.queue.append((task, attempt + 1))
        else:
            self.progress.note(f"task {task} failed after {attempt + 1} attempts: {err}")
            self.result.failed.append(task)
            self.progress.update(failed=1)
