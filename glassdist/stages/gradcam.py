"""Stage `gradcam`: Grad-CAM (eqs. 3-4) of every test configuration, back to particles with
M^-1 (eq. S4), glass and liquid.

Target class: ``gradcam.target_class`` on glass configurations (paper: glass),
``gradcam.liquid_target_class`` on liquid ones (paper silent; default glass). One task =
one test replica (index t within the test split). Writes ``gradcam/gamma`` (R_test, 2, N)
[class axis: liquid, glass], ``gradcam/map`` (R_test, 2, grid, ...) float32 (the grid
Grad-CAM L^C), ``gradcam/p_glass`` (R_test, 2) (softmax probability of glass),
``gradcam/correct`` (R_test, 2) bool (False = misclassified: flagged, to be excluded from
later statistics as in the paper's footnote 2), ``gradcam/replicas`` (R_test,) replica ids;
ledger ``gradcam``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch

from ..errors import UsageError
from ..learn.compat import load_transferred
from ..learn.gradcam import grad_cam
from ..learn.model import build_model
from ..spec import Spec, load
from ..store import Store
from ..structure.grid import to_particles
from .common import exit_code, farm
from .train import model_path

NAME = "gradcam"
BLOCK = 32  # test replicas per batched forward/backward pass (one farm block)


def targets(spec: Spec) -> list[int]:
    """Target class index per configuration class [class 0, class 1] (paper: [liquid, glass])."""
    return spec.target_classes()


def model_record(campaign_dir: Path, model_file: Path | None) -> dict:
    """Which trained model explains this campaign: its own (``DIR/train/model.pt``) or another
    campaign's (``--model``), with the file's SHA-256."""
    path = Path(model_file) if model_file else model_path(campaign_dir)
    digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""
    return {"path": str(path.resolve()), "sha256": digest, "own": model_file is None}


def prepare(campaign_dir: Path, spec: Spec, model_file: Path | None = None) -> list[int]:
    """Check the spec and the model, create the arrays; return test indices to do (images
    done, gradcam not). With ``model_file`` (another campaign's model) this campaign's own
    training is not needed."""
    store = Store(campaign_dir)
    store.require_needs(NAME, complete=("dataset",) if model_file else None, spec=spec)
    store.check_stage(NAME, spec)
    record = model_record(campaign_dir, model_file)
    old = store.root[NAME].attrs.get("model") if NAME in store.root else None
    if old and old["sha256"] != record["sha256"] and store.stage_started(NAME) and \
            store.ledger(NAME).done_mask().any():
        raise UsageError(f"the {NAME} results in {campaign_dir} explain the model {old['path']}, not "
                         f"{record['path']}: drop them with `glassdist {NAME} {campaign_dir} --discard`, or keep "
                         f"them and derive a new campaign for the other model (`glassdist init NEWDIR --from "
                         f"{campaign_dir}`, then `glassdist {NAME} NEWDIR --model ...`)")
    test = spec.replicas_of("test")
    T, N, image = len(test), spec.system.n_particles, (spec.dataset.grid,) * spec.dim
    store.require_array(f"{NAME}/gamma", (T, 2, N), (1, 2, N), "float64")
    store.require_array(f"{NAME}/map", (T, 2, *image), (1, 2, *image), "float32")
    store.require_array(f"{NAME}/p_glass", (T, 2), (1, 2), "float64")
    store.require_array(f"{NAME}/correct", (T, 2), (1, 2), "bool", fill_value=False)
    store.require_array(f"{NAME}/replicas", (T,), (T,), "int64")[:] = test
    store.root[NAME].attrs.update({"target_class": [spec.class_names[c] for c in targets(spec)], "model": record})
    imaged = store.ledger("dataset").done_mask()[test]
    return [int(t) for t in store.ledger(NAME, T).todo() if imaged[t]]


def explain(model, images: np.ndarray, positions: np.ndarray, types: np.ndarray, spec: Spec):
    """Images (B, 2, grid, ...) and positions (B, 2, N, dim) -> maps (B, 2, grid, ...),
    Gamma (B, 2, N), probability of glass (B, 2)."""
    b = len(images)
    x = torch.from_numpy(images.reshape(2 * b, 1, *images.shape[2:]))
    maps = grad_cam(model, x, torch.tensor(targets(spec)).repeat(b))
    with torch.no_grad():
        p_glass = torch.softmax(model(x), 1)[:, 1]  # the second class (paper: glass)
    maps = maps.numpy().astype(np.float64).reshape(images.shape)
    gamma = np.array([[to_particles(maps[i, c], positions[i, c], types, spec.box_length, np.diag(spec.sigma),
                                    spec.dataset.kernel_cutoff) for c in range(2)] for i in range(b)])
    return maps, gamma, p_glass.numpy().reshape(b, 2)


def discard(campaign_dir: Path) -> int:
    """`glassdist gradcam DIR --discard`: every Grad-CAM task pending again and the model record
    dropped, so the next `gradcam` (or `run`) explains the test set anew, with this campaign's
    model unless --model names another. The redo is a new attempt: analyze and report, which
    read these results, see them changed (Store.stage_state) and are recomputed."""
    store = Store(campaign_dir)
    if not store.stage_started(NAME):
        raise UsageError(f"{campaign_dir} has no {NAME} results: nothing to discard")
    record = store.root[NAME].attrs.get("model", {})
    store.ledger(NAME).reopen_all()
    store.root[NAME].attrs.pop("model", None)
    print(f"{NAME}: discarded the Grad-CAM of the model {record.get('path', '?')}; `glassdist {NAME} {campaign_dir}` "
          f"(or `glassdist run {campaign_dir}`) recomputes it")
    return 0


def run(campaign_dir, args=None) -> int:
    campaign_dir = Path(campaign_dir)
    spec = load(campaign_dir)
    model_file = getattr(args, "model", None)
    if getattr(args, "discard", False):
        if model_file:
            raise UsageError("--discard and --model exclude each other: discard first, then run "
                             f"`glassdist {NAME} {campaign_dir} --model ...`")
        return discard(campaign_dir)
    model = load_transferred(model_file, spec) if model_file else None  # refuses (exit 2) before anything is written
    todo = prepare(campaign_dir, spec, model_file)
    store = Store(campaign_dir)
    ledger, group, types = store.ledger(NAME), store.root[NAME], store.types()
    if model is None:
        model = build_model(spec)
        model.load_state_dict(torch.load(model_path(campaign_dir), map_location="cpu", weights_only=True))
    test = spec.replicas_of("test")

    def explain_block(block, comm=None) -> None:
        rows = np.array(block.tasks)
        replicas = test[rows]
        images = store.root["dataset/images"].get_orthogonal_selection((replicas,))
        positions = store.root["quench/positions"].get_orthogonal_selection((replicas,))
        maps, gamma, p_glass = explain(model, images, positions, types, spec)
        group["map"].set_orthogonal_selection((rows,), maps.astype(np.float32))
        group["gamma"].set_orthogonal_selection((rows,), gamma)
        group["p_glass"].set_orthogonal_selection((rows,), p_glass)
        group["correct"].set_orthogonal_selection((rows,), (p_glass > 0.5) == np.array([False, True]))

    result = farm(NAME, todo, explain_block, ledger, spec, block_size=BLOCK)
    correct = group["correct"][:][ledger.done_mask()]
    if correct.size:
        print(f"{NAME}: {int((~correct).sum())} of {correct.size} test configurations misclassified "
              f"(flagged in {NAME}/correct)")
    return exit_code(result, NAME)
