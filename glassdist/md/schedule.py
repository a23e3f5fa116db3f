"""What a quench does and when, the same for every MD engine (paper Sec. II B): equilibration at
T_start, the linear NVT cooling to T_glass, the liquid saved at T_liquid (after the hold at T_L of
``quench.hold_liquid``, which pauses the cooling there) and the glass at T_glass; T and the
potential energy at the thermo points; cooling snapshots on a temperature grid when kept.

:class:`QuenchPlan` is that schedule cut into segments; an engine (glassdist.md.quench for LAMMPS,
glassdist.md.warp.engine) runs the segments in order, records what the plan says at each end and
may checkpoint there. :class:`QuenchResult` is what a quench returns, whichever engine ran it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..dynamics.scattering import first_peak, self_intermediate_scattering
from ..errors import TaskError
from ..spec import HOLD_OUTPUTS, Spec
from .checkpoint import fingerprint
from .isoconf import output_steps


@dataclass
class QuenchResult:
    positions: np.ndarray  # (2, N, dim): wrapped positions at T_liquid, T_glass
    pe: np.ndarray  # (2,): potential energy per particle at T_liquid, T_glass
    temperature: np.ndarray  # (2,): instantaneous kinetic temperature there
    thermo_T: np.ndarray  # (P,): instantaneous T along the cooling
    thermo_target: np.ndarray  # (P,): thermostat target T at the same steps
    thermo_pe: np.ndarray  # (P,): potential energy per particle there
    snapshots: np.ndarray  # (n_snap, N, dim) in spec order, or (0, N, dim)
    # the liquid hold at T_L (quench.hold_liquid; empty without it), at the hold's record steps:
    hold_fs: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (n_hold,) F_s(k*, t)
    hold_pe: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (n_hold,) potential energy per particle
    k_star: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (1,) first peak of S(k) at the hold's start
    hold_origin: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))  # (N, dim) unwrapped at its start

    def check(self, engine: str) -> None:
        """Raise TaskError naming the first non-finite field (a blown-up quench)."""
        for name, arr in vars(self).items():
            if not np.isfinite(arr).all():
                raise TaskError(f"{engine} quench produced non-finite {name}")


def step_at(spec: Spec, T: float) -> int:
    """Cooling step at which the thermostat target reaches T."""
    q = spec.quench
    return int(round((q.T_start - T) / (q.T_start - q.T_glass) * spec.cooling_steps))


def thermo_steps(spec: Spec) -> list[int]:
    """Cooling steps where T and the potential energy are recorded (P of them)."""
    q = spec.quench
    return sorted({step_at(spec, T) for T in np.linspace(q.T_start, q.T_glass, q.thermo_points)})


def hold_steps(spec: Spec) -> np.ndarray:
    """Steps from the hold's start where it records F_s and the energy: 0, then HOLD_OUTPUTS
    log-spaced steps to its end; (HOLD_OUTPUTS + 1,), or (0,) without a hold."""
    steps = spec.hold_liquid_steps
    return output_steps(steps, HOLD_OUTPUTS) if steps else np.zeros(0, dtype=np.int64)


@dataclass(frozen=True)
class QuenchPlan:
    """The segments of one quench (or of a block of quenches stepped together), in order:
    (phase, step at its end). Phase "equilibrate" counts steps from the end of the random start,
    "cool" cooling steps (the timestep of the target ramp), "hold" steps of the liquid hold from
    its start (it sits in the cooling at T_liquid's step). Segment ends: every multiple of
    ``every`` inside a phase (the chances to checkpoint), the end of the equilibration, the
    cooling's recorded steps (thermo points, T_liquid, the snapshots when kept, T_glass) and the
    hold's (:func:`hold_steps`). A phase change starts a fresh thermostat (``targets[phase]``)."""

    segments: tuple[tuple[str, int], ...]
    thermo: dict[int, int]  # cooling step -> index of the thermo point (P of them)
    saves: dict[int, int]  # cooling step -> class saved there (0 liquid: only without a hold; 1 glass)
    snapshots: dict[int, int]  # cooling step -> index of the snapshot temperature (empty: none kept)
    hold: dict[int, int]  # hold step -> index of its record (empty: no hold)
    liquid: int  # cooling step of T_liquid (where the hold sits)
    targets: dict[str, tuple[float, float, int]]  # phase -> thermostat (T at its start, T at its end, steps)

    @classmethod
    def of(cls, spec: Spec, snapshots: bool, every: int) -> QuenchPlan:
        q = spec.quench
        E, total, liquid = spec.equilibration_steps, spec.cooling_steps, step_at(spec, q.T_liquid)
        thermo = thermo_steps(spec)
        snap = [step_at(spec, T) for T in q.snapshot_temperatures] if snapshots else []
        held = hold_steps(spec)
        cool = sorted({*thermo, liquid, total, *snap, *range(every, total, every)})
        hold = sorted({*map(int, held[1:]), *range(every, int(held[-1]), every)}) if len(held) else []
        segments = (
            [("equilibrate", s) for s in sorted({*range(every, E, every), E})]
            + [("cool", s) for s in cool if s <= liquid]
            + [("hold", s) for s in hold]
            + [("cool", s) for s in cool if s > liquid]
        )
        return cls(
            tuple(segments),
            {s: i for i, s in enumerate(thermo)},
            {total: 1} if len(held) else {liquid: 0, total: 1},
            {s: k for k, s in enumerate(snap)},
            {int(s): i for i, s in enumerate(held)},
            liquid,
            {
                "equilibrate": (q.T_start, q.T_start, E),
                "cool": (q.T_start, q.T_glass, total),
                "hold": (q.T_liquid, q.T_liquid, int(held[-1]) if len(held) else 0),
            },
        )

    @property
    def holds(self) -> bool:
        return bool(self.hold)

    @property
    def hold_end(self) -> int:
        """The hold's last step, where the liquid is saved."""
        return max(self.hold)

    def begin(self, k: int) -> int:
        """The step segment ``k`` starts at (in its phase's count): the previous segment's end in
        the same phase, else 0, except the cooling after the hold, which goes on from T_liquid's step."""
        phase, previous = self.segments[k][0], self.segments[k - 1] if k else ("equilibrate", 0)
        if previous[0] == phase:
            return previous[1]
        return self.liquid if (phase, previous[0]) == ("cool", "hold") else 0

    def global_step(self, k: int) -> int:
        """Steps since the random start at the end of segment ``k`` (names LAMMPS restart files)."""
        phase, end = self.segments[k]
        E = self.targets["equilibrate"][2]
        if phase == "equilibrate":
            return end
        if phase == "hold":
            return E + self.liquid + end
        return E + end + (self.hold_end if self.holds and end > self.liquid else 0)

    def fingerprint(self, spec: Spec, rng_states, *extra) -> str:
        """The identity of a quench (block) run on this plan: the generators' states, the campaign
        sections a quench depends on, the segments and the engine's ``extra`` (device, ...). A
        checkpoint of another fingerprint is not resumed."""
        return fingerprint(rng_states, spec.section_hash("system", "md", "quench"), self.segments, *extra)


def empty_hold(spec: Spec) -> dict[str, np.ndarray]:
    """The hold fields of a QuenchResult before the hold ran (NaN), empty without a hold."""
    n, N, dim = len(hold_steps(spec)), spec.system.n_particles, spec.dim
    if not n:
        return {"hold_fs": np.zeros(0), "hold_pe": np.zeros(0), "k_star": np.zeros(0), "hold_origin": np.zeros((0, 0))}
    return {
        "hold_fs": np.full(n, np.nan),
        "hold_pe": np.full(n, np.nan),
        "k_star": np.full(1, np.nan),
        "hold_origin": np.full((N, dim), np.nan),
    }


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
