"""``md.engine = "warp"``: the MD engine protocol (quench, minimise and isoconfigurational runs of
a block of replicas) on Warp, all replicas of a block stepped together in each kernel launch.

Physics as the LAMMPS path (glassdist.md.lammps, quench, isoconf; structure.inherent): eq. (1),
``fix nvt`` chains, FIRE. Differences by design: the random start is NumPy's
(:func:`glassdist.md.initial.random_positions`, overlaps removed by FIRE on eq. (1)) and the
starting velocities are :func:`glassdist.md.isoconf.draw_velocities` scaled to T_start exactly
(as LAMMPS ``velocity create`` does). The ``comm`` argument is accepted and ignored: a block runs
in one process.

Checkpoints hold the full dynamic state (positions, velocities, image counts, reference positions
of the neighbour lists, chain variables, step, outputs so far), so a resumed block is bitwise
identical to an uninterrupted one on the same device and precision.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np
import warp as wp

from hpc.farm import Suspended

from ...errors import SpecError, TaskError
from ...spec import Spec
from ..checkpoint import fingerprint
from ..isoconf import DeltaStop, output_steps
from ..schedule import QuenchPlan, QuenchResult, empty_hold, record_hold
from .fire import fire_minimise
from .integrate import NoseHooverNVT
from .start import random_start
from .system import Batch, resolve_device

SEGMENT = 10_000  # longest run between two chances to checkpoint / stop (steps)


def _save(path: Path, **arrays) -> None:
    """np.savez into place atomically (a kill leaves the old or the new file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def _load(path: Path, fingerprint: str) -> dict | None:
    if not path.exists():
        return None
    with np.load(path) as z:
        if str(z["fingerprint"]) != fingerprint or not set(Batch.STATE) <= set(z.files):
            return None  # another run's, or older code's (no particle order): start the block afresh
        return {k: z[k] for k in z.files}


class WarpEngine:
    """The Warp MD engine for one campaign's ``md.device`` and ``md.precision``.

    A quench block checkpoints every ``md.checkpoint_every`` steps of each phase (isoconfigurational
    runs every ``propensity.checkpoint_every`` steps); a stop request, checked at least every
    SEGMENT steps, checkpoints too.
    """

    name = "warp"

    def __init__(self, spec: Spec):
        self.device = resolve_device(spec.md.device)
        self.precision = spec.md.precision

    # ---- protocol: capability and versions -------------------------------------------------
    def check(self, spec: Spec) -> None:
        if spec.md.device == "cuda" and wp.get_cuda_device_count() == 0:
            raise SpecError("md.device", "Warp sees no CUDA device here", 'set md.device = "auto" or "cpu"')
        if spec.inherent.min_style != "fire":
            raise SpecError(
                "inherent.min_style",
                "the warp engine minimises with FIRE only",
                'set inherent.min_style = "fire" or md.engine = "lammps"',
            )
        if spec.md.ranks_per_task != 1:
            raise SpecError(
                "md.ranks_per_task", "the warp engine runs a block in one process", "set md.ranks_per_task = 1"
            )

    def versions(self) -> dict[str, str]:
        return {"engine": "warp", "warp": wp.config.version, "device": self.device, "precision": self.precision}

    def _batch(self, spec: Spec, n: int) -> Batch:
        return Batch(spec, n, device=self.device, precision=self.precision)

    # ---- quench --------------------------------------------------------------------------
    def quench_block(
        self,
        spec: Spec,
        rngs: list[np.random.Generator],
        snapshots: list[bool],
        *,
        labels=None,
        comm=None,
        workdir: Path | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> list[QuenchResult]:
        """Random start, FIRE, then the segments of the quench's plan (glassdist.md.schedule.QuenchPlan:
        NVT at T_start, the linear NVT cooling to T_glass, the hold at T_L) for every replica (one
        per generator) at once; as glassdist.md.quench.quench on LAMMPS."""
        q, md, N, dim = spec.quench, spec.md, spec.system.n_particles, spec.dim
        B, should_stop, every = len(rngs), should_stop or (lambda: False), md.checkpoint_every
        keep = np.flatnonzero(np.asarray(snapshots, dtype=bool))  # replicas that keep cooling snapshots
        plan = QuenchPlan.of(spec, bool(len(keep)), min(SEGMENT, every))
        segments, total = plan.segments, plan.targets["cool"][2]
        batch = self._batch(spec, B)
        nvt = NoseHooverNVT(batch, md.dt, md.thermostat_damping)
        ckpt = Path(workdir) / "warp-quench.npz" if workdir is not None else None
        fingerprint = plan.fingerprint(
            spec, [r.bit_generator.state for r in rngs], list(snapshots), self.device, self.precision
        )
        P = len(plan.thermo)
        rec = {
            "th_T": np.full((B, P), np.nan),
            "th_pe": np.full((B, P), np.nan),
            "pos": np.full((B, 2, N, dim), np.nan),
            "pe": np.full((B, 2), np.nan),
            "T": np.full((B, 2), np.nan),
            "snaps": np.full((len(keep), len(plan.snapshots), N, dim), np.nan),
            **{k: np.stack([v] * B) for k, v in empty_hold(spec).items()},
        }
        saved = _load(ckpt, fingerprint) if ckpt is not None else None
        if saved is None:
            done = -1
            random_start(batch, rngs, q.T_start)
            nvt.start(*plan.targets["equilibrate"][:2], 0, plan.targets["equilibrate"][2])
        else:
            done = int(saved["done"])
            for key in rec:
                rec[key] = saved[key]
            batch.load({k: saved[k] for k in batch.STATE})
            nvt.load({k: saved[k] for k in nvt.STATE}, saved["step"], saved["schedule"])
        for index, (phase, stop) in enumerate(segments):
            if index <= done:
                continue
            if phase != (segments[index - 1][0] if index else "equilibrate"):  # fresh thermostats, as LAMMPS's
                T_begin, T_end, steps = plan.targets[phase]  # new fixes
                nvt.start(T_begin, T_end, 0, steps, step=plan.begin(index))
            while nvt.step < stop:
                nvt.run(min(SEGMENT, stop - nvt.step))
            if phase == "cool":
                self._record_quench(batch, plan, stop, keep, rec)
                if plan.holds and stop == plan.liquid:
                    self._record_hold(batch, rec, 0)
            elif phase == "hold":
                if stop in plan.hold:
                    self._record_hold(batch, rec, plan.hold[stop])
                if stop == plan.hold_end:  # the liquid, saved after the hold
                    rec["pos"][:, 0], rec["pe"][:, 0], rec["T"][:, 0] = (
                        batch.positions(),
                        rec["hold_pe"][:, -1],
                        batch.temperature(),
                    )
            stopping = should_stop()
            if ckpt is not None and index < len(segments) - 1 and (stopping or (stop and stop % every == 0)):
                _save(
                    ckpt,
                    fingerprint=fingerprint,
                    done=index,
                    step=nvt.step,
                    schedule=nvt.schedule,
                    **rec,
                    **batch.state(),
                    **nvt.state(),
                )
            if stopping and index < len(segments) - 1:
                raise Suspended(f"quench block checkpointed at cooling step {stop}")
        batch.check()
        targets = np.array([q.T_start + (q.T_glass - q.T_start) * s / total for s in plan.thermo])
        snaps = {b: rec["snaps"][k] for k, b in enumerate(keep)}
        results = [
            QuenchResult(
                rec["pos"][b],
                rec["pe"][b],
                rec["T"][b],
                rec["th_T"][b],
                targets,
                rec["th_pe"][b],
                snaps.get(b, np.zeros((0, N, dim))),
                **{k: rec[k][b] for k in ("hold_fs", "hold_pe", "k_star", "hold_origin")},
            )
            for b in range(B)
        ]
        for result in results:
            result.check("warp")
        if ckpt is not None and ckpt.exists():
            ckpt.unlink()
        return results

    @staticmethod
    def _record_hold(batch, rec, i) -> None:
        """Hold sample ``i`` of every replica (glassdist.md.quench.record_hold)."""
        pe, _ = batch.energy_virial()
        record_hold(rec, i, batch.unwrapped(), pe, batch.spec.box_length)

    @staticmethod
    def _record_quench(batch, plan: QuenchPlan, step: int, keep: np.ndarray, rec: dict) -> None:
        """What the plan keeps at cooling step ``step``, of every replica (snapshots of ``keep``)."""
        if step not in plan.thermo and step not in plan.saves and step not in plan.snapshots:
            return
        pe, _ = batch.energy_virial()
        T, pos = batch.temperature(), batch.positions()
        if step in plan.thermo:
            rec["th_T"][:, plan.thermo[step]], rec["th_pe"][:, plan.thermo[step]] = T, pe
        if step in plan.saves:
            cls = plan.saves[step]
            rec["pos"][:, cls], rec["pe"][:, cls], rec["T"][:, cls] = pos, pe, T
        if step in plan.snapshots:
            rec["snaps"][:, plan.snapshots[step]] = pos[keep]

    # ---- inherent structures -------------------------------------------------------------
    def minimise_block(
        self,
        spec: Spec,
        positions: np.ndarray,
        types: np.ndarray,
        *,
        labels=None,
        comm=None,
        workdir: Path | None = None,
        should_stop=None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """FIRE (spec.inherent.{etol, ftol, max_iterations}) of positions (B, N, dim) ->
        (E0 per particle (B,), minimised positions wrapped into the box (B, N, dim)). The block
        is minimised in one go; a stop request ends it within CHECK_EVERY iterations (raises
        Suspended; the rerun minimises the block from the start)."""
        if not np.array_equal(types, spec.types):
            raise ValueError("types must be the spec's species order (spec.types)")
        inh = spec.inherent
        batch = self._batch(spec, len(positions))
        batch.set_positions(positions)
        if fire_minimise(batch, spec.md.dt, inh.etol, inh.ftol, inh.max_iterations, should_stop) is None:
            raise Suspended(f"minimisation of {len(positions)} configurations stopped on request")
        pe, _ = batch.energy_virial()
        return pe, batch.positions()

    # ---- isoconfigurational runs ---------------------------------------------------------
    def isoconf_block(
        self,
        spec: Spec,
        start: np.ndarray,
        types: np.ndarray,
        velocities: np.ndarray,
        temperature: float,
        workdirs: list[Path],
        *,
        comm=None,
        should_stop: Callable[[], bool] | None = None,
    ) -> list[np.ndarray]:
        """NVT at ``temperature`` from ``start`` (N, dim) with each run's velocities (B, N, dim) ->
        per run the unwrapped positions (n_out, N, dim) at glassdist.md.isoconf.output_steps.
        Each run checkpoints into its workdir (``ckpt-warp.npz``, removed with the LAMMPS path's
        files by glassdist.md.isoconf.clear_checkpoint) every propensity.checkpoint_every steps.
        With propensity.until_delta a run stops as on the LAMMPS path (glassdist.md.isoconf.DeltaStop;
        its later outputs stay NaN) and the block stops when all of its runs have."""
        if not np.array_equal(types, spec.types):
            raise ValueError("types must be the spec's species order (spec.types)")
        p, md, B = spec.propensity, spec.md, len(velocities)
        should_stop = should_stop or (lambda: False)
        steps = output_steps(p.steps, p.outputs)
        stops = np.union1d(steps[1:], np.arange(p.checkpoint_every, p.steps, p.checkpoint_every))
        batch = self._batch(spec, B)
        nvt = NoseHooverNVT(batch, md.dt, md.thermostat_damping)
        paths = [Path(w) / "ckpt-warp.npz" for w in workdirs]
        until = DeltaStop(spec, start)
        prints = [
            fingerprint(
                start,
                types,
                velocities[b],
                steps,
                [temperature, md.dt, md.thermostat_damping],
                until.target,
                self.device,
                self.precision,
            )
            for b in range(B)
        ]
        saved = [_load(path, fp) for path, fp in zip(paths, prints)]
        out = np.full((B, len(steps), len(types), spec.dim), np.nan)
        last = np.full(B, len(steps) - 1)  # per run its last output (until_delta may stop a run earlier)
        running = np.ones(B, dtype=bool)  # runs not stopped by until_delta (the block steps on for them)
        if all(s is not None for s in saved) and len({int(s["step"]) for s in saved}) == 1:
            batch.load({k: np.stack([s[k] for s in saved]) for k in batch.STATE})
            nvt.load({k: np.stack([s[k] for s in saved]) for k in nvt.STATE}, saved[0]["step"], saved[0]["schedule"])
            for b, s in enumerate(saved):
                out[b], last[b], running[b] = s["out"], s["last"], s["running"]
        else:
            batch.set_positions(np.broadcast_to(start, (B, *start.shape)))
            batch.set_velocities(velocities)
            nvt.start(temperature, temperature, 0, p.steps)
            out[:, 0] = batch.unwrapped()
        for stop in stops[stops > nvt.step]:
            nvt.run(int(stop) - nvt.step)
            k = np.searchsorted(steps, stop)
            if steps[k] == stop:
                out[running, k] = batch.unwrapped()[running]
                done = np.flatnonzero(running)[until.reached(out[0, 0], out[running, k])]
                last[done], running[done] = k, False
            if stop == steps[-1] or not running.any():
                break
            stopping = should_stop()
            if stopping or stop % p.checkpoint_every == 0:
                state = {**batch.state(), **nvt.state()}
                for b, path in enumerate(paths):
                    _save(
                        path,
                        fingerprint=prints[b],
                        out=out[b],
                        last=last[b],
                        running=running[b],
                        step=nvt.step,
                        schedule=nvt.schedule,
                        **{k: v[b] for k, v in state.items()},
                    )
            if stopping:
                raise Suspended(f"isoconfigurational block checkpointed at step {stop}")
        batch.check()
        if not all(np.isfinite(x[: n + 1]).all() for x, n in zip(out, last)):
            raise TaskError("warp isoconfigurational runs produced non-finite positions")
        return list(out)
