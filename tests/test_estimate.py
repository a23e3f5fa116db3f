"""`glassdist estimate`: a calibration on this machine predicts the measured stage times; store
sizes are upper bounds; `submit` sizes walltimes from it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from glassdist.estimate import cached, estimate, store_bytes
from glassdist.spec import apply_overrides, load
from glassdist.store import Store

from .conftest import glassdist, init_tiny

# the tiny campaign with a small isoconfigurational ensemble: 3 runs of 5000 steps (about 0.5 s
# each here, so that the MD dominates a run as it does at paper scale)
PROPENSITY = ["quench.snapshot_replicas=0", "propensity.samples=3", "propensity.steps=5000",
              "propensity.outputs=6", "propensity.checkpoint_every=5000", "propensity.temperatures=[0.5]",
              "dask.workers=1"]


@pytest.mark.slow
def test_estimate_predicts_the_md_stages_within_30_percent(tmp_path):
    """Calibrate, run quench and propensity serially, compare seconds per task: the estimate's
    against the median of the ledger's (the first task of a process also pays its imports).
    Only the MD stages are compared: they are the campaign's cost and their tasks are uniform;
    the others are seconds at this size (dominated by process and Dask start-up, which the
    ledger does not time) and training time depends on the thread count the run gets."""
    d = init_tiny(tmp_path / "c", "kam", *PROPENSITY)
    out = glassdist("estimate", d, "--calibrate", "--ranks", "1").stdout
    assert "| quench |" in out and "cached in" in out
    glassdist("quench", d)
    glassdist("propensity", d)
    spec, store = load(d), Store(d, mode="r")
    rows = {r.stage: r for r in estimate(spec, cached(d, spec))}
    for stage in ("quench", "propensity"):
        measured = float(np.median(store.ledger(stage).seconds[:]))
        predicted = rows[stage].task_seconds
        assert abs(predicted - measured) <= 0.3 * measured, (stage, predicted, measured)
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
    (d / "estimate.json").write_text(json.dumps({
        "key": calibration_key(spec), "machine": machine(), "steps": steps,
        "parts": {"quench": {"seconds": [0.5 + 1e-3 * s for s in steps], "peak_mb": 100.0}}}))
    per_task = estimate(spec, cached(d, spec))[0].task_seconds
    ranks = 8 * 128  # generic-cpu: quench on at most 8 nodes x 128 cores
    seconds = 2 * np.ceil(4000 / ranks) * per_task + 300  # signal_seconds = 300
    minutes = int(np.ceil(max(seconds, 900) / 60))
    dry = glassdist("submit", d, "--profile", "generic-cpu", "--dry-run", "--stages", "quench").stdout
    assert f"#SBATCH --time=0-{minutes // 60:02d}:{minutes % 60:02d}:00" in dry, (minutes, dry[:600])
