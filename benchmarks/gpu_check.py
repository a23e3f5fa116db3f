"""GPU check: what one GPU node does with glassdist, in one command (a few minutes on one GPU).

Needs only this project's code, warp-lang, torch and numpy/scipy (no LAMMPS, Zarr, Dask or freud:
it runs on a bare GPU node). Prints a table and writes a JSON file that
``glassdist estimate DIR --calibration FILE`` turns into GPU-hours per stage.

Measured, on ``--device`` (default: the first CUDA device, else the CPU):
1. agreement: float64 positions and velocities after AGREEMENT_STEPS NVT steps on the device
   against the same run on the CPU (2D KAM and 3D KA, one replica);
2. md: NVT throughput (atom-steps/s) of the batched engine for each case of CASES (2D KAM at
   N = 2000 for 1 ... 4000 replicas, 2D at N = 20 000 and 10^5, 3D KA at N = 8000), float32 and
   float64, CUDA graphs on (the default on a GPU) and, for one replica, off;
3. fire: seconds per FIRE minimisation (to inherent.ftol) of a T = 0.8 liquid in a block;
4. train: seconds per training sample of the paper preset's CNN (paper-kam: grid 64, the dense
   head) at batch 5 (the paper's: 8 h for 250 epochs of 8000 samples, 14 ms per sample, on a Quadro
   P4000) and 256, one epoch of the product's training loop after a warm-up epoch;
5. gradcam: seconds per Grad-CAM map (eqs. 3-4, batch of 32) of that CNN;
6. ddp: one epoch at batch 256 as a DDP job over the GPUs present (NCCL; gloo on the CPU),
   seconds per sample and the world size.

JSON format (``--out``, default gpu-check.json):
  {"device": str, "device_name": str, "warp": str, "torch": str, "created": unix time, "quick": bool,
   "agreement": [{"system", "dim", "n", "steps", "max_dx", "max_dv"}],
   "md": [{"system", "dim", "n", "replicas", "precision", "graphs", "steps", "seconds", "atom_steps_per_s"}],
   "fire": [{"system", "dim", "n", "replicas", "seconds", "seconds_per_minimisation"}],
   "train": [{"batch_size", "grid", "dim", "samples", "seconds", "seconds_per_sample"}],
   "gradcam": {"maps", "grid", "dim", "seconds", "seconds_per_map"},
   "ddp": {"world", "backend", "samples", "seconds", "seconds_per_sample"} or {"error": str}}

Usage: python benchmarks/gpu_check.py [--out gpu-check.json] [--device cuda|cpu] [--quick]
(--quick: small sizes, for a CPU smoke test of the script and its format.)
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import warp as wp

from glassdist import spec as specmod
from glassdist.learn.gradcam import grad_cam
from glassdist.learn.model import build_model
from glassdist.learn.train import TrainConfig, train
from glassdist.md.warp.fire import fire_minimise
from glassdist.md.warp.integrate import NoseHooverNVT
from glassdist.md.warp.start import random_start
from glassdist.md.warp.system import Batch

T = 0.8  # NVT temperature of every throughput case (the KAM T_L: a dense liquid)
AGREEMENT_STEPS = 300
BUDGET = 1e9  # atom-steps per throughput case on a GPU (the CPU: BUDGET / 1000)
MIN_STEPS, MAX_STEPS = 100, 5000
# (system, dim, N, replicas per block)
CASES = [
    ("kam", 2, 2000, (1, 10, 100, 1000, 4000)),
    ("kam", 2, 20_000, (100,)),
    ("kam", 2, 100_000, (20,)),
    ("ka3d", 3, 8000, (1, 100)),
]
QUICK_CASES = [("kam", 2, 200, (1, 4)), ("ka3d", 3, 400, (1, 2))]


def system_spec(system: str, n: int) -> specmod.Spec:
    """The demo preset of ``system`` at N particles (its composition fractions kept)."""
    small = 0.35 if system == "kam" else 0.2
    b = int(round(small * n))
    return specmod.loads(
        specmod.apply_overrides(
            specmod.preset_text(f"demo-{system}"), [f"system.n_particles={n}", f"system.counts=[{n - b},{b}]"]
        )
    )


def liquid(spec: specmod.Spec, device: str) -> tuple[np.ndarray, np.ndarray]:
    """(positions, velocities), each (N, dim) float64: a random start relaxed and run 500 steps at T."""
    batch = Batch(spec, 1, device=device)
    random_start(batch, [np.random.default_rng(1)], T)
    nvt = NoseHooverNVT(batch, spec.md.dt, spec.md.thermostat_damping)
    nvt.start(T, T, 0, 500)
    nvt.run(500)
    return batch.unwrapped()[0], batch.velocities()[0]


def nvt_block(spec, x, v, replicas: int, device: str, precision: str) -> tuple[Batch, NoseHooverNVT]:
    batch = Batch(spec, replicas, device=device, precision=precision)
    batch.set_positions(np.broadcast_to(x, (replicas, *x.shape)))
    batch.set_velocities(np.broadcast_to(v, (replicas, *v.shape)))
    nvt = NoseHooverNVT(batch, spec.md.dt, spec.md.thermostat_damping)
    nvt.start(T, T, 0, 10**9)
    return batch, nvt


def timed(device: str, fn) -> float:
    wp.synchronize_device(device)
    start = time.perf_counter()
    fn()
    wp.synchronize_device(device)
    return time.perf_counter() - start


def agreement(system, dim, spec, x, v, device) -> dict:
    """max |x_device - x_cpu| and |v_device - v_cpu| after AGREEMENT_STEPS float64 steps from one state."""
    out = []
    for dev in (device, "cpu"):
        batch, nvt = nvt_block(spec, x, v, 1, dev, "float64")
        nvt.run(AGREEMENT_STEPS)
        out.append((batch.unwrapped(), batch.velocities()))
    (xd, vd), (xc, vc) = out
    return {
        "system": system,
        "dim": dim,
        "n": spec.system.n_particles,
        "steps": AGREEMENT_STEPS,
        "max_dx": float(np.abs(xd - xc).max()),
        "max_dv": float(np.abs(vd - vc).max()),
    }


def md_rate(system, dim, spec, x, v, replicas, device, precision, graphs, budget) -> dict:
    n = spec.system.n_particles
    steps = int(np.clip(budget / (replicas * n), MIN_STEPS, MAX_STEPS))
    batch, nvt = nvt_block(spec, x, v, replicas, device, precision)
    nvt.run(100, graphs=graphs)  # warm-up: kernels loaded, the graph captured
    seconds = timed(device, lambda: nvt.run(steps, graphs=graphs))
    batch.check()
    return {
        "system": system,
        "dim": dim,
        "n": n,
        "replicas": replicas,
        "precision": precision,
        "graphs": graphs,
        "steps": steps,
        "seconds": seconds,
        "atom_steps_per_s": replicas * n * steps / seconds,
    }


def fire_rate(system, dim, spec, x, v, replicas, device) -> dict:
    """A block of T = 0.8 liquids (200 NVT steps apart from the start) minimised to inherent.ftol:
    seconds per minimisation (the inherent stage minimises cooling snapshots the same way)."""
    batch, nvt = nvt_block(spec, x, v, replicas, device, "float64")
    nvt.run(200)
    seconds = timed(
        device, lambda: fire_minimise(batch, spec.md.dt, 0.0, spec.inherent.ftol, spec.inherent.max_iterations)
    )
    return {
        "system": system,
        "dim": dim,
        "n": spec.system.n_particles,
        "replicas": replicas,
        "seconds": seconds,
        "seconds_per_minimisation": seconds / replicas,
    }


def paper_model_spec(quick: bool) -> specmod.Spec:
    sets = ["dataset.grid=16"] if quick else []
    return specmod.loads(specmod.apply_overrides(specmod.preset_text("paper-kam"), sets))


def train_rate(spec, batch_size: int, batches: int, device: str) -> dict:
    grid = spec.dataset.grid
    n = batch_size * batches
    g = torch.Generator().manual_seed(0)
    images = torch.rand((n, 1, grid, grid), generator=g)
    labels = torch.arange(n) % 2
    val = (images[:2], labels[:2])
    config = TrainConfig(1, batch_size, spec.train.lr, spec.train.weight_decay, 0)
    train(build_model(spec), (images[: batch_size * 2], labels[: batch_size * 2]), val, config, device=device)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    train(build_model(spec), (images, labels), val, config, device=device)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    return {
        "batch_size": batch_size,
        "grid": grid,
        "dim": 2,
        "samples": n,
        "seconds": seconds,
        "seconds_per_sample": seconds / n,
    }


def gradcam_rate(spec, device: str, maps: int) -> dict:
    model = build_model(spec).to(device)
    images = torch.rand((maps, 1, spec.dataset.grid, spec.dataset.grid), device=device)
    model.norm.fit(images.cpu())
    model.to(device)
    grad_cam(model, images[:2], 1)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    grad_cam(model, images, 1)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    return {"maps": maps, "grid": spec.dataset.grid, "dim": 2, "seconds": seconds, "seconds_per_map": seconds / maps}


def _ddp_worker(quick: bool, batches: int, out: str) -> int:
    """One DDP process (hpc.ddp.spawn sets RANK/WORLD_SIZE): one epoch at batch 256, time to rank 0's file."""
    from hpc.ddp import ddp_context

    with ddp_context() as device:
        result = train_rate(paper_model_spec(quick), 256, batches, str(device))
        if int(os.environ.get("RANK", 0)) == 0:
            Path(out).write_text(json.dumps(result))
    return 0


def ddp_rate(quick: bool, device: str) -> dict:
    """The DDP epoch over every GPU present (world 1 on a single GPU: DDP is not wrapped then),
    or two gloo processes on the CPU."""
    from hpc.ddp import spawn

    world = torch.cuda.device_count() if device.startswith("cuda") else 2
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "ddp.json"
        code = spawn(world, _ddp_worker, quick, 2 if quick else 20, str(out))
        if code != 0 or not out.exists():
            return {"error": f"DDP job of {world} processes ended with status {code}"}
        result = json.loads(out.read_text())
    backend = "nccl" if device.startswith("cuda") else "gloo"
    return {"world": world, "backend": backend if world > 1 else "none (one process)", **result}


def run(device: str, quick: bool, out=print) -> dict:
    budget = BUDGET if device.startswith("cuda") else BUDGET / 1000
    cases = QUICK_CASES if quick else CASES
    result = {
        "device": device,
        "device_name": str(wp.get_device(device).name),
        "warp": wp.config.version,
        "torch": torch.__version__,
        "created": time.time(),
        "quick": quick,
        "agreement": [],
        "md": [],
        "fire": [],
    }
    for system, dim, n, blocks in cases:
        spec = system_spec(system, n)
        x, v = liquid(spec, device)
        if n == cases[0][2] or dim == 3:
            if n <= 8000:
                result["agreement"].append(agreement(system, dim, spec, x, v, device))
                out(f"agreement {system} N = {n}: max |dx| {result['agreement'][-1]['max_dx']:.2e}")
        for precision in ("float32", "float64"):
            for replicas in blocks:
                for graphs in (True, False) if replicas == 1 and device.startswith("cuda") else (None,):
                    row = md_rate(system, dim, spec, x, v, replicas, device, precision, graphs, budget)
                    result["md"].append(row)
                    out(
                        f"md {system} {dim}D N = {n} x {replicas} {precision} graphs {graphs}: "
                        f"{row['atom_steps_per_s']:.3g} atom-steps/s"
                    )
        if n == cases[0][2] or dim == 3:
            result["fire"].append(fire_rate(system, dim, spec, x, v, 1 if quick else min(max(blocks), 100), device))
    model_spec = paper_model_spec(quick)
    torch_device = "cuda" if device.startswith("cuda") else "cpu"
    result["train"] = [
        train_rate(model_spec, b, k, torch_device) for b, k in ((5, 4 if quick else 200), (256, 1 if quick else 20))
    ]
    result["gradcam"] = gradcam_rate(model_spec, torch_device, 4 if quick else 32)
    result["ddp"] = ddp_rate(quick, torch_device)
    return result


def table(result: dict) -> str:
    lines = [
        f"GPU check on {result['device']} ({result['device_name']}), Warp {result['warp']}, "
        f"torch {result['torch']}" + (" (quick sizes)" if result["quick"] else ""),
        "",
        "| agreement (float64, device vs CPU) | N | steps | max abs dx | max abs dv |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {a['system']} {a['dim']}D | {a['n']} | {a['steps']} | {a['max_dx']:.1e} | {a['max_dv']:.1e} |"
        for a in result["agreement"]
    ]
    lines += ["", "| MD (NVT) | N | replicas | precision | CUDA graphs | atom-steps/s |", "|---|---|---|---|---|---|"]
    lines += [
        f"| {m['system']} {m['dim']}D | {m['n']} | {m['replicas']} | {m['precision']} | "
        f"{'-' if m['graphs'] is None else ('on' if m['graphs'] else 'off')} | {m['atom_steps_per_s']:.3g} |"
        for m in result["md"]
    ]
    lines += ["", "| FIRE to inherent.ftol | N | replicas | s per minimisation |", "|---|---|---|---|"]
    lines += [
        f"| {f['system']} {f['dim']}D | {f['n']} | {f['replicas']} | {f['seconds_per_minimisation']:.3g} |"
        for f in result["fire"]
    ]
    lines += ["", "| CNN (paper-kam) | per sample |", "|---|---|"]
    lines += [f"| train, batch {t['batch_size']} | {t['seconds_per_sample'] * 1e3:.3g} ms |" for t in result["train"]]
    lines.append(f"| Grad-CAM map | {result['gradcam']['seconds_per_map'] * 1e3:.3g} ms |")
    d = result["ddp"]
    lines.append(
        f"| DDP train, batch 256, world {d['world']} ({d['backend']}) | {d['seconds_per_sample'] * 1e3:.3g} ms |"
        if "error" not in d
        else f"| DDP | {d['error']} |"
    )
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="gpu-check.json")
    p.add_argument("--device", default="cuda" if wp.get_cuda_device_count() else "cpu")
    p.add_argument("--quick", action="store_true", help="small sizes (a CPU smoke test of the script)")
    args = p.parse_args()
    result = run(args.device, args.quick)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(table(result))
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
