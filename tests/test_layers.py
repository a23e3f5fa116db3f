"""The layers point one way: every import of glassdist/ (at module level or inside a function, read
from the source with ast, so a new module is checked by being there) points down the layers below,
never up, and `hpc` (the general task-farm, ledger and schema library) imports nothing of glassdist."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: lowest first; a module may import its own layer and those below it
LAYERS = (
    (
        "base",
        ("glassdist", "glassdist.constants", "glassdist.errors", "glassdist.pipeline"),
    ),  # the stage records: names, needs, kinds; stage modules load lazily
    ("science", ("glassdist.structure", "glassdist.fields", "glassdist.dynamics")),
    ("campaign", ("glassdist.spec",)),
    ("engines and learning", ("glassdist.md", "glassdist.learn")),
    ("store", ("glassdist.layout", "glassdist.store", "glassdist.integrity")),  # layout: every stage's arrays
    ("stages", ("glassdist.stages", "glassdist.report")),
    ("commands", ("glassdist.commands",)),  # status, estimate, submit, derive, import, export
    ("cli", ("glassdist.cli", "glassdist.__main__")),
)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> int:
    """Index in LAYERS of a glassdist module (the longest matching prefix decides)."""
    best, depth = None, -1
    for i, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if prefix.endswith(".*"):
                hit = module.startswith(prefix[:-1])
            else:
                hit = module == prefix or module.startswith(prefix + ".")
            if hit and len(prefix) > depth:
                best, depth = i, len(prefix)
    if best is None:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS")
    return best


def imports(path: Path) -> set[str]:
    """Absolute names of the glassdist and hpc modules (or their members) a file imports."""
    module = module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            names.add(target)
            names.update(f"{target}.{a.name}" for a in node.names)  # `from . import x` imports module x
    return {n for n in names if n.split(".")[0] in ("glassdist", "hpc")}


def existing_module(name: str, modules: set[str]) -> str | None:
    """The module an imported name refers to (a member's module), or None."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def all_modules(top: str) -> dict[str, Path]:
    return {module_name(p): p for p in (ROOT / top).rglob("*.py")}


def test_every_glassdist_import_points_down_the_layers():
    modules = all_modules("glassdist")
    upward = set()
    for name, path in modules.items():
        for target in imports(path):
            target = existing_module(target, set(modules))
            if target and target != name and layer(target) > layer(name):
                upward.add(f"{name} ({LAYERS[layer(name)][0]}) imports {target} ({LAYERS[layer(target)][0]})")
    assert not upward, "\n".join(sorted(upward))


def test_hpc_imports_nothing_of_glassdist():
    for name, path in all_modules("hpc").items():
        assert not [n for n in imports(path) if n.startswith("glassdist")], name


@pytest.mark.parametrize(
    "module, wrong",
    [
        ("glassdist.structure.voronoi", "glassdist.store"),
        ("glassdist.store", "glassdist.stages.train"),
        ("glassdist.pipeline", "glassdist.store"),
        ("glassdist.spec", "glassdist.md"),
    ],
)
def test_the_rule_sees_an_upward_import(module, wrong):
    """Guard against a rule that passes everything: these imports would be refused."""
    assert layer(wrong) > layer(module)


def test_the_checker_sees_relative_imports():
    """Guard against a checker that sees nothing: real imports, relative and absolute, are found."""
    assert "glassdist.pipeline" in imports(ROOT / "glassdist" / "store.py")
    assert "glassdist.structure.grid" in imports(ROOT / "glassdist" / "stages" / "gradcam.py")
    assert "glassdist.store" in imports(ROOT / "glassdist" / "stages" / "common.py")
