"""Cost per configuration of every per-configuration step at N = 2 000, 20 000, 100 000 (2D KAM)
and N = 100 000 (3D Kob-Andersen): CPU time on one core and peak extra memory.

Each (size, step) runs in a fresh process with one thread (OMP_NUM_THREADS=1, torch and freud
on one thread). Time is the process CPU time of the step (on a shared machine wall time only
adds waiting); memory is the peak resident memory during the step minus the resident memory
before it (the kernel's peak counter is reset first: /proc/self/clear_refs).

The configuration of each size is made by LAMMPS (random start, overlap removal, minimisation,
then the timed 1 000 NVT steps at T = 1; the structure is liquid-like, the cost is what counts).
Steps: quench (per 1 000 MD steps), density image M (grid = L / 0.64, the paper's resolution),
one training step (model.head = "gap", batch 5, channels [16, 32, 32], kernels [5, 3, 3]),
Grad-CAM + M^-1 of one image, Voronoi (freud), Tong-Tanaka Theta (given the cells),
coarse-graining of 3 fields at the paper's xi = 8 (KAM; 3D: ka3d's xi = 4), CRD of 30
samples at one output time (the cage from the Voronoi neighbours included).

    python benchmarks/scaling.py [--sizes 2d:2000,2d:20000,2d:100000,3d:100000] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SIZES = "2d:2000,2d:20000,2d:100000,3d:100000"
STEPS = ("quench", "image", "train", "gradcam", "voronoi", "theta", "coarse", "crd")
LABELS = {
    "quench": "quench / 1000 steps",
    "image": "image M",
    "train": "train step (gap)",
    "gradcam": "Grad-CAM + M^-1",
    "voronoi": "Voronoi",
    "theta": "Theta",
    "coarse": "coarse-grain",
    "crd": "CRD (30 samples)",
}
CHANNELS, KERNELS, HIDDEN = [16, 32, 32], [5, 3, 3], 64


def make_spec(dim: int, n: int):
    from glassdist import spec as specmod

    if dim == 2:
        n_a = round(0.65 * n)
        text = specmod.apply_overrides(
            specmod.preset_text("demo-kam"),
            [f"system.n_particles={n}", f"system.counts=[{n_a}, {n - n_a}]", "quench.snapshot_replicas=0"],
        )
    else:
        n_a = round(0.8 * n)
        text = specmod.apply_overrides(
            specmod.preset_text("demo-ka3d"),
            [f"system.n_particles={n}", f"system.counts=[{n_a}, {n - n_a}]", "quench.snapshot_replicas=0"],
        )
    return specmod.loads(text)


def grid_of(spec) -> int:
    return max(4, round(spec.box_length / 0.64))


def rss_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field))


def child(dim: int, n: int, step: str, work: Path) -> dict:
    """Run one step in this (fresh) process; returns {'seconds', 'mb'}."""
    import freud
    import torch

    torch.set_num_threads(1)
    freud.parallel.set_num_threads(1)
    from glassdist.dynamics.crd import cage_relative_displacement, voronoi_cage
    from glassdist.fields.coarse import coarse_grain
    from glassdist.learn.gradcam import grad_cam
    from glassdist.learn.model import GlassCNN
    from glassdist.md.lammps import LammpsSession, dynamics_fixes, random_start_commands
    from glassdist.structure.grid import density, kernel_matrix, to_particles
    from glassdist.structure.tongtanaka import tong_tanaka
    from glassdist.structure.voronoi import voronoi

    spec = make_spec(dim, n)
    L, types, sigma_ii, grid = spec.box_length, spec.types, np.diag(spec.sigma), grid_of(spec)
    config = work / f"{dim}d-{n}.npy"
    rng = np.random.default_rng(0)
    if step == "quench":
        lmp = LammpsSession(spec)
        lmp.run(random_start_commands(spec, rng) + dynamics_fixes(spec))
        lmp.run(
            [
                "velocity all create 1.0 12345 dist gaussian mom yes rot no",
                "fix nvt all nvt temp 1.0 1.0 0.5",
                "run 100",
            ]
        )
        action = lambda: lmp.run("run 1000")  # noqa: E731
    else:
        x = np.load(config)
    if step == "image":
        action = lambda: density(kernel_matrix(x, types, L, grid, sigma_ii), dim)  # noqa: E731
    if step in ("train", "gradcam"):
        image = torch.from_numpy(density(kernel_matrix(x, types, L, grid, sigma_ii), dim).astype(np.float32))
        model = GlassCNN(dim, grid, CHANNELS, KERNELS, HIDDEN, 0.5, "standard", "gap")
        model.norm.fit(image)
    if step == "train":
        batch = torch.stack([torch.roll(image, k, 0) for k in range(5)])[:, None]
        labels = torch.tensor([0, 1, 0, 1, 0])
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

        def action():
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(batch), labels).backward()
            optimizer.step()

        action()  # first step allocates Adam's state
    if step == "gradcam":

        def action():
            return to_particles(grad_cam(model, image[None, None], 1)[0].numpy().astype(float), x, types, L, sigma_ii)

    if step == "voronoi":
        action = lambda: voronoi(x, L)  # noqa: E731
    if step == "theta":
        cells = voronoi(x, L)
        action = lambda: tong_tanaka(x, types, L, spec.contact_sigma, cells=cells)  # noqa: E731
    if step == "coarse":
        fields = rng.normal(size=(n, 3))
        action = lambda: coarse_grain(x, fields, L, 8.0)  # noqa: E731  (the paper's xi, 2D and 3D)
    if step == "crd":
        traj = x + rng.normal(0, 0.3, (30, 1, n, dim))
        action = lambda: cage_relative_displacement(x, traj, voronoi_cage(x, L))  # noqa: E731
    before = rss_kb("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    start = time.process_time()
    action()
    seconds = time.process_time() - start
    mb = (rss_kb("VmHWM") - before) / 1024
    if step == "quench":
        np.save(config, lmp.positions())
        lmp.close()
    return {"seconds": seconds, "mb": mb}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default=SIZES, help=f"comma-separated dim:N (default {SIZES})")
    p.add_argument("--steps", default=",".join(STEPS))
    p.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        dim, n, step, work = args.child
        print(json.dumps(child(int(dim), int(n), step, Path(work))))
        return
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    steps = args.steps.split(",")
    rows = []
    with tempfile.TemporaryDirectory(prefix="glassdist-scaling-") as work:
        for size in args.sizes.split(","):
            dim, n = int(size.split(":")[0][0]), int(size.split(":")[1])
            spec = make_spec(dim, n)
            row = {
                "size": f"{dim}D N = {n}",
                "L": spec.box_length,
                "grid": grid_of(spec),
                "dense_weights": CHANNELS[-1] * grid_of(spec) ** dim * HIDDEN,
            }
            for step in steps:
                proc = subprocess.run(
                    [sys.executable, __file__, "--child", str(dim), str(n), step, work],
                    capture_output=True,
                    text=True,
                    env=env,
                )
                if proc.returncode:
                    row[step] = None
                    print(f"{size} {step} failed:\n{proc.stderr[-2000:]}", file=sys.stderr, flush=True)
                else:
                    row[step] = json.loads(proc.stdout.strip().splitlines()[-1])
                    print(f"{size:>10s} {step:<8s} {row[step]['seconds']:9.3f} s {row[step]['mb']:9.1f} MB", flush=True)
            rows.append(row)
    print()
    print("| system | L | grid | " + " | ".join(LABELS[s] for s in steps) + " |")
    print("|---|---|---|" + "---|" * len(steps))
    for row in rows:
        cells = [f"{row[s]['seconds']:.3g} s, {row[s]['mb']:.0f} MB" if row.get(s) else "failed" for s in steps]
        print(f"| {row['size']} | {row['L']:.1f} | {row['grid']} | " + " | ".join(cells) + " |")
    print()
    print(
        "Dense head (the paper's) first layer: "
        + ", ".join(f"{r['size']}: {r['dense_weights'] / 1e6:.3g} M weights" for r in rows)
    )


if __name__ == "__main__":
    main()
