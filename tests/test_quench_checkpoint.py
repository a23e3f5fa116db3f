"""Issue 11.1: quench checkpoints, clean stops on SIGTERM, bitwise resumption (real LAMMPS)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import zarr

from glassdist.md.lammps import random_minimum
from glassdist.md.lammps_engine import LammpsEngine
from glassdist.md.quench import quench
from glassdist.md.schedule import QuenchPlan
from glassdist.spec import apply_overrides, loads, preset_text
from hpc.farm import Suspended

from .conftest import BIN, TINY, TINY_COUNTS, glassdist, init_tiny

# 400 equilibration steps, then 1975 cooling steps; checkpoints every 150 steps of each phase
EVERY = ["md.checkpoint_every=150"]
SEED = 5


@pytest.fixture(scope="module")
def spec():
    return loads(apply_overrides(preset_text("demo-kam"), [*TINY, TINY_COUNTS["kam"], *EVERY]))


@pytest.fixture(scope="module")
def reference(spec):
    """An uninterrupted quench without a work directory (so without checkpoint files)."""
    return quench(spec, np.random.default_rng(SEED), snapshots=True)


def assert_identical(a, b):
    for name, value in vars(a).items():
        np.testing.assert_array_equal(value, getattr(b, name), err_msg=name)


def segments(spec, snapshots: bool) -> list[tuple[str, int]]:
    """The segments both engines run (at the checkpoint interval md.checkpoint_every)."""
    return list(QuenchPlan.of(spec, snapshots, spec.md.checkpoint_every).segments)


def test_segments_cut_both_phases_at_checkpoints(spec):
    plan = segments(spec, snapshots=True)
    assert plan[:4] == [("equilibrate", 150), ("equilibrate", 300), ("equilibrate", 400), ("cool", 0)]
    cool = [s for phase, s in plan if phase == "cool"]
    assert cool == sorted(set(cool)) and cool[-1] == 1975
    assert {150, 300, 1950} <= set(cool)


def stop_at_check(n):
    """should_stop() that turns true at its n-th call (the n-th segment end that may checkpoint)."""
    calls = []

    def should_stop():
        calls.append(1)
        return len(calls) >= n

    return should_stop


@pytest.mark.parametrize("n, step", [(1, 150), (3, 400), (5, 550)])
def test_stop_then_resume_is_bitwise_identical(spec, reference, tmp_path, n, step):
    """Stopped inside the equilibration, at its end (the cooling thermostat then starts fresh on
    resumption) and inside the cooling: the resumed quench equals the uninterrupted one."""
    stopped = quench(
        spec, np.random.default_rng(SEED), snapshots=True, workdir=tmp_path, label="r", should_stop=stop_at_check(n)
    )
    assert stopped is None
    assert sorted(p.name for p in tmp_path.glob("r.ckpt*")) == [f"r.ckpt-{step}.restart", "r.ckpt.npz"]
    assert "write_restart" in (tmp_path / "r.in").read_text()  # the stopped run's input is kept
    resumed = quench(spec, np.random.default_rng(SEED), snapshots=True, workdir=tmp_path, label="r")
    assert (tmp_path / f"r.resume-{step}.in").exists()
    assert_identical(resumed, reference)
    # a checkpoint of another generator state (the next attempt) is not used
    other = quench(spec, np.random.default_rng(SEED + 1), snapshots=True, workdir=tmp_path, label="r")
    assert np.abs(other.positions - reference.positions).max() > 0.1


HOLD = ["quench.hold_liquid=2.0"]  # 400 steps at T_L, inside the cooling at T_L's step 750


@pytest.fixture(scope="module")
def held_spec():
    return loads(apply_overrides(preset_text("demo-kam"), [*TINY, TINY_COUNTS["kam"], *EVERY, *HOLD]))


@pytest.fixture(scope="module")
def held_reference(held_spec):
    return quench(held_spec, np.random.default_rng(SEED), snapshots=True)


def test_hold_sits_in_the_cooling_at_T_liquid(held_spec, spec, held_reference, reference):
    """The hold's segments come between the cooling's up to T_L's step and the rest; F_s starts at
    1 and decays; k* is the first peak of a KAM liquid; the glass differs (a longer quench)."""
    plan = segments(held_spec, snapshots=True)
    phases = [phase for phase, _ in plan]
    first, last = phases.index("hold"), len(phases) - 1 - phases[::-1].index("hold")
    assert plan[first - 1] == ("cool", 750) and plan[last] == ("hold", 400) and plan[last + 1][0] == "cool"
    assert {150, 300} <= {s for p, s in plan[first : last + 1]}
    assert [p for p in plan if p[0] != "hold"] == segments(spec, snapshots=True)
    # steps since the random start (LAMMPS restart files are named by them) grow to the whole quench
    full = QuenchPlan.of(held_spec, True, held_spec.md.checkpoint_every)
    steps = [full.global_step(k) for k in range(len(plan))]
    assert all(b >= a for a, b in zip(steps, steps[1:])) and len(set(steps)) == len(steps) - 1  # one `run 0`
    assert steps[-1] == held_spec.equilibration_steps + held_spec.cooling_steps + 400
    r = held_reference
    assert r.hold_fs.shape == r.hold_pe.shape == (41,) and r.hold_fs[0] == 1.0 and r.hold_fs[-1] < 0.5
    assert 5.5 < r.k_star[0] < 8.5
    assert r.pe[0] == r.hold_pe[-1] and not np.array_equal(r.positions[0], reference.positions[0])
    assert len(reference.hold_fs) == 0  # no hold without quench.hold_liquid


@pytest.mark.parametrize("segment", [("hold", 150), ("hold", 400), ("cool", 832)])
def test_stop_in_and_after_the_hold_then_resume_is_bitwise_identical(held_spec, held_reference, tmp_path, segment):
    """Stopped inside the hold (its thermostat restored from the restart file), at its end and in
    the cooling after it (the timestep set back to T_L's cooling step): the resumed quench is identical."""
    plan = segments(held_spec, snapshots=True)
    index = plan.index(segment)
    checks = index + 1 - (index >= plan.index(("cool", 0)))  # no stop check after the `run 0` at cooling step 0
    stopped = quench(
        held_spec,
        np.random.default_rng(SEED),
        snapshots=True,
        workdir=tmp_path,
        label="r",
        should_stop=stop_at_check(checks),
    )
    with np.load(tmp_path / "r.ckpt.npz") as z:
        assert int(z["segment"]) == index
    assert stopped is None
    resumed = quench(held_spec, np.random.default_rng(SEED), snapshots=True, workdir=tmp_path, label="r")
    assert_identical(resumed, held_reference)


SCRIPT = """
import sys, numpy as np
from glassdist.spec import loads
from glassdist.md.quench import quench
spec = loads(open(sys.argv[1]).read())
quench(spec, np.random.default_rng(int(sys.argv[3])), snapshots=True, workdir=sys.argv[2], label="r")
"""


def test_sigkill_then_resume_is_bitwise_identical(spec, reference, tmp_path):
    (tmp_path / "spec.toml").write_text(apply_overrides(preset_text("demo-kam"), [*TINY, TINY_COUNTS["kam"], *EVERY]))
    (tmp_path / "run.py").write_text(SCRIPT)
    work = tmp_path / "work"
    work.mkdir()
    proc = subprocess.Popen(
        [sys.executable, str(tmp_path / "run.py"), str(tmp_path / "spec.toml"), str(work), str(SEED)]
    )
    deadline = time.time() + 120
    while not (work / "r.ckpt.npz").exists():
        assert proc.poll() is None and time.time() < deadline, "quench ended before its first checkpoint"
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    with np.load(work / "r.ckpt.npz") as z:
        step = int(z["step"])
    assert 0 < step < 400 + 1975 and (work / f"r.ckpt-{step}.restart").exists()
    resumed = quench(spec, np.random.default_rng(SEED), snapshots=True, workdir=work, label="r")
    assert_identical(resumed, reference)


def test_minimisation_stops_between_block_items(spec, tmp_path):
    """No checkpoint inside LAMMPS's minimiser: a stop request suspends the block before an item."""
    x = np.stack([random_minimum(spec, s) for s in (1, 2)])
    engine = LammpsEngine()
    with pytest.raises(Suspended):
        engine.minimise_block(spec, x, spec.types, labels=["a", "b"], workdir=tmp_path, should_stop=stop_at_check(2))
    assert (tmp_path / "a.in").exists() and not (tmp_path / "b.in").exists()
    e0, minima = engine.minimise_block(spec, x, spec.types, labels=["a", "b"], workdir=tmp_path)
    assert minima.shape == x.shape and np.isfinite(e0).all()


def start_and_wait_for(argv, *paths_or_globs, **popen) -> subprocess.Popen:
    """Start ``argv`` (stdout+stderr to a pipe) and return once one of the paths (or glob
    results, given as (directory, pattern)) exists; fails if the process ends first."""
    proc = subprocess.Popen(
        [str(a) for a in argv], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen
    )
    deadline = time.time() + 120
    while not any(list(p[0].glob(p[1])) if isinstance(p, tuple) else p.exists() for p in paths_or_globs):
        assert proc.poll() is None and time.time() < deadline, proc.stdout.read()
        time.sleep(0.01)
    return proc


def test_sigterm_ends_a_long_minimisation_inside_lammps(quenched, tmp_path):
    """A minimisation that would run for many minutes inside one LAMMPS call (no force or
    energy tolerance, 10^7 FIRE iterations) ends within seconds of a SIGTERM: the stop watcher
    calls LAMMPS's timeout; the stage exits 1 with every task pending (a rerun redoes them)."""
    d = tmp_path / "long"
    glassdist(
        "init",
        d,
        "--from",
        quenched["kam"],
        "--set",
        "inherent.ftol=0",
        "--set",
        "inherent.etol=0",
        "--set",
        "inherent.max_iterations=10000000",
    )
    proc = start_and_wait_for(
        [BIN / "glassdist", "inherent", d], d / "lammps" / "inherent" / "replica-000000-T000.data"
    )
    time.sleep(2)  # well inside the first minimisation
    sent = time.time()
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    waited = time.time() - sent
    assert proc.returncode == 1 and "stopped on request" in out, out
    assert waited < 20, f"{waited:.1f} s after SIGTERM"
    assert not (d / "lammps" / "inherent" / "replica-000000-T001.data").exists()  # still the first item
    states = zarr.open_group(d / "store.zarr", mode="r")["ledger/inherent/state"][:]
    assert (states == 0).all()


# ---- the stage: SIGTERM mid-replica, exit 1 within 60 s, rerun equals an uninterrupted run ----

STAGE = [
    "quench.replicas=3",
    "quench.split=[1,1,1]",
    "quench.snapshot_replicas=1",
    "quench.cooling_rate=0.2",
    "md.checkpoint_every=500",
]


@pytest.mark.slow
def test_sigterm_stops_stage_mid_replica_then_rerun_equals_uninterrupted(tmp_path):
    """Replicas of ~6 s (3950 cooling steps at N = 200): SIGTERM once the first replica has
    checkpointed; the stage stops at its next segment end."""
    ref = init_tiny(tmp_path / "ref", "kam", *STAGE)
    glassdist("quench", ref)
    d = init_tiny(tmp_path / "stopped", "kam", *STAGE)
    first = d / "lammps" / "quench" / "replica-000000.ckpt.npz"
    proc = start_and_wait_for([BIN / "glassdist", "quench", d], first)
    sent = time.time()
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert time.time() - sent < 60
    assert proc.returncode == 1 and "stopped on request" in out and "rerun to continue" in out, out
    with np.load(first) as z:
        assert 0 < int(z["step"]) < 400 + 3950  # stopped inside replica 0
    states = zarr.open_group(d / "store.zarr", mode="r")["ledger/quench/state"][:]
    assert (states == 0).all()  # all pending, none failed
    assert (d / "lammps" / "quench" / "replica-000000.in").exists()
    glassdist("quench", d)
    a, b = (zarr.open_group(c / "store.zarr", mode="r") for c in (d, ref))
    for name in ("positions", "pe", "temperature", "thermo_T", "thermo_pe", "snapshots"):
        np.testing.assert_array_equal(a[f"quench/{name}"][:], b[f"quench/{name}"][:], err_msg=name)
    assert list((d / "lammps" / "quench").glob("replica-000000.resume-*.in"))
    assert not list((d / "lammps" / "quench").glob("*.ckpt*"))  # cleared once stored


def test_sigterm_to_glassdist_run_reaches_the_mpi_ranks(tmp_path):
    """`glassdist run --np 2` starts the quench under mpiexec; a SIGTERM to `glassdist run` is
    passed on: the ranks checkpoint and stop, run exits 1 within 60 s and leaves no process."""
    d = init_tiny(tmp_path / "run", "kam", *STAGE)
    proc = start_and_wait_for(
        [BIN / "glassdist", "run", d, "--np", "2", "--stages", "quench"],
        (d / "lammps" / "quench", "replica-*.ckpt.npz"),
        start_new_session=True,
    )
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1 and "stopped on request" in out, out
    time.sleep(2)
    with pytest.raises(ProcessLookupError):
        os.killpg(proc.pid, 0)  # mpiexec and both ranks are gone
    assert list((d / "lammps" / "quench").glob("replica-*.ckpt.npz"))
