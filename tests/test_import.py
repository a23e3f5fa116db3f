"""`glassdist import`: each reader with a file its own library (or plain `lmp`) wrote, each refusal
with exit 2 and an untouched store, and imported configurations landing in the quench arrays."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import numpy as np
import pytest

from glassdist.cli import main
from glassdist.spec import load
from glassdist.store import Store

from .conftest import BIN, glassdist

N, COUNTS = 200, (130, 70)
IMPORT_SETS = [
    f"system.n_particles={N}",
    f"system.counts=[{COUNTS[0]},{COUNTS[1]}]",
    "quench.replicas=4",
    "quench.split=[2,1,1]",
    "quench.source=import",
    "quench.snapshot_temperatures=[]",
    "quench.snapshot_replicas=0",
    "dataset.grid=24",
]


def init_import(directory: Path, *extra: str) -> Path:
    """A tiny KAM campaign whose configurations are imported (N = 200, 4 replicas)."""
    sets = [*IMPORT_SETS, *extra]
    assert main(["init", str(directory), "--preset", "demo-kam", *[a for s in sets for a in ("--set", s)]]) == 0
    return directory


def random_configurations(L: float, frames: int, seed: int, dim: int = 2) -> np.ndarray:
    """(frames, N, 3) positions in [0, L)^dim, z = 0 in 2D."""
    x = np.zeros((frames, N, 3))
    x[..., :dim] = np.random.default_rng(seed).uniform(0, L, (frames, N, dim))
    return x


def lammps_types() -> np.ndarray:
    return np.repeat([1, 2], COUNTS)


def tree_digest(directory: Path) -> str:
    """Hash of every file (path and bytes) under a directory ('' when it does not exist)."""
    if not directory.exists():
        return ""
    h = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        h.update(str(path.relative_to(directory)).encode() + path.read_bytes())
    return h.hexdigest()


@pytest.fixture
def campaign(tmp_path):
    return init_import(tmp_path / "c")


def write_extxyz(path: Path, positions: np.ndarray, L: float, **cell) -> Path:
    import ase
    import ase.io

    images = [
        ase.Atoms(
            numbers=lammps_types(),
            positions=x,
            cell=cell.get("cell", [L, L, 1.0]),
            pbc=cell.get("pbc", [True, True, False]),
        )
        for x in positions
    ]
    ase.io.write(path, images, format="extxyz")
    return path


def stored(campaign: Path, replica: int, cls: int) -> np.ndarray:
    return Store(campaign, mode="r").root["quench/positions"][replica, cls]


def test_extxyz_by_ase_fills_the_quench_arrays(campaign, tmp_path):
    L = load(campaign).box_length
    liquid, glass = random_configurations(L, 4, 1), random_configurations(L, 4, 2)
    liquid[0, 5, 0] -= L  # outside the box: stored wrapped
    write_extxyz(tmp_path / "liquid.xyz", liquid, L)
    write_extxyz(tmp_path / "glass.xyz", glass, L)
    assert main(["import", str(campaign), str(tmp_path / "liquid.xyz"), "--class", "liquid"]) == 0
    assert not Store(campaign, mode="r").ledger("quench").done_mask().any()  # no replica has both yet
    assert main(["import", str(campaign), str(tmp_path / "glass.xyz"), "--class", "glass"]) == 0
    store = Store(campaign, mode="r")
    assert store.ledger("quench").done_mask().all()
    ase_precision = 1e-8  # ase.io.write prints extxyz positions with 8 decimals
    np.testing.assert_allclose(stored(campaign, 0, 0), np.mod(liquid[0, :, :2], L), rtol=0, atol=ase_precision)
    np.testing.assert_allclose(stored(campaign, 3, 1), glass[3, :, :2], rtol=0, atol=ase_precision)
    assert (stored(campaign, 0, 0) >= 0).all() and (stored(campaign, 0, 0) < L).all()
    assert np.isnan(store.root["quench/pe"][:]).all()
    assert [r["replicas"] for r in store.root["quench"].attrs["imports"]] == [[0, 1, 2, 3]] * 2
    # the quench stage then has nothing to do, and runs no MD
    proc = glassdist("quench", campaign)
    assert "no MD" in proc.stdout


def test_lammps_data_by_ase_and_species_reordered(campaign, tmp_path):
    import ase
    import ase.io

    L = load(campaign).box_length
    x = random_configurations(L, 1, 3, dim=3)[0]
    x[:, 2] = 0.0
    types = np.random.default_rng(4).permutation(lammps_types())  # species interleaved in the file
    atoms = ase.Atoms(numbers=types, positions=x, cell=[L, L, 1.0], pbc=True)
    ase.io.write(tmp_path / "c.data", atoms, format="lammps-data", atom_style="atomic")
    assert main(["import", str(campaign), str(tmp_path / "c.data"), "--class", "glass"]) == 0
    order = np.argsort(types - 1, kind="stable")
    np.testing.assert_allclose(stored(campaign, 0, 1), x[order, :2], rtol=0, atol=1e-12 * L)


def test_lammps_dump_written_by_lmp(campaign, tmp_path):
    L = load(campaign).box_length
    script = tmp_path / "in.dump"
    script.write_text(f"""units lj
dimension 2
atom_style atomic
boundary p p p
region box block 0 {L!r} 0 {L!r} -0.5 0.5
create_box 2 box
create_atoms 1 random {COUNTS[0]} 11 box overlap 0.5
create_atoms 2 random {COUNTS[1]} 12 box overlap 0.5
mass * 1.0
dump d all custom 1 {tmp_path / "run.dump"} id type x y z
dump_modify d format float %.17g
run 0
""")
    subprocess.run(
        [str(BIN / "lmp"), "-in", str(script), "-log", "none", "-screen", "none"], check=True, cwd=tmp_path, timeout=60
    )
    assert main(["import", str(campaign), str(tmp_path / "run.dump"), "--class", "liquid", "--types", "1=A,2=B"]) == 0
    rows = np.loadtxt(tmp_path / "run.dump", skiprows=9)
    rows = rows[np.lexsort((rows[:, 0], rows[:, 1]))]  # species, then id: the stored order
    np.testing.assert_array_equal(stored(campaign, 0, 0), rows[:, 2:4])


def test_gsd_by_gsd(campaign, tmp_path):
    import gsd.hoomd

    L = load(campaign).box_length
    x = random_configurations(L, 2, 5)
    with gsd.hoomd.open(tmp_path / "t.gsd", "w") as trajectory:
        for k in range(2):
            frame = gsd.hoomd.Frame()
            frame.configuration.dimensions = 2
            frame.configuration.box = [L, L, 0, 0, 0, 0]
            frame.particles.N = N
            frame.particles.types = ["A", "B"]
            frame.particles.typeid = lammps_types() - 1
            frame.particles.position = (x[k] - [L / 2, L / 2, 0]).astype(np.float32)
            trajectory.append(frame)
    assert main(["import", str(campaign), str(tmp_path / "t.gsd"), "--class", "glass", "--frames", "-1"]) == 0
    half = float(np.float32(L)) / 2  # GSD holds the box in float32 too: the origin is -L32 / 2
    expected = np.mod((x[1] - [L / 2, L / 2, 0]).astype(np.float32)[:, :2].astype(np.float64) + half, L)
    np.testing.assert_array_equal(stored(campaign, 0, 1), expected)


def test_npz_glassbench_layout(campaign, tmp_path):
    L = load(campaign).box_length
    x = random_configurations(L, 3, 6)[:, :, :2]
    np.savez(tmp_path / "gb.npz", positions=x, types=lammps_types() - 1, box=np.array([L, L]))
    assert main(["import", str(campaign), str(tmp_path / "gb.npz"), "--class", "liquid", "--frames", "0,2"]) == 0
    np.testing.assert_array_equal(stored(campaign, 1, 0), x[2])


def _refusals(L: float):
    """(name, writer(tmp_path) -> file, extra args, words the message must hold)."""

    def good(path, **kw):
        return write_extxyz(path, random_configurations(L, 1, 7), L, **kw)

    def n_wrong(path):
        import ase
        import ase.io

        x = random_configurations(L, 1, 7)[0][:-1]
        ase.io.write(path, ase.Atoms(numbers=lammps_types()[:-1], positions=x, cell=[L, L, 1], pbc=[1, 1, 0]))
        return path

    def nan(path):
        x = random_configurations(L, 1, 7)
        x[0, 17, 1] = np.nan
        return write_extxyz(path, x, L)

    def spread_z(path):
        return write_extxyz(path, random_configurations(L, 1, 7, dim=3), L, cell=[L, L, L])

    return [
        ("wrong N", n_wrong, [], ["199 particles", "system.n_particles = 200"]),
        ("wrong box", lambda p: good(p, cell=[1.01 * L, L, 1.0]), [], ["box sides", "system.density"]),
        ("NaN", nan, [], ["non-finite", "particle 17"]),
        ("unknown type", good, ["--types", "1=A"], ["types ['He'] map to no species", "--types"]),
        ("triclinic", lambda p: good(p, cell=[[L, 0, 0], [0.1, L, 0], [0, 0, 1]]), [], ["triclinic", "orthorhombic"]),
        ("not periodic", lambda p: good(p, pbc=[True, False, False]), [], ["not periodic"]),
        ("3D for 2D", spread_z, [], ["spread along z"]),
        ("composition", good, ["--types", "1=A,2=A"], ["composition", "system.counts"]),
        ("wrong class", good, ["--class", "ultrastable"], ["classes.names"]),
    ]


@pytest.mark.parametrize("case", range(9))
def test_refusals_exit_2_and_touch_nothing(tmp_path, capsys, case):
    campaign = init_import(tmp_path / "c")
    L = load(campaign).box_length
    name, writer, extra, words = _refusals(L)[case]
    if case % 2:  # half the cases against a store that has results already
        write_extxyz(tmp_path / "first.xyz", random_configurations(L, 1, 99), L)
        assert main(["import", str(campaign), str(tmp_path / "first.xyz"), "--class", "liquid"]) == 0
    before = tree_digest(campaign / "store.zarr")
    path = writer(tmp_path / "bad.xyz")
    args = ["import", str(campaign), str(path), *extra]
    code = main(args if "--class" in extra else args + ["--class", "glass"])
    err = capsys.readouterr().err
    assert code == 2, name
    assert all(w in err for w in words), (name, err)
    assert tree_digest(campaign / "store.zarr") == before, name


def test_duplicate_refused_within_and_across_imports(campaign, tmp_path):
    L = load(campaign).box_length
    x = random_configurations(L, 1, 8)
    write_extxyz(tmp_path / "one.xyz", x, L)
    write_extxyz(tmp_path / "twice.xyz", np.concatenate([x, x]), L)
    assert main(["import", str(campaign), str(tmp_path / "twice.xyz"), "--class", "glass"]) == 2
    assert not (campaign / "store.zarr").exists()  # nothing written on exit 2
    assert main(["import", str(campaign), str(tmp_path / "one.xyz"), "--class", "glass"]) == 0
    before = tree_digest(campaign / "store.zarr")
    assert main(["import", str(campaign), str(tmp_path / "one.xyz"), "--class", "liquid"]) == 2
    assert tree_digest(campaign / "store.zarr") == before


def test_refused_on_md_campaign_and_when_replicas_are_full(tmp_path):
    md = tmp_path / "md"
    assert main(["init", str(md), "--preset", "demo-kam"]) == 0
    L = load(md).box_length
    write_extxyz(tmp_path / "x.xyz", random_configurations(L, 1, 9), L)
    assert main(["import", str(md), str(tmp_path / "x.xyz"), "--class", "glass"]) == 2
    campaign = init_import(tmp_path / "c")
    Lc = load(campaign).box_length
    write_extxyz(tmp_path / "five.xyz", random_configurations(Lc, 5, 10), Lc)
    assert main(["import", str(campaign), str(tmp_path / "five.xyz"), "--class", "glass"]) == 2
    proc = glassdist("run", campaign, "--stages", "quench", "--np", "1", check=False)
    assert proc.returncode == 2 and "lack imported configurations" in proc.stderr


def import_quenched(source: Path, target: Path, tmp_path: Path, *extra: str) -> Path:
    """Export both classes of a tiny quenched KAM campaign (8 replicas, N = 200) and import them into
    an analysis-only campaign of the same system."""
    campaign = init_import(target, "quench.replicas=8", "quench.split=[4,2,2]", *extra)
    for cls in ("liquid", "glass"):
        out = tmp_path / f"{target.name}-{cls}.xyz"
        glassdist("export", source, "--what", "configurations", "--format", "extxyz", "-o", out, "--class", cls)
        assert main(["import", str(campaign), str(out), "--class", cls]) == 0
    return campaign


@pytest.mark.slow
def test_analysis_only_campaign_runs_every_stage_without_md(quenched, tmp_path):
    """Imported configurations of an unknown interaction: every stage but inherent and propensity
    runs, `run` and the report say why those two are left out."""
    campaign = import_quenched(
        quenched["kam"], tmp_path / "only", tmp_path, "system.interaction_known=false", "train.epochs=5"
    )
    np.testing.assert_array_equal(
        Store(campaign, mode="r").root["quench/positions"][:],
        Store(quenched["kam"], mode="r").root["quench/positions"][:],
    )
    proc = glassdist("run", campaign, "--np", "1")
    assert "== propensity == skipped: the configurations are imported with an unknown interaction" in proc.stdout
    assert "== inherent == skipped" in proc.stdout
    store = Store(campaign, mode="r")
    assert not store.stage_started("propensity") and not (campaign / "lammps").exists()  # no MD at all
    assert store.stage_state("analyze").name == "done" and np.isfinite(store.root["analyze/pairs/pearson"][:]).any()
    manifest = store.root["report"].attrs["manifest"]
    assert manifest["table_II"]["file"] and manifest["table_S2"]["file"] and manifest["fig_6"]["file"]
    assert "system.interaction_known = false" in manifest["table_III"]["missing"]
    assert "quench.source = 'import'" in manifest["fig_S9"]["missing"]
    assert "not made for this campaign" in (campaign / "report" / "index.html").read_text()


@pytest.mark.slow
def test_imported_campaign_with_its_interaction_runs_propensity(quenched, tmp_path):
    """Declared interaction (the default): the isoconfigurational runs start from the imported glass."""
    campaign = import_quenched(
        quenched["kam"],
        tmp_path / "known",
        tmp_path,
        "propensity.samples=2",
        "propensity.main_samples=0",
        "propensity.temperatures=[0.5]",
        "propensity.steps=400",
        "propensity.outputs=4",
        "propensity.checkpoint_every=400",
    )
    glassdist("propensity", campaign)
    store = Store(campaign, mode="r")
    assert store.stage_state("propensity").name == "done"
    traj = store.root["propensity/traj"][0, 0]  # (S, n_out, N, dim)
    start = store.root["quench/positions"][store.root["propensity"].attrs["replicas"][0], 1]
    L = load(campaign).box_length
    np.testing.assert_allclose(np.mod(traj[:, 0], L), np.broadcast_to(start, traj[:, 0].shape), atol=1e-9)
    assert np.isfinite(store.root["propensity/delta"][:]).all() and (store.root["propensity/delta"][0, 0, 1:] > 0).all()
