"""Training a K-member ensemble (train.ensemble) three ways, on the same data in the same run, with
the demo preset's network (demo-kam: grid 32, channels 16/32/32, hidden 64, batch 8):

1. one member after another versus the grouped network of ``train.members_together`` (grouped
   convolutions, per-member dense layers), both with ``--threads`` torch threads: the wall time of
   one training alone, of K sequential trainings and of the grouped training, each as time per
   member relative to the single training (grouped below 1 is the speed-up), and the largest
   relative difference between the grouped and the sequential members' weights (float
   summation order only);
2. ``train.member_processes``: K members one after another in one process with every core's
   threads (``member_processes = 1``) versus P processes at once, each training its share with
   cores / P threads (the stage's 'auto': P = cores); concurrent / sequential below 1 is the
   speed-up (skipped with ``--processes 1``).

Images are random with a learnable class signal (the cost of a training step does not depend on
the pixel values).

    python benchmarks/ensemble_training.py [--members 5] [--samples 64] [--epochs 3] [--threads 1] [--device cuda]
                                           [--processes P]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import numpy as np
import torch

from glassdist import spec as specmod
from glassdist.learn.ensemble import member_seed, split_members, stack_members
from glassdist.learn.model import build_model
from glassdist.learn.train import TrainConfig, train, train_members


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=5)
    parser.add_argument("--samples", type=int, default=64, help="training images (validation: a quarter)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--preset", default="demo-kam")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--processes",
        type=int,
        default=len(os.sched_getaffinity(0)),
        help="processes training at once in part 2 (train.member_processes; 1 skips it)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    spec = specmod.loads(specmod.preset_text(args.preset))
    grid, dim, K = spec.dataset.grid, spec.dim, args.members
    x, y = images(spec, args.samples)
    val = args.samples // 4
    config = dataclasses.replace(TrainConfig.from_spec(spec), epochs=args.epochs)
    seeds = [member_seed(spec.train.seed, k) for k in range(K)]

    def alone(k: int) -> tuple[dict, float]:
        model = build_model(spec, seeds[k])
        start = time.perf_counter()
        train(model, (x, y), (x[:val], y[:val]), dataclasses.replace(config, seed=seeds[k]), device=args.device)
        return model.cpu().state_dict(), time.perf_counter() - start

    alone(0)  # warm-up (first-call costs)
    _, single = alone(0)
    sequential = [alone(k) for k in range(K)]
    group = stack_members([build_model(spec, s) for s in seeds])
    start = time.perf_counter()
    train_members(group, (x, y.repeat(K, 1)), (x[:val], y[:val].repeat(K, 1)), config, seeds, device=args.device)
    grouped = time.perf_counter() - start
    worst = max(
        (float((a[k] - b[k]).norm() / a[k].norm()), k)
        for (a, _), b in zip(sequential, split_members(group.cpu()))
        for k in a
        if a[k].norm() > 0
    )
    seq_total = sum(t for _, t in sequential)
    print(
        f"{args.preset} network, grid {grid}^{dim}, {args.samples} training images, {args.epochs} epochs, "
        f"batch {config.batch_size}, {args.device}, {args.threads} torch thread(s), K = {K}"
    )
    print(f"single training            {single:8.2f} s")
    print(f"sequential, {K} members     {seq_total:8.2f} s   per member / single = {seq_total / K / single:.3f}")
    print(f"grouped, {K} members        {grouped:8.2f} s   per member / single = {grouped / K / single:.3f}")
    print(f"grouped / sequential       {grouped / seq_total:.3f}")
    print(f"largest relative weight difference grouped vs sequential: {worst[0]:.2e} ({worst[1]}; |a - b| / |a|)")
    if args.processes > 1 and args.device == "cpu":
        concurrent_processes(args, seeds)


def images(spec, samples: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random images (samples, 1, grid, ...) with a learnable class signal, and their labels (samples,)."""
    rng = np.random.default_rng(0)
    y = torch.arange(samples) % 2
    x = torch.from_numpy(
        (
            rng.normal(size=(samples, 1) + (spec.dataset.grid,) * spec.dim)
            + 0.5 * y.numpy().reshape((-1,) + (1,) * (spec.dim + 1))
        ).astype(np.float32)
    )
    return x, y


def train_share(preset: str, samples: int, epochs: int, seeds: list[int], threads: int) -> float:
    """Train the members of ``seeds`` one after another with ``threads`` torch threads: wall seconds."""
    torch.set_num_threads(threads)
    spec = specmod.loads(specmod.preset_text(preset))
    x, y = images(spec, samples)
    val = samples // 4
    config = dataclasses.replace(TrainConfig.from_spec(spec), epochs=epochs)
    start = time.perf_counter()
    for seed in seeds:
        train(build_model(spec, seed), (x, y), (x[:val], y[:val]), dataclasses.replace(config, seed=seed))
    return time.perf_counter() - start


def concurrent_processes(args, seeds: list[int]) -> None:
    """Part 2: K members in one process with every core's threads versus P processes at once."""
    cores, P = len(os.sched_getaffinity(0)), args.processes
    share = (args.preset, args.samples, args.epochs)
    with ProcessPoolExecutor(P, mp_context=get_context("spawn")) as pool:
        list(pool.map(train_share, *zip(*[(*share, seeds[:1], 1)] * P)))  # warm-up: imports in every process
        sequential = pool.submit(train_share, *share, seeds, cores).result()
        start = time.perf_counter()
        list(pool.map(train_share, *zip(*[(*share, seeds[j::P], max(1, cores // P)) for j in range(P)])))
        concurrent = time.perf_counter() - start
    print(f"one process, {cores} threads, {len(seeds)} members   {sequential:8.2f} s")
    print(
        f"{P} processes of {max(1, cores // P)} thread(s)         {concurrent:8.2f} s   "
        f"concurrent / sequential = {concurrent / sequential:.3f}"
    )


if __name__ == "__main__":
    main()
