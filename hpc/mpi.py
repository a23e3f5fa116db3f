"""Fail fast under MPI: an error on one rank ends every rank.

Without this, a rank that raises outside the farm's retry (a stage's ``prepare`` on rank 0, the
farm's dispatcher thread, a collective, writing results) stops taking part while the other ranks
wait in a collective or a receive forever. :func:`abort_on_error` prints the error once, on the
rank that had it, and calls ``MPI_Abort`` on COMM_WORLD, which ends every rank (and mpiexec,
with a non-zero exit code) within seconds. Errors every rank raises alike after a broadcast
(:func:`raise_collective`) end the ranks normally instead, printed by rank 0 only.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import traceback
from contextlib import contextmanager

INJECT = "HPC_INJECT_RANK_ERROR"
ABORT_GRACE = 1.0  # seconds between printing the error and MPI_Abort


class InjectedError(RuntimeError):
    """The test hook's error (see :func:`inject_rank_error`)."""


def raise_collective(exc: BaseException):
    """Raise ``exc`` on this rank as one that every rank raises alike (after a broadcast)."""
    exc.collective = True
    raise exc


def is_collective(exc: BaseException) -> bool:
    return getattr(exc, "collective", False)


def abort(comm, code: int, message: str) -> None:
    """Print ``message`` (this rank's, once) and end every rank of COMM_WORLD with ``code``."""
    from mpi4py import MPI

    print(
        f"[rank {comm.Get_rank()} of {comm.Get_size()}] {message.rstrip()}\n"
        f"[rank {comm.Get_rank()}] aborting every rank (MPI_Abort)",
        file=sys.stderr,
        flush=True,
    )
    time.sleep(ABORT_GRACE)  # the launcher stops forwarding output at the abort: let it drain first
    MPI.COMM_WORLD.Abort(code)


@contextmanager
def abort_on_error(comm, describe=lambda exc: None):
    """Run the body; under an MPI ``comm`` of more than one rank, an exception that is not
    collective (and not SystemExit or KeyboardInterrupt), raised in the body or in any thread it started, aborts
    every rank. ``describe(exc)`` gives (exit code, message) for known errors, or None for a
    traceback and exit code 1. A no-op without ``comm``."""
    if comm is None or comm.Get_size() == 1:
        yield
        return

    def thread_hook(args):
        if args.exc_type is not SystemExit:
            text = "".join(traceback.format_exception(args.exc_type, args.exc_value, args.exc_traceback))
            abort(comm, 1, f"error in thread {args.thread.name if args.thread else '?'}:\n{text}")

    previous, threading.excepthook = threading.excepthook, thread_hook
    try:
        yield
    except (SystemExit, KeyboardInterrupt):  # Ctrl-C reaches every rank: each ends by itself
        raise
    except BaseException as exc:
        if is_collective(exc):
            raise
        code, message = describe(exc) or (1, traceback.format_exc())
        abort(comm, code, message)
    finally:
        threading.excepthook = previous


def inject_rank_error(comm, where: str) -> None:
    """Test hook: HPC_INJECT_RANK_ERROR=R raises InjectedError on world rank R at ``where``
    (a place outside the farm's retry)."""
    wanted = os.environ.get(INJECT, "")
    if wanted.strip() and comm is not None and comm.Get_rank() == int(wanted):
        raise InjectedError(f"injected error on rank {wanted} in {where} ({INJECT})")
