"""A task farm on a Dask cluster with the MPI farm's contract (hpc.farm).

``task(*args, task_id)`` runs on a Dask worker, writes its own data and returns its seconds;
the client writes the done-mark after it returned, retries a failed task with the next
attempt number up to ``max_attempts``, and records the last error of a task that never
succeeded. Other tasks go on whatever happens to one.
"""

from __future__ import annotations

from typing import Callable

from .dask_cluster import dask_client
from .farm import FarmResult
from .ledger import Ledger
from .progress import Progress


def run_dask_farm(tasks, task: Callable[..., float], ledger: Ledger, *, args: tuple = (),
                  client_options: dict | None = None, max_attempts: int = 3,
                  label: str = "tasks") -> FarmResult:
    """Run every id in ``tasks`` as ``task(*args, id)`` on the cluster of ``dask_client(**client_options)``."""
    tasks = [int(t) for t in tasks]
    result, progress = FarmResult(), Progress(label, len(tasks))
    if tasks:
        with dask_client(**(client_options or {})) as client:
            from distributed import as_completed

            def submit(task_id, attempt):
                return client.submit(task, *args, task_id, pure=False, key=f"{label}-{task_id}-{attempt}")

            futures = {submit(t, 0): (t, 0) for t in tasks}
            running = as_completed(list(futures))
            for future in running:
                task_id, attempt = futures.pop(future)
                if future.status == "finished":
                    ledger.mark_done(task_id, attempt + 1, future.result())
                    result.done.append(task_id)
                    progress.update(done=1)
                    continue
                error = f"{type(future.exception()).__name__}: {future.exception()}"
                if attempt + 1 < max_attempts:
                    progress.note(f"task {task_id} attempt {attempt + 1} failed: {error}; retrying")
                    retry = submit(task_id, attempt + 1)
                    futures[retry] = (task_id, attempt + 1)
                    running.add(retry)
                else:
                    ledger.mark_failed(task_id, attempt + 1, error)
                    result.failed.append(task_id)
                    progress.update(failed=1)
    progress.close()
    return result
