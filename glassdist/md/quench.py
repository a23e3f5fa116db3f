"""One quench (paper Sec. II B): random start, overlap removal, equilibration at T_start,
linear NVT Nose-Hoover cooling to T_glass; the configuration is saved at T_liquid (class
"liquid") and T_glass (class "glass"), T and potential energy along the cooling, and
cooling snapshots on a temperature grid when asked.

A quench runs as segments (:func:`segments`) and, given a work directory, checkpoints every
``md.checkpoint_every`` steps and stops cleanly on request (SIGTERM); a rerun resumes it
bitwise identically on one rank per task (:mod:`glassdist.md.checkpoint`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import TaskError
from ..spec import Spec
from .checkpoint import Checkpoint, fingerprint, stopping
from .lammps import LammpsSession, dynamics_fixes, num, pair_commands, random_start_commands, read_restart_commands, \
    seed_for_lammps


@dataclass
class QuenchResult:
    positions: np.ndarray      # (2, N, dim): wrapped positions at T_liquid, T_glass
    pe: np.ndarray             # (2,): potential energy per particle at T_liquid, T_glass
    temperature: np.ndarray    # (2,): instantaneous kinetic temperature there
    thermo_T: np.ndarray       # (P,): instantaneous T along the cooling
    thermo_target: np.ndarray  # (P,): thermostat target T at the same steps
    thermo_pe: np.ndarray      # (P,): potential energy per particle there
    snapshots: np.ndarray      # (n_snap, N, dim) in spec order, or (0, N, dim)


def step_at(spec: Spec, T: float) -> int:
    """Cooling step at which the thermostat target reaches T."""
    q = spec.quench
    return int(round((q.T_start - T) / (q.T_start - q.T_glass) * spec.cooling_steps))


def thermo_steps(spec: Spec) -> list[int]:
    """Cooling steps where T and the potential energy are recorded (P of them)."""
    q = spec.quench
    return sorted({step_at(spec, T) for T in np.linspace(q.T_start, q.T_glass, q.thermo_points)})


def equilibration_steps(spec: Spec) -> int:
    """Steps of the NVT equilibration at T_start before the cooling."""
    return int(round(spec.quench.equilibration_time / spec.md.dt))


def segments(spec: Spec, snapshots: bool) -> list[tuple[str, int]]:
    """The quench's LAMMPS runs, in order: (phase, step at its end), phase "equilibrate" (steps
    from the end of the random start) or "cool" (cooling steps). Ends: every multiple of
    ``md.checkpoint_every`` inside a phase, the end of the equilibration, and the cooling's
    recorded steps (thermo points, T_liquid, the snapshots, T_glass)."""
    q, every = spec.quench, spec.md.checkpoint_every
    E, total = equilibration_steps(spec), spec.cooling_steps
    snap_T = q.snapshot_temperatures if snapshots else []
    cool = {*thermo_steps(spec), step_at(spec, q.T_liquid), total, *(step_at(spec, T) for T in snap_T)}
    return ([("equilibrate", s) for s in sorted({*range(every, E, every), E})]
            + [("cool", s) for s in sorted(cool | set(range(every, total, every)))])


def quench(spec: Spec, rng: np.random.Generator, *, snapshots: bool = False, comm=None,
           workdir: str | Path | None = None, label: str = "quench",
           should_stop: Callable[[], bool] = lambda: False) -> QuenchResult | None:
    """Run one quench with its own LAMMPS instance on ``comm``; seeds come from ``rng``.

    The quench runs as :func:`segments`. With a ``workdir`` it keeps its LAMMPS input there
    (``LABEL.in``, or ``LABEL.resume-STEP.in`` for a resumed run) and a checkpoint
    (:mod:`glassdist.md.checkpoint`, files ``LABEL.ckpt*``: restart file and the results so
    far) at every multiple of ``md.checkpoint_every`` and at the end; a call with the same
    ``rng`` (state), spec and work directory resumes from it, bitwise identical to an
    uninterrupted quench on one rank per task. When ``should_stop()`` turns true it
    checkpoints at the next segment end and returns None (suspended).
    """
    q, dim, N = spec.quench, spec.dim, spec.system.n_particles
    total, every = spec.cooling_steps, spec.md.checkpoint_every
    plan = segments(spec, snapshots)
    snap_T = list(q.snapshot_temperatures) if snapshots else []
    record = {s: i for i, s in enumerate(thermo_steps(spec))}
    liquid_step, snap_steps = step_at(spec, q.T_liquid), {step_at(spec, T): k for k, T in enumerate(snap_T)}
    root = comm is None or comm.Get_rank() == 0
    ckpt = None
    if workdir is not None:
        ckpt = Checkpoint(workdir, fingerprint(rng.bit_generator.state, spec.section_hash("system", "md", "quench"),
                                               snapshots), root=root, prefix=checkpoint_prefix(label))
    saved = ckpt.load() if ckpt is not None and root else None
    if comm is not None:
        saved = comm.bcast(saved, root=0)
    if saved is None:
        P = len(record)
        res = QuenchResult(np.full((2, N, dim), np.nan), np.full(2, np.nan), np.full(2, np.nan),
                           np.full(P, np.nan), np.full(P, np.nan), np.full(P, np.nan),
                           np.full((len(snap_T), N, dim), np.nan))
        done = -1
    else:
        arrays = saved[1]
        done = int(arrays.pop("segment"))
        res = QuenchResult(**arrays)
    suspended = False
    if done < len(plan) - 1:
        with LammpsSession(spec, comm=comm) as lmp:
            if saved is None:
                lmp.run(_fresh_start_commands(spec, rng))
            else:
                lmp.run([*read_restart_commands(spec, ckpt.restart(saved[0])), *pair_commands(spec),
                         *dynamics_fixes(spec), "thermo_modify lost error norm yes", _nvt(spec, plan[done][0])])
            for k in range(done + 1, len(plan)):
                (phase, end), before = plan[k], plan[k - 1] if k else ("equilibrate", 0)
                begin = before[1] if before[0] == phase else 0
                if phase == "equilibrate":
                    lmp.run(f"run {end - begin}")
                else:
                    if before[0] == "equilibrate":
                        lmp.run(["unfix equilibrate", "reset_timestep 0", _nvt(spec, "cool")])
                    if before[0] == "equilibrate" and end == 0:
                        lmp.run("run 0 post no")
                    else:
                        lmp.run(f"run {end - begin} start 0 stop {total}")
                    _record(lmp, res, spec, end, record, liquid_step, snap_steps)
                if k == len(plan) - 1 or end == begin:
                    continue  # nothing to checkpoint yet (end == begin: a `run 0` for the records)
                suspended = stopping(should_stop, comm) and ckpt is not None
                if suspended or (ckpt is not None and end % every == 0):
                    ckpt.save(lmp, _global_step(spec, phase, end), segment=np.int64(k), **vars(res))
                if suspended:
                    break
            if not suspended:
                lmp.check_atoms()
                if ckpt is not None:
                    ckpt.save(lmp, _global_step(spec, *plan[-1]), segment=np.int64(len(plan) - 1), **vars(res))
            if ckpt is not None and root:
                name = f"{label}.in" if saved is None else f"{label}.resume-{saved[0]}.in"
                lmp.write_input(Path(workdir) / name, header=f"glassdist quench of campaign '{spec.campaign.name}'")
        if suspended:
            return None
    for name, arr in vars(res).items():
        if not np.isfinite(arr).all():
            raise TaskError(f"quench produced non-finite {name}")
    return res


def _fresh_start_commands(spec: Spec, rng: np.random.Generator) -> list[str]:
    """Random start, Maxwell-Boltzmann velocities at T_start, the equilibration thermostat."""
    T = num(spec.quench.T_start)
    return [*random_start_commands(spec, rng), *dynamics_fixes(spec), "thermo_modify lost error norm yes",
            f"velocity all create {T} {seed_for_lammps(rng)} dist gaussian mom yes rot no", _nvt(spec, "equilibrate")]


def checkpoint_prefix(label: str) -> str:
    """Name prefix of the checkpoint files of quench ``label`` in its work directory."""
    return f"{label}.ckpt"


def _global_step(spec: Spec, phase: str, end: int) -> int:
    """Steps since the random start at the end of a segment (names the restart file)."""
    return end if phase == "equilibrate" else equilibration_steps(spec) + end


def _nvt(spec: Spec, phase: str) -> str:
    """The Nose-Hoover fix of a phase. Its ID is the phase: a restart file restores the state of
    the fix of the same ID, and the cooling fix starts from a fresh thermostat state."""
    q = spec.quench
    T_stop = q.T_start if phase == "equilibrate" else q.T_glass
    return f"fix {phase} all nvt temp {num(q.T_start)} {num(T_stop)} {num(spec.md.thermostat_damping)}"


def _record(lmp: LammpsSession, res: QuenchResult, spec: Spec, step: int, record: dict[int, int],
            liquid_step: int, snap_steps: dict[int, int]) -> None:
    """Store what the quench keeps at cooling step ``step`` into ``res``."""
    q = spec.quench
    T_now, pe_now = lmp.thermo("temp"), lmp.thermo("pe")
    if step in record:
        i = record[step]
        res.thermo_T[i], res.thermo_pe[i] = T_now, pe_now
        res.thermo_target[i] = q.T_start + (q.T_glass - q.T_start) * step / spec.cooling_steps
    for cls, at in ((0, liquid_step), (1, spec.cooling_steps)):
        if step == at:
            res.positions[cls], res.pe[cls], res.temperature[cls] = lmp.positions(), pe_now, T_now
    if step in snap_steps:
        res.snapshots[snap_steps[step]] = lmp.positions()
