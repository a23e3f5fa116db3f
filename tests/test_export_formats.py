"""`glassdist export` to extxyz, GSD and LAMMPS dumps: read back with the reader a user would use
(OVITO, ASE, gsd.hoomd) with the per-particle fields as named properties, and the round trip
export -> import giving the same positions, box and types (bitwise; GSD to its float32)."""

from __future__ import annotations

import numpy as np
import pytest

from glassdist.cli import main
from glassdist.commands.formats import property_name
from glassdist.spec import load
from glassdist.store import Store

from .test_import import init_import, random_configurations, write_extxyz

FIELDS = ("voronoi", "ttop")
SUFFIX = {"extxyz": "xyz", "gsd": "gsd", "lammps-dump": "dump"}


@pytest.fixture(scope="module")
def analysed(tmp_path_factory):
    """An imported campaign (4 replicas x 2 classes) with its indicators computed."""
    base = tmp_path_factory.mktemp("export")
    campaign = init_import(base / "c")
    L = load(campaign).box_length
    for k, cls in enumerate(("liquid", "glass")):
        write_extxyz(base / f"{cls}.xyz", random_configurations(L, 4, 20 + k), L)
        assert main(["import", str(campaign), str(base / f"{cls}.xyz"), "--class", cls]) == 0
    assert main(["indicators", str(campaign)]) == 0
    return campaign


def export(campaign, fmt, out, *extra):
    assert (
        main(
            [
                "export",
                str(campaign),
                "--what",
                "configurations",
                "--format",
                fmt,
                "-o",
                str(out),
                "--replicas",
                "0-1",
                *extra,
            ]
        )
        == 0
    )
    return out


def stored(campaign):
    """positions (2, 2, N, dim) of replicas 0-1, types (N,), fields {name: (2, 2, N)}."""
    store = Store(campaign, mode="r")
    g = store.root["indicators"]
    return store.root["quench/positions"][:2], store.types(), {f: g[f][:2] for f in FIELDS}


@pytest.mark.parametrize("fmt", ["extxyz", "gsd", "lammps-dump"])
def test_ovito_reads_positions_types_and_named_fields(analysed, tmp_path, fmt):
    import ovito.io

    out = export(analysed, fmt, tmp_path / f"c.{SUFFIX[fmt]}")
    positions, types, fields = stored(analysed)
    pipeline = ovito.io.import_file(str(out))
    assert pipeline.source.num_frames == 4  # 2 replicas x 2 classes, replica-major
    L = load(analysed).box_length
    for frame in range(4):
        r, c = divmod(frame, 2)
        data = pipeline.compute(frame)
        xyz = np.asarray(data.particles.positions)[:, :2]
        origin = np.asarray(data.cell[...])[:2, 3]
        tol = 4e-6 * L if fmt == "gsd" else 0  # GSD holds float32
        np.testing.assert_allclose(np.mod(xyz - origin, L), positions[r, c], rtol=0, atol=tol)
        np.testing.assert_allclose(np.diag(np.asarray(data.cell[...])[:2, :2]), L, rtol=1e-7 if tol else 0)
        typeid = np.asarray(data.particles.particle_types)
        assert (typeid - typeid.min() == types).all()
        for name in FIELDS:  # OVITO's text parsers round to the last bit or the one next to it
            np.testing.assert_allclose(
                np.asarray(data.particles[name]), fields[name][r, c], rtol=0 if fmt == "gsd" else 3e-16, atol=0
            )


def test_ase_reads_extxyz_with_field_columns(analysed, tmp_path):
    import ase.io

    out = export(analysed, "extxyz", tmp_path / "c.xyz", "--class", "glass")
    positions, types, fields = stored(analysed)
    images = ase.io.read(out, index=":")
    assert len(images) == 2
    for r, atoms in enumerate(images):
        np.testing.assert_array_equal(atoms.positions[:, :2], positions[r, 1])
        assert (atoms.numbers == types + 1).all() and atoms.info["class"] == "glass"
        for name in FIELDS:
            np.testing.assert_array_equal(atoms.arrays[name], fields[name][r, 1])


def test_gsd_hoomd_reads_fields_as_log_particles(analysed, tmp_path):
    import gsd.hoomd

    out = export(analysed, "gsd", tmp_path / "c.gsd")
    positions, types, fields = stored(analysed)
    L = load(analysed).box_length
    with gsd.hoomd.open(out, "r") as trajectory:
        assert len(trajectory) == 4
        frame = trajectory[3]  # replica 1, class 1
        assert frame.configuration.dimensions == 2 and frame.configuration.step == 3
        assert frame.particles.types == ["A", "B"] and (frame.particles.typeid == types).all()
        np.testing.assert_array_equal(frame.particles.position[:, :2], (positions[1, 1] - 0.5 * L).astype(np.float32))
        for name in FIELDS:
            np.testing.assert_array_equal(frame.log[f"particles/{name}"], fields[name][1, 1])


@pytest.mark.parametrize("fmt", ["extxyz", "lammps-dump", "gsd"])
def test_round_trip_export_import(analysed, tmp_path, fmt):
    out = export(analysed, fmt, tmp_path / f"c.{SUFFIX[fmt]}", "--class", "glass")
    fresh = init_import(tmp_path / "fresh")
    assert main(["import", str(fresh), str(out), "--class", "glass"]) == 0
    before, after = Store(analysed, mode="r"), Store(fresh, mode="r")
    assert (after.types() == before.types()).all()
    assert load(fresh).box_length == load(analysed).box_length
    original, back = before.root["quench/positions"][:2, 1], after.root["quench/positions"][:2, 1]
    if fmt == "gsd":  # float32 positions in a box centred at the origin
        np.testing.assert_allclose(back, original, rtol=0, atol=4e-6 * load(fresh).box_length)
    else:
        np.testing.assert_array_equal(back, original)


def test_property_names_keep_no_dots():
    assert property_name("propensity_T0.37_delta0.1") == "propensity_T0p37_delta0p1"
