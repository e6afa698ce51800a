"""The import graph reads top-down: no arrow from a lower layer to a higher one, no cycle.

    churnstream  the product's commands (CLI, demo, verify, the recomputation)     top
    generator, flink_jobs, indexer, kibana   the components; none imports another
    foundation   settings, errors, catalog, PII, artifacts, topics, health, local stack   ground

Deferred imports inside functions are arrows too.
"""

from __future__ import annotations

import ast
from pathlib import Path

from foundation import PROJECT_ROOT

LAYERS = {"foundation": 0, "generator": 1, "flink_jobs": 1, "indexer": 1, "kibana": 1, "churnstream": 2}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PROJECT_ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {_module_name(p): p for package in LAYERS for p in (PROJECT_ROOT / package).rglob("*.py")}


def imports(path: Path, known: dict[str, Path]) -> set[str]:
    """The project modules a file imports (``from a import b`` counts a.b when that is a module)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            # `from a import b` depends on the module a.b when there is one, else on a itself.
            names = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in known else node.module
                     for a in node.names]
        else:
            continue
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name:
                out.add(name)
    return out


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports(path, known) - {name} for name, path in known.items()}


def layer(module: str) -> tuple[str, int]:
    package = module.split(".")[0]
    return package, LAYERS[package]


def test_every_package_is_in_a_layer():
    packages = {p.parent.name for p in PROJECT_ROOT.glob("*/__init__.py")}
    assert packages == set(LAYERS) | {"bench"}, "a new package needs its place in LAYERS (bench is outside)"


def test_no_import_runs_upward_or_sideways():
    wrong = []
    for module, targets in graph().items():
        (package, level) = layer(module)
        for target in targets:
            (other, other_level) = layer(target)
            if other_level > level or (other_level == level == 1 and other != package):
                wrong.append(f"{module} -> {target}")
    assert not wrong, "imports against the layers:\n" + "\n".join(sorted(wrong))


def test_no_import_cycle():
    g = graph()
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in g[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in g:
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"
