"""Stage `propensity`: isoconfigurational ensembles and the dynamic propensity (Sec. III E, IV B).

One task = one run (configuration c, temperature t, sample s) of the MPI farm; it writes only
its own chunk ``propensity/traj[c, t, s]`` (n_out, N, dim) of unwrapped positions. Then rank 0
reduces every (c, t) whose runs are all done, with Dask over (sample, time) chunks:
``propensity/Delta`` (C, nT, n_out, N) (the mean over the first ``propensity.main_samples`` runs,
all when 0), ``propensity/delta`` (C, nT, n_out) and, when ``propensity.samples >= 3
main_samples``, ``propensity/Delta_ensembles`` (C, nT, 4, n_out, N) for the Table IV
ensembles eMA, eMB, eMC, eS (names in its ``ensembles`` attribute; paper: e30A/B/C, e100). ``propensity/steps`` and
``propensity/times`` (n_out,) give the output times. The reductions have their own ledger,
``propensity_reduce`` (one task per (c, t)).

Each run's velocities derive from the campaign seed and its task index only (not the
attempt), so a retried or resumed run continues the same trajectory from its checkpoint in
``DIR/lammps/propensity/cC-TT-sSSSS/``; that directory keeps the run's LAMMPS input
(``run.in`` + ``start.data``) after the run is stored.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hpc import signals
from hpc.dask_cluster import dask_client
from hpc.farm import run_farm, task_rng

from ..dynamics.crd import cage_relative_displacement, propensity, sub_ensembles, voronoi_cage
from ..md.checkpoint import clear_checkpoint
from ..md.engine import get_engine
from ..md.isoconf import draw_velocities, output_steps
from ..spec import Spec, load
from ..store import Store
from . import STAGES, propensity_shape as shape
from .common import exit_code, farm, rank_of, start_mpi_stage

NAME = "propensity"
REDUCE = STAGES[NAME].extra_ledgers[0]


def glass_replicas(spec: Spec) -> np.ndarray:
    """Replica ids (C,) of the propensity configurations (indices within the test split; none when the
    stage is skipped)."""
    return spec.replicas_of("test")[spec.propensity.configurations][: shape(spec)[0]]


def prepare(campaign_dir: Path, spec: Spec) -> list[int]:
    """Rank 0: check the spec, create the arrays and ledgers; return the runs to do."""
    get_engine(spec).check(spec)
    store = Store.create(campaign_dir, spec)
    store.require_needs(NAME)
    store.check_stage(NAME, spec)
    store.configurations(glass_replicas(spec))  # refuses when a needed quench is not done
    C, nT, S = shape(spec)
    N, dim = spec.system.n_particles, spec.dim
    steps = output_steps(spec.propensity.steps, spec.propensity.outputs)
    n_out = len(steps)
    store.require_array("propensity/traj", (C, nT, S, n_out, N, dim), (1, 1, 1, n_out, N, dim), "float64")
    store.require_array("propensity/steps", (n_out,), (n_out,), "int64")[:] = steps
    store.require_array("propensity/times", (n_out,), (n_out,), "float64")[:] = steps * spec.md.dt
    store.require_array("propensity/Delta", (C, nT, n_out, N), (1, 1, n_out, N), "float64")
    store.require_array("propensity/delta", (C, nT, n_out), (1, 1, n_out), "float64")
    ensembles = sub_ensembles(S, spec.propensity.main_samples)
    if ensembles:
        arr = store.require_array("propensity/Delta_ensembles", (C, nT, len(ensembles), n_out, N),
                                  (1, 1, 1, n_out, N), "float64")
        arr.attrs["ensembles"] = list(ensembles)
    store.root["propensity"].attrs.update({"replicas": glass_replicas(spec).tolist(),
                                           "temperatures": list(spec.propensity.temperatures)})
    store.ledger(REDUCE, C * nT)
    (Path(campaign_dir) / "lammps" / NAME).mkdir(parents=True, exist_ok=True)
    return store.ledger(NAME, C * nT * S).todo().tolist()


def run(campaign_dir, args=None) -> int:
    campaign_dir = Path(campaign_dir)
    if why := STAGES[NAME].skipped(load(campaign_dir)):
        print(f"{NAME}: skipped: {why}")
        return 0
    comm, spec, todo = start_mpi_stage(campaign_dir, NAME)
    store = Store(campaign_dir)
    glass = store.configurations(glass_replicas(spec))[0][:, 1]  # (C, N, dim) at T_G
    types = store.types()
    masses = np.asarray(spec.system.masses)[types]
    traj = store.root["propensity/traj"]
    dims = shape(spec)
    engine = get_engine(spec)

    def run_block(block, task_comm) -> None:
        """Runs of one (configuration, temperature); a block never mixes two (see block_size)."""
        where = [np.unravel_index(task, dims) for task in block.tasks]
        (c, t, _), T = where[0], spec.propensity.temperatures[where[0][1]]
        # not the attempt: a retry resumes the same trajectory from its checkpoint
        velocities = np.stack([draw_velocities(task_rng(spec.campaign.seed, NAME, task, 0), T, masses, spec.dim)
                               for task in block.tasks])
        workdirs = [campaign_dir / "lammps" / NAME / f"c{c}-T{t}-s{s:04d}" for c, t, s in where]
        positions = engine.isoconf_block(spec, glass[c], types, velocities, T, workdirs, comm=task_comm,
                                         should_stop=signals.stop_requested)
        if rank_of(task_comm) == 0:
            for (c, t, s), x, workdir in zip(where, positions, workdirs):
                traj[c, t, s] = x
                clear_checkpoint(workdir)

    result = farm(NAME, todo, run_block, store.ledger(NAME), spec, comm=comm,
                  block_size=np.gcd(spec.md.replicas_per_task, dims[2]))
    code = exit_code(result, NAME, comm)
    if rank_of(comm) == 0 and not signals.stop_requested():
        code = max(code, reduce(store, spec))
    return code


def reduce(store: Store, spec: Spec) -> int:
    """Dask reduction of every (c, t) whose runs are all done and that is not reduced yet (one
    farm task each, ledger ``propensity_reduce``). Returns 0, or 1 when a reduction failed."""
    import dask
    import dask.array as da

    C, nT, S = shape(spec)
    runs_done = store.ledger(NAME).done_mask().reshape(C, nT, S).all(axis=2).ravel()
    ledger = store.ledger(REDUCE)
    todo = [k for k in ledger.todo() if runs_done[k]]
    if not todo:
        return 0
    glass = store.configurations(glass_replicas(spec))[0][:, 1]
    traj = da.from_zarr(str(store.path), component="propensity/traj")
    ensembles = sub_ensembles(S, spec.propensity.main_samples)
    main = spec.propensity.main_samples
    group = store.root["propensity"]

    def reduce_block(block, comm=None) -> None:
        for k in block.tasks:
            c, t = np.unravel_index(k, (C, nT))
            runs = traj[c, t]                       # (S, n_out, N, dim), a chunk per run
            r0 = runs[0, 0].compute()               # step 0: the start, unwrapped frame
            crd = cage_relative_displacement(r0, runs, voronoi_cage(glass[c], spec.box_length))
            fields = [propensity(crd[:main] if main else crd)] + [propensity(crd[idx]) for idx in ensembles.values()]
            (Delta, delta), *subs = dask.compute(*fields)
            if not (np.isfinite(Delta).all() and np.isfinite(delta).all()):
                raise ValueError("non-finite propensity")
            group["Delta"][c, t] = Delta
            group["delta"][c, t] = delta
            if ensembles:
                group["Delta_ensembles"][c, t] = np.stack([field for field, _ in subs])

    with dask_client(**spec.dask):
        result = run_farm(todo, reduce_block, ledger, max_attempts=spec.md.max_attempts, label=REDUCE)
    return exit_code(result, REDUCE)
