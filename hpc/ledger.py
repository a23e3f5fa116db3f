"""The task ledger: per-task state, attempts, timing and error, stored in a Zarr group.

Each array has one chunk per task, so no two tasks ever write the same chunk. A task's
done-mark (``state == DONE``) is written after its data and its timing, and it is the only
thing that says "done": a task killed mid-way keeps its previous state and is redone whole.
"""

from __future__ import annotations

import time

import numpy as np
import zarr

PENDING, DONE, FAILED = 0, 1, 2
STATE_NAMES = {PENDING: "pending", DONE: "done", FAILED: "failed"}


class Ledger:
    """Task states of one stage, shape (n_tasks,) each: state, attempts, seconds, finished, error."""

    def __init__(self, group: zarr.Group):
        self.group = group
        self.state = group["state"]
        self.attempts = group["attempts"]
        self.seconds = group["seconds"]
        self.finished = group["finished"]
        self.error = group["error"]

    @classmethod
    def create(cls, parent: zarr.Group, name: str, n_tasks: int) -> "Ledger":
        """Open the ledger ``parent/name``, creating it for n_tasks when absent."""
        if name in parent:
            group = parent[name]
            if group["state"].shape != (n_tasks,):
                raise ValueError(f"ledger {name} has {group['state'].shape[0]} tasks, expected {n_tasks}")
            return cls(group)
        group = parent.require_group(name)
        for key, dtype, fill in (
            ("state", "int8", PENDING),
            ("attempts", "int16", 0),
            ("seconds", "float64", np.nan),
            ("finished", "float64", np.nan),
        ):
            group.create_array(key, shape=(n_tasks,), chunks=(1,), dtype=dtype, fill_value=fill)
        group.create_array("error", shape=(n_tasks,), chunks=(1,), dtype=str, fill_value="")
        return cls(group)

    def __len__(self) -> int:
        return self.state.shape[0]

    def states(self) -> np.ndarray:
        """State of every task, shape (n_tasks,)."""
        return self.state[:]

    def done_mask(self) -> np.ndarray:
        return self.states() == DONE

    def todo(self) -> np.ndarray:
        """Task ids not done, ascending."""
        return np.flatnonzero(self.states() != DONE)

    def mark_done(self, task: int, attempts: int, seconds: float) -> None:
        """Write timing, then the done-mark (call only after the task's data are written)."""
        self.attempts[task] = attempts
        self.seconds[task] = seconds
        self.finished[task] = time.time()
        self.error[task] = ""
        self.state[task] = DONE

    def reopen(self, task: int) -> None:
        """Mark a done task pending again (its data were lost), rewound to its successful attempt:
        the redo uses that attempt's seed and so reproduces the lost data."""
        self.state[task] = PENDING  # first: a kill between the two writes leaves a valid pending task
        self.attempts[task] = max(int(self.attempts[task]) - 1, 0)

    def reopen_all(self) -> None:
        """Mark every task pending, keeping its attempt count: the redo is a new attempt (its own
        seed), so whoever fingerprints the ledger (states and attempts) sees the results changed."""
        self.state[:] = PENDING

    def mark_failed(self, task: int, attempts: int, error: str) -> None:
        self.attempts[task] = attempts
        self.error[task] = error[-2000:]
        self.state[task] = FAILED

    def counts(self) -> dict[str, int]:
        s = self.states()
        return {name: int((s == code).sum()) for code, name in STATE_NAMES.items()}

    def failures(self) -> list[tuple[int, int, str]]:
        """(task, attempts, last error) of every failed task."""
        ids = np.flatnonzero(self.states() == FAILED)
        return [(int(i), int(self.attempts[i]), str(self.error[i])) for i in ids]
