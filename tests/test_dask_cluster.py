"""hpc.dask_cluster: local cluster on loopback, existing scheduler, SLURMCluster from a profile."""

import signal

from distributed import Client, LocalCluster

from hpc.dask_cluster import dask_client, slurm_cluster


def _host(address: str) -> str:
    return address.split("://")[-1].rsplit(":", 1)[0]


def _sum_of_squares(n):
    return sum(i * i for i in range(n))


def test_local_cluster_binds_loopback_and_computes():
    before = signal.getsignal(signal.SIGINT)  # Python's, or pytest-xdist's in one of its workers
    with dask_client(workers=2, threads_per_worker=1) as client:
        info = client.scheduler_info()
        assert len(info["workers"]) == 2
        assert _host(client.scheduler.address) == "127.0.0.1"
        assert all(_host(w) == "127.0.0.1" for w in info["workers"])
        assert client.cluster.scheduler.http_server.address == "127.0.0.1"
        assert client.gather(client.map(_sum_of_squares, [10, 100])) == [285, 328350]
        # Ctrl-C reaches the whole process group: the workers leave it to the client
        assert set(client.run(_sigint_ignored).values()) == {True}
    assert signal.getsignal(signal.SIGINT) is before  # restored here


def _sigint_ignored() -> bool:
    return signal.getsignal(signal.SIGINT) == signal.SIG_IGN


def test_existing_scheduler_address():
    with LocalCluster(n_workers=1, threads_per_worker=1, host="127.0.0.1", dashboard_address="127.0.0.1:0") as cluster:
        with dask_client(address=cluster.scheduler_address) as client:
            assert client.scheduler.address == cluster.scheduler_address
            assert client.submit(_sum_of_squares, 4).result() == 14
        # leaving the context closed only our client, not the foreign cluster
        with Client(cluster.scheduler_address) as other:
            assert other.submit(_sum_of_squares, 3).result() == 5


def test_profile_without_worker_jobs_runs_workers_in_this_job():
    """[dask] jobs = 0 (localhost-slurm): a LocalCluster of dask.processes workers on loopback."""
    with dask_client(profile="localhost-slurm") as client:
        workers = client.scheduler_info()["workers"].values()
        assert [w["nthreads"] for w in workers] == [1, 1]  # 2 processes sharing 2 cores
        assert all(w["host"] == "127.0.0.1" for w in workers)
        assert client.submit(_sum_of_squares, 5).result() == 30


def test_slurm_cluster_from_profile_renders_worker_job():
    with slurm_cluster("localhost-slurm") as cluster:
        script = cluster.job_script()
        assert _host(cluster.scheduler_address) == "127.0.0.1"  # interface = "lo"
        http = cluster.scheduler.http_server.address
        assert http == "127.0.0.1", f"dashboard/http server on {http}"
    assert "#SBATCH -p debug" in script
    assert "#SBATCH -t 00:30:00" in script
    assert "--interface lo" in script
    assert "--nworkers 2 " in script and "--nthreads 1 " in script  # 2 processes on 2 cores
    assert "--memory-limit 0.93GiB" in script  # 2 GB per job, shared by its 2 processes
    assert "#SBATCH -J gd-dask" in script
