"""Stage `indicators`: the campaign's structural indicators (glassdist.structure.indicators: Voronoi volume
Upsilon, Sec. III C; Tong-Tanaka Theta, Sec. III D; plugins) per particle and partial g(r)
(supp. II D) of every done quench configuration, in parallel with Dask (hpc.dask_cluster:
local workers, a scheduler address or SLURM worker jobs).

One task = one replica (its liquid and glass configurations). A Dask worker reads the
replica's positions from the store and writes only that replica's chunks; the client writes
the done-mark after the worker returned. Writes ``indicators/<name>`` (R, 2, N) for every
indicator of ``indicators.compute`` (names in the group's attribute ``computed``),
``indicators/rdf`` (R, 2, S, S, bins) with the bin centres ``indicators/rdf_r`` (bins,);
ledger ``indicators``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..structure import indicators as registry
from ..constants import bin_centres
from ..spec import Spec
from ..store import Store
from ..structure.rdf import partial_rdf
from ..structure.voronoi import voronoi
from .common import quenched_todo, run_replica_stage

NAME = "indicators"


def configuration_indicators(positions: np.ndarray, types: np.ndarray, spec: Spec):
    """One configuration (N, dim) -> {name: (N,)} of the campaign's indicators, and g (S, S, bins)."""
    cells = voronoi(positions, spec.box_length)
    values = {ind.name: ind.compute(positions, types, spec, cells) for ind in registry.structural(spec)}
    _, g = partial_rdf(
        positions, types, spec.box_length, spec.indicators.rdf_rmax, spec.indicators.rdf_bins, n_species=spec.n_species
    )
    return values, g


def indicator_block(campaign_dir: str, spec: Spec, block, comm=None) -> None:
    """Dask task: compute and store the indicators of the replicas of a block."""
    import freud
    from distributed import get_worker

    freud.parallel.set_num_threads(get_worker().state.nthreads)
    store = Store(campaign_dir)
    types, group = store.types(), store.root[NAME]
    for replica in block.tasks:
        positions = store.root["quench/positions"][replica]
        out = [configuration_indicators(positions[cls], types, spec) for cls in range(2)]
        for name in out[0][0]:
            group[name][replica] = np.stack([values[name] for values, _ in out])
        group["rdf"][replica] = np.stack([g for _, g in out])


def prepare(campaign_dir: Path, spec: Spec) -> list[int]:
    """Check the spec against stored results, create the arrays; return replicas to do
    (quench done, indicators not done)."""
    store = Store(campaign_dir)
    store.require_needs(NAME, spec=spec)
    store.check_stage(NAME, spec)
    made = store.create_arrays(NAME, spec)
    made[f"{NAME}/rdf_r"][:] = bin_centres(spec.indicators.rdf_rmax, spec.indicators.rdf_bins)
    store.root[NAME].attrs["computed"] = [ind.name for ind in registry.structural(spec)]
    return quenched_todo(store, NAME, spec.quench.replicas)


def run(campaign_dir, args=None) -> int:
    return run_replica_stage(NAME, campaign_dir, prepare, indicator_block)
