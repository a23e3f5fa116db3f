"""The layers point one way: the science (arrays in, arrays out) imports no stage, store or
command line; the stages import no command line; hpc imports nothing of glassdist; the stage
list (glassdist.stages) is a leaf that the store may import at module level. Read from the
source with ast (function-level imports count too), so a new module is checked by being there."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCIENCE = {"md", "structure", "fields", "dynamics", "learn", "analysis", "glassbench", "indicators", "constants",
           "errors", "spec"}
ORCHESTRATION = {"stages", "store", "integrity", "report", "cli", "submit", "status", "derive", "estimate", "export",
                 "importer", "formats", "__main__"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path) -> set[str]:
    """Every glassdist/hpc module a source file imports (absolute names, relative ones resolved)."""
    name = module_name(path)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            out |= {target} if node.module else {f"{target}.{a.name}" for a in node.names}
    return {t for t in out if t.split(".")[0] in ("glassdist", "hpc")}


def layer(target: str) -> str:
    """glassdist.<layer>... -> layer ('' for the package itself: its __version__)."""
    parts = target.split(".")
    return parts[1] if parts[0] == "glassdist" and len(parts) > 1 else ""


SOURCES = sorted((ROOT / "glassdist").rglob("*.py")) + sorted((ROOT / "hpc").rglob("*.py"))


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_point_down_the_layers(path):
    own = layer(module_name(path))
    targets = imported(path)
    if module_name(path).startswith("hpc"):
        assert not [t for t in targets if t.startswith("glassdist")], "hpc knows nothing of glasses"
    elif own in SCIENCE:
        assert not {layer(t) for t in targets} & ORCHESTRATION, "science imports no stage, store or CLI"
    elif own == "stages":
        assert not {layer(t) for t in targets} & {"cli", "submit", "status", "derive"}
    if module_name(path) == "glassdist.stages":
        assert {layer(t) for t in targets} <= {"stages"}, "the stage list is a leaf"


def test_the_checker_sees_relative_imports():
    """Guard against a checker that sees nothing: the real store imports the stage list."""
    assert "glassdist.stages" in imported(ROOT / "glassdist" / "store.py")
    assert "glassdist.structure.grid" in imported(ROOT / "glassdist" / "stages" / "gradcam.py")
    assert "glassdist.store" in imported(ROOT / "glassdist" / "stages" / "common.py")
