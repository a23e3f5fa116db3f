"""FIRE energy minimisation of every system of a batch, as LAMMPS ``min_style fire`` does it.

LAMMPS MinFire (FIRE 2.0, Guenole et al. 2020) with its defaults: semi-implicit Euler, dmax 0.1,
delaystep 20, dtgrow 1.1, dtshrink 0.5, alpha0 0.25, alphashrink 0.99, tmax 10, tmin 0.02, half
step back on uphill moves, no growth during the first delaystep iterations, stop after 2000
consecutive uphill moves; stopping rules of ``minimize etol ftol maxiter``: energy change below
etol (relative, checked delaystep iterations after an uphill move), |F|_2 < ftol (the force
vector's 2-norm), or maxiter iterations. Each system stops on its own; stopped systems are frozen.
"""

import functools
from types import SimpleNamespace
from typing import Callable

import numpy as np
import warp as wp

from .system import CHUNKS, Batch

DMAX, DELAYSTEP, DTGROW, DTSHRINK, ALPHA0, ALPHASHRINK, TMAX, TMIN = 0.1, 20, 1.1, 0.5, 0.25, 0.99, 10.0, 0.02
MAX_UPHILL = 2000
EPS_ENERGY = 1.0e-8
CHECK_EVERY = 50  # iterations between host checks of "all systems stopped"


@functools.cache
def _kernels(dim: int, dtype):
    vec = wp.types.vector(dim, dtype)
    f64 = wp.float64

    @wp.kernel(module="unique")
    def dots(
        v: wp.array(dtype=vec),
        f: wp.array(dtype=vec),
        N: int,
        done: wp.array(dtype=wp.int32),
        partial: wp.array3d(dtype=wp.float64),
    ):
        """partial[b, k] = (v.f, v.v, f.f) over system b's particles k, k+K, ..."""
        b, k = wp.tid()
        if done[b] != 0:
            return
        K = partial.shape[1]
        vf = f64(0.0)
        vv = f64(0.0)
        ff = f64(0.0)
        i = k
        while i < N:
            p = b * N + i
            vf += f64(wp.dot(v[p], f[p]))
            vv += f64(wp.dot(v[p], v[p]))
            ff += f64(wp.dot(f[p], f[p]))
            i += K
        partial[b, k, 0] = vf
        partial[b, k, 1] = vv
        partial[b, k, 2] = ff

    @wp.kernel(module="unique")
    def decide(
        partial: wp.array3d(dtype=wp.float64),
        dtmax: f64,
        dtmin: f64,
        it: wp.array(dtype=wp.int32),
        last_negative: wp.array(dtype=wp.int32),
        uphill: wp.array(dtype=wp.int32),
        dt: wp.array(dtype=wp.float64),
        alpha: wp.array(dtype=wp.float64),
        scale1: wp.array(dtype=wp.float64),
        scale2: wp.array(dtype=wp.float64),
        downhill: wp.array(dtype=wp.int32),
        flagv0: wp.array(dtype=wp.int32),
        done: wp.array(dtype=wp.int32),
        reason: wp.array(dtype=wp.int32),
        active: wp.array(dtype=wp.int32),
        running: wp.array(dtype=wp.int32),
    ):
        """MinFire::iterate up to the integration: mixing factors, dt and alpha updates; active:
        systems whose forces are re-evaluated after a velocity reset, running: not stopped."""
        b = wp.tid()
        if done[b] != 0:
            active[b] = 0
            running[b] = 0
            return
        it[b] = it[b] + 1
        vf = f64(0.0)
        vv = f64(0.0)
        ff = f64(0.0)
        for k in range(partial.shape[1]):
            vf += partial[b, k, 0]
            vv += partial[b, k, 1]
            ff += partial[b, k, 2]
        if vf > f64(0.0):
            downhill[b] = 1
            uphill[b] = 0
            scale1[b] = f64(1.0) - alpha[b]
            if ff <= f64(1e-20):
                scale2[b] = f64(0.0)
            else:
                scale2[b] = alpha[b] * wp.sqrt(vv / ff)
            if it[b] - last_negative[b] > DELAYSTEP:
                dt[b] = wp.min(dt[b] * f64(DTGROW), dtmax)
                alpha[b] = alpha[b] * f64(ALPHASHRINK)
        else:
            downhill[b] = 0
            last_negative[b] = it[b]
            if not (it[b] < DELAYSTEP):
                alpha[b] = f64(ALPHA0)
                if dt[b] * f64(DTSHRINK) >= dtmin:
                    dt[b] = dt[b] * f64(DTSHRINK)
            uphill[b] = uphill[b] + 1
            if uphill[b] > MAX_UPHILL:
                done[b] = 1
                reason[b] = 4
            flagv0[b] = 1
        active[b] = 0
        running[b] = 0
        if done[b] == 0:
            running[b] = 1
            if flagv0[b] != 0:
                active[b] = 1

    @wp.kernel(module="unique")
    def step_back(
        x: wp.array(dtype=vec),
        v: wp.array(dtype=vec),
        N: int,
        dt: wp.array(dtype=wp.float64),
        downhill: wp.array(dtype=wp.int32),
        done: wp.array(dtype=wp.int32),
    ):
        """Uphill: half step back and v = 0."""
        p = wp.tid()
        b = p // N
        if done[b] != 0 or downhill[b] != 0:
            return
        x[p] = x[p] - v[p] * (dtype(0.5) * dtype(dt[b]))
        v[p] = vec()

    @wp.kernel(module="unique")
    def restart_velocity(
        v: wp.array(dtype=vec),
        f: wp.array(dtype=vec),
        types: wp.array(dtype=wp.int32),
        mass: wp.array(dtype=dtype),
        N: int,
        dt: wp.array(dtype=wp.float64),
        active: wp.array(dtype=wp.int32),
    ):
        """After a reset: v = dt f / m (only to limit the step below)."""
        p = wp.tid()
        b = p // N
        if active[b] == 0:
            return
        v[p] = f[p] * (dtype(dt[b]) / mass[types[p]])

    @wp.kernel(module="unique")
    def vmax_partials(
        v: wp.array(dtype=vec), N: int, done: wp.array(dtype=wp.int32), partial: wp.array3d(dtype=wp.float64)
    ):
        b, k = wp.tid()
        if done[b] != 0:
            return
        K = partial.shape[1]
        m = f64(0.0)
        i = k
        while i < N:
            vp = v[b * N + i]
            for a in range(wp.static(dim)):
                m = wp.max(m, f64(wp.abs(vp[a])))
            i += K
        partial[b, k, 0] = m

    @wp.kernel(module="unique")
    def limit_step(
        partial: wp.array3d(dtype=wp.float64),
        dmax: f64,
        dt: wp.array(dtype=wp.float64),
        dtv: wp.array(dtype=wp.float64),
        done: wp.array(dtype=wp.int32),
    ):
        """dtv = dt, shortened so that no particle moves further than dmax in one component."""
        b = wp.tid()
        if done[b] != 0:
            return
        vmax = f64(0.0)
        for k in range(partial.shape[1]):
            vmax = wp.max(vmax, partial[b, k, 0])
        dtv[b] = dt[b]
        if dt[b] * vmax > dmax:
            dtv[b] = dmax / vmax

    @wp.kernel(module="unique")
    def move(
        x: wp.array(dtype=vec),
        v: wp.array(dtype=vec),
        f: wp.array(dtype=vec),
        types: wp.array(dtype=wp.int32),
        mass: wp.array(dtype=dtype),
        N: int,
        dtv: wp.array(dtype=wp.float64),
        scale1: wp.array(dtype=wp.float64),
        scale2: wp.array(dtype=wp.float64),
        downhill: wp.array(dtype=wp.int32),
        flagv0: wp.array(dtype=wp.int32),
        done: wp.array(dtype=wp.int32),
    ):
        """Semi-implicit Euler step with the FIRE mixing."""
        p = wp.tid()
        b = p // N
        if done[b] != 0:
            return
        vp = v[p]
        if flagv0[b] != 0:
            vp = vec()
        h = dtype(dtv[b])
        vp = vp + f[p] * (h / mass[types[p]])
        if downhill[b] != 0:
            vp = vp * dtype(scale1[b]) + f[p] * dtype(scale2[b])
        v[p] = vp
        x[p] = x[p] + vp * h

    @wp.kernel(module="unique")
    def check(
        partial: wp.array3d(dtype=wp.float64),
        energy: wp.array(dtype=wp.float64),
        etol: f64,
        ftol2: f64,
        max_iter: int,
        it: wp.array(dtype=wp.int32),
        last_negative: wp.array(dtype=wp.int32),
        e_previous: wp.array(dtype=wp.float64),
        e_current: wp.array(dtype=wp.float64),
        flagv0: wp.array(dtype=wp.int32),
        done: wp.array(dtype=wp.int32),
        reason: wp.array(dtype=wp.int32),
    ):
        """Stopping rules after the force evaluation (partial[..., 2] holds f.f, energy the new PE)."""
        b = wp.tid()
        if done[b] != 0:
            return
        flagv0[b] = 0
        e_previous[b] = e_current[b]
        e_current[b] = energy[b]
        if etol > f64(0.0) and it[b] - last_negative[b] > DELAYSTEP:
            ec = e_current[b]
            ep = e_previous[b]
            if wp.abs(ec - ep) < etol * f64(0.5) * (wp.abs(ec) + wp.abs(ep) + f64(EPS_ENERGY)):
                done[b] = 1
                reason[b] = 1
                return
        ff = f64(0.0)
        for k in range(partial.shape[1]):
            ff += partial[b, k, 2]
        if ff < ftol2:
            done[b] = 1
            reason[b] = 2
        elif it[b] >= max_iter:
            done[b] = 1
            reason[b] = 3

    return SimpleNamespace(
        dots=dots,
        decide=decide,
        step_back=step_back,
        restart_velocity=restart_velocity,
        vmax_partials=vmax_partials,
        limit_step=limit_step,
        move=move,
        check=check,
    )


REASONS = {1: "etol", 2: "ftol", 3: "max iterations", 4: "too many uphill steps"}


def fire_minimise(
    batch: Batch,
    dt: float,
    etol: float,
    ftol: float,
    max_iterations: int,
    should_stop: Callable[[], bool] | None = None,
) -> np.ndarray | None:
    """Minimise every system of ``batch`` in place from its current positions, MD time step ``dt``
    (FIRE's dt_max = 10 dt, dt_min = 0.02 dt); returns why each system stopped: (B,) codes of
    :data:`REASONS`, or None when ``should_stop()`` (polled every CHECK_EVERY iterations)
    turned true first."""
    k = _kernels(batch.dim, batch.dtype)
    B, N, dev, f64 = batch.B, batch.N, batch.device, wp.float64
    total = B * N

    def per_system(dtype, value=0):
        a = wp.zeros(B, dtype=dtype, device=dev)
        if value:
            a.fill_(value)
        return a

    it, last_negative, uphill, downhill, done, reason, active = (per_system(wp.int32) for _ in range(7))
    flagv0, running = per_system(wp.int32, 1), per_system(wp.int32, 1)
    dt_s, alpha = per_system(wp.float64, dt), per_system(wp.float64, ALPHA0)
    scale1, scale2, dtv, e_prev, e_cur = (per_system(wp.float64) for _ in range(5))
    partial = wp.zeros((B, CHUNKS, 3), dtype=wp.float64, device=dev)
    with_energy = etol > 0

    def forces(mask):
        calls = list(batch.force_program(with_energy, mask))
        if with_energy:
            calls += [
                batch.launch(batch.k.partial_sums, (B, CHUNKS), [batch.e_atom, N, batch.partial]).launch,
                batch.launch(batch.k.finish_sums, B, [batch.partial, batch.sums]).launch,
            ]
        return calls

    def run(calls):
        for call in calls:
            call()

    dots = batch.launch(k.dots, (B, CHUNKS), [batch.v, batch.f, N, done, partial]).launch
    batch.v.zero_()
    run(forces(running) + [dots])
    if with_energy:
        wp.copy(e_cur, batch.sums)
    iteration_calls = [
        batch.launch(
            k.decide,
            B,
            [
                partial,
                f64(TMAX * dt),
                f64(TMIN * dt),
                it,
                last_negative,
                uphill,
                dt_s,
                alpha,
                scale1,
                scale2,
                downhill,
                flagv0,
                done,
                reason,
                active,
                running,
            ],
        ).launch,
        batch.launch(k.step_back, total, [batch.x, batch.v, N, dt_s, downhill, done]).launch,
        *forces(active),
        batch.launch(k.restart_velocity, total, [batch.v, batch.f, batch.types, batch.mass, N, dt_s, active]).launch,
        batch.launch(k.vmax_partials, (B, CHUNKS), [batch.v, N, done, partial]).launch,
        batch.launch(k.limit_step, B, [partial, f64(DMAX), dt_s, dtv, done]).launch,
        batch.launch(
            k.move,
            total,
            [batch.x, batch.v, batch.f, batch.types, batch.mass, N, dtv, scale1, scale2, downhill, flagv0, done],
        ).launch,
        *forces(running),
        dots,
        batch.launch(
            k.check,
            B,
            [
                partial,
                batch.sums,
                f64(etol),
                f64(ftol * ftol),
                max_iterations,
                it,
                last_negative,
                e_prev,
                e_cur,
                flagv0,
                done,
                reason,
            ],
        ).launch,
    ]
    for iteration in range(1, max_iterations + 1):
        run(iteration_calls)
        if iteration % CHECK_EVERY == 0:
            if done.numpy().all():
                break
            if should_stop is not None and should_stop():
                return None
    batch.check()
    return reason.numpy()
