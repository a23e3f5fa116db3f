"""Dask cluster factory: a local cluster, an existing scheduler, or SLURM worker jobs.

``with dask_client(**spec.dask) as client:`` gives a ``distributed.Client``:
- default: a LocalCluster whose scheduler, workers and (absent) dashboard bind to 127.0.0.1;
- ``address="tcp://host:port"``: connect to a scheduler someone else started;
- ``profile=...`` (or the environment variable ``HPC_DASK_PROFILE``, which SLURM job scripts
  rendered by hpc.slurm set, with HPC_DASK_LOG_DIR): a dask-jobqueue SLURMCluster shaped by
  the profile's ``[dask]`` table, scaled to its ``jobs`` worker jobs and closed (jobs
  cancelled) on exit, TLS with per-cluster certificates off loopback; with ``jobs = 0`` a
  LocalCluster of ``processes`` workers sharing ``cores`` inside the calling job's allocation.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Iterator

from .profile import Profile, load_profile

PROFILE_ENV = "HPC_DASK_PROFILE"
LOG_ENV = "HPC_DASK_LOG_DIR"  # where worker jobs write their SLURM output (default: the cwd)
SECRETS_ENV = "HPC_SECRETS_DIR"  # where a job keeps its secrets (TLS certificates, rendezvous)


def secrets_directory(path: str | Path | None = None) -> Path:
    """The directory (mode 700, made if missing) for a run's secrets: ``path``, else
    $HPC_SECRETS_DIR (``DIR/slurm/secrets`` in a campaign's jobs), else ~/.hpc-secrets. It must
    be on a filesystem every node sees."""
    directory = Path(path or os.environ.get(SECRETS_ENV) or Path.home() / ".hpc-secrets")
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    return directory


def security(interface: str):
    """None on loopback; else TLS with certificates made for this cluster alone
    (distributed's Security.temporary(): a fresh self-signed CA, in memory; dask-jobqueue
    writes the workers' copies, mode 600, into the secrets directory for the worker jobs)."""
    if interface == "lo":
        return None
    from distributed.security import Security

    return Security.temporary()


WORKER_TTL = "60s"  # a worker job silent this long (its node lost) is dropped, its tasks redone elsewhere


def slurm_cluster(profile: str | Path | Profile, log_directory: str | None = None, secrets: str | Path | None = None):
    """A dask_jobqueue.SLURMCluster (not yet scaled) built from a profile's [dask] table;
    worker job output goes to ``log_directory`` (default: $HPC_DASK_LOG_DIR, else the cwd).
    Off loopback every connection is TLS with per-cluster certificates (:func:`security`),
    the workers' copies in :func:`secrets_directory` (``secrets``)."""
    from dask_jobqueue import SLURMCluster

    p = load_profile(profile)
    d = p.dask
    tls = security(p.cluster["interface"])
    directives = [f"--qos={p.slurm['qos']}"] if p.slurm["qos"] else []
    # dask-jobqueue's default dashboard address ':8787' binds every interface: always override.
    # A worker whose node is lost sends no more heartbeats: it is dropped after WORKER_TTL and its
    # tasks go to the other workers (distributed's default waits 5 minutes)
    scheduler = {
        "dashboard_address": d["dashboard"] or None,
        "dashboard": bool(d["dashboard"]),
        "worker_ttl": WORKER_TTL,
    }
    return SLURMCluster(
        queue=p.slurm["partition"],
        account=p.slurm["account"] or None,
        cores=d["cores"],
        processes=d["processes"],
        memory=d["memory"],
        walltime=d["walltime"],
        interface=p.cluster["interface"],
        scheduler_options=scheduler,
        job_extra_directives=directives + list(p.slurm["extra_directives"]),
        job_script_prologue=list(p.environment["setup"]),
        job_name=f"{p.slurm['job_prefix']}-dask",
        log_directory=log_directory or os.environ.get(LOG_ENV) or None,
        security=tls,
        protocol="tls://" if tls else None,
        shared_temp_directory=str(secrets_directory(secrets)) if tls else None,
    )


@contextmanager
def dask_client(
    address: str = "", workers: int = 2, threads_per_worker: int = 1, profile: str | Path | Profile | None = None
) -> Iterator:
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
        with sigint_ignored():  # its worker processes inherit that
            cluster = LocalCluster(
                n_workers=workers,
                threads_per_worker=threads_per_worker,
                processes=True,
                host="127.0.0.1",
                dashboard_address="127.0.0.1:0",
            )
        with cluster, Client(cluster) as client, quiet_on_interrupt(client):
            yield client


def silence_distributed() -> None:
    """Only critical messages from distributed's loggers in this process."""
    logging.getLogger("distributed").setLevel(logging.CRITICAL)


@contextmanager
def quiet_on_interrupt(client) -> Iterator[None]:
    """On Ctrl-C, silence distributed's loggers here and on the workers before the cluster closes:
    the workers ignore SIGINT and are still computing, so their tasks end cancelled and the nannies
    kill them, each with a warning the user need not read (the CLI says "interrupted" once)."""
    try:
        yield
    except KeyboardInterrupt:
        silence_distributed()
        with suppress(Exception):  # best effort: a worker that is gone has nothing to say
            client.run(silence_distributed)
        raise


@contextmanager
def sigint_ignored() -> Iterator[None]:
    """SIGINT ignored inside (main thread only), so that the processes started there ignore it
    too: Ctrl-C reaches the whole process group, and only this process, the client, should act
    on it (closing the cluster ends the workers) instead of every worker printing a traceback."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
