"""`glassdist submit DIR --profile P`: the campaign's stages as SLURM jobs (docs/slurm.md).

Each stage is one batch job (MPI farms one MPI job of P ranks; with ``--array K[%M]`` a job array
of K elements, each an MPI job doing part I of K of the tasks, at most M at once: docs/slurm.md
compares the two) that waits for the jobs of the stages it needs (``--dependency=afterok``: a job
array counts as done when every element is).
The remainder only: stages that are done (Store.stage_state: not stale) are skipped, a stage with a live job
from an earlier call is not submitted again (its job id becomes the dependency), and jobs
left waiting on a failed job (DependencyNeverSatisfied) are cancelled and replaced.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

from hpc import slurm
from hpc.ledger import DONE
from hpc.profile import Profile, ProfileError, load_profile, walltime_seconds

from ..errors import UsageError
from ..spec import Spec, load
from ..pipeline import PIPELINE, STAGES, stage_of_ledger
from ..store import Store

# The SLURM job template of each stage kind (hpc.slurm.KINDS).
JOB_KINDS = {"mpi": "mpi", "dask": "dask", "torch": "ddp", "serial": "serial"}


def job_kind(stage: str) -> str:
    return JOB_KINDS[STAGES[stage].kind]


def expected_tasks(stage: str, spec: Spec) -> int | None:
    """Tasks of an MPI stage that has no ledger yet (None: unknown, use the profile's largest)."""
    record = STAGES[stage]
    return record.tasks(spec) if record.kind == "mpi" and record.tasks else None


def ledger_progress(campaign_dir: Path) -> dict[str, tuple[int, int]]:
    """{stage: (tasks not done, tasks)} over the stage's ledgers."""
    if not (campaign_dir / "store.zarr").exists():
        return {}
    out: dict[str, tuple[int, int]] = {}
    for name, ledger in Store(campaign_dir, mode="r").ledgers().items():
        stage = stage_of_ledger(name)
        if stage is not None:
            states = ledger.states()
            todo, total = out.get(stage, (0, 0))
            out[stage] = (todo + int((states != DONE).sum()), total + len(states))
    return out


def stage_states(campaign_dir: Path, spec: Spec) -> dict[str, str]:
    """{stage: Store.stage_state(stage, spec).name} ('not started' for all without a store)."""
    if not (campaign_dir / "store.zarr").exists():
        return {stage: "not started" for stage in PIPELINE}
    store = Store(campaign_dir, mode="r")
    return {stage: store.stage_state(stage, spec).name for stage in PIPELINE}


def plan(stages: list[str], states: dict[str, str], spec=None) -> list[str]:
    """Stages to (re)submit, in pipeline order: those not done (not started, incomplete, failed or
    stale: Store.stage_state) and every requested stage downstream of one (its inputs are about to
    change); never a stage that does not apply to the campaign (Stage.skipped)."""
    chosen: list[str] = []
    for stage in stages:
        if spec is not None and STAGES[stage].skipped(spec):
            continue
        if states.get(stage, "not started") != "done" or any(n in chosen for n in STAGES[stage].needs_of(spec)):
            chosen.append(stage)
    return chosen


def live_jobs(previous: dict[str, slurm.Submission], states: dict[str, slurm.JobState]):
    """Split the latest earlier job of each stage: ({stage: job id} still worth waiting for,
    [job ids] pending on a job that failed or was cancelled, so never going to run)."""
    keep: dict[str, str] = {}
    dead: list[str] = []
    for stage in PIPELINE:
        sub = previous.get(stage)
        if sub is None or sub.job_id not in states or not states[sub.job_id].active:
            continue
        state = states[sub.job_id]
        deps_ok = all(d in keep.values() or states[d].state == "COMPLETED" for d in sub.after)
        if state.state != "PENDING" or (deps_ok and not state.stuck):
            keep[stage] = sub.job_id
        else:
            dead.append(sub.job_id)
    return keep, dead


def _profile(name: str) -> Profile:
    try:
        return load_profile(name)
    except ProfileError as exc:
        raise UsageError(str(exc)) from None


def parse_array(text: str | None) -> tuple[int, int]:
    """``--array`` "K" or "K%M" -> (K, M) (M = 0: no limit); None -> (0, 0)."""
    if text is None:
        return 0, 0
    match = re.fullmatch(r"(\d+)(?:%(\d+))?", text.strip())
    if not match or int(match[1]) < 1 or (match[2] is not None and int(match[2]) < 1):
        raise UsageError(
            f"--array {text!r}: give K or K%M (K >= 1 parts per MPI stage, at most M running at "
            f"once), e.g. --array 16%4"
        )
    return int(match[1]), int(match[2] or 0)


def submit(
    campaign_dir,
    profile_name: str,
    stages: list[str] | None = None,
    dry_run: bool = False,
    templates: str | Path = slurm.TEMPLATE_DIR,
    out=print,
    array: str | None = None,
) -> list[slurm.Submission]:
    """Render and submit the unfinished stages; returns the new submissions (none in a dry run).
    ``array`` "K[%M]": the MPI stages as job arrays (:func:`parse_array`)."""
    parts, limit = parse_array(array)
    campaign_dir = Path(campaign_dir).resolve()
    spec = load(campaign_dir)
    profile = _profile(profile_name)
    stages = stages or list(PIPELINE)
    for stage in stages:
        if stage not in PIPELINE:
            raise UsageError(f"unknown stage {stage!r}; stages are {', '.join(PIPELINE)}")
    stages = [s for s in PIPELINE if s in stages]
    progress = ledger_progress(campaign_dir)
    chosen = plan(stages, stage_states(campaign_dir, spec), spec)
    for stage in chosen:
        if stage not in profile.stages:
            raise UsageError(
                f"profile key 'stages.{stage}': is missing. Fix: add a [stages.{stage}] "
                f"table with a walltime to {profile.path}"
            )

    previous = slurm.latest(campaign_dir)
    ids = {s.job_id for s in previous.values()} | {d for s in previous.values() for d in s.after}
    states = {} if dry_run else slurm.job_states(sorted(ids))
    job_of, dead = live_jobs(previous, states)  # stage -> job id to wait for (live old job or new one)
    if dead:
        out(f"cancelling {len(dead)} job(s) left waiting on a failed job: {', '.join(dead)}")
        slurm.cancel(dead)

    new: list[slurm.Submission] = []
    scripts = campaign_dir / "slurm" / "scripts"
    number = len(slurm.submissions(campaign_dir))
    for stage in chosen:
        if stage in job_of:
            out(f"{stage}: job {job_of[stage]} is still {states[job_of[stage]].state.lower()}; not resubmitted")
            continue
        job = stage_job(stage, campaign_dir, spec, profile, progress, parts, limit)
        text = slurm.render(job, profile, campaign_dir, templates=templates)
        after = [job_of[n] for n in STAGES[stage].needs_of(spec) if n in job_of]
        number += 1
        path = scripts / f"{number:03d}-{stage}.sh"
        if dry_run:
            deps = [f"<{need}>" for need in STAGES[stage].needs_of(spec) if need in job_of]
            out(f"==> {path} (dry run: not written)\n$ {' '.join(slurm.sbatch_argv(path, deps))}\n{text}")
            job_of[stage] = stage
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        (campaign_dir / "slurm" / "logs").mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        job_id = slurm.sbatch(path, after)
        size = slurm.size(job, profile)
        sub = slurm.Submission(
            stage=stage,
            job_id=job_id,
            script=str(path),
            profile=str(profile.path),
            nodes=size.nodes,
            ntasks=size.ntasks,
            after=after,
        )
        slurm.record(campaign_dir, sub)
        new.append(sub)
        job_of[stage] = job_id
        wait = f" after {','.join(after)}" if after else ""
        each = f"job array of {job.array}, each " if job.array else ""
        out(f"{stage}: submitted job {job_id} ({each}{size.nodes} node(s), {size.ntasks} task(s)){wait}")
    if not chosen:
        out("nothing to submit: every requested stage is complete")
    return new


def stage_job(
    stage: str, campaign_dir: Path, spec: Spec, profile: Profile, progress: dict, parts: int = 0, limit: int = 0
) -> slurm.Job:
    """The job that runs ``stage``: its kind, command line and pending tasks (for sizing); an MPI
    stage with ``parts`` > 0 as a job array of that many elements, at most ``limit`` at once."""
    todo, total = progress.get(stage, (0, 0))
    pending = todo if total else expected_tasks(stage, spec)
    if pending is None:  # unknown until the stage starts: as large as the profile allows
        shape = profile.stage(stage)
        pending = shape.max_nodes * (shape.tasks_per_node or profile.node["cores"])
    kind = job_kind(stage)
    parts = parts if kind == "mpi" else 0
    job = slurm.Job(
        stage=stage,
        kind=kind,
        pending=pending,
        ranks_per_task=spec.md.ranks_per_task,
        command=[profile.environment["command"], stage, str(campaign_dir)],
        array=parts,
        array_limit=limit if parts else 0,
    )
    record = STAGES[stage]
    tasks = todo if total else (record.tasks(spec) if record.tasks else 1)
    per_job = -(-tasks // parts) if parts else tasks  # one element's part
    return replace(job, walltime=estimated_walltime(job, per_job, campaign_dir, spec, profile))


WALLTIME_SAFETY = 2.0  # the estimate times this, plus the signal margin ...
WALLTIME_FLOOR = 900  # ... and never below 15 minutes (start-up, imports, a slower node)


def estimated_walltime(job: slurm.Job, tasks: int, campaign_dir: Path, spec: Spec, profile: Profile) -> str:
    """A time limit from the cached `glassdist estimate --calibrate` of this campaign (made on a
    node like the cluster's): WALLTIME_SAFETY x the estimated wall time of ``tasks`` on the job's ranks (or Dask
    workers) plus the profile's signal margin, at least WALLTIME_FLOOR, at most the profile's walltime. '' (the
    profile's) without an estimate."""
    from .estimate import stage_walltime_seconds

    size = slurm.size(job, profile)
    dask = profile.dask
    workers = {"mpi": size.ntasks // job.ranks_per_task, "dask": max(dask["jobs"], 1) * dask["processes"]}
    seconds = stage_walltime_seconds(campaign_dir, spec, job.stage, tasks, workers.get(job.kind, 1))
    if seconds is None:
        return ""
    limit = walltime_seconds(profile.stage(job.stage).walltime)
    wanted = max(WALLTIME_SAFETY * seconds + profile.slurm["signal_seconds"], WALLTIME_FLOOR)
    return slurm.format_walltime(min(wanted, limit))


def job_column(campaign_dir) -> dict[str, str]:
    """{stage: 'JOBID STATE'} of each stage's latest SLURM job ({} when none was submitted)."""
    latest = slurm.latest(campaign_dir)
    if not latest:
        return {}
    try:
        states = slurm.job_states([s.job_id for s in latest.values()])
    except slurm.SlurmError:
        return {stage: f"{s.job_id} ?" for stage, s in latest.items()}
    out = {}
    for stage, s in latest.items():
        st = states[s.job_id]
        reason = f" ({st.reason})" if st.state == "PENDING" and st.reason != "None" else ""
        out[stage] = f"{s.job_id} {st.state}{reason}"
    return out


def cmd_submit(args) -> int:
    stages = args.stages.split(",") if args.stages else None
    try:
        submit(args.dir, args.profile, stages, dry_run=args.dry_run, templates=args.templates, array=args.array)
    except slurm.SlurmError as exc:  # sbatch refused a job, or SLURM is not reachable
        raise UsageError(str(exc)) from None
    return 0


def add_arguments(parser) -> None:
    parser.add_argument("dir")
    parser.add_argument(
        "--profile",
        required=True,
        help="cluster profile: a name (generic-cpu, gpu-cluster, localhost-slurm) or a .toml path",
    )
    parser.add_argument("--stages", help=f"comma-separated subset of {','.join(PIPELINE)}")
    parser.add_argument(
        "--dry-run", action="store_true", help="print the batch scripts and sbatch lines; submit nothing"
    )
    parser.add_argument(
        "--array",
        metavar="K[%M]",
        help="submit each MPI stage (quench, inherent, propensity) as a job array of K elements, "
        "element I doing part I of K of its tasks, at most M at once (docs/slurm.md)",
    )
    parser.add_argument(
        "--templates",
        default=str(slurm.TEMPLATE_DIR),
        help="directory of job templates (default: the templates shipped in jobs/)",
    )
    parser.set_defaults(func=cmd_submit)
