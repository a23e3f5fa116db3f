"""`glassdist estimate`: a cached calibration on this machine drives the stage times; store sizes
are the arrays' bytes; `submit` sizes walltimes from it (how close the times come: benchmarks/estimate.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from glassdist.commands.estimate import cached, estimate, store_bytes
from glassdist.spec import apply_overrides, load

from .conftest import glassdist, init_tiny

# the tiny campaign with a small isoconfigurational ensemble: 4 runs of 20000 steps (about 0.4 s
# of CPU each here, so that the MD dominates a run as it does at paper scale)
PROPENSITY = [
    "quench.snapshot_replicas=0",
    "propensity.samples=4",
    "propensity.steps=20000",
    "propensity.outputs=6",
    "propensity.checkpoint_every=20000",
    "propensity.temperatures=[0.5]",
    "dask.workers=1",
]


@pytest.mark.slow
def test_calibration_is_cached_and_drives_the_md_estimates(tmp_path):
    """`estimate --calibrate` measures two quenches and two isoconfigurational runs of different
    lengths and caches them; a task's estimate is the straight line through the two CPU times
    at the campaign's steps (computed here from the cached file), the task counts are the
    campaign's, and the cache serves a campaign that differs only in counts and lengths, not
    another N. How close the estimate comes to a measured stage is a benchmark
    (benchmarks/estimate.py: this machine's cores are shared, a timed test would be noise)."""
    d = init_tiny(tmp_path / "c", "kam", *PROPENSITY)
    out = glassdist("estimate", d, "--calibrate", "--ranks", "1").stdout
    assert "| quench |" in out and "cached in" in out
    spec = load(d)
    calibration = json.loads((d / "estimate.json").read_text())
    rows = {r.stage: r for r in estimate(spec, cached(d, spec))}
    (a, b), quench_steps = calibration["steps"], spec.equilibration_steps + spec.cooling_steps
    assert a < b
    for stage, steps, tasks in (("quench", quench_steps, 8), ("propensity", spec.propensity.steps, 4)):
        t = calibration["parts"][stage]["cpu"]
        assert len(t) == 2 and all(x > 0 for x in t), (stage, t)
        line = max(t[0] + (t[1] - t[0]) / (b - a) * (steps - a), 0.0)
        assert rows[stage].task_seconds == pytest.approx(line, rel=1e-12), stage
        assert rows[stage].tasks == tasks
        assert rows[stage].core_hours == pytest.approx(tasks * line / 3600, rel=1e-12)
    text = (d / "campaign.toml").read_text()
    (d / "campaign.toml").write_text(
        apply_overrides(text, ["quench.replicas=80", "quench.split=[40,20,20]", "propensity.steps=50000"])
    )
    assert cached(d, load(d)) == calibration
    (d / "campaign.toml").write_text(apply_overrides(text, ["system.n_particles=300", "system.counts=[195,105]"]))
    assert cached(d, load(d)) is None
    assert "--calibrate" in glassdist("estimate", d).stdout


def test_store_size_is_the_bytes_written(quenched):
    """The chunk files the quench wrote hold exactly the bytes the estimate predicts (the store is
    uncompressed; every chunk of a done task is written)."""
    d = quenched["kam"]
    written = sum(f.stat().st_size for f in (d / "store.zarr" / "quench").rglob("c/**/*") if f.is_file())
    assert written == store_bytes(load(d))["quench"]


def test_submit_sizes_walltime_from_the_estimate(tmp_path):
    """With a cached calibration the quench job asks for 2 x its estimate plus the signal margin
    (at least 15 minutes, at most the profile's walltime); without one, the profile's walltime."""
    d = init_tiny(tmp_path / "c", "kam", "quench.replicas=4000", "quench.split=[3000,500,500]")
    dry = glassdist("submit", d, "--profile", "generic-cpu", "--dry-run", "--stages", "quench").stdout
    assert "#SBATCH --time=1-00:00:00" in dry  # the profile's
    spec = load(d)
    from glassdist.commands.estimate import calibration_key, calibration_steps, machine

    # a calibration as `estimate --calibrate` writes it: 0.5 s + 1 ms per step per quench
    steps = list(calibration_steps(spec))
    times = [0.5 + 1e-3 * s for s in steps]
    (d / "estimate.json").write_text(
        json.dumps(
            {
                "key": calibration_key(spec),
                "machine": machine(),
                "steps": steps,
                "parts": {"quench": {"seconds": times, "cpu": times, "peak_mb": 100.0}},
            }
        )
    )
    per_task = estimate(spec, cached(d, spec))[0].task_seconds
    ranks = 8 * 128  # generic-cpu: quench on at most 8 nodes x 128 cores
    seconds = 2 * np.ceil(4000 / ranks) * per_task + 300  # signal_seconds = 300
    minutes = int(np.ceil(max(seconds, 900) / 60))
    dry = glassdist("submit", d, "--profile", "generic-cpu", "--dry-run", "--stages", "quench").stdout
    assert f"#SBATCH --time=0-{minutes // 60:02d}:{minutes % 60:02d}:00" in dry, (minutes, dry[:600])
