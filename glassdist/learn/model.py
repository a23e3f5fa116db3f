"""The glass/liquid CNN (Sec. III A, Supp. I B, Fig. S1).

Three convolutions (circular padding, stride 1, same size, no pooling), each followed by
ReLU; the head; fully connected (hidden); dropout; fully connected output with two logits
(softmax only in the loss): the paper's sequence (Supp. I B names ReLUs after the convolutions
only). ``model.hidden_activation = "relu"`` inserts a ReLU after the first fully connected layer
(our earlier network; it makes the head nonlinear, so the gradients dy^C/dA that Grad-CAM averages
depend on the input; without it they are the same for every input). :func:`layer_sequence` names
the layers in order. Class index: 0 = liquid, 1 = glass (the store's class axis).

Heads (``model.head``): "dense" (the paper's) flattens the last feature maps, so the first
fully connected layer has channels * grid^dim inputs and the network is tied to one grid;
"gap" averages each feature map over the image (global average pooling), so the first fully
connected layer has `channels` inputs, the network has the same size for every grid, and a
model trained at one N classifies and explains configurations at another N of the same
resolution (the convolutions are translation-covariant on the periodic image).

Members (``members = K > 1``): K independent networks of the same architecture as one module
(an ensemble trained in one pass, :mod:`glassdist.learn.ensemble`): convolutions with
``groups=K`` (K times the channels, member-major), :class:`GroupedLinear` dense layers; input
(B, K, grid, ...) (member k's image in channel k), dropout mask (B, K * hidden), logits
(B, K * 2). Every parameter is the members' parameters concatenated along its first axis.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..constants import CLASSES

NORMALISE = ("image", "dataset", "standard")
HEADS = ("dense", "gap")
HIDDEN_ACTIVATIONS = ("none", "relu")


class InputNorm(nn.Module):
    """The input scaling of the density images (Supp. I A), part of the model so that a saved
    model takes raw M(rho) images: 'image': (x - min) / (max - min) of each image;
    'dataset': the same with the min and max of the training images; 'standard':
    (x - mean) / std of the training images. The training statistics are buffers set by
    :meth:`fit` (and saved with the model)."""

    def __init__(self, mode: str):
        super().__init__()
        if mode not in NORMALISE:
            raise ValueError(f"normalise must be one of {NORMALISE}, got {mode!r}")
        self.mode = mode
        self.register_buffer("shift", torch.tensor(0.0))
        self.register_buffer("scale", torch.tensor(1.0))

    def fit(self, images: torch.Tensor) -> None:
        """Set shift and scale from the training images (any shape)."""
        if self.mode == "dataset":
            self.shift.fill_(images.min()), self.scale.fill_(images.max() - images.min())
        elif self.mode == "standard":
            self.shift.fill_(images.mean()), self.scale.fill_(images.std())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "image":
            pixels = tuple(range(1, x.dim()))
            lo, hi = x.amin(pixels, keepdim=True), x.amax(pixels, keepdim=True)
            return (x - lo) / (hi - lo)
        return (x - self.shift) / self.scale


class GroupedLinear(nn.Module):
    """K independent fully connected layers: input (B, K * in_features) -> (B, K * out_features),
    member-major; weight (K * out_features, in_features) and bias (K * out_features,) are the
    members' nn.Linear weights and biases stacked (initialised as nn.Linear's)."""

    def __init__(self, members: int, in_features: int, out_features: int):
        super().__init__()
        self.members, self.in_features, self.out_features = members, in_features, out_features
        bound = 1 / math.sqrt(in_features)
        self.weight = nn.Parameter(torch.empty(members * out_features, in_features).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(members * out_features).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, i, o = self.members, self.in_features, self.out_features
        # (K, O, I) @ (K, I, B): the weight gradient comes out in the weight's own layout (no copy)
        out = torch.bmm(self.weight.view(k, o, i), x.reshape(len(x), k, i).permute(1, 2, 0))
        return (out + self.bias.view(k, o, 1)).permute(2, 0, 1).reshape(len(x), k * o)


class GlassCNN(nn.Module):
    """Input: raw density images (B, 1, grid, ..., grid) with `dim` spatial axes, scaled by
    ``norm``; output logits (B, 2). With ``head="gap"`` any grid is accepted (``grid`` is unused).
    With ``members = K``: K networks in one (module docstring), input (B, K, grid, ...), logits
    (B, K * 2). ``args``: the constructor's arguments.

    ``features`` ends with the last ReLU: its output is the feature map A^m that Grad-CAM
    explains (same spatial size as the input).
    """

    def __init__(
        self,
        dim: int,
        grid: int,
        channels,
        kernel_sizes,
        hidden: int,
        dropout: float,
        normalise: str = "standard",
        head: str = "dense",
        hidden_activation: str = "none",
        members: int = 1,
    ):
        super().__init__()
        self.args = dict(
            dim=dim,
            grid=grid,
            channels=list(channels),
            kernel_sizes=list(kernel_sizes),
            hidden=hidden,
            dropout=dropout,
            normalise=normalise,
            head=head,
            hidden_activation=hidden_activation,
        )
        if head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}, got {head!r}")
        if hidden_activation not in HIDDEN_ACTIVATIONS:
            raise ValueError(f"hidden_activation must be one of {HIDDEN_ACTIVATIONS}, got {hidden_activation!r}")
        self.norm = InputNorm(normalise)
        self.members = members
        conv = {2: nn.Conv2d, 3: nn.Conv3d}[dim]
        layers, c_in = [], 1
        for c_out, k in zip(channels, kernel_sizes):
            layers += [
                conv(
                    members * c_in,
                    members * c_out,
                    k,
                    stride=1,
                    padding=k // 2,
                    padding_mode="circular",
                    groups=members,
                ),
                nn.ReLU(),
            ]
            c_in = c_out
        self.features = nn.Sequential(*layers)
        if head == "dense":
            pool, width = nn.Identity(), c_in * grid**dim
        else:
            pool, width = {2: nn.AdaptiveAvgPool2d, 3: nn.AdaptiveAvgPool3d}[dim](1), c_in
        activation = [nn.ReLU()] if hidden_activation == "relu" else []
        linear = nn.Linear if members == 1 else lambda i, o: GroupedLinear(members, i, o)
        self.hidden = nn.Sequential(pool, nn.Flatten(), linear(width, hidden), *activation)
        self.dropout = nn.Dropout(dropout)
        self.output = linear(hidden, len(CLASSES))

    def forward(self, x: torch.Tensor, dropout_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (B, members * 2). ``dropout_mask`` (B, members * hidden), already scaled by
        1/(1-p), replaces the dropout layer's own draw in training (see :mod:`glassdist.learn.train`)."""
        x = self.norm(x.reshape(-1, 1, *x.shape[2:])).reshape(x.shape)  # each member's image on its own
        h = self.hidden(self.features(x))
        h = self.dropout(h) if dropout_mask is None or not self.training else h * dropout_mask
        return self.output(h)


def layer_sequence(model: GlassCNN) -> list[str]:
    """The layer types in forward order, e.g. ['InputNorm', 'Conv2d', 'ReLU', ..., 'Linear']
    (containers flattened; Identity and Flatten, which compute nothing, left out)."""
    names = [type(model.norm).__name__]
    for part in (model.features, model.hidden, model.dropout, model.output):
        names += [
            type(m).__name__ for m in part.modules() if not isinstance(m, (nn.Sequential, nn.Identity, nn.Flatten))
        ]
    return names


def build_model(spec, seed: int | None = None) -> GlassCNN:
    """The CNN of a campaign (sizes from spec.model, input from spec.dataset.grid), with
    initial weights drawn from ``seed`` (default spec.train.seed) without touching the global RNG."""
    m = spec.model
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(spec.train.seed if seed is None else seed)
        return GlassCNN(
            spec.dim,
            spec.dataset.grid,
            m.channels,
            m.kernel_sizes,
            m.hidden,
            m.dropout,
            spec.dataset.normalise,
            m.head,
            m.hidden_activation,
        )
