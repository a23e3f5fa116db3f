"""Propensity benchmarks, measured in one run:

1. MD throughput of one isoconfigurational run (N = 2000 KAM, paper size) through glassdist
   (Python LAMMPS module, segments, unwrapped-position gathers, restart checkpoints) against the
   raw ``lmp`` binary on the same generated input (``run.in`` + ``start.data``); the ratio says
   what the Python driving costs.
2. CRD / propensity rate in particles x samples x times per second, numpy and Dask (chunks of
   one sample x all times, the stage's layout).

Usage: python benchmarks/propensity.py [--steps 20000] [--lmp /path/to/lmp]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import dask
import dask.array as da
import numpy as np

from glassdist.dynamics.crd import cage_relative_displacement, propensity, voronoi_cage
from glassdist.md.isoconf import draw_velocities, run_isoconf
from glassdist.md.lammps import random_minimum
from glassdist.spec import apply_overrides, loads, preset_text


def start_configuration(spec) -> np.ndarray:
    """A local minimum of a random start (N, dim)."""
    return random_minimum(spec, 11)


def md_throughput(steps: int, lmp_binary: str) -> None:
    spec = loads(
        apply_overrides(
            preset_text("demo-kam"),
            [
                "system.n_particles=2000",
                "system.counts=[1300,700]",
                f"propensity.steps={steps}",
                "propensity.outputs=40",
                f"propensity.checkpoint_every={steps // 4}",
            ],
        )
    )
    N = spec.system.n_particles
    positions = start_configuration(spec)
    v = draw_velocities(np.random.default_rng(0), 0.5, np.ones(N), spec.dim)
    work = Path(tempfile.mkdtemp(prefix="bench-propensity-"))
    try:
        t0 = time.perf_counter()
        res = run_isoconf(spec, positions, spec.types, v, 0.5, work / "glassdist")
        t_glassdist = time.perf_counter() - t0
        assert res.status == "done"
        run_in = work / "glassdist" / "run.in"
        t0 = time.perf_counter()
        subprocess.run(
            [lmp_binary, "-in", str(run_in), "-screen", "none", "-log", "none", "-nocite"], check=True, cwd=work
        )
        t_lmp = time.perf_counter() - t0
    finally:
        shutil.rmtree(work)
    checkpoints = len(range(spec.propensity.checkpoint_every, steps, spec.propensity.checkpoint_every))
    print(f"MD: N = {N}, {steps} steps, {len(res.steps)} outputs (incl. step 0), {checkpoints} checkpoints, 1 rank")
    print(f"  glassdist (Python LAMMPS module): {t_glassdist:7.2f} s  {N * steps / t_glassdist:.3e} atom-steps/s")
    print(f"  raw lmp binary, same input:       {t_lmp:7.2f} s  {N * steps / t_lmp:.3e} atom-steps/s")
    print(f"  ratio glassdist / lmp wall time:  {t_glassdist / t_lmp:.3f}")


def crd_rate(samples: int = 30, times: int = 61, n: int = 2000, dim: int = 2) -> None:
    rng = np.random.default_rng(1)
    L = (n / 1.2) ** 0.5
    r0 = rng.uniform(0, L, (n, dim))
    traj = r0 + rng.normal(scale=0.2, size=(samples, times, n, dim)).cumsum(axis=1)
    t0 = time.perf_counter()
    cage = voronoi_cage(r0, L)
    t_cage = time.perf_counter() - t0
    work = samples * times * n
    t0 = time.perf_counter()
    field, delta = propensity(cage_relative_displacement(r0, traj, cage))
    t_np = time.perf_counter() - t0
    lazy = da.from_array(traj, chunks=(1, times, n, dim))
    t0 = time.perf_counter()
    dfield, ddelta = dask.compute(*propensity(cage_relative_displacement(r0, lazy, cage)), scheduler="threads")
    t_da = time.perf_counter() - t0
    assert np.allclose(dfield, field) and np.allclose(ddelta, delta)
    print(
        f"CRD: S = {samples}, T = {times}, N = {n}, dim = {dim} ({work:.2e} particle-sample-times); "
        f"Voronoi cage {t_cage * 1e3:.1f} ms"
    )
    print(f"  numpy:                 {t_np:6.3f} s  {work / t_np:.3e} particle-sample-times/s")
    print(f"  dask (threads, S chunks): {t_da:6.3f} s  {work / t_da:.3e} particle-sample-times/s")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=20000)
    p.add_argument("--lmp", default=str(Path(sys.executable).parent / "lmp"))
    args = p.parse_args()
    md_throughput(args.steps, args.lmp)
    crd_rate()


if __name__ == "__main__":
    main()
