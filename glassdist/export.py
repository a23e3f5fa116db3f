"""`glassdist export`: configurations as extended XYZ (OVITO, ASE) or NPZ; per-particle
fields as CSV (one row per particle per configuration) or NPZ.

Per-particle fields come from FIELD_SOURCES: each maps the store and the replica ids
(R',) to named arrays of shape (R', 2, N) [class axis: liquid, glass], NaN where a field
does not exist for a configuration: the Grad-CAM score, every structural indicator the
campaign computed (glassdist.indicators, plugins included) and the dynamic propensity.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Callable

import numpy as np

from .errors import UsageError
from .spec import load
from .constants import CLASSES
from .store import Store


def _indicators(store: Store, replicas: np.ndarray) -> dict[str, np.ndarray]:
    """Every structural indicator of the indicators stage (its attribute ``computed``), one column each."""
    if "indicators" not in store.root:
        return {}
    group = store.root["indicators"]
    return {name: group[name].get_orthogonal_selection((replicas,)) for name in group.attrs.get("computed", [])}


def _propensity(store: Store, replicas: np.ndarray) -> dict[str, np.ndarray]:
    """Dynamic propensity of the glass configurations at the campaign's analyze.deltas, one
    column per (temperature, delta); NaN where not computed or delta not reached."""
    from .dynamics.crd import propensity_at_delta

    if "propensity/Delta" not in store.root:
        return {}
    group, glass = store.root["propensity"], CLASSES.index("glass")
    deltas = load(store.dir).analyze.deltas
    n = group["Delta"].shape[-1]
    out = {}
    for t, T in enumerate(group.attrs["temperatures"]):
        columns = [np.full((len(replicas), 2, n), np.nan) for _ in deltas]
        for c, replica in enumerate(group.attrs["replicas"]):
            rows = np.flatnonzero(replicas == replica)
            fields, _ = propensity_at_delta(group["delta"][c, t], group["Delta"][c, t], deltas)
            for column, field in zip(columns, fields):
                column[rows, glass] = field
        out.update({f"propensity_T{T:g}_delta{d:g}": col for d, col in zip(deltas, columns)})
    return out


def _gradcam(store: Store, replicas: np.ndarray) -> dict[str, np.ndarray]:
    """Grad-CAM score Gamma of the test-split configurations; NaN for other replicas."""
    if "gradcam/gamma" not in store.root:
        return {}
    group = store.root["gradcam"]
    test = group["replicas"][:]
    out = np.full((len(replicas), 2, group["gamma"].shape[-1]), np.nan)
    rows = np.flatnonzero(np.isin(replicas, test))
    out[rows] = group["gamma"].get_orthogonal_selection((np.searchsorted(test, replicas[rows]),))
    return {"gradcam": out}


FIELD_SOURCES: list[Callable[[Store, np.ndarray], dict[str, np.ndarray]]] = [
    _gradcam,
    _indicators,
    _propensity,
]


def parse_replicas(text: str | None) -> np.ndarray | None:
    """'0,3,10-19' -> array of ids; None -> None (all done replicas)."""
    if not text:
        return None
    ids = []
    try:
        for part in text.split(","):
            lo, _, hi = part.partition("-")
            if hi and int(hi) < int(lo):
                raise ValueError(part)
            ids.extend(range(int(lo), int(hi) + 1) if hi else [int(lo)])
    except ValueError:
        raise UsageError(f"--replicas {text!r}: use comma-separated ids and rising ranges, e.g. 0,3,10-19") from None
    return np.unique(ids)


def export(args) -> int:
    spec = load(args.dir)
    store = Store(args.dir, mode="r")
    replicas = parse_replicas(args.replicas)
    if replicas is not None and (replicas.min() < 0 or replicas.max() >= spec.quench.replicas):
        raise UsageError(f"--replicas must lie in [0, {spec.quench.replicas})")
    out = Path(args.output)
    if not out.parent.is_dir():
        raise UsageError(f"-o {out}: the directory {out.parent} does not exist; create it or write elsewhere")
    positions, replicas = store.configurations(replicas)
    classes = [CLASSES.index(args.cls)] if args.cls else [0, 1]
    if args.what == "configurations":
        if args.format == "csv":
            raise UsageError("configurations export as extxyz or npz; use --what fields for CSV")
        write = write_extxyz if args.format == "extxyz" else write_npz_configurations
        write(out, spec, store, positions, replicas, classes)
    else:
        if args.format == "extxyz":
            raise UsageError("fields export as csv or npz; use --what configurations for extxyz")
        fields = {}
        for source in FIELD_SOURCES:
            fields.update(source(store, replicas))
        (write_csv if args.format == "csv" else write_npz_fields)(out, spec, store, positions, replicas,
                                                                   classes, fields)
    print(f"wrote {out} ({len(replicas)} replicas x {len(classes)} classes)")
    return 0


def _frames(replicas, classes):
    for r_index, replica in enumerate(replicas):
        for cls in classes:
            yield r_index, int(replica), cls


def write_extxyz(out: Path, spec, store, positions, replicas, classes) -> None:
    """Extended XYZ: Lattice, Properties=species:S:1:pos:R:3, per-frame replica, class, T, pe."""
    L, dim, N = spec.box_length, spec.dim, spec.system.n_particles
    names = np.asarray(spec.system.species)[store.types()]
    pe = store.root["quench/pe"].get_orthogonal_selection((replicas,))
    T_of = (spec.quench.T_liquid, spec.quench.T_glass)
    Lz = L if dim == 3 else 1.0
    pbc = "T T T" if dim == 3 else "T T F"
    with open(out, "w") as fh:
        for r_index, replica, cls in _frames(replicas, classes):
            xyz = np.zeros((N, 3))
            xyz[:, :dim] = positions[r_index, cls]
            fh.write(f"{N}\n")
            fh.write(f'Lattice="{L!r} 0.0 0.0 0.0 {L!r} 0.0 0.0 0.0 {Lz!r}" '
                     f'Properties=species:S:1:pos:R:3 pbc="{pbc}" replica={replica} '
                     f'class={CLASSES[cls]} T={T_of[cls]!r} pe={float(pe[r_index, cls])!r}\n')
            fh.writelines(f"{s} {x!r} {y!r} {z!r}\n" for s, (x, y, z) in zip(names, xyz.tolist()))


def write_npz_configurations(out: Path, spec, store, positions, replicas, classes) -> None:
    np.savez_compressed(out, positions=positions[:, classes], replicas=replicas,
                        classes=np.asarray(CLASSES)[classes], types=store.types(),
                        species=np.asarray(spec.system.species), box_length=spec.box_length)


def write_csv(out: Path, spec, store, positions, replicas, classes, fields) -> None:
    """One row per particle per configuration: replica, class, id, type, x, y[, z], L, fields."""
    axes = "xyz"[: spec.dim]
    names = np.asarray(spec.system.species)[store.types()]
    with open(out, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["replica", "class", "id", "type", *axes, "L", *fields])
        for r_index, replica, cls in _frames(replicas, classes):
            cols = [positions[r_index, cls, :, a] for a in range(spec.dim)]
            cols += [values[r_index, cls] for values in fields.values()]
            for pid in range(spec.system.n_particles):
                w.writerow([replica, CLASSES[cls], pid, names[pid],
                            *(_fmt(c[pid]) for c in cols[: spec.dim]), repr(spec.box_length),
                            *(_fmt(c[pid]) for c in cols[spec.dim:])])


def write_npz_fields(out: Path, spec, store, positions, replicas, classes, fields) -> None:
    np.savez_compressed(out, positions=positions[:, classes], replicas=replicas,
                        classes=np.asarray(CLASSES)[classes], types=store.types(),
                        **{k: v[:, classes] for k, v in fields.items()})


def _fmt(x) -> str:
    return "" if not np.isfinite(x) else repr(float(x))
