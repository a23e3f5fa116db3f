"""`glassdist status DIR`: per stage done / failed / pending from the ledgers."""

from __future__ import annotations

import json
from pathlib import Path

from .stages import PIPELINE
from .store import Store
from .submit import job_column


def stage_counts(campaign_dir) -> dict[str, dict[str, int]]:
    """{stage: {'done': n, 'failed': n, 'pending': n}} for every stage with a ledger."""
    path = Path(campaign_dir) / "store.zarr"
    if not path.exists():
        return {}
    return {name: ledger.counts() for name, ledger in Store(campaign_dir, mode="r").ledgers().items()}


def print_status(campaign_dir, show_spec: bool = False) -> int:
    counts = stage_counts(campaign_dir)
    jobs = job_column(campaign_dir)  # SLURM job of each stage, when submitted
    print(f"{'stage':<12} {'done':>8} {'failed':>8} {'pending':>8}" + ("  slurm job" if jobs else ""))
    for name in PIPELINE:
        c = counts.get(name)
        if c is None:
            line = f"{name:<12} {'-':>8} {'-':>8} {'not started':>8}"
        else:
            line = f"{name:<12} {c['done']:>8} {c['failed']:>8} {c['pending']:>8}"
        print(line + (f"  {jobs.get(name, '-')}" if jobs else ""))
    if counts:
        store = Store(campaign_dir, mode="r")
        for name, ledger in store.ledgers().items():
            for task, attempts, error in ledger.failures()[:10]:
                last = error.strip().splitlines()[0] if error.strip() else "?"
                print(f"  {name} task {task} failed ({attempts} attempts): {last}")
        if show_spec:
            print(json.dumps(store.root.attrs["spec"], indent=1))
    return 0
