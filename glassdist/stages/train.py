"""Stage `train`: the glass/liquid CNN (Sec. III A, Supp. I B-C) on the stored images.

One process, or data-parallel: ``glassdist train DIR --nproc P`` on one node (P processes,
file rendezvous, loopback only: hpc.ddp.spawn), or under ``torchrun`` on several nodes
(``torchrun --nnodes N --nproc_per_node P ... -m glassdist train DIR``); one process per
GPU, gloo on CPU. Every epoch rank 0 rewrites the checkpoint
``DIR/train/checkpoint-<hash>-<inputs>.pt`` (hashes of the sections the training depends on
and of the images it read: a changed campaign or changed images never resume a stale run);
a killed or SIGTERMed run resumes there.
Results: ``DIR/train/model.pt`` (state_dict, read with weights_only=True),
``DIR/train/history.png``, and in the store ``train/history/*`` (epochs,),
``train/test_accuracy`` (2,) [liquid, glass] (Table II) and the model card in the
attributes of group ``train``; ledger ``train`` (one task).
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from hpc import ddp, signals

from ..errors import GlassdistError, UsageError
from ..learn.model import build_model
from ..learn.train import HISTORY_KEYS, TrainConfig, evaluate, model_card, rank_and_world, save_checkpoint, train
from ..spec import Spec, load
from ..constants import SPLITS
from ..store import Store
from . import STAGES

NAME = "train"


def load_split(store: Store, spec: Spec, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (2 n, 1, grid, ...) and labels (2 n,) of the done replicas of one split (a name of SPLITS)."""
    replicas = np.flatnonzero(store.ledger("dataset").done_mask() & (spec.split_of() == SPLITS.index(split)))
    images = store.root["dataset/images"].get_orthogonal_selection((replicas,))
    x = torch.from_numpy(images.reshape(-1, 1, *images.shape[2:]))
    return x, torch.arange(2).repeat(len(replicas))


def model_path(campaign_dir) -> Path:
    return Path(campaign_dir) / NAME / "model.pt"


def checkpoint_path(campaign_dir: Path, spec: Spec, store: Store) -> Path:
    """The training checkpoint of these campaign sections and these input results (a retraining
    on changed images never resumes the old run)."""
    inputs = hashlib.sha256(json.dumps(store.input_fingerprints(NAME), sort_keys=True).encode()).hexdigest()[:8]
    return Path(campaign_dir) / NAME / f"checkpoint-{STAGES[NAME].section_hash(spec)}-{inputs}.pt"


def prepare(campaign_dir: Path, spec: Spec) -> bool:
    """Rank 0: check the spec, create the group and ledger; True when training is to do."""
    store = Store(campaign_dir)
    store.require_needs(NAME, spec=spec)
    store.check_stage(NAME, spec)
    store.root.require_group(NAME)
    (Path(campaign_dir) / NAME).mkdir(exist_ok=True)
    return not store.ledger(NAME, 1).done_mask()[0]


def _on_rank0(fn):
    """fn() on rank 0; its result (or its error) on every rank."""
    rank, world = rank_and_world()
    if world == 1:
        return fn()
    box = [None]
    if rank == 0:
        try:
            box = [("ok", fn())]
        except GlassdistError as exc:
            box = [("error", exc)]
    dist.broadcast_object_list(box, src=0)
    if box[0][0] == "error":
        raise box[0][1]
    return box[0][1]


def plot_history(history: dict, path: Path) -> None:
    """Loss and accuracy per epoch, train and validation, as a PNG."""
    import matplotlib.pyplot as plt

    from ..learn.plots import history_figure

    fig = history_figure(history)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_results(campaign_dir: Path, spec: Spec, model, history: dict, test: dict, card: dict,
                  seconds: float) -> None:
    """Rank 0: model file, plot, store arrays and attributes, then the done-mark."""
    save_checkpoint(model_path(campaign_dir), model.state_dict())
    plot_history(history, Path(campaign_dir) / NAME / "history.png")
    store = Store(campaign_dir)
    for key in HISTORY_KEYS:
        n = len(history[key])
        store.require_array(f"{NAME}/history/{key}", (n,), (n,), "float64")[:] = history[key]
    store.require_array(f"{NAME}/test_accuracy", (2,), (2,), "float64")[:] = test["class_accuracy"]
    store.save_json(NAME, {"model_card": card, "test": test})
    store.ledger(NAME).mark_done(0, 1, seconds)


def run(campaign_dir, args=None) -> int:
    """One process, a DDP job of ``args.nproc`` processes on this host, or (under torchrun)
    one worker of a DDP job, which ends its process (hpc.ddp.worker)."""
    if ddp.is_worker():
        ddp.worker(train_stage, str(campaign_dir))
    nproc = getattr(args, "nproc", 1) or 1
    if nproc < 1:
        raise UsageError(f"--nproc {nproc}: give the number of training processes, 1 or more")
    return ddp.spawn(nproc, train_stage, str(campaign_dir)) if nproc > 1 else train_stage(campaign_dir)


def train_stage(campaign_dir) -> int:
    """The stage in this process: alone, or as one DDP worker."""
    campaign_dir = Path(campaign_dir)
    spec = load(campaign_dir)
    signals.install()
    with ddp.ddp_context() as device:
        rank, world = rank_and_world()
        if not _on_rank0(lambda: prepare(campaign_dir, spec)):
            if rank == 0:
                print(f"{NAME}: already done ({model_path(campaign_dir)})")
            return 0
        start = time.perf_counter()
        store = Store(campaign_dir, mode="r")
        train_set, val_set, test_set = (load_split(store, spec, s) for s in SPLITS)
        config = TrainConfig.from_spec(spec)
        model = build_model(spec)
        checkpoint = checkpoint_path(campaign_dir, spec, store)

        def report(epoch, history):
            print(f"{NAME}: epoch {epoch + 1}/{config.epochs} " + " ".join(
                f"{k}={history[k][-1]:.4f}" for k in HISTORY_KEYS), flush=True)

        history = train(model, train_set, val_set, config, checkpoint=checkpoint, device=device,
                        on_epoch=report, stop=signals.stop_requested)
        if len(history["train_loss"]) < config.epochs:
            if rank == 0:
                print(f"{NAME}: stopped on request after {len(history['train_loss'])} epochs; rerun to continue")
            return 1
        test = evaluate(model, *test_set, device=device)
        if rank == 0:
            card = model_card(model, spec, config, device, world)
            card["samples"] = {"train": len(train_set[1]), "val": len(val_set[1]), "test": len(test_set[1])}
            card["md_engine"] = dict(store.root["quench"].attrs.get("engine", {}))  # what made the data
            write_results(campaign_dir, spec, model.cpu(), history, test, card, time.perf_counter() - start)
            names = spec.class_names
            print(f"{NAME}: test accuracy {names[0]} {test['class_accuracy'][0]:.4f}, "
                  f"{names[1]} {test['class_accuracy'][1]:.4f} ({len(test_set[1])} configurations)")
    return 0
