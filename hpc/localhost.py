"""Single-host runs that listen on loopback only (what listens where: docs/security.md).

Everything a one-node run needs to keep its sockets off the network, in one place:

- ``ENV``: the environment of every process of the run. ``UCX_NET_DEVICES=lo``: MPICH's
  default netmod (UCX) opens its TCP endpoint on the loopback device only (without it every
  MPI process, even a singleton, listens on the machine's external address);
  ``GLOO_SOCKET_IFNAME=lo`` / ``NCCL_SOCKET_IFNAME=lo``: DDP's collectives bind to loopback.
  :func:`alone_on_loopback` gives a process that no launcher started (an MPI singleton) the
  UCX setting.
- :func:`mpiexec_argv`: start P MPI ranks on this host with MPICH's ``mpiexec.gforker``,
  which reaches its ranks through inherited socket pairs and opens no port (hydra's
  ``mpiexec`` opens its control port on 0.0.0.0, and no option narrows it). gforker reports
  a rank killed by a signal as exit status 0, so each rank runs under this module's guard
  (``python -m hpc.localhost CMD...``): it passes signals on and exits 128+N when the rank
  dies of signal N.
- :func:`remove_stale_segments`: MPICH keeps a node's shared memory in ``/dev/shm``, named
  after gforker's pid (``kvs_<pid>_0``); a job killed by a signal leaves it behind, and pids
  recycle (``pid_max`` 32768 on many machines), so a later job whose gforker gets the same pid
  would attach the dead job's memory and fail in ``MPI_Init`` (UCX "Invalid parameter" or
  "Message ... truncated"). The guard removes such leftovers before its rank starts.
- DDP on one node: :func:`hpc.ddp.spawn` (a file rendezvous, no TCP store).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from .network import interface_env

ENV = interface_env("lo")
# set in the environment of a process that an MPI launcher started (hydra, gforker, srun)
LAUNCHED = ("PMI_RANK", "PMI_FD", "PMI_PORT", "PMIX_RANK", "OMPI_COMM_WORLD_SIZE")

# signals the guard passes on to its rank; SIGINT is not among them: a terminal's Ctrl-C
# reaches the rank directly (same process group), and gforker's copy would be a second one
FORWARDED = (signal.SIGTERM, signal.SIGQUIT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2)

SHARED_MEMORY = Path("/dev/shm")
SEGMENTS = ("mpich_shm_", "mpich_vci_")  # MPICH's per-job, per-node shared memory, in SHARED_MEMORY
STALE_AFTER_S = 60  # a segment this old that no process maps is a dead job's (a job in MPI_Init made its own just now)


def environ(base: dict | None = None) -> dict:
    """``base`` (default: os.environ) with the loopback-only settings of ``ENV``."""
    return {**(os.environ if base is None else base), **ENV}


def alone_on_loopback() -> None:
    """In a process no MPI launcher started, ``UCX_NET_DEVICES=lo`` unless set: importing
    mpi4py makes it an MPI singleton (and so every Dask worker that loads LAMMPS), which
    talks to no one and without it listens on the external address. A process whose
    children may be ranks of a multi-node job (``glassdist submit``: sbatch passes its
    environment on) must not call this."""
    if not any(key in os.environ for key in LAUNCHED):
        os.environ.setdefault("UCX_NET_DEVICES", ENV["UCX_NET_DEVICES"])


def gforker() -> str:
    """MPICH's single-host process manager, next to this Python first (the venv's MPI)."""
    local = Path(sys.executable).parent / "mpiexec.gforker"
    found = str(local) if local.exists() else shutil.which("mpiexec.gforker")
    if not found:
        raise FileNotFoundError(
            "no mpiexec.gforker found: install the MPICH wheel (pip install mpich), which LAMMPS' MPI build uses"
        )
    return found


def mpiexec_argv(nranks: int, argv: list[str]) -> list[str]:
    """The command line that runs ``argv`` as ``nranks`` MPI ranks on this host (run it with
    :func:`environ`)."""
    return [gforker(), "-n", str(nranks), sys.executable, "-m", "hpc.localhost", *map(str, argv)]


def run_mpi(nranks: int, argv: list[str]) -> int:
    """Run ``argv`` as ``nranks`` MPI ranks on this host; the largest exit status of the ranks
    (128+N for a rank killed by signal N). A SIGTERM to this process is passed on to them."""
    proc = subprocess.Popen(mpiexec_argv(nranks, argv), env=environ())
    previous = signal.signal(signal.SIGTERM, lambda signum, _frame: proc.send_signal(signum))
    try:
        return proc.wait()
    finally:
        signal.signal(signal.SIGTERM, previous)


def remove_stale_segments(directory: Path = SHARED_MEMORY, older_than_s: float = STALE_AFTER_S) -> list[str]:
    """Unlink this user's MPICH segments in ``directory`` that are older than ``older_than_s``
    seconds and mapped by no process (a killed job's): the names removed."""
    now, uid = time.time(), os.getuid()
    candidates = []
    for path in directory.glob("mpich_*"):
        try:
            info = path.stat()
        except FileNotFoundError:  # another guard removed it
            continue
        if path.name.startswith(SEGMENTS) and info.st_uid == uid and now - info.st_mtime > older_than_s:
            candidates.append(path)
    if not candidates:
        return []
    mapped = _mapped(candidates)
    removed = []
    for path in candidates:
        if path not in mapped:
            try:
                path.unlink()
                removed.append(path.name)
            except FileNotFoundError:
                pass
    return removed


def _mapped(paths: list[Path]) -> set[Path]:
    """Those of ``paths`` that a process this user may inspect maps (its /proc/PID/maps names them;
    a name that is the prefix of another's counts too: such a segment is kept)."""
    found = set()
    for maps in Path("/proc").glob("[0-9]*/maps"):
        try:
            text = maps.read_text()
        except (OSError, UnicodeDecodeError):  # gone, or another user's
            continue
        found.update(path for path in paths if str(path) in text)
    return found


def _start_rank() -> None:
    """In the rank, before exec: SIGKILL when the guard dies; SIGINT back at its default."""
    import ctypes

    ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def guard(argv: list[str]) -> int:
    """Run one rank ``argv`` (after removing stale MPICH segments); pass FORWARDED signals on;
    its exit status, 128+N for signal N. SIGINT is ignored (SIG_IGN, which unlike a Python
    handler also holds while the interpreter starts and ends: gforker passes a terminal's Ctrl-C on
    to the guards, late under load): the rank gets its own from the terminal, and the guard
    reports how it ended."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    remove_stale_segments()
    pmi = [int(os.environ["PMI_FD"])] if "PMI_FD" in os.environ else []  # gforker's socket pair
    rank = subprocess.Popen(argv, pass_fds=pmi, preexec_fn=_start_rank)
    for signum in FORWARDED:
        signal.signal(signum, lambda s, _f: rank.send_signal(s))
    code = rank.wait()
    return 128 - code if code < 0 else code


if __name__ == "__main__":
    sys.exit(guard(sys.argv[1:]))
