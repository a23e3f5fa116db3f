"""What every figure and table of the report reads: the store, the spec, the paper system it
matches, the scale it ran at, and which stored results exist."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from ..fields.analysis import flips
from ..structure import indicators as registry
from ..spec import Spec
from ..store import Store
from . import paper_values as pv


class Missing(Exception):
    """An artefact's data are not in the store; the message says which command makes them."""


def ensembles_missing(ctx: "Context") -> str:
    """How to get the sub-ensembles of Table IV and Fig. 4."""
    p = ctx.spec.propensity
    return (
        f"needs propensity.main_samples > 0 and propensity.samples >= 3 main_samples (this campaign has "
        f"{p.samples} and {p.main_samples}; paper: 100 and 30): start a new campaign with `glassdist init "
        f"NEWDIR --from {ctx.campaign_dir} --set propensity.samples=100 --set propensity.main_samples=30`, then "
        f"`glassdist run NEWDIR`"
    )


def not_reached(delta: float, max_delta: float) -> str:
    """'not reached (max δ 0.2997)': the largest δ the runs reached, with the digits that show it
    is below ``delta``."""
    text = next((f"{max_delta:.{d}g}" for d in range(2, 8) if float(f"{max_delta:.{d}g}") < delta), f"{max_delta:.8g}")
    return f"not reached (max δ {text})"


@dataclass
class Context:
    campaign_dir: Path
    store: Store
    spec: Spec

    @cached_property
    def indicators(self) -> list[str]:
        """Names of the A analysed indicators, in the order of every (..., A) analyze array."""
        attrs = self.store.root["analyze"].attrs if "analyze" in self.store.root else {}
        return list(attrs.get("indicators") or [i.name for i in registry.analysed(self.spec)])

    def symbol(self, name: str) -> str:
        try:
            return registry.by_name(name).symbol
        except KeyError:  # a plugin indicator that is no longer installed
            return name

    def label(self, name: str, flip: bool) -> str:
        return f"1 - {self.symbol(name)}" if flip else self.symbol(name)

    @cached_property
    def pairs(self) -> list[tuple[int, int]]:
        """Index pairs of the Table S2 correlations (P,)."""
        return registry.pairs(len(self.indicators))

    @cached_property
    def flipped(self) -> np.ndarray:
        """(A,) bool: indicators shown and correlated as 1 - X."""
        return flips(self.spec.analyze.one_minus, self.indicators)

    @cached_property
    def system(self) -> str | None:
        """'KAM', 'ABM' or None (a system of the user's own)."""
        return pv.match_system(self.spec)

    def paper(self, table: dict):
        """The paper's entry of ``table`` for this system, or None."""
        return table.get(self.system) if self.system else None

    def paper_indicators(self, table: dict):
        """The paper's entry of a per-indicator table, or None unless this campaign analysed
        exactly the paper's indicators (Gamma, Upsilon, Theta)."""
        return self.paper(table) if tuple(self.indicators) == pv.INDICATORS else None

    def figure_number(self, kind: str) -> str:
        numbers = pv.FIGURE_NUMBERS
        return numbers[self.system][kind] if self.system else "/".join(n[kind] for n in numbers.values())

    @cached_property
    def scale(self) -> str:
        """The scale this campaign ran at, with the paper's."""
        s, q, p = self.spec.system, self.spec.quench, self.spec.propensity
        ref = pv.SCALE
        engine = dict(self.store.root["quench"].attrs.get("engine", {})) if "quench" in self.store.root else {}
        md = (
            f"MD: {engine.get('engine', '?')} on {engine.get('device', '?')}, {engine.get('precision', '?')}; "
            if engine
            else ""
        )
        return (
            md + f"N = {s.n_particles} (paper {ref['N']}), replicas = {q.replicas} "
            f"(paper {ref['replicas']}), N_s = {p.samples} runs (paper {ref['samples']})"
            + (
                f", the main Δ from the first {p.main_samples} of them (paper {ref['main_samples']})"
                if p.main_samples
                else ""
            )
            + ", "
            f"propensity steps = {p.steps:.3g} (paper {ref['steps']:.0e}), "
            f"cooling rate = {self.spec.quench.cooling_rate:g} (paper 8.33e-5), "
            f"epochs = {self.spec.train.epochs} (paper {ref['epochs']})"
        )

    # ---- stored data --------------------------------------------------------------
    def optional(self, path: str):
        """The array at ``path`` (read whole), or None when the store has none or it holds no number
        (an analysis made before it existed)."""
        root = self.store.root
        if path not in root:
            return None
        value = root[path][...]
        return value if np.isfinite(value).any() else None

    def member_means(self, cls: int) -> np.ndarray | None:
        """Each member's Pearson with each structural indicator at xi violin, mean over the
        configurations of Table S2 and Fig. 6 (correctly classified, every pair finite): (M, I);
        None with one member, none stored, or no such configuration."""
        members = self.optional("analyze/trust/members")  # (Rt, 2, M, I)
        if members is None or members.shape[2] < 2:
            return None
        p, correct = self.need("analyze", "analyze/pairs/pearson", "gradcam/correct")
        ok = correct[:, cls] & np.isfinite(p[:, cls]).all(axis=-1)
        if not ok.any():
            return None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a member without a finite value
            return np.nanmean(members[ok, cls], axis=0)

    def need(self, stage: str, *paths: str):
        """The arrays at ``paths`` (read whole), or Missing naming the command that makes them."""
        root = self.store.root
        absent = [p for p in paths if p not in root]
        if absent or self.store.stage_state(stage, self.spec).name != "done":
            raise Missing(f"run `glassdist {stage} {self.campaign_dir}` (or `glassdist run {self.campaign_dir}`)")
        return [root[p][...] for p in paths]

    @cached_property
    def tables(self) -> dict:
        attrs = self.store.root["analyze"].attrs if "analyze" in self.store.root else {}
        if "tables" not in attrs or self.store.stage_state("analyze", self.spec).name != "done":
            raise Missing(f"run `glassdist analyze {self.campaign_dir}`")
        return attrs["tables"]

    @cached_property
    def deltas(self) -> np.ndarray:
        return np.asarray(self.spec.analyze.deltas, dtype=float)

    @cached_property
    def temperatures(self) -> np.ndarray:
        """The propensity temperatures (nT,) the runs used (fixed, or multiples of the fitted T*)."""
        attrs = self.store.root["propensity"].attrs if "propensity" in self.store.root else {}
        if "temperatures" not in attrs:
            raise Missing(f"run `glassdist propensity {self.campaign_dir}`")
        return np.asarray(attrs["temperatures"], dtype=float)

    @cached_property
    def map_temperature(self) -> int:
        """Temperature index of the maps and scans (Figs. 1-2, S3-S8): the one whose runs reached
        the most analyze.deltas, and among those the largest delta, for propensity configuration 0."""
        reached, delta = self.need("analyze", "analyze/dynamics/reached", "analyze/dynamics/delta")
        return int(np.lexsort((np.nanmax(delta[0], axis=-1), reached[0].sum(axis=-1)))[-1])

    @cached_property
    def xi(self) -> dict:
        """The coarse-graining lengths the analysis used: {rule, Delta, alpha, violin, Delta_at,
        alpha_star, notes} (glassdist.stages.analyze)."""
        return self.tables["III"]["xi"]

    @cached_property
    def glass_positions(self) -> np.ndarray:
        """The glass of propensity configuration 0, (N, dim)."""
        replica = int(self.store.root["analyze"].attrs["replicas"][0])
        return self.store.root["quench/positions"][replica, 1]
