"""Behaviour check for refactors: run a reduced demo-kam campaign end to end on one seed and save
(or compare) the arrays every stage stores.

    python benchmarks/equivalence.py save OUT.npz [WORKDIR]      # before a change
    python benchmarks/equivalence.py compare OUT.npz [WORKDIR]   # after it: bit for bit

Compared: quench/positions, dataset/images, gradcam/gamma, indicators/*, propensity/Delta,
inherent/E0 and the analysis tables (analyze attribute ``tables``). One MPI rank per stage and
the same seed, so the numbers are deterministic; exit 1 when anything differs.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import zarr

BIN = Path(sys.executable).parent
SETS = [
    "system.n_particles=200",
    "system.counts=[130,70]",
    "quench.replicas=12",
    "quench.split=[6,2,4]",
    "quench.cooling_rate=0.4",
    "quench.equilibration_time=2.0",
    "quench.thermo_points=20",
    "quench.snapshot_replicas=2",
    "dataset.grid=24",
    "train.epochs=3",
    "propensity.samples=3",
    "propensity.main_samples=0",
    "propensity.steps=400",
    "propensity.outputs=8",
    "propensity.checkpoint_every=200",
    "analyze.deltas=[0.01,0.05]",
    "analyze.xi_grid=[0.0,1.0,2.0]",
    "analyze.xi={Delta = 2.0, alpha = 2.0, violin = 2.0}",
    "analyze.correlation_rmax=4.0",
    "analyze.correlation_bins=10",
    "dask.workers=1",
]
ARRAYS = [
    "quench/positions",
    "quench/thermo_pe",
    "inherent/E0",
    "dataset/images",
    "gradcam/gamma",
    "gradcam/map",
    "indicators/voronoi",
    "indicators/ttop",
    "indicators/rdf",
    "propensity/Delta",
    "analyze/pairs/pearson",
    "analyze/dynamics/scan",
]


def run_campaign(workdir: Path) -> Path:
    cdir = workdir / "equivalence-kam"
    shutil.rmtree(cdir, ignore_errors=True)
    cmd = [str(BIN / "glassdist"), "init", str(cdir), "--preset", "demo-kam"]
    subprocess.run(cmd + [a for s in SETS for a in ("--set", s)], check=True)
    subprocess.run([str(BIN / "glassdist"), "run", str(cdir), "--np", "1"], check=True)
    return cdir


def collect(cdir: Path) -> dict[str, np.ndarray]:
    root = zarr.open_group(cdir / "store.zarr", mode="r")
    out = {name: root[name][:] for name in ARRAYS}
    out["analyze/tables"] = np.frombuffer(
        json.dumps(root["analyze"].attrs["tables"], sort_keys=True).encode(), dtype=np.uint8
    )
    return out


def main() -> int:
    mode, path = sys.argv[1], Path(sys.argv[2])
    workdir = Path(sys.argv[3]) if len(sys.argv) > 3 else Path("/tmp")
    arrays = collect(run_campaign(workdir))
    if mode == "save":
        np.savez(path, **{k.replace("/", "__"): v for k, v in arrays.items()})
        print(f"saved {len(arrays)} arrays to {path}")
        return 0
    ref = {k.replace("__", "/"): v for k, v in np.load(path).items()}
    bad = [
        k for k in ref if k not in arrays or not np.array_equal(ref[k], arrays[k], equal_nan=ref[k].dtype.kind == "f")
    ]
    for k in ref:
        print(f"{k:28s} {'DIFFERS' if k in bad else 'identical'} {ref[k].shape}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
