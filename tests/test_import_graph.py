"""The import graph has no cycles: neither between the top-level packages nor between modules.

Imports are read from the source with `ast` (function-level imports included: a lazy import is still a
dependency), so this needs no package to be importable.
"""
from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("dialogue", "data_tools", "editing", "stylegan_ops", "server")


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def resolve_relative(importer: str, path: Path, module: str | None, level: int) -> str:
    """The absolute module of `from <dots><module> import ...` written in module `importer` (file `path`)."""
    if level == 0:
        return module or ""
    package = importer.split(".") if path.name == "__init__.py" else importer.split(".")[:-1]
    base = package[:len(package) - level + 1]
    return ".".join(base + ([module] if module else []))


def module_imports() -> dict[str, set[str]]:
    """Each project module → the project modules it imports (a `from pkg import name` counts as `pkg.name`
    when that is a module, else as `pkg`)."""
    paths = [p for package in PACKAGES for p in (REPO / package).rglob("*.py")]
    modules = {module_name(p): p for p in paths}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = resolve_relative(name, path, node.module, node.level)
                targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
            else:
                continue
            for target in targets:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    edges.add(target)
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of `graph` as a list of nodes, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def ancestors(module: str) -> set[str]:
    """A package's `__init__` runs before its submodules, so `a.b` importing `a` is not a cycle."""
    parts = module.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts))}


def test_no_cycle_between_packages():
    graph: dict[str, set[str]] = {p: set() for p in PACKAGES}
    for module, edges in module_imports().items():
        graph[module.split(".")[0]] |= {e.split(".")[0] for e in edges} - {module.split(".")[0]}
    assert find_cycle(graph) is None, f"package import cycle: {' -> '.join(find_cycle(graph))}"


def test_no_cycle_between_modules():
    graph = {m: {e for e in edges if e not in ancestors(m)} for m, edges in module_imports().items()}
    cycle = find_cycle(graph)
    assert cycle is None, f"module import cycle: {' -> '.join(cycle)}"


def test_the_checker_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    assert resolve_relative("pkg.mod", Path("pkg/mod.py"), "other", 1) == "pkg.other"
    assert resolve_relative("pkg", Path("pkg/__init__.py"), "sub", 1) == "pkg.sub"
    assert resolve_relative("pkg.a.mod", Path("pkg/a/mod.py"), None, 2) == "pkg"
