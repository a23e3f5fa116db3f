"""MPI jobs on one host (hpc.localhost, hpc.farm) that what earlier jobs left cannot break, and
that Ctrl-C ends: real gforker launches of 2 ranks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hpc import localhost

SHM = localhost.SHARED_MEMORY
pytestmark = pytest.mark.skipif(not SHM.is_dir(), reason="no /dev/shm: MPICH keeps no named segments here")

HOLD = r"""
import sys, time
from mpi4py import MPI
MPI.COMM_WORLD.barrier()
time.sleep(float(sys.argv[1]))
"""

# Starts a launcher (argv[3:]) with a copy of the segment argv[1] planted in directory argv[2], aged,
# under the name MPICH will give the launcher's job: what a killed job leaves when its launcher's pid comes back.
PLANT = r"""
import os, shutil, sys
sys.path.insert(0, os.environ["TESTS_DIR"])
from test_mpi_launch import segment_name
path = f"{sys.argv[2]}/{segment_name(os.getpid())}"
shutil.copy(sys.argv[1], path)
os.utime(path, (0, 0))
print(path, flush=True)
os.execv(sys.argv[3], sys.argv[3:])
"""


def segment_name(launcher_pid: int) -> str:
    """MPICH 5's name for node 0's shared memory of a job that gforker ``launcher_pid`` started:
    the FNV-1a hash of its PMI name ``kvs_<pid>_0``, in hex."""
    h = 2166136261
    for byte in f"kvs_{launcher_pid}_0".encode():
        h = ((h ^ byte) * 16777619) & 0xFFFFFFFF
    return f"mpich_shm_{h:x}_0"


def test_a_killed_jobs_shared_memory_under_a_recycled_pid_is_removed_before_the_ranks_start(tmp_path):
    """A live job's segment is named after its launcher's pid and kept by the sweep (it is mapped);
    the same bytes planted under the next launcher's name, as old as a killed job's, would make
    MPI_Init fail (UCX "Invalid parameter": the CI failure of 2026-12-06); the guard removes them
    first and the job runs."""
    hold = localhost.mpiexec_argv(2, [sys.executable, "-c", HOLD, "30"])
    live = subprocess.Popen(hold, env=localhost.environ(), start_new_session=True)
    try:
        path = SHM / segment_name(live.pid)
        deadline = time.monotonic() + 60
        while not path.exists():
            assert live.poll() is None and time.monotonic() < deadline, "MPICH named no segment after its launcher"
            time.sleep(0.05)
        time.sleep(1.0)  # both ranks past the barrier: the segment is set up and mapped
        (tmp_path / "stale").write_bytes(path.read_bytes())
        os.utime(path, (0, 0))  # old, but mapped: kept (a sweep of anything younger could meet a job in MPI_Init)
        assert path.name not in localhost.remove_stale_segments() and path.exists()
    finally:
        os.killpg(live.pid, signal.SIGKILL)
        live.wait()
    planted = subprocess.run(
        [
            sys.executable,
            "-c",
            PLANT,
            tmp_path / "stale",
            SHM,
            *localhost.mpiexec_argv(2, [sys.executable, "-c", HOLD, "0"]),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=localhost.environ({**os.environ, "TESTS_DIR": str(Path(__file__).parent)}),
    )
    assert planted.returncode == 0, planted.stdout + planted.stderr
    assert not Path(planted.stdout.split()[0]).exists()
    assert not path.exists()  # the killed job's own went too: old (see above) and now mapped by no one


WAIT_FOR_A_BLOCK = r"""
from mpi4py import MPI
import time
from hpc.farm import TASK, _receive
if MPI.COMM_WORLD.rank == 1:
    print("waiting", flush=True)
    _receive(MPI.COMM_WORLD, 0, TASK)  # rank 0 never sends it
else:
    time.sleep(120)
"""


def test_ctrl_c_ends_a_rank_waiting_for_its_next_block():
    """Ctrl-C (SIGINT to the process group) while rank 1 waits in the farm for a block that rank 0
    will never send: every rank ends within seconds (a blocking MPI receive would wait for ever:
    the hang of test_ctrl_c_is_exit_130_with_one_line in CI)."""
    proc = subprocess.Popen(
        localhost.mpiexec_argv(2, [sys.executable, "-c", WAIT_FOR_A_BLOCK]),
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=localhost.environ(),
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert proc.stdout.readline().strip() == "waiting"
    time.sleep(1.0)
    os.killpg(proc.pid, signal.SIGINT)
    try:
        out, _ = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise AssertionError("a rank waiting for its next block outlived Ctrl-C") from None
    assert "KeyboardInterrupt" in out


def test_the_guard_outlives_every_sigint_and_reports_its_rank():
    """gforker passes a Ctrl-C on to the guards, late when the machine is busy; a guard that died of
    it, while starting or ending its interpreter, made gforker print "signaled with Interrupt" (a CI
    failure of 2026-12-06). SIGINT to the guard every millisecond from its rank's start to its end:
    it exits with its rank's status."""
    rank = "import sys, time; print('started', flush=True); time.sleep(0.5); sys.exit(7)"
    guard = subprocess.Popen(
        [sys.executable, "-m", "hpc.localhost", sys.executable, "-c", rank], stdout=subprocess.PIPE, text=True
    )
    assert guard.stdout.readline().strip() == "started"
    while guard.poll() is None:
        try:
            os.kill(guard.pid, signal.SIGINT)
        except ProcessLookupError:
            break
        time.sleep(0.001)
    assert guard.wait() == 7
