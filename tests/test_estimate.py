"""`glassdist estimate`: a calibration on this machine predicts the measured stage times; store
sizes are upper bounds; `submit` sizes walltimes from it."""

from __future__ import annotations

import json
import resource

import numpy as np
import pytest

from glassdist.estimate import cached, estimate, store_bytes
from glassdist.spec import apply_overrides, load
from glassdist.stages import STAGES
from glassdist.store import Store

from .conftest import glassdist, init_tiny

# the tiny campaign with a small isoconfigurational ensemble: 4 runs of 20000 steps (about 0.4 s
# of CPU each here, so that the MD dominates a run as it does at paper scale)
PROPENSITY = ["quench.snapshot_replicas=0", "propensity.samples=4", "propensity.steps=20000",
              "propensity.outputs=6", "propensity.checkpoint_every=20000", "propensity.temperatures=[0.5]",
              "dask.workers=1"]


def _cpu_seconds(*args) -> float:
    """CPU seconds of a `glassdist` command and every process it started."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    glassdist(*args)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


@pytest.mark.slow
def test_estimate_predicts_the_md_stages_within_30_percent(tmp_path):
    """Calibrate, then run quench and propensity serially and compare the cost of one task.

    The estimate is a dedicated core's time (the calibration's CPU time), so it is compared
    within 30 % with the CPU time of the stage command minus that of a rerun with nothing to do
    (start-up, imports, checks), per task: this machine's 2 cores are shared, and wall times
    swing with the load (calibration and stage differed by up to 3.3x in trials). The ledger's
    wall seconds per task can only be longer (within noise). Only the MD stages are compared:
    they are the campaign's cost and their tasks are uniform; the others are fractions of a
    second at this size (dominated by process and Dask start-up)."""
    d = init_tiny(tmp_path / "c", "kam", *PROPENSITY)
    out = glassdist("estimate", d, "--calibrate", "--ranks", "1").stdout
    assert "| quench |" in out and "cached in" in out
    spec = load(d)
    rows = {r.stage: r for r in estimate(spec, cached(d, spec))}
    # the propensity stage's Dask reduction is timed neither by the estimate nor by the ledger:
    # mark it done up front so that the command's CPU time is the runs'
    cpu = {}
    for stage in ("quench", "propensity"):
        if stage == "propensity":
            STAGES[stage].prepare(d, spec)
            Store(d).ledger("propensity_reduce").mark_done(0, 1, 0.0)
        cpu[stage] = (_cpu_seconds(stage, d) - _cpu_seconds(stage, d)) / rows[stage].tasks
    store = Store(d, mode="r")
    for stage in ("quench", "propensity"):
        predicted, wall = rows[stage].task_seconds, float(np.median(store.ledger(stage).seconds[:]))
        assert abs(predicted - cpu[stage]) <= 0.3 * cpu[stage], (stage, predicted, cpu[stage])
        assert wall > 0.7 * predicted, (stage, predicted, wall)
    # the cache serves a campaign that differs only in counts and lengths, not another N
    calibration = json.loads((d / "estimate.json").read_text())
    text = (d / "campaign.toml").read_text()
    (d / "campaign.toml").write_text(apply_overrides(text, ["quench.replicas=80", "quench.split=[40,20,20]",
                                                            "propensity.steps=50000"]))
    assert cached(d, load(d)) == calibration
    (d / "campaign.toml").write_text(apply_overrides(text, ["system.n_particles=300", "system.counts=[195,105]"]))
    assert cached(d, load(d)) is None
    assert "--calibrate" in glassdist("estimate", d).stdout


def test_store_size_is_an_upper_bound(quenched):
    """The chunk bytes the quench wrote are at most the estimate (uncompressed), and not far below
    (positions barely compress)."""
    d = quenched["kam"]
    written = sum(f.stat().st_size for f in (d / "store.zarr" / "quench").rglob("c/**/*") if f.is_file())
    bound = store_bytes(load(d))["quench"]
    assert 0.5 * bound < written <= bound, (written, bound)


def test_submit_sizes_walltime_from_the_estimate(tmp_path):
    """With a cached calibration the quench job asks for 2 x its estimate plus the signal margin
    (at least 15 minutes, at most the profile's walltime); without one, the profile's walltime."""
    d = init_tiny(tmp_path / "c", "kam", "quench.replicas=4000", "quench.split=[3000,500,500]")
    dry = glassdist("submit", d, "--profile", "generic-cpu", "--dry-run", "--stages", "quench").stdout
    assert "#SBATCH --time=1-00:00:00" in dry  # the profile's
    spec = load(d)
    from glassdist.estimate import calibration_key, calibration_steps, machine

    # a calibration as `estimate --calibrate` writes it: 0.5 s + 1 ms per step per quench
    steps = list(calibration_steps(spec))
    times = [0.5 + 1e-3 * s for s in steps]
    (d / "estimate.json").write_text(json.dumps({
        "key": calibration_key(spec), "machine": machine(), "steps": steps,
        "parts": {"quench": {"seconds": times, "cpu": times, "peak_mb": 100.0}}}))
    per_task = estimate(spec, cached(d, spec))[0].task_seconds
    ranks = 8 * 128  # generic-cpu: quench on at most 8 nodes x 128 cores
    seconds = 2 * np.ceil(4000 / ranks) * per_task + 300  # signal_seconds = 300
    minutes = int(np.ceil(max(seconds, 900) / 60))
    dry = glassdist("submit", d, "--profile", "generic-cpu", "--dry-run", "--stages", "quench").stdout
    assert f"#SBATCH --time=0-{minutes // 60:02d}:{minutes % 60:02d}:00" in dry, (minutes, dry[:600])
