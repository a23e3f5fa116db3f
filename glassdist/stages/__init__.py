"""Pipeline stages, in order. Each stage module defines NAME, SECTIONS (the campaign sections
its results depend on), MPI (whether it runs as an MPI farm) and ``run(campaign_dir, args) ->
exit code``. Modules are imported only when their stage runs (the CLI starts fast)."""

from importlib import import_module

STAGES = {
    "quench": "quench R replicas with LAMMPS (MPI farm; run under mpiexec -n P for parallel)",
    "inherent": "minimise the cooling snapshots to inherent structures: E0(T) and the T* fit (MPI farm)",
    "dataset": "density images M(rho) of every configuration, labelled and split (Dask)",
    "train": "train the glass/liquid CNN (one process, or DDP under torchrun --nproc_per_node P)",
    "gradcam": "Grad-CAM of every test configuration mapped back to particles (Gamma)",
    "indicators": "Voronoi volume, Tong-Tanaka order parameter and g(r) of every configuration (Dask)",
    "propensity": "isoconfigurational runs (MPI farm) and dynamic propensity (Dask)",
    "analyze": "correlation lengths, xi scans, indicator and propensity correlations, Tables III-V, S1, S2 (Dask)",
    "report": "figures and tables of the paper from stored results: DIR/report/index.html",
}
PIPELINE = tuple(STAGES)


def stage_module(name: str):
    return import_module(f"glassdist.stages.{name}")
