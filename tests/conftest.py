"""Shared fixtures: tiny real campaigns made with the real CLI (real LAMMPS, real MPI)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hpc import localhost

BIN = Path(sys.executable).parent

# A campaign small enough for tests: N = 200, 8 replicas, a fast quench (about 0.2 s each).
TINY = [
    "system.n_particles=200",
    "quench.replicas=8",
    "quench.split=[4,2,2]",
    "quench.cooling_rate=0.4",
    "quench.equilibration_time=2.0",
    "quench.thermo_points=20",
    "quench.snapshot_replicas=2",
    "dataset.grid=24",
    "propensity.main_samples=0",
    "quench.hold_liquid=0.0",
]  # no liquid hold (tests/test_liquid_hold.py holds liquids)
TINY_COUNTS = {"kam": "system.counts=[130,70]", "abm": "system.counts=[100,100]", "ka3d": "system.counts=[160,40]"}


# The fast lane, `pytest -m unit`: the science functions checked against independent computations,
# in this process (no MPI, SLURM, Dask cluster or `glassdist` process; LAMMPS only as a library in
# test_structure.py's minimisations): under a minute on 2 cores.
UNIT_FILES = {
    "test_analysis.py",
    "test_departures.py",
    "test_dynamics.py",
    "test_fields.py",
    "test_glassbench.py",
    "test_gradcam_ensemble.py",
    "test_grid.py",
    "test_layers.py",
    "test_scattering.py",
    "test_structure.py",
    "test_tongtanaka3d.py",
    "test_uncertainty.py",
}


# The files whose tests take minutes, longest first (their summed seconds on 2 cores, 2026-12-06:
# vcluster 500, warp_engine 370, architecture 280, learn_stages 240, user_errors 220, ensemble_training
# 180, slurm 140, gpu_check 130). `pytest -n 2 --dist loadfile --no-loadscope-reorder` hands whole
# files to the two workers in collection order: these start first, so that both workers end together.
LONGEST_FIRST = (
    "test_vcluster.py",
    "test_warp_engine.py",
    "test_architecture.py",
    "test_learn_stages.py",
    "test_user_errors.py",
    "test_ensemble_training.py",
    "test_slurm.py",
    "test_gpu_check.py",
)


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.path.name in UNIT_FILES:
            item.add_marker(pytest.mark.unit)
    first = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: first.get(item.path.name, len(first)))  # stable: the rest keep their order


def glassdist(*args, check=True, env=None, timeout=600) -> subprocess.CompletedProcess:
    """Run the real `glassdist` console script."""
    proc = subprocess.run(
        [str(BIN / "glassdist"), *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"glassdist {' '.join(map(str, args))} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def mpi_glassdist(np_: int, *args, check=True, env=None, timeout=600) -> subprocess.CompletedProcess:
    """`glassdist ...` as np_ MPI ranks on this host, loopback only (as `glassdist run` starts them)."""
    proc = subprocess.run(
        localhost.mpiexec_argv(np_, [BIN / "glassdist", *args]),
        capture_output=True,
        text=True,
        env=localhost.environ({**os.environ, **(env or {})}),
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"mpiexec glassdist {' '.join(map(str, args))} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


def interrupt(argv, started, timeout=120) -> tuple[int, str, str]:
    """Start ``glassdist *argv`` in its own process group with SIGINT at its default (as in a
    terminal), wait until ``started()`` is true, send SIGINT to the group (what Ctrl-C does):
    (exit code, stdout, stderr), once no process of the group is left."""
    proc = subprocess.Popen(
        [BIN / "glassdist", *map(str, argv)],
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.time() + timeout
    while not started():
        assert proc.poll() is None and time.time() < deadline
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    deadline = time.time() + 10  # and no process it started outlives it (MPI ranks, training processes)
    while time.time() < deadline:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return proc.returncode, out, err
        time.sleep(0.1)
    raise AssertionError(f"processes of the interrupted `glassdist {' '.join(map(str, argv))}` still run")


def init_tiny(directory: Path, system: str = "kam", *extra: str) -> Path:
    sets = [*TINY, TINY_COUNTS[system], *extra]
    glassdist("init", directory, "--preset", f"demo-{system}", *[a for s in sets for a in ("--set", s)])
    return directory


@pytest.fixture(scope="session")
def quenched(tmp_path_factory):
    """Tiny KAM and ABM campaigns whose quench stage is done: {'kam': DIR, 'abm': DIR}."""
    out = {}
    for system in ("kam", "abm"):
        d = init_tiny(tmp_path_factory.mktemp(system) / "c", system)
        mpi_glassdist(2, "quench", d)
        out[system] = d
    return out
