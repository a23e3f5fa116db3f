"""The indicator registry: every per-particle structural indicator the pipeline computes,
correlates, exports and reports, in one place.

An :class:`Indicator` has a name (store path ``indicators/<name>``, export column, campaign
keys ``indicators.compute`` and ``analyze.one_minus``), a symbol and title for tables and
figures, the dimensions it supports, the paper's sign convention (the paper correlates
``1 - X`` in some systems: Figs. 1, 2, 7) and ``compute(positions, types, spec, cells) -> (N,)``
(cells: the configuration's periodic Voronoi tessellation, shared by every indicator).
The Grad-CAM score is an indicator too, made by the ``gradcam`` stage rather than computed here.

Built in: Voronoi volume Upsilon, Tong-Tanaka Theta. Your own indicator is a plugin: a package
exposing an :class:`Indicator` under the entry-point group ``glassdist.indicators``; it then
appears in ``indicators.compute``, the Table S2 correlations, ``export`` and the report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from importlib.metadata import entry_points
from typing import Callable

import numpy as np

from ..errors import SpecError

ENTRY_POINTS = "glassdist.indicators"


@dataclass(frozen=True)
class Indicator:
    name: str
    symbol: str
    title: str
    dims: tuple[int, ...]
    compute: Callable | None = None  # None: made by another stage
    one_minus: dict[str, bool] = field(default_factory=dict)  # paper system -> 1 - X in its correlations


def _voronoi_volume(positions, types, spec, cells) -> np.ndarray:
    return cells.volumes


def _tong_tanaka(positions, types, spec, cells) -> np.ndarray:
    from .tongtanaka import tong_tanaka

    return tong_tanaka(positions, types, spec.box_length, spec.contact_sigma, cells=cells)


GRADCAM = Indicator("gradcam", "Γ", "Grad-CAM score", (2, 3), None, {"KAM": True, "ABM": True})
BUILTIN = (
    Indicator("voronoi", "Υ", "Voronoi volume", (2, 3), _voronoi_volume, {"KAM": False, "ABM": True}),
    Indicator("ttop", "Θ", "Tong-Tanaka order parameter", (2, 3), _tong_tanaka, {"KAM": True, "ABM": False}),
)


@cache
def registered() -> dict[str, Indicator]:
    """Every structural indicator: the built-in ones, then installed plugins (by name)."""
    out = {ind.name: ind for ind in BUILTIN}
    for ep in entry_points(group=ENTRY_POINTS):
        ind = ep.load()
        if not isinstance(ind, Indicator) or ind.name != ep.name or ind.name in out or ind.name == GRADCAM.name:
            raise TypeError(
                f"entry point {ep.name} = {ep.value} of group {ENTRY_POINTS} must be an "
                f"Indicator named {ep.name!r} that is not already registered"
            )
        out[ind.name] = ind
    return out


def structural(spec) -> list[Indicator]:
    """The indicators the ``indicators`` stage computes for this campaign, in registry order:
    ``indicators.compute``, or every registered one that supports ``system.dim``."""
    reg = registered()
    chosen = spec.indicators.compute or [n for n, ind in reg.items() if spec.dim in ind.dims]
    return [reg[n] for n in reg if n in chosen]


def analysed(spec) -> list[Indicator]:
    """The A indicators of the analysis: Grad-CAM first, then :func:`structural`."""
    return [GRADCAM, *structural(spec)]


def pairs(count: int) -> list[tuple[int, int]]:
    """Table S2 pairs among ``count`` analysed indicators: Grad-CAM with each structural
    indicator, then each structural indicator with every earlier one (the paper's C(Θ, Υ))."""
    return [(0, j) for j in range(1, count)] + [(j, i) for j in range(1, count) for i in range(1, j)]


def by_name(name: str) -> Indicator:
    return GRADCAM if name == GRADCAM.name else registered()[name]


def check(spec_dict: dict) -> None:
    """Campaign validation: ``indicators.compute`` and ``analyze.one_minus`` name registered
    indicators that support the campaign's dimension."""
    reg, dim = registered(), spec_dict["system"]["dim"]
    for name in spec_dict["indicators"]["compute"]:
        if name not in reg:
            raise SpecError(
                "indicators.compute",
                f"unknown indicator {name!r}",
                f"use names from {', '.join(reg)} (or install a plugin: docs/physics.md)",
            )
        if dim not in reg[name].dims:
            raise SpecError(
                "indicators.compute",
                f"{name!r} ({reg[name].title}) is not defined in {dim}D",
                f"leave it out; in {dim}D use {', '.join(n for n, i in reg.items() if dim in i.dims)}",
            )
    for name in spec_dict["analyze"]["one_minus"]:
        if name != GRADCAM.name and name not in reg:
            raise SpecError(
                "analyze.one_minus", f"unknown indicator {name!r}", f"use names from {', '.join([GRADCAM.name, *reg])}"
            )
