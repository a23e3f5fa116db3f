"""`glassdist status DIR`: per stage done / failed / pending from the ledgers."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import UsageError
from ..spec import load
from ..pipeline import PIPELINE, STAGES, stage_of_ledger
from ..store import StageState, Store
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
    from ..integrity import verify

    store = Store(campaign_dir)
    bad = verify(store, load(campaign_dir))
    for ledger, tasks in bad.items():
        stage = stage_of_ledger(ledger) or ledger
        for task, problems in sorted(tasks.items())[:20]:
            print(f"  {ledger} task {task}: {'; '.join(problems[:3])}" + (" ..." if len(problems) > 3 else ""))
        print(
            f"verify: {ledger}: {len(tasks)} done task(s) lost data: {sorted(tasks)}; marked pending: "
            f"run `glassdist {stage} {campaign_dir}` (or `glassdist run {campaign_dir}`) to redo them"
        )
    if not bad:
        print(
            f"verify: every chunk behind every done task of {store.path} reads back"
            + (f" (reused results are checked in {store.upstream_dir()})" if store.reused_stages() else "")
        )
    return 1 if bad else 0


def print_status(campaign_dir, show_spec: bool = False, verify: bool = False) -> int:
    """The stage table: task counts and each stage's state (Store.stage_state against the
    campaign file as it is now: a stage whose campaign sections changed shows as stale, and the
    exit code is then 2, as `run` would refuse). A missing directory or a campaign file that
    does not validate is exit 2 (UsageError, SpecError)."""
    if not Path(campaign_dir).is_dir():
        raise UsageError(
            f"{campaign_dir} is not a directory: give a campaign directory (`glassdist init "
            f"{campaign_dir} --preset demo-kam` makes one)"
        )
    spec = load(campaign_dir)  # validated like `run`: a broken campaign file is exit 2
    code = print_verify(campaign_dir) if verify else 0
    counts = stage_counts(campaign_dir)
    store = Store(campaign_dir, mode="r") if counts else None
    jobs = job_column(campaign_dir)  # SLURM job of each stage, when submitted
    reused = set(store.reused_stages()) if store else set()
    skipped = {name: STAGES[name].skipped(spec) for name in PIPELINE}  # stages that do not apply: why
    states = {
        name: StageState("skipped", skipped[name])
        if skipped[name] and name not in counts
        else store.stage_state(name, spec)
        if store
        else StageState("not started")
        for name in PIPELINE
    }
    print(f"{'stage':<12} {'done':>8} {'failed':>8} {'pending':>8}" + ("  slurm job" if jobs else "") + "  state")
    width = max((len(j) for j in jobs.values()), default=0)
    for name, state in states.items():
        c = counts.get(name)
        line = f"{name:<12} " + (
            f"{'-':>8} {'-':>8} {'-':>8}" if c is None else f"{c['done']:>8} {c['failed']:>8} {c['pending']:>8}"
        )
        print(
            line
            + (f"  {jobs.get(name, '-'):<{width}}" if jobs else "")
            + f"  {state.name}"
            + (" (reused)" if name in reused else "")
        )
    for name, why in skipped.items():
        if why and name not in counts:
            print(f"skipped: {name}: {why}")
    if store is None:
        return code
    stale = {name: state.reason for name, state in states.items() if state.name == "stale"}
    for name, reason in stale.items():
        print(f"stale: {name}: {reason}")
    changed = any(reason.startswith("campaign.toml changed") for reason in stale.values())
    if changed:  # `run` refuses such a campaign (exit 2): so does status, after showing why
        print(
            f"  `glassdist run {campaign_dir}` refuses those: restore the old values (`glassdist status "
            f"{campaign_dir} --spec` prints them) or derive a new campaign (`glassdist init NEWDIR --from "
            f"{campaign_dir} --set ...`)"
        )
        code = 2
    elif stale:
        print(f"  `glassdist run {campaign_dir}` recomputes them")
    for line in stage_notes(store):
        print(line)
    if reused:
        print(
            f"reused: the results of {', '.join(sorted(reused, key=PIPELINE.index))} are read from "
            f"{store.upstream_dir()} (`glassdist detach {campaign_dir}` copies them in)"
        )
    for name, ledger in store.ledgers().items():
        for task, attempts, error in ledger.failures()[:10]:
            last = error.strip().splitlines()[0] if error.strip() else "?"
            print(f"  {name} task {task} failed ({attempts} attempts): {last}")
    if show_spec:
        print(json.dumps(store.root.attrs["spec"], indent=1))
    return code


def stage_notes(store: Store) -> list[str]:
    """One line per stored result a user should know about: the T* fit (or why it failed) and
    the model the Grad-CAM explains."""
    from ..stages.inherent import stored_fit

    fit = stored_fit(store)
    lines = [f"inherent: {fit.summary(store.dir)}"] if fit else []
    model = store.root["gradcam"].attrs.get("model") if "gradcam" in store.root else None
    if model:
        whose = "this campaign's own model" if model["own"] else "the model of another campaign (--model)"
        lines.append(
            f"gradcam: explains {whose} {model['path']} (sha256 {model['sha256'][:12]})"
            + ("" if model["own"] else f"; `glassdist gradcam {store.dir} --discard` drops it")
        )
    return lines
