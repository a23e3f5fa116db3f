"""The seams of the architecture: the stage registry, light imports, the indicator registry
(a plugin indicator reaches export and the Table S2 correlations through it alone), and a 3D
campaign without the 2D-only Tong-Tanaka parameter running to its report."""

from __future__ import annotations

import csv
import inspect
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import zarr

from glassdist.structure import indicators as registry
from glassdist.pipeline import PIPELINE, STAGES

from .conftest import TINY, TINY_COUNTS, glassdist, init_tiny

# a campaign small enough to run every stage in a test (N = 200)
WHOLE = [
    "quench.replicas=10",
    "quench.split=[6,2,2]",
    "train.epochs=2",
    "propensity.samples=3",
    "propensity.steps=300",
    "propensity.outputs=6",
    "propensity.checkpoint_every=300",
    "propensity.temperatures=[0.5]",
    "analyze.deltas=[0.01,0.05]",
    "analyze.xi_grid=[0.0,1.0,2.0]",
    "analyze.xi={Delta = 2.0, alpha = 2.0, violin = 2.0}",
    "analyze.correlation_rmax=3.0",
    "analyze.correlation_bins=6",
    "dask.workers=1",
]


def test_registry_is_the_pipeline():
    assert PIPELINE[0] == "quench" and PIPELINE[-1] == "report"
    for stage in STAGES.values():
        assert stage.kind in ("mpi", "dask", "torch", "serial")
        assert all(PIPELINE.index(n) < PIPELINE.index(stage.name) for n in stage.needs), stage.name
        # a stage's results depend on the sections of every stage it reads
        for need in stage.needs:
            assert set(STAGES[need].sections) <= set(stage.sections), (stage.name, need)
        # one contract: prepare(campaign_dir, spec) -> list[int] and run(campaign_dir, args) -> int
        prepare, run = (inspect.signature(getattr(stage.module, f)) for f in ("prepare", "run"))
        assert list(prepare.parameters)[:2] == ["campaign_dir", "spec"] and prepare.return_annotation == "list[int]"
        assert list(run.parameters) == ["campaign_dir", "args"] and run.return_annotation == "int", stage.name


def test_stage_options_are_declared_once_in_the_records():
    """Each stage's command line is its record's options, and a stage run by `glassdist run` gets
    their defaults (switches off)."""
    from glassdist.cli import build_parser

    parser = build_parser()
    for stage in STAGES.values():
        args = parser.parse_args([stage.name, "DIR"])
        defaults = stage.arguments()
        assert {o.name for o in stage.options} == set(vars(defaults)), stage.name
        assert all(getattr(args, name) == value for name, value in vars(defaults).items()), stage.name
    assert vars(STAGES["gradcam"].arguments()) == {"model": None, "discard": False}
    assert parser.parse_args(["train", "DIR", "--nproc", "3"]).nproc == 3 and STAGES["train"].arguments().nproc == 1


@pytest.mark.parametrize(
    "code",
    [
        "from glassdist.cli import build_parser; build_parser()",
        "import glassdist.stages.quench, glassdist.stages.inherent, glassdist.stages.propensity",
        "from glassdist.commands.status import print_status",
    ],
)
def test_cli_status_and_mpi_stages_start_without_heavy_libraries(code):
    """`glassdist --help`, `status` and every rank of an MPI stage import neither torch nor
    dask.distributed, nor dask.array, freud or matplotlib (they import where they are used): each
    costs a rank or a CLI call a fraction of a second to seconds, for nothing it needs."""
    heavy = ("torch", "distributed", "dask.array", "freud", "matplotlib")
    probe = f"{code}\nimport sys\nprint(sorted(m for m in {heavy} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out


def test_pairs_rule():
    assert registry.pairs(3) == [(0, 1), (0, 2), (2, 1)]
    assert registry.pairs(4) == [(0, 1), (0, 2), (0, 3), (2, 1), (3, 1), (3, 2)]
    assert registry.pairs(2) == [(0, 1)]


PLUGIN = '''
import numpy as np

from glassdist.structure.indicators import Indicator
from glassdist.structure.pairs import periodic_pairs


def local_density(positions, types, spec, cells):
    """Neighbours within 1.5 of each particle (N,)."""
    pairs = periodic_pairs(positions, spec.box_length, 1.5)
    return np.bincount(pairs.i, minlength=len(positions)).astype(float)


DENSITY = Indicator("density", "ρ", "local density", (2, 3), local_density, {})
'''


def plugin_site(tmp_path, package: str, source: str, entry_points: str) -> dict:
    """An installed plugin package ``package`` (one file, a dist-info with ``entry_points``) on
    PYTHONPATH: the environment to run glassdist with."""
    site = tmp_path / "site"
    (site / package).mkdir(parents=True)
    (site / package / "__init__.py").write_text(textwrap.dedent(source))
    info = site / f"{package}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {package}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(entry_points)
    return {"PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))}


@pytest.fixture
def plugin_env(tmp_path):
    return plugin_site(tmp_path, "toy_density", PLUGIN, "[glassdist.indicators]\ndensity = toy_density:DENSITY\n")


ENGINE_PLUGIN = '''
"""A third MD engine in one file: LAMMPS's physics under its own name."""
from glassdist.md.lammps_engine import LammpsEngine


class ToyEngine(LammpsEngine):
    name = "toy"


def toy_engine(spec):
    return ToyEngine()
'''


def test_an_engine_plugin_is_one_file(tmp_path, quenched):
    """An engine registered by an installed package (entry point glassdist.engines) is a valid
    md.engine, runs the quench stage and is recorded with its results; without the package the
    name is refused (exit 2, the key and the engines there are)."""
    env = plugin_site(tmp_path, "toy_engine", ENGINE_PLUGIN, "[glassdist.engines]\ntoy = toy_engine:toy_engine\n")
    sets = [a for x in [*TINY, TINY_COUNTS["kam"], 'md.engine="toy"'] for a in ("--set", x)]
    refused = glassdist("init", tmp_path / "refused", "--preset", "demo-kam", *sets, check=False)
    assert refused.returncode == 2 and "md.engine" in refused.stderr and "'lammps', 'warp'" in refused.stderr
    d = tmp_path / "toy"
    glassdist("init", d, "--preset", "demo-kam", *sets, env=env)
    glassdist("quench", d, env=env)
    root, reference = (zarr.open_group(c / "store.zarr", mode="r") for c in (d, quenched["kam"]))
    assert root["quench"].attrs["engine"]["engine"] == "toy"
    np.testing.assert_array_equal(root["quench/positions"][:], reference["quench/positions"][:])


@pytest.mark.slow
def test_plugin_indicator_reaches_export_and_table_s2(tmp_path, plugin_env):
    d = init_tiny(tmp_path / "c", "kam", *WHOLE)
    glassdist("run", d, "--np", "1", env=plugin_env)
    root = zarr.open_group(d / "store.zarr", mode="r")
    assert root["indicators"].attrs["computed"] == ["voronoi", "ttop", "density"]
    density = root["indicators/density"][:]
    assert np.isfinite(density).all() and density.max() > 0
    assert root["analyze"].attrs["indicators"] == ["gradcam", "voronoi", "ttop", "density"]
    pearson = root["analyze/pairs/pearson"][:]  # (R_test, 2, P) per configuration
    assert pearson.shape[-1] == 6  # (Γ,Υ) (Γ,Θ) (Γ,ρ) (Θ,Υ) (ρ,Υ) (ρ,Θ); Γ of a barely trained net may be 0
    assert np.isfinite(pearson[..., 3:]).all()
    assert (pearson[..., 4] < 0).all()  # more neighbours within 1.5, smaller Voronoi cell
    s2 = np.asarray(root["analyze"].attrs["tables"]["S2"], dtype=float)
    assert s2.shape == (2, 6, 4)
    out = tmp_path / "fields.csv"
    glassdist("export", d, "--what", "fields", "--format", "csv", "-o", out, "--replicas", "0", env=plugin_env)
    rows = list(csv.DictReader(out.open()))
    np.testing.assert_allclose([float(r["density"]) for r in rows if r["class"] == "glass"], density[0, 1])
    table = (d / "report" / "table_S2.csv").read_text()
    assert "C(ρ, Υ)" in table and "C(Γ, ρ)" in table


@pytest.mark.slow
def test_3d_campaign_without_tong_tanaka_runs_to_its_report(tmp_path):
    d = init_tiny(
        tmp_path / "c3",
        "kam",
        *WHOLE,
        "system.dim=3",
        "system.n_particles=300",
        "system.counts=[195,105]",
        "dataset.grid=12",
        'indicators.compute=["voronoi"]',
        "quench.snapshot_replicas=0",
    )  # no E0(T) (the ka3d test below has it)
    glassdist("run", d, "--np", "2")
    root = zarr.open_group(d / "store.zarr", mode="r")
    assert root["quench/positions"].shape[-1] == 3 and "ttop" not in root["indicators"]
    assert root["analyze"].attrs["indicators"] == ["gradcam", "voronoi"]
    manifest = root["report"].attrs["manifest"]
    assert not [e for e in manifest.values() if e["missing"].startswith("failed")]
    assert (d / "report" / "index.html").is_file()
    # every chunk behind every done task of every ledger reads back (glassdist.integrity.TASK_ARRAYS)
    assert "reads back" in glassdist("status", d, "--verify").stdout


@pytest.mark.slow
def test_demo_ka3d_campaign_runs_to_a_complete_report(tmp_path):
    """The 3D preset end to end (3D Theta, Conv3d, Grad-CAM in 3D, slab maps), Table IV included."""
    d = init_tiny(
        tmp_path / "ka3d",
        "ka3d",
        *WHOLE,
        "system.n_particles=300",
        "system.counts=[240,60]",
        "dataset.grid=12",
        "analyze.correlation_rmax=2.5",
        "propensity.samples=6",
        "propensity.main_samples=2",
        "quench.snapshot_replicas=1",
    )
    glassdist("run", d, "--np", "2")
    root = zarr.open_group(d / "store.zarr", mode="r")
    assert root["analyze"].attrs["indicators"] == ["gradcam", "voronoi", "ttop"]
    assert np.isfinite(root["indicators/ttop"][:]).all()
    manifest = root["report"].attrs["manifest"]
    assert not [e["label"] for e in manifest.values() if e["missing"]], manifest


@pytest.mark.slow
def test_gradcam_with_a_model_of_another_campaign(tmp_path):
    """`glassdist gradcam DIR --model OTHER/train/member-0.pt`: a gap model trained in one campaign
    explains another campaign of the same mixture; one of another image resolution is refused."""
    gap = ['model.head="gap"', "quench.replicas=6", "quench.split=[2,2,2]", "train.epochs=2"]
    a = init_tiny(tmp_path / "a", "kam", *gap)
    glassdist("run", a, "--np", "1", "--stages", "quench,dataset,train")
    b = init_tiny(
        tmp_path / "b",
        "kam",
        *gap,
        "campaign.seed=7",
        "system.n_particles=800",
        "system.counts=[520,280]",
        "dataset.grid=48",
    )  # twice the box and the grid: same pixel
    glassdist("run", b, "--np", "1", "--stages", "quench,dataset")
    glassdist("gradcam", b, "--model", a / "train" / "member-0.pt")
    root = zarr.open_group(b / "store.zarr", mode="r")
    assert root["gradcam"].attrs["model"]["path"] == str((a / "train" / "member-0.pt").resolve())
    assert np.isfinite(root["gradcam/gamma"][:]).all() and root["gradcam/gamma"].shape[-1] == 800
    c = init_tiny(tmp_path / "c", "kam", *gap, "dataset.grid=20")
    glassdist("run", c, "--np", "1", "--stages", "quench,dataset")
    bad = glassdist("gradcam", c, "--model", a / "train" / "member-0.pt", check=False)
    assert bad.returncode == 2 and "grid" in bad.stderr, bad.stderr


def test_indicators_compute_is_validated(tmp_path):
    bad = glassdist("init", tmp_path / "x", "--preset", "demo-kam", "--set", 'indicators.compute=["nope"]', check=False)
    assert bad.returncode == 2 and "indicators.compute" in bad.stderr and "nope" in bad.stderr
    assert not (tmp_path / "x").exists()


def test_stored_spec_is_the_whole_validated_spec(quenched):
    root = zarr.open_group(quenched["kam"] / "store.zarr", mode="r")
    stored = root.attrs["spec"]
    assert set(stored) >= {"system", "md", "quench", "dataset", "analyze"}
    assert json.dumps(stored["quench"], sort_keys=True) == json.dumps(
        root.attrs["stages"]["quench"]["values"]["quench"], sort_keys=True
    )
