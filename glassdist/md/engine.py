"""The MD engine seam: every stage that runs molecular dynamics talks to an :class:`Engine`,
chosen by the campaign key ``md.engine``; the engines share the physics (eq. (1), Nose-Hoover
NVT, FIRE) and write the same results.

An engine works on **blocks** (several replicas or configurations in one call: the LAMMPS
engine runs them one after another, a batched engine steps them together) and, where a run is
long, checkpoints in its work directory and raises :class:`hpc.farm.Suspended` after a
checkpoint when ``should_stop()`` turns true; the rerun of the same block resumes there. A
quench follows its :class:`~glassdist.md.schedule.QuenchPlan`, whichever engine runs it. Engines
beyond the built-in two are plugins: an installed package's entry point of group
``glassdist.engines`` (``name = module:factory``, ``factory(spec) -> Engine``).
"""

from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path
from typing import Callable, Protocol

import numpy as np

from ..constants import ENGINE_ENTRY_POINTS, engine_names
from ..errors import SpecError
from ..spec import Spec
from .schedule import QuenchResult


class Engine(Protocol):
    name: str

    def check(self, spec: Spec) -> None:
        """Raise SpecError (key and fix) when this engine cannot run this campaign."""

    def versions(self) -> dict[str, str]:
        """What ran the MD (engine, its version, device, precision): stored with the results."""

    def quench_block(
        self,
        spec: Spec,
        rngs: list[np.random.Generator],
        snapshots: list[bool],
        *,
        labels: list[str] | None = None,
        comm=None,
        workdir: Path | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> list[QuenchResult]:
        """One quench (Sec. II B) per generator of the block: random start, equilibration at
        T_start, linear cooling; ``snapshots[b]`` asks replica b for cooling snapshots.
        ``labels[b]`` names replica b's files in ``workdir``. Checkpoints every
        ``md.checkpoint_every`` steps in ``workdir``; a rerun of the block with the same
        generators resumes there, bitwise identical on one rank per task."""

    def minimise_block(
        self,
        spec: Spec,
        positions: np.ndarray,
        types: np.ndarray,
        *,
        labels: list[str] | None = None,
        comm=None,
        workdir: Path | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Configurations (B, N, dim) -> (E0 per particle (B,), minimised positions (B, N, dim)).
        Minimisations are short: no checkpoint; Suspended when ``should_stop()`` is true
        between them."""

    def isoconf_block(
        self,
        spec: Spec,
        start: np.ndarray,
        types: np.ndarray,
        velocities: np.ndarray,
        temperature: float,
        workdirs: list[Path],
        *,
        comm=None,
        should_stop: Callable[[], bool] | None = None,
    ) -> list[np.ndarray]:
        """Isoconfigurational runs from ``start`` (N, dim) with velocities (B, N, dim) at
        ``temperature``: per run the unwrapped positions (n_out, N, dim) at the output steps
        (glassdist.md.isoconf.output_steps); run b checkpoints in ``workdirs[b]``."""


def get_engine(spec: Spec) -> Engine:
    """The engine named by ``md.engine``: a built-in one, or a plugin's (an entry point of group
    ``glassdist.engines`` naming a factory ``spec -> Engine``; a third engine is one file)."""
    name = spec.md.engine
    if name == "lammps":
        from .lammps_engine import LammpsEngine

        return LammpsEngine()
    if name == "warp":
        try:
            from .warp.engine import WarpEngine
        except ImportError as exc:
            raise SpecError(
                "md.engine",
                f"the warp engine cannot be imported ({exc})",
                'install it with `pip install warp-lang`, or set md.engine = "lammps"',
            ) from None
        return WarpEngine(spec)
    plugins = {ep.name: ep for ep in entry_points(group=ENGINE_ENTRY_POINTS)}
    if name not in plugins:
        raise SpecError("md.engine", f"unknown engine {name!r}", f"use one of {', '.join(engine_names())}")
    return plugins[name].load()(spec)
