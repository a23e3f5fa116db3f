"""One quench (paper Sec. II B): random start, overlap removal, equilibration at T_start,
linear NVT Nose-Hoover cooling to T_glass; the configuration is saved at T_liquid (class
"liquid") and T_glass (class "glass"), T and potential energy along the cooling, and
cooling snapshots on a temperature grid when asked.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import TaskError
from ..spec import Spec
from .lammps import LammpsSession, dynamics_fixes, num, random_start_commands, seed_for_lammps


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


def quench(spec: Spec, rng: np.random.Generator, *, snapshots: bool = False, comm=None,
           input_path: str | Path | None = None) -> QuenchResult:
    """Run one quench with its own LAMMPS instance on ``comm``; seeds come from ``rng``."""
    q, dim, N = spec.quench, spec.dim, spec.system.n_particles
    total = spec.cooling_steps
    snap_T = list(q.snapshot_temperatures) if snapshots else []
    record = set(thermo_steps(spec))
    liquid_step, snap_steps = step_at(spec, q.T_liquid), {step_at(spec, T): k for k, T in enumerate(snap_T)}
    boundaries = sorted(record | {liquid_step, total} | set(snap_steps))

    out_pos = np.full((2, N, dim), np.nan)
    out_pe, out_T = np.full(2, np.nan), np.full(2, np.nan)
    snaps = np.full((len(snap_T), N, dim), np.nan)
    th_T, th_target, th_pe = [], [], []
    damp = spec.md.thermostat_damping
    with LammpsSession(spec, comm=comm) as lmp:
        lmp.run(random_start_commands(spec, rng))
        lmp.run(dynamics_fixes(spec) + ["thermo_modify lost error norm yes"])
        lmp.run([f"velocity all create {num(q.T_start)} {seed_for_lammps(rng)} dist gaussian mom yes rot no",
                 f"fix nvt all nvt temp {num(q.T_start)} {num(q.T_start)} {num(damp)}",
                 f"run {int(round(q.equilibration_time / spec.md.dt))}", "unfix nvt", "reset_timestep 0",
                 f"fix nvt all nvt temp {num(q.T_start)} {num(q.T_glass)} {num(damp)}"])
        step = 0
        for stop in boundaries:
            if stop > step:
                lmp.run(f"run {stop - step} start 0 stop {total}")
                step = stop
            elif step == 0:
                lmp.run("run 0 post no")
            T_now, pe_now = lmp.thermo("temp"), lmp.thermo("pe")
            target = q.T_start + (q.T_glass - q.T_start) * step / total
            if step in record:
                th_T.append(T_now), th_target.append(target), th_pe.append(pe_now)
            for cls, at in ((0, liquid_step), (1, total)):
                if step == at:
                    out_pos[cls], out_pe[cls], out_T[cls] = lmp.positions(), pe_now, T_now
            if step in snap_steps:
                snaps[snap_steps[step]] = lmp.positions()
        lmp.check_atoms()
        if input_path is not None:
            lmp.write_input(input_path, header=f"glassdist quench of campaign '{spec.campaign.name}'")
    result = QuenchResult(out_pos, out_pe, out_T, np.array(th_T), np.array(th_target), np.array(th_pe),
                          snaps)
    for name, arr in vars(result).items():
        if not np.isfinite(arr).all():
            raise TaskError(f"quench produced non-finite {name}")
    return result
