"""The LAMMPS engine: one LAMMPS instance per replica or run on the task's communicator (CPU);
a block's items run one after another. Every replica's and run's LAMMPS input is kept in the
work directory, rerunnable with the ``lmp`` binary."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hpc.farm import Suspended

from ..spec import Spec
from .checkpoint import clear_checkpoint, stopping
from .isoconf import run_isoconf
from .lammps import lammps_version, require_styles
from .minimise import minimise
from .quench import checkpoint_prefix, quench
from .schedule import QuenchResult


def _leader(comm) -> bool:
    return comm is None or comm.Get_rank() == 0


class LammpsEngine:
    name = "lammps"

    def check(self, spec: Spec) -> None:
        require_styles(spec)

    def versions(self) -> dict[str, str]:
        return {"engine": self.name, "lammps": lammps_version(), "device": "cpu", "precision": "float64"}

    def quench_block(
        self, spec, rngs, snapshots, *, labels=None, comm=None, workdir=None, should_stop=None
    ) -> list[QuenchResult]:
        """Replicas one after another; each checkpoints in ``workdir`` (when given) and a
        finished replica keeps its results there until the whole block is done, so a
        suspended block resumes where it stopped. The checkpoints are removed on return."""
        labels = labels or [str(b) for b in range(len(rngs))]
        out = []
        for rng, snap, label in zip(rngs, snapshots, labels):
            res = quench(
                spec,
                rng,
                snapshots=snap,
                comm=comm,
                workdir=workdir,
                label=label,
                should_stop=should_stop or (lambda: False),
            )
            if res is None:
                raise Suspended(f"quench {label} checkpointed in {workdir}")
            out.append(res)
        if workdir is not None and _leader(comm):
            for label in labels:
                clear_checkpoint(workdir, checkpoint_prefix(label))
        return out

    def minimise_block(self, spec, positions, types, *, labels=None, comm=None, workdir=None, should_stop=None):
        """Minimisations one after another, never checkpointed inside LAMMPS's minimiser: a
        stop request ends a one-rank minimisation at once (see :func:`minimise`), otherwise the
        block stops before its next item; either way it raises Suspended and its rerun starts
        the block over."""
        labels = labels or [str(b) for b in range(len(positions))]
        workdir = Path(workdir)
        out = []
        for x, label in zip(positions, labels):
            if stopping(should_stop or (lambda: False), comm):
                raise Suspended(f"minimisation stopped before {label}")
            out.append(
                minimise(
                    spec,
                    x,
                    types,
                    workdir / f"{label}.data",
                    comm=comm,
                    input_path=workdir / f"{label}.in" if _leader(comm) else None,
                )
            )
        return np.array([e for e, _ in out]), np.stack([x for _, x in out])

    def isoconf_block(
        self, spec, start, types, velocities, temperature, workdirs, *, comm=None, should_stop=None
    ) -> list[np.ndarray]:
        out = []
        for v, workdir in zip(velocities, workdirs):
            res = run_isoconf(
                spec, start, types, v, temperature, workdir, comm=comm, should_stop=should_stop or (lambda: False)
            )
            if res.status == "suspended":
                raise Suspended(f"isoconfigurational run in {workdir} checkpointed")
            out.append(res.positions)
        return out
