"""The store's layout is declared once (glassdist.layout): docs/store.md names every declared
array of every preset, and the declaration follows the spec (the real-store side: tests/test_report.py
checks a finished campaign against it, array by array and byte by byte)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from glassdist import layout
from glassdist.commands.estimate import store_bytes
from glassdist.spec import apply_overrides, loads, preset_text

ROOT = Path(__file__).resolve().parents[1]
PRESETS = sorted(p.stem for p in (ROOT / "glassdist" / "presets").glob("*.toml"))


def documented_names(group: str) -> set[str]:
    """The array names docs/store.md gives in the section of ``group`` (without the group prefix):
    `name`, `a/b`, `prefix/*` (kept as 'prefix/*'), `prefix/{a,b}` (expanded)."""
    text = (ROOT / "docs" / "store.md").read_text()
    sections = re.split(r"^## ", text, flags=re.M)
    section = next(s for s in sections if s.startswith(f"`{group}`"))
    names = set()
    for token in re.findall(r"`([^`]+)`", section):
        token = token.removeprefix(f"{group}/")
        for part in (p.strip() for p in token.split(",")):
            braces = re.fullmatch(r"(.*)\{(.*)\}", token)
            if braces:
                names.update(braces[1] + b.strip() for b in braces[2].split(","))
                break
            names.add(part)
    return names


def is_documented(path: str) -> bool:
    group, name = path.split("/", 1)
    names = documented_names(group)
    prefixes = [n[:-1] for n in names if n.endswith("/*")]
    return name in names or any(name.startswith(p) for p in prefixes)


@pytest.mark.parametrize("preset", PRESETS)
def test_docs_store_names_every_declared_array(preset):
    spec = loads(preset_text(preset))
    declared = {path for stage in layout.LAYOUTS for path in layout.arrays(stage, spec)} | set(layout.system(spec))
    undocumented = sorted(p for p in declared if not is_documented(p))
    assert not undocumented, f"docs/store.md does not name {undocumented}"
    assert not is_documented("quench/not_an_array") and not is_documented("analyze/nowhere/x")  # the check checks


def test_the_declaration_follows_the_spec():
    """Sizes follow the spec's keys; optional arrays come and go with theirs."""
    text = preset_text("demo-kam")
    spec = loads(text)
    arrays = {p: a for s in layout.LAYOUTS for p, a in layout.arrays(s, spec).items()}
    R, N, K = spec.quench.replicas, spec.system.n_particles, spec.train.ensemble
    assert arrays["quench/positions"].shape == (R, 2, N, 2) and arrays["quench/positions"].chunks == (1, 2, N, 2)
    assert arrays["gradcam/members"].shape == (spec.n_test, K, 2, N)
    assert arrays["gradcam/randomised"].shape[2] == 2 + len(spec.model.channels)  # output, hidden, each conv
    assert arrays["dataset/images"].dtype == "float32" and "gradcam/shuffled" in arrays
    assert arrays["analyze/dynamics/reached"].dtype == "bool"
    bare = loads(
        apply_overrides(text, ["train.shuffled_control=false", "quench.hold_liquid=0.0", "propensity.main_samples=0"])
    )
    names = {p for s in layout.LAYOUTS for p in layout.arrays(s, bare)}
    assert not names & {
        "gradcam/shuffled",
        "train/shuffled_accuracy",
        "quench/tau_alpha",
        "propensity/Delta_ensembles",
        "analyze/ensembles/table",
    }
    assert sum(store_bytes(bare).values()) < sum(store_bytes(spec).values())
    assert store_bytes(spec)["quench"] == sum(a.nbytes for p, a in arrays.items() if p.startswith("quench/"))
