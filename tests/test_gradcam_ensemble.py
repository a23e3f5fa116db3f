"""Grad-CAM of a training ensemble (issue 19): member Gamma and their consensus, the model- and
label-randomisation sanity checks, the input-only baseline Gamma^0 and the export columns, with
known answers: identical members give a zero spread, the consensus is the member mean, a
randomised level changes exactly its layers, Gamma^0 redistributes its grid field.

The campaign: imported random configurations (N = 200, grid 24), the real dataset and train
stages, members trained with glassdist.learn.train under their own seeds and saved where the
training ensemble puts them (DIR/train/member-{k}.pt, DIR/train/shuffled.pt)."""

from __future__ import annotations

import csv
import shutil

import numpy as np
import pytest
import torch

from glassdist import spec as specmod
from glassdist.cli import main
from glassdist.learn.gradcam import input_map
from glassdist.learn.model import GlassCNN, build_model
from glassdist.learn.randomise import cascade, cascade_layers, level_names
from glassdist.learn.train import TrainConfig, train
from glassdist.stages.gradcam import explain
from glassdist.stages.train import load_split
from glassdist.store import Store
from glassdist.structure.grid import (
    density,
    kernel_matrix,
    to_particles,
    to_particles_many,
)

from .test_import import init_import, random_configurations, write_extxyz

K = 3
SETS = ["quench.replicas=6", "quench.split=[3,1,2]", "train.epochs=2", f"train.ensemble={K}"]


def parameters(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b))


@pytest.mark.parametrize("dim", [2, 3])
def test_randomisation_changes_exactly_the_layers_of_its_level(dim):
    torch.manual_seed(0)
    model = GlassCNN(dim, 6, [3, 4, 5], [3, 3, 3], 8, 0.5, hidden_activation="relu")
    model.norm.shift.fill_(0.25), model.norm.scale.fill_(2.0)
    names = level_names(model)
    assert names == ["output", "hidden", "conv3", "conv2", "conv1"]
    trained = [parameters(layer) for _, layer in cascade_layers(model)]
    before = parameters(model)
    previous = None
    for v, (name, randomised) in enumerate(cascade(model, seed=11, member=1)):
        assert name == names[v]
        now = [parameters(layer) for _, layer in cascade_layers(randomised)]
        for j, (old, new) in enumerate(zip(trained, now)):
            if j <= v:  # re-initialised: every weight and bias tensor changed
                assert all(not torch.equal(a, b) for a, b in zip(old, new)), (v, j)
            else:
                assert same(old, new), (v, j)
        if previous is not None:  # the cascade keeps the draws of the levels above
            assert all(same(previous[j], now[j]) for j in range(v))
        previous, last = now, parameters(randomised)
        assert float(randomised.norm.shift) == 0.25 and float(randomised.norm.scale) == 2.0
    assert v == len(names) - 1
    assert same(before, parameters(model))  # the explained model itself is untouched
    full = [parameters(m) for _, m in cascade(model, seed=11, member=1)][-1]
    assert same(full, last)  # reproducible from (seed, member, level)
    other = [parameters(m) for _, m in cascade(model, seed=11, member=2)][-1]
    assert not same(full, other)


def test_input_baseline_redistributes_its_field_and_follows_the_configuration():
    L, grid, sigma_ii = 12.0, 24, np.array([1.0, 0.88])
    rng = np.random.default_rng(3)
    types = np.repeat([0, 1], [130, 70])
    fields, gammas = [], []
    for _ in range(2):
        positions = rng.uniform(0, L, (200, 2))
        w = kernel_matrix(positions, types, L, grid, sigma_ii)
        image = density(w, 2)
        field = input_map(torch.from_numpy(image)[None, None])[0].numpy()
        assert field.min() == 0 and field.max() == 1 and (density(w, 2) > 0).all()
        gamma = to_particles_many(np.stack([field, image]), positions, types, L, sigma_ii)
        np.testing.assert_array_equal(gamma[0], to_particles(field, positions, types, L, sigma_ii))
        assert np.isclose(gamma[0].sum(), field.sum(), rtol=1e-10)  # a redistribution of the field
        np.testing.assert_allclose(gamma[1], w.sum(axis=1), rtol=1e-12)  # M^-1 of rho: each particle's own kernel
        fields.append(field), gammas.append(gamma[0])
    assert not np.allclose(fields[0], fields[1])
    for species in (types == 0, types == 1):  # another configuration, another Gamma^0 (beyond the species' widths)
        assert abs(np.corrcoef(gammas[0][species], gammas[1][species])[0, 1]) < 0.5


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A campaign (6 imported random replicas, 2 test) after dataset and train, and K + 1 state_dicts
    trained under seeds 0..K (the last on permuted labels)."""
    base = tmp_path_factory.mktemp("ensemble")
    d = init_import(base / "c", *SETS)
    L = specmod.load(d).box_length
    for k, cls in enumerate(("liquid", "glass")):
        write_extxyz(base / f"{cls}.xyz", random_configurations(L, 6, 40 + k), L)
        assert main(["import", str(d), str(base / f"{cls}.xyz"), "--class", cls]) == 0
    assert main(["dataset", str(d)]) == 0 and main(["train", str(d)]) == 0
    spec, store = specmod.load(d), Store(d, mode="r")
    data = [load_split(store, spec, split) for split in ("train", "val")]
    states = []
    for seed in range(K + 1):
        member = specmod.loads(specmod.apply_overrides((d / "campaign.toml").read_text(), [f"train.seed={seed}"]))
        model, (x, y) = build_model(member), data[0]
        labels = y[torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))] if seed == K else y
        train(model, (x, labels), data[1], TrainConfig.from_spec(member))
        states.append(model.state_dict())
    return d, states


def explained(trained, name, states, shuffled=None):
    """A copy of the trained campaign with these member (and control) state_dicts, after `gradcam`."""
    d, _ = trained
    c = d.parent / name
    shutil.copytree(d, c)
    for k, state in enumerate(states):
        torch.save(state, c / "train" / f"member-{k}.pt")
    (c / "train" / "shuffled.pt").unlink(missing_ok=True)  # the train stage's own control: only the given one
    if shuffled is not None:
        torch.save(shuffled, c / "train" / "shuffled.pt")
    assert main(["gradcam", str(c)]) == 0
    return c, specmod.load(c), Store(c, mode="r").root["gradcam"]


def test_identical_members_give_zero_spread(trained):
    _, states = trained
    _, spec, g = explained(trained, "identical", [states[0]] * K)
    members, gamma = g["members"][:], g["gamma"][:]
    assert members.shape == (2, K, 2, spec.system.n_particles) and (gamma.sum(-1) > 0).all()
    for k in range(1, K):  # the same weights give bitwise the same Gamma; the mean equals it to rounding
        np.testing.assert_array_equal(members[:, k], members[:, 0])
    np.testing.assert_allclose(gamma, members[:, 0], rtol=1e-15, atol=0)
    assert (g["gamma_std"][:] <= 1e-15 * gamma).all()
    np.testing.assert_allclose(g["p_glass_members"][:], np.repeat(g["p_glass"][:][:, None], K, 1), rtol=1e-15)
    assert "shuffled" not in g  # no control model saved


def test_ensemble_consensus_sanity_checks_and_baseline(trained):
    _, states = trained
    c, spec, g = explained(trained, "ensemble", states[:K], shuffled=states[K])
    store = Store(c, mode="r")
    test = g["replicas"][:]
    members, gamma, std = g["members"][:], g["gamma"][:], g["gamma_std"][:]
    N, V = spec.system.n_particles, len(g.attrs["randomisation_levels"])
    assert g.attrs["randomisation_levels"] == ["output", "hidden", "conv3", "conv2", "conv1"]
    np.testing.assert_allclose(gamma, members.mean(1), rtol=1e-12)
    np.testing.assert_allclose(std, members.std(1), rtol=1e-12)
    assert (std > 0).any() and not np.allclose(members[:, 0], members[:, 1])
    np.testing.assert_allclose(g["p_glass"][:], g["p_glass_members"][:].mean(1), rtol=1e-12)
    assert (g["correct"][:] == ((g["p_glass"][:] > 0.5) == [False, True])).all()
    np.testing.assert_allclose(gamma.sum(-1), g["map"][:].sum((-2, -1)), rtol=1e-5)  # M^-1 of the consensus map
    # each member's Gamma is that model's own Grad-CAM, and its randomised level v is the Grad-CAM of
    # the cascade (seeds from train.seed, member, level), recomputed here
    images = store.root["dataset/images"].get_orthogonal_selection((test,))
    positions = store.root["quench/positions"].get_orthogonal_selection((test,))
    model = build_model(spec)
    model.load_state_dict(states[1])
    _, own, p = explain(model, images, positions, store.types(), spec)
    np.testing.assert_allclose(members[:, 1], own, rtol=1e-10)
    np.testing.assert_allclose(g["p_glass_members"][:, 1], p, rtol=1e-12)
    randomised = g["randomised"][:]
    assert randomised.shape == (2, K, V, 2, N) and np.isfinite(randomised).all()
    for v, (_, level) in enumerate(cascade(model, spec.train.seed, 1)):
        np.testing.assert_allclose(
            randomised[:, 1, v], explain(level, images, positions, store.types(), spec)[1], rtol=1e-10
        )
    assert not np.allclose(randomised[:, 1, -1], members[:, 1])
    # the label-shuffled control
    control = build_model(spec)
    control.load_state_dict(states[K])
    np.testing.assert_allclose(
        g["shuffled"][:], explain(control, images, positions, store.types(), spec)[1], rtol=1e-10
    )
    # Gamma^0: M^-1 of the input image mapped to [0, 1]; a redistribution, and one per configuration
    baseline = g["input"][:]
    fields = input_map(torch.from_numpy(images.reshape(-1, 1, *images.shape[2:]))).numpy()
    np.testing.assert_allclose(baseline.sum(-1).ravel(), fields.sum((-2, -1)), rtol=1e-6)
    assert not np.allclose(baseline[0, 1], baseline[1, 1])


def test_campaign_before_ensembles_is_explained_by_its_one_model(trained):
    """DIR/train/model.pt alone (no member files): member 0, K = 1, no control."""
    d, states = trained
    c = d.parent / "legacy"
    shutil.copytree(d, c)
    for old in [*(c / "train").glob("member-*.pt"), c / "train" / "shuffled.pt"]:
        old.unlink()
    torch.save(states[0], c / "train" / "model.pt")  # what the train stage wrote before ensembles
    assert main(["gradcam", str(c)]) == 0
    spec, g = specmod.load(c), Store(c, mode="r").root["gradcam"]
    assert g["members"].shape == (2, 1, 2, spec.system.n_particles) and "shuffled" not in g
    np.testing.assert_array_equal(g["members"][:, 0], g["gamma"][:])
    np.testing.assert_array_equal(g["gamma_std"][:], 0.0)
    assert g.attrs["model"]["path"] == str((c / "train" / "model.pt").resolve())


@pytest.mark.parametrize("fmt", ["csv", "npz"])
def test_export_has_the_ensemble_columns(trained, tmp_path, fmt):
    _, states = trained
    c = trained[0].parent / "ensemble"
    if not c.exists():
        explained(trained, "ensemble", states[:K], shuffled=states[K])
    g = Store(c, mode="r").root["gradcam"]
    test = g["replicas"][:]
    expected = {
        "gradcam": g["gamma"][:],
        "gradcam_std": g["gamma_std"][:],
        "gradcam_input": g["input"][:],
        **{f"gradcam_m{k}": g["members"][:, k] for k in range(K)},
    }
    out = tmp_path / f"fields.{fmt}"
    assert main(["export", str(c), "--what", "fields", "--format", fmt, "-o", str(out)]) == 0
    if fmt == "npz":
        data = np.load(out)
        rows = np.searchsorted(data["replicas"], test)
        assert np.isnan(np.delete(data["gradcam_m2"], rows, axis=0)).all()
        for name, values in expected.items():
            np.testing.assert_array_equal(data[name][rows], values)
        return
    with open(out) as fh:
        table = list(csv.DictReader(fh))
    assert set(expected) <= set(table[0])
    for t, replica in enumerate(test):
        for cls, name in enumerate(("liquid", "glass")):
            rows = [r for r in table if int(r["replica"]) == replica and r["class"] == name]
            for column, values in expected.items():
                np.testing.assert_array_equal([float(r[column]) for r in rows], values[t, cls])
    assert all(r["gradcam_m1"] == "" for r in table if int(r["replica"]) not in test)
