"""Issue 20.3: liquids held at T_L (quench.hold_liquid): the held liquid's energy is the
equilibrium energy at T_L (an independent long LAMMPS NVT run), the unheld one's is not;
the stage stores k*, F_s(k*, t), tau_alpha and the held flag (real LAMMPS, real store)."""

import csv

import numpy as np
import pytest
import zarr

from glassdist.dynamics.scattering import relaxation_time
from glassdist.md.lammps import LammpsSession, dynamics_fixes, random_start_commands
from glassdist.spec import load
from glassdist.stages.quench import TAU_MULTIPLE

from .conftest import glassdist, init_tiny

T_L, HOLD = 1.0, 30.0


def equilibrium_pe(spec, seed, equilibrate=10_000, samples=400, every=100):
    """Mean potential energy per particle at T_L of a long NVT run, its standard error (20
    blocks) and the standard deviation of the instantaneous value."""
    pe = []
    with LammpsSession(spec) as lmp:
        lmp.run(
            [
                *random_start_commands(spec, np.random.default_rng(seed)),
                *dynamics_fixes(spec),
                f"velocity all create {T_L} {seed} dist gaussian mom yes rot no",
                f"fix nvt all nvt temp {T_L} {T_L} {spec.md.thermostat_damping}",
                f"run {equilibrate}",
            ]
        )
        for _ in range(samples):
            lmp.run(f"run {every} post no")
            pe.append(lmp.thermo("pe"))
    pe = np.array(pe)
    blocks = pe.reshape(20, -1).mean(axis=1)
    return pe.mean(), blocks.std(ddof=1) / np.sqrt(len(blocks)), pe.std(ddof=1)


@pytest.fixture(scope="module")
def held(tmp_path_factory):
    """A tiny KAM campaign at T_L = 1.0 whose liquids were held HOLD at T_L (quench done)."""
    d = init_tiny(
        tmp_path_factory.mktemp("hold") / "c",
        "kam",
        f"quench.T_liquid={T_L}",
        f"quench.hold_liquid={HOLD}",
        "quench.snapshot_replicas=0",
        "quench.replicas=4",
        "quench.split=[2,1,1]",
    )
    glassdist("quench", d)
    return d


def test_held_liquid_is_at_equilibrium_at_T_L(held):
    d = held
    spec, g = load(d), zarr.open_group(d / "store.zarr", mode="r")["quench"]
    times, fs, tau = np.asarray(g.attrs["hold_times"]), g["hold_fs"][:], g["tau_alpha"][:]
    R = spec.quench.replicas
    assert fs.shape == (R, 41) and (fs[:, 0] == 1).all() and times[-1] == HOLD
    np.testing.assert_array_equal(tau, [relaxation_time(times, f) for f in fs])
    assert g["liquid_held"][:].all() and (HOLD >= TAU_MULTIPLE * tau).all()
    assert (5.5 < g["k_star"][:]).all() and (g["k_star"][:] < 8.5).all()
    held, start = g["pe"][:, 0], g["hold_pe"][:, 0]  # the liquid after / before the hold
    np.testing.assert_array_equal(held, g["hold_pe"][:, -1])
    mean, err, spread = equilibrium_pe(spec, 11)
    bound = 3 * np.sqrt(spread**2 / R + err**2)
    assert abs(held.mean() - mean) < bound, (held.mean(), mean, bound)
    # the fast cooling's liquid at T_L (what is saved without a hold) is far from equilibrium
    assert start.mean() - mean > 2 * bound, (start.mean(), mean, bound)


def test_one_line_names_the_liquids_held_too_short(held, tmp_path):
    """The quench stage says once, over every done replica, how many liquids were held less than
    TAU_MULTIPLE tau_alpha (nothing when all were): here two made short by hand, one never decayed."""
    import shutil

    from glassdist.stages.quench import hold_summary
    from glassdist.store import Store

    d = tmp_path / "c"
    shutil.copytree(held, d)
    store = Store(d)
    assert hold_summary(load(d), store) == ""
    store.root["quench/liquid_held"][1:3] = False
    store.root["quench/tau_alpha"][2] = np.nan
    tau = store.root["quench/tau_alpha"][1]
    line = hold_summary(load(d), store)
    assert line.startswith(
        f"quench: 2 of 4 liquids held {HOLD:g} < {TAU_MULTIPLE} tau_alpha at T_L = {T_L:g} "
        f"(tau_alpha {tau:.3g} ({tau:.3g} to {tau:.3g}); 1 never decayed to 1/e)"
    ), line
    assert "raise quench.hold_liquid" in line


@pytest.mark.slow  # the report stage
def test_report_shows_tau_alpha_and_the_held_energy(held):
    """The report's table: tau_alpha, the held count and the energies beside the equilibrium estimate."""
    d, g = held, zarr.open_group(held / "store.zarr", mode="r")["quench"]
    R, tau, energy = 4, g["tau_alpha"][:], g["pe"][:, 0]
    glassdist("report", d)
    rows = list(csv.reader(open(d / "report" / "liquid_hold.csv")))
    assert rows[1][:2] == ["this campaign", f"{HOLD:g}"] and rows[1][4] == f"{R} of {R}"
    assert float(rows[1][2].split()[0]) == pytest.approx(np.median(tau), rel=1e-2)
    assert float(rows[1][5].split()[0]) == pytest.approx(energy.mean(), rel=1e-3)


def warp_spec(*extra):
    from glassdist.spec import apply_overrides, loads, preset_text

    from .conftest import TINY, TINY_COUNTS

    return loads(
        apply_overrides(
            preset_text("demo-kam"), [*TINY, TINY_COUNTS["kam"], f"quench.T_liquid={T_L}", 'md.device="cpu"', *extra]
        )
    )


def test_warp_hold_resumes_bitwise(tmp_path):
    """A Warp quench block stopped inside the hold resumes to the uninterrupted result, bitwise."""
    import pytest

    from glassdist.md.warp.engine import WarpEngine
    from hpc.farm import Suspended

    spec = warp_spec("quench.hold_liquid=2.0", "md.checkpoint_every=100")
    engine, rngs = WarpEngine(spec), lambda: [np.random.default_rng(s) for s in range(2)]
    fresh = engine.quench_block(spec, rngs(), [False] * 2)
    from glassdist.md.schedule import QuenchPlan

    # the block runs the quench's plan (no replica keeps snapshots); stop at the 20th step of the hold
    plan = QuenchPlan.of(spec, False, spec.md.checkpoint_every)
    chance, calls = plan.segments.index(("hold", 20)) + 1, []
    with pytest.raises(Suspended):
        engine.quench_block(
            spec, rngs(), [False] * 2, workdir=tmp_path, should_stop=lambda: calls.append(1) or len(calls) >= chance
        )
    with np.load(tmp_path / "warp-quench.npz") as z:
        assert np.isfinite(z["hold_fs"][:, :3]).all() and np.isnan(z["hold_fs"][:, -1]).all()
    resumed = engine.quench_block(spec, rngs(), [False] * 2, workdir=tmp_path)
    for a, b in zip(resumed, fresh):
        for name, value in vars(a).items():
            np.testing.assert_array_equal(value, getattr(b, name), err_msg=name)
    assert all(r.hold_fs[0] == 1 and r.pe[0] == r.hold_pe[-1] and 5.5 < r.k_star[0] < 8.5 for r in fresh)


@pytest.mark.slow
def test_warp_held_liquid_is_at_the_lammps_equilibrium():
    """The batched engine's held liquids (hold >= 10 tau_alpha) have the LAMMPS equilibrium
    energy at T_L; their cooling-only liquids do not (the Warp-vs-LAMMPS check of the hold)."""
    from glassdist.md.warp.engine import WarpEngine

    spec = warp_spec(f"quench.hold_liquid={HOLD}")
    fresh = WarpEngine(spec).quench_block(spec, [np.random.default_rng(s) for s in range(6)], [False] * 6)
    held, start = np.array([r.pe[0] for r in fresh]), np.array([r.hold_pe[0] for r in fresh])
    mean, err, spread = equilibrium_pe(spec, 11)
    bound = 3 * np.sqrt(spread**2 / 6 + err**2)
    assert abs(held.mean() - mean) < bound, (held.mean(), mean, bound)
    assert start.mean() - mean > 2 * bound, (start.mean(), mean, bound)


def test_a_hold_shorter_than_its_samples_is_refused():
    from glassdist.errors import SpecError

    with pytest.raises(SpecError, match="quench.hold_liquid.*takes 20 MD steps"):
        warp_spec("quench.hold_liquid=0.1")
