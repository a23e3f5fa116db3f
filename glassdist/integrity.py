"""Store integrity: the chunks behind every done task exist and decode.

A done-mark says a task's data were written; a lost or damaged file (a disk, a copy, a quota, a
person) can still take them away later. :data:`TASK_ARRAYS` says which chunks each ledger's
tasks own, so a check can name the tasks whose data are gone, and :func:`reopen` marks them
pending again (rewound to their successful attempt, so a rerun redoes them bit for bit and
the results downstream, computed from the lost data, stay consistent).

``glassdist status DIR --verify`` decodes every owned chunk (:func:`damaged`, deep); every
stage checks that the chunk files behind the done tasks of the stages it reads exist before it
starts (:func:`check_needs`, cheap).
"""

from __future__ import annotations

import fnmatch
import itertools
import math
import sys
from typing import Iterator

import numpy as np
import zarr

from . import layout
from .errors import UsageError
from .pipeline import STAGES, stage_of_ledger

# ledger -> (array pattern, leading task axes, blocks from the end of the task range).
# Task t owns, in every array matching the pattern whose chunks are 1 along the leading axes,
# the chunks at np.unravel_index(t - offset, shape[:axes]) (offset = 0, or n_tasks - k prod(shape[:axes])
# for k blocks from the end: 1 (True) = aligned at the end); axes = 0: task 0 owns every chunk. Tasks beyond an array
# own none of its chunks (quench/snapshots: the first k replicas only).
TASK_ARRAYS: dict[str, tuple[tuple[str, int, bool], ...]] = {
    "quench": (("quench/*", 1, False),),
    "inherent": (("inherent/E0", 2, False), ("inherent/positions", 2, False)),
    "dataset": (("dataset/images", 1, False),),
    "train": (("train/*", 0, False),),
    "gradcam": tuple(
        (f"gradcam/{a}", 1, False)
        for a in (
            "gamma",
            "gamma_std",
            "members",
            "map",
            "p_glass",
            "p_glass_members",
            "correct",
            "randomised",
            "shuffled",
            "input",
        )
    ),
    "indicators": (("indicators/*", 1, False),),
    "propensity": (("propensity/traj", 3, False),),
    "propensity_reduce": tuple((f"propensity/{a}", 2, False) for a in ("Delta", "delta", "Delta_ensembles")),
    "analyze": (
        ("analyze/pairs/*", 1, False),
        ("analyze/structure/C_r", 1, False),  # test replicas, then
        *(
            (f"analyze/trust/{a}", 1, False)
            for a in ("agreement", "members", "randomised", "shuffled", "input", "partial", "pairs_null", "C_r_members")
        ),
        *(
            (f"analyze/{a}", 2, 2)
            for a in (
                "dynamics/delta",
                "dynamics/reached",
                "dynamics/C_Delta_r",  # scans
                "dynamics/xi_Delta",
                "dynamics/scan",
                "dynamics/xi_star",
                "maps/Delta",
                "maps/optimal",
                "trust/propensity/S1_*",
            )
        ),
        *(
            (f"analyze/{a}", 2, 1)
            for a in (
                "dynamics/pearson_t",
                "dynamics/spearman_t",  # correlations
                "maps/indicators",
                "ensembles/*",
                "glassbench/*",
                *(
                    f"trust/propensity/{b}"
                    for b in ("members", "randomised", "shuffled", "input", "partial", "pearson_t_*", "V_*")
                ),
            )
        ),
    ),
}


def _matching(root: zarr.Group, pattern: str) -> Iterator[zarr.Array]:
    """Arrays of the store whose path (e.g. 'quench/positions') matches ``pattern``."""
    group = pattern.split("/")[0]
    if group in root:
        yield from (arr for path, arr in _walk(root[group], group) if fnmatch.fnmatch(path, pattern))


def _walk(group: zarr.Group, prefix: str) -> Iterator[tuple[str, zarr.Array]]:
    for name, member in group.members():
        if isinstance(member, zarr.Array):
            yield f"{prefix}/{name}", member
        else:
            yield from _walk(member, f"{prefix}/{name}")


def owned_chunks(root: zarr.Group, ledger: str, n_tasks: int) -> Iterator[tuple[int, zarr.Array, tuple]]:
    """(task, array, chunk coordinates) of every chunk a task of ``ledger`` owns."""
    for pattern, axes, at_end in TASK_ARRAYS.get(ledger, ()):
        for arr in _matching(root, pattern):
            if any(c != 1 for c in arr.chunks[:axes]):
                continue  # not a per-task array (bin centres, replica ids)
            lead = math.prod(arr.shape[:axes])
            offset = n_tasks - int(at_end) * lead if at_end else 0
            rest = [range(n) for n in arr.cdata_shape[axes:]]
            for t in range(max(offset, 0), min(n_tasks, offset + lead)):
                head = np.unravel_index(t - offset, arr.shape[:axes]) if axes else ()
                for tail in itertools.product(*rest):
                    yield t, arr, tuple(int(i) for i in head) + tail


def damaged(store, ledger: str, deep: bool) -> dict[int, list[str]]:
    """{task: problems} of the done tasks of ``ledger`` whose chunks are missing (or, when
    ``deep``, empty or undecodable)."""
    led = store.ledger(ledger)
    done = led.done_mask()
    out: dict[int, list[str]] = {}
    for task, arr, coords in owned_chunks(store.root, ledger, len(led)):
        if not done[task]:
            continue
        key = arr.metadata.encode_chunk_key(coords)
        path = store.path / arr.path / key
        problem = None
        if not path.is_file():
            problem = "missing"
        elif deep:
            if path.stat().st_size == 0:
                problem = "empty"
            else:
                sel = tuple(slice(c * n, (c + 1) * n) for c, n in zip(coords, arr.chunks))
                try:
                    arr[sel]
                except Exception as exc:  # any decode failure is damage
                    problem = f"undecodable ({type(exc).__name__}: {exc})"
        if problem:
            out.setdefault(task, []).append(f"{arr.path}/{key} {problem}")
    return out


def reopen(store, ledger: str, tasks) -> None:
    """Mark done tasks pending again, rewound to their successful attempt (their redo uses the
    same seed, so it reproduces the lost data)."""
    led = store.ledger(ledger)
    for t in tasks:
        led.reopen(int(t))


def check_needs(store, stage: str, needs: tuple[str, ...] | None = None) -> None:
    """Before ``stage`` reads the stages it needs: every chunk file behind their done tasks
    exists; tasks whose chunks are gone are marked pending (printed, with the command that
    redoes them). Reused results of a derived campaign are checked in their own store."""
    for need in STAGES[stage].needs if needs is None else needs:
        for ledger in STAGES[need].ledgers:
            if not store.stage_started(ledger):
                continue
            bad = damaged(store, ledger, deep=False)
            if not bad:
                continue
            if need in store.reused_stages():
                raise UsageError(
                    f"the '{need}' results this campaign reuses from {store.upstream_dir()} have "
                    f"missing chunks (tasks {sorted(bad)[:20]}): run `glassdist status "
                    f"{store.upstream_dir()} --verify` and redo them there, then `glassdist init "
                    f"{store.dir} --from {store.upstream_dir()}` again"
                )
            reopen(store, ledger, bad)
            print(
                f"glassdist: {ledger}: the data of done task(s) {sorted(bad)[:20]} are missing from "
                f"{store.path}; marked pending: run `glassdist {need} {store.dir}` to redo them",
                file=sys.stderr,
            )


def verify(store, spec) -> dict[str, dict[int, list[str]]]:
    """`status --verify`: every array a started stage writes (glassdist.layout) is there with its
    declared shape and dtype, and every chunk behind every done task of every ledger decodes (not
    of reused results; the shapes of stale stages, whose spec changed, are not checked); damaged
    tasks are marked pending (all done tasks of the ledger that owns a missing or misshapen array,
    or of the stage's first ledger for an array no task owns). {ledger: {task: problems}}."""
    reused = {name for stage in store.reused_stages() for name in _ledgers_of(stage)}
    out: dict[str, dict[int, list[str]]] = {}
    for name in store.ledgers():
        if name in reused:
            continue
        bad = damaged(store, name, deep=True)
        stage = stage_of_ledger(name)
        shapes_hold = stage is not None and store.stage_state(stage, spec).name != "stale"  # else: redone anyway
        for path, problem in misshapen(store, spec, stage).items() if shapes_hold else ():
            if owner(path, stage) == name:
                for task in np.flatnonzero(store.ledger(name).done_mask()):
                    bad.setdefault(int(task), []).append(f"{path} {problem}")
        if bad:
            reopen(store, name, bad)
            out[name] = bad
    return out


def owner(path: str, stage: str) -> str:
    """The ledger of ``stage`` whose tasks write the array ``path`` (TASK_ARRAYS), else its first."""
    return next(
        (
            ledger
            for ledger in STAGES[stage].ledgers
            if any(fnmatch.fnmatch(path, pattern) for pattern, _, _ in TASK_ARRAYS.get(ledger, ()))
        ),
        STAGES[stage].ledgers[0],
    )


def misshapen(store, spec, stage: str) -> dict[str, str]:
    """{path: problem} of the arrays ``stage`` writes (glassdist.layout) that are missing or have
    another shape or dtype than declared."""
    out = {}
    for path, array in layout.arrays(stage, spec, store).items():
        if path not in store.root:
            out[path] = "missing"
        elif (tuple(store.root[path].shape), str(store.root[path].dtype)) != (array.shape, array.dtype):
            found = store.root[path]
            out[path] = f"is {found.dtype} {tuple(found.shape)}, declared {array.dtype} {array.shape}"
    return out


def _ledgers_of(stage: str) -> tuple[str, ...]:
    return STAGES[stage].ledgers
