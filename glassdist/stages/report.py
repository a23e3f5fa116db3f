"""Stage `report`: every table and figure of the paper from the store, with the paper's values
beside ours, in ``DIR/report/`` (PNG figures, CSV tables, index.html). Science-free: the
numbers come from the analyze, train, inherent, quench and indicators results.

One task per artefact (glassdist.report.build.ARTEFACTS; ledger ``report``). An artefact whose
data are not in the store stays pending and is listed in index.html as missing, with the
command that makes its data; a later `glassdist report DIR` makes only what is not done yet
and rewrites index.html. The manifest (label, title, caption, file or missing reason of each
artefact) is the attribute ``manifest`` of group ``report``; the attribute ``artefacts`` lists the
artefact keys the ledger's tasks stand for (another list, from another glassdist: every artefact is
made anew).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hpc.farm import Deferred, run_farm

from ..spec import load
from ..store import Store

NAME = "report"


def prepare(campaign_dir: Path, spec) -> list[int]:
    """Check the spec, create the group and the ledger; return the artefacts to make (those not
    done, and done ones whose file is gone)."""
    from ..report.build import ARTEFACTS

    store = Store(campaign_dir)
    store.check_stage(NAME, spec)
    group = store.root.require_group(NAME)
    keys = [a.key for a in ARTEFACTS]
    if group.attrs.get("artefacts") != keys and store.stage_started(NAME):
        del store.root[f"ledger/{NAME}"]  # the artefacts changed (another glassdist): all are made anew
    group.attrs["artefacts"] = keys
    ledger = store.ledger(NAME, len(ARTEFACTS))
    (Path(campaign_dir) / NAME).mkdir(exist_ok=True)
    manifest = group.attrs.get("manifest", {})
    for t in np.flatnonzero(ledger.done_mask()):  # a done artefact whose file is gone (DIR/report deleted) again
        if not (Path(campaign_dir) / NAME / manifest.get(ARTEFACTS[t].key, {}).get("file", "")).is_file():
            ledger.reopen(int(t))
    return ledger.todo().tolist()


def run(campaign_dir, args=None) -> int:
    from ..report.build import ARTEFACTS, make, write_index
    from ..report.context import Context

    campaign_dir = Path(campaign_dir)
    spec = load(campaign_dir)
    todo = prepare(campaign_dir, spec)
    store = Store(campaign_dir)
    group, ledger, out = store.root[NAME], store.ledger(NAME), campaign_dir / NAME
    manifest = dict(group.attrs.get("manifest", {}))
    if not len(todo) and (out / "index.html").exists():
        print(f"{NAME}: already done ({out / 'index.html'})")
        return 0
    ctx = Context(campaign_dir, store, spec)

    def make_artefact(block, comm=None) -> None:
        """One artefact per task: its file and manifest entry; Deferred while its data are missing."""
        artefact = ARTEFACTS[block.tasks[0]]
        try:
            entry = make(ctx, artefact, out)
        except Exception as exc:  # a broken artefact never stops the others
            manifest[artefact.key] = {"label": artefact.label, "kind": artefact.kind, "missing": f"failed: {exc}"}
            raise
        finally:
            group.attrs["manifest"] = manifest
        manifest[artefact.key] = entry
        group.attrs["manifest"] = manifest
        if entry["missing"]:
            raise Deferred(entry["missing"])

    result = run_farm(todo, make_artefact, ledger, max_attempts=1, label=NAME)
    index = write_index(ctx, manifest, out)
    missing = [e["label"] for e in manifest.values() if e["missing"]]
    print(
        f"{NAME}: {index} ({len(ARTEFACTS) - len(missing)} of {len(ARTEFACTS)} tables and figures"
        + (f"; missing: {', '.join(missing)}" if missing else "")
        + ")"
    )
    if result.failed:
        print(
            f"{NAME}: failed to make {', '.join(ARTEFACTS[t].label for t in result.failed)}; "
            f"see `glassdist status {campaign_dir}`"
        )
    return 1 if result.failed else 0
