"""Stages dataset -> train -> gradcam on a tiny real campaign (real LAMMPS quench under MPI,
Dask, torch training, DDP under torchrun), checked against independent computations.

The campaign is the demo-kam preset itself (N = 500, grid 32, 100 quenches, T_L = 2.5; see
the preset's header for why T_L is raised at demo scale), without cooling snapshots and with an
ensemble of two members and no label-shuffled control (tests/test_ensemble_training.py trains
three and the control): the classifier is checked on the demo data.
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess

import numpy as np
import pytest
import torch
from captum.attr import LayerGradCam

from glassdist import spec as specmod
from glassdist.learn.model import build_model
from glassdist.store import Store
from glassdist.structure.grid import kernel_matrix

from .conftest import BIN, glassdist

pytestmark = pytest.mark.slow  # the demo-kam campaign itself: 100 quenches, 50 epochs

SETS = ["quench.snapshot_replicas=0", "dask.workers=1", "train.ensemble=2", "train.shuffled_control=false"]


@pytest.fixture(scope="module")
def campaign(tmp_path_factory):
    """The campaign after quench and dataset (copied to DIR/../ddp for the torchrun test),
    then train and gradcam."""
    d = tmp_path_factory.mktemp("learn") / "c"
    glassdist("init", d, "--preset", "demo-kam", *[a for s in SETS for a in ("--set", s)])
    glassdist("run", d, "--stages", "quench,dataset", "--np", "2")
    shutil.copytree(d, d.parent / "ddp")
    out = glassdist("run", d, "--stages", "train,gradcam")
    return d, out.stdout


def test_classifier_separates_real_glass_and_liquid(campaign):
    d, _ = campaign
    spec, store = specmod.load(d), Store(d, mode="r")
    assert (store.root["train/test_accuracy"][:] >= 0.99).all()
    assert store.root["train/history/val_loss"].shape == (spec.train.ensemble, spec.train.epochs)
    assert (store.root["train/consensus_accuracy"][:] >= 0.99).all()
    card = store.root["train"].attrs["model_card"][0]
    assert card["samples"] == {"train": 140, "val": 20, "test": 40} and card["versions"]["torch"]
    assert (d / "train" / "history.png").stat().st_size > 1000
    assert "already done" in glassdist("train", d).stdout


def test_every_test_particle_has_a_gamma(campaign):
    d, _ = campaign
    spec, store = specmod.load(d), Store(d, mode="r")
    g = store.root["gradcam"]
    test = np.flatnonzero(spec.split_of() == 2)
    assert g["replicas"][:].tolist() == test.tolist()
    gamma, maps = g["gamma"][:], g["map"][:]
    assert gamma.shape == (len(test), 2, spec.system.n_particles)
    assert np.isfinite(gamma).all() and (gamma >= 0).all() and gamma.sum() > 0
    assert g["correct"][:].all()
    assert g.attrs["target_class"] == ["glass", "glass"]
    # M^-1 redistributes the map: totals agree configuration by configuration
    np.testing.assert_allclose(gamma.sum(-1), maps.sum((-2, -1)), rtol=1e-5)
    # Gamma is eq. S4 with the stored configuration and map
    positions = store.root["quench/positions"][test[0]]
    w = kernel_matrix(positions[1], store.types(), spec.box_length, spec.dataset.grid, np.diag(spec.sigma))
    rho = np.asarray(w.sum(0)).ravel()
    np.testing.assert_allclose(gamma[0, 1], w @ (maps[0, 1].ravel().astype(float) / rho), rtol=1e-6)


def test_stored_grad_cam_equals_captum(campaign):
    d, _ = campaign
    """The stored map is the members' mean of captum's LayerGradCam, member by member."""
    spec, store = specmod.load(d), Store(d, mode="r")
    test = store.root["gradcam/replicas"][:]
    x = torch.from_numpy(store.root["dataset/images"].get_orthogonal_selection((test,)))
    x = x.reshape(-1, 1, *x.shape[2:])
    maps = []
    for k in range(spec.train.ensemble):
        model = build_model(spec)
        model.load_state_dict(torch.load(d / "train" / f"member-{k}.pt", weights_only=True))
        model.eval()
        maps.append(LayerGradCam(model, model.features[-1]).attribute(x, target=1, relu_attributions=True)[:, 0])
    theirs = torch.stack(maps).mean(0)
    stored = torch.from_numpy(store.root["gradcam/map"][:]).reshape(theirs.shape)
    assert spec.train.ensemble > 1 and torch.allclose(stored, theirs, rtol=1e-4, atol=1e-6 * float(stored.max()))


def test_export_has_a_gradcam_column(campaign, tmp_path):
    d, _ = campaign
    out = tmp_path / "fields.csv"
    glassdist("export", d, "--what", "fields", "--format", "csv", "-o", out)
    rows = list(csv.DictReader(open(out)))
    test = set(np.flatnonzero(specmod.load(d).split_of() == 2).tolist())
    assert all((r["gradcam"] != "") == (int(r["replica"]) in test) for r in rows)
    gamma = Store(d, mode="r").root["gradcam/gamma"][0, 1]
    first = [r for r in rows if int(r["replica"]) == min(test) and r["class"] == "glass"]
    np.testing.assert_allclose([float(r["gradcam"]) for r in first], gamma, rtol=1e-12)


def test_changed_model_is_refused(campaign):
    d, _ = campaign
    text = (d / "campaign.toml").read_text()
    changed = d.parent / "changed"
    shutil.copytree(d, changed)
    (changed / "campaign.toml").write_text(specmod.apply_overrides(text, ["model.hidden=16"]))
    proc = glassdist("train", changed, check=False)
    assert proc.returncode == 2 and "model" in proc.stderr


def test_train_stage_under_torchrun(campaign):
    d, _ = campaign
    ddp = d.parent / "ddp"
    text = (ddp / "campaign.toml").read_text()
    (ddp / "campaign.toml").write_text(specmod.apply_overrides(text, ["train.epochs=2"]))
    env = dict(os.environ, OMP_NUM_THREADS="1", GLOO_SOCKET_IFNAME="lo")
    proc = subprocess.run(
        [str(BIN / "torchrun"), "--standalone", "--nproc_per_node", "2", "-m", "glassdist", "train", str(ddp)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    store = Store(ddp, mode="r")
    assert store.ledger("train").done_mask().all()
    assert store.root["train/history/train_loss"].shape[-1] == 2
    assert store.root["train"].attrs["model_card"][0]["world_size"] == 2
