"""Throughput of the learning pipeline at the paper's scale (paper-kam: N = 2000, grid 64).

Prints, measured in this run:
- gridization M: images/s (one process);
- training (the real ``train`` loop: Adam, dropout, validation): images/s and
  ms per training sample at the paper's batch size 5 and at batch 32, on the CPU and,
  when torch.cuda.is_available(), on the GPU (paper: about 14 ms per training sample on a
  Quadro P4000: 8 h / (250 epochs x 8000 samples)); the per-epoch checkpoint write;
- Grad-CAM plus M^-1 back to particles: seconds per configuration.

Configurations are uniformly random at the paper's density: the cost of M and M^-1 depends
on the number of particles within the kernel cutoff, which is set by the density alone.

    python benchmarks/learn.py [--samples 200] [--threads 1]
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from glassdist import spec as specmod
from glassdist.learn.gradcam import grad_cam
from glassdist.learn.model import build_model
from glassdist.learn.train import TrainConfig, train
from glassdist.structure.grid import gridize, to_particles


def timed(fn, repeat=1):
    start = time.perf_counter()
    for _ in range(repeat):
        out = fn()
    return (time.perf_counter() - start) / repeat, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=200, help="training images per timed epoch")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    spec = specmod.loads(specmod.preset_text("paper-kam"))
    N, L, grid, dim = spec.system.n_particles, spec.box_length, spec.dataset.grid, spec.dim
    sigma_ii, types = np.diag(spec.sigma), spec.types
    rng = np.random.default_rng(0)
    positions = rng.uniform(0, L, (20, N, dim))
    print(
        f"paper-kam: N = {N}, grid = {grid}^{dim}, model {spec.model.channels} / {spec.model.kernel_sizes} / "
        f"hidden {spec.model.hidden}; torch {torch.__version__}, {args.threads} CPU thread(s)"
    )

    seconds, images = timed(lambda: [gridize(p, types, L, grid, sigma_ii) for p in positions])
    print(
        f"gridization M:        {len(positions) / seconds:8.1f} images/s ({1e3 * seconds / len(positions):.1f} ms each)"
    )

    x = torch.tensor(np.array(images), dtype=torch.float32)[:, None]
    x = x[torch.arange(args.samples) % len(x)]
    y = torch.arange(args.samples) % 2
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        for batch in (spec.train.batch_size, 32):
            config = dataclasses.replace(TrainConfig.from_spec(spec), epochs=1, batch_size=batch)
            model = build_model(spec)
            seconds, _ = timed(
                lambda model=model, config=config, device=device: train(
                    model, (x, y), (x[:10], y[:10]), config, device=device
                )
            )
            print(
                f"training ({device}, batch {batch:2d}): {args.samples / seconds:8.1f} images/s "
                f"({1e3 * seconds / args.samples:.1f} ms per training sample; paper 14 ms on a P4000)"
            )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "checkpoint.pt"
        seconds, _ = timed(lambda: train(model, (x[:2], y[:2]), (x[:2], y[:2]), config, checkpoint=path))
        print(
            f"one epoch of 2 images with its checkpoint ({path.stat().st_size / 2**20:.0f} MiB): "
            f"{seconds:.2f} s (once per epoch)"
        )

    model = build_model(spec).to(devices[-1])

    def one_configuration(i):
        cam = grad_cam(model, x[i : i + 1].to(devices[-1]), 1)[0].cpu().numpy().astype(float)
        return to_particles(cam, positions[i], types, L, sigma_ii)

    one_configuration(0)
    seconds, _ = timed(lambda: [one_configuration(i) for i in range(10)])
    print(f"Grad-CAM + M^-1 ({devices[-1]}): {1e3 * seconds / 10:8.1f} ms per configuration")


if __name__ == "__main__":
    main()
