"""The layout is the architecture: no import cycles, layers only import downwards, small files.

Imports are read from the source (every `import`, also inside functions), so a cycle or an
upward import anywhere in the product fails here, not at some user's first call.
"""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("reasoner", "strategies", "benchmarks")
MAX_LINES = 500  # a longer module says why in its docstring ("Long because ...")


def _modules() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


MODULES = _modules()


def _imported(name: str, path: Path) -> set[str]:
    """Project modules that module `name` imports (a `from pkg import mod` names pkg.mod)."""
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            targets = [module] + [f"{module}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            # importing a.b.c runs a and a.b too; the edge that matters is to the deepest module
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


GRAPH = nx.DiGraph([(a, b) for a, path in MODULES.items() for b in _imported(a, path)])


def _is_parent(a: str, b: str) -> bool:
    return b.startswith(a + ".")


def test_no_import_cycles():
    # a package's __init__ re-exporting its own submodules is not a cycle of meaning
    graph = nx.DiGraph([(a, b) for a, b in GRAPH.edges if not _is_parent(a, b)])
    cycles = [sorted(c) for c in nx.strongly_connected_components(graph) if len(c) > 1]
    assert cycles == []


def _layer(module: str) -> str:
    if module.startswith("benchmarks.lab"):
        return "lab"
    if module == "reasoner.cli":
        return "cli"
    if module.startswith("reasoner.serve"):
        return "serve"  # `reasoner serve`: under the cli, over the core (the core never imports it)
    if module.startswith("reasoner.models"):
        return "backends"
    return module.split(".")[0]


# what each layer may import (besides itself): benchmarks -> strategies -> core -> backends
ALLOWED = {
    "lab": {"benchmarks", "strategies", "reasoner", "backends"},
    "cli": {"benchmarks", "strategies", "reasoner", "backends", "serve"},
    "serve": {"reasoner", "backends"},
    "benchmarks": {"reasoner", "backends"},
    "strategies": {"reasoner"},
    "reasoner": {"backends"},
    "backends": {"reasoner"},  # types, step format, grading: checked below to be leaf modules
}
# the core modules a backend may use: data types and formats, never the engine above it
BACKEND_MAY_USE = {
    "reasoner",
    "reasoner.types",
    "reasoner.step_format",
    "reasoner.jsonl",
    "reasoner.plugins",
    "reasoner.grading",
    "reasoner.synthetic",
    "reasoner.synthetic.checker",
}


def test_layers_only_import_downwards():
    wrong = []
    for a, b in GRAPH.edges:
        la, lb = _layer(a), _layer(b)
        if la == lb:
            continue
        if lb not in ALLOWED[la]:
            wrong.append(f"{a} -> {b}")
        elif la == "backends" and not any(b == m or b.startswith(m + ".") for m in BACKEND_MAY_USE):
            wrong.append(f"{a} -> {b} (a backend must not use the engine)")
    # strategies are found through entry points, never imported by the core
    assert wrong == []


@pytest.mark.parametrize("package", ["reasoner", "strategies"])
def test_long_modules_say_why(package):
    long = []
    for name, path in MODULES.items():
        if not name.startswith(package):
            continue
        text = path.read_text()
        lines = text.count("\n")
        doc = ast.get_docstring(ast.parse(text)) or ""
        if lines > MAX_LINES and "Long because" not in doc:
            long.append(f"{path.relative_to(ROOT)} ({lines} lines)")
    assert long == []
