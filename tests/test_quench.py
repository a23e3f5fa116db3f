"""Issue 2: the quench farm, the store and the campaign file, with real LAMMPS and real MPI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import tomllib

import numpy as np
import pytest
import tomli_w
import zarr

from glassdist import spec as specmod
from glassdist.md.lammps import (
    LammpsSession,
    dynamics_fixes,
    num,
    pair_commands,
    random_start_commands,
    read_data_commands,
    write_data_file,
)
from glassdist.store import Store

from .conftest import BIN, glassdist, init_tiny, mpi_glassdist


# ---- an independent NumPy evaluation of eq. (1) ------------------------------------------


def lj_smooth_linear(positions, types, L, sigma, epsilon, rc):
    """Energy per particle and forces (N, dim) of eq. (1), all pairs, minimum image."""
    d = positions[:, None, :] - positions[None, :, :]
    d -= L * np.round(d / L)
    r = np.sqrt((d**2).sum(-1))
    np.fill_diagonal(r, np.inf)
    s, e, c = (m[types[:, None], types[None, :]] for m in (sigma, epsilon, rc))

    def phi(x):
        return 4 * e * ((s / x) ** 12 - (s / x) ** 6)

    def dphi(x):
        return 4 * e * (-12 * s**12 / x**13 + 6 * s**6 / x**7)

    inside = r < c
    pair_e = np.where(inside, phi(r) - phi(c) - (r - c) * dphi(c), 0.0)
    pair_f = np.where(inside, -(dphi(r) - dphi(c)), 0.0)  # -d(phi)/dr
    forces = (pair_f / r)[:, :, None] * d
    return pair_e.sum() / 2 / len(types), forces.sum(axis=1)


@pytest.mark.parametrize("system", ["kam", "abm"])
def test_lammps_energy_and_forces_match_numpy_eq1(quenched, system, tmp_path):
    d = quenched[system]
    spec = specmod.load(d)
    store = Store(d, mode="r")
    positions, replicas = store.configurations()
    pe = store.root["quench/pe"][:]
    types = store.types()
    for r_index, replica in enumerate(replicas[:2]):
        for cls in (0, 1):
            x = positions[r_index, cls]
            e_np, f_np = lj_smooth_linear(x, types, spec.box_length, spec.sigma, spec.epsilon, spec.cutoff)
            assert e_np == pytest.approx(pe[replica, cls], rel=1e-10)
            path = tmp_path / f"{replica}-{cls}.data"
            write_data_file(path, spec, x, types)
            with LammpsSession(spec) as lmp:
                lmp.run(read_data_commands(spec, path) + pair_commands(spec))
                assert lmp.pe_per_atom() == pytest.approx(e_np, rel=1e-10)
                f_lmp = lmp._gather("f", 3, 1)[:, : spec.dim]
            np.testing.assert_allclose(f_lmp, f_np, rtol=1e-8, atol=1e-8 * np.abs(f_np).max())


def test_composition_density_and_box(quenched):
    for _system, d in quenched.items():
        spec = specmod.load(d)
        store = Store(d, mode="r")
        types = store.types()
        assert np.bincount(types).tolist() == spec.system.counts
        L = spec.box_length
        assert L**spec.dim == pytest.approx(spec.system.n_particles / spec.system.density)
        positions, _ = store.configurations()
        assert positions.shape[2:] == (spec.system.n_particles, spec.dim)
        assert (positions >= 0).all() and (positions <= L).all()
        T = store.root["quench/temperature"][:]
        assert np.isfinite(T).all() and (T[:, 1] < T[:, 0]).all()
        snaps = store.root["quench/snapshots"][:]
        assert np.isfinite(snaps).all() and snaps.shape[:2] == (2, len(spec.quench.snapshot_temperatures))


def test_store_records_spec_versions_and_timings(quenched):
    store = Store(quenched["kam"], mode="r")
    attrs = store.root.attrs
    spec = specmod.load(quenched["kam"])
    assert attrs["spec_hash"] == spec.hash
    assert attrs["spec"] == json.loads(json.dumps(spec.raw))
    assert attrs["versions"]["lammps"] != "absent" and attrs["versions"]["glassdist"]
    ledger = store.ledger("quench")
    assert ledger.counts() == {"done": 8, "failed": 0, "pending": 0}
    assert (ledger.seconds[:] > 0).all() and (ledger.attempts[:] == 1).all()
    lammps_in = (quenched["kam"] / "lammps" / "quench" / "replica-000003.in").read_text()
    assert "pair_style lj/smooth/linear" in lammps_in and "fix twod all enforce2d" in lammps_in


def _nve_energy_error(spec, dt, time_span=10.0, samples=20):
    """Total energy per particle minus its start, (samples,), and times, of an NVE run at T = 4."""
    with LammpsSession(spec) as lmp:
        lmp.run(
            [
                *random_start_commands(spec, np.random.default_rng(11)),
                *dynamics_fixes(spec),
                "velocity all create 4.0 5 dist gaussian mom yes rot no",
                f"fix nvt all nvt temp 4.0 4.0 {num(spec.md.thermostat_damping)}",
                "run 2000",
                "unfix nvt",
                f"timestep {num(dt)}",
                "fix nve all nve",
                "thermo_modify norm yes",
                "run 0 post no",
            ]
        )
        e0, steps = lmp.thermo("etotal"), int(round(time_span / dt / samples))
        energies = []
        for _ in range(samples):
            lmp.run(f"run {steps} post no")
            energies.append(lmp.thermo("etotal"))
        kinetic = lmp.thermo("ke")
    return np.asarray(energies) - e0, np.arange(1, samples + 1) * steps * dt, kinetic


def test_nve_energy_conservation_justifies_dt():
    """dt = 0.005 at T = 4 (the hottest state of the protocol). Velocity Verlet conserves a shadow
    energy: the error of the true energy fluctuates with amplitude ~ dt^2 and does not drift.
    Checked: (i) halving dt shrinks the fluctuation by ~4 (we are in the dt^2 regime, no
    instability), (ii) the deviation stays below 0.25 % of the kinetic energy, (iii) the linear
    drift is below 5e-4 per particle per LJ time (measured ~1e-4, noise of the fit), i.e. far
    smaller than what the Nose-Hoover thermostat exchanges. Measured: max |dE| 3.7e-3 at dt 0.005,
    1.2e-3 at 0.0025 (KE ~ 3.8 per particle)."""
    spec = specmod.loads(specmod.preset_text("demo-kam"))
    err, t, kinetic = _nve_energy_error(spec, spec.md.dt)
    err_half, _, _ = _nve_energy_error(spec, spec.md.dt / 2)
    ratio = err.std() / err_half.std()
    assert 2.5 < ratio < 6.5, ratio
    assert np.abs(err).max() < 2.5e-3 * kinetic
    assert abs(np.polyfit(t, err, 1)[0]) < 5e-4


@pytest.mark.parametrize("task", [38, 133, 139])
def test_random_start_never_stacks_particles(task):
    """ABM at N = 2000 (area fraction 0.88 at the range sigma_ij): with a soft range of sigma_ij
    these three starts of the demo seed stacked two particles and eq. (1) blew up. Now no pair
    ends the overlap removal closer than 0.8 sigma_ij, and eq. (1) minimises to a finite energy."""
    from scipy.spatial import cKDTree

    from hpc.farm import task_rng

    spec = specmod.loads(
        specmod.apply_overrides(
            specmod.preset_text("demo-abm"), ["system.n_particles=2000", "system.counts=[1000,1000]"]
        )
    )
    commands = random_start_commands(spec, task_rng(spec.campaign.seed, "quench", task, 0))
    eq1 = commands.index(pair_commands(spec)[0])
    with LammpsSession(spec) as lmp:
        lmp.run(commands[:eq1])
        x, types = lmp.positions(), spec.types
        pairs = cKDTree(x, boxsize=spec.box_length).query_pairs(1.2, output_type="ndarray")
        d = x[pairs[:, 0]] - x[pairs[:, 1]]
        d -= spec.box_length * np.round(d / spec.box_length)
        r = np.linalg.norm(d, axis=1) / spec.sigma[types[pairs[:, 0]], types[pairs[:, 1]]]
        assert r.min() >= 0.8 - 1e-3
        lmp.run(commands[eq1:])
        assert np.isfinite(lmp.pe_per_atom()) and lmp.pe_per_atom() < 0


def test_replica_identical_whatever_ranks_and_order(tmp_path, quenched):
    """Every replica of a serial run (P = 1, in order) equals the P = 2 farm's (dynamic order)."""
    d = init_tiny(tmp_path / "serial")
    glassdist("quench", d)
    a = zarr.open_group(str(quenched["kam"] / "store.zarr"))["quench/positions"][:]
    b = zarr.open_group(str(d / "store.zarr"))["quench/positions"][:]
    np.testing.assert_array_equal(a, b)


def test_kill9_then_rerun_equals_uninterrupted(tmp_path, quenched):
    d = init_tiny(tmp_path / "killed", "kam", "quench.replicas=8")
    proc = subprocess.Popen(
        [str(BIN / "mpiexec"), "-n", "2", str(BIN / "glassdist"), "quench", str(d)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    ledger_state = d / "store.zarr" / "ledger" / "quench" / "state" / "c"
    deadline = time.time() + 120
    while time.time() < deadline and (not ledger_state.exists() or len(os.listdir(ledger_state)) < 2):
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    counts = Store(d, mode="r").ledger("quench").counts()
    assert 0 < counts["done"] < 8, counts  # killed mid-way
    mpi_glassdist(2, "quench", d)
    store = Store(d, mode="r")
    assert store.ledger("quench").counts()["done"] == 8
    ref = zarr.open_group(str(quenched["kam"] / "store.zarr"))
    for name in ("positions", "pe", "thermo_pe", "snapshots"):
        np.testing.assert_array_equal(store.root[f"quench/{name}"][:], ref[f"quench/{name}"][:])


def test_failed_replica_is_retried_and_never_marked_done_with_bad_data(tmp_path):
    d = init_tiny(tmp_path / "inject")
    proc = glassdist("quench", d, env={"HPC_INJECT_FAILURES": "1,3"})
    assert "injected failure of task 1" in proc.stderr
    ledger = Store(d, mode="r").ledger("quench")
    assert ledger.counts()["done"] == 8
    assert ledger.attempts[:].tolist() == [1, 2, 1, 2, 1, 1, 1, 1]


def test_lammps_failure_recorded_never_done(tmp_path):
    """A time step 100x too large blows every replica up: each is tried max_attempts times,
    recorded failed with LAMMPS' error, and none is marked done; exit code 1."""
    d = init_tiny(
        tmp_path / "blowup", "kam", "md.dt=0.5", "md.max_attempts=2", "quench.replicas=3", "quench.split=[1,1,1]"
    )
    proc = glassdist("quench", d, check=False)
    assert proc.returncode == 1, proc.stderr
    ledger = Store(d, mode="r").ledger("quench")
    assert ledger.counts() == {"done": 0, "failed": 3, "pending": 0}
    assert (ledger.attempts[:] == 2).all()
    status = glassdist("status", d).stdout
    assert "failed (2 attempts)" in status


@pytest.mark.parametrize(
    "section, key, value, name",
    [
        ("system", "bogus", 1, "system.bogus"),
        ("quench", "replicas", "many", "quench.replicas"),
        ("quench", "cooling_rate", -1.0, "quench.cooling_rate"),
        ("system", "counts", [1, 2], "system.counts"),
        ("nonsense", "x", 1, "nonsense"),
    ],
)
def test_malformed_campaign_exit2_nothing_written(tmp_path, section, key, value, name):
    d = init_tiny(tmp_path / "bad")
    data = tomllib.loads((d / "campaign.toml").read_text())
    data.setdefault(section, {})[key] = value
    (d / "campaign.toml").write_text(tomli_w.dumps(data))
    proc = glassdist("quench", d, check=False)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert name in proc.stderr and "Fix:" in proc.stderr
    assert not (d / "store.zarr").exists()


def test_init_rejects_bad_override_and_writes_nothing(tmp_path):
    proc = glassdist("init", tmp_path / "x", "--preset", "demo-kam", "--set", "quench.split=[1,2]", check=False)
    assert proc.returncode == 2 and "quench.split" in proc.stderr
    assert not (tmp_path / "x").exists()
    proc = glassdist("init", tmp_path / "x", "--preset", "nope", check=False)
    assert proc.returncode == 2 and "demo-kam" in proc.stderr


def test_changed_spec_refused_then_new_campaign_advised(tmp_path):
    d = init_tiny(tmp_path / "changed", "kam", "quench.replicas=3", "quench.split=[1,1,1]")
    glassdist("quench", d)
    text = (d / "campaign.toml").read_text().replace("density = 1.2", "density = 1.1")
    (d / "campaign.toml").write_text(text)
    proc = glassdist("quench", d, check=False)
    assert proc.returncode == 2
    assert "[system]" in proc.stderr and "glassdist init" in proc.stderr


def test_export_extxyz_readable_by_ase_conventions(quenched, tmp_path):
    out = tmp_path / "glass.xyz"
    glassdist(
        "export",
        quenched["kam"],
        "--what",
        "configurations",
        "--format",
        "extxyz",
        "-o",
        out,
        "--replicas",
        "0-2",
        "--class",
        "glass",
    )
    lines = out.read_text().splitlines()
    n = int(lines[0])
    assert len(lines) == 3 * (n + 2)
    header = lines[1]
    assert "Properties=species:S:1:pos:R:3" in header and "class=glass" in header and "replica=0" in header
    store = Store(quenched["kam"], mode="r")
    pe = float(header.split("pe=")[1].split()[0])
    assert pe == store.root["quench/pe"][0, 1]
    xyz = np.array([[float(v) for v in ln.split()[1:4]] for ln in lines[2 : 2 + n]])
    np.testing.assert_array_equal(xyz[:, :2], store.root["quench/positions"][0, 1])
    assert {ln.split()[0] for ln in lines[2 : 2 + n]} == {"A", "B"}


def test_two_ranks_per_replica(tmp_path):
    """md.ranks_per_task = 2: under mpiexec -n 2 both ranks run each replica together (LAMMPS
    domain decomposition on the task's communicator). Round-off differs from one rank, so the
    check is physical: every replica done, finite, the glass below the liquid in energy."""
    d = init_tiny(
        tmp_path / "k2",
        "kam",
        "md.ranks_per_task=2",
        "quench.replicas=3",
        "quench.split=[1,1,1]",
        "quench.snapshot_replicas=0",
    )
    mpi_glassdist(2, "quench", d)
    store = Store(d, mode="r")
    assert store.ledger("quench").counts()["done"] == 3
    positions, _ = store.configurations()
    pe = store.root["quench/pe"][:]
    assert np.isfinite(positions).all() and (pe[:, 1] < pe[:, 0]).all()
    assert (d / "lammps" / "quench" / "replica-000002.in").exists()
