"""End to end: a tiny demo-kam campaign through every stage with `glassdist run DIR --np 2`
(real LAMMPS under MPI, real Dask, real torch), then its report: every table and figure
file, non-empty and referenced by index.html, the paper's values beside ours, missing data
listed with the command that makes them, and a second `run` that finds everything done."""

from __future__ import annotations

import csv
import re
import shutil
import time

import numpy as np
import pytest

from glassdist import spec as specmod
from glassdist.fields import uncertainty
from glassdist.report.build import ARTEFACTS
from glassdist.stages import analyze as analyze_stage
from glassdist.store import Store

from .conftest import glassdist, init_tiny

pytestmark = pytest.mark.slow  # a whole tiny campaign with 100 isoconfigurational runs

# 100 isoconfigurational runs (Table IV, Fig. 4) of 600 steps at one temperature; deltas the
# runs reach and one they do not (5.0, also until_delta: every run hits the cap); a short T grid for the T* fit;
# 4 epochs.
EXTRA = [
    "quench.snapshot_temperatures=[0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8]",
    "propensity.samples=100",
    "propensity.main_samples=30",
    "propensity.temperatures=[0.55]",
    "propensity.steps=600",
    "propensity.outputs=8",
    "propensity.until_delta=5.0",
    "analyze.deltas=[0.03, 0.06, 5.0]",
    "analyze.xi_grid=[0.0, 1.0, 2.0, 3.0]",
    "analyze.correlation_rmax=4.0",
    "analyze.correlation_bins=16",
    "train.epochs=4",
]


@pytest.fixture(scope="module")
def campaign(tmp_path_factory):
    """A tiny campaign: first the report with only quench and inherent done, then everything."""
    d = init_tiny(tmp_path_factory.mktemp("report") / "kam", "kam", *EXTRA)
    partial = glassdist("run", d, "--np", "2", "--stages", "quench,inherent,report", timeout=300)
    partial_index = (d / "report" / "index.html").read_text()
    start = time.perf_counter()
    full = glassdist("run", d, "--np", "2", timeout=600)
    return {
        "dir": d,
        "partial": partial,
        "partial_index": partial_index,
        "full": full,
        "seconds": time.perf_counter() - start,
    }


def test_missing_data_are_listed_with_the_command(campaign):
    d, index = campaign["dir"], campaign["partial_index"]
    assert f"glassdist analyze {d}" in index and f"glassdist train {d}" in index
    assert "Fig. S9" in index and "fig_S9.png" in index  # quench + inherent were enough for S9
    assert "missing" in campaign["partial"].stdout


def test_report_has_every_table_and_figure(campaign):
    d = campaign["dir"]
    out = d / "report"
    index = (out / "index.html").read_text()
    assert "Missing" not in index, index[:3000]
    for a in ARTEFACTS:
        path = out / (f"{a.key}.png" if a.kind == "figure" else f"{a.key}.csv")
        assert path.stat().st_size > 0, path
        assert f"'{path.name}'" in index, path.name
        assert a.label in index
    pngs = {p.name for p in out.glob("*.png")}
    assert pngs == set(re.findall(r"src='([^']+\.png)'", index))
    # the scale of the run and the paper's values beside ours
    assert (
        "N = 200 (paper 2000)" in index
        and "N_s = 100 runs (paper 100), the main Δ from the first 30 of them (paper 30)" in index
    )
    rows = list(csv.reader(open(out / "table_V.csv")))
    assert rows[-1][0].startswith("paper (KAM") and rows[-1][1:3] == ["0.925", "1.17"]
    spread = next(r for r in rows if "members' C_max of Γ" in r[0])  # the spread over the 3 members
    low, high = map(float, spread[1].split(" to "))
    assert spread[0].startswith("configuration 0: the 3 members") and low <= high, spread
    assert index.count("thin lines: each member") == 2  # Figs. 5 and 8
    s1 = list(csv.reader(open(out / "table_S1.csv")))
    assert any(r[1] == "Γ of the 3 members (min to max)" and r[2] != "-" for r in s1)  # C_max range, with CG of Δ
    for r in (r for r in s1 if r[0].startswith("configuration") and r[1] in ("Γ", "Υ", "Θ")):
        assert re.fullmatch(r"\[\S+, \S+\]; null \[\S+, \S+\]", r[5]) and r[9].startswith("["), r  # with, without CG
    rows = list(csv.reader(open(out / "table_III.csv")))
    assert rows[1][3].startswith("not reached")  # delta = 5 is beyond the runs
    assert float(rows[1][1].split(" (")[0]) > 0  # xi_Delta of a reached delta
    derived = next(r for r in rows if r[0].startswith("this campaign (derived"))
    assert float(derived[4].split(" (")[0]) > 0 and float(derived[5]) in (0.0, 1.0, 2.0, 3.0)  # xi_Delta, xi_alpha
    assert rows[-1][0].startswith("paper (KAM") and rows[-1][4:7] == ["4", "8", "4"]
    iv = list(csv.reader(open(out / "table_IV.csv")))
    assert "Table IV" in index and len(iv) == 3 and "largest reached" in iv[1][1]  # the runs stop below delta = 1
    for cell in iv[1][2:]:  # each entry with its interval, also from one configuration (spatial blocks)
        value, low, high, n_low, n_high = map(
            float, re.fullmatch(r"(\S+) \[(\S+), (\S+)\]; null \[(\S+), (\S+)\]", cell).groups()
        )
        assert low <= value <= high and n_low < n_high, cell
    # the evidence behind Gamma: its verdict under the title, members, sanity checks, baselines, intervals
    assert index.index("class='verdict'") < index.index("<h2>Contents</h2>") and "members" in index
    trust_rows = list(csv.reader(open(out / "gamma_trust.csv")))
    trust = {r[0] for r in trust_rows}
    consensus = next(r for r in trust_rows if r[0].startswith("consensus") and r[1] == "glass")
    assert re.fullmatch(r"\S+ \[\S+, \S+\]", consensus[-1]), consensus  # C(Γ̄, Δ) with its interval
    assert {
        "consensus Γ̄ (mean of 3)",
        "member 0",
        "member 2",
        "trained on shuffled labels",
        "input only, Γ⁰",
        "partial: Γ̄ given Γ⁰",
        "randomised: output … conv1",
    } <= trust
    s2 = list(csv.reader(open(out / "table_S2.csv")))
    assert any(r[0] == "95 % interval of the mean; null band" and "null [" in r[2] for r in s2)
    assert any(r[0].startswith("Γ of each of the 3 members") and r[1] == "liquid" and " to " in r[2] for r in s2)
    # the report opens with the departure table: the demo preset's T_L, tiny training set, N, ...
    first = index.index("<h2 id='departures'>")
    assert first < index.index("<h2 id='table_I'>")
    departures = list(csv.reader(open(out / "departures.csv")))
    by_name = {r[0]: r for r in departures[1:]}
    assert by_name["T_L, T_G (quench.T_liquid, T_glass)"][3] == "yes"
    assert "docs/validation.md" in by_name["T_L, T_G (quench.T_liquid, T_glass)"][4]
    assert by_name["N (system.n_particles)"][2] == "200"
    assert "δ reached" in by_name["run length and δ reached (propensity.steps)"][2]
    assert index.count("the departure table, first section of this report") >= 2  # Tables S2 and V point to it
    rows = list(csv.reader(open(out / "propensity_runs.csv")))  # until_delta = 5 is beyond the 600-step cap
    assert rows[1][1:3] == ["100", "600"] and rows[1][4] == "100 of 100" and 0 < float(rows[1][3]) < 5
    assert "did not reach δ = 5: raise propensity.steps" in index


def test_analysis_results_in_the_store(campaign):
    d = campaign["dir"]
    store = Store(d, mode="r")
    an = store.root["analyze"]
    tables = an.attrs["tables"]
    assert store.ledger("analyze").done_mask().all() and len(store.ledger("analyze")) == 2 + 2 * 1
    assert an.attrs["xi"]["rule"] == "rule" and an.attrs["xi"]["violin"] == an.attrs["xi"]["Delta"]
    reached = an["dynamics/reached"][0, 0]
    np.testing.assert_array_equal(reached, [True, True, False])
    p = an["dynamics/pearson_t"][0, 0]  # (A, T) at every output time
    assert p.shape == (3, 9) and np.isfinite(p[1:, 1:]).all() and (np.abs(p[1:, 1:]) <= 1).all()
    row = np.asarray(tables["IV"], dtype=float)[0, 0]  # Table IV at the largest delta all ensembles reached
    assert 0 < tables["IV_delta"][0][0] < 1.0 and tables["IV_delta"][0][0] <= an["dynamics/delta"][0, 0].max()
    # e100 holds the runs of each e30: closer to each e30 than the disjoint e30s are to each other
    assert np.isfinite(row).all() and (np.abs(row) <= 1).all() and row[4] > row[1]
    members = an["trust/C_r_members"][:]  # (R_test, M, B): each member's C_Gamma(r), glass
    bins = an["structure/C_r"].shape[-1]
    assert members.shape == (2, 3, bins) and np.isfinite(members[:, :, 0]).all()
    assert len(tables["r_Gamma_members"]) == 3 and an["structure/members_mean"].shape == (3, bins)
    ci = an["ensembles/ci"][0, 0]  # (5, 2) spatial-block interval of each entry
    assert np.isfinite(ci).all() and (ci[:, 0] <= row).all() and (row <= ci[:, 1]).all()
    # Table S1's resampled grid is the scan's: the Pearson matrix of its fields is dynamics/scan
    spec = specmod.load(d)
    positions, fields, _, _, flip = analyze_stage._propensity_inputs(store, spec, 0, 0)
    x, y = analyze_stage.scan_grid(positions, fields, an["maps/Delta"][0, 0], spec, flip)
    X, A, K = len(spec.analyze.xi_grid), fields.shape[1], len(spec.analyze.deltas)
    full = uncertainty.pearson_matrix(x, y).reshape(X, A, 2, K).transpose(2, 3, 0, 1)
    np.testing.assert_allclose(full, an["dynamics/scan"][0, 0], atol=1e-12)
    s1_boot = an["trust/propensity/S1_boot"][0, 0]  # (R, 2, A): finite where a delta was reached
    assert np.isfinite(s1_boot).all() and np.isfinite(an["trust/propensity/S1_null"][0, 0]).all()
    null = an["ensembles/null"][0, 0]  # (5, 2): the same coefficients with the first field shifted
    assert (null[:, 0] < 0).all() and (null[:, 1] > 0).all()  # unrelated fields: around zero
    assert row[4] > null[4, 1]  # e100 holds the runs of each e30: far above what unrelated fields give
    gb = an["glassbench/pearson"][0, 0]  # (A, [bare, cg], [A, B, all], T)
    assert gb.shape == (3, 2, 3, 9) and an.attrs["glassbench"]["groups"] == ["A", "B", "all"]
    assert np.isfinite(gb[1:, :, :, 1:]).all() and (np.abs(gb[1:, :, :, 1:]) <= 1).all()
    pearson = an["pairs/pearson"][:]
    assert pearson.shape == (2, 2, 3) and np.isfinite(pearson[:, :, 2]).all()  # Theta-Upsilon always defined
    valid = store.root["gradcam/correct"][:] & np.isfinite(pearson).all(axis=-1)  # misclassified excluded
    assert tables["S2_counts"] == valid.sum(axis=0).tolist()


def test_every_task_array_is_owned_by_its_ledger(campaign):
    """`status --verify` and the stage-start check see every chunk a task writes: each chunk of each
    array of the stages whose tasks write per-task chunks belongs to a task (the summaries of
    analyze, written when every task is done, excepted)."""
    from glassdist import integrity

    store = Store(campaign["dir"], mode="r")
    summaries = {
        "analyze/structure/mean",
        "analyze/structure/sem",
        "analyze/structure/r",
        "analyze/structure/members_mean",
    }
    for ledger in ("gradcam", "analyze"):
        owned = {}
        for _, arr, chunk in integrity.owned_chunks(store.root, ledger, len(store.ledger(ledger).states())):
            owned.setdefault(arr.path, set()).add(chunk)
        for path, arr in integrity._walk(store.root[ledger], ledger):
            if path not in summaries and not (path == "gradcam/replicas"):
                assert len(owned.get(arr.path, ())) == np.prod(arr.cdata_shape), path


def test_the_store_is_its_declared_layout_and_estimate_counts_its_bytes(campaign):
    """Every array of the finished campaign is one glassdist.layout declares, with its shape, dtype
    and chunks, and none is missing; `estimate`'s store size of each stage equals the bytes its
    arrays hold and, the store being uncompressed, the bytes of their chunk files; with zarr's
    metadata the files of all arrays are within 5 % of the estimate's total."""
    from glassdist import integrity, layout
    from glassdist.commands.estimate import store_bytes
    from glassdist.spec import load

    d = campaign["dir"]
    store, spec = Store(d, mode="r"), load(d)
    sizes, files = store_bytes(spec), 0
    for stage in layout.LAYOUTS:
        declared = layout.arrays(stage, spec, store)
        found = dict(integrity._walk(store.root[stage], stage)) if stage in store.root else {}
        assert sorted(found) == sorted(declared), stage
        for path, arr in found.items():
            a = declared[path]
            assert (tuple(arr.shape), str(arr.dtype), tuple(arr.chunks)) == (a.shape, a.dtype, a.chunk_shape), path
        assert sizes[stage] == sum(arr.nbytes for arr in found.values()), stage
        chunks = sum(
            f.stat().st_size for path in found for f in (d / "store.zarr" / path).rglob("c/**/*") if f.is_file()
        )
        assert chunks == sizes[stage], stage
        files += sum(f.stat().st_size for path in found for f in (d / "store.zarr" / path).rglob("*") if f.is_file())
    assert sum(sizes.values()) <= files <= 1.05 * sum(sizes.values()), (files, sum(sizes.values()))


def test_second_run_finds_everything_done(campaign):
    d = campaign["dir"]
    before = {n: ledger.states().copy() for n, ledger in Store(d, mode="r").ledgers().items()}
    again = glassdist("run", d, "--np", "2", timeout=120)
    for name in ("quench", "inherent", "dataset", "train", "gradcam", "indicators", "propensity", "analyze"):
        assert f"== {name} == done" in again.stdout, again.stdout
    after = {n: ledger.states() for n, ledger in Store(d, mode="r").ledgers().items()}
    assert before.keys() == after.keys() and all((before[n] == after[n]).all() for n in before)
    status = glassdist("status", d).stdout
    assert re.search(r"analyze\s+4\s+0\s+0", status) and re.search(rf"report\s+{len(ARTEFACTS)}\s+0\s+0", status)


def test_an_analysis_made_before_a_fix_is_redone(campaign, tmp_path):
    """A store whose analyze record predates Stage.fixes (as glassdist wrote it before Table S1's
    intervals were fixed) shows analyze stale, naming the fix, and the report after it waiting;
    `glassdist analyze` redoes every task (new attempts, so the report is stale by its input) and
    gives the same tables, this glassdist having computed both."""
    d = shutil.copytree(campaign["dir"], tmp_path / "c", symlinks=True)
    store = Store(d)
    tables = store.root["analyze"].attrs["tables"]
    stages = dict(store.root.attrs["stages"])
    stages["analyze"] = {k: v for k, v in stages["analyze"].items() if k != "fixes"}
    store.root.attrs["stages"] = stages
    status = glassdist("status", d).stdout
    assert "stale: analyze: computed before glassdist fixed Table S1's intervals" in status
    assert f"`glassdist run {d}` recomputes them" in status
    out = glassdist("analyze", d, timeout=300).stdout
    assert "analyze: computed before glassdist fixed Table S1's intervals" in out and "recomputed" in out
    after = Store(d, mode="r")
    assert (after.ledger("analyze").attempts[:] == 2).all() and after.stage_state("analyze").name == "done"
    assert after.root["analyze"].attrs["tables"] == tables
    assert "stale: report: the results of analyze changed since it ran" in glassdist("status", d).stdout


def test_report_in_a_real_browser(campaign):
    """report/index.html in headless Chromium: every image decodes, no console error, and every
    paper table and figure has its section."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is in the test extra")
    browser, driver_bin = shutil.which("chromium"), shutil.which("chromedriver")
    if not (browser and driver_bin):
        pytest.skip("no chromium/chromedriver (Debian's chromium and chromium-driver; .ci/run installs them as root)")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--allow-file-access-from-files",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=driver_bin))
    try:
        driver.get((campaign["dir"] / "report" / "index.html").as_uri())
        images = driver.execute_script(
            "return Array.from(document.images, i => [i.getAttribute('src'), i.complete, i.naturalWidth]);"
        )
        sections = set(driver.execute_script("return Array.from(document.querySelectorAll('h2[id]'), h => h.id);"))
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    finally:
        driver.quit()
    figures = [a for a in ARTEFACTS if a.kind == "figure"]
    assert len(images) >= len(figures)
    assert [src for src, complete, width in images if not (complete and width > 0)] == []
    assert errors == []
    assert {a.key for a in ARTEFACTS} <= sections


def test_3d_particle_map_shows_the_middle_slab():
    import matplotlib.pyplot as plt

    from glassdist.report.figures import SLAB, particle_map

    rng = np.random.default_rng(0)
    L = 10.0
    positions, values = rng.uniform(-L, 2 * L, (3000, 3)), rng.uniform(size=3000)  # unwrapped
    fig, ax = plt.subplots()
    particle_map(ax, positions, values, L, "Θ")
    slab = np.abs(np.mod(positions[:, 2], L) - L / 2) < SLAB
    shown = ax.collections[0]
    assert 0 < slab.sum() < len(slab)
    np.testing.assert_allclose(shown.get_offsets(), np.mod(positions[slab, :2], L))
    np.testing.assert_allclose(shown.get_array(), values[slab])
    assert ax.get_title().startswith("Θ") and "slab" in ax.get_title()
    plt.close(fig)


def test_a_deleted_report_directory_is_made_again(campaign):
    """The ledger says done, the files are gone (DIR/report removed by hand): `report` makes them again."""
    out = campaign["dir"] / "report"
    shutil.rmtree(out)
    proc = glassdist("report", campaign["dir"], timeout=300)
    assert f"{len(ARTEFACTS)} of {len(ARTEFACTS)} tables and figures" in proc.stdout
    assert (out / "index.html").is_file() and (out / "gamma_trust.csv").is_file()
