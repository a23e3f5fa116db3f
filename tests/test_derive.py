"""Derived campaigns (`glassdist init NEW --from OLD --set ...`): reused results are read through
links into OLD, never recomputed, never copied; a moved, deleted or changed OLD is refused
clearly (exit 2); `detach` makes NEW independent."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from glassdist.spec import apply_overrides
from glassdist.store import Store

from .conftest import glassdist, init_tiny

EXTRA = ["train.epochs=2", "dask.workers=1", "quench.snapshot_replicas=0"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny campaign whose quench, dataset and train are done, in base/old."""
    d = init_tiny(tmp_path_factory.mktemp("derive") / "old", "kam", *EXTRA)
    glassdist("run", d, "--stages", "quench,dataset,train", "--np", "2")
    return d


def _ledger_times(d, stage):
    return Store(d, mode="r").ledger(stage).finished[:]


@pytest.mark.slow
def test_derive_reuses_unchanged_stages_and_retrains(trained, tmp_path):
    base = tmp_path / "base"
    shutil.copytree(trained, base / "old", symlinks=True)
    old, new = base / "old", base / "new"
    quenched_at = _ledger_times(old, "quench")
    model = (old / "train" / "member-0.pt").read_bytes()

    out = glassdist("init", new, "--from", old, "--set", "dataset.normalise=image").stdout
    assert "reuses the results of quench, dataset;" in out, out
    assert (new / "store.zarr" / "quench").is_symlink() and (new / "store.zarr" / "dataset").is_symlink()
    assert not (new / "store.zarr" / "train").exists() and not (new / "train").exists()
    status = glassdist("status", new).stdout
    assert "quench              8        0        0  done (reused)" in status, status
    assert "dataset             8        0        0  done (reused)" in status, status
    assert "train" in status and "(reused)" not in status.split("train")[1].splitlines()[0]

    assert "quench: done (results reused from" in glassdist("quench", new).stdout
    run = glassdist("run", new, "--stages", "quench,dataset,train", "--np", "2").stdout
    assert "train: consensus of" in run, run
    np.testing.assert_array_equal(_ledger_times(old, "quench"), quenched_at)  # no quench task ran
    np.testing.assert_array_equal(_ledger_times(new, "quench"), quenched_at)
    assert (old / "train" / "member-0.pt").read_bytes() == model  # the old model untouched
    assert Store(new, mode="r").root.attrs["stages"]["train"]["values"]["dataset"]["normalise"] == "image"
    assert "reused results are checked in" in glassdist("status", new, "--verify").stdout
    assert (new / "train" / "member-0.pt").read_bytes() != model

    # export reads the reused configurations through the link: same file as the old campaign's
    glassdist("export", old, "--what", "configurations", "--format", "extxyz", "-o", tmp_path / "old.xyz")
    glassdist("export", new, "--what", "configurations", "--format", "extxyz", "-o", tmp_path / "new.xyz")
    assert (tmp_path / "old.xyz").read_bytes() == (tmp_path / "new.xyz").read_bytes()

    # both moved together: the relative links still hold
    shutil.move(base, tmp_path / "moved")
    old, new = tmp_path / "moved" / "old", tmp_path / "moved" / "new"
    assert glassdist("status", new).returncode == 0

    # the old campaign alone moved: every command on NEW refuses, naming the fix
    shutil.move(old, tmp_path / "elsewhere")
    for args in (
        ("status", new),
        ("train", new),
        ("export", new, "--what", "configurations", "--format", "npz", "-o", tmp_path / "x.npz"),
    ):
        proc = glassdist(*args, check=False)
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        assert (
            "reuses the results of quench, dataset" in proc.stderr
            and "which is not there any more" in proc.stderr
            and f"glassdist init {new} --from NEWPATH" in proc.stderr
        ), proc.stderr
    old = tmp_path / "elsewhere"
    glassdist("init", new, "--from", old)  # point it to the moved upstream
    assert glassdist("status", new).returncode == 0

    # the old results changed (a quench task reopened): refused until they are the recorded ones again
    (old / "store.zarr" / "quench" / "pe" / "c" / "2" / "0").unlink()
    assert glassdist("status", old, "--verify", check=False).returncode == 1
    proc = glassdist("status", new, check=False)
    assert proc.returncode == 2 and "results of quench in" in proc.stderr and "not those" in proc.stderr, proc.stderr
    glassdist("quench", old)  # redone with the same seed: the same results
    assert glassdist("status", new).returncode == 0

    # detach: NEW copies the reused data in and survives the deletion of OLD
    reference = Store(old, mode="r").root["quench/positions"][:]
    glassdist("detach", new)
    assert not (new / "store.zarr" / "quench").is_symlink()
    shutil.rmtree(old)
    status = glassdist("status", new).stdout
    assert "(reused)" not in status
    np.testing.assert_array_equal(Store(new, mode="r").root["quench/positions"][:], reference)
    glassdist("export", new, "--what", "configurations", "--format", "npz", "-o", tmp_path / "after.npz")


def test_reuse_follows_the_sections_and_the_campaign_file_keeps_them(quenched, tmp_path):
    trained = quenched["kam"]
    out = glassdist("init", tmp_path / "new", "--from", trained, "--set", "quench.cooling_rate=0.2").stdout
    assert "reuses the results of no stage" in out
    assert not (tmp_path / "new" / "store.zarr").exists()
    # the campaign file of a derived campaign keeps the values its reused results were computed with
    same = tmp_path / "same"
    assert (
        "reuses the results of quench;" in glassdist("init", same, "--from", trained, "--set", "dataset.grid=16").stdout
    )
    text = (same / "campaign.toml").read_text()
    (same / "campaign.toml").write_text(apply_overrides(text, ["quench.thermo_points=30"]))
    proc = glassdist("dataset", same, check=False)
    assert proc.returncode == 2 and "changed [quench]" in proc.stderr and "--from" in proc.stderr, proc.stderr
    (same / "campaign.toml").write_text(text)
    assert glassdist("status", same).stdout.count("(reused)") == 1
    proc = glassdist("init", tmp_path / "x", "--from", trained, "--preset", "demo-kam", check=False)
    assert proc.returncode == 2 and "exclude each other" in proc.stderr


def test_a_store_without_recorded_values_is_reused_by_its_hash(quenched, tmp_path):
    """Stores written before glassdist recorded each stage's section values derive without a
    traceback: the sections' hash decides, and NEW's record gains the values."""
    old = tmp_path / "old"
    shutil.copytree(quenched["kam"], old, symlinks=True)
    store = Store(old)
    stages = store.root.attrs["stages"]
    store.root.attrs["stages"] = {name: {k: v for k, v in r.items() if k != "values"} for name, r in stages.items()}
    out = glassdist("init", tmp_path / "new", "--from", old, "--set", "dataset.grid=16").stdout
    assert "reuses the results of quench;" in out
    assert "values" in Store(tmp_path / "new", mode="r").root.attrs["stages"]["quench"]
    glassdist("dataset", tmp_path / "new")
    out = glassdist("init", tmp_path / "other", "--from", old, "--set", "quench.thermo_points=30").stdout
    assert "reuses the results of no stage" in out


def test_a_key_added_later_at_its_default_leaves_results_current(quenched, tmp_path):
    """A store written before the schema gained a key (its record lacks the key, its hash differs) is
    current when the campaign leaves the key at its default, and stale when it does not."""
    from glassdist.spec import SCHEMA, load
    from glassdist.pipeline import STAGES
    from hpc.schema import REQUIRED

    d = shutil.copytree(quenched["kam"], tmp_path / "c", symlinks=True)
    spec = load(d)
    store = Store(d)
    at_default = [
        (s, k) for s in STAGES["quench"].sections for k, key in SCHEMA[s].items() if spec.raw[s][k] == key.default
    ]
    not_default = [
        (s, k)
        for s in STAGES["quench"].sections
        for k, key in SCHEMA[s].items()
        if key.default is not REQUIRED and spec.raw[s][k] != key.default
    ]

    def older(section, key):
        """The record an older glassdist, without ``section.key``, would have written."""
        stages = dict(store.root.attrs["stages"])
        record = dict(stages["quench"], hash="written-by-an-older-glassdist")
        record["values"] = {
            s: {k: v for k, v in vals.items() if (s, k) != (section, key)} for s, vals in record["values"].items()
        }
        store.root.attrs["stages"] = {**stages, "quench": record}

    older(*at_default[0])
    assert store.stage_state("quench", spec).name == "done"
    older(*not_default[0])
    assert store.stage_state("quench", spec).name == "stale"
