"""The pipeline: one record per stage, in order. Everything that needs the stage list (the CLI,
`run`'s skipping, `status`, `submit`'s dependencies, job kinds and sizes, every upstream check)
reads :data:`STAGES`. A stage's module (``glassdist.stages.<name>``, with ``prepare(campaign_dir,
spec)`` and ``run(campaign_dir, args) -> exit code``) is imported only when the stage runs, so
the CLI and every MPI rank start without the heavy libraries of the other stages. A stage's
command-line options are declared in its record (:class:`Option`): the CLI adds them, and a stage
run by `glassdist run` gets their defaults (:meth:`Stage.arguments`). Its arrays are declared in
glassdist.layout.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from importlib import import_module
from typing import Any, Callable

KINDS = ("mpi", "dask", "torch", "serial")


@dataclass(frozen=True)
class Option:
    """A command-line option of a stage: ``glassdist <stage> DIR --<name> VALUE`` (a switch when
    ``type`` is None); the stage reads it as ``args.<name>``."""

    name: str
    help: str
    type: Callable | None = None
    default: Any = None
    metavar: str | None = None

    def add_to(self, parser: argparse.ArgumentParser) -> None:
        flag = f"--{self.name}"
        if self.type is None:
            parser.add_argument(flag, action="store_true", help=self.help)
        else:
            parser.add_argument(flag, type=self.type, default=self.default, metavar=self.metavar, help=self.help)


@dataclass(frozen=True)
class Stage:
    """One pipeline stage.

    name: CLI subcommand, store group and ledger name. help: one line for `glassdist --help`.
    sections: campaign sections its results depend on (a change of them invalidates them).
    needs: stages whose results it reads (``needs_of(spec)`` adds those that only some campaigns
    make it read: ``needs_when(spec)``). kind: how it runs in parallel (mpi: MPI task farm
    under mpiexec; dask: Dask task farm; torch: DDP, --nproc P on one node or torchrun; serial: one process).
    tasks: number of tasks of its main ledger for a spec (sizes SLURM jobs before it ran).
    ledgers: names of its ledgers in the store (its own name first).
    ignores: keys ("section.key") of its sections its results do not depend on (a derived
    campaign, glassdist.commands.derive, reuses them when only those changed).
    skip: spec -> why the stage does not apply to the campaign ('' = it does).
    options: its command-line options.
    fixes: defects of its computation fixed since glassdist first stored its results, oldest
    first, one phrase each: results recorded with fewer fixes (the store's ``stages`` record)
    are stale (Store.stage_state), and the next run of the stage redoes them.
    Its arrays live in the store group of its name (glassdist.layout), its other files in
    ``DIR/<name>/`` and ``DIR/lammps/<name>/``.
    """

    name: str
    help: str
    sections: tuple[str, ...]
    needs: tuple[str, ...]
    kind: str
    tasks: Callable | None = None
    extra_ledgers: tuple[str, ...] = ()
    ignores: tuple[str, ...] = ()
    needs_when: Callable | None = None
    skip: Callable | None = None
    options: tuple[Option, ...] = ()
    fixes: tuple[str, ...] = ()

    def needs_of(self, spec) -> tuple[str, ...]:
        """The stages whose results it reads in this campaign (``needs`` and ``needs_when``)."""
        return self.needs + (self.needs_when(spec) if self.needs_when and spec is not None else ())

    def skipped(self, spec) -> str:
        """Why this stage does not run for ``spec`` ('' when it does): `run` passes over it, the
        stages that read it do without it, the report says why."""
        return self.skip(spec) if self.skip else ""

    @property
    def ledgers(self) -> tuple[str, ...]:
        return (self.name, *self.extra_ledgers)

    @property
    def module(self):
        return import_module(f"glassdist.stages.{self.name}")

    def section_hash(self, spec) -> str:
        """Hash of the campaign sections its results depend on (with the campaign seed)."""
        return spec.section_hash(*self.sections)

    def values(self, raw: dict) -> dict:
        """The values of its sections in a raw spec, without the keys it ignores."""
        return {s: {k: v for k, v in raw.get(s, {}).items() if f"{s}.{k}" not in self.ignores} for s in self.sections}

    def computed_with(self, record: dict, spec) -> bool:
        """Whether results recorded as ``record`` (a store's ``stages`` attribute of this stage) hold
        for ``spec``: the same section hash, or the same seed and values but for the keys it ignores
        (keys the schema gained after the record count at their default: Spec.with_new_keys).
        A record written before glassdist kept the values compares the hash only."""
        if record["hash"] == self.section_hash(spec):
            return True
        return (
            "values" in record
            and record.get("seed", spec.campaign.seed) == spec.campaign.seed
            and self.values(spec.with_new_keys(record["values"])) == self.values(spec.raw)
        )

    def prepare(self, campaign_dir, spec):
        return self.module.prepare(campaign_dir, spec)

    def arguments(self, **given) -> argparse.Namespace:
        """What a stage run without its own command line reads: every option at its default
        (switches off), then ``given``."""
        return argparse.Namespace(**{o.name: o.default if o.type else False for o in self.options}, **given)

    def run(self, campaign_dir, args=None) -> int:
        """Run the stage in this process (``args``: its options; default :meth:`arguments`)."""
        return self.module.run(campaign_dir, self.arguments() if args is None else args)


def snapshot_shape(spec) -> tuple[int, int]:
    """(replicas with cooling snapshots, snapshot temperatures): the inherent stage's task grid."""
    q = spec.quench
    return (q.snapshot_replicas, len(q.snapshot_temperatures)) if q.snapshot_temperatures else (0, 0)


def auto_temperatures(spec) -> bool:
    """Whether the propensity temperatures are multiples of the fitted T* (``"auto"``)."""
    return spec.propensity.temperatures == "auto"


def n_temperatures(spec) -> int:
    """Number of propensity temperatures nT (known before T* is: one per multiple)."""
    p = spec.propensity
    return len(p.t_star_multiples if auto_temperatures(spec) else p.temperatures)


def inherent_skip(spec) -> str:
    """Why the inherent stage does not run ('' when it does)."""
    return (
        (
            "the configurations are imported (quench.source = 'import'): there is no cooling to take snapshots "
            "from, so no E0(T) and no T* fit"
        )
        if spec.imported
        else ""
    )


def propensity_skip(spec) -> str:
    """Why the propensity stage does not run ('' when it does): its isoconfigurational runs need the
    interaction the configurations were made with."""
    if spec.system.interaction_known:
        return ""
    return (
        "the configurations are imported with an unknown interaction (system.interaction_known = false), so "
        "there are no isoconfigurational runs; declare the mixture ([system] sigma, epsilon, cutoff_factor) "
        "they were made with and set interaction_known = true to run them"
    )


def propensity_shape(spec) -> tuple[int, int, int]:
    """(C, nT, S): configurations (0 when the stage is skipped), temperatures, samples; a run's task
    id is the ravel index."""
    p = spec.propensity
    return 0 if propensity_skip(spec) else len(p.configurations), n_temperatures(spec), p.samples


# the part of an MPI farm's tasks one element of a SLURM job array does (`glassdist submit --array K`)
CHUNK = Option(
    "chunk",
    "do only part I of K of the stage's tasks (contiguous ranges of task ids, 0 <= I < K): one "
    "element of a SLURM job array (`glassdist submit --array K`); the parts may run at once: each "
    "prepares the stage and runs its last steps under a lock on DIR/.lock",
    str,
    metavar="I/K",
)
_MD = ("system", "classes", "md", "quench")
_LEARN = _MD + ("dataset", "model", "train")
# grouped or one by one, in one process or several: the same members (up to float summation order)
_HOW_TRAINED = ("train.members_together", "train.member_processes")

STAGES: dict[str, Stage] = {
    s.name: s
    for s in (
        Stage(
            "quench",
            "quench R replicas (MPI farm; run under mpiexec -n P for parallel)",
            _MD,
            (),
            "mpi",
            lambda spec: spec.quench.replicas,
            options=(CHUNK,),
        ),
        Stage(
            "inherent",
            "minimise the cooling snapshots to inherent structures: E0(T) and the T* fit (MPI farm)",
            _MD + ("inherent",),
            ("quench",),
            "mpi",
            lambda spec: math.prod(snapshot_shape(spec)),
            skip=inherent_skip,
            options=(CHUNK,),
        ),
        Stage(
            "dataset",
            "density images M(rho) of every configuration, labelled and split (Dask)",
            _MD + ("dataset",),
            ("quench",),
            "dask",
            lambda spec: spec.quench.replicas,
            ignores=("dataset.normalise",),
        ),  # the images are unnormalised; the scaling is the model's
        Stage(
            "train",
            "train the glass/liquid CNN (one process; data-parallel: --nproc P on one node, torchrun on several)",
            _LEARN,
            ("dataset",),
            "torch",
            lambda spec: spec.train.ensemble + spec.train.shuffled_control,
            ignores=_HOW_TRAINED,
            options=(
                Option(
                    "nproc",
                    "data-parallel processes on this host (one per GPU; gloo on CPU); several nodes: "
                    "torchrun, docs/slurm.md",
                    int,
                    1,
                ),
            ),
        ),
        Stage(
            "gradcam",
            "Grad-CAM of every test configuration mapped back to particles (Gamma)",
            _LEARN + ("gradcam",),
            ("dataset", "train"),
            "serial",
            lambda spec: spec.n_test,
            ignores=_HOW_TRAINED,
            options=(
                Option(
                    "model",
                    "explain this campaign's test configurations with the model trained in another "
                    "campaign of the same mixture and image resolution (refused otherwise)",
                    str,
                    metavar="OTHER_DIR/train/member-0.pt",
                ),
                Option(
                    "discard",
                    "drop the stored Grad-CAM (e.g. one made with --model) so that the next "
                    "`gradcam` or `run` recomputes it",
                ),
            ),
        ),
        Stage(
            "indicators",
            "structural indicators (indicators.compute: Voronoi volume, Tong-Tanaka, ...) "
            "and g(r) of every configuration (Dask)",
            _MD + ("indicators",),
            ("quench",),
            "dask",
            lambda spec: spec.quench.replicas,
        ),
        Stage(
            "propensity",
            "isoconfigurational runs (MPI farm) and dynamic propensity (Dask)",
            _MD + ("propensity",),
            ("quench",),
            "mpi",
            lambda spec: math.prod(propensity_shape(spec)),
            extra_ledgers=("propensity_reduce",),
            skip=propensity_skip,
            options=(CHUNK,),
            needs_when=lambda spec: ("inherent",) if auto_temperatures(spec) else (),
        ),  # T* sets the temperatures
        Stage(
            "analyze",
            "correlation lengths, xi scans, indicator and propensity correlations, Tables III-V, S1, S2 (Dask)",
            _LEARN + ("gradcam", "indicators", "propensity", "analyze"),
            ("gradcam", "indicators", "propensity"),
            "dask",
            lambda spec: spec.n_test + 2 * math.prod(propensity_shape(spec)[:2]),
            ignores=_HOW_TRAINED,
            fixes=("Table S1's intervals and null bands, which read the stored Delta maps in the wrong axis order",),
        ),
        Stage(
            "report",
            "figures and tables of the paper from stored results: DIR/report/index.html",
            _LEARN + ("gradcam", "indicators", "inherent", "propensity", "analyze"),
            ("inherent", "analyze"),
            "serial",
            ignores=_HOW_TRAINED,
        ),
    )
}
PIPELINE = tuple(STAGES)


def stage_of_ledger(ledger: str) -> str | None:
    """The stage that owns a ledger name, or None."""
    return next((s.name for s in STAGES.values() if ledger in s.ledgers), None)
