"""Checkpoints of long LAMMPS runs (quench replicas, isoconfigurational runs).

A checkpoint is a LAMMPS restart file ``PREFIX-STEP.restart`` (positions, velocities, image
flags and the Nose-Hoover state of ``fix nvt``, exactly) and ``PREFIX.npz``: the step, what the
run recorded so far (named arrays) and a fingerprint of the run's inputs. The npz is renamed
into place after its restart file is complete and names it, so a kill at any moment leaves a
consistent pair; a checkpoint of other inputs (another seed, attempt or spec) is ignored.

Bitwise resumption needs one LAMMPS-run structure for the continuous and the resumed run: the
run is cut into segments at fixed steps (its output steps and the multiples of a checkpoint
interval), every segment is a separate ``run`` with a full setup (neighbour lists rebuilt), and
a checkpoint is written only at a segment boundary. On one rank per task the resumed run then
repeats the uninterrupted run's floating-point operations exactly. With several ranks per task,
read_restart may distribute atoms in another memory order: force sums differ in round-off and
trajectories diverge chaotically, staying statistically equivalent.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Callable

import numpy as np

from .lammps import LammpsSession


def fingerprint(*parts) -> str:
    """sha256 of arrays (their bytes) and other values (their repr): the identity of a run's inputs."""
    h = hashlib.sha256()
    for part in parts:
        h.update(np.ascontiguousarray(part).tobytes() if isinstance(part, np.ndarray) else repr(part).encode())
    return h.hexdigest()


class Checkpoint:
    """The checkpoint ``PREFIX.npz`` + ``PREFIX-STEP.restart`` of one run in ``directory``.

    Collective over the run's communicator: ``save`` on every rank (write_restart is
    collective); the npz is read and written by the run's rank 0 (``root``) only.
    """

    def __init__(self, directory: str | Path, fingerprint: str, *, root: bool = True, prefix: str = "ckpt"):
        self.dir, self.fingerprint, self.root, self.prefix = Path(directory), fingerprint, root, prefix
        self.npz = self.dir / f"{prefix}.npz"

    def restart(self, step: int) -> Path:
        return self.dir / f"{self.prefix}-{step}.restart"

    def load(self) -> tuple[int, dict[str, np.ndarray]] | None:
        """(step, recorded arrays) of a checkpoint of these inputs, or None."""
        if not self.npz.exists():
            return None
        with np.load(self.npz) as z:
            if str(z["fingerprint"]) != self.fingerprint:
                return None
            step = int(z["step"])
            arrays = {k: z[k] for k in z.files if k not in ("step", "fingerprint")}
        return (step, arrays) if self.restart(step).exists() else None

    def save(self, lmp: LammpsSession, step: int, **arrays: np.ndarray) -> None:
        lmp.run(f"write_restart {self.restart(step)}")
        if not self.root:
            return
        tmp = self.dir / f"{self.prefix}.tmp.npz"
        np.savez(tmp, step=step, fingerprint=self.fingerprint, **arrays)
        os.replace(tmp, self.npz)
        for old in self.dir.glob(f"{self.prefix}-*.restart"):
            if old != self.restart(step):
                old.unlink()

    def clear(self) -> None:
        """Remove the checkpoint files (once the run's results are stored)."""
        if self.root:
            clear_checkpoint(self.dir, self.prefix)


def clear_checkpoint(directory: str | Path, prefix: str = "ckpt") -> None:
    """Remove the checkpoint files ``PREFIX.npz``, ``PREFIX-*.restart`` in ``directory``."""
    for path in (*Path(directory).glob(f"{prefix}.*npz"), *Path(directory).glob(f"{prefix}-*.restart")):
        path.unlink()


def stopping(should_stop: Callable[[], bool], comm=None) -> bool:
    """``should_stop()`` agreed over the task's communicator (true when true on any rank)."""
    stop = bool(should_stop())
    return stop if comm is None else comm.allreduce(int(stop)) > 0
