"""Single-node runs listen on loopback only (DESIGN §5, docs/security.md): the listening sockets
of every process of a real run (2 MPI ranks, Dask, 2-process DDP training), sampled from the
run's process tree while it runs."""

from __future__ import annotations

import ipaddress
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from glassdist import spec as specmod
from glassdist.store import Store
from hpc import localhost

from .conftest import BIN, glassdist, init_tiny

ENV = dict(os.environ, OMP_NUM_THREADS="1")


def listening(root: psutil.Process) -> set[tuple[str, str, int]]:
    """(process name, address, port) of each listening TCP socket and each unconnected UDP
    socket of ``root`` and its descendants, now."""
    found = set()
    try:
        tree = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return found
    for p in tree:
        try:
            name = p.name()
            for c in p.net_connections(kind="inet"):
                if c.status == psutil.CONN_LISTEN or (c.type == 2 and not c.raddr):  # 2: SOCK_DGRAM
                    found.add((name, c.laddr.ip, c.laddr.port))
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            pass
    return found


def run_sampled(argv: list, timeout: float = 600) -> tuple[subprocess.CompletedProcess, set, set]:
    """Run argv to its end; (the process, every socket `listening` saw, the names of the
    processes of its tree) sampled every 20 ms."""
    proc = subprocess.Popen(
        [str(a) for a in argv], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ENV
    )
    root, sockets, names = psutil.Process(proc.pid), set(), set()
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        sockets |= listening(root)
        try:
            names |= {p.name() for p in root.children(recursive=True)}
        except psutil.NoSuchProcess:
            pass
        time.sleep(0.02)
    out, _ = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
    return subprocess.CompletedProcess(proc.args, proc.returncode, out), sockets, names


def public(sockets: set) -> list:
    """The sockets not on a loopback address (127.0.0.0/8, ::1, IPv4-mapped 127.x)."""

    def loopback(address: str) -> bool:
        ip = ipaddress.ip_address(address.split("%")[0])
        return ip.is_loopback or bool(getattr(ip, "ipv4_mapped", None) and ip.ipv4_mapped.is_loopback)

    return sorted(s for s in sockets if not loopback(s[1]))


def test_sampler_sees_a_socket_on_every_interface():
    """The check can fail: a child process listening on 0.0.0.0 is reported."""
    server = "import socket, time; s = socket.socket(); s.bind(('0.0.0.0', 0)); s.listen(); time.sleep(1)"
    proc, sockets, _ = run_sampled(
        [sys.executable, "-c", f"import subprocess, sys; subprocess.run([sys.executable, '-c', {server!r}])"]
    )
    assert proc.returncode == 0 and [s[1] for s in public(sockets)] == ["0.0.0.0"]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """A tiny campaign after `glassdist run --stages quench,dataset --np 2` (2 MPI ranks, then
    Dask), and what that run listened on: (DIR, process, sockets, process names)."""
    d = init_tiny(tmp_path_factory.mktemp("net") / "c", "kam", "train.epochs=2", "dask.workers=2")
    proc, sockets, names = run_sampled([BIN / "glassdist", "run", d, "--stages", "quench,dataset", "--np", "2"])
    return d, proc, sockets, names


def copy_of(prepared, tmp_path) -> Path:
    shutil.copytree(prepared[0], tmp_path / "c")
    return tmp_path / "c"


@pytest.mark.slow
def test_mpi_and_dask_listen_on_loopback_only(prepared):
    _, proc, sockets, names = prepared
    assert proc.returncode == 0, proc.stdout
    assert "mpiexec.gforker" in names and names & {"python", "python3"}, names
    assert sockets and public(sockets) == [], sockets  # UCX's and Dask's listeners, on loopback


@pytest.mark.slow
def test_ddp_training_listens_on_loopback_only(prepared, tmp_path):
    d = copy_of(prepared, tmp_path)
    proc, sockets, _ = run_sampled([BIN / "glassdist", "train", d, "--nproc", "2"])
    assert proc.returncode == 0, proc.stdout
    assert sockets and public(sockets) == [], sockets  # gloo's listeners, on loopback
    store = Store(d, mode="r")
    assert store.ledger("train").done_mask().all()
    assert store.root["train"].attrs["model_card"][0]["world_size"] == 2


@pytest.mark.slow
def test_ddp_training_stops_on_sigterm_exit_1_then_resumes(prepared, tmp_path):
    """SIGTERM to `glassdist train --nproc 2` reaches both workers: they stop together after
    an epoch of member 0 (exit 1, nothing marked done); the rerun continues to exit 0."""
    d = copy_of(prepared, tmp_path)
    (d / "campaign.toml").write_text(specmod.apply_overrides((d / "campaign.toml").read_text(), ["train.epochs=20"]))
    proc = subprocess.Popen(
        [BIN / "glassdist", "train", d, "--nproc", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=ENV,
    )
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if "epoch 1/20" in line:
            proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 1, "".join(lines)
    assert any("stopped on request" in line for line in lines) and not any("Traceback" in x for x in lines)
    assert not Store(d, mode="r").ledger("train").done_mask().any()
    out = glassdist("train", d, "--nproc", "2", env={"OMP_NUM_THREADS": "1"})
    # the interrupted member resumes from its checkpoint; the members after it train from their start
    assert "epoch 1/20 member 0 " not in out.stdout and "epoch 20/20 member 0 " in out.stdout
    assert "epoch 1/20 member 1 " in out.stdout
    assert Store(d, mode="r").ledger("train").done_mask().all()


RANK = """
import os, signal, sys
from mpi4py import MPI
if MPI.COMM_WORLD.rank == int(sys.argv[1]):
    os.kill(os.getpid(), signal.SIGKILL)
MPI.COMM_WORLD.barrier()
"""


def test_a_rank_killed_by_a_signal_fails_the_run():
    """gforker alone reports a rank killed by SIGKILL as exit status 0; with the guard: 137."""
    argv = [sys.executable, "-c", RANK]
    assert localhost.run_mpi(2, argv + ["-1"]) == 0
    assert localhost.run_mpi(2, argv + ["1"]) == 128 + signal.SIGKILL
