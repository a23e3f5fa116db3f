"""Many nodes for real: a tiny campaign submitted to the virtual cluster of .ci/vcluster.sh (a
head and two compute nodes, each in its own network, mount, UTS, IPC and PID namespaces),
compared with a run on this host; node loss. Skipped, with the reason, where the cluster cannot
be built (not root, no namespaces, no SLURM); CI, as root, runs them (docs/slurm.md §7)."""

from __future__ import annotations

import os
import re
import shutil
import socket
import ssl
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import zarr

from .conftest import BIN, glassdist, init_tiny, mpi_glassdist

ROOT = Path(__file__).resolve().parent.parent
VCLUSTER = ROOT / ".ci" / "vcluster.sh"
CONF = Path("/run/gd-vcluster/slurm.conf")
PROFILE = Path(__file__).resolve().parent / "vcluster.toml"
NODES = ("gdv-n1", "gdv-n2")
# a short training: the comparison needs the stage, not a good network
SHORT = ("train.epochs=4",)
# ledger columns that record when and how long, not what
TIMING = re.compile(r"(^|/)ledger/.*/(seconds|finished)$")


def _unavailable() -> str | None:
    """Why the virtual cluster cannot be built here (None: it can)."""
    if os.geteuid() != 0:
        return "the virtual cluster needs root (network namespaces, slurmd): CI runs these tests as root"
    for cmd in ("slurmctld", "slurmd", "munged", "sbatch", "nsenter", "unshare", "ip"):
        if shutil.which(cmd) is None:
            return f"'{cmd}' is not installed (run .ci/slurm-setup.sh, which installs slurm-wlm and munge)"
    probe = subprocess.run(
        ["unshare", "--net", "--mount", "--uts", "--ipc", "--pid", "--fork", "true"], capture_output=True, text=True
    )
    if probe.returncode != 0:
        return f"Linux namespaces are not available here: {probe.stderr.strip()}"
    return None


@pytest.fixture(scope="session")
def vcluster():
    """The environment that reaches the virtual cluster (SLURM_CONF, the venv on PATH); brings
    the cluster up when it is down, and takes it down again at the end of the session."""
    reason = _unavailable()
    if reason:
        pytest.skip(reason)
    was_up = subprocess.run(["bash", VCLUSTER, "status"], capture_output=True).returncode == 0
    up = subprocess.run(["bash", VCLUSTER, "up"], capture_output=True, text=True, timeout=180)
    assert up.returncode == 0, f"vcluster.sh up failed:\n{up.stdout}\n{up.stderr}"
    yield {"SLURM_CONF": str(CONF), "PATH": f"{BIN}:{os.environ['PATH']}"}
    if not was_up:
        subprocess.run(["bash", VCLUSTER, "down"], capture_output=True, timeout=120)


@pytest.fixture
def node_loss(vcluster):
    """The virtual cluster for a test that kills a node; every node is back afterwards, also
    when the test failed before it brought the node back itself."""
    yield vcluster
    subprocess.run(["bash", VCLUSTER, "up"], capture_output=True, timeout=180)


def slurm_cmd(env: dict, *argv) -> str:
    proc = subprocess.run([str(a) for a in argv], capture_output=True, text=True, env={**os.environ, **env}, timeout=60)
    assert proc.returncode == 0, f"{' '.join(map(str, argv))}: {proc.stderr}"
    return proc.stdout


def job_ids(campaign: Path) -> list[str]:
    from hpc import slurm

    return [s.job_id for s in slurm.submissions(campaign)]


def states(env: dict, ids: list[str]) -> dict[str, str]:
    out = slurm_cmd(env, "squeue", "-h", "-t", "all", "-j", ",".join(ids), "-o", "%i|%T")
    return dict(line.split("|") for line in out.split())


def wait_done(env: dict, campaign: Path, timeout: float = 600) -> dict[str, str]:
    """Wait until no job of the campaign is pending or running; {job id: final state}."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = states(env, job_ids(campaign))
        if not any(s in ("PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "REQUEUED") for s in now.values()):
            return now
        time.sleep(1)
    raise AssertionError(f"jobs still running after {timeout} s: {now}")


def logs(campaign: Path) -> str:
    return "\n".join(p.read_text() for p in sorted((campaign / "slurm" / "logs").glob("*.*")))


def last_runs(text: str, stage: str) -> list[str]:
    """The runs of ``stage``'s jobs in ``logs`` text, each from its header line ("job ID (STAGE)
    on NODES, restart K, ...") to the next header, in the order they ran (job id, then restart)."""
    headers = list(re.finditer(rf"^job (\d+) \({stage}\) on \S+, restart (\d+),", text, re.MULTILINE))
    ends = [h.start() for h in headers[1:]] + [len(text)]
    runs = sorted(((int(h[1]), int(h[2])), text[h.start() : end]) for h, end in zip(headers, ends))
    return [run for _, run in runs]


def arrays(campaign: Path) -> dict[str, np.ndarray]:
    """Every array of the campaign's store but the ledgers' timing columns, by path."""
    out = {}
    root = zarr.open_group(campaign / "store.zarr", mode="r")

    def walk(group, prefix):
        for name, item in group.members():
            path = f"{prefix}{name}"
            if isinstance(item, zarr.Group):
                walk(item, path + "/")
            elif not TIMING.search(path):
                out[path] = item[...]

    walk(root, "")
    return out


def assert_same_store(got: Path, want: Path, prefixes_bitwise: tuple[str, ...], unlike: tuple[str, ...] = ()) -> None:
    """Both stores hold the same arrays; those under ``prefixes_bitwise`` bit for bit, the others
    within float32 rounding of a differently ordered sum (rtol 1e-4); the paths in ``unlike`` are
    left to the caller. The analysis's correlation coefficients (scale 1) are compared absolutely:
    a coefficient near 0, e.g. of a randomised network's Gamma, carries the weights' rounding
    differences without a relative bound."""
    a, b = arrays(got), arrays(want)
    assert sorted(a) == sorted(b)
    for path in set(b) - set(unlike):
        if path.startswith(prefixes_bitwise) or b[path].dtype.kind not in "fc":
            np.testing.assert_array_equal(a[path], b[path], err_msg=path)
        else:
            atol = 1e-4 if path.startswith("analyze/") else 1e-6
            np.testing.assert_allclose(a[path], b[path], rtol=1e-4, atol=atol, err_msg=path)


# The MD stages and the images are bitwise whatever the ranks (per-task seeds, one task per
# LAMMPS instance); training sums gradients over processes in another order.
BITWISE = ("quench/", "inherent/", "propensity/", "dataset/", "ledger/")


def test_campaign_across_two_nodes_equals_a_local_run(vcluster, tmp_path):
    multi = init_tiny(tmp_path / "multi", "kam", *SHORT)
    local = init_tiny(tmp_path / "local", "kam", *SHORT)
    out = glassdist("submit", multi, "--profile", PROFILE, env=vcluster).stdout
    assert "quench: submitted job" in out and "(2 node(s), 2 task(s))" in out
    glassdist("run", local, "--np", "2", env={"OMP_NUM_THREADS": "1"})  # meanwhile, on this host
    final = wait_done(vcluster, multi)
    text = logs(multi)
    assert set(final.values()) == {"COMPLETED"}, f"{final}\n{text[-4000:]}"
    for stage in ("quench", "inherent", "propensity"):  # one rank per node
        assert f"{stage}: 2 MPI rank(s) on 2 host(s): gdv-n1 (rank 0), gdv-n2 (rank 1)" in text, stage
    workers = set(re.findall(r"Start worker at:\s+tls://(10\.77\.0\.\d+):", text))  # TLS off loopback
    assert workers == {"10.77.0.11", "10.77.0.12"}, f"Dask workers on {workers}"  # one job per node
    ddp = set(re.findall(r"DDP rank (\d) of 2 on (gdv-n\d) \(gloo\)", text))
    assert ddp == {("0", "gdv-n1"), ("1", "gdv-n2")}, ddp
    assert ((multi / "slurm" / "secrets").stat().st_mode & 0o777) == 0o700  # TLS files, DDP rendezvous
    assert_same_store(multi, local, BITWISE)


def test_job_arrays_across_nodes_equal_a_local_run(vcluster, tmp_path):
    """`submit --array 2`: the quench and inherent job arrays' elements run on the virtual nodes, each
    its part (inherent after the whole quench array), and the stores equal a local run bit for bit."""
    multi = init_tiny(tmp_path / "multi", "kam")
    local = init_tiny(tmp_path / "local", "kam")
    out = glassdist(
        "submit", multi, "--profile", PROFILE, "--stages", "quench,inherent", "--array", "2", env=vcluster
    ).stdout
    assert "quench: submitted job" in out and "job array of 2" in out, out
    glassdist("run", local, "--np", "2", "--stages", "quench,inherent")
    final = wait_done(vcluster, multi)
    text = logs(multi)
    assert set(final.values()) == {"COMPLETED"} and len(final) == 4, f"{final}\n{text[-4000:]}"
    for part in (0, 1):
        assert f"quench, part {part} of 2 of array" in text and f"inherent, part {part} of 2 of array" in text
    assert_same_store(multi, local, BITWISE)


def _done(campaign: Path, stage: str) -> int:
    path = campaign / "store.zarr" / "ledger" / stage
    if not path.exists():
        return 0
    return int((zarr.open_group(path, mode="r")["state"][:] == 1).sum())


@pytest.mark.slow
def test_node_lost_mid_quench_costs_only_its_work(node_loss, tmp_path):
    """gdv-n2's PID 1 is killed while the 2-node quench runs: the job ends (FAILED, or NODE_FAIL
    and requeued); with the node back, the requeued job or `submit` again finishes the stage;
    every replica is done once and the store equals an undisturbed run."""
    vcluster = node_loss
    slow = ("quench.cooling_rate=0.05", "quench.replicas=12", "quench.split=[6,3,3]")
    lost = init_tiny(tmp_path / "lost", "kam", *slow)
    calm = init_tiny(tmp_path / "calm", "kam", *slow)
    glassdist("submit", lost, "--profile", PROFILE, "--stages", "quench", env=vcluster)
    assert _kill_when(lost, "quench", 2, "gdv-n2") < 12  # mid-stage: some replicas done, not all
    glassdist("quench", calm)  # the undisturbed run, meanwhile, on this host
    _finish_after_loss(vcluster, lost, "quench")
    ledger = zarr.open_group(lost / "store.zarr" / "ledger" / "quench", mode="r")
    assert (ledger["state"][:] == 1).all()
    assert_same_store(lost, calm, ("quench/",))


def _profile(tmp_path: Path, interface: str = "eth0", **stage_walltimes: str) -> Path:
    """tests/vcluster.toml with another interface and other walltimes for the named stages."""
    text = PROFILE.read_text().replace('interface = "eth0"', f'interface = "{interface}"')
    for stage, walltime in stage_walltimes.items():
        text = re.sub(rf'(\[stages\.{stage}\]\nwalltime = )"[^"]*"', rf'\1"{walltime}"', text)
    path = tmp_path / "profile.toml"
    path.write_text(text)
    return path


@pytest.mark.slow
def test_quench_over_several_allocations_equals_one_run(vcluster, tmp_path):
    """A 2-minute time limit for a stage of about 140 s on two nodes (while this host runs the
    same stage): SIGTERM before the limit (--signal=B:TERM@30, which SLURM sends up to 30 s
    earlier still: 60 to 90 s into the job), the replicas checkpoint, the job requeues itself and
    continues; the stage finishes in several allocations of one job with the result of one run."""
    slow = ("quench.cooling_rate=0.0015", "md.checkpoint_every=2000")
    split = init_tiny(tmp_path / "split", "kam", *slow)
    whole = init_tiny(tmp_path / "whole", "kam", *slow)
    glassdist("submit", split, "--profile", _profile(tmp_path, quench="00:02:00"), "--stages", "quench", env=vcluster)
    mpi_glassdist(2, "quench", whole)  # meanwhile, on this host
    final = wait_done(vcluster, split, timeout=900)
    text = logs(split)
    assert list(final.values()) == ["COMPLETED"], text[-3000:]
    restarts = [int(n) for n in re.findall(r"restart (\d+),", text)]
    assert max(restarts) >= 1 and "requeueing job" in text, text[-3000:]
    assert_same_store(split, whole, ("quench/", "ledger/"))


def test_dask_off_loopback_is_tls_and_refuses_clients_without_the_certificate(vcluster, tmp_path):
    """A SLURMCluster whose scheduler listens here on the cluster bridge (the login node's
    10.77.0.1) speaks TLS only, with certificates made for it (the workers' copies: files of
    mode 600 in a directory of mode 700): its own client gets in; a client without them, with
    another cluster's, or over plain TCP, cannot connect. (Worker jobs joining over TLS from
    the nodes: test_campaign_across_two_nodes_equals_a_local_run.)"""
    from distributed import Client
    from distributed.security import Security

    from hpc.dask_cluster import slurm_cluster

    secrets = tmp_path / "secrets"
    with slurm_cluster(_profile(tmp_path, interface="gdvbr0"), log_directory=str(tmp_path), secrets=secrets) as cluster:
        address = cluster.scheduler_address
        assert address.startswith("tls://10.77.0.1:"), address
        assert "--tls-ca-file" in cluster.job_script() and str(secrets) in cluster.job_script()
        with Client(cluster, timeout=10) as client:
            assert client.scheduler_info()["address"] == address
        assert (secrets.stat().st_mode & 0o777) == 0o700
        files = list(secrets.iterdir())
        assert len(files) == 3 and all((f.stat().st_mode & 0o777) == 0o600 for f in files), files
        (ca,) = [f for f in files if ".ca_file." in f.name]
        with pytest.raises((OSError, TimeoutError)):  # another cluster's certificates
            _connect(address, **Security.temporary().get_connection_args("client"))
        host, port = address.removeprefix("tls://").rsplit(":", 1)
        trusting = ssl.create_default_context(cafile=str(ca))  # trusts the scheduler, has no certificate
        trusting.check_hostname = False
        with (
            socket.create_connection((host, int(port)), timeout=5) as raw,
            pytest.raises(ssl.SSLError, match="CERTIFICATE_REQUIRED"),
        ):  # the scheduler's alert
            with trusting.wrap_socket(raw) as tls:
                tls.recv(1)
        with pytest.raises(TypeError, match="TLS expects"):  # no TLS configuration at all
            _connect(address)
        with pytest.raises((OSError, TimeoutError)):  # plain TCP to the TLS port
            _connect(address.replace("tls://", "tcp://"))


def _connect(address: str, **connection_args) -> None:
    """Open and close a connection to a Dask scheduler as a Client does (distributed.comm.connect with
    its handshake). The refused attempts go through this, not through Client(...): a Client whose
    constructor failed is closed by its __del__ whenever the garbage collector runs, and that close
    can wait for ever on a lock the interrupted code still holds (seen once: 900 s, then the timeout)."""
    import asyncio

    from distributed.comm import connect

    async def attempt() -> None:
        comm = await connect(address, timeout=5, **connection_args)
        await comm.close()

    asyncio.run(attempt())


def _kill_when(campaign: Path, stage: str, done: int, node: str, timeout: float = 300) -> int:
    """Kill ``node`` once ``done`` tasks of ``stage`` are done (its PID 1: a node loss); the
    tasks done just after the kill."""
    deadline = time.monotonic() + timeout
    while _done(campaign, stage) < done:
        assert time.monotonic() < deadline, logs(campaign)[-3000:]
        time.sleep(0.2)
    subprocess.run(["bash", VCLUSTER, "kill", node], check=True)
    return _done(campaign, stage)


def _finish_after_loss(vcluster: dict, campaign: Path, stages: str) -> None:
    """Once SLURM has seen the node lost (the job no longer running: requeued, failed or done),
    the node comes back; the requeued job or a new submission completes the stages."""
    last = job_ids(campaign)[-1]
    deadline = time.monotonic() + 120
    while (state := states(vcluster, [last])[last]) in ("RUNNING", "COMPLETING"):
        assert time.monotonic() < deadline, state
        time.sleep(0.5)
    subprocess.run(["bash", VCLUSTER, "up"], check=True, capture_output=True, timeout=180)
    if state not in ("PENDING", "REQUEUED", "COMPLETED"):  # not requeued: the user submits again
        glassdist("submit", campaign, "--profile", PROFILE, "--stages", stages, env=vcluster)
    wait_done(vcluster, campaign)
    final = states(vcluster, job_ids(campaign)[-1:])
    assert list(final.values()) == ["COMPLETED"], (final, logs(campaign)[-3000:])


@pytest.mark.slow
def test_dask_worker_node_lost_mid_stage_redoes_its_tasks(node_loss, tmp_path):
    """gdv-n2 is killed while the indicators stage runs on Dask worker jobs on both nodes (each
    block made 4 s longer by the HPC_INJECT_DELAY test hook): the lost worker's tasks are redone
    by the other (the scheduler drops a silent worker after hpc.dask_cluster.WORKER_TTL), or, when
    the node held the stage's own job, the requeued job or `submit` again finishes; every replica
    is done and the indicators equal an undisturbed run bit for bit.

    A replica may take a second attempt, and only for a reason the logs show: its block failed
    with the lost worker and was retried ("attempt 1 failed"), or the lost node held the stage's
    own job, which died between a finished block's attempt count and its done-mark (the ledger
    writes the count first, hpc.ledger.Ledger.mark_done), so the job's next run redoes it as
    attempt 2 (CI saw this once, with two blocks finishing together at the kill)."""
    vcluster = node_loss
    lost = init_tiny(tmp_path / "lost", "kam")
    calm = init_tiny(tmp_path / "calm", "kam")
    for d in (lost, calm):
        glassdist("quench", d)
    glassdist("submit", lost, "--profile", PROFILE, "--stages", "indicators", env={**vcluster, "HPC_INJECT_DELAY": "4"})
    glassdist("indicators", calm)
    assert _kill_when(lost, "indicators", 2, "gdv-n2") < 8  # mid-stage
    assert re.search(r"Listening to:\s+tls://10\.77\.0\.12:", logs(lost))  # gdv-n2 had a worker to lose
    _finish_after_loss(vcluster, lost, "indicators")
    ledger = zarr.open_group(lost / "store.zarr" / "ledger" / "indicators", mode="r")
    assert (ledger["state"][:] == 1).all()
    attempts, text = ledger["attempts"][:], logs(lost)
    assert set(attempts.tolist()) <= {1, 2}, attempts
    retried = set()
    for first, last in re.findall(r"task\(s\) (\d+)(?:\.\.(\d+))? attempt 1 failed", text):
        retried |= set(range(int(first), int(last or first) + 1))
    for task in np.flatnonzero(attempts == 2):
        assert task in retried or len(last_runs(text, "indicators")) >= 2, (task, text[-3000:])
    assert_same_store(lost, calm, ("quench/", "indicators/"), unlike=("ledger/indicators/attempts",))


@pytest.mark.slow
def test_ddp_node_lost_mid_epoch_resumes_from_its_checkpoint(node_loss, tmp_path):
    """Training on two nodes (one process each) loses gdv-n2 after a few epochs: the job ends,
    runs again (requeued or submitted again) and resumes from its last epoch checkpoint. One
    network (no ensemble, no label-shuffled control), so every epoch line after the loss is its."""
    vcluster = node_loss
    one = ("train.epochs=30", "train.ensemble=1", "train.shuffled_control=false")
    lost = init_tiny(tmp_path / "lost", "kam", *one)
    mpi_glassdist(2, "quench", lost)
    glassdist("dataset", lost)
    glassdist("submit", lost, "--profile", PROFILE, "--stages", "train", env=vcluster)
    deadline = time.monotonic() + 300
    while not re.search(r"epoch [3-9]/30", logs(lost)):
        assert time.monotonic() < deadline, logs(lost)[-3000:]
        time.sleep(0.2)
    subprocess.run(["bash", VCLUSTER, "kill", "gdv-n2"], check=True)
    _finish_after_loss(vcluster, lost, "train")
    runs = last_runs(logs(lost), "train")
    assert len(runs) >= 2, runs  # the one the node loss ended, and the one that finished
    epochs = [int(n) for n in re.findall(r"epoch (\d+)/30", runs[-1])]
    again = runs[-1]
    assert epochs and epochs[0] >= 2 and epochs[-1] == 30, again[-3000:]  # resumed from a checkpoint, not restarted
    assert (zarr.open_group(lost / "store.zarr" / "ledger" / "train", mode="r")["state"][:] == 1).all()
