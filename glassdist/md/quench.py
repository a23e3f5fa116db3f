"""One quench on LAMMPS (paper Sec. II B): random start and overlap removal, then the segments
of its :class:`~glassdist.md.schedule.QuenchPlan` (equilibration at T_start, the linear NVT
Nose-Hoover cooling to T_glass, the liquid hold at T_L), each a LAMMPS ``run``, with what the
plan records at their ends.

Given a work directory it checkpoints every ``md.checkpoint_every`` steps and stops cleanly on
request (SIGTERM); a rerun resumes it bitwise identically on one rank per task
(:mod:`glassdist.md.checkpoint`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from ..spec import Spec
from .checkpoint import Checkpoint, stopping
from .lammps import (
    LammpsSession,
    dynamics_fixes,
    num,
    pair_commands,
    random_start_commands,
    read_restart_commands,
    seed_for_lammps,
)
from .schedule import QuenchPlan, QuenchResult, empty_hold, record_hold


def quench(
    spec: Spec,
    rng: np.random.Generator,
    *,
    snapshots: bool = False,
    comm=None,
    workdir: str | Path | None = None,
    label: str = "quench",
    should_stop: Callable[[], bool] = lambda: False,
) -> QuenchResult | None:
    """Run one quench with its own LAMMPS instance on ``comm``; seeds come from ``rng``.

    The quench runs as the segments of its :class:`~glassdist.md.schedule.QuenchPlan`, each a LAMMPS
    ``run``. With a ``workdir`` it keeps its LAMMPS input there (``LABEL.in``, or
    ``LABEL.resume-STEP.in`` for a resumed run) and a checkpoint (:mod:`glassdist.md.checkpoint`,
    files ``LABEL.ckpt*``: restart file and the results so far) at every multiple of
    ``md.checkpoint_every`` and at the end; a call with the same ``rng`` (state), spec and work
    directory resumes from it, bitwise identical to an uninterrupted quench on one rank per task.
    When ``should_stop()`` turns true it checkpoints at the next segment end and returns None
    (suspended).
    """
    q, dim, N, every = spec.quench, spec.dim, spec.system.n_particles, spec.md.checkpoint_every
    plan = QuenchPlan.of(spec, snapshots, every)
    segments, n_snap = plan.segments, len(q.snapshot_temperatures) if snapshots else 0
    root = comm is None or comm.Get_rank() == 0
    ckpt = None
    if workdir is not None:
        ckpt = Checkpoint(
            workdir,
            plan.fingerprint(spec, rng.bit_generator.state, snapshots),
            root=root,
            prefix=checkpoint_prefix(label),
        )
    saved = ckpt.load() if ckpt is not None and root else None
    if comm is not None:
        saved = comm.bcast(saved, root=0)
    if saved is None:
        P = len(plan.thermo)
        res = QuenchResult(
            np.full((2, N, dim), np.nan),
            np.full(2, np.nan),
            np.full(2, np.nan),
            np.full(P, np.nan),
            np.full(P, np.nan),
            np.full(P, np.nan),
            np.full((n_snap, N, dim), np.nan),
            **empty_hold(spec),
        )
        done = -1
    else:
        arrays = saved[1]
        done = int(arrays.pop("segment"))
        res = QuenchResult(**arrays)
    suspended = False
    if done < len(segments) - 1:
        with LammpsSession(spec, comm=comm) as lmp:
            if saved is None:
                lmp.run(_fresh_start_commands(spec, plan, rng))
            else:
                lmp.run(
                    [
                        *read_restart_commands(spec, ckpt.restart(saved[0])),
                        *pair_commands(spec),
                        *dynamics_fixes(spec),
                        "thermo_modify lost error norm yes",
                        _nvt(spec, plan, segments[done][0]),
                    ]
                )
            for k in range(done + 1, len(segments)):
                (phase, end), before = segments[k], segments[k - 1][0] if k else "equilibrate"
                begin = plan.begin(k)
                if before != phase:  # a fresh thermostat (fix ID = phase) from its own first step
                    lmp.run([f"unfix {before}", f"reset_timestep {begin}", _nvt(spec, plan, phase)])
                if phase == "cool" and end == begin:
                    lmp.run("run 0 post no")
                elif phase == "cool":
                    lmp.run(f"run {end - begin} start 0 stop {plan.targets['cool'][2]}")
                else:
                    lmp.run(f"run {end - begin}")
                if phase == "cool":
                    _record(lmp, res, spec, plan, end)
                    if plan.holds and end == plan.liquid:
                        _record_hold(lmp, res, spec, 0)
                elif phase == "hold":
                    if end in plan.hold:
                        _record_hold(lmp, res, spec, plan.hold[end])
                    if end == plan.hold_end:  # the liquid, saved after the hold
                        res.positions[0], res.pe[0], res.temperature[0] = (
                            lmp.positions(),
                            res.hold_pe[-1],
                            lmp.thermo("temp"),
                        )
                if k == len(segments) - 1 or end == begin:
                    continue  # nothing to checkpoint yet (end == begin: a `run 0` for the records)
                suspended = stopping(should_stop, comm) and ckpt is not None
                if suspended or (ckpt is not None and end % every == 0):
                    ckpt.save(lmp, plan.global_step(k), segment=np.int64(k), **vars(res))
                if suspended:
                    break
            if not suspended:
                lmp.check_atoms()
                if ckpt is not None:
                    ckpt.save(
                        lmp, plan.global_step(len(segments) - 1), segment=np.int64(len(segments) - 1), **vars(res)
                    )
            if ckpt is not None and root:
                name = f"{label}.in" if saved is None else f"{label}.resume-{saved[0]}.in"
                lmp.write_input(Path(workdir) / name, header=f"glassdist quench of campaign '{spec.campaign.name}'")
        if suspended:
            return None
    res.check("LAMMPS")
    return res


def _fresh_start_commands(spec: Spec, plan: QuenchPlan, rng: np.random.Generator) -> list[str]:
    """Random start, Maxwell-Boltzmann velocities at T_start, the equilibration thermostat."""
    T = num(spec.quench.T_start)
    return [
        *random_start_commands(spec, rng),
        *dynamics_fixes(spec),
        "thermo_modify lost error norm yes",
        f"velocity all create {T} {seed_for_lammps(rng)} dist gaussian mom yes rot no",
        _nvt(spec, plan, "equilibrate"),
    ]


def checkpoint_prefix(label: str) -> str:
    """Name prefix of the checkpoint files of quench ``label`` in its work directory."""
    return f"{label}.ckpt"


def _record_hold(lmp: LammpsSession, res: QuenchResult, spec: Spec, i: int) -> None:
    """Hold sample ``i`` of this replica into ``res`` (see glassdist.md.schedule.record_hold)."""
    block = {name: getattr(res, name)[None] for name in ("hold_fs", "hold_pe", "k_star", "hold_origin")}
    record_hold(block, i, lmp.unwrapped()[None], np.array([lmp.thermo("pe")]), spec.box_length)


def _nvt(spec: Spec, plan: QuenchPlan, phase: str) -> str:
    """The Nose-Hoover fix of a phase. Its ID is the phase: a restart file restores the state of
    the fix of the same ID, and the cooling fix starts from a fresh thermostat state."""
    T_begin, T_stop, _ = plan.targets[phase]
    return f"fix {phase} all nvt temp {num(T_begin)} {num(T_stop)} {num(spec.md.thermostat_damping)}"


def _record(lmp: LammpsSession, res: QuenchResult, spec: Spec, plan: QuenchPlan, step: int) -> None:
    """Store what the plan keeps at cooling step ``step`` into ``res``."""
    q = spec.quench
    T_now, pe_now = lmp.thermo("temp"), lmp.thermo("pe")
    if step in plan.thermo:
        i = plan.thermo[step]
        res.thermo_T[i], res.thermo_pe[i] = T_now, pe_now
        res.thermo_target[i] = q.T_start + (q.T_glass - q.T_start) * step / spec.cooling_steps
    if step in plan.saves:
        cls = plan.saves[step]
        res.positions[cls], res.pe[cls], res.temperature[cls] = lmp.positions(), pe_now, T_now
    if step in plan.snapshots:
        res.snapshots[plan.snapshots[step]] = lmp.positions()
