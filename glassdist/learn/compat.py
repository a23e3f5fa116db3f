"""Whether a CNN trained in one campaign can classify and explain another campaign's configurations.

The model sees density images, so what must agree is what makes an image: the mixture (species,
sigma, epsilon, cutoff factor, species fractions), the dimension, the density (it sets the
Gaussian width a = L / (0.64 N)^(1/dim) = (0.64 rho)^(-1/dim)), the kernel cutoff and the image
resolution h = L / grid. N may differ when the model has ``model.head = "gap"`` (the network
then takes any grid); the paper's dense head fixes the grid.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import UsageError
from ..spec import Spec, load
from .model import GlassCNN, build_model

RTOL = 1e-6  # on real-valued keys (box lengths are powers of N / rho)
SAME_MIXTURE = "a model explains only configurations of the mixture it was trained on"


def transfer_problems(model_spec: Spec, target_spec: Spec) -> list[str]:
    """Every difference that keeps the model of ``model_spec`` from explaining configurations
    of ``target_spec``, as 'key: model campaign X vs this campaign Y (fix)'; [] if none."""
    m, t = model_spec, target_spec
    problems = []

    def compare(key, a, b, fix, exact=False):
        same = a == b if exact else np.shape(a) == np.shape(b) and np.allclose(a, b, rtol=RTOL, atol=0)
        if not same:
            problems.append(f"{key}: model campaign {a!r} vs this campaign {b!r} ({fix})")

    compare("system.dim", m.dim, t.dim, SAME_MIXTURE, exact=True)
    compare("system.species", m.system.species, t.system.species, SAME_MIXTURE, exact=True)
    compare("system.sigma", m.system.sigma, t.system.sigma, SAME_MIXTURE)
    compare("system.epsilon", m.system.epsilon, t.system.epsilon, SAME_MIXTURE)
    compare("system.cutoff_factor", m.system.cutoff_factor, t.system.cutoff_factor, SAME_MIXTURE)
    fractions = [np.asarray(s.system.counts) / s.system.n_particles for s in (m, t)]
    if fractions[0].shape != fractions[1].shape or np.abs(fractions[0] - fractions[1]).max() > 1e-3:
        compare(
            "system.counts / n_particles",
            fractions[0].round(4).tolist(),
            fractions[1].round(4).tolist(),
            "the species fractions must agree to 1e-3",
            exact=True,
        )
    compare(
        "system.density",
        m.system.density,
        t.system.density,
        "the density sets the width a = (0.64 rho)^(-1/dim) of the image kernel",
    )
    compare(
        "dataset.kernel_cutoff",
        m.dataset.kernel_cutoff,
        t.dataset.kernel_cutoff,
        f"set dataset.kernel_cutoff = {m.dataset.kernel_cutoff:g} here",
    )
    if m.dim != t.dim:
        return problems
    h = m.box_length / m.dataset.grid
    grid = t.box_length / h
    fix = (
        f"set dataset.grid = {round(grid)} here"
        if np.isclose(grid, round(grid), rtol=RTOL, atol=0)
        else f"no grid gives L = {t.box_length:.6g} this resolution: choose n_particles so that L / {h:.6g} "
        "is an integer"
    )
    compare("dataset.grid: L / grid", h, t.box_length / t.dataset.grid, fix)
    if m.model.head == "dense" and m.dataset.grid != t.dataset.grid:
        problems.append(
            f"model.head: the model campaign's dense head takes {m.dataset.grid}^{m.dim} images "
            f"only, this campaign makes {t.dataset.grid}^{t.dim} (train it with model.head = "
            '"gap" to explain other system sizes)'
        )
    return problems


def check_transfer(model_spec: Spec, target_spec: Spec) -> None:
    """Raise UsageError (exit 2) naming every difference and its fix, unless the model trained
    in ``model_spec``'s campaign can classify and explain ``target_spec``'s configurations."""
    problems = transfer_problems(model_spec, target_spec)
    if problems:
        raise UsageError(
            f"the model of campaign '{model_spec.campaign.name}' cannot explain the configurations "
            f"of campaign '{target_spec.campaign.name}':\n  " + "\n  ".join(problems)
        )


def load_transferred(model_file: str | Path, target_spec: Spec) -> GlassCNN:
    """The trained model ``OTHER_DIR/train/member-0.pt`` of another campaign, built from
    ``OTHER_DIR/campaign.toml`` and checked against ``target_spec`` (UsageError if it cannot
    explain its configurations)."""
    model_file = Path(model_file)
    if not model_file.is_file():
        raise UsageError(
            f"model file {model_file} does not exist: give OTHER_DIR/train/member-0.pt of a "
            "campaign whose train stage is done"
        )
    if not (model_file.parent.parent / "campaign.toml").is_file():
        raise UsageError(
            f"--model {model_file}: not a model file of a campaign ({model_file.parent.parent} "
            "has no campaign.toml, which says how the model was built); give OTHER_DIR/train/member-0.pt"
        )
    model_spec = load(model_file.parent.parent)
    check_transfer(model_spec, target_spec)
    model = build_model(model_spec)
    model.load_state_dict(torch.load(model_file, map_location="cpu", weights_only=True))
    return model
