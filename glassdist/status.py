"""`glassdist status DIR`: per stage done / failed / pending from the ledgers."""

from __future__ import annotations

import json
from pathlib import Path

from .errors import SpecError
from .spec import load
from .stages import PIPELINE, STAGES, stage_of_ledger
from .store import Store
from .submit import job_column


def stage_counts(campaign_dir) -> dict[str, dict[str, int]]:
    """{stage: {'done': n, 'failed': n, 'pending': n}} for every stage with a ledger."""
    path = Path(campaign_dir) / "store.zarr"
    if not path.exists():
        return {}
    return {name: ledger.counts() for name, ledger in Store(campaign_dir, mode="r").ledgers().items()}


def print_verify(campaign_dir) -> int:
    """`status --verify`: decode every chunk behind every done task; report damaged tasks, mark
    them pending. 0 when the store is whole, 1 otherwise."""
    from .integrity import verify

    store = Store(campaign_dir)
    bad = verify(store)
    for ledger, tasks in bad.items():
        stage = stage_of_ledger(ledger) or ledger
        for task, problems in sorted(tasks.items())[:20]:
            print(f"  {ledger} task {task}: {'; '.join(problems[:3])}" + (" ..." if len(problems) > 3 else ""))
        print(f"verify: {ledger}: {len(tasks)} done task(s) lost data: {sorted(tasks)}; marked pending: "
              f"run `glassdist {stage} {campaign_dir}` (or `glassdist run {campaign_dir}`) to redo them")
    if not bad:
        print(f"verify: every chunk behind every done task of {store.path} reads back"
              + (f" (reused results are checked in {store.upstream_dir()})" if store.reused_stages() else ""))
    return 1 if bad else 0


def _skipped(campaign_dir) -> dict[str, str]:
    """{stage: why it does not apply} from the campaign file ({} when it is absent or invalid)."""
    try:
        spec = load(campaign_dir)
    except SpecError:
        return {}
    return {name: STAGES[name].skipped(spec) for name in PIPELINE}


def print_status(campaign_dir, show_spec: bool = False, verify: bool = False) -> int:
    code = print_verify(campaign_dir) if verify else 0
    counts = stage_counts(campaign_dir)
    jobs = job_column(campaign_dir)  # SLURM job of each stage, when submitted
    reused = set(Store(campaign_dir, mode="r").reused_stages()) if counts else set()
    print(f"{'stage':<12} {'done':>8} {'failed':>8} {'pending':>8}" + ("  slurm job" if jobs else ""))
    skipped = _skipped(campaign_dir)
    for name in PIPELINE:
        c = counts.get(name)
        if c is None:
            line = f"{name:<12} {'-':>8} {'-':>8} {'skipped' if skipped.get(name) else 'not started':>8}"
        else:
            line = f"{name:<12} {c['done']:>8} {c['failed']:>8} {c['pending']:>8}"
        print(line + (f"  {jobs.get(name, '-')}" if jobs else "") + ("  (reused)" if name in reused else ""))
    for name, why in skipped.items():
        if why and name not in counts:
            print(f"skipped: {name}: {why}")
    if reused:
        store = Store(campaign_dir, mode="r")
        print(f"reused: the results of {', '.join(sorted(reused, key=PIPELINE.index))} are read from "
              f"{store.upstream_dir()} (`glassdist detach {campaign_dir}` copies them in)")
    if counts:
        store = Store(campaign_dir, mode="r")
        for name, ledger in store.ledgers().items():
            for task, attempts, error in ledger.failures()[:10]:
                last = error.strip().splitlines()[0] if error.strip() else "?"
                print(f"  {name} task {task} failed ({attempts} attempts): {last}")
        if show_spec:
            print(json.dumps(store.root.attrs["spec"], indent=1))
    return code
