"""Stage `dataset`: the CNN input, M(rho) of every done quench configuration (Supp. I A),
in parallel over replicas with Dask (the farm's Dask back end on hpc.dask_cluster).

One task = one replica: a worker reads its two configurations, writes their images to its
own chunk of ``dataset/images`` (R, 2, grid, ..., grid) float32 [class axis = label:
0 liquid, 1 glass], and the client writes the done-mark. The images are the unnormalised
rho of eq. S2: the CNN's input scaling (dataset.normalise) is part of the model.
``dataset/split`` (R,) holds the split code of each replica (glassdist.constants.SPLITS);
ledger ``dataset``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..constants import SPLITS
from ..spec import Spec
from ..store import Store
from ..structure.grid import gridize
from .common import quenched_todo, run_replica_stage

NAME = "dataset"


def replica_images(positions: np.ndarray, types: np.ndarray, spec: Spec) -> np.ndarray:
    """Positions (2, N, dim) -> density images rho (2, grid, ..., grid) float32."""
    sigma_ii = np.diag(spec.sigma)
    return np.stack(
        [gridize(p, types, spec.box_length, spec.dataset.grid, sigma_ii, spec.dataset.kernel_cutoff) for p in positions]
    ).astype(np.float32)


def image_block(campaign_dir: str, spec: Spec, block, comm=None) -> None:
    """Dask task: compute and store the images of the replicas of a block."""
    store = Store(campaign_dir)
    types = store.types()
    for replica in block.tasks:
        positions = store.root["quench/positions"][replica]
        store.root[f"{NAME}/images"][replica] = replica_images(positions, types, spec)


def prepare(campaign_dir: Path, spec: Spec) -> list[int]:
    """Check the spec against stored results, create the arrays; return replicas to do
    (quench done, dataset not done)."""
    store = Store(campaign_dir)
    store.require_needs(NAME, spec=spec)
    store.check_stage(NAME, spec)
    store.create_arrays(NAME, spec)[f"{NAME}/split"][:] = spec.split_of()
    store.root[NAME].attrs.update({"classes": list(spec.class_names), "splits": list(SPLITS)})
    return quenched_todo(store, NAME, spec.quench.replicas)


def run(campaign_dir, args=None) -> int:
    return run_replica_stage(NAME, campaign_dir, prepare, image_block)
