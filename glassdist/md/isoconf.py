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
``propensity.checkpoint_every``; at every multiple it writes a LAMMPS restart file (positions,
velocities, image flags and the Nose-Hoover thermostat state of ``fix nvt``) and the outputs so
far. A rerun with the same work directory resumes from the last checkpoint. When
``should_stop()`` turns true (SIGTERM), the run checkpoints at the next segment boundary and
returns ``status == "suspended"``. Every segment starts with a full LAMMPS setup (neighbour
lists rebuilt) in both a continuous and a resumed run, and the restart file holds x, v, image
flags and the thermostat state exactly, so on one rank per task (the default) a resumed run is
bitwise identical to an uninterrupted one (tested). With several ranks per task, read_restart
may redistribute atoms in another memory order: the force sums then differ in round-off and
the trajectories diverge chaotically, staying statistically equivalent.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import TaskError
from ..spec import Spec
from .lammps import LammpsSession, dynamics_fixes, num, pair_commands, read_data_commands, write_data_file

FIX = "fix nvt all nvt temp {T} {T} {damp}"


@dataclass
class IsoconfResult:
    status: str             # "done" or "suspended"
    steps: np.ndarray       # (n_out,) output steps
    positions: np.ndarray   # (n_out, N, dim) unwrapped; NaN rows for outputs not reached yet


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


def _stop_points(spec: Spec, outputs: np.ndarray) -> np.ndarray:
    p = spec.propensity
    checkpoints = np.arange(p.checkpoint_every, p.steps, p.checkpoint_every)
    return np.union1d(outputs, checkpoints)


def _fingerprint(*arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


class _Checkpoint:
    """``ckpt.npz`` (step, outputs so far, fingerprint of the inputs) and ``ckpt-STEP.restart``.

    The npz is renamed into place after its restart file is complete, and names it, so a kill
    at any moment leaves a consistent pair.
    """

    def __init__(self, workdir: Path, fingerprint: str, root: bool):
        self.dir, self.fingerprint, self.root = workdir, fingerprint, root
        self.npz = workdir / "ckpt.npz"

    def load(self):
        """(step, positions) of a checkpoint of these inputs, or None."""
        if not self.npz.exists():
            return None
        with np.load(self.npz) as z:
            if str(z["fingerprint"]) != self.fingerprint:
                return None
            step, positions = int(z["step"]), z["positions"]
        return (step, positions) if self.restart(step).exists() else None

    def restart(self, step: int) -> Path:
        return self.dir / f"ckpt-{step}.restart"

    def save(self, lmp: LammpsSession, step: int, positions: np.ndarray) -> None:
        lmp.run(f"write_restart {self.restart(step)}")
        if not self.root:
            return
        tmp = self.dir / "ckpt.tmp.npz"
        np.savez(tmp, step=step, positions=positions, fingerprint=self.fingerprint)
        os.replace(tmp, self.npz)
        for old in self.dir.glob("ckpt-*.restart"):
            if old != self.restart(step):
                old.unlink()


def clear_checkpoint(workdir: str | Path) -> None:
    """Remove a run's checkpoint files (after its outputs are stored); its inputs stay."""
    for path in Path(workdir).glob("ckpt*"):
        path.unlink()


def run_isoconf(spec: Spec, positions: np.ndarray, types: np.ndarray, velocities: np.ndarray,
                temperature: float, workdir: str | Path, *, comm=None,
                should_stop: Callable[[], bool] = lambda: False) -> IsoconfResult:
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
    ckpt = _Checkpoint(workdir, _fingerprint(positions, types, velocities, steps,
                                             np.array([temperature, spec.propensity.steps, spec.md.dt,
                                                       spec.md.thermostat_damping])), root)
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
            step, done = saved
            out[: len(done)] = done
            lmp.run(f"read_restart {ckpt.restart(step)}")
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
            if step == steps[-1]:
                break
            stopping = should_stop()
            if comm is not None:
                stopping = comm.allreduce(int(stopping)) > 0
            if stopping or step % spec.propensity.checkpoint_every == 0:
                ckpt.save(lmp, step, out[: np.searchsorted(steps, step, side="right")])
            if stopping:
                status = "suspended"
                break
        if root:
            name = "run.in" if saved is None else f"resume-{saved[0]}.in"
            lmp.write_input(workdir / name, header=f"glassdist isoconfigurational run at T = {temperature}\n"
                            f"campaign '{spec.campaign.name}'")
        if status == "done":
            lmp.check_atoms()
            if not np.isfinite(out).all():
                raise TaskError("isoconfigurational run produced non-finite positions")
    return IsoconfResult(status, steps, out)
