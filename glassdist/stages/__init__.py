"""Pipeline stages, in order. Each stage module defines NAME, SECTIONS (the campaign sections
its results depend on), MPI (whether it runs as an MPI farm), HELP and ``run(campaign_dir, args)
-> exit code``; optionally ``add_arguments(parser)``."""

from importlib import import_module

PIPELINE = ("quench", "inherent", "dataset", "train", "gradcam", "indicators", "propensity",
            "analyze", "report")


def stage_module(name: str):
    return import_module(f"glassdist.stages.{name}")


def available() -> list[str]:
    """Stages of PIPELINE whose module exists, in pipeline order."""
    out = []
    for name in PIPELINE:
        try:
            stage_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != f"glassdist.stages.{name}":
                raise
            continue
        out.append(name)
    return out
