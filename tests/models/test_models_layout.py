"""The models' layout: no import cycle among harness.models.* (module-level or deferred imports),
and no module grows past ~400 lines."""

from __future__ import annotations

import ast
from pathlib import Path

import harness.models

ROOT = Path(harness.models.__file__).resolve().parent
PREFIX = "harness.models"
MAX_LINES = 450  # after `ruff format`; the largest, replica_calculator.py, is ~410


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join([PREFIX, *parts])] = path
    return out


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """harness.models modules that `name` imports (`from pkg import mod` counts as pkg.mod)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            targets = [
                f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names
            ]
        else:
            continue
        found.update(t for t in targets if t in known and t != name)
    return found


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycle_among_models() -> None:
    mods = _modules()
    graph = {name: _imports(name, path, set(mods)) for name, path in mods.items()}
    assert graph["harness.models.hpa.simulate"] >= {
        "harness.models.hpa.controller"
    }  # the walk sees imports
    assert _cycles(graph) == []


def test_no_model_module_is_too_long() -> None:
    sizes = {name: len(path.read_text().splitlines()) for name, path in _modules().items()}
    assert {n: s for n, s in sizes.items() if s > MAX_LINES} == {}


def test_packages_mirror_upstream_layout() -> None:
    mods = set(_modules())
    assert {
        f"{PREFIX}.hpa.{m}"
        for m in ("behavior", "controller", "replica_calculator", "metrics", "simulate")
    } <= mods
    assert {
        f"{PREFIX}.scheduler.{m}"
        for m in ("predicates", "resources", "topology_spread", "interpod_affinity", "placement")
    } <= mods
    assert (
        not {f"{PREFIX}.{m}" for m in ("spread", "interpod", "hpa_calc", "hpa_sim", "probes")}
        & mods
    )
