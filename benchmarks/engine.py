"""Warp engine throughput: atom-steps/s against replicas per launch, N = 2000, 2D KAM, NVT.

On the CPU as a ratio to LAMMPS on the same core in the same run (both single-threaded; the
machine is shared and noisy, so the ratio is the number to read); on a GPU when Warp sees one
(also GPU memory per replica), else "GPU: not measured". Every measurement runs about the same
number of atom-steps (--budget), so big blocks run fewer steps.

``--locality K``: memory locality at large N instead. A minimised N-particle liquid tiled K x K
(N K^2 particles, each species' particles in random order, as a random start leaves them) runs
with the batch's spatial sort (every SORT_EVERY steps and after new positions) and without it,
beside the untiled N in the same run: atom-steps/s of each and the ratios.

Usage: OMP_NUM_THREADS=1 python benchmarks/engine.py [--n 2000] [--blocks 1,10,100,1000] [--budget 1e7]
       OMP_NUM_THREADS=1 python benchmarks/engine.py --locality 7 [--device cpu]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import warp as wp

from glassdist import spec as specmod
from glassdist.md.isoconf import draw_velocities
from glassdist.md.lammps import (
    LammpsSession,
    num,
    pair_commands,
    random_minimum,
    read_data_commands,
    write_data_file,
    dynamics_fixes,
)
from glassdist.md.warp.integrate import NoseHooverNVT
from glassdist.md.warp.system import Batch

T = 0.8  # the paper's KAM T_L: a dense liquid


def kam(n: int) -> specmod.Spec:
    a = int(round(0.65 * n))
    return specmod.loads(
        specmod.apply_overrides(
            specmod.preset_text("demo-kam"), [f"system.n_particles={n}", f"system.counts=[{a},{n - a}]"]
        )
    )


def lammps_rate(spec, x, v, steps: int, tmp: str) -> float:
    write_data_file(f"{tmp}/bench.data", spec, x, spec.types, v)
    with LammpsSession(spec) as lmp:
        lmp.run(
            read_data_commands(spec, f"{tmp}/bench.data")
            + pair_commands(spec)
            + dynamics_fixes(spec)
            + [f"fix nvt all nvt temp {T} {T} {num(spec.md.thermostat_damping)}", "run 10"]
        )
        start = time.perf_counter()
        lmp.run(f"run {steps}")
        return spec.system.n_particles * steps / (time.perf_counter() - start)


def warp_rate(
    spec, x, v, blocks: int, steps: int, device: str, precision: str, sortable: bool = True
) -> tuple[float, float]:
    """(atom-steps/s, device bytes per replica) of one block of ``blocks`` replicas."""
    batch = Batch(spec, blocks, device=device, precision=precision)
    batch.sortable = batch.sortable and sortable
    batch.set_positions(np.broadcast_to(x, (blocks, *x.shape)))
    batch.set_velocities(np.broadcast_to(v, (blocks, *v.shape)))
    nvt = NoseHooverNVT(batch, spec.md.dt, spec.md.thermostat_damping)
    nvt.start(T, T, 0, 10**9)
    nvt.run(2)
    wp.synchronize_device(device)
    start = time.perf_counter()
    nvt.run(steps)
    wp.synchronize_device(device)
    elapsed = time.perf_counter() - start
    nbytes = sum(a.capacity for a in vars(batch).values() if isinstance(a, wp.array)) / blocks
    return blocks * spec.system.n_particles * steps / elapsed, nbytes


def tiled(spec, x, v, k: int, rng) -> tuple[specmod.Spec, np.ndarray, np.ndarray]:
    """The configuration tiled k x k: (spec of k^2 N particles, positions, velocities), each species'
    particles in random order."""
    big = kam(spec.system.n_particles * k * k)
    shifts = np.array([(i, j) for i in range(k) for j in range(k)]) * spec.box_length
    xs, vs = [], []
    for species in range(spec.n_species):
        mine = spec.types == species
        order = rng.permutation(mine.sum() * k * k)
        xs.append(np.concatenate([x[mine] + s for s in shifts])[order])
        vs.append(np.concatenate([v[mine]] * k * k)[order])
    return big, np.concatenate(xs), np.concatenate(vs)


def locality(spec, x, v, k: int, device: str, budget: float) -> None:
    big, xb, vb = tiled(spec, x, v, k, np.random.default_rng(3))
    n, nb = spec.system.n_particles, big.system.n_particles
    small = warp_rate(spec, x, v, 1, max(2, int(budget / n)), device, "float64")[0]
    steps = max(2, int(budget / nb))
    plain = warp_rate(big, xb, vb, 1, steps, device, "float64", sortable=False)[0]
    sorted_ = warp_rate(big, xb, vb, 1, steps, device, "float64")[0]
    print(
        f"memory locality on {device}, 2D KAM float64, one system: N = {n}: {small:.3g} atom-steps/s; "
        f"N = {nb} (tiled {k} x {k}, random order): unsorted {plain:.3g} ({plain / small:.2f} of N = {n}), "
        f"sorted {sorted_:.3g} ({sorted_ / small:.2f}); sort gain x{sorted_ / plain:.2f}"
    )


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--blocks", default="1,10,100,1000")
    p.add_argument("--budget", type=float, default=1e7, help="atom-steps per CPU measurement (GPU: 100x)")
    p.add_argument("--locality", type=int, metavar="K", help="tile the system K x K: sorted vs unsorted (above)")
    p.add_argument("--device", default="cpu", help="--locality's device")
    args = p.parse_args()
    import tempfile

    spec = kam(args.n)
    x = random_minimum(spec, 1)
    v = draw_velocities(np.random.default_rng(2), T, np.ones(args.n), 2)
    if args.locality:
        return locality(spec, x, v, args.locality, args.device, args.budget * (100 if args.device == "cuda" else 1))
    blocks = [int(b) for b in args.blocks.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        ref = lammps_rate(spec, x, v, max(1, int(args.budget / args.n)), tmp)
    print(f"N = {args.n}, 2D KAM, NVT at T = {T}; Warp {wp.config.version}")
    print(f"LAMMPS (1 core, same run): {ref:.3g} atom-steps/s")
    print(
        f"{'device':6} {'precision':9} {'replicas':>8} {'steps':>6} {'atom-steps/s':>13} {'vs LAMMPS':>9} "
        f"{'MB/replica':>10}"
    )
    devices = ["cpu"] + (["cuda"] if wp.get_cuda_device_count() else [])
    for device in devices:
        for precision in ("float64", "float32"):
            for b in blocks:
                budget = args.budget * (100 if device == "cuda" else 1)
                steps = max(2, int(budget / (b * args.n)))
                rate, nbytes = warp_rate(spec, x, v, b, steps, device, precision)
                print(
                    f"{device:6} {precision:9} {b:8d} {steps:6d} {rate:13.3g} {rate / ref:9.2f} {nbytes / 1e6:10.2f}",
                    flush=True,
                )
    if "cuda" not in devices:
        print("GPU: not measured (Warp sees no CUDA device here)")


if __name__ == "__main__":
    main()
