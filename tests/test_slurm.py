"""SLURM: profiles, job sizing, rendered batch scripts (dry run), and real submissions to a
single-node SLURM on localhost (started by .ci/slurm-setup.sh; skipped when absent)."""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np
import pytest
import zarr

from glassdist.cli import main
from glassdist.pipeline import PIPELINE
from hpc import localhost, slurm
from hpc.dask_cluster import LOG_ENV, dask_client
from hpc.profile import PROFILE_DIR, ProfileError, load_profile, walltime_seconds

from .conftest import TINY, TINY_COUNTS, glassdist

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SHIPPED = ("generic-cpu", "gpu-cluster", "localhost-slurm")


def _cli(*args) -> tuple[int, str, str]:
    """The glassdist CLI in this process (no interpreter start-up): (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()


def _init(directory: Path, *sets: str) -> Path:
    """A tiny KAM campaign (conftest's TINY) with more overrides."""
    sets = [*TINY, TINY_COUNTS["kam"], *sets]
    code, _, err = _cli("init", directory, "--preset", "demo-kam", *[a for x in sets for a in ("--set", x)])
    assert code == 0, err
    return directory


def _submit(*args) -> str:
    code, out, err = _cli("submit", *args)
    assert code == 0, out + err
    return out


# ---- profiles -------------------------------------------------------------------------------
@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_profiles_load_and_comment_every_key(name):
    p = load_profile(name)
    assert p.node["cores"] >= 1 and p.environment["mpi_launcher"] in ("srun", "mpiexec", "localhost")
    assert set(p.stages) == {
        "quench",
        "inherent",
        "propensity",
        "dataset",
        "train",
        "gradcam",
        "indicators",
        "analyze",
        "report",
    }
    text = (PROFILE_DIR / f"{name}.toml").read_text()
    uncommented = [ln for ln in text.splitlines() if re.match(r"^\s*\w+\s*=", ln) and "#" not in ln]
    assert not uncommented


def test_walltime_formats():
    assert walltime_seconds("30") == 1800
    assert walltime_seconds("10:30") == 630
    assert walltime_seconds("01:02:03") == 3723
    assert walltime_seconds("2-00") == 2 * 86400
    assert walltime_seconds("1-02:03:04") == 86400 + 2 * 3600 + 3 * 60 + 4
    with pytest.raises(ValueError):
        walltime_seconds("1h")


def _profile_with(tmp_path, old: str, new: str) -> Path:
    text = (PROFILE_DIR / "localhost-slurm.toml").read_text()
    assert old in text
    path = tmp_path / "p.toml"
    path.write_text(text.replace(old, new, 1))
    return path


@pytest.mark.parametrize(
    "old,new,key",
    [
        ('partition = "debug"', 'partiton = "debug"', "slurm.partiton"),
        ('partition = "debug"', "", "slurm.partition"),
        ('mpi_launcher = "localhost"', 'mpi_launcher = "aprun"', "environment.mpi_launcher"),
        ("max_nodes = 1 ", "max_nodes = 2 ", "stages.quench.max_nodes"),  # localhost: one node
        ('walltime = "00:20:00"', 'walltime = "20 minutes"', "stages.quench.walltime"),
        ('walltime = "00:20:00"', 'walltime = "00:00:20"', "stages.quench.walltime"),  # < signal
        ("cores = 2 ", "cores = 0 ", "node.cores"),
        ("processes = 2 ", "processes = 4 ", "dask.processes"),  # > dask.cores
        ('interface = "lo"', "", "cluster.interface"),
    ],
)
def test_bad_profile_names_the_key(tmp_path, old, new, key):
    with pytest.raises(ProfileError) as err:
        load_profile(_profile_with(tmp_path, old, new))
    assert err.value.key == key and "Fix:" in str(err.value)


def test_unknown_profile_lists_the_shipped_ones():
    with pytest.raises(ProfileError, match="generic-cpu, gpu-cluster, localhost-slurm"):
        load_profile("no-such-cluster")


# ---- sizing ---------------------------------------------------------------------------------
def test_mpi_job_size_follows_pending_work_and_profile_limits():
    p = load_profile("generic-cpu")  # 128 cores per node, quench at most 8 nodes

    def quench(pending, k=1):
        return slurm.size(slurm.Job("quench", "mpi", ["x"], pending, k), p)

    assert (quench(6).nodes, quench(6).ntasks) == (1, 6)  # fewer tasks than cores
    assert (quench(300).nodes, quench(300).ntasks) == (3, 300)  # ceil(300 / 128) nodes
    assert (quench(5000).nodes, quench(5000).ntasks) == (8, 1024)  # capped at max_nodes
    assert quench(5, k=4).ntasks == 20 and quench(5000, k=3).ntasks == 1023  # whole groups
    train = slurm.size(slurm.Job("train", "ddp", ["x"]), load_profile("gpu-cluster"))
    # DDP over 2 nodes: srun starts all 8 processes, 4 per node, 16 cores each
    assert (train.nodes, train.ntasks, train.ntasks_per_node, train.cpus_per_task, train.gpus_per_node) == (
        2,
        8,
        4,
        16,
        4,
    )
    dataset = slurm.size(slurm.Job("dataset", "dask", ["x"]), p)
    assert (dataset.nodes, dataset.ntasks, dataset.cpus_per_task) == (1, 1, 1)


# ---- dry run: the rendered scripts as text -----------------------------------------------------
@pytest.fixture(scope="module")
def campaign(tmp_path_factory):
    return _init(tmp_path_factory.mktemp("slurm") / "c", "quench.replicas=6", "quench.split=[2,2,2]")


def _scripts(output: str) -> dict[str, tuple[str, str]]:
    """{stage: (sbatch command line, script text)} from a dry run's output."""
    out = {}
    for block in output.split("==> ")[1:]:
        header, sbatch_line, script = block.split("\n", 2)
        stage = re.search(r"\d{3}-(\w+)\.sh", header).group(1)
        out[stage] = (sbatch_line, script)
    return out


def test_dry_run_generic_cpu_renders_every_stage(campaign):
    scripts = _scripts(_submit(campaign, "--profile", "generic-cpu", "--dry-run"))
    assert list(scripts) == [
        s
        for s in ("quench", "inherent", "dataset", "train", "gradcam", "indicators", "propensity", "analyze", "report")
        if s in scripts
    ]
    assert "quench" in scripts and "inherent" in scripts and not (campaign / "slurm").exists()
    line, q = scripts["quench"]
    assert line == f"$ sbatch --parsable {campaign}/slurm/scripts/001-quench.sh"
    for text in (
        "#SBATCH --job-name=gd-quench-c\n",
        "#SBATCH --partition=compute\n#SBATCH --account=myproject\n#SBATCH --time=1-00:00:00\n",
        "#SBATCH --nodes=1\n#SBATCH --ntasks=6\n#SBATCH --cpus-per-task=1\n",
        "#SBATCH --signal=B:TERM@300\n#SBATCH --requeue\n",
        f"#SBATCH --output={campaign}/slurm/logs/%x-%j.out\n",
        "module load openmpi/4.1\nsource $HOME/venvs/glassdist/bin/activate\n",
        f"# MPI task farm: 6 rank(s) on 1 node(s), 6 task(s) pending.\n"
        f"srun --ntasks=6 --mpi=pmix glassdist quench {campaign} &\n",
        'scontrol requeue "$SLURM_JOB_ID"',  # requeue_limit = 5
    ):
        assert text in q, text
    assert "--qos" not in q and "--mem" not in q and "--gpus" not in q
    assert (
        scripts["inherent"][0] == f"$ sbatch --parsable --dependency=afterok:<quench> "
        f"{campaign}/slurm/scripts/002-inherent.sh"
    )
    if "propensity" in scripts:  # 1 configuration x 2 temperatures x 15 samples = 30 runs
        assert "#SBATCH --ntasks=30\n" in scripts["propensity"][1]
    for _, text in scripts.values():  # real bash parses every script
        subprocess.run(["bash", "-n"], input=text, text=True, check=True)


def test_dry_run_array_makes_the_mpi_stages_job_arrays(campaign):
    """`submit --array 4%2`: quench and inherent become job arrays of 4 elements, at most 2 at once,
    element I running part I of 4 (its own log, ranks for its part); the Dask stage stays one job."""
    scripts = _scripts(_submit(campaign, "--profile", "generic-cpu", "--dry-run", "--array", "4%2"))
    for stage in ("quench", "inherent"):
        text = scripts[stage][1]
        assert "#SBATCH --array=0-3%2\n" in text and f"{campaign}/slurm/logs/%x-%A_%a.out\n" in text, stage
        assert f'glassdist {stage} {campaign} --chunk "${{SLURM_ARRAY_TASK_ID}}/4" &\n' in text, stage
        subprocess.run(["bash", "-n"], input=text, text=True, check=True)
    assert "#SBATCH --ntasks=2\n" in scripts["quench"][1]  # 6 replicas: 2 per part
    assert "--array" not in scripts["dataset"][1] and "--chunk" not in scripts["dataset"][1]
    assert scripts["inherent"][0].startswith("$ sbatch --parsable --dependency=afterok:<quench> ")
    for bad in ("0", "4%0", "x", "-2"):
        code, out, err = _cli("submit", campaign, "--profile", "generic-cpu", "--dry-run", "--array", bad)
        assert code == 2 and "--array" in err and "K%M" in err, (bad, err)


def test_chunks_cover_every_task_once_and_bad_chunks_exit_2(campaign):
    from glassdist.stages.common import chunk_tasks

    todo = [0, 1, 2, 4, 5, 6, 9]
    parts = [chunk_tasks(todo, 10, i, 3) for i in range(3)]
    assert parts == [[0, 1, 2], [4, 5, 6], [9]] and sum(parts, []) == todo
    assert chunk_tasks(todo, 2, 3, 4) == []  # more parts than tasks: some do nothing
    for bad in ("3/3", "1", "a/b", "2/1"):
        code, _, err = _cli("quench", campaign, "--chunk", bad)
        assert code == 2 and "0 <= I < K" in err, (bad, err)


def test_array_state_is_one_state_for_the_elements():
    S = slurm.JobState
    assert slurm.array_state([S("COMPLETED", "None")] * 3).state == "COMPLETED"
    assert (
        slurm.array_state([S("COMPLETED", "None"), S("PENDING", "Dependency"), S("RUNNING", "None")]).state == "RUNNING"
    )
    assert slurm.array_state([S("COMPLETED", "None"), S("FAILED", "None")]).state == "FAILED"
    assert slurm.array_state([]).state == "UNKNOWN"


def test_dry_run_gpu_cluster_train_and_dask_stages(campaign, tmp_path):
    from glassdist.pipeline import STAGES
    from glassdist.commands.submit import job_kind
    from hpc.dask_cluster import PROFILE_ENV

    profile = load_profile("gpu-cluster")
    train = slurm.render(
        slurm.Job("train", job_kind("train"), ["glassdist", "train", str(campaign)]), profile, campaign
    )
    for text in (
        "#SBATCH --qos=normal\n",
        "#SBATCH --nodes=2\n#SBATCH --ntasks=8\n#SBATCH --ntasks-per-node=4\n",
        "#SBATCH --cpus-per-task=16\n#SBATCH --mem=480G\n#SBATCH --gpus-per-node=4\n",
        "#SBATCH --exclusive\n",
        "export NCCL_SOCKET_IFNAME=ib0\n",
        "export GLOO_SOCKET_IFNAME=ib0\n",
        'export HPC_DDP_INIT="file://$secrets/ddp-$SLURM_JOB_ID-$(od -An -N16 -tx1 /dev/urandom',
        f"umask 077\nsrun --ntasks-per-node=4 glassdist train {campaign} &\n",
    ):
        assert text in train, text
    analyze = slurm.render(slurm.Job("analyze", "dask", ["glassdist", "analyze", str(campaign)]), profile, campaign)
    assert f"export {PROFILE_ENV}={PROFILE_DIR.resolve()}/gpu-cluster.toml\n" in analyze
    assert f"export {LOG_ENV}={campaign}/slurm/logs\n" in analyze
    assert "# Dask driver: workers are 2 SLURM job(s) of 16 core(s), 64GB.\n" in analyze
    assert STAGES["analyze"].needs == ("gradcam", "indicators", "propensity") and job_kind("quench") == "mpi"

    local = load_profile("localhost-slurm")
    quench = slurm.render(
        slurm.Job("quench", "mpi", ["glassdist", "quench", str(campaign)], pending=2), local, campaign
    )
    launch = " ".join(localhost.mpiexec_argv(2, ["glassdist", "quench", str(campaign)]))
    assert f"{launch} &\n" in quench and "export UCX_NET_DEVICES=lo\n" in quench  # loopback only
    train = slurm.render(slurm.Job("train", "ddp", ["glassdist", "train", str(campaign)]), local, campaign)
    assert f"# DDP: 1 node(s) x 1 process(es).\nsrun --ntasks=1 glassdist train {campaign} &\n" in train
    two = slurm.render(
        slurm.Job("train", "ddp", ["glassdist", "train", str(campaign)]),
        load_profile(_profile_with(tmp_path, "tasks_per_node = 1 ", "tasks_per_node = 2 ")),
        campaign,
    )
    assert f"srun --ntasks=1 glassdist train {campaign} --nproc 2 &\n" in two
    analyze = slurm.render(slurm.Job("analyze", "dask", ["glassdist", "analyze", str(campaign)]), local, campaign)
    assert "#SBATCH --cpus-per-task=2\n" in analyze  # jobs = 0: the workers run in this job
    assert "# Dask stage: 2 worker process(es) on this job's 2 core(s).\n" in analyze


RANK_SCRIPT = """
import os, subprocess, sys
import torch
import torch.distributed as dist

rank, url = int(sys.argv[1]), os.environ["HPC_DDP_INIT"]
dist.init_process_group("gloo", init_method=url, rank=rank, world_size=2)
total = torch.ones(1)
dist.all_reduce(total)
if rank == 0:  # while the rendezvous file exists: its mode, and what another user can do
    path = url.removeprefix("file://")
    print("sum", int(total.item()), "mode", oct(os.stat(path).st_mode & 0o777),
          "directory", oct(os.stat(os.path.dirname(path)).st_mode & 0o777), flush=True)
    outsider = "import os, sys\\nfor f in (lambda: os.listdir(sys.argv[1]), lambda: open(sys.argv[2])):\\n" \\
               "    try:\\n        f(); print('allowed')\\n    except PermissionError:\\n        print('refused')"
    print(subprocess.run(["/usr/bin/python3", "-c", outsider, os.path.dirname(path), path], capture_output=True,
                         text=True, user="nobody", group="nogroup", extra_groups=[]).stdout, flush=True)
dist.barrier()
dist.destroy_process_group()
"""


@pytest.mark.skipif(
    os.geteuid() != 0 or not os.path.exists("/usr/bin/python3"),
    reason="needs root, to run the outsider as another user (nobody) with the system's python3",
)
def test_ddp_rendezvous_is_closed_to_another_user(tmp_path):
    """The multi-node DDP job's own rendezvous lines (jobs/ddp.sh), run by bash: two processes that
    know the secret meet through the file and reduce a tensor; a process of another user, which
    knows the shared directory but not the secret, can neither list the directory (to learn the
    file's name) nor open the file (directory 700, file 600)."""
    shared = Path(tempfile.mkdtemp(prefix="gd-shared-"))  # a shared filesystem: everyone may enter it
    try:
        shared.chmod(0o755)
        campaign = shared / "c"
        text = slurm.render(
            slurm.Job("train", "ddp", ["glassdist", "train", str(campaign)]), load_profile("gpu-cluster"), campaign
        )
        rendezvous = text[text.index("secrets=") : text.index("umask 077\n") + len("umask 077\n")]
        (tmp_path / "rank.py").write_text(RANK_SCRIPT)
        ranks = " & ".join(f"{sys.executable} {tmp_path / 'rank.py'} {r}" for r in (0, 1))
        script = f"set -e\nexport SLURM_JOB_ID=4242\n{rendezvous}{ranks} & wait -n && wait -n"  # both ranks ok
        proc = subprocess.run(
            ["bash", "-c", script],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "GLOO_SOCKET_IFNAME": "lo"},
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "sum 2 mode 0o600 directory 0o700" in proc.stdout, proc.stdout
        assert proc.stdout.split().count("refused") == 2 and "allowed" not in proc.stdout, proc.stdout
    finally:
        shutil.rmtree(shared)


def test_per_stage_template_overrides_the_kind(tmp_path, campaign):
    templates = tmp_path / "jobs"
    shutil.copytree(slurm.TEMPLATE_DIR, templates)
    (templates / "quench.sh").write_text(
        '{% extends "mpi.sh" %}{% block run %}echo custom {{ ntasks }} &\n{% endblock %}'
    )
    out = _submit(campaign, "--profile", "localhost-slurm", "--stages", "quench", "--dry-run", "--templates", templates)
    assert "\necho custom 2 &\n" in out and "from quench.sh with profile" in out


EXAMPLES = ROOT / "jobs" / "examples"
EXAMPLE_DIR = "/path/to/campaigns"  # the campaign directory of the shipped example scripts
EXAMPLE_PROFILES = "/path/to/glassdist/hpc/profiles"  # where glassdist's profiles are installed


def rendered_examples(preset: str, where: Path) -> dict[str, str]:
    """{script name: text} of `glassdist submit --dry-run` for a fresh campaign of ``preset`` in
    EXAMPLE_DIR on the generic-cpu profile (installed in EXAMPLE_PROFILES): no path of this machine."""
    code, _, err = _cli("init", where / preset, "--preset", preset)
    assert code == 0, err
    out = (
        _submit(where / preset, "--profile", "generic-cpu", "--dry-run")
        .replace(str(where), EXAMPLE_DIR)
        .replace(str(PROFILE_DIR.resolve()), EXAMPLE_PROFILES)
    )
    parts = re.split(r"^==> \S+/(\d{3}-\w+\.sh) \(dry run: not written\)\n(\$ [^\n]*)\n", out, flags=re.M)
    scripts = dict(zip(parts[1::3], parts[3::3]))
    scripts["sbatch.txt"] = "# the submissions in order; <stage>: the job id of that stage's submission\n" + "".join(
        f"{line}\n" for line in parts[2::3]
    )
    return scripts


@pytest.mark.parametrize("preset", ["paper-kam", "paper-abm", "ka3d"])
def test_shipped_example_scripts_are_what_submit_renders(tmp_path, preset):
    """jobs/examples/PRESET/ holds the batch scripts `glassdist submit --dry-run` renders for a fresh
    campaign of the preset (every stage) and their sbatch lines with the dependencies
    (GLASSDIST_WRITE_EXAMPLES=1 rewrites them after a change of the templates or presets)."""
    scripts = rendered_examples(preset, tmp_path)
    assert list(scripts) == [f"{i + 1:03d}-{s}.sh" for i, s in enumerate(PIPELINE)] + ["sbatch.txt"]
    shipped = EXAMPLES / preset
    if os.environ.get("GLASSDIST_WRITE_EXAMPLES") == "1":
        shutil.rmtree(shipped, ignore_errors=True)
        shipped.mkdir(parents=True)
        for name, text in scripts.items():
            (shipped / name).write_text(text)
    assert sorted(p.name for p in shipped.iterdir()) == sorted(scripts)
    for name, text in scripts.items():
        assert (shipped / name).read_text() == text, (
            f"{shipped / name} is stale: rerun this test with GLASSDIST_WRITE_EXAMPLES=1"
        )
    assert f"cd {EXAMPLE_DIR}/{preset}\n" in scripts["001-quench.sh"]
    assert not [name for name, text in scripts.items() if str(ROOT) in text]  # no path of this checkout


def test_setup_lists_every_package():
    """setup.cfg lists the packages by name (jobs/ is mapped to hpc.jobs): the list is the tree's."""
    import configparser

    from setuptools import find_packages

    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    listed = config["options"]["packages"].split()
    assert sorted(listed) == sorted(find_packages(ROOT, include=["glassdist*", "hpc*"]) + ["hpc.jobs"])


def test_submit_bad_input_exits_2(campaign):
    res = glassdist("submit", campaign, "--profile", "no-such", "--dry-run", check=False)  # the real CLI
    assert res.returncode == 2 and "neither a shipped profile nor a file" in res.stderr
    code, _, err = _cli("submit", campaign, "--profile", "localhost-slurm", "--stages", "bogus")
    assert code == 2 and "unknown stage" in err


# ---- real SLURM -----------------------------------------------------------------------------
def _idle_nodes() -> list[str]:
    res = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True)
    return [s for s in res.stdout.split() if s in ("idle", "mixed")]


@pytest.fixture(scope="session")
def slurm_cluster():
    """A live SLURM with an idle node. Installs nothing: when the daemons are installed but
    down and we are root, starts them with .ci/slurm-setup.sh (no install happens then)."""
    if shutil.which("sinfo") is None or shutil.which("slurmctld") is None:
        pytest.skip(
            "SLURM is not installed (no sinfo/slurmctld): as root, `bash .ci/slurm-setup.sh` "
            "installs and starts a single-node cluster"
        )
    if not _idle_nodes() and os.geteuid() == 0 and all(map(shutil.which, ("munged", "slurmd"))):
        subprocess.run(["bash", str(ROOT / ".ci" / "slurm-setup.sh")], capture_output=True, timeout=120)
    if not _idle_nodes():
        pytest.skip(
            "SLURM is installed but no node is idle (see `sinfo`): start the single-node "
            "cluster with `bash .ci/slurm-setup.sh` as root"
        )
    return True


@pytest.fixture
def slurm_env(slurm_cluster, monkeypatch, tmp_path):
    """Jobs inherit the submitting environment: put this venv's glassdist and mpiexec first.
    Afterwards, cancel whatever the test's campaigns left in the queue (a failed test)."""
    monkeypatch.setenv("PATH", f"{BIN}{os.pathsep}{os.environ['PATH']}")
    yield
    for book in tmp_path.glob("*/slurm/jobs.json"):
        slurm.cancel([s.job_id for s in slurm.submissions(book.parent.parent)])


def _wait(job_ids: list[str], timeout: float = 300) -> dict[str, slurm.JobState]:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        states = slurm.job_states(job_ids)
        if not any(s.active and not s.stuck for s in states.values()):
            return states
        time.sleep(1)
    raise AssertionError(f"jobs {job_ids} still running after {timeout} s: {slurm.job_states(job_ids)}")


def _done(campaign: Path, stage: str = "quench") -> int:
    path = campaign / "store.zarr"
    if not (path / "ledger" / stage / "state" / "zarr.json").exists():
        return 0
    return int((zarr.open_group(path, mode="r")[f"ledger/{stage}/state"][:] == 1).sum())


def _local_twin(campaign: Path, tmp: Path) -> Path:
    """The same campaign file in a new directory, its quench run locally (serially)."""
    twin = tmp / "local"
    twin.mkdir()
    shutil.copy(campaign / "campaign.toml", twin / "campaign.toml")
    glassdist("quench", twin)
    return twin


def _same_quench(a: Path, b: Path) -> None:
    ga, gb = (zarr.open_group(d / "store.zarr", mode="r") for d in (a, b))
    assert np.array_equal(ga["ledger/quench/state"][:], gb["ledger/quench/state"][:])
    assert (ga["ledger/quench/state"][:] == 1).all()
    for name in ("positions", "pe", "thermo_pe"):
        assert np.array_equal(ga[f"quench/{name}"][:], gb[f"quench/{name}"][:]), name


def _submit_and_interrupt(
    c: Path, stages: str, interrupt: list[str], profile: str | Path = "localhost-slurm"
) -> list[slurm.Submission]:
    """Submit, wait until the quench job has finished one replica, then run `interrupt + [id]`."""
    _submit(c, "--profile", profile, "--stages", stages)
    subs = slurm.submissions(c)
    end = time.monotonic() + 240
    while _done(c) < 1:
        assert time.monotonic() < end, "quench job made no progress"
        time.sleep(0.2)
    subprocess.run([*interrupt, subs[0].job_id], check=True)
    return subs


@pytest.mark.slurm
@pytest.mark.slow
def test_walltime_signal_checkpoints_and_job_requeues_itself(slurm_env, tmp_path):
    profile = _profile_with(tmp_path, "requeue_limit = 0 ", "requeue_limit = 1 ")
    c = _init(
        tmp_path / "c",
        "quench.replicas=8",
        "quench.split=[4,2,2]",
        "quench.cooling_rate=0.05",
        "quench.snapshot_replicas=1",
        "quench.snapshot_temperatures=[0.05,0.1,0.2,0.3,0.4,0.5]",
    )
    # SIGTERM to the batch shell only: exactly what --signal=B:TERM@30 sends before the limit
    quench, inherent = _submit_and_interrupt(c, "quench,inherent", ["scancel", "--signal=TERM", "--batch"], profile)
    assert inherent.after == [quench.job_id]
    # a requeued job waits cred_expire seconds before it starts again (slurm-setup.sh: 20 s)
    states = _wait([quench.job_id, inherent.job_id])
    assert all(s.state == "COMPLETED" for s in states.values()), states
    log = (c / "slurm" / "logs" / f"gd-quench-c-{quench.job_id}.out").read_text()
    first_run, second_run = log.split(f"requeueing job {quench.job_id} to continue quench")
    assert "SIGTERM (walltime near, or scancel): asking quench to checkpoint" in first_run
    assert "quench exited with status 1" in first_run  # clean exit, tasks left for later
    assert "restart 1" in second_run and "quench exited with status 0" in second_run
    assert _done(c) == 8 and _done(c, "inherent") == 6
    assert len(slurm.submissions(c)) == 2  # the chain finished without a second submission


@pytest.mark.slurm
@pytest.mark.slow
def test_scancel_mid_run_resubmit_completes_and_equals_local_run(slurm_env, tmp_path):
    c = _init(
        tmp_path / "c",
        "quench.replicas=6",
        "quench.split=[2,2,2]",
        "quench.cooling_rate=0.05",
        "quench.snapshot_replicas=1",
        "quench.snapshot_temperatures=[0.05,0.1,0.2,0.3,0.4,0.5]",
    )
    quench, inherent = _submit_and_interrupt(c, "quench,inherent", ["scancel"])
    assert quench.nodes == 1 and quench.ntasks == 2 and inherent.after == [quench.job_id]
    assert _wait([quench.job_id])[quench.job_id].state == "CANCELLED"
    done = _done(c)
    assert done < 6
    assert slurm.job_states([inherent.job_id])[inherent.job_id].state == "PENDING"  # never to run

    out = _submit(c, "--profile", "localhost-slurm", "--stages", "quench,inherent")
    assert f"cancelling 1 job(s) left waiting on a failed job: {inherent.job_id}" in out
    quench2, inherent2 = slurm.submissions(c)[2:]
    assert f"quench: submitted job {quench2.job_id} (1 node(s), {min(2, 6 - done)} task(s))" in out
    assert inherent2.after == [quench2.job_id]
    states = _wait([quench2.job_id, inherent2.job_id])
    assert all(s.state == "COMPLETED" for s in states.values()), states
    assert slurm.job_states([inherent.job_id])[inherent.job_id].state == "CANCELLED"
    log = (c / "slurm" / "logs" / f"gd-quench-c-{quench2.job_id}.out").read_text()
    assert "quench exited with status 0" in log
    assert _done(c, "inherent") == 6

    status = _cli("status", c)[1]
    assert re.search(rf"quench\s+6\s+0\s+0\s+{quench2.job_id} COMPLETED", status), status
    assert "nothing to submit" in _submit(c, "--profile", "localhost-slurm", "--stages", "quench,inherent")
    assert len(slurm.submissions(c)) == 4
    _same_quench(c, _local_twin(c, tmp_path))


@pytest.mark.slurm
@pytest.mark.slow
def test_job_arrays_run_the_parts_at_once_and_equal_a_local_run(slurm_env, tmp_path):
    """`submit --array 3`: quench and inherent as job arrays of 3 elements on the real SLURM; every
    element does its part (its own log), inherent waits for the whole quench array, the last part
    fits T*, and the store equals a local run."""
    c = _init(
        tmp_path / "c",
        "quench.replicas=6",
        "quench.split=[2,2,2]",
        "quench.snapshot_replicas=2",
        "quench.snapshot_temperatures=[0.05,0.1,0.2,0.3,0.4,0.5]",
    )
    out = _submit(c, "--profile", "localhost-slurm", "--stages", "quench,inherent", "--array", "3")
    quench, inherent = slurm.submissions(c)
    assert f"quench: submitted job {quench.job_id} (job array of 3, each 1 node(s), 2 task(s))" in out, out
    assert inherent.after == [quench.job_id]
    states = _wait([quench.job_id, inherent.job_id])
    assert all(s.state == "COMPLETED" for s in states.values()), states
    for stage, job in (("quench", quench), ("inherent", inherent)):
        for i in range(3):
            log = (c / "slurm" / "logs" / f"gd-{stage}-c-{job.job_id}_{i}.out").read_text()
            assert f"part {i} of 3 of array {job.job_id}" in log and f"{stage} exited with status 0" in log, log
    assert _done(c) == 6 and _done(c, "inherent") == 12
    assert "t_star" in zarr.open_group(c / "store.zarr", mode="r")["inherent"].attrs
    _same_quench(c, _local_twin(c, tmp_path))
    assert "nothing to submit" in _submit(c, "--profile", "localhost-slurm", "--stages", "quench,inherent")


def _square(x):
    return x * x


@pytest.mark.slurm
def test_dask_workers_as_slurm_jobs(slurm_cluster, tmp_path, monkeypatch):
    profile = _profile_with(tmp_path, "jobs = 0 ", "jobs = 1 ")  # one worker job of 2 processes
    monkeypatch.setenv(LOG_ENV, str(tmp_path))
    with dask_client(profile=profile) as client:
        client.wait_for_workers(2, timeout=120)
        workers = client.scheduler_info()["workers"].values()
        assert [w["host"] for w in workers] == ["127.0.0.1", "127.0.0.1"]
        assert sum(client.gather(client.map(_square, range(10)))) == 285
        jobs = subprocess.run(["squeue", "-h", "-o", "%j %T"], capture_output=True, text=True).stdout
        assert "gd-dask RUNNING" in jobs
    assert "Start worker at:      tcp://127.0.0.1:" in "".join(p.read_text() for p in tmp_path.glob("gd-dask-*.err"))
