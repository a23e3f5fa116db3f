"""A block of B replicas of one spec'd mixture on a Warp device: the state arrays, neighbour
lists and eq. (1) forces (kernels in :mod:`.kernels`)."""

from __future__ import annotations

import math

import numpy as np
import warp as wp

from ...errors import TaskError
from ...spec import Spec
from .kernels import DLJCUT, LJ1, LJ2, LJ3, LJ4, LJCUT, N_PARAMS, RBUILD2, RC, RC2, SIGMA, kernels

DTYPES = {"float64": wp.float64, "float32": wp.float32}
# cells per neighbour reach (r_c,max + skin): a list build scans (2 m + 1)^dim cells of side >= reach / m,
# i.e. ((2 m + 1) / m)^dim reach^dim of candidates: 2D m = 1 (9 reach^2), 3D m = 2 (15.6 reach^3, not 27)
CELLS_PER_REACH = {2: 1, 3: 2}
CHUNKS = 32  # chunk threads per system in the per-system sums
SORT_EVERY = 1000  # MD steps between two spatial sorts of the particles (LAMMPS's atom_modify sort default)


def pair_table(spec: Spec, skin: float) -> np.ndarray:
    """Per species pair a*S + b: the lj/smooth/linear coefficients as LAMMPS's init_one computes
    them, r_c, r_c^2, (r_c + skin)^2 and sigma; shape (S*S, N_PARAMS), float64."""
    sig, eps, rc = spec.sigma, spec.epsilon, spec.cutoff
    S = spec.n_species
    prm = np.zeros((S * S, N_PARAMS))
    for a in range(S):
        for b in range(S):
            row = prm[a * S + b]
            s, e, c = sig[a, b], eps[a, b], rc[a, b]
            row[LJ1], row[LJ2] = 48.0 * e * s**12.0, 24.0 * e * s**6.0
            row[LJ3], row[LJ4] = 4.0 * e * s**12.0, 4.0 * e * s**6.0
            c6inv, cinv = c**-6.0, 1.0 / c
            row[LJCUT] = c6inv * (row[LJ3] * c6inv - row[LJ4])
            row[DLJCUT] = cinv * c6inv * (row[LJ1] * c6inv - row[LJ2])
            row[RC], row[RC2], row[RBUILD2], row[SIGMA] = c, c * c, (c + skin) ** 2, s
    return prm


def resolve_device(name: str) -> str:
    """'auto' -> 'cuda' when Warp sees a GPU, else 'cpu'."""
    if name == "auto":
        return "cuda" if wp.get_cuda_device_count() > 0 else "cpu"
    return name


class Batch:
    """B systems of N particles: flat (B*N,) arrays on ``device``.

    x: positions (wrapped into [0, L) at each neighbour rebuild, free in between), v: velocities,
    f: forces, image: (B*N, dim) box crossings, so that x + image*L is the unwrapped position;
    x_ref: positions at the last neighbour rebuild. These arrays (and ``types``) are in storage
    order: slot b*N + s holds particle ``order[b*N + s]`` of system b, reordered by :meth:`sort`;
    the accessors (positions, velocities, ...) and setters speak particle order.
    """

    def __init__(self, spec: Spec, n_systems: int, device: str = "cpu", precision: str = "float64"):
        self.spec, self.B, self.N, self.dim = spec, n_systems, spec.system.n_particles, spec.dim
        self.device, self.precision = device, precision
        self.dtype = DTYPES[precision]
        self.np_dtype = np.float64 if precision == "float64" else np.float32
        self.k = kernels(self.dim, self.dtype)
        self.L = spec.box_length
        skin = spec.md.neighbor_skin
        self.skin = skin
        S, total = spec.n_species, n_systems * self.N
        self.S = S
        reach = float(spec.cutoff.max()) + skin
        m = CELLS_PER_REACH[self.dim]
        self.nc = int(self.L // (reach / m))
        self.stencil = m  # cells scanned on each side of a particle's own
        if self.nc < 2 * m + 1:  # the stencil would wrap onto itself: one cell holds the whole box
            self.nc, self.stencil = 1, 0
        self.cell = self.L / self.nc
        rho = spec.system.density
        ball = math.pi * reach**2 if self.dim == 2 else 4.0 / 3.0 * math.pi * reach**3
        cell_cap = self.N if self.nc == 1 else min(self.N, int(2 * rho * self.cell**self.dim) + 32)
        max_nbr = min(self.N - 1, int(2 * rho * ball) + 32)
        n_cells = self.nc**self.dim
        self.n_cells = n_cells

        def arr(shape, dtype):
            return wp.zeros(shape, dtype=dtype, device=device)

        vec = self.k.vec
        self.prm = wp.array(pair_table(spec, skin).astype(self.np_dtype), dtype=self.dtype, device=device)
        self.types = wp.array(np.tile(spec.types.astype(np.int32), n_systems), dtype=wp.int32, device=device)
        self.order = wp.array(np.tile(np.arange(self.N, dtype=np.int32), n_systems), dtype=wp.int32, device=device)
        self.sortable = self.nc > 1  # one cell: nothing to sort
        self.mass = wp.array(np.asarray(spec.system.masses, dtype=self.np_dtype), dtype=self.dtype, device=device)
        self.x, self.v, self.f, self.x_ref = (arr(total, vec) for _ in range(4))
        self.image = arr((total, self.dim), wp.int32)
        self.e_atom, self.w_atom = arr(total, self.dtype), arr(total, self.dtype)
        self.max_nbr = max_nbr
        self.nbr, self.n_nbr = arr(max_nbr * total, wp.int32), arr(total, wp.int32)
        # CPU: rows, half lists (see kernels.pair_forces); GPU: columns (coalesced), full lists
        self.half = int(device == "cpu")
        self.nbr_strides = (max_nbr, 1) if self.half else (1, total)
        self.cell_count, self.cell_atoms = (
            arr(n_systems * n_cells, wp.int32),
            arr((n_systems * n_cells, cell_cap), wp.int32),
        )
        self.flag, self.overflow = arr(n_systems, wp.int32), arr(1, wp.int32)
        self.all_active = wp.array(np.ones(n_systems, dtype=np.int32), dtype=wp.int32, device=device)
        self.partial, self.sums = arr((n_systems, CHUNKS), wp.float64), arr(n_systems, wp.float64)
        self.half_skin2 = self.dtype((0.5 * skin) ** 2)
        self._programs: dict = {}
        self.soft = 0.0  # > 0: forces of pair_style soft with this prefactor A instead of eq. (1)

    # ---- state in and out ------------------------------------------------------------
    def _order(self) -> np.ndarray:
        return self.order.numpy().reshape(self.B, self.N, 1)

    def _to_slots(self, a: np.ndarray, dtype) -> np.ndarray:
        """(B, N, dim) in particle order -> (B*N, dim) in storage order."""
        a = np.broadcast_to(np.asarray(a), (self.B, self.N, self.dim))
        return np.ascontiguousarray(np.take_along_axis(a, self._order(), axis=1).reshape(-1, self.dim), dtype=dtype)

    def set_positions(self, positions: np.ndarray, images: np.ndarray | None = None) -> None:
        """positions (B, N, dim) (any periodic image); images (B, N, dim) of these positions (default
        0); then neighbour lists and forces are rebuilt from scratch (and the particles sorted)."""
        self.x.assign(self._to_slots(positions, self.np_dtype))
        self.image.assign(self._to_slots(0 if images is None else images, np.int32))
        self.compute_forces(rebuild="wrap")
        self.sort()

    def set_velocities(self, velocities: np.ndarray) -> None:
        self.v.assign(self._to_slots(velocities, self.np_dtype))

    STATE = ("x", "v", "image", "x_ref", "order")

    def state(self) -> dict[str, np.ndarray]:
        """Everything a resumed run needs, in storage order: x, v, image, x_ref, each (B, N, dim),
        and order (B, N, 1)."""
        return {name: self._shaped(getattr(self, name)).copy() for name in self.STATE}

    def load(self, state: dict[str, np.ndarray]) -> None:
        """Restore :meth:`state` (any subset of systems stacked to B); the neighbour lists are
        rebuilt from x_ref without wrapping and the forces recomputed: bitwise what they were."""
        for name in self.STATE:
            a = getattr(self, name)
            now = a.numpy()
            a.assign(np.ascontiguousarray(np.asarray(state[name]).reshape(now.shape), dtype=now.dtype))
        self.types.assign(np.ascontiguousarray(self.spec.types.astype(np.int32)[self.order.numpy()]))
        self.compute_forces(rebuild="keep")

    def _shaped(self, a: wp.array) -> np.ndarray:
        return a.numpy().reshape(self.B, self.N, -1)

    def _particles(self, a: wp.array) -> np.ndarray:
        """(B, N, k) in particle order of a per-slot array."""
        out = np.empty_like(self._shaped(a))
        np.put_along_axis(out, self._order(), self._shaped(a), axis=1)
        return out

    def positions(self) -> np.ndarray:
        """Positions wrapped into [0, L), (B, N, dim) float64."""
        return np.mod(self._particles(self.x).astype(np.float64), self.L)

    def unwrapped(self) -> np.ndarray:
        """x + image*L, (B, N, dim) float64."""
        return self._particles(self.x).astype(np.float64) + self._particles(self.image) * self.L

    def velocities(self) -> np.ndarray:
        return self._particles(self.v).astype(np.float64)

    def forces(self) -> np.ndarray:
        return self._particles(self.f).astype(np.float64)

    def sort(self) -> None:
        """Reorder each system's slots by the cell of their positions (stable: ties keep their
        order), so that neighbours lie near in memory; the neighbour lists are rebuilt from the
        reordered x_ref and the forces recomputed. Deterministic: a function of the state only."""
        if not self.sortable:
            return
        k, total, dev = self.k, self.B * self.N, self.device
        keys, slots = wp.empty(2 * total, dtype=wp.int32, device=dev), wp.empty(2 * total, dtype=wp.int32, device=dev)
        wp.launch(
            k.sort_keys,
            total,
            [self.x, self.N, self.nc, self.dtype(self.cell), self.dtype(self.L), keys, slots],
            device=dev,
        )
        wp.utils.radix_sort_pairs(keys, slots, total)
        for a, gather in (
            (self.x, k.gather_vec),
            (self.v, k.gather_vec),
            (self.f, k.gather_vec),
            (self.x_ref, k.gather_vec),
            (self.types, k.gather_int),
            (self.order, k.gather_int),
            (self.image, k.gather_rows),
        ):
            src = wp.clone(a)
            wp.launch(gather, total, [src, slots, a], device=dev)
        self.compute_forces(rebuild="keep")

    # ---- neighbours and forces ---------------------------------------------------------
    def launch(self, kernel, dim, inputs) -> wp.Launch:
        """A recorded launch on this batch's device (replay with ``.launch()``: no argument packing)."""
        return wp.launch(kernel, dim, inputs, device=self.device, record_cmd=True)

    def force_program(self, energy: bool = False, active: wp.array | None = None, rebuild: str = "check") -> list:
        """The calls that update the neighbour lists and evaluate the forces (see compute_forces);
        cached per arguments, so a step loop replays them."""
        key = (energy, None if active is None else active.ptr, rebuild, self.soft)
        if key in self._programs:
            return self._programs[key]
        k, total, cell = self.k, self.B * self.N, self.dtype(self.cell)
        if rebuild == "check":
            calls = [
                self.flag.zero_,
                self.launch(k.check_moved, total, [self.x, self.x_ref, self.N, self.half_skin2, self.flag]).launch,
            ]
        else:
            calls = [lambda: self.flag.fill_(1)]
        if rebuild != "keep":
            calls.append(
                self.launch(
                    k.refresh, total, [self.x, self.x_ref, self.image, self.N, self.dtype(self.L), self.flag]
                ).launch
            )
        calls += [
            self.launch(k.clear_cells, self.B * self.n_cells, [self.cell_count, self.n_cells, self.flag]).launch,
            self.launch(
                k.bin_particles,
                total,
                [self.x_ref, self.N, self.nc, cell, self.flag, self.cell_count, self.cell_atoms, self.overflow],
            ).launch,
            self.launch(
                k.build,
                total,
                [
                    self.x_ref,
                    self.types,
                    self.N,
                    self.nc,
                    cell,
                    self.stencil,
                    self.dtype(self.L),
                    self.prm,
                    self.S,
                    self.flag,
                    self.cell_count,
                    self.cell_atoms,
                    self.nbr,
                    self.n_nbr,
                    self.max_nbr,
                    *self.nbr_strides,
                    self.half,
                    self.overflow,
                ],
            ).launch,
        ]
        active = self.all_active if active is None else active
        if self.half:
            calls.append(self.launch(k.zero_active, total, [self.f, self.N, active]).launch)
        if self.soft:
            calls.append(
                self.launch(
                    k.soft_forces,
                    total,
                    [
                        self.x,
                        self.types,
                        self.nbr,
                        self.n_nbr,
                        *self.nbr_strides,
                        self.N,
                        self.dtype(self.L),
                        self.prm,
                        self.S,
                        self.dtype(self.soft),
                        active,
                        self.half,
                        self.f,
                    ],
                ).launch
            )
        else:
            calls.append(
                self.launch(
                    k.pair_forces,
                    total,
                    [
                        self.x,
                        self.types,
                        self.nbr,
                        self.n_nbr,
                        *self.nbr_strides,
                        self.N,
                        self.dtype(self.L),
                        self.prm,
                        self.S,
                        active,
                        int(energy),
                        self.half,
                        self.f,
                        self.e_atom,
                        self.w_atom,
                    ],
                ).launch
            )
        self._programs[key] = calls
        return calls

    def compute_forces(self, energy: bool = False, active: wp.array | None = None, rebuild: str = "check") -> None:
        """Forces (with ``energy`` also per-particle energies and virials) of the ``active`` systems
        (default all), after rebuilding the neighbour lists that need it. rebuild: 'check' (systems
        with a particle moved > skin/2: wrap, rebuild), 'wrap' (all systems: wrap, rebuild) or 'keep'
        (all systems, from the stored x_ref without wrapping: the lists of a resumed run)."""
        for call in self.force_program(energy, active, rebuild):
            call()

    def check(self) -> None:
        """Raise TaskError when a cell or neighbour list overflowed (a blown-up system)."""
        if self.overflow.numpy()[0]:
            raise TaskError("Warp engine: a cell or neighbour list overflowed (particles too close: the run blew up)")

    # ---- per-system sums (float64, deterministic) --------------------------------------
    def _sum(self, values: wp.array) -> np.ndarray:
        wp.launch(self.k.partial_sums, (self.B, CHUNKS), [values, self.N, self.partial], device=self.device)
        wp.launch(self.k.finish_sums, self.B, [self.partial, self.sums], device=self.device)
        return self.sums.numpy().copy()

    def twice_kinetic(self) -> np.ndarray:
        """sum m v.v per system, (B,)."""
        wp.launch(
            self.k.kinetic_partials,
            (self.B, CHUNKS),
            [self.v, self.types, self.mass, self.N, self.partial],
            device=self.device,
        )
        wp.launch(self.k.finish_sums, self.B, [self.partial, self.sums], device=self.device)
        return self.sums.numpy().copy()

    @property
    def dof(self) -> int:
        """dim N - dim: LAMMPS compute temp with the momentum removed."""
        return self.dim * self.N - self.dim

    def temperature(self) -> np.ndarray:
        """Kinetic temperature per system, (B,)."""
        return self.twice_kinetic() / self.dof

    def energy_virial(self) -> tuple[np.ndarray, np.ndarray]:
        """(potential energy per particle, virial sum r.f) per system, both (B,); recomputes the
        forces (bitwise the same) with energies."""
        self.compute_forces(energy=True)
        return self._sum(self.e_atom) / self.N, self._sum(self.w_atom)

    def pressure(self) -> np.ndarray:
        """(sum m v.v + virial) / (dim V) per system, (B,) (LAMMPS compute pressure)."""
        _, w = self.energy_virial()
        return (self.twice_kinetic() + w) / (self.dim * self.L**self.dim)
