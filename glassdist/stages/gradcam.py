"""Stage `gradcam`: Grad-CAM (eqs. 3-4) of every test configuration by every member of the
training ensemble, back to particles with M^-1 (eq. S4), glass and liquid, with the sanity
checks of Adebayo et al. 2018 and the input-only baseline.

Target class: ``gradcam.target_class`` on glass configurations (paper: glass),
``gradcam.liquid_target_class`` on liquid ones (paper silent; default glass). One task =
one test replica (index t within the test split). Class axis: [liquid, glass]; K = members
explained (train.ensemble; 1 for a campaign trained before ensembles, whose DIR/train/model.pt
is member 0, or with ``--model``). Writes, per test replica:

* ``gradcam/members`` (R_test, K, 2, N): Gamma of each member;
* ``gradcam/gamma`` (R_test, 2, N): the consensus, the member mean of Gamma (what the analysis
  reads), ``gradcam/gamma_std`` (R_test, 2, N) the members' standard deviation (ddof 0; 0 for K = 1);
* ``gradcam/map`` (R_test, 2, grid, ...) float32: the member mean of the grid Grad-CAM L^C;
* ``gradcam/p_glass_members`` (R_test, K, 2) softmax probability of glass per member,
  ``gradcam/p_glass`` (R_test, 2) their mean, ``gradcam/correct`` (R_test, 2) bool from that mean
  (False = misclassified: flagged, to be excluded from later statistics as in the paper's
  footnote 2);
* ``gradcam/randomised`` (R_test, K, V, 2, N): Gamma of member k with its weights re-initialised
  in a cascade from the output layer down (glassdist.learn.randomise; group attribute
  ``randomisation_levels``, the V level names, the last one = every layer);
* ``gradcam/shuffled`` (R_test, 2, N): Gamma of the label-shuffled control model (train.shuffled_control;
  absent without that model);
* ``gradcam/input`` (R_test, 2, N): Gamma^0, M^-1 of the input image mapped to [0, 1]
  (glassdist.learn.gradcam.input_map): what the inverse map alone puts into Gamma;
* ``gradcam/replicas`` (R_test,) replica ids; ledger ``gradcam``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch

from .. import layout
from ..errors import UsageError
from ..learn.compat import load_transferred
from ..learn.gradcam import grad_cam, input_map
from ..learn.model import GlassCNN, build_model
from ..learn.randomise import cascade, level_names
from ..spec import Spec, load
from ..store import Store
from ..structure.grid import to_particles_many
from .common import exit_code, farm
from .train import member_paths, shuffled_path

NAME = "gradcam"
BLOCK = 32  # test replicas per batched forward/backward pass (one farm block)
LEGACY_MODEL = "model.pt"  # the one model of a campaign trained before ensembles: explained as member 0


def targets(spec: Spec) -> list[int]:
    """Target class index per configuration class [class 0, class 1] (paper: [liquid, glass])."""
    return spec.target_classes()


def model_files(campaign_dir: Path, spec: Spec, model_file: Path | None = None) -> tuple[list[Path], Path | None]:
    """The model files this campaign's Grad-CAM explains: (the K members, the label-shuffled
    control or None). ``model_file`` (another campaign's model, --model): that one alone. A
    campaign trained before ensembles has DIR/train/model.pt only: it is member 0."""
    if model_file:
        return [Path(model_file)], None
    members = member_paths(campaign_dir, spec)
    legacy = Path(campaign_dir) / "train" / LEGACY_MODEL
    if not members[0].is_file() and legacy.is_file():
        members = [legacy]
    missing = [str(p) for p in members if not p.is_file()]
    if missing:
        raise UsageError(
            f"train.ensemble = {spec.train.ensemble}: the model files {missing} are missing; "
            f"`glassdist train {campaign_dir}` trains them"
        )
    shuffled = shuffled_path(campaign_dir)
    return members, shuffled if spec.train.shuffled_control and shuffled.is_file() else None


def _file_record(path: Path) -> dict:
    return {"path": str(path.resolve()), "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}


def model_record(campaign_dir: Path, spec: Spec, model_file: Path | None) -> dict:
    """Which trained models explain this campaign: its own or another campaign's (``--model``),
    with each file's SHA-256. 'path' and 'sha256' are member 0's; 'members' lists every member,
    'shuffled' the label-shuffled control (None without one)."""
    members, shuffled = model_files(campaign_dir, spec, model_file)
    records = [_file_record(p) for p in members]
    return {
        **records[0],
        "own": model_file is None,
        "members": records,
        "shuffled": _file_record(shuffled) if shuffled else None,
    }


def _digests(record: dict) -> list:
    """The SHA-256 of every model file a record names (records before ensembles: one model)."""
    return [m["sha256"] for m in record.get("members", [record])] + [(record.get("shuffled") or {}).get("sha256")]


def prepare(
    campaign_dir: Path, spec: Spec, model_file: Path | None = None, levels: list[str] | None = None
) -> list[int]:
    """Check the spec and the models, create the arrays; return test indices to do (images
    done, gradcam not). With ``model_file`` (another campaign's model) this campaign's own
    training is not needed. ``levels``: the randomisation levels (default: those of this
    campaign's network). Arrays whose shape changed (another K) are made anew while no task is done."""
    store = Store(campaign_dir)
    store.require_needs(NAME, complete=("dataset",) if model_file else None, spec=spec)
    store.check_stage(NAME, spec)
    record = model_record(campaign_dir, spec, model_file)
    old = store.root[NAME].attrs.get("model") if NAME in store.root else None
    done = store.stage_started(NAME) and store.ledger(NAME).done_mask().any()
    if old and _digests(old) != _digests(record) and done:
        raise UsageError(
            f"the {NAME} results in {campaign_dir} explain the model {old['path']}, not "
            f"{record['path']}: drop them with `glassdist {NAME} {campaign_dir} --discard`, or keep "
            f"them and derive a new campaign for the other model (`glassdist init NEWDIR --from "
            f"{campaign_dir}`, then `glassdist {NAME} NEWDIR --model ...`)"
        )
    levels = levels or level_names(build_model(spec))
    test = spec.replicas_of("test")
    model = {"members": len(record["members"]), "levels": len(levels), "shuffled": bool(record["shuffled"])}
    arrays = layout.arrays(NAME, spec, **model)
    group = store.root.require_group(NAME)
    for name in list(group.array_keys()) if not done else []:
        path = f"{NAME}/{name}"
        if path not in arrays or group[name].shape != arrays[path].shape:
            del group[name]
    store.create_arrays(NAME, spec, **model)[f"{NAME}/replicas"][:] = test
    group.attrs.update(
        {"target_class": [spec.class_names[c] for c in targets(spec)], "model": record, "randomisation_levels": levels}
    )
    imaged = store.ledger("dataset").done_mask()[test]
    return [int(t) for t in store.ledger(NAME, len(test)).todo() if imaged[t]]


def network(model: GlassCNN, images: np.ndarray, spec: Spec) -> tuple[np.ndarray, np.ndarray]:
    """Images (B, 2, grid, ...) -> Grad-CAM maps L^C (B, 2, grid, ...) float32 and the softmax
    probability of glass (B, 2) float64 of one model."""
    b = len(images)
    x = torch.from_numpy(images.reshape(2 * b, 1, *images.shape[2:]))
    maps = grad_cam(model, x, torch.tensor(targets(spec)).repeat(b))
    with torch.no_grad():
        p_glass = torch.softmax(model(x), 1)[:, 1]  # the second class (paper: glass)
    return maps.numpy().reshape(images.shape), p_glass.numpy().astype(np.float64).reshape(b, 2)


def particles(fields: np.ndarray, positions: np.ndarray, types: np.ndarray, spec: Spec) -> np.ndarray:
    """M^-1 (eq. S4) of grid fields (B, 2, F, grid, ...) on positions (B, 2, N, dim): (B, 2, F, N)
    (one kernel per configuration for its F fields)."""
    return np.array(
        [
            [
                to_particles_many(
                    fields[i, c],
                    positions[i, c],
                    types,
                    spec.box_length,
                    np.diag(spec.sigma),
                    spec.dataset.kernel_cutoff,
                )
                for c in range(2)
            ]
            for i in range(len(fields))
        ]
    )


def explain(model: GlassCNN, images: np.ndarray, positions: np.ndarray, types: np.ndarray, spec: Spec):
    """One model: images (B, 2, grid, ...) and positions (B, 2, N, dim) -> maps (B, 2, grid, ...),
    Gamma (B, 2, N), probability of glass (B, 2)."""
    maps, p_glass = network(model, images, spec)
    return maps, particles(maps[:, :, None], positions, types, spec)[:, :, 0], p_glass


def explain_ensemble(
    members: list[GlassCNN],
    images: np.ndarray,
    positions: np.ndarray,
    types: np.ndarray,
    spec: Spec,
    shuffled: GlassCNN | None = None,
) -> dict[str, np.ndarray]:
    """The rows of every ``gradcam/*`` array (see the module docstring) for test configurations
    with images (B, 2, grid, ...) and positions (B, 2, N, dim), explained by the K ``members``,
    their randomisation cascades (seeds from train.seed and the member index) and the
    label-shuffled control model ``shuffled`` (the 'shuffled' row only with it)."""
    b, K = len(images), len(members)
    maps, p = zip(*(network(m, images, spec) for m in members))  # K x (B, 2, grid...), (B, 2)
    randomised = [network(r, images, spec)[0] for k, m in enumerate(members) for _, r in cascade(m, spec.train.seed, k)]
    control = [network(shuffled, images, spec)[0]] if shuffled is not None else []
    x = torch.from_numpy(images.reshape(2 * b, 1, *images.shape[2:]))
    baseline = input_map(x).numpy().reshape(images.shape)
    gamma = particles(np.stack([*maps, *randomised, *control, baseline], axis=2), positions, types, spec)
    member_gamma = np.moveaxis(gamma[:, :, :K], 2, 1)  # (B, K, 2, N)
    p_members = np.stack(p, axis=1)  # (B, K, 2)
    p_glass = p_members.mean(1)
    rows = {
        "members": member_gamma,
        "gamma": member_gamma.mean(1),
        "gamma_std": member_gamma.std(1),
        "map": np.mean(maps, axis=0, dtype=np.float64).astype(np.float32),
        "p_glass_members": p_members,
        "p_glass": p_glass,
        "correct": (p_glass > 0.5) == np.array([False, True]),
        "randomised": np.moveaxis(gamma[:, :, K : K + len(randomised)], 2, 1).reshape(b, K, -1, 2, gamma.shape[-1]),
        "input": gamma[:, :, -1],
    }
    if control:
        rows["shuffled"] = gamma[:, :, -2]
    return rows


def _load(path: Path, spec: Spec) -> GlassCNN:
    """A model of this campaign's architecture with the state_dict of ``path``."""
    model = build_model(spec)
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model


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
    print(
        f"{NAME}: discarded the Grad-CAM of the model {record.get('path', '?')}; `glassdist {NAME} {campaign_dir}` "
        f"(or `glassdist run {campaign_dir}`) recomputes it"
    )
    return 0


def run(campaign_dir, args=None) -> int:
    campaign_dir = Path(campaign_dir)
    spec = load(campaign_dir)
    model_file = args.model
    if args.discard:
        if model_file:
            raise UsageError(
                "--discard and --model exclude each other: discard first, then run "
                f"`glassdist {NAME} {campaign_dir} --model ...`"
            )
        return discard(campaign_dir)
    # a foreign model is refused (exit 2) before anything is written
    transferred = load_transferred(model_file, spec) if model_file else None
    todo = prepare(campaign_dir, spec, model_file, level_names(transferred) if transferred else None)
    store = Store(campaign_dir)
    ledger, group, types = store.ledger(NAME), store.root[NAME], store.types()
    files, shuffled_file = model_files(campaign_dir, spec, model_file)
    members = [transferred] if transferred else [_load(path, spec) for path in files]
    shuffled = _load(shuffled_file, spec) if shuffled_file else None
    test = spec.replicas_of("test")

    def explain_block(block, comm=None) -> None:
        rows = np.array(block.tasks)
        replicas = test[rows]
        images = store.root["dataset/images"].get_orthogonal_selection((replicas,))
        positions = store.root["quench/positions"].get_orthogonal_selection((replicas,))
        for name, values in explain_ensemble(members, images, positions, types, spec, shuffled).items():
            group[name].set_orthogonal_selection((rows,), values)

    result = farm(NAME, todo, explain_block, ledger, spec, block_size=BLOCK)
    correct = group["correct"][:][ledger.done_mask()]
    if correct.size:
        print(
            f"{NAME}: {len(members)} member(s); {int((~correct).sum())} of {correct.size} test configurations "
            f"misclassified by their mean probability (flagged in {NAME}/correct)"
        )
    return exit_code(result, NAME)
