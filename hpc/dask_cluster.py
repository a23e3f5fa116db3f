"""Dask cluster factory: a local cluster, an existing scheduler, or SLURM worker jobs.

``with dask_client(**spec.dask) as client:`` gives a ``distributed.Client``:
- default: a LocalCluster whose scheduler, workers and (absent) dashboard bind to 127.0.0.1;
- ``address="tcp://host:port"``: connect to a scheduler someone else started;
- ``profile=...`` (or the environment variable ``HPC_DASK_PROFILE``, which SLURM job scripts
  rendered by hpc.slurm set, with HPC_DASK_LOG_DIR): a dask-jobqueue SLURMCluster shaped by
  the profile's ``[dask]`` table, scaled to its ``jobs`` worker jobs and closed (jobs
  cancelled) on exit; with ``jobs = 0`` a LocalCluster of ``processes`` workers sharing
  ``cores`` inside the calling job's allocation.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .profile import Profile, load_profile

PROFILE_ENV = "HPC_DASK_PROFILE"
LOG_ENV = "HPC_DASK_LOG_DIR"  # where worker jobs write their SLURM output (default: the cwd)


def slurm_cluster(profile: str | Path | Profile, log_directory: str | None = None):
    """A dask_jobqueue.SLURMCluster (not yet scaled) built from a profile's [dask] table;
    worker job output goes to ``log_directory`` (default: $HPC_DASK_LOG_DIR, else the cwd)."""
    from dask_jobqueue import SLURMCluster

    p = load_profile(profile)
    d = p.dask
    directives = [f"--qos={p.slurm['qos']}"] if p.slurm["qos"] else []
    # dask-jobqueue's default dashboard address ':8787' binds every interface: always override
    scheduler = {"dashboard_address": d["dashboard"] or None, "dashboard": bool(d["dashboard"])}
    return SLURMCluster(
        queue=p.slurm["partition"], account=p.slurm["account"] or None,
        cores=d["cores"], processes=d["processes"], memory=d["memory"], walltime=d["walltime"],
        interface=p.cluster["interface"], scheduler_options=scheduler,
        job_extra_directives=directives + list(p.slurm["extra_directives"]),
        job_script_prologue=list(p.environment["setup"]),
        job_name=f"{p.slurm['job_prefix']}-dask",
        log_directory=log_directory or os.environ.get(LOG_ENV) or None,
    )


@contextmanager
def dask_client(address: str = "", workers: int = 2, threads_per_worker: int = 1,
                profile: str | Path | Profile | None = None) -> Iterator:
    """A distributed.Client on a local cluster, a given scheduler, or SLURM worker jobs."""
    from distributed import Client, LocalCluster

    profile = profile or os.environ.get(PROFILE_ENV) or None
    p = load_profile(profile) if profile is not None else None
    if p is not None and p.dask["jobs"] == 0:  # workers inside this job's own allocation
        workers = p.dask["processes"]
        threads_per_worker = max(1, p.dask["cores"] // workers)
    if p is not None and p.dask["jobs"] > 0:
        with slurm_cluster(p) as cluster:
            cluster.scale(jobs=p.dask["jobs"])
            with Client(cluster) as client:
                yield client
    elif address:
        with Client(address) as client:
            yield client
    else:
        with LocalCluster(n_workers=workers, threads_per_worker=threads_per_worker,
                          processes=True, host="127.0.0.1", dashboard_address="127.0.0.1:0") as cluster, \
                Client(cluster) as client:
            yield client
