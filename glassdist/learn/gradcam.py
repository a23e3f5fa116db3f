"""Grad-CAM (eqs. 3-4) on the last convolutional layer of the CNN.

A^m is the output of the last conv layer *after* its ReLU (``model.features[-1]``): the
paper's "feature map activation of a convolutional layer", and the layer the fully
connected part sees. alpha_m^C = mean over pixels of dy^C/dA^m (eq. 3, Z = number of
pixels); L^C = ReLU(sum_m alpha_m^C A^m) (eq. 4). y^C is the logit (before softmax).
Every conv layer keeps the input size, so L^C has the input resolution.

With ``model.head = "gap"`` the score depends on the pixel means of A^m, so dy/dA carries a
factor 1/Z and L^C scales as 1/Z: tiling a periodic box k times gives each copy the map (and
Gamma) of the original divided by k (tested). Only the shape of Gamma matters downstream (the
analysis normalises every indicator to [0, 1]); compare raw Gamma only at one grid.
"""

from __future__ import annotations

import torch

from .model import GlassCNN


def grad_cam(model: GlassCNN, images: torch.Tensor, target) -> torch.Tensor:
    """Grad-CAM maps (B, grid, ..., grid) of images (B, 1, grid, ...) for class index
    `target` (an int or a (B,) tensor; 0 liquid, 1 glass). The model is put in eval mode."""
    model.eval()
    captured = {}
    hook = model.features[-1].register_forward_hook(lambda mod, inp, out: captured.update(a=out))
    try:
        with torch.enable_grad():
            logits = model(images)
            target = torch.as_tensor(target, device=logits.device).expand(len(images))
            score = logits.gather(1, target[:, None]).sum()  # samples are independent in eval
            activation = captured["a"]  # (B, M, grid, ...)
            (grads,) = torch.autograd.grad(score, activation)
    finally:
        hook.remove()
    pixels = tuple(range(2, activation.dim()))
    alpha = grads.mean(dim=pixels, keepdim=True)  # eq. 3
    return torch.relu((alpha * activation).sum(1)).detach()  # eq. 4


def input_map(images: torch.Tensor) -> torch.Tensor:
    """The grid field of the input-only baseline Gamma^0: maps (B, grid, ..., grid) of images
    (B, 1, grid, ...).

    Grad-CAM's L^C has the resolution of the feature maps A^m, and every convolution keeps the
    input size, so the input "smoothed to the feature-map resolution" is the image itself. The
    field is the image as the network sees it, after its input normalisation, mapped to [0, 1]
    per image: (x - min x) / (max x - min x). Every InputNorm mode is an increasing affine map
    of the image (mode 'image' is this very map), so the field is the same for every model and
    is a property of the configuration alone. No ReLU is applied (the field is >= 0). M^-1 of
    this field (Gamma^0) measures what the inverse map's share 1/rho alone puts into Gamma.
    """
    pixels = tuple(range(1, images.dim()))
    lo, hi = images.amin(pixels, keepdim=True), images.amax(pixels, keepdim=True)
    return ((images - lo) / (hi - lo))[:, 0]
