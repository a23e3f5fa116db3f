"""`glassdist export`: configurations as extended XYZ (OVITO, ASE), HOOMD GSD (OVITO, gsd.hoomd),
LAMMPS dump text (OVITO, ASE, LAMMPS `read_dump`) or NPZ, the per-particle fields as named
properties of every particle (writers of GSD and dumps: glassdist.commands.formats); per-particle fields
alone as CSV (one row per particle per configuration) or NPZ.

Per-particle fields come from FIELD_SOURCES: each maps the store and the replica ids
(R',) to named arrays of shape (R', 2, N) [class axis: liquid, glass], NaN where a field
does not exist for a configuration: the Grad-CAM score (consensus, spread over the training
ensemble, members, input-only baseline), every structural indicator the campaign computed
(glassdist.structure.indicators, plugins included) and the dynamic propensity.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Callable

import numpy as np

from . import formats
from ..errors import UsageError
from ..spec import load
from ..store import Store


def _indicators(store: Store, replicas: np.ndarray) -> dict[str, np.ndarray]:
    """Every structural indicator of the indicators stage (its attribute ``computed``), one column each."""
    if "indicators" not in store.root:
        return {}
    group = store.root["indicators"]
    return {name: group[name].get_orthogonal_selection((replicas,)) for name in group.attrs.get("computed", [])}


def _propensity(store: Store, replicas: np.ndarray) -> dict[str, np.ndarray]:
    """Dynamic propensity of the glass configurations at the campaign's analyze.deltas, one
    column per (temperature, delta); NaN where not computed or delta not reached."""
    from ..dynamics.crd import propensity_at_delta

    if "propensity/Delta" not in store.root:
        return {}
    group, glass = store.root["propensity"], 1  # propensity runs start from class-1 configurations (glasses)
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
    """Grad-CAM of the test-split configurations, NaN for other replicas: the consensus Gamma
    (member mean, 'gradcam'), its standard deviation over the members ('gradcam_std'), each
    member's Gamma ('gradcam_m0' ... 'gradcam_m{K-1}') and the input-only baseline Gamma^0
    ('gradcam_input'); stores made before ensembles have 'gradcam' alone."""
    if "gradcam/gamma" not in store.root:
        return {}
    group = store.root["gradcam"]
    test = group["replicas"][:]
    rows = np.flatnonzero(np.isin(replicas, test))
    index = (np.searchsorted(test, replicas[rows]),)

    def column(values: np.ndarray) -> np.ndarray:
        """(R'', 2, N) rows of the test replicas among ``replicas`` -> (R', 2, N), NaN elsewhere."""
        out = np.full((len(replicas), *values.shape[1:]), np.nan)
        out[rows] = values
        return out

    out = {"gradcam": column(group["gamma"].get_orthogonal_selection(index))}
    if "gamma_std" in group:
        out["gradcam_std"] = column(group["gamma_std"].get_orthogonal_selection(index))
    if "members" in group:
        members = group["members"].get_orthogonal_selection(index)  # (R'', K, 2, N)
        out.update({f"gradcam_m{k}": column(members[:, k]) for k in range(members.shape[1])})
    if "input" in group:
        out["gradcam_input"] = column(group["input"].get_orthogonal_selection(index))
    return out


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
    if args.cls and args.cls not in spec.class_names:
        raise UsageError(f"--class {args.cls!r} is not one of classes.names {list(spec.class_names)}")
    classes = [spec.class_names.index(args.cls)] if args.cls else [0, 1]
    fields = {}
    if args.format != "npz" or args.what == "fields":
        for source in FIELD_SOURCES:
            fields.update(source(store, replicas))
    if args.what == "configurations":
        if args.format == "csv":
            raise UsageError("configurations export as extxyz, gsd, lammps-dump or npz; use --what fields for CSV")
        if args.format == "npz":
            write_npz_configurations(out, spec, store, positions, replicas, classes)
        elif args.format == "extxyz":
            write_extxyz(out, spec, store, positions, replicas, classes, fields)
        else:
            write = formats.write_gsd if args.format == "gsd" else formats.write_lammps_dump
            write(out, particle_frames(spec, store, positions, replicas, classes, fields))
    else:
        if args.format not in ("csv", "npz"):
            raise UsageError(
                f"fields export as csv or npz; use --what configurations for {args.format} (it "
                "carries the fields as particle properties)"
            )
        (write_csv if args.format == "csv" else write_npz_fields)(
            out, spec, store, positions, replicas, classes, fields
        )
    print(f"wrote {out} ({len(replicas)} replicas x {len(classes)} classes)")
    return 0


def _frames(replicas, classes):
    for r_index, replica in enumerate(replicas):
        for cls in classes:
            yield r_index, int(replica), cls


def particle_frames(spec, store, positions, replicas, classes, fields):
    """(positions (N, dim), L, dim, species, type ids (N,), {field: (N,)}, step = 2 replica + class) of
    each exported configuration: the frames glassdist.commands.formats writes."""
    types = store.types()
    for r_index, replica, cls in _frames(replicas, classes):
        yield (
            positions[r_index, cls],
            spec.box_length,
            spec.dim,
            list(spec.system.species),
            types,
            {k: v[r_index, cls] for k, v in fields.items()},
            2 * replica + cls,
        )


def write_extxyz(out: Path, spec, store, positions, replicas, classes, fields) -> None:
    """Extended XYZ: Lattice, Properties=species:S:1:pos:R:3:Z:I:1 and one column per field
    (glassdist.commands.formats.property_name), per-frame replica, class, T (generated data), pe. Z is the
    type number (species index + 1): ASE reads species through it (it takes species names for
    chemical elements), OVITO reads the species names."""
    L, dim, N = spec.box_length, spec.dim, spec.system.n_particles
    types = store.types()
    names = np.asarray(spec.system.species)[types]
    pe = store.root["quench/pe"].get_orthogonal_selection((replicas,))
    T_of = (spec.quench.T_liquid, spec.quench.T_glass)
    Lz = L if dim == 3 else 1.0
    pbc = "T T T" if dim == 3 else "T T F"
    columns = "".join(f":{formats.property_name(k)}:R:1" for k in fields)
    with open(out, "w") as fh:
        for r_index, replica, cls in _frames(replicas, classes):
            xyz = np.zeros((N, 3))
            xyz[:, :dim] = positions[r_index, cls]
            values = [v[r_index, cls].tolist() for v in fields.values()]
            T = "" if spec.imported else f" T={T_of[cls]!r}"
            fh.write(f"{N}\n")
            fh.write(
                f'Lattice="{L!r} 0.0 0.0 0.0 {L!r} 0.0 0.0 0.0 {Lz!r}" '
                f'Properties=species:S:1:pos:R:3:Z:I:1{columns} pbc="{pbc}" replica={replica} '
                f"class={spec.class_names[cls]}{T} pe={float(pe[r_index, cls])!r}\n"
            )
            fh.writelines(
                f"{names[i]} {x!r} {y!r} {z!r} {types[i] + 1}" + "".join(f" {v[i]!r}" for v in values) + "\n"
                for i, (x, y, z) in enumerate(xyz.tolist())
            )


def write_npz_configurations(out: Path, spec, store, positions, replicas, classes) -> None:
    np.savez_compressed(
        out,
        positions=positions[:, classes],
        replicas=replicas,
        classes=np.asarray(spec.class_names)[classes],
        types=store.types(),
        species=np.asarray(spec.system.species),
        box_length=spec.box_length,
    )


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
                w.writerow(
                    [
                        replica,
                        spec.class_names[cls],
                        pid,
                        names[pid],
                        *(_fmt(c[pid]) for c in cols[: spec.dim]),
                        repr(spec.box_length),
                        *(_fmt(c[pid]) for c in cols[spec.dim :]),
                    ]
                )


def write_npz_fields(out: Path, spec, store, positions, replicas, classes, fields) -> None:
    np.savez_compressed(
        out,
        positions=positions[:, classes],
        replicas=replicas,
        classes=np.asarray(spec.class_names)[classes],
        types=store.types(),
        **{k: v[:, classes] for k, v in fields.items()},
    )


def _fmt(x) -> str:
    return "" if not np.isfinite(x) else repr(float(x))
