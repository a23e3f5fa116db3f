"""Wall time of `glassdist demo` (both demo presets, every stage, the reports) in a fresh
temporary directory, then of a second call that must find everything done; per system, the
wall time of each stage from its ledger (first task start to last task end).

    python benchmarks/demo.py [--np 2] [--keep DIR]

Target: the first call within 10 minutes on a 2-core machine, the second in seconds. The CPU
seconds of all processes are printed too: the wall time depends on what else the machine runs.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from glassdist.pipeline import PIPELINE
from glassdist.store import Store

GLASSDIST = Path(sys.executable).parent / "glassdist"


def timed_demo(directory: Path, np_: int) -> tuple[float, float, str]:
    """(wall seconds, CPU seconds of every process it started, stdout) of one `glassdist demo`."""
    cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run([str(GLASSDIST), "demo", str(directory), "--np", str(np_)], capture_output=True, text=True)
    seconds = time.perf_counter() - start
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode:
        sys.exit(f"glassdist demo failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return seconds, (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime), proc.stdout


def stage_walls(campaign: Path) -> dict[str, float]:
    """Seconds from the first task's start to the last task's end, per ledger."""
    out = {}
    for name, ledger in Store(campaign, mode="r").ledgers().items():
        end, took = ledger.finished[:], ledger.seconds[:]
        if np.isfinite(end).any():
            out[name] = float(np.nanmax(end) - np.nanmin(end - took))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--np", type=int, default=2, help="MPI ranks for the MPI stages")
    p.add_argument("--keep", help="run in this (new) directory and keep it")
    args = p.parse_args()
    base = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="glassdist-demo-"))
    try:
        first, cpu, _ = timed_demo(base, args.np)
        second, _, log = timed_demo(base, args.np)
        stages = [line for line in log.splitlines() if line.startswith("== ")]
        skipped = [line for line in stages if line.endswith("== done")]
        print(
            f"glassdist demo, --np {args.np}: first call {first:.0f} s wall (target <= 600 s: "
            f"{'ok' if first <= 600 else 'MISSED'}), {cpu:.0f} CPU s; load average now "
            f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (other work slows the wall time)"
        )
        print(
            f"second call {second:.1f} s ({first / second:.0f}x faster; {len(skipped)} of {len(stages)} "
            f"stage runs skipped as done)"
        )
        for system in ("kam", "abm"):
            walls = stage_walls(base / system)
            order = [n for n in PIPELINE if n in walls] + sorted(set(walls) - set(PIPELINE))
            print(f"  {system}: " + ", ".join(f"{n} {walls[n]:.0f} s" for n in order))
            if args.keep:
                print(f"  {system}: report {base / system / 'report' / 'index.html'}")
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
