"""Isoconfigurational runs (glassdist.md.isoconf) and the propensity stage: real LAMMPS,
real signals (SIGKILL, SIGTERM) on subprocesses, real MPI (mpiexec -n 2), real Zarr and Dask."""

import contextlib
import io
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import zarr
from scipy import stats

from glassdist import cli
from glassdist.dynamics.crd import cage_relative_displacement, propensity, voronoi_cage
from glassdist.md.isoconf import draw_velocities, kinetic_temperature, output_steps, reached_outputs, run_isoconf
from glassdist.md.lammps import (
    LammpsSession,
    dynamics_fixes,
    pair_commands,
    random_minimum,
    read_data_commands,
    write_data_file,
)
from glassdist.spec import apply_overrides, load, loads, preset_text
from glassdist.stages.propensity import glass_replicas
from hpc.ledger import DONE, FAILED, PENDING

from .conftest import mpi_glassdist

SMALL = ["system.n_particles=200", "system.counts=[130,70]"]
RUN = SMALL + ["propensity.steps=40000", "propensity.outputs=15", "propensity.checkpoint_every=1000"]
T = 0.5


def small_spec(overrides):
    return loads(apply_overrides(preset_text("demo-kam"), overrides))


@pytest.fixture(scope="module")
def spec():
    return small_spec(RUN)


@pytest.fixture(scope="module")
def start(spec):
    """A local-minimum configuration (N, dim) of the small KAM system."""
    return random_minimum(spec, 101)


def velocities(spec, seed):
    masses = np.asarray(spec.system.masses)[spec.types]
    return draw_velocities(np.random.default_rng(seed), T, masses, spec.dim)


@pytest.fixture(scope="module")
def reference(spec, start, tmp_path_factory):
    """An uninterrupted run."""
    res = run_isoconf(spec, start, spec.types, velocities(spec, 7), T, tmp_path_factory.mktemp("ref"))
    assert res.status == "done"
    return res


# ---- output times and velocities ----------------------------------------------------------


@pytest.mark.parametrize("steps,outputs", [(20, 20), (40000, 15), (300_000_000, 60), (1000, 999)])
def test_output_steps(steps, outputs):
    s = output_steps(steps, outputs)
    assert len(s) == outputs + 1 and s[0] == 0 and s[1] == 1 and s[-1] == steps
    assert (np.diff(s) > 0).all() and s.dtype.kind == "i"
    if steps > 100 * outputs:  # log-spaced at late times: constant ratio
        ratio = steps ** (1 / (outputs - 1))
        np.testing.assert_allclose(s[-5:] / s[-6:-1], ratio, rtol=0.01)
    with pytest.raises(ValueError):
        output_steps(10, 11)


@pytest.mark.parametrize("dim", [2, 3])
def test_velocities_are_maxwell_boltzmann_with_zero_momentum(dim):
    rng = np.random.default_rng(11)
    n, draws, temp = 500, 400, 0.7
    masses = np.where(np.arange(n) < 300, 1.0, 3.0)
    dof = dim * (n - 1)
    kinetic, scaled = [], []
    for _ in range(draws):
        v = draw_velocities(rng, temp, masses, dim)
        np.testing.assert_allclose((masses[:, None] * v).sum(axis=0), 0.0, atol=1e-10)
        kinetic.append(kinetic_temperature(v, masses))
        scaled.append(v * np.sqrt(masses / temp)[:, None])
    kinetic = np.array(kinetic)
    # sum m v^2 / T of momentum-free Gaussian velocities is exactly chi^2 with dim (N - 1) dof:
    # the mean is T (4 standard errors, sqrt(2/dof/draws) ~ 0.16 % each), the spread chi^2
    assert abs(kinetic.mean() / temp - 1) < 4 * np.sqrt(2 / dof / draws)
    assert stats.kstest(kinetic * dof / temp, stats.chi2(dof).cdf).pvalue > 1e-3
    # each component is N(0, T/m): light and heavy species on the same unit normal
    scaled = np.stack(scaled)  # (draws, N, dim)
    for part in (scaled[:, :300], scaled[:, 300:]):
        assert stats.kstest(part.ravel(), "norm").pvalue > 1e-3


def test_lammps_reads_the_drawn_velocities(spec, start, tmp_path):
    v = velocities(spec, 3)
    write_data_file(tmp_path / "start.data", spec, start, spec.types, v)
    with LammpsSession(spec) as lmp:
        lmp.run(read_data_commands(spec, tmp_path / "start.data") + pair_commands(spec) + dynamics_fixes(spec))
        np.testing.assert_array_equal(lmp.velocities(), v)
        lmp.run("run 0 post no")
        # LAMMPS's temp has dim (N - 1) dof, the same as kinetic_temperature
        assert lmp.thermo("temp") == pytest.approx(kinetic_temperature(v, np.ones(len(v))), rel=1e-12)


def test_freud_voronoi_works_after_lammps_is_loaded():
    """liblammps.so exports its own voro++ (RTLD_GLOBAL); glassdist loads freud before LAMMPS so
    that freud keeps its voro++ (the other order segfaults in freud.locality.Voronoi)."""
    code = (
        "import numpy as np\n"
        "from glassdist.spec import loads, preset_text\n"
        "from glassdist.md.lammps import LammpsSession\n"
        "LammpsSession(loads(preset_text('demo-kam'))).close()\n"
        "from glassdist.structure.voronoi import voronoi\n"
        "rng = np.random.default_rng(0)\n"
        "for _ in range(20):\n"
        "    assert voronoi(rng.uniform(0, 12.9, (200, 2)), 12.9).volumes.sum() > 0\n"
    )
    assert subprocess.run([sys.executable, "-c", code], timeout=120).returncode == 0


# ---- runs: reproducibility, SIGKILL + resume, SIGTERM ---------------------------------------


def test_same_seed_reproduces_a_run(spec, start, reference, tmp_path):
    again = run_isoconf(spec, start, spec.types, velocities(spec, 7), T, tmp_path / "a")
    np.testing.assert_array_equal(again.positions, reference.positions)
    np.testing.assert_array_equal(again.steps, output_steps(40000, 15))
    np.testing.assert_array_equal(again.positions[0], np.mod(start, spec.box_length))
    other = run_isoconf(spec, start, spec.types, velocities(spec, 8), T, tmp_path / "b")
    assert np.abs(other.positions[-1] - reference.positions[-1]).max() > 0.1
    assert (tmp_path / "a" / "run.in").read_text().count("write_restart") == 39  # every 1000 steps


SCRIPT = """
import sys, numpy as np
from glassdist.spec import loads
from glassdist.md.isoconf import run_isoconf
from hpc import signals
z = np.load(sys.argv[1])
spec = loads(open(sys.argv[2]).read())
signals.install()
res = run_isoconf(spec, z["positions"], z["types"], z["velocities"], float(z["T"]), sys.argv[3],
                  should_stop=signals.stop_requested)
print("STATUS", res.status, flush=True)
"""


def start_run_process(spec, start, tmp_path):
    """The run of ``reference`` in a subprocess; returns it once its first checkpoint exists."""
    np.savez(tmp_path / "in.npz", positions=start, types=spec.types, velocities=velocities(spec, 7), T=T)
    (tmp_path / "spec.toml").write_text(apply_overrides(preset_text("demo-kam"), RUN))
    (tmp_path / "run.py").write_text(SCRIPT)
    work = tmp_path / "work"
    proc = subprocess.Popen(
        [sys.executable, str(tmp_path / "run.py"), str(tmp_path / "in.npz"), str(tmp_path / "spec.toml"), str(work)],
        stdout=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 60
    while not (work / "ckpt.npz").exists():
        assert proc.poll() is None and time.time() < deadline, "run ended before its first checkpoint"
        time.sleep(0.002)
    return proc, work


def checkpoint_step(work):
    with np.load(work / "ckpt.npz") as z:
        return int(z["step"])


def test_sigkill_then_resume_is_bitwise_identical(spec, start, reference, tmp_path):
    proc, work = start_run_process(spec, start, tmp_path)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    step = checkpoint_step(work)
    assert 0 < step < 40000 and (work / f"ckpt-{step}.restart").exists()
    resumed = run_isoconf(spec, start, spec.types, velocities(spec, 7), T, work)
    assert resumed.status == "done" and (work / f"resume-{step}.in").exists()
    # restart files hold x, v, image flags and the Nose-Hoover state of fix nvt exactly, and
    # both runs rebuild neighbour lists at the same steps: identical floating-point sequence
    np.testing.assert_array_equal(resumed.positions, reference.positions)


def test_sigterm_checkpoints_and_exits_cleanly(spec, start, reference, tmp_path):
    proc, work = start_run_process(spec, start, tmp_path)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0 and "STATUS suspended" in out
    step = checkpoint_step(work)
    assert 0 < step < 40000 and (work / f"ckpt-{step}.restart").exists()
    with np.load(work / "ckpt.npz") as z:
        saved = z["positions"]
    assert len(saved) == np.searchsorted(output_steps(40000, 15), step, side="right")
    np.testing.assert_array_equal(saved, reference.positions[: len(saved)])
    resumed = run_isoconf(spec, start, spec.types, velocities(spec, 7), T, work)
    np.testing.assert_array_equal(resumed.positions, reference.positions)


# ---- propensity.until_delta ---------------------------------------------------------------------


def run_deltas(spec, start, positions):
    """delta^s(t) (n_out,) of one run's outputs, computed with the CRD of glassdist.dynamics.crd."""
    crd = cage_relative_displacement(positions[0], positions[None], voronoi_cage(start, spec.box_length))
    return crd[0].mean(axis=-1)


def test_until_delta_stops_at_the_target_and_resumes_exactly(spec, start, reference, tmp_path):
    """The run stops at the first output where its own delta^s reaches the largest analyze.deltas;
    the outputs up to there are the uninterrupted run's, bitwise; later ones stay NaN. Suspended
    before the stop and resumed, it stops at the same output."""
    deltas = run_deltas(spec, start, reference.positions)
    target = float(0.5 * deltas[-1])
    first = int(np.argmax(deltas >= target))
    assert 1 < first < len(deltas) - 1  # stops early, not at the first or the last output
    until = small_spec([*RUN, f"propensity.until_delta={target!r}", f"analyze.deltas=[{target / 2!r},{target!r}]"])
    calls = []
    stopped = run_isoconf(
        until,
        start,
        until.types,
        velocities(until, 7),
        T,
        tmp_path,
        should_stop=lambda: calls.append(1) or len(calls) >= 2,
    )
    assert stopped.status == "suspended"
    res = run_isoconf(until, start, until.types, velocities(until, 7), T, tmp_path)
    assert res.status == "done"
    np.testing.assert_array_equal(res.positions[: first + 1], reference.positions[: first + 1])
    assert np.isnan(res.positions[first + 1 :]).all()
    assert reached_outputs(res.positions) == first + 1


def test_until_delta_cap_runs_every_step(spec, start, reference, tmp_path):
    """A target beyond the run's reach: the run lasts propensity.steps (the cap), as without it."""
    capped = small_spec([*RUN, "propensity.until_delta=50.0"])
    res = run_isoconf(capped, start, capped.types, velocities(capped, 7), T, tmp_path)
    np.testing.assert_array_equal(res.positions, reference.positions)


# ---- the stage: farm, MPI, retries, SIGTERM, reduction, export -------------------------------

PROPENSITY = [
    "propensity.samples=3",
    "propensity.temperatures=[0.5,0.7]",
    "propensity.steps=8000",
    "propensity.outputs=12",
    "propensity.checkpoint_every=500",
    "analyze.deltas=[0.03,0.1,50.0]",
    "dask.workers=1",
    "propensity.until_delta=50.0",
]  # never reached: the cap


def copy(campaign, tmp_path):
    return shutil.copytree(campaign, tmp_path / "c")


@pytest.fixture(scope="module")
def campaign(quenched, tmp_path_factory):
    """The shared tiny KAM campaign (quench done) with a small propensity section."""
    cdir = copy(quenched["kam"], tmp_path_factory.mktemp("campaign"))
    toml = cdir / "campaign.toml"
    toml.write_text(apply_overrides(toml.read_text(), PROPENSITY))
    return cdir


def glass_of(cdir):
    """(replica id, T_G positions (N, dim), spec) of the propensity configuration."""
    spec = load(cdir)
    replica = int(glass_replicas(spec)[0])
    return replica, group(cdir)["quench/positions"][replica, 1], spec


@pytest.fixture(scope="module")
def serial(campaign, tmp_path_factory):
    """The propensity stage run serially, in-process; returns its campaign."""
    cdir = copy(campaign, tmp_path_factory.mktemp("serial"))
    with contextlib.redirect_stdout(io.StringIO()) as out:
        assert cli.main(["propensity", str(cdir)]) == 0
    (cdir / "propensity.log").write_text(out.getvalue())
    return cdir


def group(cdir):
    return zarr.open_group(cdir / "store.zarr", mode="r")


def test_stage_stores_runs_and_propensity(serial):
    g = group(serial)
    traj, Delta, delta = g["propensity/traj"][:], g["propensity/Delta"][:], g["propensity/delta"][:]
    assert traj.shape == (1, 2, 3, 13, 200, 2) and np.isfinite(traj).all()
    assert (g["ledger/propensity/state"][:] == DONE).all()
    assert (g["ledger/propensity_reduce/state"][:] == DONE).all()
    np.testing.assert_array_equal(g["propensity/steps"][:], output_steps(8000, 12))
    # all runs start from the stored T_G glass; the reduction is the numpy CRD of the stored runs
    np.testing.assert_array_equal(traj[0, :, :, 0], np.broadcast_to(traj[0, 0, 0, 0], (2, 3, 200, 2)))
    _, glass, spec = glass_of(serial)
    for t in range(2):
        field, d = propensity(
            cage_relative_displacement(traj[0, t, 0, 0], traj[0, t], voronoi_cage(glass, spec.box_length))
        )
        np.testing.assert_allclose(Delta[0, t], field, rtol=1e-12)
        np.testing.assert_allclose(delta[0, t], d, rtol=1e-12)
    assert delta[0, :, 0].max() == 0 and (delta[0, :, -1] > delta[0, :, 1]).all()
    assert delta[0, 1, -1] > delta[0, 0, -1]  # hotter moves further
    assert "propensity/Delta_ensembles" not in g  # only for samples >= 100


def test_until_delta_cap_is_stored_and_logged(serial):
    """Every run of the serial stage hits the cap below delta = 50: full trajectories, its
    delta^s stored, one log line per (configuration, temperature)."""
    g = group(serial)
    _, glass, spec = glass_of(serial)
    traj = g["propensity/traj"][:]
    assert (g["propensity/run_outputs"][:] == 13).all()
    for t, s in np.ndindex(2, 3):
        assert g["propensity/run_delta"][0, t, s] == pytest.approx(
            run_deltas(spec, glass, traj[0, t, s])[-1], rel=1e-12
        )
    log = (serial / "propensity.log").read_text()
    for T_ in (0.5, 0.7):
        assert (
            f"configuration 0, T = {T_:g}: 3 of 3 runs hit the step cap propensity.steps = 8000 below delta = 50"
        ) in log


def test_until_delta_stage_stops_runs_and_reduces_what_all_reached(campaign, serial, tmp_path):
    """Target delta = 0.03: every run stops at its own first output past it; its outputs are the
    capped runs' (same seeds), the reduction covers the outputs all runs reached, NaN after."""
    cdir = copy(campaign, tmp_path)
    toml = cdir / "campaign.toml"
    toml.write_text(apply_overrides(toml.read_text(), ["analyze.deltas=[0.03]", "propensity.until_delta=0.03"]))
    assert cli.main(["propensity", str(cdir)]) == 0
    g, full = group(cdir), group(serial)["propensity/traj"][:]
    _, glass, spec = glass_of(cdir)
    n = g["propensity/run_outputs"][:]
    traj, delta = g["propensity/traj"][:], g["propensity/delta"][:]
    assert (n < 13).all()
    for t, s in np.ndindex(2, 3):
        d = run_deltas(spec, glass, full[0, t, s])
        assert n[0, t, s] == np.argmax(d >= 0.03) + 1
        np.testing.assert_array_equal(traj[0, t, s, : n[0, t, s]], full[0, t, s, : n[0, t, s]])
        assert np.isnan(traj[0, t, s, n[0, t, s] :]).all()
    for t in range(2):
        common = n[0, t].min()
        assert np.isfinite(delta[0, t, :common]).all() and np.isnan(delta[0, t, common:]).all()
        np.testing.assert_allclose(delta[0, t, :common], group(serial)["propensity/delta"][0, t, :common], rtol=1e-12)


def test_export_propensity_columns(serial, tmp_path):
    out = tmp_path / "fields.npz"
    assert cli.main(["export", str(serial), "--what", "fields", "--format", "npz", "-o", str(out)]) == 0
    z = np.load(out)
    g = group(serial)
    r = glass_of(serial)[0]
    col = z["propensity_T0.7_delta0.1"]  # (R, 2, N): only the test-split glass replica r
    others = np.delete(col, r, axis=0)
    assert np.isfinite(col[r, 1]).all() and np.isnan(others).all() and np.isnan(col[r, 0]).all()
    assert col[r, 1].mean() == pytest.approx(0.1, rel=1e-9)  # mean over particles of Delta is delta
    assert np.isnan(z["propensity_T0.5_delta50"]).all()  # delta = 50 is never reached
    d = g["propensity/delta"][0, 1]
    assert np.isfinite(z["propensity_T0.7_delta0.03"][r, 1]).all() and d.max() > 0.1


def test_mpi_farm_with_retries_matches_serial(campaign, serial, tmp_path):
    """mpiexec -n 2; runs 1 and 4 fail once after their data are written, before their done-mark:
    they are retried (same velocities) and the store equals the serial run's."""
    cdir = copy(campaign, tmp_path)
    mpi_glassdist(2, "propensity", cdir, env={"HPC_INJECT_FAILURES": "1,4"})
    g = group(cdir)
    assert (g["ledger/propensity/state"][:] == DONE).all()
    np.testing.assert_array_equal(g["ledger/propensity/attempts"][:], [1, 2, 1, 1, 2, 1])
    np.testing.assert_array_equal(g["propensity/traj"][:], group(serial)["propensity/traj"][:])
    np.testing.assert_allclose(g["propensity/Delta"][:], group(serial)["propensity/Delta"][:], rtol=1e-13)


@pytest.fixture(scope="module")
def suspended(campaign, tmp_path_factory):
    """A campaign whose `glassdist propensity` got SIGTERM during its first run."""
    cdir = copy(campaign, tmp_path_factory.mktemp("sigterm"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "glassdist", "propensity", str(cdir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    first = cdir / "lammps" / "propensity" / "c0-T0-s0000" / "ckpt.npz"
    deadline = time.time() + 120
    while not first.exists():
        assert proc.poll() is None and time.time() < deadline, proc.stdout.read() if proc.stdout else ""
        time.sleep(0.002)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 1 and "stopped on request" in out, out
    return cdir


def test_stage_sigterm_then_rerun_matches(suspended, serial, tmp_path):
    cdir = copy(suspended, tmp_path)
    g = group(cdir)
    states = g["ledger/propensity/state"][:]
    assert states[0] == PENDING and not (states == FAILED).any()
    assert (g["ledger/propensity_reduce/state"][:] == PENDING).all()
    assert np.isnan(g["propensity/traj"][0, 0, 0]).all()
    assert list((cdir / "lammps/propensity/c0-T0-s0000").glob("ckpt-*.restart"))
    assert cli.main(["propensity", str(cdir)]) == 0
    np.testing.assert_array_equal(group(cdir)["propensity/traj"][:], group(serial)["propensity/traj"][:])
    assert not list((cdir / "lammps/propensity/c0-T0-s0000").glob("ckpt*"))  # cleared once stored


def test_failing_run_is_never_marked_done(suspended, serial, tmp_path):
    cdir = copy(suspended, tmp_path)
    for restart in (cdir / "lammps/propensity/c0-T0-s0000").glob("ckpt-*.restart"):
        restart.write_bytes(b"not a restart file")  # every attempt of run 0 now fails in read_restart
    assert cli.main(["propensity", str(cdir)]) == 1
    g = group(cdir)
    states = g["ledger/propensity/state"][:]
    assert states[0] == FAILED and (states[1:] == DONE).all()
    assert g["ledger/propensity/attempts"][0] == 3 and "read_restart" in str(g["ledger/propensity/error"][0])
    assert np.isnan(g["propensity/traj"][0, 0, 0]).all()
    np.testing.assert_array_equal(g["propensity/traj"][0, :, 1:], group(serial)["propensity/traj"][0, :, 1:])
    # the reduction of T = 0.5 waits for its failed run; T = 0.7 is complete
    np.testing.assert_array_equal(g["ledger/propensity_reduce/state"][:], [PENDING, DONE])
    assert np.isnan(g["propensity/Delta"][0, 0]).all() and np.isfinite(g["propensity/Delta"][0, 1]).all()


def test_table_iv_ensembles_for_100_samples(campaign, tmp_path):
    """The paper's protocol: 100 runs, the main Delta from the first 30, Table IV from the same runs."""
    cdir = copy(campaign, tmp_path)
    toml = cdir / "campaign.toml"
    toml.write_text(
        apply_overrides(
            toml.read_text(),
            [
                "propensity.samples=100",
                "propensity.main_samples=30",
                "propensity.temperatures=[0.5]",
                "propensity.steps=40",
                "propensity.outputs=4",
            ],
        )
    )
    assert cli.main(["propensity", str(cdir)]) == 0
    g = group(cdir)
    ens = g["propensity/Delta_ensembles"]
    assert ens.attrs["ensembles"] == ["e30A", "e30B", "e30C", "e100"] and ens.shape == (1, 1, 4, 5, 200)
    traj = g["propensity/traj"][0, 0]
    _, glass, spec = glass_of(cdir)
    cage = voronoi_cage(glass, spec.box_length)
    crd = cage_relative_displacement(traj[0, 0], traj, cage)
    np.testing.assert_allclose(ens[0, 0, 3], crd.mean(axis=0), rtol=1e-12)  # e100 = all 100
    np.testing.assert_allclose(g["propensity/Delta"][0, 0], ens[0, 0, 0], rtol=1e-12)  # main = the first 30
    for k, lo in enumerate((0, 30, 60)):
        np.testing.assert_allclose(ens[0, 0, k], crd[lo : lo + 30].mean(axis=0), rtol=1e-12)


def test_until_delta_below_the_analysed_deltas_is_refused():
    from glassdist.errors import SpecError

    with pytest.raises(SpecError, match="propensity.until_delta.*below the largest analyze.deltas = 1"):
        small_spec([*RUN, "propensity.until_delta=0.5"])
