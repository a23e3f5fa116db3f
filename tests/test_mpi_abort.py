"""Issue 11.2: no MPI hang. An error on one rank ends every rank within seconds, printed once
(real MPI, real `glassdist` under mpiexec); errors every rank shares end them normally."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from hpc import localhost

from .conftest import BIN, init_tiny


def mpiexec(*args, env=None, timeout=120) -> tuple[int, str]:
    """(exit code, stdout + stderr) of ARGS as 2 MPI ranks on this host (as `glassdist run`
    starts them); a hang would end in the timeout."""
    proc = subprocess.run(
        localhost.mpiexec_argv(2, list(map(str, args))),
        capture_output=True,
        text=True,
        env=localhost.environ({**os.environ, **(env or {})}),
        timeout=timeout,
    )
    return proc.returncode, proc.stdout + proc.stderr


def mpi_python(snippet: str) -> tuple[int, str]:
    """:func:`mpiexec` of a Python snippet on 2 ranks."""
    return mpiexec(sys.executable, "-c", snippet)


@pytest.fixture
def campaign(tmp_path):
    return init_tiny(tmp_path / "c", "kam", "quench.replicas=4", "quench.split=[2,1,1]")


def test_error_on_rank_1_outside_the_farm_retry_aborts_every_rank(campaign):
    """Rank 1 raises in the farm's worker loop (before asking for work): without the abort, rank
    0 would quench every replica and then wait for rank 1 in its dispatcher forever."""
    code, out = mpiexec(BIN / "glassdist", "quench", campaign, env={"HPC_INJECT_RANK_ERROR": "1"})
    assert code != 0, out
    assert out.count("injected error on rank 1 in the MPI farm's worker loop") == 1, out
    assert "[rank 1 of 2] Traceback" in out and "MPI_Abort" in out


def test_unexpected_error_in_prepare_aborts_every_rank(campaign):
    """Rank 0's prepare fails (the store path is a file), the other rank waits in the broadcast."""
    (campaign / "store.zarr").write_text("not a store")
    code, out = mpiexec(BIN / "glassdist", "quench", campaign)
    assert code != 0, out
    assert out.count("FileExistsError") == 1 and "[rank 0 of 2]" in out, out


def test_glassdist_error_on_one_rank_aborts_every_rank():
    """A GlassdistError on rank 1 only, while rank 0 waits in a collective: printed once without a
    traceback, every rank ends with its exit code (2)."""
    snippet = (
        "from mpi4py import MPI\n"
        "from hpc.mpi import abort_on_error\n"
        "from glassdist.cli import _describe\n"
        "from glassdist.errors import UsageError\n"
        "comm = MPI.COMM_WORLD\n"
        "with abort_on_error(comm, _describe):\n"
        "    if comm.Get_rank() == 1:\n"
        "        raise UsageError('only rank 1 sees this')\n"
        "    comm.Barrier()\n"
    )
    code, out = mpi_python(snippet)
    assert code == 2, (code, out)
    assert out.count("glassdist: error: only rank 1 sees this") == 1 and "Traceback" not in out, out


def test_error_in_a_thread_aborts_every_rank():
    """An exception in a thread (like the farm's dispatcher) aborts every rank."""
    snippet = (
        "import threading\n"
        "from mpi4py import MPI\n"
        "from hpc.mpi import abort_on_error\n"
        "comm = MPI.COMM_WORLD\n"
        "def fail():\n"
        "    raise RuntimeError('dispatcher died')\n"
        "with abort_on_error(comm):\n"
        "    if comm.Get_rank() == 0:\n"
        "        threading.Thread(target=fail, name='dispatcher').start()\n"
        "    comm.Barrier() if comm.Get_rank() == 0 else comm.recv(source=0)\n"
    )
    code, out = mpi_python(snippet)
    assert code != 0, out
    assert out.count("RuntimeError: dispatcher died") == 1 and "thread dispatcher" in out, out


def test_bad_campaign_file_ends_every_rank_normally_printed_once(campaign):
    toml = campaign / "campaign.toml"
    toml.write_text(toml.read_text().replace("cooling_rate = 0.4", "cooling_rate = -1.0"))
    code, out = mpiexec(BIN / "glassdist", "quench", campaign)
    assert code == 2, out
    assert out.count("campaign key 'quench.cooling_rate'") == 1 and "MPI_Abort" not in out, out
