"""Names and small helpers every layer shares (one home each)."""

from __future__ import annotations

import numpy as np

#: Class axis of every (R, 2, ...) array and the CNN's label: 0 liquid (T_L), 1 glass (T_G).
CLASSES = ("liquid", "glass")
#: Replica splits in the order of ``quench.split``; a replica's split code is its index here.
SPLITS = ("train", "val", "test")
#: What a training records per epoch (train/history/<key>).
HISTORY_KEYS = ("train_loss", "train_accuracy", "val_loss", "val_accuracy")
#: MD engines shipped with glassdist (``md.engine``); others register under ENGINE_ENTRY_POINTS
BUILTIN_ENGINES = ("lammps", "warp")
#: entry-point group of engine plugins: ``name = module:factory``, factory(spec) -> glassdist.md.engine.Engine
ENGINE_ENTRY_POINTS = "glassdist.engines"


def engine_names() -> tuple[str, ...]:
    """Every MD engine ``md.engine`` may name: the built-in ones, then installed plugins."""
    from importlib.metadata import entry_points

    return BUILTIN_ENGINES + tuple(
        ep.name for ep in entry_points(group=ENGINE_ENTRY_POINTS) if ep.name not in BUILTIN_ENGINES
    )


def bin_centres(r_max: float, bins: int) -> np.ndarray:
    """Centres (bins,) of ``bins`` equal bins on [0, r_max]."""
    edges = np.linspace(0.0, r_max, bins + 1)
    return 0.5 * (edges[1:] + edges[:-1])
