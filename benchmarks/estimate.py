"""How well `glassdist estimate --calibrate` predicts the MD stages, as ratios measured in one run.

A tiny KAM campaign (N = 200, 8 quenches, 4 isoconfigurational runs of 20000 steps) is calibrated,
then its quench and propensity stages run serially. Per task it prints the estimate (the
calibration's CPU seconds, a dedicated core's time) against the CPU seconds the stage command
spent per task (the command's CPU time minus that of a rerun with nothing to do: start-up,
imports, checks) and against the ledger's median wall seconds per task. Goal: predicted /
measured CPU within 0.7–1.3 on a quiet machine; wall / predicted at least 0.7 (wall time only
grows with load).

    python benchmarks/estimate.py [--dir /tmp/estimate-bench] [--n 200] [--samples 4] [--steps 20000]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from glassdist.commands.estimate import cached, estimate
from glassdist.spec import load
from glassdist.pipeline import STAGES
from glassdist.store import Store

BIN = Path(sys.executable).parent


def glassdist(*args) -> str:
    return subprocess.run([str(BIN / "glassdist"), *map(str, args)], check=True, capture_output=True, text=True).stdout


def cpu_seconds(*args) -> float:
    """CPU seconds of a `glassdist` command and every process it started."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    glassdist(*args)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, default=Path("/tmp/estimate-bench"))
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--steps", type=int, default=20000)
    args = parser.parse_args()
    shutil.rmtree(args.dir, ignore_errors=True)
    a = int(round(0.65 * args.n))
    sets = [
        f"system.n_particles={args.n}",
        f"system.counts=[{a},{args.n - a}]",
        "quench.replicas=8",
        "quench.split=[4,2,2]",
        "quench.cooling_rate=0.4",
        "quench.equilibration_time=2.0",
        "quench.snapshot_replicas=0",
        "quench.hold_liquid=0.0",
        "propensity.main_samples=0",
        f"propensity.samples={args.samples}",
        f"propensity.steps={args.steps}",
        "propensity.outputs=6",
        f"propensity.checkpoint_every={args.steps}",
        "propensity.temperatures=[0.5]",
        "dask.workers=1",
    ]
    d = args.dir / "c"
    glassdist("init", d, "--preset", "demo-kam", *[x for s in sets for x in ("--set", s)])
    glassdist("estimate", d, "--calibrate", "--ranks", "1")
    spec = load(d)
    rows = {r.stage: r for r in estimate(spec, cached(d, spec))}
    print("| stage | predicted s/task | CPU s/task | predicted/CPU | wall s/task | wall/predicted |")
    print("|---|---|---|---|---|---|")
    for stage in ("quench", "propensity"):
        if stage == "propensity":
            # its Dask reduction is timed by neither the estimate nor the ledger: done up front
            STAGES[stage].prepare(d, spec)
            Store(d).ledger("propensity_reduce").mark_done(0, 1, 0.0)
        cpu = (cpu_seconds(stage, d) - cpu_seconds(stage, d)) / rows[stage].tasks
        predicted = rows[stage].task_seconds
        wall = float(np.median(Store(d, mode="r").ledger(stage).seconds[:]))
        print(
            f"| {stage} | {predicted:.3f} | {cpu:.3f} | {predicted / cpu:.2f} | {wall:.3f} | {wall / predicted:.2f} |"
        )


if __name__ == "__main__":
    main()
