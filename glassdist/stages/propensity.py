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

With ``propensity.until_delta`` > 0 a run stops at the first output where its own delta^s
reaches it (glassdist.md.isoconf.DeltaStop; ``propensity.steps`` caps it);
its later output rows stay NaN. ``propensity/run_outputs`` (C, nT, S) counts each run's outputs
and ``propensity/run_delta`` (C, nT, S) is its delta^s at its last output (below the target:
it hit the cap, logged by the reduction). The reduction covers the outputs every run of the
(c, t) reached; Delta, delta and Delta_ensembles are NaN after them.

Each run's velocities derive from the campaign seed and its task index only (not the
attempt), so a retried or resumed run continues the same trajectory from its checkpoint in
``DIR/lammps/propensity/cC-TT-sSSSS/``; that directory keeps the run's LAMMPS input
(``run.in`` + ``start.data``) after the run is stored.

Temperatures (:func:`temperatures`): fixed ``propensity.temperatures``, or with ``"auto"``
``propensity.t_star_multiples`` x the T* that the inherent stage fitted (the stage then needs
it). The temperatures used are the attribute ``temperatures`` of group ``propensity`` (with
``t_star`` and ``t_star_error`` when auto); every later stage reads them there.
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
from ..errors import SpecError, StaleResultsError
from ..md.isoconf import draw_velocities, output_steps, reached_outputs, run_delta, until_delta_target
from ..spec import Spec, load
from ..store import Store
from ..pipeline import STAGES, auto_temperatures, propensity_shape as shape
from .common import campaign_lock, exit_code, farm, rank_of, start_mpi_stage

NAME = "propensity"
REDUCE = STAGES[NAME].extra_ledgers[0]


def glass_replicas(spec: Spec) -> np.ndarray:
    """Replica ids (C,) of the propensity configurations (indices within the test split; none when the
    stage is skipped)."""
    return spec.replicas_of("test")[spec.propensity.configurations][: shape(spec)[0]]


def temperatures(spec: Spec, store: Store) -> tuple[np.ndarray, dict]:
    """The run temperatures (nT,) of this campaign and what they came from: {} when fixed,
    {"t_star": T*, "t_star_error": its standard error or None} when ``"auto"`` (a SpecError
    naming the fix when the T* fit is missing or failed: glassdist.stages.inherent.stored_t_star)."""
    p = spec.propensity
    if not auto_temperatures(spec):
        return np.asarray(p.temperatures, dtype=float), {}
    from .inherent import stored_t_star

    t_star, error = stored_t_star(store)
    return t_star * np.asarray(p.t_star_multiples, dtype=float), {
        "t_star": t_star,
        "t_star_error": error if np.isfinite(error) else None,
    }


def stored_temperatures(store: Store) -> np.ndarray:
    """The temperatures (nT,) the propensity stage ran at (its group's attribute; none when it was
    skipped)."""
    if NAME not in store.root:
        return np.zeros(0)
    return np.asarray(store.root[NAME].attrs["temperatures"], dtype=float)


def _check_temperatures(store: Store, T: np.ndarray) -> None:
    """Refuse when runs exist at other temperatures (a refitted T* moved the 'auto' ones)."""
    attrs = store.root[NAME].attrs if NAME in store.root else {}
    old = attrs.get("temperatures")
    ran = f"ledger/{NAME}" in store.root and (store.ledger(NAME).states() != 0).any()
    if old is not None and ran and not np.allclose(old, T, rtol=1e-12, atol=0):
        raise StaleResultsError(
            f"the propensity runs in {store.path} are at T = {', '.join(f'{t:.4g}' for t in old)}, but this "
            f"campaign now asks for {', '.join(f'{t:.4g}' for t in T)} (the T* fit changed): start a new campaign "
            f"with `glassdist init NEWDIR --from {store.dir}` (it reuses every result still valid), or give "
            f"the old values as fixed propensity.temperatures"
        )


def prepare(campaign_dir: Path, spec: Spec) -> list[int]:
    """Rank 0: check the spec, create the arrays and ledgers; return the runs to do."""
    get_engine(spec).check(spec)
    store = Store(campaign_dir)
    store.require_needs(NAME, spec=spec)
    T, origin = temperatures(spec, store)
    if max(T) > spec.quench.T_start:
        raise SpecError(
            "propensity.t_star_multiples",
            f"the runs would be at up to {max(T):.4g} "
            f"(T* = {origin['t_star']:.4g}), above quench.T_start = {spec.quench.T_start:g}",
            "use smaller multiples or fixed propensity.temperatures",
        )
    _check_temperatures(store, T)
    store.check_stage(NAME, spec)
    store.configurations(glass_replicas(spec))  # refuses when a needed quench is not done
    C, nT, S = shape(spec)
    steps = output_steps(spec.propensity.steps, spec.propensity.outputs)
    made = store.create_arrays(NAME, spec)
    made["propensity/steps"][:], made["propensity/times"][:] = steps, steps * spec.md.dt
    if "propensity/Delta_ensembles" in made:
        made["propensity/Delta_ensembles"].attrs["ensembles"] = list(sub_ensembles(S, spec.propensity.main_samples))
    store.root["propensity"].attrs.update(
        {
            "replicas": glass_replicas(spec).tolist(),
            "temperatures": T.tolist(),
            **origin,
            "until_delta": until_delta_target(spec),
        }
    )
    store.ledger(REDUCE, C * nT)
    (Path(campaign_dir) / "lammps" / NAME).mkdir(parents=True, exist_ok=True)
    return store.ledger(NAME, C * nT * S).todo().tolist()


def run(campaign_dir, args=None) -> int:
    campaign_dir = Path(campaign_dir)
    if why := STAGES[NAME].skipped(load(campaign_dir)):
        print(f"{NAME}: skipped: {why}")
        return 0
    comm, spec, todo = start_mpi_stage(campaign_dir, NAME, args.chunk)
    store = Store(campaign_dir)
    glass = store.configurations(glass_replicas(spec))[0][:, 1]  # (C, N, dim) at T_G
    types = store.types()
    masses = np.asarray(spec.system.masses)[types]
    group = store.root["propensity"]
    traj = group["traj"]
    run_T = stored_temperatures(store)
    dims = shape(spec)
    engine = get_engine(spec)

    def run_block(block, task_comm) -> None:
        """Runs of one (configuration, temperature); a block never mixes two (see block_size)."""
        where = [np.unravel_index(task, dims) for task in block.tasks]
        (c, t, _), T = where[0], float(run_T[where[0][1]])
        # not the attempt: a retry resumes the same trajectory from its checkpoint
        velocities = np.stack(
            [draw_velocities(task_rng(spec.campaign.seed, NAME, task, 0), T, masses, spec.dim) for task in block.tasks]
        )
        workdirs = [campaign_dir / "lammps" / NAME / f"c{c}-T{t}-s{s:04d}" for c, t, s in where]
        positions = engine.isoconf_block(
            spec, glass[c], types, velocities, T, workdirs, comm=task_comm, should_stop=signals.stop_requested
        )
        if rank_of(task_comm) == 0:
            cage = voronoi_cage(glass[c], spec.box_length)
            for (c, t, s), x, workdir in zip(where, positions, workdirs):
                n = reached_outputs(x)
                traj[c, t, s] = x
                group["run_outputs"][c, t, s] = n
                group["run_delta"][c, t, s] = run_delta(x[0], x[n - 1][None], cage)[0]
                clear_checkpoint(workdir)

    result = farm(
        NAME,
        todo,
        run_block,
        store.ledger(NAME),
        spec,
        comm=comm,
        block_size=np.gcd(spec.md.replicas_per_task, dims[2]),
    )
    code = exit_code(result, NAME, comm)
    if rank_of(comm) == 0 and not signals.stop_requested():
        with campaign_lock(campaign_dir, args.chunk is not None):  # one part of a job array at a time
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
    n_out = group["steps"].shape[0]

    def reduce_block(block, comm=None) -> None:
        for k in block.tasks:
            c, t = np.unravel_index(k, (C, nT))
            n = int(group["run_outputs"][c, t].min())  # outputs every run reached (until_delta)
            runs = traj[c, t][:, :n]  # (S, n, N, dim), a chunk per run
            r0 = runs[0, 0].compute()  # step 0: the start, unwrapped frame
            crd = cage_relative_displacement(r0, runs, voronoi_cage(glass[c], spec.box_length))
            fields = [propensity(crd[:main] if main else crd)] + [propensity(crd[idx]) for idx in ensembles.values()]
            (Delta, delta), *subs = dask.compute(*fields)
            if not (np.isfinite(Delta).all() and np.isfinite(delta).all()):
                raise ValueError("non-finite propensity")
            group["Delta"][c, t] = _pad(Delta, n_out)
            group["delta"][c, t] = _pad(delta, n_out)
            if ensembles:
                group["Delta_ensembles"][c, t] = np.stack([_pad(field, n_out) for field, _ in subs])
            _report_cap(spec, c, float(stored_temperatures(store)[t]), group["run_delta"][c, t], delta[-1])

    with dask_client(**spec.dask):
        result = run_farm(todo, reduce_block, ledger, max_attempts=spec.md.max_attempts, label=REDUCE)
    return exit_code(result, REDUCE)


def _pad(field: np.ndarray, n_out: int) -> np.ndarray:
    """A field over the first n outputs (n, ...) -> (n_out, ...), NaN at outputs not every run reached."""
    out = np.full((n_out, *field.shape[1:]), np.nan)
    out[: len(field)] = field
    return out


def _report_cap(spec: Spec, c: int, T: float, run_delta: np.ndarray, delta: float) -> None:
    """The log line of a (configuration, temperature T) whose runs hit the step cap before the
    until_delta target (run_delta (S,): each run's delta^s at its last output)."""
    target = until_delta_target(spec)
    capped = int((run_delta < target).sum()) if target is not None else 0
    if capped:
        p = spec.propensity
        print(
            f"propensity: configuration {p.configurations[c]}, T = {T:.4g}: {capped} of "
            f"{len(run_delta)} runs hit the step cap propensity.steps = {p.steps} below delta = {target:g} "
            f"(the ensemble reached delta = {delta:.3g}); raise propensity.steps to reach it"
        )
