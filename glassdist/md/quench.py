"""One quench (paper Sec. II B): random start, overlap removal, equilibration at T_start,
linear NVT Nose-Hoover cooling to T_glass; the configuration is saved at T_liquid (class
"liquid") and T_glass (class "glass"), T and potential energy along the cooling, and
cooling snapshots on a temperature grid when asked.

With ``quench.hold_liquid`` the cooling pauses at T_liquid: the replica is held there (NVT,
its own thermostat), F_s(k*, t) and the energy are recorded during the hold, the liquid is
saved at its end, and the cooling then goes on from T_liquid.

A quench runs as segments (:func:`segments`) and, given a work directory, checkpoints every
``md.checkpoint_every`` steps and stops cleanly on request (SIGTERM); a rerun resumes it
bitwise identically on one rank per task (:mod:`glassdist.md.checkpoint`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..dynamics.scattering import first_peak, self_intermediate_scattering
from ..errors import TaskError
from ..spec import HOLD_OUTPUTS, Spec
from .checkpoint import Checkpoint, fingerprint, stopping
from .isoconf import output_steps
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
    # the liquid hold at T_L (quench.hold_liquid; empty without it), at the hold's record steps:
    hold_fs: np.ndarray = field(default_factory=lambda: np.zeros(0))   # (n_hold,) F_s(k*, t)
    hold_pe: np.ndarray = field(default_factory=lambda: np.zeros(0))   # (n_hold,) potential energy per particle
    k_star: np.ndarray = field(default_factory=lambda: np.zeros(0))    # (1,) first peak of S(k) at the hold's start
    hold_origin: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))  # (N, dim) unwrapped at its start


def step_at(spec: Spec, T: float) -> int:
    """Cooling step at which the thermostat target reaches T."""
    q = spec.quench
    return int(round((q.T_start - T) / (q.T_start - q.T_glass) * spec.cooling_steps))


def thermo_steps(spec: Spec) -> list[int]:
    """Cooling steps where T and the potential energy are recorded (P of them)."""
    q = spec.quench
    return sorted({step_at(spec, T) for T in np.linspace(q.T_start, q.T_glass, q.thermo_points)})


def segments(spec: Spec, snapshots: bool) -> list[tuple[str, int]]:
    """The quench's LAMMPS runs, in order: (phase, step at its end), phase "equilibrate" (steps
    from the end of the random start), "cool" (cooling steps) or "hold" (steps of the liquid hold
    at T_L, from its start; it sits in the cooling at T_liquid's step). Ends: every multiple of
    ``md.checkpoint_every`` inside a phase, the end of the equilibration, the cooling's recorded
    steps (thermo points, T_liquid, the snapshots, T_glass) and the hold's (:func:`hold_steps`)."""
    q, every = spec.quench, spec.md.checkpoint_every
    E, total, liquid = spec.equilibration_steps, spec.cooling_steps, step_at(spec, q.T_liquid)
    snap_T = q.snapshot_temperatures if snapshots else []
    cool = sorted({*thermo_steps(spec), liquid, total, *(step_at(spec, T) for T in snap_T),
                   *range(every, total, every)})
    held = hold_steps(spec)
    hold = sorted({*map(int, held[1:]), *range(every, int(held[-1]), every)}) if len(held) else []
    return ([("equilibrate", s) for s in sorted({*range(every, E, every), E})]
            + [("cool", s) for s in cool if s <= liquid] + [("hold", s) for s in hold]
            + [("cool", s) for s in cool if s > liquid])


# ---- the liquid hold at T_L (quench.hold_liquid) ------------------------------------------------
# Its own segment of the quench: it records F_s(k*, t) and the potential energy, and saves the
# liquid at its end; the stage derives tau_alpha from F_s (glassdist.dynamics.scattering).

def hold_steps(spec: Spec) -> np.ndarray:
    """Steps from the hold's start where it records F_s and the energy: 0, then HOLD_OUTPUTS
    log-spaced steps to its end; (HOLD_OUTPUTS + 1,), or (0,) without a hold."""
    steps = spec.hold_liquid_steps
    return output_steps(steps, HOLD_OUTPUTS) if steps else np.zeros(0, dtype=np.int64)


def empty_hold(spec: Spec) -> dict[str, np.ndarray]:
    """The hold fields of a QuenchResult before the hold ran (NaN), empty without a hold."""
    n, N, dim = len(hold_steps(spec)), spec.system.n_particles, spec.dim
    if not n:
        return {"hold_fs": np.zeros(0), "hold_pe": np.zeros(0), "k_star": np.zeros(0), "hold_origin": np.zeros((0, 0))}
    return {"hold_fs": np.full(n, np.nan), "hold_pe": np.full(n, np.nan), "k_star": np.full(1, np.nan),
            "hold_origin": np.full((N, dim), np.nan)}


def record_hold(hold: dict[str, np.ndarray], i: int, unwrapped: np.ndarray, pe: np.ndarray, box_length: float) -> None:
    """Record hold sample ``i`` of a block: ``hold`` holds the block's hold fields with the
    replicas along axis 0 (hold_fs (B, n_hold), hold_pe (B, n_hold), k_star (B, 1), hold_origin
    (B, N, dim)); unwrapped (B, N, dim), pe (B,). Sample 0 (the hold's start) sets the origin
    and k* (the first peak of S(k) of that configuration)."""
    if i == 0:
        hold["hold_origin"][:] = unwrapped
        hold["k_star"][:, 0] = [first_peak(x, box_length) for x in unwrapped]
    hold["hold_fs"][:, i] = self_intermediate_scattering(hold["hold_origin"], unwrapped, hold["k_star"][:, 0])
    hold["hold_pe"][:, i] = pe


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
                           np.full((len(snap_T), N, dim), np.nan), **empty_hold(spec))
        done = -1
    else:
        arrays = saved[1]
        done = int(arrays.pop("segment"))
        res = QuenchResult(**arrays)
    suspended = False
    held = hold_steps(spec)
    hold_index = {int(step): i for i, step in enumerate(held)}
    if done < len(plan) - 1:
        with LammpsSession(spec, comm=comm) as lmp:
            if saved is None:
                lmp.run(_fresh_start_commands(spec, rng))
            else:
                lmp.run([*read_restart_commands(spec, ckpt.restart(saved[0])), *pair_commands(spec),
                         *dynamics_fixes(spec), "thermo_modify lost error norm yes", _nvt(spec, plan[done][0])])
            for k in range(done + 1, len(plan)):
                (phase, end), before = plan[k], plan[k - 1] if k else ("equilibrate", 0)
                begin = before[1] if before[0] == phase else _phase_start(spec, phase, before[0])
                if before[0] != phase:  # a fresh thermostat (fix ID = phase) from its own first step
                    lmp.run([f"unfix {before[0]}", f"reset_timestep {begin}", _nvt(spec, phase)])
                if phase == "cool" and end == begin:
                    lmp.run("run 0 post no")
                elif phase == "cool":
                    lmp.run(f"run {end - begin} start 0 stop {total}")
                else:
                    lmp.run(f"run {end - begin}")
                if phase == "cool":
                    _record(lmp, res, spec, end, record, None if len(held) else liquid_step, snap_steps)
                    if len(held) and end == liquid_step:
                        _record_hold(lmp, res, spec, 0)
                elif phase == "hold":
                    if end in hold_index:
                        _record_hold(lmp, res, spec, hold_index[end])
                    if end == held[-1]:  # the liquid, saved after the hold
                        res.positions[0], res.pe[0], res.temperature[0] = lmp.positions(), res.hold_pe[-1], \
                            lmp.thermo("temp")
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
    E, liquid, held = spec.equilibration_steps, step_at(spec, spec.quench.T_liquid), hold_steps(spec)
    if phase == "equilibrate":
        return end
    if phase == "hold":
        return E + liquid + end
    return E + end + (int(held[-1]) if len(held) and end > liquid else 0)


def _phase_start(spec: Spec, phase: str, previous: str) -> int:
    """The timestep a phase starts at after ``previous``: 0, except the cooling after the hold,
    which goes on from T_liquid's cooling step (the target ramp's timestep)."""
    return step_at(spec, spec.quench.T_liquid) if (phase, previous) == ("cool", "hold") else 0


def _record_hold(lmp: LammpsSession, res: QuenchResult, spec: Spec, i: int) -> None:
    """Hold sample ``i`` of this replica into ``res`` (see :func:`record_hold`)."""
    block = {name: getattr(res, name)[None] for name in ("hold_fs", "hold_pe", "k_star", "hold_origin")}
    record_hold(block, i, lmp.unwrapped()[None], np.array([lmp.thermo("pe")]), spec.box_length)


def _nvt(spec: Spec, phase: str) -> str:
    """The Nose-Hoover fix of a phase. Its ID is the phase: a restart file restores the state of
    the fix of the same ID, and the cooling fix starts from a fresh thermostat state."""
    q = spec.quench
    T_begin, T_stop = {"equilibrate": (q.T_start, q.T_start), "cool": (q.T_start, q.T_glass),
                       "hold": (q.T_liquid, q.T_liquid)}[phase]
    return f"fix {phase} all nvt temp {num(T_begin)} {num(T_stop)} {num(spec.md.thermostat_damping)}"


def _record(lmp: LammpsSession, res: QuenchResult, spec: Spec, step: int, record: dict[int, int],
            liquid_step: int | None, snap_steps: dict[int, int]) -> None:
    """Store what the quench keeps at cooling step ``step`` into ``res`` (the liquid at
    ``liquid_step``; None: the hold saves it)."""
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
