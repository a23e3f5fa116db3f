"""Stages `indicators` (Dask) and `inherent` (MPI farm) on a tiny real campaign."""

from __future__ import annotations

import csv
import shutil

import numpy as np
import pytest

from glassdist import spec as specmod
from glassdist.store import Store
from glassdist.md.minimise import minimise
from glassdist.structure.inherent import fit_t_star
from glassdist.structure.rdf import partial_rdf
from glassdist.structure.tongtanaka import tong_tanaka
from glassdist.structure.voronoi import voronoi

from .conftest import glassdist, init_tiny, mpi_glassdist


@pytest.fixture
def campaign(quenched, tmp_path):
    """A private copy of the quenched tiny KAM campaign."""
    return shutil.copytree(quenched["kam"], tmp_path / "kam")


def test_indicators_stage_stores_what_direct_computation_gives(campaign, tmp_path):
    glassdist("indicators", campaign)
    spec = specmod.load(campaign)
    store = Store(campaign, mode="r")
    R, N, L = spec.quench.replicas, spec.system.n_particles, spec.box_length
    assert store.ledger("indicators").counts() == {"done": R, "failed": 0, "pending": 0}
    vor, ttop, rdf = (store.root[f"indicators/{k}"][:] for k in ("voronoi", "ttop", "rdf"))
    assert vor.shape == ttop.shape == (R, 2, N)
    assert rdf.shape == (R, 2, 2, 2, spec.indicators.rdf_bins)
    np.testing.assert_allclose(vor.sum(axis=-1), L**2, rtol=1e-5)

    positions, types = store.root["quench/positions"][:], store.types()
    for replica, cls in [(0, 1), (R - 1, 0)]:
        x = positions[replica, cls]
        np.testing.assert_allclose(vor[replica, cls], voronoi(x, L).volumes)
        np.testing.assert_allclose(ttop[replica, cls], tong_tanaka(x, types, L, spec.contact_sigma))
        r, g = partial_rdf(x, types, L, spec.indicators.rdf_rmax, spec.indicators.rdf_bins)
        np.testing.assert_allclose(store.root["indicators/rdf_r"][:], r)
        np.testing.assert_allclose(rdf[replica, cls], g)
    # the glass is more structured than the liquid: higher first peak of g_AA
    assert rdf[:, 1, 0, 0].max(axis=-1).mean() > rdf[:, 0, 0, 0].max(axis=-1).mean()

    # a rerun finds nothing to do and leaves the data alone
    seconds = store.root["ledger/indicators/seconds"][:]
    glassdist("indicators", campaign)
    np.testing.assert_array_equal(store.root["ledger/indicators/seconds"][:], seconds)

    out = tmp_path / "fields.csv"
    glassdist(
        "export", campaign, "--what", "fields", "--format", "csv", "-o", out, "--replicas", "2", "--class", "glass"
    )
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == N
    np.testing.assert_allclose([float(row["voronoi"]) for row in rows], vor[2, 1])
    np.testing.assert_allclose([float(row["ttop"]) for row in rows], ttop[2, 1])


def test_inherent_stage_minimises_snapshots_and_fits_t_star(campaign, tmp_path):
    mpi_glassdist(2, "inherent", campaign)
    spec = specmod.load(campaign)
    store = Store(campaign, mode="r")
    k, T = spec.quench.snapshot_replicas, np.asarray(spec.quench.snapshot_temperatures)
    assert store.ledger("inherent").counts() == {"done": k * len(T), "failed": 0, "pending": 0}
    E0 = store.root["inherent/E0"][:]
    assert E0.shape == (k, len(T)) and np.isfinite(E0).all()
    # the snapshot at T_G is the glass configuration: its inherent structure lies below it
    glass = int(np.flatnonzero(np.isclose(T, spec.quench.T_glass))[0])
    assert (E0[:, glass] < store.root["quench/pe"][:k, 1]).all()

    # an inherent structure is a minimum: minimising it again returns its energy
    inherent = store.root["inherent/positions"][0, 3]
    e, _ = minimise(spec, inherent, store.types(), tmp_path / "again.data")
    assert e == pytest.approx(E0[0, 3], abs=1e-7)

    attrs = dict(store.root["inherent"].attrs)
    ref = fit_t_star(T, E0.mean(axis=0), upper=spec.inherent.fit_upper_T or spec.quench.T_liquid)
    assert attrs["t_star"] == pytest.approx(ref.t_star)
    np.testing.assert_allclose(store.root["inherent/fit_residuals"][:], ref.residuals)
    np.testing.assert_allclose(store.root["inherent/E0_mean"][:], E0.mean(axis=0))
    assert (campaign / "lammps" / "inherent" / "replica-000000-T003.in").is_file()


def test_inherent_without_snapshots_has_nothing_to_do(tmp_path):
    d = init_tiny(tmp_path / "c", "kam", "quench.snapshot_replicas=0")
    out = glassdist("inherent", d)
    assert "nothing to do" in out.stdout
    assert not (d / "store.zarr").exists()


def test_indicators_before_quench_is_a_clear_error(tmp_path):
    d = init_tiny(tmp_path / "c", "kam")
    out = glassdist("indicators", d, check=False)
    assert out.returncode == 2 and "glassdist quench" in out.stderr


@pytest.mark.slow  # the inherent stage (~25 s) and a short propensity stage
def test_auto_propensity_temperatures_follow_the_fitted_t_star(campaign):
    """propensity.temperatures = "auto": the runs are at t_star_multiples x the T* the inherent
    stage fitted; the propensity stage needs the inherent stage only then, a refit that moves T*
    refuses to mix temperatures, and a failed fit is an exit-2 error naming the fix."""
    from glassdist.errors import SpecError, StaleResultsError
    from glassdist.pipeline import STAGES
    from glassdist.stages import inherent, propensity

    toml = campaign / "campaign.toml"
    toml.write_text(
        specmod.apply_overrides(
            toml.read_text(),
            [
                'propensity.temperatures="auto"',
                "propensity.t_star_multiples=[1.0,1.5]",
                "propensity.samples=2",
                "propensity.steps=200",
                "propensity.outputs=4",
                "propensity.checkpoint_every=100",
            ],
        )
    )
    spec = specmod.load(campaign)
    assert STAGES["propensity"].needs_of(spec) == ("quench", "inherent")
    assert STAGES["propensity"].needs_of(specmod.loads(specmod.preset_text("demo-kam"))) == ("quench",)
    before = glassdist("propensity", campaign, check=False)
    assert before.returncode == 2 and "'inherent'" in before.stdout + before.stderr
    jobs = glassdist("submit", campaign, "--profile", "generic-cpu", "--dry-run").stdout  # SLURM waits for T*
    assert any(
        line.startswith("$ sbatch") and "<inherent>" in line and line.endswith("propensity.sh")
        for line in jobs.splitlines()
    ), jobs

    mpi_glassdist(2, "inherent", campaign)
    # a tiny run's E0(T) is too noisy for a kink: the fit of a known kinked E0 (with scatter) over it
    T = np.asarray(spec.quench.snapshot_temperatures)
    E0 = Store(campaign).root["inherent/E0"]
    kink = np.where(T < 0.45, -3.0 + 0.05 * T, -3.0675 + 0.2 * T)  # T* = 0.45, between snapshot temperatures
    E0[:] = kink + 1e-3 * np.random.default_rng(0).normal(size=E0.shape)
    inherent.fit(Store(campaign), spec)
    attrs = dict(Store(campaign, mode="r").root["inherent"].attrs)
    assert attrs["fit_ok"], attrs["fit_reason"]
    t_star, error = attrs["t_star"], attrs["t_star_error"]
    assert 0 < error < t_star  # the scatter of E0 about the two lines gives a finite error
    glassdist("propensity", campaign)
    store = Store(campaign)
    ran = store.root["propensity"].attrs
    np.testing.assert_allclose(ran["temperatures"], [t_star, 1.5 * t_star], rtol=1e-12)
    assert ran["t_star"] == t_star and ran["t_star_error"] == error
    run_in = (campaign / "lammps" / "propensity" / "c0-T1-s0001" / "run.in").read_text()
    assert f"temp {1.5 * t_star!r} {1.5 * t_star!r}" in run_in or f"temp {1.5 * t_star:g}" in run_in

    # a refit (here of an E0 kinked at 0.55) moves T*: the temperatures follow it, and the stage
    # refuses to add runs at them to the runs at the old ones
    E0[:] = np.where(T < 0.55, -3.0 + 0.05 * T, -3.0825 + 0.2 * T) + 1e-3 * np.random.default_rng(1).normal(
        size=E0.shape
    )
    inherent.fit(store, spec)
    moved = store.root["inherent"].attrs["t_star"]
    assert not np.isclose(moved, t_star)
    np.testing.assert_allclose(propensity.temperatures(spec, store)[0], [moved, 1.5 * moved], rtol=1e-12)
    with pytest.raises(StaleResultsError, match="T\\* fit changed"):
        propensity.prepare(campaign, spec)

    # a fit stored as failed (ok = false, with its reason) is a clear error naming the fix
    store.root["inherent"].attrs.update({"fit_ok": False, "fit_reason": "no kink in E0(T)"})
    with pytest.raises(SpecError, match="fixed values") as failed:
        propensity.temperatures(spec, store)
    assert "propensity.temperatures" in str(failed.value) and "no kink" in str(failed.value)
