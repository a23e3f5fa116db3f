"""SLURM batch jobs: size, render (Jinja2 templates in jobs/), submit, query, record.

The caller (``glassdist submit``) says what a job runs and how much work is pending
(:class:`Job`); this module sizes it from the cluster profile, renders the template of its
kind (``<stage>.sh`` of the template directory when present, else ``<kind>.sh``), submits it with
``sbatch --parsable --dependency=afterok:...``, and records it in ``DIR/slurm/jobs.json``
so that ``status`` can show SLURM's state beside the ledger.

Kinds: ``mpi`` (a task farm of P ranks: srun, mpiexec, or on one node hpc.localhost's
loopback-only launcher), ``dask`` (a small driver job whose Dask workers are SLURM jobs of
their own, see hpc.dask_cluster), ``ddp`` (one node: ``COMMAND --nproc P``, hpc.ddp.spawn;
several: srun starts every process, hpc.ddp's file rendezvous), ``serial`` (one process, optionally on a GPU).
"""

from __future__ import annotations

import json
import math
import shlex
import shutil
import subprocess
from importlib import resources
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import jinja2

from . import localhost
from .dask_cluster import LOG_ENV, PROFILE_ENV, SECRETS_ENV
from .network import DDP_INIT_ENV, interface_env
from .profile import Profile

# the job templates: the repository's jobs/, installed as the package hpc.jobs
TEMPLATE_DIR = Path(str(resources.files("hpc.jobs")))
KINDS = ("mpi", "dask", "ddp", "serial")
ACTIVE = {
    "PENDING",
    "RUNNING",
    "CONFIGURING",
    "COMPLETING",
    "REQUEUED",
    "REQUEUE_HOLD",
    "REQUEUE_FED",
    "RESIZING",
    "SUSPENDED",
    "STAGE_OUT",
    "SIGNALING",
}


class SlurmError(RuntimeError):
    """A SLURM command failed or is missing; the message says what to do."""


@dataclass(frozen=True)
class Job:
    """What one stage's job runs: ``command`` (argv), for MPI farms the tasks pending, and its
    time limit when the caller sized one (``''``: the profile's ``stages.NAME.walltime``).
    ``array`` K > 0: a job array of K elements (MPI farms), element I running ``command`` with
    ``--chunk I/K`` (part I of the tasks), at most ``array_limit`` at once (0: SLURM decides)."""

    stage: str
    kind: str
    command: list[str]
    pending: int = 1
    ranks_per_task: int = 1
    walltime: str = ""
    array: int = 0
    array_limit: int = 0


@dataclass(frozen=True)
class Size:
    """Resources of one job: nodes, SLURM tasks, tasks per node (0: SLURM decides), CPUs per
    task, DDP processes per node, GPUs per node, memory per node."""

    nodes: int
    ntasks: int
    ntasks_per_node: int
    cpus_per_task: int
    procs_per_node: int
    gpus_per_node: int
    memory: str


def size(job: Job, profile: Profile) -> Size:
    """Size a job from the profile's [stages.NAME] limits and the work pending.

    MPI farms get one rank per pending task group (rank 0 works too), at most
    ``max_nodes * tasks_per_node`` ranks, rounded down to whole groups of ``ranks_per_task``.
    """
    if job.kind not in KINDS:
        raise ValueError(f"unknown job kind {job.kind!r}; use one of {KINDS}")
    shape = profile.stage(job.stage)
    memory = shape.memory or profile.node["memory"]
    gpus = shape.gpus_per_node
    if job.kind == "mpi":
        per_node = shape.tasks_per_node or profile.node["cores"]
        k = job.ranks_per_task
        pending = math.ceil(job.pending / job.array) if job.array else job.pending  # one element's part
        ranks = min(max(pending, 1) * k, shape.max_nodes * per_node)
        ranks = max(ranks // k * k, k)
        return Size(math.ceil(ranks / per_node), ranks, 0, 1, 1, gpus, memory)
    if job.kind == "ddp":  # several nodes: srun starts every process (jobs/ddp.sh)
        procs = shape.tasks_per_node or max(gpus, 1)
        if shape.max_nodes == 1:
            return Size(1, 1, 1, profile.node["cores"], procs, gpus, memory)
        return Size(
            shape.max_nodes, shape.max_nodes * procs, procs, max(profile.node["cores"] // procs, 1), procs, gpus, memory
        )
    if job.kind == "dask" and profile.dask["jobs"] == 0:  # the Dask workers run in this job
        return Size(1, 1, 0, profile.dask["cores"], 1, gpus, memory)
    return Size(1, 1, 0, shape.tasks_per_node or 1, 1, gpus, memory)


def format_walltime(seconds: float) -> str:
    """Seconds -> a SLURM time limit 'D-HH:MM:SS' (rounded up to the minute)."""
    minutes = math.ceil(seconds / 60)
    return f"{minutes // 1440}-{minutes // 60 % 24:02d}:{minutes % 60:02d}:00"


def _environment(templates: Path) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["q"] = lambda v: shlex.quote(str(v))
    return env


def template_name(job: Job, templates: Path = TEMPLATE_DIR) -> str:
    """``<stage>.sh`` when the directory has one (a per-stage override), else ``<kind>.sh``."""
    return f"{job.stage}.sh" if (templates / f"{job.stage}.sh").is_file() else f"{job.kind}.sh"


def render(
    job: Job,
    profile: Profile,
    campaign_dir: str | Path,
    *,
    program: str = "glassdist",
    templates: str | Path = TEMPLATE_DIR,
) -> str:
    """The batch script of ``job`` as text."""
    templates = Path(templates)
    if not (templates / "_base.sh").is_file():
        raise SlurmError(
            f"no job templates in {templates}: pass a copy of the shipped templates ({TEMPLATE_DIR}) with --templates"
        )
    campaign = Path(campaign_dir).resolve()
    s = size(job, profile)
    name = template_name(job, templates)
    log_dir = campaign / "slurm" / "logs"
    secrets = campaign / "slurm" / "secrets"
    env = (
        {PROFILE_ENV: str(profile.path.resolve()), LOG_ENV: str(log_dir), SECRETS_ENV: str(secrets)}
        if job.kind == "dask"
        else {}
    )
    e = profile.environment
    if e["mpi_launcher"] == "localhost":  # one node, nothing listening beyond loopback
        mpi_launch = shlex.join(localhost.mpiexec_argv(s.ntasks, []))
        env = {**env, **localhost.ENV}
    else:
        count = f"--ntasks={s.ntasks}" if e["mpi_launcher"] == "srun" else f"-n {s.ntasks}"
        mpi_launch = " ".join(filter(None, (e["mpi_launcher"], count, e["mpi_args"])))
        env = {**env, **interface_env(profile.cluster["interface"])}
    return (
        _environment(templates)
        .get_template(name)
        .render(
            job_name=f"{profile.slurm['job_prefix']}-{job.stage}-{campaign.name}",
            stage=job.stage,
            campaign=campaign,
            program=program,
            template=name,
            profile=profile,
            shape=replace(profile.stage(job.stage), walltime=job.walltime or profile.stage(job.stage).walltime),
            log_dir=log_dir,
            env=env,
            srun_step=job.kind == "ddp" or job.kind == "mpi" and e["mpi_launcher"] == "srun",
            command=shlex.join(job.command),
            mpi_launch=mpi_launch,
            tasks_pending=job.pending,
            init_env=DDP_INIT_ENV,
            secrets=secrets,
            array=job.array,
            array_limit=job.array_limit,
            **asdict(s),
        )
    )


def _run(argv: list[str]) -> subprocess.CompletedProcess:
    if shutil.which(argv[0]) is None:
        raise SlurmError(
            f"'{argv[0]}' not found: run this on a SLURM login node (or use --dry-run to only write the scripts)"
        )
    return subprocess.run(argv, capture_output=True, text=True)


def sbatch_argv(script: str | Path, after: list[str]) -> list[str]:
    """The sbatch command line: ``--parsable`` prints the job id; afterok waits for ``after``."""
    dep = [f"--dependency=afterok:{':'.join(after)}"] if after else []
    return ["sbatch", "--parsable", *dep, str(script)]


def sbatch(script: str | Path, after: list[str]) -> str:
    """Submit a batch script; returns its job id."""
    res = _run(sbatch_argv(script, after))
    if res.returncode != 0:
        raise SlurmError(f"sbatch {script} failed: {res.stderr.strip() or res.stdout.strip()}")
    return res.stdout.strip().split(";")[0]


def cancel(job_ids: list[str]) -> None:
    if job_ids:
        _run(["scancel", *job_ids])


@dataclass(frozen=True)
class JobState:
    state: str  # SLURM state: PENDING, RUNNING, COMPLETED, FAILED, ... or UNKNOWN (forgotten)
    reason: str  # why pending (e.g. Dependency, DependencyNeverSatisfied), else 'None'

    @property
    def active(self) -> bool:
        return self.state in ACTIVE

    @property
    def stuck(self) -> bool:
        """Pending on a dependency that can no longer be satisfied (an earlier job failed)."""
        return self.state == "PENDING" and self.reason == "DependencyNeverSatisfied"


def job_states(job_ids: list[str]) -> dict[str, JobState]:
    """SLURM's view of the given jobs: squeue (live and recently ended), then sacct."""
    if not job_ids:
        return {}
    out: dict[str, JobState] = {}
    res = _run(["squeue", "-h", "-t", "all", "-j", ",".join(job_ids), "-o", "%i|%T|%r"])
    if res.returncode != 0 and "Invalid job id" not in res.stderr:  # forgotten ids are fine
        raise SlurmError(f"squeue failed: {res.stderr.strip()} (is slurmctld up? `sinfo` tells)")
    for line in res.stdout.splitlines():
        jid, state, reason = line.strip().split("|", 2)
        out[jid] = JobState(state, reason)
    missing = [j for j in job_ids if j not in out and not _elements(out, j)]
    if missing and shutil.which("sacct"):
        res = subprocess.run(
            ["sacct", "-n", "-X", "-P", "-j", ",".join(missing), "-o", "JobID,State"], capture_output=True, text=True
        )
        for line in res.stdout.splitlines() if res.returncode == 0 else []:
            jid, state = line.strip().split("|", 1)
            out.setdefault(jid, JobState(state.split()[0], "None"))
    return {j: out.get(j) or array_state(_elements(out, j)) for j in job_ids}


def _elements(states: dict[str, JobState], job_id: str) -> list[JobState]:
    """The states of the elements of job array ``job_id`` (ids ``<id>_<i>`` or ``<id>_[...]``)."""
    return [s for jid, s in states.items() if jid.startswith(f"{job_id}_")]


def array_state(elements: list[JobState]) -> JobState:
    """One state for a job array: the first active element's (running before pending), else
    COMPLETED when every element completed, else the first element's that did not; UNKNOWN
    without elements."""
    if not elements:
        return JobState("UNKNOWN", "None")
    active = sorted((s for s in elements if s.active), key=lambda s: s.state != "RUNNING")
    if active:
        return active[0]
    return next((s for s in elements if s.state != "COMPLETED"), elements[0])


# ---- the campaign's record of submitted jobs ------------------------------------------------
@dataclass
class Submission:
    """One submitted job as recorded in ``DIR/slurm/jobs.json``."""

    stage: str
    job_id: str
    script: str
    profile: str
    nodes: int
    ntasks: int
    after: list[str] = field(default_factory=list)
    submitted: float = field(default_factory=time.time)


def _book(campaign_dir: str | Path) -> Path:
    return Path(campaign_dir) / "slurm" / "jobs.json"


def submissions(campaign_dir: str | Path) -> list[Submission]:
    """Every job submitted for the campaign, oldest first."""
    path = _book(campaign_dir)
    if not path.is_file():
        return []
    return [Submission(**entry) for entry in json.loads(path.read_text())["jobs"]]


def latest(campaign_dir: str | Path) -> dict[str, Submission]:
    """The most recent submission of each stage."""
    return {s.stage: s for s in submissions(campaign_dir)}


def record(campaign_dir: str | Path, sub: Submission) -> None:
    path = _book(campaign_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    jobs = [asdict(s) for s in submissions(campaign_dir)] + [asdict(sub)]
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"jobs": jobs}, indent=1) + "\n")
    tmp.replace(path)
