"""Per-configuration cost of the structural indicators and of coarse-graining, and the Dask
throughput of the `indicators` work with 2 workers against 1 (ratio measured in one run).

The configuration is a real 2D KAM glass (N = 2000, Table I) quenched with LAMMPS here at a
fast cooling rate (0.4; the structure is KAM-like, the cost is what matters).

    python benchmarks/fields.py [--configs 32] [--repeat 3]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from glassdist import spec as specmod
from glassdist.fields.coarse import coarse_grain
from glassdist.md.quench import quench
from glassdist.stages.indicators import configuration_indicators
from glassdist.structure.pairs import freud_box, freud_points, periodic_pairs
from glassdist.structure.rdf import partial_rdf
from glassdist.structure.tongtanaka import tong_tanaka
from glassdist.structure.voronoi import voronoi
from hpc.dask_cluster import dask_client

KAM_2000 = [
    "system.n_particles=2000",
    "system.counts=[1300, 700]",
    "quench.cooling_rate=0.4",
    "quench.equilibration_time=2.0",
    "quench.snapshot_replicas=0",
    "quench.thermo_points=10",
]


def best_of(repeat, fn, *args, **kwargs) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn(*args, **kwargs)
        times.append(time.perf_counter() - start)
    return min(times)


def freud_pairs(positions, L, r_max):
    """The same pair search with a freud AABBQuery (for comparison with structure.pairs)."""
    import freud

    box = freud_box(L, positions.shape[1])
    points = freud_points(box, positions)
    return freud.locality.AABBQuery(box, points).query(points, dict(r_max=r_max)).toNeighborList()


def single_threaded_indicators(positions, types, spec):
    """A Dask task: the indicators of one configuration with freud on one thread."""
    import freud

    freud.parallel.set_num_threads(1)
    return configuration_indicators(positions, types, spec)


def dask_seconds(workers: int, configs, types, spec) -> float:
    with dask_client(workers=workers, threads_per_worker=1) as client:
        client.gather(client.map(single_threaded_indicators, configs[:workers], types=types, spec=spec))  # warm
        start = time.perf_counter()
        client.gather(client.map(single_threaded_indicators, configs, types=types, spec=spec, pure=False))
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", type=int, default=32, help="configurations for the Dask throughput")
    parser.add_argument("--repeat", type=int, default=3, help="repeats; the best time is reported")
    args = parser.parse_args()
    import freud

    spec = specmod.loads(specmod.apply_overrides(specmod.preset_text("demo-kam"), KAM_2000))
    L, types = spec.box_length, spec.types
    start = time.perf_counter()
    glass = quench(spec, np.random.default_rng(0)).positions[1]
    print(f"LAMMPS quench of N = {len(types)} (KAM, 2D): {time.perf_counter() - start:.1f} s")

    freud.parallel.set_num_threads(1)
    print(f"per configuration, one thread (best of {args.repeat}):")
    cells = voronoi(glass, L)
    rows = [
        ("Voronoi volume Upsilon", best_of(args.repeat, voronoi, glass, L)),
        (
            "Tong-Tanaka Theta (given the cells)",
            best_of(args.repeat, tong_tanaka, glass, types, L, spec.contact_sigma, cells=cells),
        ),
        (
            f"partial g(r) (r_max {spec.indicators.rdf_rmax}, {spec.indicators.rdf_bins} bins)",
            best_of(args.repeat, partial_rdf, glass, types, L, spec.indicators.rdf_rmax, spec.indicators.rdf_bins),
        ),
    ]
    fields3 = np.random.default_rng(1).normal(size=(len(types), 3))
    for xi in (3.0, 5.0, 8.0):
        rows.append(
            (f"coarse-graining xi = {xi:g}, 1 field", best_of(args.repeat, coarse_grain, glass, fields3[:, 0], L, xi))
        )
        rows.append(
            (f"coarse-graining xi = {xi:g}, 3 fields", best_of(args.repeat, coarse_grain, glass, fields3, L, xi))
        )
    rows.append(
        ("pair search r_max = 16 (xi = 8): structure.pairs", best_of(args.repeat, periodic_pairs, glass, L, 16.0))
    )
    rows.append(("pair search r_max = 16 (xi = 8): freud AABBQuery", best_of(args.repeat, freud_pairs, glass, L, 16.0)))
    for name, seconds in rows:
        print(f"  {name:<52s} {1e3 * seconds:9.1f} ms")

    rng = np.random.default_rng(2)
    configs = [np.mod(glass + rng.normal(0, 0.05, glass.shape), L) for _ in range(args.configs)]
    one, two = dask_seconds(1, configs, types, spec), dask_seconds(2, configs, types, spec)
    print(f"Dask, {args.configs} configurations (Upsilon + Theta + g(r)), 1 thread per worker:")
    print(f"  1 worker : {one:.2f} s ({args.configs / one:.2f} configurations/s)")
    print(f"  2 workers: {two:.2f} s ({args.configs / two:.2f} configurations/s)")
    print(f"  throughput ratio 2 workers / 1 worker: {one / two:.2f}")


if __name__ == "__main__":
    main()
