"""Model randomisation, the first sanity check of saliency maps (Adebayo et al. 2018, "Sanity
checks for saliency maps"): a map that survives re-initialising the network's weights does not
explain what the network learnt.

Cascade from the output down: level 0 re-initialises the output layer, level 1 also the first
fully connected (hidden) layer, then each convolution from the last to the first; the last level
("full") has every weight re-initialised. Level v adds one layer to level v - 1 (the layers
already re-initialised keep their draws). Each layer gets its own default initialisation
(``reset_parameters``: PyTorch's Kaiming-uniform weights and uniform biases), drawn from a
generator seeded by (train seed, member, level), so every randomised model is reproducible. The
input normalisation (InputNorm) is kept: its shift and scale are statistics of the training
images, not learnt weights.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator

import numpy as np
import torch
from torch import nn

from .model import GlassCNN


def cascade_layers(model: GlassCNN) -> list[tuple[str, nn.Module]]:
    """The layers with weights in cascade order, from the output down: [("output", Linear),
    ("hidden", Linear), ("conv{n}", Conv), ..., ("conv1", Conv)] (n convolutions)."""
    convs = [m for m in model.features if isinstance(m, (nn.Conv2d, nn.Conv3d))]
    hidden = next(m for m in model.hidden if isinstance(m, nn.Linear))
    return [
        ("output", model.output),
        ("hidden", hidden),
        *((f"conv{i + 1}", conv) for i, conv in reversed(list(enumerate(convs)))),
    ]


def level_names(model: GlassCNN) -> list[str]:
    """Names of the V cascade levels, e.g. ['output', 'hidden', 'conv3', 'conv2', 'conv1']:
    level v re-initialises that layer and every layer named before it."""
    return [name for name, _ in cascade_layers(model)]


def level_seed(seed: int, member: int, level: int) -> int:
    """Seed of the layer that cascade level ``level`` of ensemble member ``member`` re-initialises."""
    return int(np.random.SeedSequence([seed, member, level]).generate_state(1)[0])


def cascade(model: GlassCNN, seed: int, member: int) -> Iterator[tuple[str, GlassCNN]]:
    """Yield (level name, randomised model) for levels 0 .. V-1 of ``model`` (left unchanged).

    One copy of the model is randomised further at each level and yielded again: use each
    level's model before asking for the next (keep ``copy.deepcopy`` of it otherwise).
    The random draws leave the global torch RNG untouched.
    """
    model = copy.deepcopy(model)
    for level, (name, layer) in enumerate(cascade_layers(model)):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(level_seed(seed, member, level))
            layer.reset_parameters()
        yield name, model
