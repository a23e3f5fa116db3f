"""Cluster profiles: one commented TOML file per cluster (``hpc/profiles/NAME.toml``).

A profile says how to reach a SLURM cluster (partition, account, QOS), what a node has
(cores, GPUs, memory), how to set up the environment and launch MPI on it, how long and how
large each job may be (``[stages.NAME]``), and the shape of Dask worker jobs. It never names
the science: stage names are free keys that the caller maps to its own stages.

``load_profile("localhost-slurm")`` finds a shipped profile by name; a path loads any file.
Every problem is a :class:`ProfileError` naming the key and the fix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from .schema import (
    INT,
    REQUIRED,
    STRING,
    STRINGS,
    Key,
    at_least,
    non_negative,
    one_of,
    parse_toml,
    validate,
    validate_section,
)

PROFILE_DIR = Path(__file__).parent / "profiles"
_WALLTIME = re.compile(r"^(?:(\d+)-)?(\d+)(?::(\d{1,2}))?(?::(\d{1,2}))?$")


class ProfileError(ValueError):
    """A bad cluster profile: names the key, the problem and the fix."""

    def __init__(self, key: str, problem: str, fix: str):
        self.key, self.problem, self.fix = key, problem, fix
        super().__init__(f"profile key '{key}': {problem}. Fix: {fix}")


def walltime_seconds(text: str) -> int:
    """SLURM time limit ('MM', 'HH:MM:SS', 'D-HH', 'D-HH:MM:SS', ...) -> seconds."""
    m = _WALLTIME.match(text.strip())
    if not m:
        raise ValueError(f"not a SLURM time limit: {text!r}")
    days, a, b, c = (int(g) if g else None for g in m.groups())
    if days is None:  # MM | MM:SS | HH:MM:SS
        parts = [x for x in (a, b, c) if x is not None]
        h, mnt, s = ([0] * (3 - len(parts)) + parts) if len(parts) > 1 else (0, parts[0], 0)
    else:  # D-HH | D-HH:MM | D-HH:MM:SS
        h, mnt, s = a, b or 0, c or 0
    return (((days or 0) * 24 + h) * 60 + mnt) * 60 + s


def _walltime(value: str) -> str | None:
    try:
        walltime_seconds(value)
    except ValueError:
        return "must be a SLURM time limit ('HH:MM:SS' or 'D-HH:MM:SS')"
    return None


LAUNCHERS = ("srun", "mpiexec", "localhost")
SCHEMA = {
    "slurm": {
        "partition": Key(STRING, REQUIRED, "partition (sbatch --partition)"),
        "account": Key(STRING, "", "account to charge ('' = leave out)"),
        "qos": Key(STRING, "", "quality of service ('' = leave out)"),
        "extra_directives": Key(STRINGS, [], "more sbatch options, one per entry, e.g. '--constraint=cpu'"),
        "signal_seconds": Key(INT, 120, "SIGTERM sent this many seconds before the time limit", non_negative),
        "requeue_limit": Key(
            INT,
            0,
            "times a job that got the walltime signal requeues itself to continue (0 = never; `submit` again instead)",
            non_negative,
        ),
        "job_prefix": Key(STRING, "gd", "prefix of job names"),
    },
    "node": {
        "cores": Key(INT, REQUIRED, "CPU cores per node", at_least(1)),
        "gpus": Key(INT, 0, "GPUs per node", non_negative),
        "memory": Key(STRING, "", "memory to ask per node (sbatch --mem; '' = leave out)"),
    },
    "environment": {
        "setup": Key(STRINGS, [], "shell lines run first in every job (module load, venv activation)"),
        "mpi_launcher": Key(
            STRING,
            "srun",
            "'srun', 'mpiexec', or 'localhost' (one node, loopback only: hpc.localhost)",
            one_of(*LAUNCHERS),
        ),
        "mpi_args": Key(STRING, "", "extra launcher options, e.g. '--mpi=pmix' (srun) or '-bind-to core'"),
        "command": Key(STRING, "glassdist", "command that runs the program on the nodes"),
    },
    "cluster": {
        "interface": Key(
            STRING,
            REQUIRED,
            "the network interface that MPI, gloo/NCCL and Dask bind to and "
            "advertise ('lo' keeps everything on localhost)",
        ),
    },
    "dask": {
        "cores": Key(INT, REQUIRED, "cores per Dask worker job", at_least(1)),
        "processes": Key(INT, 1, "worker processes per job (cores are shared among them)", at_least(1)),
        "memory": Key(STRING, REQUIRED, "memory per Dask worker job, e.g. '8GB'"),
        "walltime": Key(STRING, REQUIRED, "time limit of each worker job", _walltime),
        "jobs": Key(INT, 1, "worker jobs to start (0: workers inside the stage's own job)", non_negative),
        "dashboard": Key(STRING, "", "dashboard address, e.g. '127.0.0.1:8787' ('' = no dashboard)"),
    },
}
STAGE_KEYS = {
    "walltime": Key(STRING, REQUIRED, "time limit of the job", _walltime),
    "max_nodes": Key(INT, 1, "largest number of nodes the job may use", at_least(1)),
    "tasks_per_node": Key(
        INT, 0, "processes per node (0 = auto: node.cores for MPI stages, the GPUs or 1 for training)", non_negative
    ),
    "gpus_per_node": Key(INT, 0, "GPUs to ask per node", non_negative),
    "memory": Key(STRING, "", "memory per node ('' = the node's memory key)"),
}


@dataclass(frozen=True)
class StageShape:
    """Size limits of one stage's job."""

    walltime: str
    max_nodes: int
    tasks_per_node: int
    gpus_per_node: int
    memory: str


@dataclass(frozen=True)
class Profile:
    """A validated cluster profile."""

    name: str
    path: Path
    slurm: dict
    node: dict
    environment: dict
    cluster: dict
    dask: dict
    stages: dict[str, StageShape] = field(default_factory=dict)

    def stage(self, name: str) -> StageShape:
        if name not in self.stages:
            raise ProfileError(
                f"stages.{name}", "is missing", f"add a [stages.{name}] table with a walltime to {self.path}"
            )
        return self.stages[name]


def _check(p: Profile) -> None:
    d = p.dask
    if d["processes"] > d["cores"]:
        raise ProfileError(
            "dask.processes", f"must be in [1, dask.cores = {d['cores']}]", "use at most one process per core"
        )
    if d["cores"] > p.node["cores"]:
        raise ProfileError(
            "dask.cores", f"{d['cores']} > node.cores = {p.node['cores']}", "a worker job must fit on one node"
        )
    for name, s in p.stages.items():
        if s.max_nodes > 1 and p.environment["mpi_launcher"] == "localhost":
            raise ProfileError(
                f"stages.{name}.max_nodes",
                "must be 1 with mpi_launcher = 'localhost'",
                "use max_nodes = 1, or mpi_launcher 'srun' or 'mpiexec' for several nodes",
            )
        if s.gpus_per_node > p.node["gpus"]:
            raise ProfileError(
                f"stages.{name}.gpus_per_node",
                f"{s.gpus_per_node} > node.gpus = {p.node['gpus']}",
                "ask at most the GPUs a node has",
            )
        if walltime_seconds(s.walltime) <= p.slurm["signal_seconds"]:
            raise ProfileError(
                f"stages.{name}.walltime",
                f"{s.walltime} is not longer than slurm.signal_seconds = {p.slurm['signal_seconds']}",
                "give a longer walltime or an earlier signal",
            )
    if p.cluster["interface"] == "lo" and any(s.max_nodes > 1 for s in p.stages.values()):
        raise ProfileError(
            "cluster.interface",
            "is 'lo' but a stage may use several nodes",
            "name the cluster-internal interface (e.g. 'ib0'), or use max_nodes = 1",
        )


def resolve(name_or_path: str | Path) -> Path:
    """A shipped profile name ('generic-cpu') or a path to a TOML file -> the file's path."""
    path = Path(name_or_path)
    if path.suffix != ".toml":
        path = PROFILE_DIR / f"{name_or_path}.toml"
    if not path.is_file():
        shipped = ", ".join(sorted(p.stem for p in PROFILE_DIR.glob("*.toml")))
        raise ProfileError(
            "--profile",
            f"{name_or_path!r} is neither a shipped profile nor a file",
            f"use one of {shipped} or a path to your own .toml (copy a shipped one)",
        )
    return path


def load_profile(name_or_path: str | Path | Profile) -> Profile:
    """Load and validate a profile by shipped name or path (a Profile is returned as is)."""
    if isinstance(name_or_path, Profile):
        return name_or_path
    path = resolve(name_or_path)
    data = parse_toml(path.read_bytes(), str(path), ProfileError)
    sections = validate(data, SCHEMA, ProfileError, source=str(path), extra=("stages",), fix="copy a shipped profile")
    stages = data.get("stages", {})
    if not isinstance(stages, dict) or not all(isinstance(v, dict) for v in stages.values()):
        raise ProfileError("stages", "must hold one table per stage", "write [stages.quench] etc.")
    profile = Profile(
        name=path.stem,
        path=path,
        **sections,
        stages={
            n: StageShape(**validate_section(v, STAGE_KEYS, f"stages.{n}", ProfileError)) for n, v in stages.items()
        },
    )
    _check(profile)
    return profile
