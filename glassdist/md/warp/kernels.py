"""Warp kernels of the batched eq. (1) engine: neighbour lists, pair forces, per-system sums.

A batch holds B systems (replicas) of N particles each in flat arrays: particle p = b*N + i
of system b = p // N. Every kernel works per system: no arithmetic mixes two systems, so a
replica's trajectory does not depend on the other replicas of its block.

Neighbour lists: full (i->j and j->i) on a GPU, stored by columns for coalesced loads; half
(j > i only) on the CPU, where Warp runs the threads one after another, stored by rows
(neighbour k of particle p at nbr[p*sp + k*sk]). Per system, a cell list of cells at least
r_c,max + skin wide (one cell when the box is narrower than three) is binned from the
reference positions ``x_ref`` (positions at the last rebuild) and each particle's neighbours
within r_c,ij + skin are stored in ascending particle order. A system is rebuilt when one of its
particles moved more than skin/2 since its last rebuild (LAMMPS `neigh_modify check yes`).
Because the lists are sorted and the force sums skip pairs beyond r_c, forces do not depend on
when a list was rebuilt; and every sum runs in a fixed order (on the CPU the half-list reactions
are added in thread order), so results are bitwise reproducible on one device.

Memory follows space: every SORT_EVERY MD steps (and after new positions are set) each system's
particles are reordered by their cell (glassdist.md.warp.system.Batch.sort, as LAMMPS's
``atom_modify sort``), so that a particle's neighbours lie near it in memory; ``order`` maps a
storage slot back to the particle, and every array leaves the batch in particle order.

Per-system sums (kinetic and potential energy, virial, FIRE dot products) are deterministic
two-level reductions in float64: K chunk threads per system over strided particles, then one
thread per system over the K partial sums.
"""

import functools
from types import SimpleNamespace

import warp as wp

from .. import initial

SOFT_RANGE = wp.constant(initial.SOFT_RANGE)  # range of the start's soft repulsion / sigma_ij

# columns of the pair-parameter table (one row per species pair a*S + b)
LJ1, LJ2, LJ3, LJ4, LJCUT, DLJCUT, RC, RC2, RBUILD2, SIGMA = range(10)
N_PARAMS = 10


@functools.cache
def kernels(dim: int, dtype) -> SimpleNamespace:
    """The kernels for particles in ``dim`` dimensions with floats of ``dtype`` (wp.float32/64)."""
    vec = wp.types.vector(dim, dtype)

    @wp.func
    def minimum_image(d: vec, L: dtype):
        out = d
        inv_L = dtype(1.0) / L
        for a in range(wp.static(dim)):
            out[a] = d[a] - L * wp.round(d[a] * inv_L)
        return out

    @wp.func
    def cell_coord(x: dtype, cell: dtype, nc: int):
        c = int(wp.floor(x / cell))
        return wp.clamp(c, 0, nc - 1)

    @wp.kernel(module="unique")
    def check_moved(
        x: wp.array(dtype=vec), x_ref: wp.array(dtype=vec), N: int, half_skin2: dtype, flag: wp.array(dtype=wp.int32)
    ):
        p = wp.tid()
        d = x[p] - x_ref[p]
        if wp.dot(d, d) > half_skin2:
            wp.atomic_max(flag, p // N, 1)

    @wp.kernel(module="unique")
    def refresh(
        x: wp.array(dtype=vec),
        x_ref: wp.array(dtype=vec),
        image: wp.array2d(dtype=wp.int32),
        N: int,
        L: dtype,
        flag: wp.array(dtype=wp.int32),
    ):
        """Wrap flagged systems into [0, L) (image counts follow) and take x_ref = x."""
        p = wp.tid()
        if flag[p // N] == 0:
            return
        xp = x[p]
        for a in range(wp.static(dim)):
            s = wp.floor(xp[a] / L)
            xp[a] = xp[a] - s * L
            image[p, a] = image[p, a] + int(s)
        x[p] = xp
        x_ref[p] = xp

    @wp.kernel(module="unique")
    def clear_cells(cell_count: wp.array(dtype=wp.int32), n_cells: int, flag: wp.array(dtype=wp.int32)):
        c = wp.tid()
        if flag[c // n_cells] != 0:
            cell_count[c] = 0

    @wp.func
    def cell_of(x: vec, nc: int, cell: dtype):
        c = int(0)
        for a in range(wp.static(dim)):
            c = c * nc + cell_coord(x[a], cell, nc)
        return c

    @wp.kernel(module="unique")
    def bin_particles(
        x_ref: wp.array(dtype=vec),
        N: int,
        nc: int,
        cell: dtype,
        flag: wp.array(dtype=wp.int32),
        cell_count: wp.array(dtype=wp.int32),
        cell_atoms: wp.array2d(dtype=wp.int32),
        overflow: wp.array(dtype=wp.int32),
    ):
        p = wp.tid()
        b = p // N
        if flag[b] == 0:
            return
        n_cells = int(1)
        for _a in range(wp.static(dim)):
            n_cells = n_cells * nc
        c = b * n_cells + cell_of(x_ref[p], nc, cell)
        slot = wp.atomic_add(cell_count, c, 1)
        if slot < cell_atoms.shape[1]:
            cell_atoms[c, slot] = p
        else:
            wp.atomic_max(overflow, 0, 1)

    @wp.kernel(module="unique")
    def build(
        x_ref: wp.array(dtype=vec),
        types: wp.array(dtype=wp.int32),
        N: int,
        nc: int,
        cell: dtype,
        reach: int,
        L: dtype,
        prm: wp.array2d(dtype=dtype),
        S: int,
        flag: wp.array(dtype=wp.int32),
        cell_count: wp.array(dtype=wp.int32),
        cell_atoms: wp.array2d(dtype=wp.int32),
        nbr: wp.array(dtype=wp.int32),
        n_nbr: wp.array(dtype=wp.int32),
        maxnb: int,
        sp: int,
        sk: int,
        half: int,
        overflow: wp.array(dtype=wp.int32),
    ):
        """Neighbours of p within r_c + skin, ascending, from the (2 reach + 1)^dim cells around p's
        cell (with ``half``, only those with a higher index)."""
        p = wp.tid()
        b = p // N
        if flag[b] == 0:
            return
        xi = x_ref[p]
        ti = types[p]
        hx = cell_coord(xi[0], cell, nc)
        hy = cell_coord(xi[1], cell, nc)
        hz = int(0)
        if wp.static(dim == 3):
            hz = cell_coord(xi[2], cell, nc)
        n_cells = int(1)
        for _a in range(wp.static(dim)):
            n_cells = n_cells * nc
        count = int(0)
        base = p * sp
        zlo = int(0)
        zhi = int(0)
        if wp.static(dim == 3):
            zlo = -reach
            zhi = reach
        for ox in range(-reach, reach + 1):
            for oy in range(-reach, reach + 1):
                for oz in range(zlo, zhi + 1):
                    cx = (hx + ox + nc) % nc
                    cy = (hy + oy + nc) % nc
                    c = cx * nc + cy
                    if wp.static(dim == 3):
                        c = c * nc + (hz + oz + nc) % nc
                    c = b * n_cells + c
                    for s in range(cell_count[c]):
                        j = cell_atoms[c, s]
                        if j != p and (half == 0 or j > p):
                            d = minimum_image(xi - x_ref[j], L)
                            if wp.dot(d, d) < prm[ti * S + types[j], RBUILD2]:
                                if count < maxnb:
                                    k = count
                                    while k > 0 and nbr[base + (k - 1) * sk] > j:
                                        nbr[base + k * sk] = nbr[base + (k - 1) * sk]
                                        k -= 1
                                    nbr[base + k * sk] = j
                                    count += 1
                                else:
                                    wp.atomic_max(overflow, 0, 2)
        n_nbr[p] = count

    @wp.kernel(module="unique")
    def pair_forces(
        x: wp.array(dtype=vec),
        types: wp.array(dtype=wp.int32),
        nbr: wp.array(dtype=wp.int32),
        n_nbr: wp.array(dtype=wp.int32),
        sp: int,
        sk: int,
        N: int,
        L: dtype,
        prm: wp.array2d(dtype=dtype),
        S: int,
        active: wp.array(dtype=wp.int32),
        want_energy: int,
        half: int,
        f: wp.array(dtype=vec),
        e_atom: wp.array(dtype=dtype),
        w_atom: wp.array(dtype=dtype),
    ):
        """Eq. (1) (LAMMPS lj/smooth/linear, same operation order): force on p; with want_energy
        also p's share of the pair energies and pair virials r.f. With ``half`` lists (CPU only,
        where threads run one after another, so the order of the additions is fixed) each pair
        is computed once, the reaction added to f[j] (zeroed before), the energy booked on p."""
        p = wp.tid()
        if active[p // N] == 0:
            return
        xi = x[p]
        row = types[p] * S
        fi = vec()
        e = dtype(0.0)
        w = dtype(0.0)
        one = dtype(1.0)
        share = dtype(0.5)
        if half != 0:
            share = dtype(1.0)
        base = p * sp
        for k in range(n_nbr[p]):
            j = nbr[base + k * sk]
            d = minimum_image(xi - x[j], L)
            rsq = wp.dot(d, d)
            t = row + types[j]
            if rsq < prm[t, RC2]:
                r2inv = one / rsq
                r6inv = r2inv * r2inv * r2inv
                rinv = wp.sqrt(r2inv)
                forcelj = r6inv * (prm[t, LJ1] * r6inv - prm[t, LJ2])
                forcelj = rinv * forcelj - prm[t, DLJCUT]
                fpair = forcelj * rinv
                fi = fi + d * fpair
                if half != 0:
                    wp.atomic_sub(f, j, d * fpair)
                if want_energy != 0:
                    r = wp.sqrt(rsq)
                    evdwl = r6inv * (prm[t, LJ3] * r6inv - prm[t, LJ4])
                    evdwl = evdwl - prm[t, LJCUT] + (r - prm[t, RC]) * prm[t, DLJCUT]
                    e = e + share * evdwl
                    w = w + share * rsq * fpair
        if half != 0:
            wp.atomic_add(f, p, fi)
        else:
            f[p] = fi
        if want_energy != 0:
            e_atom[p] = e
            w_atom[p] = w

    @wp.kernel(module="unique")
    def zero_active(f: wp.array(dtype=vec), N: int, active: wp.array(dtype=wp.int32)):
        p = wp.tid()
        if active[p // N] != 0:
            f[p] = vec()

    @wp.kernel(module="unique")
    def soft_forces(
        x: wp.array(dtype=vec),
        types: wp.array(dtype=wp.int32),
        nbr: wp.array(dtype=wp.int32),
        n_nbr: wp.array(dtype=wp.int32),
        sp: int,
        sk: int,
        N: int,
        L: dtype,
        prm: wp.array2d(dtype=dtype),
        S: int,
        A: dtype,
        active: wp.array(dtype=wp.int32),
        half: int,
        f: wp.array(dtype=vec),
    ):
        """LAMMPS pair_style soft, E = A (1 + cos(pi r / r_c)) for r < r_c = SOFT_RANGE sigma_ij:
        a bounded repulsion that separates the overlaps of a random start."""
        p = wp.tid()
        if active[p // N] == 0:
            return
        xi = x[p]
        row = types[p] * S
        fi = vec()
        base = p * sp
        for k in range(n_nbr[p]):
            j = nbr[base + k * sk]
            d = minimum_image(xi - x[j], L)
            rsq = wp.dot(d, d)
            rc = dtype(SOFT_RANGE) * prm[row + types[j], SIGMA]
            if rsq < rc * rc:
                r = wp.sqrt(rsq)
                arg = dtype(wp.pi) * r / rc
                if r > dtype(0.0):
                    fpair = A * wp.sin(arg) * dtype(wp.pi) / rc / r
                    fi = fi + d * fpair
                    if half != 0:
                        wp.atomic_sub(f, j, d * fpair)
        if half != 0:
            wp.atomic_add(f, p, fi)
        else:
            f[p] = fi

    # ---- per-system sums -------------------------------------------------------------
    @wp.kernel(module="unique")
    def partial_sums(values: wp.array(dtype=dtype), N: int, partial: wp.array2d(dtype=wp.float64)):
        """partial[b, k] = sum of values of system b's particles k, k+K, ... (float64)."""
        b, k = wp.tid()
        K = partial.shape[1]
        acc = wp.float64(0.0)
        i = k
        while i < N:
            acc += wp.float64(values[b * N + i])
            i += K
        partial[b, k] = acc

    @wp.kernel(module="unique")
    def kinetic_partials(
        v: wp.array(dtype=vec),
        types: wp.array(dtype=wp.int32),
        mass: wp.array(dtype=dtype),
        N: int,
        partial: wp.array2d(dtype=wp.float64),
    ):
        """partial[b, k] = sum m v.v over system b's particles k, k+K, ... (float64)."""
        b, k = wp.tid()
        K = partial.shape[1]
        acc = wp.float64(0.0)
        i = k
        while i < N:
            p = b * N + i
            acc += wp.float64(mass[types[p]] * wp.dot(v[p], v[p]))
            i += K
        partial[b, k] = acc

    @wp.kernel(module="unique")
    def finish_sums(partial: wp.array2d(dtype=wp.float64), out: wp.array(dtype=wp.float64)):
        b = wp.tid()
        acc = wp.float64(0.0)
        for k in range(partial.shape[1]):
            acc += partial[b, k]
        out[b] = acc

    @wp.kernel(module="unique")
    def sort_keys(
        x: wp.array(dtype=vec),
        N: int,
        nc: int,
        cell: dtype,
        L: dtype,
        keys: wp.array(dtype=wp.int32),
        slots: wp.array(dtype=wp.int32),
    ):
        """Sort key of slot p: its system, then the cell of its position wrapped into the box."""
        p = wp.tid()
        xp = x[p]
        for a in range(wp.static(dim)):
            xp[a] = xp[a] - wp.floor(xp[a] / L) * L
        n_cells = int(1)
        for _a in range(wp.static(dim)):
            n_cells = n_cells * nc
        keys[p] = (p // N) * n_cells + cell_of(xp, nc, cell)
        slots[p] = p

    @wp.kernel(module="unique")
    def gather_vec(src: wp.array(dtype=vec), slots: wp.array(dtype=wp.int32), dst: wp.array(dtype=vec)):
        p = wp.tid()
        dst[p] = src[slots[p]]

    @wp.kernel(module="unique")
    def gather_int(src: wp.array(dtype=wp.int32), slots: wp.array(dtype=wp.int32), dst: wp.array(dtype=wp.int32)):
        p = wp.tid()
        dst[p] = src[slots[p]]

    @wp.kernel(module="unique")
    def gather_rows(src: wp.array2d(dtype=wp.int32), slots: wp.array(dtype=wp.int32), dst: wp.array2d(dtype=wp.int32)):
        p = wp.tid()
        for a in range(wp.static(dim)):
            dst[p, a] = src[slots[p], a]

    return SimpleNamespace(
        vec=vec,
        dtype=dtype,
        check_moved=check_moved,
        refresh=refresh,
        clear_cells=clear_cells,
        bin_particles=bin_particles,
        build=build,
        pair_forces=pair_forces,
        zero_active=zero_active,
        soft_forces=soft_forces,
        partial_sums=partial_sums,
        kinetic_partials=kinetic_partials,
        finish_sums=finish_sums,
        sort_keys=sort_keys,
        gather_vec=gather_vec,
        gather_int=gather_int,
        gather_rows=gather_rows,
    )
