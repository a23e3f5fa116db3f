"""One isoconfigurational run (paper Sec. III E): a stored configuration, fresh
Maxwell-Boltzmann velocities at T, NVT Nose-Hoover at T, unwrapped positions saved at
log-spaced steps.

Velocities are drawn in numpy (:func:`draw_velocities`) and written into the LAMMPS data
file, so the run's ``run.in`` + ``start.data`` in its work directory replay it exactly with
the ``lmp`` binary. Each component is N(0, T/m); the mass-weighted mean is removed (zero
total momentum) and there is no rescale to the exact target: each run's kinetic temperature
fluctuates as in the canonical ensemble (relative std sqrt(2 / (dim (N - 1)))), and its mean
over runs is T exactly.

The run proceeds in segments between the output steps and multiples of
``propensity.checkpoint_every``; at every multiple it writes a checkpoint
(:mod:`glassdist.md.checkpoint`: a LAMMPS restart file and the outputs so far). A rerun with the
same work directory resumes from the last checkpoint. With ``propensity.until_delta`` a run stops
at the first output where its own delta^s reaches ``propensity.until_delta``
(:class:`DeltaStop`; ``propensity.steps`` is the cap) and its later outputs stay NaN; the test
reads only the outputs, which the checkpoint holds, so a resumed run stops where an uninterrupted
one does. When ``should_stop()`` turns true
(SIGTERM), the run checkpoints at the next segment boundary and returns ``status ==
"suspended"``. On one rank per task (the default) a resumed run is bitwise identical to an
uninterrupted one (tested; see glassdist.md.checkpoint for why, and for several ranks per task).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..dynamics.crd import cage_relative_displacement, voronoi_cage
from ..errors import TaskError
from ..spec import Spec
from .checkpoint import Checkpoint, fingerprint, stopping
from .lammps import (
    LammpsSession,
    dynamics_fixes,
    num,
    pair_commands,
    read_data_commands,
    read_restart_commands,
    write_data_file,
)

FIX = "fix nvt all nvt temp {T} {T} {damp}"


@dataclass
class IsoconfResult:
    status: str  # "done" or "suspended"
    steps: np.ndarray  # (n_out,) output steps
    positions: np.ndarray  # (n_out, N, dim) unwrapped; NaN rows for outputs not reached (yet, or
    # ever: a run stopped by propensity.until_delta)


def output_steps(steps: int, outputs: int) -> np.ndarray:
    """Step 0 then ``outputs`` distinct integer steps, log-spaced from 1 to ``steps``; (outputs + 1,).

    Where rounding would repeat a step (early times), the next integer is taken instead.
    """
    if steps < outputs:
        raise ValueError(f"{outputs} distinct output steps do not fit in {steps} steps")
    out = np.rint(np.geomspace(1, steps, outputs)).astype(np.int64)
    for k in range(1, outputs):
        out[k] = max(out[k], out[k - 1] + 1)
    # a geometric sequence lies below its chord, so the bumped steps never pass `steps`
    return np.concatenate([[0], out])


def draw_velocities(rng: np.random.Generator, temperature: float, masses: np.ndarray, dim: int) -> np.ndarray:
    """Maxwell-Boltzmann velocities (N, dim) at ``temperature`` with zero total momentum (no rescale)."""
    masses = np.asarray(masses, dtype=float)
    v = rng.normal(size=(len(masses), dim)) * np.sqrt(temperature / masses)[:, None]
    return v - (masses[:, None] * v).sum(axis=0) / masses.sum()


def kinetic_temperature(velocities: np.ndarray, masses: np.ndarray) -> float:
    """2 KE / (dim (N - 1)): the temperature LAMMPS reports for momentum-free velocities (N, dim)."""
    n, dim = velocities.shape
    return float((np.asarray(masses)[:, None] * velocities**2).sum() / (dim * (n - 1)))


class DeltaStop:
    """``propensity.until_delta``: a run stops at the first output step where its own mean
    cage-relative displacement delta^s(t) = mean_i |d_i^s - dbar_i^s| (glassdist.dynamics.crd)
    reaches ``target`` = ``propensity.until_delta`` (at least the largest ``analyze.deltas``); with
    until_delta = 0 nothing stops a run."""

    def __init__(self, spec: Spec, start: np.ndarray):
        self.target = until_delta_target(spec)
        self.cage = voronoi_cage(start, spec.box_length) if self.target is not None else None

    def reached(self, r0: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """Per run, whether delta^s reached the target: r0 (N, dim) unwrapped start, positions
        (B, N, dim) unwrapped -> (B,) bool (all False without until_delta)."""
        if self.target is None:
            return np.zeros(len(positions), dtype=bool)
        return run_delta(r0, positions, self.cage) >= self.target


def until_delta_target(spec: Spec) -> float | None:
    """The delta at which runs stop (propensity.until_delta), or None (0: they run every step)."""
    return float(spec.propensity.until_delta) or None


def run_delta(r0: np.ndarray, positions: np.ndarray, cage) -> np.ndarray:
    """delta^s of runs at one time: r0 (N, dim), positions (B, N, dim) unwrapped -> (B,)."""
    return cage_relative_displacement(r0, np.asarray(positions)[:, None], cage)[:, 0].mean(axis=-1)


def reached_outputs(positions: np.ndarray) -> int:
    """Outputs a run reached: its rows (n_out, N, dim) before the first NaN row (a run stopped by
    until_delta leaves NaN rows after its last output)."""
    finite = np.isfinite(positions).all(axis=tuple(range(1, positions.ndim)))
    return int(np.argmin(finite)) if not finite.all() else len(finite)


def _stop_points(spec: Spec, outputs: np.ndarray) -> np.ndarray:
    p = spec.propensity
    checkpoints = np.arange(p.checkpoint_every, p.steps, p.checkpoint_every)
    return np.union1d(outputs, checkpoints)


def run_isoconf(
    spec: Spec,
    positions: np.ndarray,
    types: np.ndarray,
    velocities: np.ndarray,
    temperature: float,
    workdir: str | Path,
    *,
    comm=None,
    should_stop: Callable[[], bool] = lambda: False,
) -> IsoconfResult:
    """Run one isoconfigurational sample, resuming from ``workdir``'s checkpoint when there is one.

    positions (N, dim) and types (N,) are the starting configuration, velocities (N, dim) the
    drawn initial velocities; the run lasts ``spec.propensity.steps`` steps at ``temperature``.
    ``comm`` is the task's communicator (None: serial).
    """
    workdir = Path(workdir)
    root = comm is None or comm.Get_rank() == 0
    if root:
        workdir.mkdir(parents=True, exist_ok=True)
    steps = output_steps(spec.propensity.steps, spec.propensity.outputs)
    out = np.full((len(steps), len(types), spec.dim), np.nan)
    until = DeltaStop(spec, positions)
    ckpt = Checkpoint(
        workdir,
        fingerprint(
            positions,
            types,
            velocities,
            steps,
            np.array([temperature, spec.propensity.steps, spec.md.dt, spec.md.thermostat_damping]),
            until.target,
        ),
        root=root,
    )
    saved = ckpt.load() if root else None
    if comm is not None:
        saved = comm.bcast(saved, root=0)
    fix = FIX.format(T=num(temperature), damp=num(spec.md.thermostat_damping))
    with LammpsSession(spec, comm=comm) as lmp:
        if saved is None:
            step = 0
            data = workdir / "start.data"
            if root:
                write_data_file(data, spec, positions, types, velocities)
            if comm is not None:
                comm.Barrier()
            lmp.run(read_data_commands(spec, data))
        else:
            step, done = saved[0], saved[1]["positions"]
            out[: len(done)] = done
            lmp.run(read_restart_commands(spec, ckpt.restart(step)))
        lmp.run(pair_commands(spec) + dynamics_fixes(spec) + [fix, "thermo_modify lost error norm yes"])
        if step == 0:
            out[0] = lmp.unwrapped()
        status = "done"
        stops = _stop_points(spec, steps)
        for stop in stops[stops > step]:
            lmp.run(f"run {stop - step} post no")
            step = int(stop)
            k = np.searchsorted(steps, step)
            if steps[k] == step:
                out[k] = lmp.unwrapped()
                if until.reached(out[0], out[k][None])[0]:
                    break  # until_delta: the outputs after this one stay NaN
            if step == steps[-1]:
                break
            stop = stopping(should_stop, comm)
            if stop or step % spec.propensity.checkpoint_every == 0:
                ckpt.save(lmp, step, positions=out[: np.searchsorted(steps, step, side="right")])
            if stop:
                status = "suspended"
                break
        if root:
            name = "run.in" if saved is None else f"resume-{saved[0]}.in"
            lmp.write_input(
                workdir / name,
                header=f"glassdist isoconfigurational run at T = {temperature}\ncampaign '{spec.campaign.name}'",
            )
        if status == "done":
            lmp.check_atoms()
            if not np.isfinite(out[: np.searchsorted(steps, step, side="right")]).all():
                raise TaskError("isoconfigurational run produced non-finite positions")
    return IsoconfResult(status, steps, out)
