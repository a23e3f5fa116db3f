"""Derived campaigns: ``glassdist init NEW --from OLD [--set ...]`` reuses the results of every
stage of OLD whose campaign sections the change leaves equal (``STAGES[name].values``), and
``glassdist detach NEW`` copies them in.

Nothing big is copied: NEW's store gets its own root attributes and real copies of the reused
stages' ledgers, and each reused stage's store group (``store.zarr/<stage>``) and files
(``DIR/<stage>``, ``DIR/lammps/<stage>``) are relative symbolic links into OLD, so every reader
(stages, Dask workers, `export`, `report`) sees them as its own. The root attribute
``upstream`` records ``path`` (OLD relative to NEW), ``abspath``, ``stages`` and, per stage,
a ``fingerprint`` of OLD's results (the hash of the sections they were computed with and the
state and attempts of every task: under the campaign seed, what determines the data). Every
command on NEW checks first (:func:`check`) that OLD is still there with the same
fingerprints (and, when OLD is derived itself, OLD's upstream): if not, it refuses (exit 2)
saying what is gone and how to fix it. Reused stages are never recomputed in NEW (their data
are OLD's). See docs/store.md.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from .. import spec as specmod
from ..errors import StaleResultsError, UsageError
from ..pipeline import PIPELINE, STAGES
from ..store import Store


def fingerprint(store: Store, stage: str) -> str:
    """Hash of a stage's results in a store (Store.fingerprint)."""
    return store.fingerprint(stage)


def reusable(old: Store, new_spec) -> list[str]:
    """Stages of OLD that NEW can reuse: complete, computed with the values NEW has for their
    sections (ignored keys aside) and the same seed, and every stage they read reusable too."""
    records = old.root.attrs.get("stages", {})
    same_seed = old.root.attrs["spec"]["campaign"]["seed"] == new_spec.campaign.seed
    out: list[str] = []
    for name in PIPELINE:
        stage, record = STAGES[name], records.get(name)
        if not (
            same_seed
            and record
            and old.stage_state(name).name == "done"
            and all(n in out for n in stage.needs_of(new_spec))
        ):
            continue
        if stage.computed_with(record, new_spec):
            out.append(name)
    return out


def _link(target: Path, link: Path) -> None:
    """A relative symbolic link ``link`` -> ``target``."""
    link.symlink_to(os.path.relpath(target, link.parent), target_is_directory=True)


def _links(campaign_dir: Path, stage: str) -> list[Path]:
    """The paths a reused stage occupies in a campaign: its store group and its files."""
    d = Path(campaign_dir)
    return [d / "store.zarr" / stage, d / stage, d / "lammps" / stage]


def _point(new_dir: Path, old_dir: Path, stages: list[str]) -> None:
    """(Re)create the links of the reused stages of NEW into OLD."""
    for stage in stages:
        for link, target in zip(_links(new_dir, stage), _links(old_dir, stage)):
            if link.is_symlink():
                link.unlink()
            if target.exists():
                link.parent.mkdir(parents=True, exist_ok=True)
                _link(target, link)


def _record(new: Store, old_dir: Path, stages: list[str], fingerprints: dict) -> None:
    new.root.attrs["upstream"] = {
        "path": os.path.relpath(old_dir.resolve(), new.dir.resolve()),
        "abspath": str(old_dir.resolve()),
        "stages": stages,
        "fingerprints": fingerprints,
        "seed": new.root.attrs["spec"]["campaign"]["seed"],
    }


def _open_upstream(old_dir: Path) -> Store:
    if not (old_dir / "campaign.toml").is_file() or not (old_dir / "store.zarr").is_dir():
        raise UsageError(f"{old_dir} is not a campaign with results (no campaign.toml or store.zarr)")
    old = Store(old_dir, mode="r")
    check(old)
    return old


def derive(new_dir: str | Path, old_dir: str | Path, overrides: list[str]) -> list[str]:
    """Write NEW/campaign.toml (OLD's with the overrides) and NEW's store reusing what it can.
    Returns the reused stages."""
    new_dir, old_dir = Path(new_dir), Path(old_dir)
    old = _open_upstream(old_dir)
    text = specmod.apply_overrides((old_dir / "campaign.toml").read_text(), overrides)
    spec = specmod.loads(text, source=f"{old_dir / 'campaign.toml'} with --set")
    if (new_dir / "store.zarr").exists():
        raise UsageError(f"{new_dir} already has results; derive into a new directory")
    stages = reusable(old, spec)
    new_dir.mkdir(parents=True, exist_ok=True)
    (new_dir / "campaign.toml").write_text(text)
    if not stages:
        return stages

    new = Store.create(new_dir, spec)
    records = old.root.attrs["stages"]
    # first the record (an interrupted derivation is then refused, never taken for an independent one)
    _record(new, old_dir, stages, {name: fingerprint(old, name) for name in stages})
    # an older store's records lack the values: those of NEW, which the hash showed equal
    values = {name: {"values": {s: spec.raw[s] for s in STAGES[name].sections}} for name in stages}
    new.root.attrs.update(
        {
            "stages": {name: {**values[name], **records[name]} for name in stages},
            "completed": {name: STAGES[name].section_hash(spec) for name in stages},
        }
    )
    new.root.require_group("ledger")
    for name in stages:
        for ledger in STAGES[name].ledgers:
            shutil.copytree(old.path / "ledger" / ledger, new.path / "ledger" / ledger)
    _point(new_dir, old_dir, stages)
    return stages


def relink(new_dir: str | Path, old_dir: str | Path) -> list[str]:
    """Point a derived campaign at its upstream campaign again (after one of them moved): the
    upstream must hold the very results recorded at derivation."""
    new_dir, old_dir = Path(new_dir), Path(old_dir)
    new = Store(new_dir)
    up = new.upstream()
    old = _open_upstream(old_dir)
    _compare(old, up, f"{old_dir}")
    _point(new_dir, old_dir, up["stages"])
    _record(new, old_dir, up["stages"], up["fingerprints"])
    return up["stages"]


def _compare(old: Store, up: dict, where: str) -> None:
    """Refuse when the upstream results differ from the fingerprints recorded at derivation."""
    changed = [s for s in up["stages"] if not old.stage_started(s) or fingerprint(old, s) != up["fingerprints"][s]]
    if changed:
        raise UsageError(
            f"the results of {', '.join(changed)} in {where} are not those this campaign was derived "
            f"from (recomputed or changed since): results here may be built on them, so they are "
            f"not used. Derive a new campaign: `glassdist init NEWDIR --from {where} --set ...`"
        )


def check(store: Store, spec=None) -> None:
    """Refuse (UsageError, exit 2) when a derived campaign's upstream results are gone, moved or
    changed (checks the upstream's own upstream too), or when ``spec`` (its campaign file) no
    longer has the values the reused results were computed with. No-op for an independent campaign."""
    up = store.upstream()
    if not up:
        return
    if spec is not None:
        records = store.root.attrs["stages"]
        for name in up["stages"]:
            stage = STAGES[name]
            before, now = stage.values(spec.with_new_keys(records[name]["values"])), stage.values(spec.raw)
            changed = [s for s in stage.sections if before[s] != now[s]]
            changed += ["campaign.seed"] if spec.campaign.seed != up["seed"] else []
            if changed:
                raise StaleResultsError(
                    f"campaign.toml changed [{', '.join(changed)}], with which the '{name}' results this campaign "
                    f"reuses from {up['path']} were computed: restore the values (`glassdist status {store.dir} "
                    f"--spec`), or derive a new campaign: `glassdist init NEWDIR --from {store.dir} --set ...`"
                )
    old_dir = store.dir / up["path"]
    dangling = [str(p) for s in up["stages"] for p in _links(store.dir, s) if p.is_symlink() and not p.exists()]
    dangling += [
        str(store.path / s) for s in up["stages"] if not (store.path / s).exists() and not (store.path / s).is_symlink()
    ]  # an interrupted derivation
    fix = (
        f"if it moved, `glassdist init {store.dir} --from NEWPATH` points this campaign to it again; "
        f"with it in place, `glassdist detach {store.dir}` copies the reused data in"
    )
    if not (old_dir / "store.zarr").is_dir() or dangling:
        raise UsageError(
            f"{store.dir} reuses the results of {', '.join(up['stages'])} from {up['path']} (recorded "
            f"as {up['abspath']}), which is not there any more"
            + (f" ({len(dangling)} dangling link(s), e.g. {dangling[0]})" if dangling else "")
            + f": {fix}"
        )
    old = Store(old_dir, mode="r")
    _compare(old, up, str(old_dir))
    check(old)


def detach(campaign_dir: str | Path) -> list[str]:
    """Copy the reused results into the campaign (each link replaced by a real copy), after
    checking they are the recorded ones; then the campaign is independent. Rerun after an
    interruption, it finishes the job."""
    store = Store(campaign_dir)
    up = store.upstream()
    if not up:
        raise UsageError(f"{campaign_dir} is not a derived campaign (it reuses nothing): nothing to detach")
    for stage in up["stages"]:
        for link in _links(store.dir, stage):
            tmp = link.with_name(f".{link.name}.detach")
            if link.is_symlink():
                check(store)
                shutil.rmtree(tmp, ignore_errors=True)
                shutil.copytree(link.resolve(), tmp, symlinks=False)
                link.unlink()
            if tmp.exists() and not link.exists():
                tmp.rename(link)
    store.root.attrs["derived_from"] = {k: up[k] for k in ("abspath", "stages")}
    del store.root.attrs["upstream"]
    return list(up["stages"])
