"""`glassdist import DIR FILE... --class NAME`: configurations from other tools into the arrays the
quench stage writes (docs/import.md), so every later stage reads them like quenched ones.

Every frame is read and checked against the campaign before anything is written: orthorhombic
periodic box of the campaign's side L = (N / rho)^(1/dim) and dimension, N particles, every type
mapped to a species, the campaign's composition, finite positions, no configuration twice. Then
frame k of class c fills the k-th replica whose class c is still empty (replica order = the split
order of quench.split: training replicas first); a replica's quench task is marked done once both
its classes are in. Particles are stored sorted by species (stable: the file's order within a
species), positions wrapped into [0, L).

Store: ``quench/positions`` (R, 2, N, dim) as the quench stage; ``quench/pe``, ``quench/temperature``
and the thermo arrays NaN (unknown); ``quench/imported`` (R, 2) bool; attribute ``imports`` of
group ``quench``: one record per file (path, format, frames, class, replicas, SHA-256 of the file)
and ``hashes`` {SHA-256 of a configuration: [replica, class]} for the duplicate check.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import numpy as np

from . import formats
from ..errors import UsageError
from ..spec import Spec, load
from ..store import Store

BOX_RTOL = 1e-6  # relative tolerance of a file's box side against the campaign's L (text precision)


def parse_types(text: str | None) -> dict[str, str]:
    """--types '1=A,2=B' or 'Cu=A,Zr=B' -> {file label: campaign species}."""
    if not text:
        return {}
    pairs = [item.split("=", 1) for item in text.split(",")]
    if any(len(p) != 2 or not p[0].strip() or not p[1].strip() for p in pairs):
        raise UsageError(f"--types {text!r}: give FILE_TYPE=SPECIES pairs, e.g. --types 1=A,2=B")
    return {k.strip(): v.strip() for k, v in pairs}


def species_of(frame: formats.Frame, spec: Spec, mapping: dict[str, str]) -> np.ndarray:
    """Species index (n,) of each particle: by --types; else by name when every label is a species
    name; else type number k -> species k - 1 (LAMMPS atom types; ASE's Z; npz integers + 1)."""
    species = list(spec.system.species)
    bad = sorted(set(mapping.values()) - set(species))
    if bad:
        raise UsageError(f"--types maps to {bad}, not species of the campaign {species}")
    labels = frame.labels
    if mapping:  # a key names a file label or a type number
        numbers = frame.numbers if frame.numbers is not None else [None] * len(labels)
        names = np.array([mapping.get(x, mapping.get(str(k), "")) for x, k in zip(labels, numbers)])
    elif set(labels) <= set(species):
        names = labels
    elif frame.numbers is not None:
        numbers = np.asarray(frame.numbers)
        names = np.where(
            (numbers >= 1) & (numbers <= len(species)),
            np.asarray(species)[np.clip(numbers - 1, 0, len(species) - 1)],
            "",
        )
    else:
        names = np.full(len(labels), "")
    unknown = sorted(set(labels[names == ""].tolist()))
    if unknown:
        raise UsageError(
            f"{frame.where}: types {unknown[:10]} map to no species of the campaign {species}; "
            f"name them with --types, e.g. --types {unknown[0]}={species[0]}"
        )
    index = {name: i for i, name in enumerate(species)}
    return np.array([index[x] for x in names], dtype=np.int64)


def check(frame: formats.Frame, spec: Spec, mapping: dict[str, str]) -> np.ndarray:
    """The configuration (N, dim) the campaign stores for a frame, sorted by species and wrapped into
    [0, L); a UsageError naming the frame, what is wrong and the fix otherwise."""
    s, dim, L, where = spec.system, spec.dim, spec.box_length, frame.where
    if len(frame.positions) != s.n_particles:
        raise UsageError(
            f"{where}: {len(frame.positions)} particles, the campaign has system.n_particles = "
            f"{s.n_particles}; import configurations of the campaign's system or change [system]"
        )
    if not np.isfinite(frame.positions).all():
        bad = np.flatnonzero(~np.isfinite(frame.positions).all(axis=1))
        raise UsageError(
            f"{where}: {bad.size} particle(s) have non-finite positions (first: particle {bad[0]}); "
            "fix or drop that frame (--frames)"
        )
    cell = frame.cell
    if np.abs(cell - np.diag(np.diag(cell))).max() > 1e-12 * max(np.abs(cell).max(), 1.0):
        raise UsageError(
            f"{where}: triclinic box (tilted box vectors {cell.tolist()}); glassdist handles "
            "orthorhombic periodic boxes only (its images, Voronoi cells and pair searches assume "
            "one): rewrite the configuration in an orthorhombic box"
        )
    if frame.dim is not None and frame.dim != dim:
        raise UsageError(f"{where}: a {frame.dim}D configuration, the campaign has system.dim = {dim}")
    if dim == 2 and np.ptp(frame.positions[:, 2]) > 0:
        raise UsageError(f"{where}: particles spread along z (a 3D configuration), the campaign has system.dim = 2")
    if not np.asarray(frame.pbc[:dim]).all():
        raise UsageError(
            f"{where}: box not periodic along {'xyz'[:dim]} (pbc {frame.pbc.tolist()}); glassdist "
            "analyses periodic systems: write the file with periodic boundaries"
        )
    sides = np.diag(cell)[:dim]
    if not np.allclose(sides, L, rtol=BOX_RTOL, atol=0):
        raise UsageError(
            f"{where}: box sides {sides.tolist()}, the campaign's box is L = (system.n_particles / "
            f"system.density)^(1/dim) = {L!r}; set system.density = N / V of the file "
            f"({s.n_particles / np.prod(sides):.8g})"
        )
    species = species_of(frame, spec, mapping)
    counts = np.bincount(species, minlength=spec.n_species)
    if counts.tolist() != list(s.counts):
        raise UsageError(
            f"{where}: composition {dict(zip(s.species, counts.tolist()))}, the campaign has "
            f"system.counts = {list(s.counts)}; check --types or the campaign's [system]"
        )
    order = np.argsort(species, kind="stable")
    return np.mod(frame.positions[order, :dim] - frame.origin[:dim], L)


def configuration_hash(positions: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(positions, dtype=np.float64).tobytes()).hexdigest()


def import_files(
    campaign_dir, files, cls: str, frames_text: str | None = None, fmt: str | None = None, types_text: str | None = None
) -> list[int]:
    """Read, check, then store the frames of ``files`` as class ``cls``; returns the replicas filled."""
    campaign_dir = Path(campaign_dir)
    spec = load(campaign_dir)
    if not spec.imported:
        raise UsageError(
            f"{campaign_dir}: quench.source is 'md' (the quench stage makes its configurations); "
            "set quench.source = 'import' in campaign.toml to import them (docs/import.md)"
        )
    if cls not in spec.class_names:
        raise UsageError(f"--class {cls!r} is not one of classes.names {list(spec.class_names)}")
    c = spec.class_names.index(cls)
    mapping, selection = parse_types(types_text), formats.parse_frames(frames_text)
    store = Store(campaign_dir, mode="r") if (campaign_dir / "store.zarr").exists() else None
    filled, seen = np.zeros((spec.quench.replicas, 2), bool), {}
    if store and "quench/imported" in store.root:
        filled, seen = store.root["quench/imported"][:], dict(store.root["quench"].attrs.get("hashes", {}))
    seen = {h: f"replica {r} ({spec.class_names[k]})" for h, (r, k) in seen.items()}
    configs, records = [], []
    for path in map(Path, files):
        f = formats.guess_format(path, fmt)
        if f not in formats.FORMATS:
            raise UsageError(f"--format {f!r}: use one of {', '.join(formats.FORMATS)}")
        frames = formats.read(path, f, selection)
        for frame in frames:
            x = check(frame, spec, mapping)
            h = configuration_hash(x)
            if h in seen:
                raise UsageError(f"{frame.where}: the same configuration as {seen[h]}; import each configuration once")
            seen[h] = frame.where
            configs.append((x, h))
        records.append(
            {
                "path": str(path.resolve()),
                "format": f,
                "frames": frames_text or ":",
                "class": cls,
                "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                "count": len(frames),
            }
        )
    free = np.flatnonzero(~filled[:, c])
    if len(configs) > len(free):
        raise UsageError(
            f"{len(configs)} '{cls}' configurations, but only {len(free)} of the campaign's "
            f"quench.replicas = {spec.quench.replicas} replicas lack one; raise quench.replicas (and "
            "quench.split) or import fewer (--frames)"
        )
    return _store(campaign_dir, spec, c, configs, free[: len(configs)], records)


def _store(campaign_dir: Path, spec: Spec, c: int, configs, replicas: np.ndarray, records) -> list[int]:
    """Write the checked configurations into the replicas, then the done-marks of complete replicas."""
    from ..stages.quench import NAME, create_arrays

    start = time.time()
    store = create_arrays(campaign_dir, spec)
    group = store.root[NAME]
    imported = group["imported"]
    hashes, ledger = dict(group.attrs.get("hashes", {})), store.ledger(NAME)
    nan_row = np.full(group["thermo_T"].shape[1], np.nan)
    for (x, h), r in zip(configs, replicas.tolist()):
        group["positions"][r, c] = x
        for key in ("pe", "temperature"):
            group[key][r, c] = np.nan
        for key in ("thermo_T", "thermo_target", "thermo_pe"):
            group[key][r] = nan_row
        imported[r, c] = True
        hashes[h] = [r, c]
    for r in replicas.tolist():
        if imported[r].all():
            ledger.mark_done(r, 1, time.time() - start)
    first = 0
    for record in records:
        record["replicas"] = replicas[first : first + record["count"]].tolist()
        first += record["count"]
    group.attrs.update(
        {"hashes": hashes, "imports": list(group.attrs.get("imports", [])) + records, "engine": {"name": "import"}}
    )
    return replicas.tolist()


def run(args) -> int:
    replicas = import_files(args.dir, args.files, args.cls, args.frames, args.format, args.types)
    spec = load(args.dir)
    done = int(Store(args.dir, mode="r").ledger("quench").done_mask().sum())
    print(
        f"imported {len(replicas)} '{args.cls}' configuration(s) into replicas {_ranges(replicas)}; "
        f"{done} of {spec.quench.replicas} replicas have both classes"
        + ("" if done < spec.quench.replicas else f"; next: glassdist run {args.dir}")
    )
    return 0


def _ranges(ids: list[int]) -> str:
    """[0, 1, 2, 5] -> '0-2,5'."""
    out, start = [], None
    for i, r in enumerate(ids):
        if start is None:
            start = r
        if i + 1 == len(ids) or ids[i + 1] != r + 1:
            out.append(f"{start}-{r}" if r > start else f"{r}")
            start = None
    return ",".join(out)
