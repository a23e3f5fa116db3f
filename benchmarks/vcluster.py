"""Quench-farm throughput on 2 virtual nodes versus 1 (same total ranks), and the latency
from `glassdist submit` to the first task's start, on the virtual cluster of .ci/vcluster.sh.

Both layouts run 2 MPI ranks on the machine's cores: "2 nodes" one rank on each of gdv-n1 and
gdv-n2 (the farm's messages cross the bridge: each node has its own network, IPC and PID
namespaces), "1 node" two ranks on gdv-n1 (shared memory). The ratio of their throughputs is
the cost of going across nodes. From the ledger of each run: a task started at
``finished - seconds``; throughput = tasks / (last end - first start); latency = first start -
the moment before `glassdist submit` was called (sbatch, scheduling, job start, imports,
the stage's preparation).

    sudo bash .ci/vcluster.sh up
    sudo .venv/bin/python benchmarks/vcluster.py [--replicas 16] [--repeats 3] [--out DIR]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import zarr

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.conftest import init_tiny  # noqa: E402  (the tests' tiny campaign)

BIN = Path(sys.executable).parent
PROFILE = ROOT / "tests" / "vcluster.toml"
LAYOUTS = {"2 nodes x 1 rank": (2, 1), "1 node x 2 ranks": (1, 2)}
ENV = {**os.environ, "SLURM_CONF": "/run/gd-vcluster/slurm.conf", "PATH": f"{BIN}:{os.environ['PATH']}"}


def profile(directory: Path, nodes: int, per_node: int) -> Path:
    """tests/vcluster.toml with the quench stage on ``nodes`` x ``per_node`` ranks."""
    text = PROFILE.read_text()
    text = re.sub(r"(\[stages\.quench\]\n(?:.*\n)*?max_nodes = )\d+", rf"\g<1>{nodes}", text, count=1)
    text = re.sub(r"(\[stages\.quench\]\n(?:.*\n)*?tasks_per_node = )\d+", rf"\g<1>{per_node}", text, count=1)
    path = directory / f"profile-{nodes}x{per_node}.toml"
    path.write_text(text)
    return path


def one_run(directory: Path, prof: Path, replicas: int) -> tuple[float, float]:
    """(throughput in tasks/s, submit-to-first-task latency in s) of one quench job."""
    campaign = init_tiny(
        directory,
        "kam",
        f"quench.replicas={replicas}",
        f"quench.split=[{replicas // 2},{replicas // 4},{replicas - replicas // 2 - replicas // 4}]",
        "quench.cooling_rate=0.1",
    )
    before = time.time()
    subprocess.run(
        [BIN / "glassdist", "submit", campaign, "--profile", prof, "--stages", "quench"],
        check=True,
        capture_output=True,
        env=ENV,
    )
    ledger = campaign / "store.zarr" / "ledger" / "quench"
    while True:
        if ledger.exists():
            state = zarr.open_group(ledger, mode="r")["state"][:]
            if (state == 1).all():
                break
        time.sleep(0.5)
    group = zarr.open_group(ledger, mode="r")
    end, seconds = group["finished"][:], group["seconds"][:]
    start = end - seconds
    return replicas / (end.max() - start.min()), start.min() - before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--replicas", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    work = args.out or Path(tempfile.mkdtemp(prefix="gd-vcluster-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    results = {}
    for name, (nodes, per_node) in LAYOUTS.items():
        prof = profile(work, nodes, per_node)
        runs = [one_run(work / f"{nodes}x{per_node}-{i}", prof, args.replicas) for i in range(args.repeats)]
        results[name] = np.array(runs)
        rate, latency = results[name].T
        print(
            f"{name}: {rate.mean():.3f} +- {rate.std():.3f} tasks/s, submit to first task "
            f"{latency.mean():.2f} +- {latency.std():.2f} s ({args.repeats} runs of {args.replicas} replicas)",
            flush=True,
        )
    two, one = (results[n][:, 0].mean() for n in LAYOUTS)
    print(f"throughput ratio 2 nodes / 1 node: {two / one:.3f}")


if __name__ == "__main__":
    main()
