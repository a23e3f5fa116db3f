"""Stage `indicators`: Voronoi volume Upsilon (Sec. III C), Tong-Tanaka Theta (Sec. III D) per
particle and partial g(r) (supp. II D) of every done quench configuration, in parallel with
Dask (hpc.dask_cluster: local workers, a scheduler address or SLURM worker jobs).

One task = one replica (its liquid and glass configurations). A Dask worker reads the
replica's positions from the store and writes only that replica's chunks; the client writes
the done-mark after the worker returned (hpc.dask_farm). Writes ``indicators/voronoi`` and
``indicators/ttop`` (R, 2, N), ``indicators/rdf`` (R, 2, S, S, bins) with the bin centres
``indicators/rdf_r`` (bins,); ledger ``indicators``.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np


from ..spec import Spec, load
from ..store import Store
from ..structure.rdf import partial_rdf
from ..structure.tongtanaka import require_supported, tong_tanaka
from ..structure.voronoi import voronoi
from .common import quenched_todo, run_replica_stage

NAME = "indicators"
SECTIONS = ("system", "md", "quench", "indicators")
MPI = False


def configuration_indicators(positions: np.ndarray, types: np.ndarray, spec: Spec):
    """One configuration (N, dim) -> Upsilon (N,), Theta (N,), r (bins,), g (S, S, bins)."""
    L = spec.box_length
    cells = voronoi(positions, L)
    theta = tong_tanaka(positions, types, L, spec.contact_sigma, cells=cells)
    r, g = partial_rdf(positions, types, L, spec.indicators.rdf_rmax, spec.indicators.rdf_bins,
                       n_species=spec.n_species)
    return cells.volumes, theta, r, g


def replica_task(campaign_dir: str, replica: int) -> float:
    """Dask task: compute and store the indicators of one replica; returns its seconds."""
    import freud
    from distributed import get_worker

    start = time.perf_counter()
    freud.parallel.set_num_threads(get_worker().state.nthreads)
    store = Store(campaign_dir)
    spec, types = store.spec(), store.types()
    group = store.root["indicators"]
    positions = store.root["quench/positions"][replica]
    out = [configuration_indicators(positions[cls], types, spec) for cls in range(2)]
    group["voronoi"][replica] = np.stack([o[0] for o in out])
    group["ttop"][replica] = np.stack([o[1] for o in out])
    group["rdf"][replica] = np.stack([o[3] for o in out])
    return time.perf_counter() - start


def prepare(campaign_dir: Path, spec: Spec) -> list[int]:
    """Check the spec against stored results, create the arrays; return replicas to do
    (quench done, indicators not done)."""
    require_supported(spec.dim)
    store = Store(campaign_dir)
    store.check_stage(NAME, spec, SECTIONS)
    R, N, S, bins = spec.quench.replicas, spec.system.n_particles, spec.n_species, spec.indicators.rdf_bins
    for name in ("voronoi", "ttop"):
        store.require_array(f"{NAME}/{name}", (R, 2, N), (1, 2, N), "float64")
    store.require_array(f"{NAME}/rdf", (R, 2, S, S, bins), (1, 2, S, S, bins), "float64")
    edges = np.linspace(0.0, spec.indicators.rdf_rmax, bins + 1)
    store.require_array(f"{NAME}/rdf_r", (bins,), (bins,), "float64")[:] = 0.5 * (edges[1:] + edges[:-1])
    return quenched_todo(store, NAME, R)


def run(campaign_dir, args=None) -> int:
    spec = load(campaign_dir)
    return run_replica_stage(campaign_dir, spec, NAME, prepare(Path(campaign_dir), spec), replica_task)
