"""The training ensemble: K members trained on the same data split, differing in initial
weights and data order (seed), and the label-shuffled control (Adebayo et al. 2018's label
randomisation: the same network and images, labels permuted).

Member k's seed is :func:`member_seed`; member 0's is the campaign's train.seed itself, so a
one-member ensemble trains exactly as a single network. The members still to train can be
trained as one network (:func:`stack_members`, GlassCNN ``members = K``, trained by
glassdist.learn.train.train_members) and split back into ordinary networks
(:func:`split_members`).
"""

from __future__ import annotations

import numpy as np
import torch

from ..constants import CLASSES
from .model import GlassCNN


def member_seed(seed: int, k: int) -> int:
    """Training seed of member k (k = K: the label-shuffled control): ``seed`` for k = 0, else
    a 32-bit draw of ``SeedSequence([seed, k])``."""
    return int(seed) if k == 0 else int(np.random.SeedSequence([seed, k]).generate_state(1)[0])


def shuffled_labels(labels: torch.Tensor, seed: int) -> torch.Tensor:
    """``labels`` (n,) in a random order drawn from a generator seeded with `seed` (the same
    class counts; about half of a balanced set changes class)."""
    return labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(int(seed)))]


def stack_members(models: list[GlassCNN]) -> GlassCNN:
    """One GlassCNN of ``members = K`` whose member k is ``models[k]`` (same architecture): each
    parameter is theirs concatenated along its first axis; the input scaling is models[0]'s."""
    with torch.random.fork_rng(devices=[]):  # its own initial draws are overwritten
        group = GlassCNN(**models[0].args, members=len(models))
    states, shared = [m.state_dict() for m in models], dict(group.named_buffers())
    group.load_state_dict(
        {
            name: states[0][name] if name in shared else torch.cat([s[name] for s in states])
            for name in group.state_dict()
        }
    )
    return group


def split_members(group: GlassCNN) -> list[dict]:
    """The K ordinary GlassCNN state_dicts of a ``members = K`` network (inverse of
    :func:`stack_members`; the input scaling is every member's)."""
    shared = dict(group.named_buffers())
    return [
        {
            name: value.detach().clone() if name in shared else value.detach().chunk(group.members)[k].clone()
            for name, value in group.state_dict().items()
        }
        for k in range(group.members)
    ]


def class_probabilities(model: GlassCNN, images: torch.Tensor, device="cpu", chunk: int = 256) -> torch.Tensor:
    """Softmax (n, 2) [liquid, glass] of one network on raw images (n, 1, grid, ...), in eval mode."""
    model.eval()
    with torch.no_grad():
        return torch.cat([torch.softmax(model(part.to(device)), 1).cpu() for part in torch.split(images, chunk)])


def class_accuracy(predicted: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Fraction of correct predictions per true class (2,) [liquid, glass] (NaN for an absent
    class); predicted, labels (n,)."""
    return np.array(
        [np.mean(predicted[labels == c] == c) if (labels == c).any() else np.nan for c in range(len(CLASSES))]
    )


def consensus_accuracy(probabilities: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per-class accuracy (2,) of the consensus, the argmax of the member-mean softmax;
    probabilities (K, n, 2), labels (n,)."""
    return class_accuracy(np.asarray(probabilities).mean(0).argmax(-1), np.asarray(labels))
