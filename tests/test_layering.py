"""The packages import one way: no circle among the modules of expo/data, expo/envs and analysis,
counting imports inside functions too (a lazy import is still a dependency)."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERED = ("expo/data", "expo/envs", "analysis")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, name: str, modules: set[str]) -> set[str]:
    """The project modules `path` imports anywhere in its body; importing a.b.c also runs the
    package a.b's __init__, so a module depends on its enclosing packages too."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            parts = target.split(".")
            for i in range(1, len(parts) + 1):  # the module and every package above it
                prefix = ".".join(parts[:i])
                if prefix in modules and prefix != name and not name.startswith(prefix + "."):
                    found.add(prefix)
    return found


def import_graph() -> dict[str, set[str]]:
    paths = {module_name(p): p for d in ("expo", "analysis") for p in (ROOT / d).rglob("*.py")}
    modules = set(paths)
    return {name: imports_of(path, name, modules) for name, path in paths.items()}


def circles(graph: dict[str, set[str]], within: set[str]) -> list[list[str]]:
    """Strongly connected components of more than one module among `within` (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v] & within:
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
                found.append(sorted(component))

    for v in sorted(within):
        if v not in index:
            visit(v)
    return found


def layered(graph) -> set[str]:
    prefixes = tuple(p.replace("/", ".") for p in LAYERED)
    return {m for m in graph if m.startswith(prefixes)}


def test_the_checker_finds_a_circle_through_a_lazy_import_and_a_package_init():
    graph = {"a": {"a.b"}, "a.b": {"c"}, "c": {"a"}, "d": set()}
    assert circles(graph, set(graph)) == [["a", "a.b", "c"]]
    tree = ast.parse("def f():\n    from expo.data import registry\n")
    assert "expo.data" in {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}


def test_data_envs_and_analysis_import_one_way():
    graph = import_graph()
    within = layered(graph)
    assert {"expo.data.registry", "expo.envs.robomimic", "analysis.figures"} <= within
    assert circles(graph, within) == []


@pytest.mark.parametrize("module, never", [
    ("expo.data.registry", "expo.data.experts"),  # the registry describes files; experts sit above
    ("analysis.report", "analysis.figures"),      # the report reads what the figures produced
])
def test_lower_layers_do_not_import_higher_ones(module, never):
    graph = import_graph()
    assert not any(dep == never or dep.startswith(never + ".") for dep in graph[module])
