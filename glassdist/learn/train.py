"""Training of the glass/liquid CNN (Supp. I C): single process or DDP, resumable.

Loss: cross entropy. L2 regularisation: Adam's ``weight_decay`` (coupled L2: the gradient
of (wd/2)|w|^2 is added to the loss gradient, i.e. classic L2, not AdamW). Adam(0.9, 0.999),
torch's fused kernel (``fused=True``: one pass over each parameter instead of a dozen; 6x faster
than the per-tensor loop on a CPU for the demo network, whose 2.1 M dense weights made the
optimizer 40 % of a training; the same update up to float rounding).

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

Members (:func:`train_members`): K networks of one architecture (GlassCNN ``members = K``)
trained in one pass on the same images, each with its own seed and labels: member k draws as
a training of it alone would, so the pass gives the K trainings (the training ensemble,
:mod:`glassdist.learn.ensemble`); :func:`train` is the case K = 1.

Checkpoint (written atomically by rank 0 after the first epoch, after the last, when a stop is
requested, and in between after any epoch that ends CHECKPOINT_SECONDS or more after the last
write; a kill costs at most that much training): model, optimizer, completed epochs, the members'
histories (a list), and the hyperparameters and seeds it was made with.
"""

from __future__ import annotations

import os
import platform
import time
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
from ..constants import CLASSES, HISTORY_KEYS
from .model import GlassCNN

STOP_POLL = 8  # batches between two (collective) polls of the stop flag inside an epoch
CHECKPOINT_SECONDS = 30.0  # most training a kill can cost (a checkpoint write with fsync: ~35 ms)


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
    return torch.stack([torch.roll(x, s, axes) for x, s in zip(images, shifts.tolist())]) if len(images) else images


def _counts(model, images, labels, index, device, chunk=256) -> torch.Tensor:
    """Per member (K, 5): [sum of CE, correct liquid, liquid, correct glass, glass] over
    images[index], for a model of K members (labels (K, n): member k's labels)."""
    members = len(labels)
    out = torch.zeros(members, 5, dtype=torch.float64)
    model.eval()
    with torch.no_grad():
        for part in torch.split(index, chunk):
            x = images[part]
            x, y = x.expand(-1, members, *x.shape[2:]).to(device), labels[:, part].T.to(device)  # (b, K)
            logits = model(x).view(-1, members, len(CLASSES))
            out[:, 0] += F.cross_entropy(logits.transpose(1, 2), y, reduction="none").sum(0).cpu().double()
            hit = logits.argmax(2) == y
            for c in range(len(CLASSES)):
                out[:, 1 + 2 * c] += (hit & (y == c)).sum(0).cpu().double()
                out[:, 2 + 2 * c] += (y == c).sum(0).cpu().double()
    return out


def evaluate_members(
    model: GlassCNN, images: torch.Tensor, labels: torch.Tensor, device: torch.device | str = "cpu"
) -> list[dict]:
    """:func:`evaluate` of each member of a model of K members (labels (K, n)); K dicts."""
    rank, world = rank_and_world()
    index = torch.tensor_split(torch.arange(labels.shape[1]), world)[rank]
    counts = _all_sum(_counts(model, images, labels, index, device).to(device)).cpu()
    n = labels.shape[1]
    return [
        {
            "loss": float(c[0] / n),
            "accuracy": float((c[1] + c[3]) / n),
            "class_accuracy": [
                float(c[1 + 2 * k] / c[2 + 2 * k]) if c[2 + 2 * k] else float("nan") for k in range(len(CLASSES))
            ],
        }
        for c in counts
    ]


def evaluate(model: GlassCNN, images: torch.Tensor, labels: torch.Tensor, device: torch.device | str = "cpu") -> dict:
    """Loss, accuracy and per-class accuracy [liquid, glass] (Table II) of images (n, 1, ...).

    Under DDP every rank evaluates its share and the counts are summed.
    """
    return evaluate_members(model, images, labels[None], device)[0]


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


def train(
    model: GlassCNN,
    train_set: tuple[torch.Tensor, torch.Tensor],
    val_set: tuple[torch.Tensor, torch.Tensor],
    config: TrainConfig,
    checkpoint: str | Path | None = None,
    device: torch.device | str = "cpu",
    on_epoch: Callable[[int, dict], None] | None = None,
    stop: Callable[[], bool] = lambda: False,
) -> dict:
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
    report = None if on_epoch is None else (lambda epoch, histories: on_epoch(epoch, histories[0]))
    return train_members(
        model,
        (train_set[0], train_set[1][None]),
        (val_set[0], val_set[1][None]),
        config,
        (config.seed,),
        checkpoint,
        device,
        report,
        stop,
    )[0]


def train_members(
    model: GlassCNN,
    train_set: tuple[torch.Tensor, torch.Tensor],
    val_set: tuple[torch.Tensor, torch.Tensor],
    config: TrainConfig,
    seeds,
    checkpoint: str | Path | None = None,
    device: torch.device | str = "cpu",
    on_epoch: Callable[[int, list], None] | None = None,
    stop: Callable[[], bool] = lambda: False,
) -> list[dict]:
    """:func:`train` of a model of K = len(seeds) members (GlassCNN ``members = K``) in one pass;
    returns the K histories. Labels (K, n): member k's labels (the same images for every member).
    Member k draws everything (its data order, dropout masks and translations) from its own
    epoch generators ``epoch_generator(seeds[k], epoch)`` exactly as a training of that member
    alone with ``config.seed = seeds[k]`` does, and the members' parameters are disjoint (the loss
    is the sum of theirs; Adam is elementwise), so member k ends where that training ends, up to
    float summation order. ``config.seed`` is not used.
    """
    rank, world = rank_and_world()
    device = torch.device(device)
    (images, labels), seeds = train_set, [int(s) for s in seeds]
    members, n = labels.shape
    if members != model.members or len(seeds) != members:
        raise ValueError(f"{len(seeds)} seeds and labels of {members} members for a model of {model.members}")
    model.norm.fit(images)
    model.to(device)
    optimizer = torch.optim.Adam(
        model.parameters(), lr=config.lr, betas=(0.9, 0.999), weight_decay=config.weight_decay, fused=True
    )
    histories = [{k: [] for k in HISTORY_KEYS} for _ in seeds]
    start, wanted = 0, {**{k: v for k, v in asdict(config).items() if k not in ("epochs", "seed")}, "seeds": seeds}
    if checkpoint is not None and Path(checkpoint).exists():
        state = load_checkpoint(checkpoint)
        made_with = {k: v for k, v in state["config"].items() if k != "epochs"}
        if made_with != wanted:
            raise StaleResultsError(
                f"checkpoint {checkpoint} was made with {made_with}, not {wanted}; delete it to train from scratch"
            )
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start, histories = state["epoch"], state["history"]
    net = DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None) if world > 1 else model
    width, grid, axes = model.output.in_features, images.shape[-1], images.dim() - 2
    saved = time.monotonic()
    for epoch in range(start, config.epochs):
        generators = [epoch_generator(seed, epoch) for seed in seeds]
        orders = [global_batches(n, config.batch_size, g) for g in generators]
        net.train()
        totals = torch.zeros(members, 2, dtype=torch.float64)  # sum of CE, correct
        for count, batches in enumerate(zip(*orders)):
            if count and count % STOP_POLL == 0 and _all_sum(torch.tensor([float(stop())], device=device)).item() > 0:
                return histories  # a stop mid-epoch abandons it: the rerun redoes it from the last checkpoint
            size = len(batches[0])
            draws = [batch_draws(g, size, width, axes, grid, model.dropout.p) for g in generators]
            mine = torch.tensor_split(torch.arange(size), world)[rank]
            x = torch.cat(
                [
                    translate(images[b[mine]], shifts[mine]) if config.augment else images[b[mine]]
                    for b, (_, shifts) in zip(batches, draws)
                ],
                1,
            ).to(device)
            y = torch.stack([labels[k, b[mine]] for k, b in enumerate(batches)], 1).to(device)  # (b, K)
            mask = torch.cat([m[mine] for m, _ in draws], 1).to(device)
            logits = net(x, dropout_mask=mask).view(-1, members, len(CLASSES))
            ce = F.cross_entropy(logits.transpose(1, 2), y, reduction="none").sum(0)  # (K,)
            optimizer.zero_grad(set_to_none=True)
            (ce.sum() * (world / size)).backward()
            optimizer.step()
            totals += torch.stack([ce.detach().cpu().double(), (logits.argmax(2) == y).sum(0).cpu().double()], 1)
        totals = _all_sum(totals.to(device)).cpu()
        val = evaluate_members(model, *val_set, device=device)
        for history, total, v in zip(histories, totals, val):
            for key, value in zip(HISTORY_KEYS, (total[0].item() / n, total[1].item() / n, v["loss"], v["accuracy"])):
                history[key].append(value)
        stopping = _all_sum(torch.tensor([float(stop())], device=device)).item() > 0  # every rank stops
        if rank == 0:
            due = (
                epoch == start
                or epoch + 1 == config.epochs
                or stopping
                or time.monotonic() - saved >= CHECKPOINT_SECONDS
            )
            if checkpoint is not None and due:
                save_checkpoint(
                    checkpoint,
                    {
                        "model": model.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "epoch": epoch + 1,
                        "history": histories,
                        "config": {"epochs": config.epochs, **wanted},
                    },
                )
                saved = time.monotonic()
            if on_epoch is not None:
                on_epoch(epoch, histories)
        if stopping:
            break
    return histories


def batch_draws(
    generator: torch.Generator, size: int, width: int, axes: int, grid: int, p: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """The random draws of one global batch of `size` samples, in order: the dropout mask
    (size, width), scaled by 1/(1-p), and the translations (size, axes) in pixels."""
    mask = (torch.rand(size, width, generator=generator) >= p).float() / (1 - p)
    return mask, torch.randint(grid, (size, axes), generator=generator)


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
        "versions": {
            "torch": torch.__version__,
            "numpy": np.__version__,
            "glassdist": __version__,
            "python": platform.python_version(),
        },
    }
