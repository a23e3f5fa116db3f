"""Stage `dataset`: the CNN input, M(rho) of every done quench configuration (Supp. I A),
in parallel over replicas with Dask (hpc.dask_farm on hpc.dask_cluster).

One task = one replica: a worker reads its two configurations, writes their images to its
own chunk of ``dataset/images`` (R, 2, grid, ..., grid) float32 [class axis = label:
0 liquid, 1 glass], and the client writes the done-mark. The images are the unnormalised
rho of eq. S2: the CNN's input scaling (dataset.normalise) is part of the model.
``dataset/split`` (R,) holds the split of each replica (0 train, 1 val, 2 test); ledger
``dataset``.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np


from ..spec import Spec, load
from ..store import CLASSES, Store
from ..structure.grid import gridize
from .common import quenched_todo, run_replica_stage

NAME = "dataset"
SECTIONS = ("system", "md", "quench", "dataset")
MPI = False


def replica_images(positions: np.ndarray, types: np.ndarray, spec: Spec) -> np.ndarray:
    """Positions (2, N, dim) -> density images rho (2, grid, ..., grid) float32."""
    sigma_ii = np.diag(spec.sigma)
    return np.stack([gridize(p, types, spec.box_length, spec.dataset.grid, sigma_ii, spec.dataset.kernel_cutoff)
                     for p in positions]).astype(np.float32)


def replica_task(campaign_dir: str, replica: int) -> float:
    """Dask task: compute and store the images of one replica; returns its seconds."""
    start = time.perf_counter()
    store = Store(campaign_dir)
    positions = store.root["quench/positions"][replica]
    store.root[f"{NAME}/images"][replica] = replica_images(positions, store.types(), store.spec())
    return time.perf_counter() - start


def prepare(campaign_dir: Path, spec: Spec) -> list[int]:
    """Check the spec against stored results, create the arrays; return replicas to do
    (quench done, dataset not done)."""
    store = Store(campaign_dir)
    store.check_stage(NAME, spec, SECTIONS)
    R, image = spec.quench.replicas, (spec.dataset.grid,) * spec.dim
    store.require_array(f"{NAME}/images", (R, 2, *image), (1, 2, *image), "float32")
    store.require_array(f"{NAME}/split", (R,), (R,), "int8")[:] = spec.split_of()
    store.root[NAME].attrs.update({"classes": list(CLASSES), "splits": list(spec.split_names)})
    return quenched_todo(store, NAME, R)


def run(campaign_dir, args=None) -> int:
    spec = load(campaign_dir)
    return run_replica_stage(campaign_dir, spec, NAME, prepare(Path(campaign_dir), spec), replica_task)
