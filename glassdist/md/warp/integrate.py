"""Velocity Verlet with the Nose-Hoover chain of LAMMPS ``fix nvt`` for every system of a batch.

Semantics of LAMMPS FixNH (src/fix_nh.cpp) with ``fix nvt temp T0 T1 damp``: chain length 3,
one chain loop (tloop 1), no drag, chain masses recomputed each half step from the target
temperature (eta_mass[0] = dof k T_target / w^2, eta_mass[i>0] = k T_target / w^2, w = 1/damp),
dof = dim N - dim, target T ramped linearly from T0 to T1 over the run's [begin, end] steps.
One step: chain half step (scales v), v += dt/2 f/m, x += dt v, forces, v += dt/2 f/m, kinetic
temperature, chain half step (scales v). The chain updates run in float64 in every precision.

The step number lives on the device (a counter the step's first launch increments), so one step is
the same sequence of launches whatever its number: on a CUDA device :meth:`NoseHooverNVT.run`
captures GRAPH_STEPS steps once in a CUDA graph and replays it (one launch instead of ~10 per
step); the neighbour-list checks and rebuilds already run on the device, so the replay is the
loop, launch for launch.
"""

import functools

import numpy as np
import warp as wp

from .system import CHUNKS, SORT_EVERY, Batch

CHAIN = 3
GRAPH_STEPS = 50  # steps per captured CUDA graph


@functools.cache
def _kernels(dim: int, dtype):
    vec = wp.types.vector(dim, dtype)

    @wp.kernel(module="unique")
    def advance(counter: wp.array(dtype=wp.int32)):
        """The step number: one more."""
        counter[0] = counter[0] + 1

    @wp.kernel(module="unique")
    def chain_half_step(
        counter: wp.array(dtype=wp.int32),
        begin: int,
        end: int,
        t_start: wp.float64,
        t_stop: wp.float64,
        t_freq: wp.float64,
        dt: wp.float64,
        tdof: wp.float64,
        from_partial: int,
        partial: wp.array2d(dtype=wp.float64),
        t_current: wp.array(dtype=wp.float64),
        eta: wp.array2d(dtype=wp.float64),
        eta_dot: wp.array2d(dtype=wp.float64),
        eta_dotdot: wp.array2d(dtype=wp.float64),
        eta_mass: wp.array2d(dtype=wp.float64),
        factor: wp.array(dtype=wp.float64),
    ):
        """FixNH::nhc_temp_integrate of system b at step counter[0] (after compute_temp_target; with
        from_partial, t_current is first recomputed from the kinetic partial sums, as in final_integrate)."""
        b = wp.tid()
        delta = wp.float64(counter[0] - begin)
        if delta != wp.float64(0.0):
            delta = delta / wp.float64(end - begin)
        t_target = t_start + delta * (t_stop - t_start)
        ke_target = tdof * t_target
        dthalf = wp.float64(0.5) * dt
        dt4 = wp.float64(0.25) * dt
        dt8 = wp.float64(0.125) * dt
        if from_partial != 0:
            acc = wp.float64(0.0)
            for k in range(partial.shape[1]):
                acc += partial[b, k]
            t_current[b] = acc * (wp.float64(1.0) / tdof)
        kecurrent = tdof * t_current[b]
        eta_mass[b, 0] = tdof * t_target / (t_freq * t_freq)
        for ich in range(1, CHAIN):
            eta_mass[b, ich] = t_target / (t_freq * t_freq)
        if eta_mass[b, 0] > wp.float64(0.0):
            eta_dotdot[b, 0] = (kecurrent - ke_target) / eta_mass[b, 0]
        else:
            eta_dotdot[b, 0] = wp.float64(0.0)
        for m in range(1, CHAIN):
            ich = CHAIN - m
            expfac = wp.exp(-dt8 * eta_dot[b, ich + 1])
            eta_dot[b, ich] = eta_dot[b, ich] * expfac
            eta_dot[b, ich] = eta_dot[b, ich] + eta_dotdot[b, ich] * dt4
            eta_dot[b, ich] = eta_dot[b, ich] * expfac
        expfac = wp.exp(-dt8 * eta_dot[b, 1])
        eta_dot[b, 0] = eta_dot[b, 0] * expfac
        eta_dot[b, 0] = eta_dot[b, 0] + eta_dotdot[b, 0] * dt4
        eta_dot[b, 0] = eta_dot[b, 0] * expfac
        factor_eta = wp.exp(-dthalf * eta_dot[b, 0])
        factor[b] = factor_eta
        t_current[b] = t_current[b] * (factor_eta * factor_eta)
        kecurrent = tdof * t_current[b]
        if eta_mass[b, 0] > wp.float64(0.0):
            eta_dotdot[b, 0] = (kecurrent - ke_target) / eta_mass[b, 0]
        else:
            eta_dotdot[b, 0] = wp.float64(0.0)
        for ich in range(CHAIN):
            eta[b, ich] = eta[b, ich] + dthalf * eta_dot[b, ich]
        eta_dot[b, 0] = eta_dot[b, 0] * expfac
        eta_dot[b, 0] = eta_dot[b, 0] + eta_dotdot[b, 0] * dt4
        eta_dot[b, 0] = eta_dot[b, 0] * expfac
        for ich in range(1, CHAIN):
            expfac = wp.exp(-dt8 * eta_dot[b, ich + 1])
            eta_dot[b, ich] = eta_dot[b, ich] * expfac
            eta_dotdot[b, ich] = (
                eta_mass[b, ich - 1] * eta_dot[b, ich - 1] * eta_dot[b, ich - 1] - t_target
            ) / eta_mass[b, ich]
            eta_dot[b, ich] = eta_dot[b, ich] + eta_dotdot[b, ich] * dt4
            eta_dot[b, ich] = eta_dot[b, ich] * expfac

    @wp.kernel(module="unique")
    def chain_setup(
        step: int,
        begin: int,
        end: int,
        t_start: wp.float64,
        t_stop: wp.float64,
        t_freq: wp.float64,
        tdof: wp.float64,
        partial: wp.array2d(dtype=wp.float64),
        t_current: wp.array(dtype=wp.float64),
        eta_dot: wp.array2d(dtype=wp.float64),
        eta_dotdot: wp.array2d(dtype=wp.float64),
        eta_mass: wp.array2d(dtype=wp.float64),
    ):
        """FixNH::setup: t_current from the velocities, chain masses and forces from eta_dot."""
        b = wp.tid()
        delta = wp.float64(step - begin)
        if delta != wp.float64(0.0):
            delta = delta / wp.float64(end - begin)
        t_target = t_start + delta * (t_stop - t_start)
        acc = wp.float64(0.0)
        for k in range(partial.shape[1]):
            acc += partial[b, k]
        t_current[b] = acc * (wp.float64(1.0) / tdof)
        eta_mass[b, 0] = tdof * t_target / (t_freq * t_freq)
        for ich in range(1, CHAIN):
            eta_mass[b, ich] = t_target / (t_freq * t_freq)
        for ich in range(1, CHAIN):
            eta_dotdot[b, ich] = (
                eta_mass[b, ich - 1] * eta_dot[b, ich - 1] * eta_dot[b, ich - 1] - t_target
            ) / eta_mass[b, ich]

    @wp.kernel(module="unique")
    def kick_drift(
        x: wp.array(dtype=vec),
        v: wp.array(dtype=vec),
        f: wp.array(dtype=vec),
        types: wp.array(dtype=wp.int32),
        mass: wp.array(dtype=dtype),
        factor: wp.array(dtype=wp.float64),
        N: int,
        dtf: dtype,
        dtv: dtype,
    ):
        """nh_v_temp, nve_v, nve_x of the first half step."""
        p = wp.tid()
        vp = v[p] * dtype(factor[p // N])
        vp = vp + f[p] * (dtf / mass[types[p]])
        v[p] = vp
        x[p] = x[p] + vp * dtv

    @wp.kernel(module="unique")
    def kick_kinetic(
        v: wp.array(dtype=vec),
        f: wp.array(dtype=vec),
        types: wp.array(dtype=wp.int32),
        mass: wp.array(dtype=dtype),
        N: int,
        dtf: dtype,
        partial: wp.array2d(dtype=wp.float64),
    ):
        """nve_v of the second half step and the kinetic partial sums of the new velocities."""
        b, k = wp.tid()
        K = partial.shape[1]
        acc = wp.float64(0.0)
        i = k
        while i < N:
            p = b * N + i
            m = mass[types[p]]
            vp = v[p] + f[p] * (dtf / m)
            v[p] = vp
            acc += wp.float64(m * wp.dot(vp, vp))
            i += K
        partial[b, k] = acc

    @wp.kernel(module="unique")
    def scale(v: wp.array(dtype=vec), factor: wp.array(dtype=wp.float64), N: int):
        p = wp.tid()
        v[p] = v[p] * dtype(factor[p // N])

    return advance, chain_half_step, chain_setup, kick_drift, kick_kinetic, scale


class NoseHooverNVT:
    """``fix nvt`` on every system of ``batch``: chain state (float64) and the step loop.

    eta (B, 3), eta_dot (B, 4; the last stays 0), eta_dotdot (B, 3), eta_mass (B, 3),
    t_current (B,): LAMMPS FixNH's variables of the same names, per system.
    """

    STATE = ("eta", "eta_dot", "eta_dotdot", "eta_mass", "t_current")

    def __init__(self, batch: Batch, dt: float, damping: float):
        self.batch, self.dt, self.t_freq = batch, float(dt), 1.0 / float(damping)
        (self._advance, self._half, self._setup, self._kick_drift, self._kick_kinetic, self._scale) = _kernels(
            batch.dim, batch.dtype
        )
        dev, B = batch.device, batch.B
        self.eta = wp.zeros((B, CHAIN), dtype=wp.float64, device=dev)
        self.eta_dot = wp.zeros((B, CHAIN + 1), dtype=wp.float64, device=dev)
        self.eta_dotdot = wp.zeros((B, CHAIN), dtype=wp.float64, device=dev)
        self.eta_mass = wp.zeros((B, CHAIN), dtype=wp.float64, device=dev)
        self.t_current = wp.zeros(B, dtype=wp.float64, device=dev)
        self.factor = wp.zeros(B, dtype=wp.float64, device=dev)
        self.counter = wp.zeros(1, dtype=wp.int32, device=dev)  # the step number on the device
        self.step = 0  # its host copy
        self.schedule = (0.0, 0.0, 0, 1)
        self.use_graphs = wp.get_device(dev).is_cuda
        self._graph = None  # GRAPH_STEPS steps captured for the current schedule

    def start(self, t_start: float, t_stop: float, begin: int, end: int, step: int | None = None) -> None:
        """A fresh thermostat (``fix nvt temp t_start t_stop damp`` then ``run`` with start ``begin``
        and stop ``end``) at timestep ``step`` (default ``begin``; LAMMPS ``reset_timestep``):
        chain variables zero, FixNH::setup."""
        for name in ("eta", "eta_dot", "eta_dotdot"):
            getattr(self, name).zero_()
        self.schedule = (float(t_start), float(t_stop), int(begin), int(end))
        self._set_step(begin if step is None else step)
        b = self.batch
        wp.launch(b.k.kinetic_partials, (b.B, CHUNKS), [b.v, b.types, b.mass, b.N, b.partial], device=b.device)
        t0, t1, begin, end = self.schedule
        wp.launch(
            self._setup,
            b.B,
            [
                self.step,
                begin,
                end,
                t0,
                t1,
                self.t_freq,
                float(b.dof),
                b.partial,
                self.t_current,
                self.eta_dot,
                self.eta_dotdot,
                self.eta_mass,
            ],
            device=b.device,
        )

    def _set_step(self, step: int) -> None:
        self.step = int(step)
        self.counter.assign(np.array([self.step], dtype=np.int32))
        self._graph = None

    def _program(self) -> list:
        """The recorded launches of one step (the step number is read on the device)."""
        b = self.batch
        dtf, dtv = b.dtype(0.5 * self.dt), b.dtype(self.dt)
        t0, t1, begin, end = self.schedule
        total = b.B * b.N

        def chain(from_partial):
            return b.launch(
                self._half,
                b.B,
                [
                    self.counter,
                    begin,
                    end,
                    t0,
                    t1,
                    self.t_freq,
                    self.dt,
                    float(b.dof),
                    from_partial,
                    b.partial,
                    self.t_current,
                    self.eta,
                    self.eta_dot,
                    self.eta_dotdot,
                    self.eta_mass,
                    self.factor,
                ],
            ).launch

        return [
            b.launch(self._advance, 1, [self.counter]).launch,
            chain(0),
            b.launch(self._kick_drift, total, [b.x, b.v, b.f, b.types, b.mass, self.factor, b.N, dtf, dtv]).launch,
            *b.force_program(),
            b.launch(self._kick_kinetic, (b.B, CHUNKS), [b.v, b.f, b.types, b.mass, b.N, dtf, b.partial]).launch,
            chain(1),
            b.launch(self._scale, total, [b.v, self.factor, b.N]).launch,
        ]

    def run(self, n_steps: int, graphs: bool | None = None) -> None:
        """Advance every system by ``n_steps`` steps (forces must be current on entry); the batch's
        particles are sorted at every step number that is a multiple of SORT_EVERY. graphs: replay
        CUDA graphs of GRAPH_STEPS steps (default: on a CUDA device); the rest steps launch by launch."""
        calls = self._program()
        stop = self.step + n_steps
        while self.step < stop:
            if self.step % SORT_EVERY == 0:
                self.batch.sort()
            self._steps(calls, min(stop, (self.step // SORT_EVERY + 1) * SORT_EVERY) - self.step, graphs)

    def _steps(self, calls: list, n_steps: int, graphs: bool | None) -> None:
        loop = n_steps
        if self.use_graphs if graphs is None else graphs:
            if n_steps >= GRAPH_STEPS and self._graph is None:
                with wp.ScopedCapture(device=self.batch.device) as capture:
                    for _ in range(GRAPH_STEPS):
                        for call in calls:
                            call()
                self._graph = capture.graph
            if self._graph is not None:
                for _ in range(n_steps // GRAPH_STEPS):
                    wp.capture_launch(self._graph)
                loop = n_steps % GRAPH_STEPS
        for _ in range(loop):
            for call in calls:
                call()
        self.step += n_steps

    # ---- checkpoints -----------------------------------------------------------------------
    def state(self) -> dict[str, np.ndarray]:
        """The chain state per system: STATE arrays, each with the systems along axis 0."""
        return {name: getattr(self, name).numpy().copy() for name in self.STATE}

    def load(self, state: dict[str, np.ndarray], step: int, schedule) -> None:
        """Restore :meth:`state` arrays, the step and the (t_start, t_stop, begin, end) schedule."""
        for name in self.STATE:
            getattr(self, name).assign(np.asarray(state[name], dtype=np.float64))
        t0, t1, begin, end = schedule
        self.schedule = (float(t0), float(t1), int(begin), int(end))
        self._set_step(step)

    def chain_variables(self) -> np.ndarray:
        """(B, 6): eta[0..2] then eta_dot[0..2] per system (LAMMPS reports f_nvt[1..6] the same way)."""
        return np.concatenate([self.eta.numpy(), self.eta_dot.numpy()[:, :CHAIN]], axis=1)
