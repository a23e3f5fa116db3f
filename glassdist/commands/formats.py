"""Configuration files other tools write and read: readers for `glassdist import` (ASE for extended
XYZ, LAMMPS dump text and LAMMPS data; the `gsd` package for HOOMD GSD; NumPy for the GlassBench
npz layout) and the GSD and LAMMPS-dump writers of `glassdist export` (docs/import.md).

A reader yields :class:`Frame` records as the file has them (positions (n, 3), its cell and origin);
glassdist.commands.importer checks them against the campaign.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UsageError

#: --format names and the suffixes that select them when --format is not given.
SUFFIXES = {
    ".xyz": "extxyz",
    ".extxyz": "extxyz",
    ".dump": "lammps-dump",
    ".lammpstrj": "lammps-dump",
    ".data": "lammps-data",
    ".lmp": "lammps-data",
    ".gsd": "gsd",
    ".npz": "npz",
}
FORMATS = ("extxyz", "lammps-dump", "lammps-data", "gsd", "npz")


@dataclass
class Frame:
    """One configuration as a file holds it.

    positions (n, 3) float64 (z = 0 for 2D formats); labels (n,) str: the type as the file names it
    (LAMMPS and npz integer types as text, chemical symbols, GSD type names); numbers (n,) int or
    None: integer type numbers (LAMMPS types from 1, ASE atomic numbers Z); cell (3, 3) rows =
    box vectors; origin (3,); pbc (3,) bool; dim: the dimension the file declares (None if silent);
    where: 'FILE frame k' for messages.
    """

    positions: np.ndarray
    labels: np.ndarray
    numbers: np.ndarray | None
    cell: np.ndarray
    origin: np.ndarray
    pbc: np.ndarray
    dim: int | None
    where: str


def guess_format(path: Path, given: str | None) -> str:
    if given:
        return given
    fmt = SUFFIXES.get(Path(path).suffix.lower())
    if fmt is None:
        raise UsageError(
            f"{path}: cannot tell the format from the suffix {Path(path).suffix!r}; pass --format "
            f"(one of {', '.join(FORMATS)})"
        )
    return fmt


def parse_frames(text: str | None):
    """--frames: None = every frame; 'K' one frame (negative from the end); 'A:B[:S]' a slice;
    'I,J,K' a list. Returns an int, a slice or a list."""
    if not text:
        return slice(None)
    try:
        if "," in text:
            return [int(t) for t in text.split(",")]
        if ":" in text:
            return slice(*[int(t) if t.strip() else None for t in text.split(":")])
        return int(text)
    except (ValueError, TypeError):
        raise UsageError(f"--frames {text!r}: give a frame (0, -1), a slice (0:10, ::2) or a list (0,5,9)") from None


def _pick(n: int, frames, path: Path) -> list[int]:
    """Indices (ascending as given) of the selected frames among n."""
    index = np.arange(n)
    try:
        chosen = index[frames] if not isinstance(frames, list) else index[np.asarray(frames, dtype=int)]
    except IndexError:
        raise UsageError(f"{path}: --frames {frames} asks for frames beyond the {n} in the file") from None
    chosen = np.atleast_1d(chosen)
    if not chosen.size:
        raise UsageError(f"{path}: --frames selects no frame of the {n} in the file")
    return chosen.tolist()


def read(path: Path, fmt: str, frames) -> list[Frame]:
    """Frames of one file (format ``fmt``, selection from parse_frames)."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path} does not exist")
    reader = {"gsd": _read_gsd, "npz": _read_npz}.get(fmt, _read_ase)
    try:
        return reader(path, fmt, frames)
    except UsageError:
        raise
    except Exception as exc:  # a reader library's parse error: the file is not what --format says
        raise UsageError(
            f"{path}: not readable as {fmt} ({type(exc).__name__}: {exc}); check the file or --format"
        ) from None


_ASE_FORMATS = {"extxyz": "extxyz", "lammps-dump": "lammps-dump-text", "lammps-data": "lammps-data"}


def _read_ase(path: Path, fmt: str, frames) -> list[Frame]:
    import ase.io

    options = {"atom_style": "atomic"} if fmt == "lammps-data" else {}
    images = ase.io.read(path, index=":", format=_ASE_FORMATS[fmt], **options)
    out = []
    for k in _pick(len(images), frames, path):
        atoms = images[k]
        lammps = fmt != "extxyz"
        numbers = np.asarray(atoms.arrays.get("type", atoms.numbers), dtype=int)
        labels = numbers.astype(str) if lammps else np.asarray(atoms.get_chemical_symbols())
        out.append(
            Frame(
                np.asarray(atoms.get_positions(), dtype=float),
                labels,
                numbers,
                np.asarray(atoms.cell[:], dtype=float),
                np.asarray(atoms.get_celldisp(), float).ravel(),
                np.asarray(atoms.pbc, bool),
                None,
                f"{path} frame {k}",
            )
        )
    return out


def _read_gsd(path: Path, fmt: str, frames) -> list[Frame]:
    import gsd.hoomd

    out = []
    with gsd.hoomd.open(path, "r") as trajectory:
        for k in _pick(len(trajectory), frames, path):
            frame = trajectory[k]
            Lx, Ly, Lz, xy, xz, yz = (float(v) for v in frame.configuration.box)
            cell = np.array([[Lx, 0, 0], [xy * Ly, Ly, 0], [xz * Lz, yz * Lz, Lz]])
            types = np.asarray(frame.particles.types)[frame.particles.typeid]
            out.append(
                Frame(
                    np.asarray(frame.particles.position, dtype=np.float64),
                    types.astype(str),
                    None,
                    cell,
                    -0.5 * np.array([Lx, Ly, Lz]),
                    np.ones(3, bool),
                    int(frame.configuration.dimensions),
                    f"{path} frame {k}",
                )
            )
    return out


def _read_npz(path: Path, fmt: str, frames) -> list[Frame]:
    """GlassBench layout: ``positions`` (N, d) or (F, N, d), ``types`` (N,) or (F, N) (integers are
    species indices from 0, or names), ``box`` the side lengths: () or (d,), per frame (F,) or
    (F, d), or a (d, d) / (F, d, d) matrix of box vectors."""
    with np.load(path, allow_pickle=False) as data:
        missing = [k for k in ("box", "types", "positions") if k not in data]
        if missing:
            raise UsageError(f"{path}: npz lacks the array(s) {missing} (it needs box, types, positions)")
        positions, types, box = (np.asarray(data[k]) for k in ("positions", "types", "box"))
    if positions.ndim == 2:
        positions = positions[None]
    if positions.ndim != 3 or positions.shape[-1] not in (2, 3):
        raise UsageError(f"{path}: positions has shape {positions.shape}; give (N, dim) or (frames, N, dim)")
    F, n, d = positions.shape
    types = np.broadcast_to(types, (F, n)) if types.shape in ((n,), (F, n)) else None
    if types is None:
        raise UsageError(f"{path}: types must have shape (N,) or (frames, N) = ({n},) or ({F}, {n})")
    cells = np.zeros((F, 3, 3))
    cells[:, :d, :d] = _npz_cells(np.asarray(box, dtype=float), F, d, path)
    if d == 2:
        cells[:, 2, 2] = 1.0
    integer = np.issubdtype(types.dtype, np.integer)
    out = []
    for k in _pick(F, frames, path):
        xyz = np.zeros((n, 3))
        xyz[:, :d] = positions[k]
        labels = types[k].astype(str)
        out.append(
            Frame(
                xyz,
                labels,
                (types[k] + 1) if integer else None,
                cells[k],
                np.zeros(3),
                np.array([True] * d + [d == 3]),
                d,
                f"{path} frame {k}",
            )
        )
    return out


def _npz_cells(box: np.ndarray, F: int, d: int, path: Path) -> np.ndarray:
    """Box vectors (F, d, d) from the npz ``box``: side lengths (), (d,), (F,) or (F, d), or box-vector
    matrices (d, d) or (F, d, d) (a (d, d) array of d frames counts as side lengths)."""
    if box.shape == (F, d, d) or (box.shape == (d, d) and F != d):
        return np.broadcast_to(box, (F, d, d))
    if box.shape in ((), (d,), (F, d)):
        lengths = box
    elif box.shape == (F,):
        lengths = box[:, None]
    else:
        raise UsageError(
            f"{path}: box has shape {box.shape}; give side lengths (), (dim,), (frames,), "
            "(frames, dim) or box-vector matrices (dim, dim), (frames, dim, dim)"
        )
    return np.broadcast_to(lengths, (F, d))[..., None] * np.eye(d)


# ---- writers of `glassdist export` --------------------------------------------------------------


def property_name(name: str) -> str:
    """A field name as a per-particle property name OVITO, LAMMPS dumps and GSD keep ('.' separates
    vector components in OVITO, so 'propensity_T0.37_delta0.1' becomes 'propensity_T0p37_delta0p1')."""
    return name.replace(".", "p").replace("-", "m")


def write_gsd(out: Path, frames) -> None:
    """HOOMD GSD: one frame per configuration; ``frames`` yields (positions (N, dim) in [0, L),
    L, dim, species names (S,), type ids (N,), fields {name: (N,)}, step). Positions go to the
    HOOMD box centred at the origin (float32, the format's precision); each field is the
    per-particle log quantity ``log/particles/<name>`` (OVITO shows it as a particle property)."""
    import gsd.hoomd

    with gsd.hoomd.open(out, "w") as trajectory:
        for positions, L, dim, species, typeid, fields, step in frames:
            frame = gsd.hoomd.Frame()
            frame.configuration.step = step
            frame.configuration.dimensions = dim
            frame.configuration.box = [L, L, L if dim == 3 else 0.0, 0, 0, 0]
            xyz = np.zeros((len(typeid), 3), np.float32)
            xyz[:, :dim] = positions - 0.5 * L
            frame.particles.N = len(typeid)
            frame.particles.types = list(species)
            frame.particles.typeid = typeid.astype(np.uint32)
            frame.particles.position = xyz
            frame.log = {f"particles/{property_name(k)}": np.asarray(v, np.float64) for k, v in fields.items()}
            trajectory.append(frame)


def write_lammps_dump(out: Path, frames) -> None:
    """LAMMPS dump text (`dump custom` layout): ``ITEM: ATOMS id type x y z <fields>``, box [0, L)
    per axis (z: [-0.5, 0.5] in 2D), positions written exactly (repr); types are the LAMMPS atom
    types (species index + 1). ``frames`` as for write_gsd."""
    with open(out, "w") as fh:
        for positions, L, dim, _species, typeid, fields, step in frames:
            names = [property_name(k) for k in fields]
            n = len(typeid)
            bounds = [(0.0, L)] * dim + [(-0.5, 0.5)] * (3 - dim)
            fh.write(
                f"ITEM: TIMESTEP\n{step}\nITEM: NUMBER OF ATOMS\n{n}\nITEM: BOX BOUNDS pp pp "
                f"{'pp' if dim == 3 else 'ff'}\n"
            )
            fh.writelines(f"{lo!r} {hi!r}\n" for lo, hi in bounds)
            fh.write("ITEM: ATOMS id type x y z" + "".join(f" {k}" for k in names) + "\n")
            xyz = np.zeros((n, 3))
            xyz[:, :dim] = positions
            rows = np.column_stack([xyz, *(np.asarray(v, float) for v in fields.values())]).tolist()
            fh.writelines(
                f"{i + 1} {int(t) + 1} " + " ".join(map(repr, row)) + "\n"
                for i, (t, row) in enumerate(zip(typeid, rows))
            )
