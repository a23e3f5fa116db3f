"""Training of the glass/liquid CNN (Supp. I C): single process or DDP, resumable.

Loss: cross entropy. L2 regularisation: Adam's ``weight_decay`` (coupled L2: the gradient
of (wd/2)|w|^2 is added to the loss gradient, i.e. classic L2, not AdamW). Adam(0.9, 0.999).

Augmentation (``augment``): each training image is rolled by a random periodic translation,
an exact symmetry of a periodic configuration (the paper uses none).

Reproducibility and DDP. Every random draw of epoch e comes from a generator seeded with
(seed, e): the permutation of the training set, the dropout masks and the translations of
the whole global batch. Each global batch of ``batch_size`` samples is cut into contiguous, nearly equal
parts, one per rank (``torch.tensor_split``), and each rank applies the rows of the global
dropout mask (and translations) that belong to its samples. The local loss is ``sum(CE) * world / batch``, so
DDP's gradient average is the gradient of the mean loss over the global batch even when the
last batch does not split evenly. Hence P processes compute what one process computes
(up to float summation order), and a resumed run is the uninterrupted one: the
checkpoint needs no RNG state. (torch's DistributedSampler is not used: it pads the data
set with repeated samples to a multiple of the world size.)

Checkpoint (every epoch, written atomically by rank 0): model, optimizer, completed
epochs, history, and the hyperparameters it was made with.
"""

from __future__ import annotations

import os
import platform
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

from .. import __version__
from ..errors import StaleResultsError
from ..constants import CLASSES
from .model import GlassCNN

HISTORY_KEYS = ("train_loss", "train_accuracy", "val_loss", "val_accuracy")
STOP_POLL = 8  # batches between two (collective) polls of the stop flag inside an epoch


@dataclass(frozen=True)
class TrainConfig:
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    seed: int
    augment: bool = False

    @classmethod
    def from_spec(cls, spec) -> "TrainConfig":
        t = spec.train
        return cls(t.epochs, t.batch_size, t.lr, t.weight_decay, t.seed, t.augment)


def rank_and_world() -> tuple[int, int]:
    """(rank, world size); (0, 1) without a torch.distributed process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _all_sum(values: torch.Tensor) -> torch.Tensor:
    if rank_and_world()[1] > 1:
        dist.all_reduce(values)
    return values


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The generator of every random draw of one epoch (shuffle and dropout)."""
    state = np.random.SeedSequence([seed, epoch]).generate_state(1, np.uint64)[0]
    return torch.Generator().manual_seed(int(state))


def global_batches(n: int, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    """A random permutation of range(n) cut into global batches (the last may be short)."""
    return list(torch.split(torch.randperm(n, generator=generator), batch_size))


def translate(images: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """Roll each image (B, 1, grid, ...) periodically by its shift (B, dim) in pixels."""
    axes = tuple(range(1, images.dim() - 1))
    return torch.stack([torch.roll(x, s, axes) for x, s in zip(images, shifts.tolist())]) if len(images) \
        else images


def _counts(model, images, labels, index, device, chunk=256) -> torch.Tensor:
    """[sum of CE, correct liquid, liquid, correct glass, glass] over images[index]."""
    out = torch.zeros(5, dtype=torch.float64)
    model.eval()
    with torch.no_grad():
        for part in torch.split(index, chunk):
            x, y = images[part].to(device), labels[part].to(device)
            logits = model(x)
            out[0] += F.cross_entropy(logits, y, reduction="sum").item()
            hit = logits.argmax(1) == y
            for c in range(len(CLASSES)):
                out[1 + 2 * c] += (hit & (y == c)).sum().item()
                out[2 + 2 * c] += (y == c).sum().item()
    return out


def evaluate(model: GlassCNN, images: torch.Tensor, labels: torch.Tensor,
             device: torch.device | str = "cpu") -> dict:
    """Loss, accuracy and per-class accuracy [liquid, glass] (Table II) of images (n, 1, ...).

    Under DDP every rank evaluates its share and the counts are summed.
    """
    rank, world = rank_and_world()
    index = torch.tensor_split(torch.arange(len(labels)), world)[rank]
    c = _all_sum(_counts(model, images, labels, index, device).to(device)).cpu()
    per_class = [float(c[1 + 2 * k] / c[2 + 2 * k]) if c[2 + 2 * k] else float("nan")
                 for k in range(len(CLASSES))]
    return {"loss": float(c[0] / len(labels)), "accuracy": float((c[1] + c[3]) / len(labels)),
            "class_accuracy": per_class}


def save_checkpoint(path: str | Path, state: dict) -> None:
    """torch.save to a temporary file, fsync, then os.replace: a kill leaves the old or the new."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_checkpoint(path: str | Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def train(model: GlassCNN, train_set: tuple[torch.Tensor, torch.Tensor],
          val_set: tuple[torch.Tensor, torch.Tensor], config: TrainConfig,
          checkpoint: str | Path | None = None, device: torch.device | str = "cpu",
          on_epoch: Callable[[int, dict], None] | None = None,
          stop: Callable[[], bool] = lambda: False) -> dict:
    """Train `model` in place; returns the history {train_loss, train_accuracy, val_loss, val_accuracy}.

    train_set, val_set: (raw density images (n, 1, grid, ...) float32, labels (n,) int64 with
    0 liquid, 1 glass), the same full sets on every rank; the model's input scaling is fitted
    to the training images. With a process group (hpc.ddp: torchrun or spawn) the model is
    wrapped in DistributedDataParallel. If `checkpoint` exists, training resumes from it;
    after each epoch it is rewritten. ``on_epoch(epoch, history)`` is called on rank 0;
    ``stop()`` is polled after each checkpoint and every STOP_POLL batches (e.g. SIGTERM before a
    walltime); a stop inside an epoch abandons it (the checkpoint holds the epoch before), so a
    long epoch never delays a clean stop.
    """
    rank, world = rank_and_world()
    device = torch.device(device)
    images, labels = train_set
    model.norm.fit(images)
    model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, betas=(0.9, 0.999),
                                 weight_decay=config.weight_decay)
    history = {k: [] for k in HISTORY_KEYS}
    start = 0
    if checkpoint is not None and Path(checkpoint).exists():
        state = load_checkpoint(checkpoint)
        made_with = {k: v for k, v in state["config"].items() if k != "epochs"}
        wanted = {k: v for k, v in asdict(config).items() if k != "epochs"}
        if made_with != wanted:
            raise StaleResultsError(f"checkpoint {checkpoint} was made with {made_with}, not {wanted}; "
                                    "delete it to train from scratch")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start, history = state["epoch"], state["history"]
    net = DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None) \
        if world > 1 else model
    p, width, grid = model.dropout.p, model.output.in_features, images.shape[-1]
    for epoch in range(start, config.epochs):
        generator = epoch_generator(config.seed, epoch)
        net.train()
        totals = torch.zeros(2, dtype=torch.float64)  # sum of CE, correct
        for count, batch in enumerate(global_batches(len(labels), config.batch_size, generator)):
            if count and count % STOP_POLL == 0 and _all_sum(torch.tensor([float(stop())], device=device)).item() > 0:
                return history  # a stop mid-epoch abandons it: the rerun redoes it from the last checkpoint
            mask = (torch.rand(len(batch), width, generator=generator) >= p).float() / (1 - p)
            shifts = torch.randint(grid, (len(batch), images.dim() - 2), generator=generator)
            mine = torch.tensor_split(torch.arange(len(batch)), world)[rank]
            x, y = images[batch[mine]], labels[batch[mine]].to(device)
            x = (translate(x, shifts[mine]) if config.augment else x).to(device)
            logits = net(x, dropout_mask=mask[mine].to(device))
            ce = F.cross_entropy(logits, y, reduction="sum")
            optimizer.zero_grad(set_to_none=True)
            (ce * (world / len(batch))).backward()
            optimizer.step()
            totals += torch.tensor([ce.item(), (logits.argmax(1) == y).sum().item()], dtype=torch.float64)
        totals = _all_sum(totals.to(device)).cpu()
        val = evaluate(model, *val_set, device=device)
        for key, value in zip(HISTORY_KEYS, (totals[0].item() / len(labels), totals[1].item() / len(labels),
                                             val["loss"], val["accuracy"])):
            history[key].append(value)
        if rank == 0:
            if checkpoint is not None:
                save_checkpoint(checkpoint, {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                                             "epoch": epoch + 1, "history": history,
                                             "config": asdict(config)})
            if on_epoch is not None:
                on_epoch(epoch, history)
        if _all_sum(torch.tensor([float(stop())], device=device)).item() > 0:  # every rank stops
            break
    return history


def model_card(model: GlassCNN, spec, config: TrainConfig, device, world: int) -> dict:
    """What was trained, how and with which software (stored with the results)."""
    return {
        "architecture": str(model),
        "parameters": sum(p.numel() for p in model.parameters()),
        "input_shape": [1] + [spec.dataset.grid] * spec.dim,
        "classes": list(spec.class_names),
        "model": dict(spec.model),
        "train": asdict(config),
        "campaign": spec.campaign.name,
        "seed": config.seed,
        "l2": "Adam weight_decay (coupled L2)",
        "device": str(device),
        "world_size": world,
        "versions": {"torch": torch.__version__, "numpy": np.__version__,
                     "glassdist": __version__, "python": platform.python_version()},
    }
