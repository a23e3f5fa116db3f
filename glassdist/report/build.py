"""The report's artefacts (every table and figure of the paper), making one, and index.html.

``ARTEFACTS`` lists them in the order of the page. ``make(ctx, artefact, out_dir)`` writes one
artefact (PNG, or CSV for a table) and returns its manifest entry (label, title, caption,
file), or an entry saying it is missing and which command makes its data. ``write_index``
renders the manifest as ``index.html`` (tables rendered from their CSV files).
"""

from __future__ import annotations

import csv
import html
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..pipeline import STAGES
from . import departures, figures, tables, trust
from .context import Context, Missing


@dataclass(frozen=True)
class Artefact:
    key: str  # file stem in DIR/report/
    label: str  # the paper's number
    make: Callable
    kind: str  # "table" or "figure"
    needs: tuple[str, ...] = ()  # stages whose skipping (glassdist.stages.Stage.skipped) leaves it unmade


T, F = "table", "figure"
P = ("propensity",)
ARTEFACTS = (
    Artefact("departures", "Departures from the protocol of the paper", departures.table_departures, T),
    Artefact("table_I", "Table I", tables.table_i, T),
    Artefact("table_II", "Table II", tables.table_ii, T),
    Artefact("gamma_trust", "Evidence behind Γ: training ensemble, sanity checks, baselines", trust.table_trust, T),
    Artefact("fig_gamma_trust", "Evidence behind Γ: member agreement and baselines", trust.fig_trust, F),
    Artefact("liquid_hold", "Liquid hold", tables.table_hold, T),
    Artefact("training", "Training curves (Sec. IV A)", figures.fig_training, F),
    Artefact("fig_1_2", "Fig. 1 (KAM) / Fig. 2 (ABM)", figures.fig_maps, F, P),
    Artefact("table_III", "Table III", tables.table_iii, T, P),
    Artefact("propensity_runs", "Propensity runs", tables.table_runs, T, P),
    Artefact("fig_3", "Fig. 3", figures.fig_correlation_delta, F, P),
    Artefact("fig_4", "Fig. 4", figures.fig_ensembles, F, P),
    Artefact("table_IV", "Table IV", tables.table_iv, T, P),
    Artefact("fig_5", "Fig. 5", figures.fig_gradcam_delta, F, P),
    Artefact("fig_6", "Fig. 6", figures.fig_violins, F),
    Artefact("fig_7", "Fig. 7", figures.fig_indicators_delta, F, P),
    Artefact("table_V", "Table V", tables.table_v, T, P),
    Artefact("fig_8", "Fig. 8", figures.fig_structure_correlation, F),
    Artefact("fig_S3", "Fig. S3", figures.fig_xi_scan_cg, F, P),
    Artefact("table_S1", "Table S1", tables.table_s1, T, P),
    Artefact("fig_S4_S5", "Fig. S4 (KAM) / Fig. S5 (ABM)", figures.fig_propensity_maps, F, P),
    Artefact("fig_S6_S7", "Fig. S6 (KAM) / Fig. S7 (ABM)", figures.fig_indicator_maps, F, P),
    Artefact("fig_S8", "Fig. S8", figures.fig_xi_scan_bare, F, P),
    Artefact("fig_S9", "Fig. S9", figures.fig_energy, F, ("inherent",)),
    Artefact("fig_S10", "Fig. S10", figures.fig_rdf, F),
    Artefact("table_S2", "Table S2", tables.table_s2, T),
    Artefact("table_glassbench", "GlassBench correlations", tables.table_glassbench, T, P),
)


def make(ctx: Context, artefact: Artefact, out_dir: Path) -> dict:
    """Write one artefact into out_dir; its manifest entry ('missing' set when data are absent)."""
    entry = {"label": artefact.label, "kind": artefact.kind, "title": "", "caption": "", "file": "", "missing": ""}
    skipped = [why for why in (STAGES[s].skipped(ctx.spec) for s in artefact.needs) if why]
    if skipped:
        entry["missing"] = f"not made for this campaign: {skipped[0]}"
        return entry
    try:
        if artefact.kind == F:
            name = f"{artefact.key}.png"
            entry.update(caption=artefact.make(ctx, out_dir / name), file=name)
        else:
            table = artefact.make(ctx)
            name = f"{artefact.key}.csv"
            with open(out_dir / name, "w", newline="") as fh:
                csv.writer(fh).writerows([table.columns, *table.rows])
            entry.update(title=table.title, caption=table.note, file=name)
    except Missing as exc:
        entry["missing"] = str(exc)
    return entry


def _table_html(path: Path) -> str:
    with open(path, newline="") as fh:
        header, *rows = list(csv.reader(fh))
    head = "".join(f"<th>{html.escape(c)}</th>" for c in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


STYLE = """body{font-family:sans-serif;max-width:1100px;margin:auto;padding:1em}
table{border-collapse:collapse;font-size:85%;margin:.5em 0}td,th{border:1px solid #bbb;padding:2px 6px}
tr:nth-child(even){background:#f4f4f4}img{max-width:100%}.missing{color:#a00}\
.verdict{border-left:4px solid #c60;padding-left:.6em}.scale{color:#555}"""


def write_index(ctx: Context, manifest: dict[str, dict], out_dir: Path) -> Path:
    """DIR/report/index.html: every artefact of the manifest in ARTEFACTS order."""
    spec = ctx.spec
    system = f"the paper's {ctx.system}" if ctx.system else "a system of its own (no paper values to compare)"
    parts = [
        f"<!doctype html><meta charset='utf-8'><title>glassdist report: {html.escape(spec.campaign.name)}</title>",
        f"<style>{STYLE}</style>",
        f"<h1>glassdist report: {html.escape(spec.campaign.name)}</h1>",
        f"<p>{html.escape(spec.campaign.description)}</p>",
        f"<p>Campaign system: {system}, dimension {spec.dim}. Paper: Oyama, Koyama, Kawasaki, "
        "<i>What do deep neural networks find in disordered structures of glasses?</i></p>",
        f"<p class='scale'>Scale: {html.escape(ctx.scale)}</p>",
    ]
    sentence = trust.verdict(ctx)
    if sentence:
        parts.append(
            f"<p class='verdict'><b>Γ:</b> {html.escape(sentence)} (<a href='#gamma_trust'>the evidence</a>)</p>"
        )
    parts.append("<h2>Contents</h2><ul>")
    for a in ARTEFACTS:
        e = manifest[a.key]
        state = f" <span class='missing'>missing: {html.escape(e['missing'])}</span>" if e["missing"] else ""
        parts.append(f"<li><a href='#{a.key}'>{html.escape(e['label'])}</a>{state}</li>")
    parts.append("</ul>")
    for a in ARTEFACTS:
        e = manifest[a.key]
        parts.append(f"<h2 id='{a.key}'>{html.escape(e['label'])}</h2>")
        if e["missing"]:
            parts.append(f"<p class='missing'>Missing (its data are not in the store): {html.escape(e['missing'])}</p>")
            continue
        if e["kind"] == T:
            parts.append(
                f"<h3>{html.escape(e['title'])}</h3>{_table_html(out_dir / e['file'])}"
                f"<p><a href='{e['file']}'>{e['file']}</a></p>"
            )
        else:
            parts.append(f"<img src='{e['file']}' alt='{html.escape(e['label'])}'>")
        parts.append(f"<p>{html.escape(e['caption'])}</p>")
    path = out_dir / "index.html"
    path.write_text("\n".join(parts))
    return path
