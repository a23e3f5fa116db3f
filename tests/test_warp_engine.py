"""The Warp engine against real LAMMPS (issue 13): forces and energies, the Nose-Hoover
trajectory, equilibrium and quench statistics, FIRE inherent structures, checkpoint/resume.

CPU, float64 (float32 where said), reduced sizes (N = 200 in 2D, 400 in 3D)."""

from __future__ import annotations

import numpy as np
import pytest
import warp as wp

from glassdist import spec as specmod
from glassdist.md.isoconf import draw_velocities
from glassdist.md.lammps import LammpsSession, dynamics_fixes, num, pair_commands, read_data_commands, write_data_file
from glassdist.md.quench import quench
from glassdist.md.warp.integrate import NoseHooverNVT
from glassdist.md.warp.system import Batch

from .conftest import TINY, TINY_COUNTS

KA3D = ["system.dim=3", "system.n_particles=400", "system.counts=[320,80]"]


def tiny_spec(system: str = "kam", *extra: str) -> specmod.Spec:
    """The tests' tiny campaign (conftest.TINY) of a system; `extra` overrides."""
    preset = "kam" if system == "ka3d" else system
    sets = [*TINY, TINY_COUNTS[preset], *(KA3D if system == "ka3d" else []), *extra]
    return specmod.loads(specmod.apply_overrides(specmod.preset_text(f"demo-{preset}"), sets))


def lammps_session(spec, tmp_path, positions, velocities=None, name="c"):
    """A LAMMPS session with one configuration (N, dim) read in, eq. (1) and the time step."""
    data = tmp_path / f"{name}.data"
    write_data_file(data, spec, positions, spec.types, velocities)
    lmp = LammpsSession(spec)
    lmp.run(read_data_commands(spec, data) + pair_commands(spec) + dynamics_fixes(spec))
    return lmp


def lammps_reference(spec, tmp_path, positions):
    """(pe per particle, forces (N, dim), pressure) of a configuration at rest, by LAMMPS."""
    with lammps_session(spec, tmp_path, positions) as lmp:
        lmp.run("run 0")
        forces = lmp._gather("f", 3, 1)[:, : spec.dim]
        return lmp.thermo("pe"), forces, lmp.thermo("press")


@pytest.fixture(scope="module", params=["kam", "abm", "ka3d"])
def stored(request):
    """(spec, configurations (C, N, dim)): two LAMMPS quenches' liquid, glass and cooling snapshots
    (C = 36 in 2D; the 3D case keeps 8)."""
    spec = tiny_spec(request.param)
    configs = []
    for seed in (1, 2):
        res = quench(spec, np.random.default_rng(seed), snapshots=True)
        configs += [*res.positions, *res.snapshots]
    configs = np.array(configs)
    return spec, configs[:8] if spec.dim == 3 else configs


def relative(a, b):
    return float(np.linalg.norm(np.asarray(a) - b) / np.linalg.norm(b))


@pytest.mark.parametrize("precision, tol", [("float64", 1e-10), ("float32", 1e-5)])
def test_energies_forces_pressure_match_lammps(stored, tmp_path, precision, tol):
    """Per configuration: energy per particle, forces (vector norm) and pressure within ``tol`` of
    LAMMPS's, relative to max(|value|, 1) (ABM's energy crosses zero near T = 4). In float32 both
    engines get the float32-rounded positions (what is compared is the arithmetic)."""
    spec, configs = stored
    configs = configs.astype(precision).astype(np.float64)
    assert len(configs) >= (20 if spec.dim == 2 else 8)
    batch = Batch(spec, len(configs), precision=precision)
    batch.set_positions(configs)
    batch.set_velocities(np.zeros_like(configs))
    pe, _ = batch.energy_virial()
    forces, press = batch.forces(), batch.pressure()
    for c, x in enumerate(configs):
        pe_l, f_l, p_l = lammps_reference(spec, tmp_path, x)
        assert abs(pe[c] - pe_l) <= tol * max(abs(pe_l), 1.0), (c, pe[c], pe_l)
        assert relative(forces[c], f_l) <= tol, c
        assert abs(press[c] - p_l) <= tol * max(abs(p_l), 1.0), (c, press[c], p_l)


@pytest.mark.parametrize("system", ["kam", "abm", "ka3d"])
def test_nose_hoover_trajectory_matches_lammps(system, tmp_path):
    """200 steps of fix nvt with a ramp 4 -> 2 from the same positions, velocities and a fresh
    chain: positions, velocities and the chain variables agree with LAMMPS."""
    spec = tiny_spec(system)
    x0 = quench(spec, np.random.default_rng(3)).positions[0]
    v0 = draw_velocities(np.random.default_rng(4), 4.0, np.asarray(spec.system.masses)[spec.types], spec.dim)
    steps, damp = 200, spec.md.thermostat_damping
    with lammps_session(spec, tmp_path, x0, v0) as lmp:
        lmp.run([f"fix nvt all nvt temp 4.0 2.0 {num(damp)}", f"run {steps}"])
        x_l, v_l, T_l = lmp.unwrapped(), lmp.velocities(), lmp.thermo("temp")
        chain_l = np.array([lmp.lmp.extract_fix("nvt", 0, 1, i) for i in range(6)])
    batch = Batch(spec, 2)
    batch.set_positions(np.stack([x0, x0]))
    batch.set_velocities(np.stack([v0, v0]))
    nvt = NoseHooverNVT(batch, spec.md.dt, damp)
    nvt.start(4.0, 2.0, 0, steps)
    nvt.run(steps)
    x_w, v_w, chain_w = batch.unwrapped(), batch.velocities(), nvt.chain_variables()
    assert np.abs(x_w - x_l).max() <= 1e-8
    assert np.abs(v_w - v_l).max() <= 1e-7
    np.testing.assert_allclose(chain_w, np.stack([chain_l, chain_l]), rtol=1e-7, atol=1e-12)
    np.testing.assert_allclose(batch.temperature(), T_l, rtol=1e-9)
    assert np.array_equal(x_w[0], x_w[1])  # replicas of a block do not interact


def _nvt_run(spec, x0, v0, segments, graphs=None, device="cpu"):
    """(x, v, chain state, device step counter) after NVT runs of ``segments`` steps each from one start."""
    from glassdist.md.warp.integrate import NoseHooverNVT

    batch = Batch(spec, 2, device=device)
    batch.set_positions(np.stack([x0, x0]))
    batch.set_velocities(np.stack([v0, v0]))
    nvt = NoseHooverNVT(batch, spec.md.dt, spec.md.thermostat_damping)
    nvt.start(1.2, 0.6, 0, sum(segments))
    for n in segments:
        nvt.run(n, graphs=graphs)
    return batch.unwrapped(), batch.velocities(), nvt.chain_variables(), int(nvt.counter.numpy()[0]), nvt.step


def _start(spec):
    x0 = quench(spec, np.random.default_rng(5)).positions[0]
    return x0, draw_velocities(np.random.default_rng(6), 1.2, np.ones(spec.system.n_particles), spec.dim)


def test_step_number_on_the_device_follows_the_runs():
    """Runs of 7 + 13 + 30 steps are bitwise one run of 50: the device step counter (which the
    thermostat ramp reads) stays the host's step."""
    spec = tiny_spec("kam")
    x0, v0 = _start(spec)
    *split, counter, step = _nvt_run(spec, x0, v0, [7, 13, 30])
    *whole, counter1, step1 = _nvt_run(spec, x0, v0, [50])
    assert counter == step == counter1 == step1 == 50
    for a, b in zip(split, whole):
        assert np.array_equal(a, b)


def test_spatial_sort_is_invisible_outside_the_batch():
    """The slots are really reordered by cell (a permutation with types following), yet positions,
    velocities and forces leave the batch in particle order: forces equal an unsorted batch's to
    round-off, velocities and positions bitwise."""
    spec = tiny_spec("kam")
    x0, v0 = _start(spec)
    batches = []
    for sortable in (True, False):
        batch = Batch(spec, 1)
        batch.sortable = sortable
        batch.set_positions(x0[None])
        batch.set_velocities(v0[None])
        batches.append(batch)
    sorted_, plain = batches
    order = sorted_.order.numpy()
    assert not np.array_equal(order, np.arange(len(order))) and np.array_equal(np.sort(order), np.arange(len(order)))
    assert np.array_equal(sorted_.types.numpy(), spec.types[order])
    assert np.array_equal(sorted_.positions(), plain.positions())
    assert np.array_equal(sorted_.velocities(), plain.velocities())
    np.testing.assert_allclose(sorted_.forces(), plain.forces(), rtol=0, atol=1e-12)


@pytest.mark.skipif(not wp.get_cuda_device_count(), reason="CUDA graphs need a CUDA device; Warp sees none here")
@pytest.mark.parametrize("system", ["kam", "ka3d"])
def test_cuda_graph_replay_is_bitwise_the_loop(system):
    """On a GPU: GRAPH_STEPS-step graphs replayed (with a remainder stepped launch by launch, and
    neighbour rebuilds inside the graphs) give bitwise the uncaptured loop's trajectory."""
    from glassdist.md.warp.integrate import GRAPH_STEPS

    spec = tiny_spec(system)
    x0, v0 = _start(spec)
    segments = [3 * GRAPH_STEPS + 7, GRAPH_STEPS, 11]
    *graph, c_graph, _ = _nvt_run(spec, x0, v0, segments, graphs=True, device="cuda")
    *loop, c_loop, _ = _nvt_run(spec, x0, v0, segments, graphs=False, device="cuda")
    assert c_graph == c_loop == sum(segments)
    for a, b in zip(graph, loop):
        assert np.array_equal(a, b)


# ---- engine: minimisation, checkpoints -------------------------------------------------------


def warp_engine(spec, **kw):
    from glassdist.md.warp.engine import WarpEngine

    engine = WarpEngine(spec, **kw)
    engine.check(spec)
    return engine


def test_minimise_block_finds_lammps_inherent_structures(stored, tmp_path):
    """FIRE as LAMMPS min_style fire: from the same glasses, the same minima."""
    from glassdist.md.minimise import minimise

    spec, configs = stored
    glasses = configs[[1, len(configs) // 2 + 1]] if spec.dim == 2 else configs[[1]]
    e0, minima = warp_engine(spec).minimise_block(spec, glasses, spec.types)
    for c, x in enumerate(glasses):
        e_l, x_l = minimise(spec, x, spec.types, tmp_path / "m.data")
        assert abs(e0[c] - e_l) <= 1e-9 * abs(e_l)
        d = minima[c] - x_l
        d -= spec.box_length * np.round(d / spec.box_length)
        assert np.abs(d).max() <= 1e-6


def test_minimise_block_stops_on_request_and_reruns_from_the_start(stored):
    """A stop request ends FIRE within CHECK_EVERY iterations (Suspended); the rerun from the
    stored start gives the uninterrupted minimum."""
    from glassdist.md.warp.fire import CHECK_EVERY
    from hpc.farm import Suspended

    spec, configs = stored
    engine, glass = warp_engine(spec), configs[[1]]
    polls = []

    def stop_at_second_poll():
        polls.append(1)
        return len(polls) >= 2

    with pytest.raises(Suspended, match="stopped on request"):
        engine.minimise_block(spec, glass, spec.types, should_stop=stop_at_second_poll)
    assert len(polls) == 2  # polled every CHECK_EVERY iterations, not after convergence
    e0, minima = engine.minimise_block(spec, glass, spec.types)
    e_ref, x_ref = engine.minimise_block(spec, glass, spec.types, should_stop=lambda: False)
    assert e0[0] == e_ref[0] and np.array_equal(minima, x_ref) and CHECK_EVERY > 1


RESUME_DRIVER = """
import sys, numpy as np
from hpc import signals
from hpc.farm import Suspended
from glassdist import spec as specmod
from glassdist.md.warp.engine import WarpEngine
spec = specmod.loads(open(sys.argv[1]).read())
signals.install()
engine = WarpEngine(spec)
try:
    res = engine.quench_block(spec, [np.random.default_rng(s) for s in (5, 6)], [True, False],
                              workdir=sys.argv[2], should_stop=signals.stop_requested)
except Suspended:
    sys.exit(3)
np.savez(sys.argv[2] + "/result.npz", *[a for r in res for a in vars(r).values()])
"""


@pytest.mark.parametrize("sig", ["SIGKILL", "SIGTERM"])
def test_quench_block_resumes_bitwise(sig, tmp_path):
    """A quench block killed (SIGKILL) or stopped (SIGTERM: checkpoint, Suspended) after a
    checkpoint and run again gives bitwise the results of an uninterrupted block."""
    import os
    import signal
    import subprocess
    import sys
    import time

    sets = ["quench.cooling_rate=0.2", 'md.device="cpu"', "md.checkpoint_every=200"]
    spec = tiny_spec("kam", *sets)
    toml = tmp_path / "campaign.toml"
    toml.write_text(specmod.apply_overrides(specmod.preset_text("demo-kam"), [*TINY, TINY_COUNTS["kam"], *sets]))
    work = tmp_path / "block"
    work.mkdir()
    cmd = [sys.executable, "-c", RESUME_DRIVER, str(toml), str(work)]
    proc = subprocess.Popen(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"})
    ckpt = work / "warp-quench.npz"
    deadline = time.monotonic() + 120
    while not ckpt.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    with np.load(ckpt) as z:
        assert int(z["done"]) >= 0
    proc.send_signal(getattr(signal, sig))
    rc = proc.wait(timeout=120)
    assert rc == (-signal.SIGKILL if sig == "SIGKILL" else 3)
    assert ckpt.exists() and not (work / "result.npz").exists()
    assert subprocess.run(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}).returncode == 0
    res = warp_engine(spec).quench_block(spec, [np.random.default_rng(s) for s in (5, 6)], [True, False])
    with np.load(work / "result.npz") as z:
        resumed = [z[f"arr_{i}"] for i in range(len(z.files))]
    fresh = [a for r in res for a in vars(r).values()]
    assert len(resumed) == len(fresh)
    for a, b in zip(resumed, fresh):
        assert np.array_equal(a, b)
    assert not ckpt.exists()


def test_isoconf_block_resumes_bitwise(tmp_path):
    """Stopped after its first checkpoint (Suspended) and rerun, an isoconfigurational block gives
    bitwise the uninterrupted result; each run's unwrapped start is the configuration itself."""
    from hpc.farm import Suspended

    spec = tiny_spec("kam", "propensity.steps=600", "propensity.outputs=10", "propensity.checkpoint_every=200")
    start = quench(spec, np.random.default_rng(7)).positions[1]
    masses = np.asarray(spec.system.masses)[spec.types]
    vel = np.stack([draw_velocities(np.random.default_rng(s), 0.5, masses, 2) for s in range(3)])
    engine = warp_engine(spec)
    dirs = [tmp_path / f"run{b}" for b in range(3)]
    calls = []
    with pytest.raises(Suspended):
        engine.isoconf_block(
            spec, start, spec.types, vel, 0.5, dirs, should_stop=lambda: calls.append(1) or len(calls) > 3
        )
    assert all((d / "ckpt-warp.npz").exists() for d in dirs)
    resumed = engine.isoconf_block(spec, start, spec.types, vel, 0.5, dirs)
    fresh = engine.isoconf_block(spec, start, spec.types, vel, 0.5, [tmp_path / f"new{b}" for b in range(3)])
    for a, b in zip(resumed, fresh):
        assert a.shape == (11, 200, 2) and np.array_equal(a, b)
        np.testing.assert_allclose(a[0], start, atol=1e-12)


def test_isoconf_block_until_delta_stops_each_run_at_its_target(tmp_path):
    """propensity.until_delta on the batched engine: run b stops at its own first output where
    delta^s reaches the target (its rows are the unstopped block's, bitwise; NaN after), the
    block steps on for the others, and a block suspended before the stops resumes to the same."""
    from hpc.farm import Suspended
    from glassdist.dynamics.crd import cage_relative_displacement, voronoi_cage

    sets = ["propensity.steps=600", "propensity.outputs=10", "propensity.checkpoint_every=200"]
    spec = tiny_spec("kam", *sets)
    start = quench(spec, np.random.default_rng(7)).positions[1]
    masses = np.asarray(spec.system.masses)[spec.types]
    vel = np.stack([draw_velocities(np.random.default_rng(s), 0.5, masses, 2) for s in range(3)])
    full = warp_engine(spec).isoconf_block(spec, start, spec.types, vel, 0.5, [tmp_path / f"f{b}" for b in range(3)])
    cage = voronoi_cage(start, spec.box_length)
    deltas = [cage_relative_displacement(x[0], x[None], cage)[0].mean(axis=-1) for x in full]
    target = float(0.5 * min(d[-1] for d in deltas))
    until = tiny_spec("kam", *sets, f"analyze.deltas=[{target!r}]", f"propensity.until_delta={target!r}")
    engine, dirs, calls = warp_engine(until), [tmp_path / f"u{b}" for b in range(3)], []
    with pytest.raises(Suspended):
        engine.isoconf_block(until, start, until.types, vel, 0.5, dirs, should_stop=lambda: calls.append(1) or True)
    stopped = engine.isoconf_block(until, start, until.types, vel, 0.5, dirs)
    for x, ref, d in zip(stopped, full, deltas):
        first = int(np.argmax(d >= target))
        assert 0 < first < 10
        np.testing.assert_array_equal(x[: first + 1], ref[: first + 1])
        assert np.isnan(x[first + 1 :]).all()


# ---- statistics against LAMMPS (slow) ---------------------------------------------------------

PAPER_T_L = {"kam": 0.8, "abm": 2.0}
EQ_STEPS, SAMPLE_EVERY, SAMPLES, REPLICAS = 1000, 50, 20, 20


def lammps_equilibrium(spec, seed: int, T: float) -> np.ndarray:
    """(SAMPLES, 3) pe per particle, pressure, temperature of one LAMMPS run: random start, NVT at T."""
    from glassdist.md.lammps import random_start_commands, seed_for_lammps

    rng = np.random.default_rng(seed)
    out = []
    with LammpsSession(spec) as lmp:
        lmp.run(
            random_start_commands(spec, rng)
            + dynamics_fixes(spec)
            + [
                f"velocity all create {num(T)} {seed_for_lammps(rng)} dist gaussian mom yes rot no",
                f"fix nvt all nvt temp {num(T)} {num(T)} {num(spec.md.thermostat_damping)}",
                f"run {EQ_STEPS}",
            ]
        )
        for _ in range(SAMPLES):
            lmp.run(f"run {SAMPLE_EVERY}")
            out.append([lmp.thermo("pe"), lmp.thermo("press"), lmp.thermo("temp")])
    return np.array(out)


def warp_equilibrium(spec, seeds, T: float) -> np.ndarray:
    """(R, SAMPLES, 3) as lammps_equilibrium, the R runs as one Warp block."""
    from glassdist.md.warp.start import random_start

    batch = Batch(spec, len(seeds))
    random_start(batch, [np.random.default_rng(s) for s in seeds], T)
    nvt = NoseHooverNVT(batch, spec.md.dt, spec.md.thermostat_damping)
    nvt.start(T, T, 0, EQ_STEPS + SAMPLES * SAMPLE_EVERY)
    nvt.run(EQ_STEPS)
    out = []
    for _ in range(SAMPLES):
        nvt.run(SAMPLE_EVERY)
        pe, _ = batch.energy_virial()
        out.append(np.stack([pe, batch.pressure(), batch.temperature()], axis=1))
    return np.stack(out, axis=1)


def agree(a: np.ndarray, b: np.ndarray, n_sigma: float) -> tuple[bool, float]:
    """Means of per-replica values a (R,) and b (R',) within n_sigma combined standard errors."""
    se = np.hypot(a.std(ddof=1) / np.sqrt(len(a)), b.std(ddof=1) / np.sqrt(len(b)))
    z = abs(a.mean() - b.mean()) / se
    return z <= n_sigma, z


@pytest.mark.slow
@pytest.mark.parametrize("system", ["kam", "abm"])
@pytest.mark.parametrize("T", ["4", "T_L"])
def test_equilibrium_statistics_match_lammps(system, T):
    """NVT at T = 4 and at the paper's T_L from random starts, 20 replicas per engine: mean
    potential energy, pressure and temperature within 3 combined standard errors; the variance
    of the kinetic temperature is 2 T^2 / dof (canonical) in both engines."""
    spec = tiny_spec(system)
    temp = 4.0 if T == "4" else PAPER_T_L[system]
    lmp = np.stack([lammps_equilibrium(spec, 100 + r, temp) for r in range(REPLICAS)])
    wrp = warp_equilibrium(spec, [200 + r for r in range(REPLICAS)], temp)
    for k, name in enumerate(("pe", "pressure", "temperature")):
        ok, z = agree(wrp[:, :, k].mean(axis=1), lmp[:, :, k].mean(axis=1), 3.0)
        assert ok, (name, z, wrp[:, :, k].mean(), lmp[:, :, k].mean())
    dof = spec.dim * (spec.system.n_particles - 1)
    for samples in (wrp, lmp):
        ratio = samples[:, :, 2].var(ddof=1) / (2 * temp**2 / dof)
        assert 0.75 <= ratio <= 1.33, ratio


@pytest.mark.slow
def test_fast_quench_and_inherent_energies_match_lammps(tmp_path):
    """100 fast quenches (KAM) per engine: E(T) along the cooling agrees point by point within 4
    combined standard errors (20 correlated points: family-wise about 0.1 %); the inherent
    structure energies of the first 50 glasses of each (FIRE; Warp's FIRE on a CPU is most of this
    test's time) have the same distribution (KS p > 0.01)."""
    from scipy.stats import ks_2samp

    from glassdist.md.minimise import minimise

    spec = tiny_spec("kam")
    R = 100
    lmp = [quench(spec, np.random.default_rng(1000 + r)) for r in range(R)]
    engine = warp_engine(spec)
    wrp = engine.quench_block(spec, [np.random.default_rng(2000 + r) for r in range(R)], [False] * R)
    np.testing.assert_array_equal(wrp[0].thermo_target, lmp[0].thermo_target)
    e_l, e_w = np.array([r.thermo_pe for r in lmp]), np.array([r.thermo_pe for r in wrp])
    for p in range(e_l.shape[1]):
        ok, z = agree(e_w[:, p], e_l[:, p], 4.0)
        assert ok, (p, wrp[0].thermo_target[p], z)
    e0_w, _ = engine.minimise_block(spec, np.stack([r.positions[1] for r in wrp[:50]]), spec.types)
    e0_l = np.array([minimise(spec, r.positions[1], spec.types, tmp_path / "m.data")[0] for r in lmp[:50]])
    assert ks_2samp(e0_w, e0_l).pvalue > 0.01


@pytest.mark.slow
def test_isoconfigurational_propensity_matches_lammps(tmp_path):
    """Three isoconfigurational ensembles of 16 runs of one KAM glass at T = 0.55: LAMMPS A and B,
    Warp W. W's propensity field correlates with A's and B's as well as A's with B's (within
    0.15, about three standard errors of a Pearson r over 200 particles), and the mean cage-relative
    displacement delta agrees within 15 %."""
    from glassdist.dynamics.crd import cage_relative_displacement, propensity, voronoi_cage
    from glassdist.md.isoconf import run_isoconf

    spec = tiny_spec("kam", "propensity.steps=2000", "propensity.outputs=8", "propensity.checkpoint_every=2000")
    T, S = 0.55, 16
    start = quench(spec, np.random.default_rng(11)).positions[1]
    masses = np.asarray(spec.system.masses)[spec.types]
    vel = np.stack([draw_velocities(np.random.default_rng(s), T, masses, 2) for s in range(3 * S)])
    lmp = np.stack(
        [run_isoconf(spec, start, spec.types, vel[s], T, tmp_path / f"l{s}").positions for s in range(2 * S)]
    )
    wrp = np.stack(
        warp_engine(spec).isoconf_block(
            spec, start, spec.types, vel[2 * S :], T, [tmp_path / f"w{s}" for s in range(S)]
        )
    )
    cage = voronoi_cage(start, spec.box_length)
    fields, deltas = [], []
    for traj in (lmp[:S], lmp[S:], wrp):
        field, delta = propensity(cage_relative_displacement(traj[:, 0][0], traj, cage))
        fields.append(field[-1])
        deltas.append(delta[-1])
    r = np.corrcoef(fields)
    r_ab, r_wa, r_wb = r[0, 1], r[2, 0], r[2, 1]
    assert min(r_wa, r_wb) >= r_ab - 0.15, (r_ab, r_wa, r_wb)
    assert abs(deltas[2] - deltas[0]) <= 0.15 * deltas[0], deltas


@pytest.mark.slow
def test_demo_campaign_runs_on_the_warp_engine(tmp_path):
    """`glassdist init X --preset demo-kam --set md.engine=warp` then `glassdist run X` on a CPU:
    every stage, blocks of replicas, the same kind of report, the engine recorded."""
    import zarr

    from .conftest import glassdist, init_tiny
    from .test_architecture import WHOLE

    d = init_tiny(tmp_path / "w", "kam", *WHOLE, 'md.engine="warp"', 'md.device="cpu"', "md.replicas_per_task=5")
    glassdist("run", d, "--np", "1")
    root = zarr.open_group(d / "store.zarr", mode="r")
    assert root["quench"].attrs["engine"]["engine"] == "warp"
    assert root["train"].attrs["model_card"][0]["md_engine"]["device"] == "cpu"
    assert np.isfinite(root["quench/positions"][:]).all() and np.isfinite(root["propensity/Delta"][:]).all()
    assert (d / "report" / "index.html").is_file() and "MD: warp on cpu" in (d / "report" / "index.html").read_text()
