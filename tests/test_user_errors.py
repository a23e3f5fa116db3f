"""What a new user hits (issue 21): stages refusing incomplete or stale inputs, a failed T* fit
reported as failed, CLI mistakes as one line with exit 2 and nothing written, `status`
validating like `run`, Ctrl-C as exit 130, a foreign Grad-CAM discarded in place."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
from contextlib import redirect_stderr, redirect_stdout

import numpy as np
import pytest

from glassdist.cli import main
from glassdist.spec import apply_overrides, load
from glassdist.pipeline import PIPELINE
from glassdist.store import Store

from .conftest import BIN, glassdist, init_tiny, interrupt

EXTRA = ["train.epochs=2", "dask.workers=1", "quench.snapshot_replicas=0"]


def tree(d) -> list[str]:
    """Every path under d with its size and modification time: what a command wrote."""
    return sorted(f"{p} {p.stat().st_size} {p.stat().st_mtime_ns}" for p in d.rglob("*"))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny campaign whose quench, dataset and train are done."""
    d = init_tiny(tmp_path_factory.mktemp("user") / "c", "kam", *EXTRA)
    glassdist("run", d, "--stages", "quench,dataset,train", "--np", "2")
    return d


def cli(*args) -> tuple[int, str, str]:
    """The glassdist CLI in this process (no interpreter start): (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()


def copy(d, tmp_path, name="c"):
    return shutil.copytree(d, tmp_path / name, symlinks=True)


def test_train_refuses_an_interrupted_dataset(trained, tmp_path):
    d = copy(trained, tmp_path)
    shutil.rmtree(d / "store.zarr" / "train")
    shutil.rmtree(d / "store.zarr" / "ledger" / "train")
    ledger = Store(d).ledger("dataset")
    ledger.state[5], ledger.state[6] = 0, 0  # what a kill in the middle of the dataset stage leaves
    before = tree(d)
    proc = glassdist("train", d, check=False)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.count("\n") == 1 and "'dataset', which is incomplete" in proc.stderr
    assert f"glassdist dataset {d}" in proc.stderr
    assert tree(d) == before
    status = glassdist("status", d).stdout
    assert [ln.split()[-1] for ln in status.splitlines() if ln.startswith(("dataset", "train"))] == [
        "incomplete",
        "started",
    ]


def test_a_stage_whose_inputs_changed_is_stale_and_rerun(trained, tmp_path):
    d = copy(trained, tmp_path)
    assert "stale" not in glassdist("status", d).stdout
    Store(d).ledger("dataset").attempts[3] = 2  # replica 3's images were redone by another attempt
    status = glassdist("status", d).stdout
    assert "stale: train: the results of dataset changed since it ran" in status
    out = glassdist("run", d, "--stages", "quench,dataset,train", "--np", "1").stdout
    assert "== dataset == done" in out and "its results are recomputed" in out and "epoch 2/2" in out
    assert "stale" not in glassdist("status", d).stdout


def test_submit_resubmits_a_stale_stage(trained, tmp_path):
    """`submit` plans from Store.stage_state: a done stage whose inputs changed is submitted again,
    with the stages after it; done and fresh stages are not."""
    d = copy(trained, tmp_path)

    def planned():
        code, out, err = cli("submit", d, "--profile", "generic-cpu", "--dry-run", "--stages", "quench,dataset,train")
        assert code == 0, err
        return re.findall(r"==> \S+/\d{3}-(\w+)\.sh", out)

    assert planned() == []
    Store(d).ledger("dataset").attempts[3] = 2  # replica 3's images were redone by another attempt
    assert planned() == ["train"]


def test_status_validates_like_run(trained, tmp_path):
    missing = glassdist("status", tmp_path / "nosuchdir", check=False)
    assert missing.returncode == 2 and "is not a directory" in missing.stderr and not missing.stdout
    d = copy(trained, tmp_path)
    toml = d / "campaign.toml"
    text = toml.read_text()
    toml.write_text(text.replace("[quench]", "[quench", 1))
    broken = glassdist("status", d, check=False)
    assert broken.returncode == 2 and "is not valid TOML" in broken.stderr and not broken.stdout
    toml.write_text(apply_overrides(text, ["quench.replicas=10", "quench.split=[6,2,2]"]))
    changed = glassdist("status", d, check=False)
    assert changed.returncode == 2, changed.stdout
    states = {ln.split()[0]: ln.split()[-1] for ln in changed.stdout.splitlines()[1:10]}
    assert states["quench"] == states["dataset"] == states["train"] == "stale"
    assert "campaign.toml changed [" in changed.stdout and "refuses those" in changed.stdout
    assert glassdist("run", d, check=False).returncode == 2


def test_cli_mistakes_are_one_line_and_write_nothing(trained, tmp_path):
    d = copy(trained, tmp_path)
    before = tree(d)
    cases = [
        (
            ["export", d, "--what", "fields", "--format", "csv", "-o", tmp_path / "f.csv", "--replicas", "5-2"],
            "--replicas '5-2'",
        ),
        (
            ["export", d, "--what", "fields", "--format", "csv", "-o", tmp_path / "no" / "dir" / "f.csv"],
            "does not exist",
        ),
        (["run", d, "--np", "0"], "--np 0"),
        (["estimate", d, "--ranks", "-1"], "--ranks -1"),
        (["train", d, "--nproc", "0"], "--nproc 0"),
        (["gradcam", d, "--model", tmp_path / "nowhere" / "model.pt"], "does not exist"),
        (["gradcam", d, "--model", d / "campaign.toml"], "has no campaign.toml"),
    ]
    for args, words in cases:
        code, _, err = cli(*args)
        assert code == 2 and err.count("\n") == 1 and words in err, (args, err)
        assert "campaign key" not in err
    assert tree(d) == before and not list(tmp_path.glob("*.csv"))


def test_status_into_a_closed_pipe_is_quiet(trained):
    proc = subprocess.run(
        f"'{BIN / 'glassdist'}' status '{trained}' --verify | head -1", shell=True, capture_output=True, text=True
    )
    assert proc.stdout.startswith("verify:") and proc.stderr == "", proc.stderr


def test_a_stage_on_a_fresh_campaign_writes_nothing(tmp_path):
    """Every stage but the quench, before the quench ran: exit 2, and DIR holds only its campaign file."""
    d = init_tiny(tmp_path / "fresh")
    for stage in (s for s in PIPELINE if s != "quench"):
        code, _, err = cli(stage, d)
        assert code == 2 and "store.zarr does not exist" in err, (stage, err)
        assert sorted(p.name for p in d.iterdir()) == ["campaign.toml"], stage


def test_version():
    proc = glassdist("--version")
    assert proc.stdout.strip().startswith("glassdist 0.")


def some_done(d, ledger):
    """Whether the ledger exists and has a done task (a ledger whose arrays are still being created: not yet)."""
    try:
        return (d / "store.zarr" / "ledger" / ledger).exists() and Store(d, mode="r").ledger(ledger).done_mask().any()
    except KeyError:
        return False


def test_ctrl_c_is_exit_130_with_one_line(tmp_path):
    """SIGINT to the process group of a real `glassdist run` (what Ctrl-C in a terminal sends)
    during the MPI quench: exit 130, one line, no MPI_Abort noise; a rerun continues."""
    d = init_tiny(tmp_path / "c", "kam", "quench.replicas=40", "quench.split=[30,5,5]")
    code, out, err = interrupt(["run", d, "--np", "2", "--stages", "quench"], lambda: some_done(d, "quench"))
    assert code == 130, out + err
    lines = [ln for ln in err.splitlines() if not ln.startswith("quench: ")]  # the progress lines
    assert lines == ["glassdist: interrupted; done work is kept, rerun to continue"], err
    assert "MPI_Abort" not in out + err and "Traceback" not in out + err
    done = Store(d, mode="r").ledger("quench").done_mask()
    assert 0 < done.sum() < 40


def test_ctrl_c_in_a_dask_stage_is_one_line(tmp_path):
    """The same during a Dask stage: no line of distributed's (nanny warnings, CancelledError)."""
    d = init_tiny(tmp_path / "c", "kam", "quench.replicas=60", "quench.split=[40,10,10]")
    glassdist("quench", d)
    code, out, err = interrupt(["indicators", d], lambda: some_done(d, "indicators"))
    assert code == 130, out + err
    lines = [ln for ln in err.splitlines() if not ln.startswith("indicators: ")]
    assert lines == ["glassdist: interrupted; done work is kept, rerun to continue"], err


def test_a_fit_without_a_kink_is_failed_in_the_log_status_and_report(tmp_path):
    """The stage's fit on a synthetic E0(T) bending the wrong way (written over the real one of a
    tiny run): stored as failed with its reason, shown so by `status` and Fig. S9, never as T*."""
    from glassdist.report.context import Context
    from glassdist.report.figures import fig_energy
    from glassdist.stages.inherent import fit, stored_fit

    d = init_tiny(
        tmp_path / "c",
        "kam",
        "quench.snapshot_temperatures=[0.05,0.1,0.2,0.3,0.4,0.5,0.6,0.8]",
        "inherent.fit_upper_T=0.8",
    )
    glassdist("run", d, "--stages", "quench,inherent", "--np", "2")
    store, spec = Store(d), load(d)
    T = np.asarray(spec.quench.snapshot_temperatures)
    E0 = store.root["inherent/E0"]
    E0[:] = np.broadcast_to(np.where(T < 0.35, -3.0 + 1.0 * T, -2.825 + 0.5 * T), E0.shape).copy()
    fit(store, spec)
    stored = stored_fit(store)
    assert not stored.ok and "not steeper" in stored.reason
    assert store.root["inherent"].attrs["fit_ok"] is False
    status = glassdist("status", d).stdout
    assert "inherent: the T* fit FAILED: the mid-T line is not steeper" in status and "T* =" not in status
    caption = fig_energy(Context(d, store, spec), tmp_path / "s9.png")
    assert caption.startswith("The T* fit FAILED") and "T* =" not in caption


@pytest.mark.parametrize(
    "override, words",
    [
        ("system.counts=[260,-60]", "campaign key 'system.counts': [260, -60] has a negative count"),
        ("quench.T_glas=0.05", "did you mean 'quench.T_glass'?"),
        ("system.n_particle=200", "did you mean 'system.n_particles'?"),
    ],
)
def test_init_messages_name_the_mistake(tmp_path, override, words):
    proc = glassdist("init", tmp_path / "c", "--preset", "demo-kam", "--set", override, check=False)
    assert proc.returncode == 2 and words in proc.stderr and not (tmp_path / "c").exists(), proc.stderr


def test_non_keys_are_not_called_campaign_keys_and_a_wide_xi_is_warned(tmp_path):
    proc = glassdist("init", tmp_path / "c", "--preset", "nope", check=False)
    assert proc.returncode == 2 and "--preset 'nope': unknown preset" in proc.stderr
    assert "campaign key" not in proc.stderr
    proc = glassdist("status", tmp_path, check=False)
    assert proc.returncode == 2 and "campaign key" not in proc.stderr and "campaign.toml does not exist" in proc.stderr
    proc = glassdist(
        "init", tmp_path / "c", "--preset", "demo-kam", "--set", "analyze.xi={Delta = 4.0, alpha = 8.0, violin = 4.0}"
    )
    assert "warning: analyze.xi.alpha = 8: the coarse-graining cutoff 2 xi = 16 exceeds L/2" in proc.stderr
    assert glassdist("init", tmp_path / "d", "--preset", "demo-kam").stderr == ""


@pytest.mark.slow  # a second training and three Grad-CAM runs (about 40 s on 2 cores)
def test_a_foreign_gradcam_is_discarded_in_place(trained, tmp_path):
    """`gradcam --model` once, then the campaign's own run: refused with the way out, `--discard`
    drops the foreign Grad-CAM in place, `status` names the model at each step."""
    d = copy(trained, tmp_path, "own")
    other = tmp_path / "other"
    glassdist("init", other, "--from", d, "--set", "train.seed=1")
    glassdist("train", other)
    foreign = other / "train" / "member-0.pt"
    glassdist("gradcam", d, "--model", foreign)
    status = glassdist("status", d).stdout
    assert f"gradcam: explains the model of another campaign (--model) {foreign.resolve()}" in status
    refused = glassdist("gradcam", d, check=False)
    assert refused.returncode == 2 and f"glassdist gradcam {d} --discard" in refused.stderr
    glassdist("gradcam", d, "--discard")
    assert "gradcam: explains" not in glassdist("status", d).stdout
    glassdist("run", d, "--stages", "quench,dataset,train,gradcam", "--np", "1")
    status = glassdist("status", d).stdout
    assert f"gradcam: explains this campaign's own model {(d / 'train' / 'member-0.pt').resolve()}" in status
    assert [ln.split()[-1] for ln in status.splitlines() if ln.startswith("gradcam ")] == ["done"]


def test_estimate_report_row_counts_the_artefacts(tmp_path):
    from glassdist.report.build import ARTEFACTS

    d = init_tiny(tmp_path / "c")
    rows = [ln for ln in glassdist("estimate", d).stdout.splitlines() if ln.startswith("| report |")]
    assert rows and rows[0].startswith(f"| report | {len(ARTEFACTS)} tables and figures | {len(ARTEFACTS)} |")
