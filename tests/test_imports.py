"""Every module imports, and no two modules import each other, even through function-level imports (issue 12)."""
from __future__ import annotations

import ast
import importlib
import pathlib
import subprocess

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "ernie_tiny_distill"


def module_names():
    return sorted(".".join(("ernie_tiny_distill",) + p.relative_to(PACKAGE).with_suffix("").parts).replace(".__init__", "")
                  for p in PACKAGE.rglob("*.py"))


def imports_of(name: str):
    """Modules of the package that `name` imports anywhere in its source (top level or inside functions)."""
    path = PACKAGE.joinpath(*name.split(".")[1:])
    path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    known = set(module_names())
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package
            for _ in range(node.level - 1):
                base = base.rpartition(".")[0]
            base = f"{base}.{node.module}" if node.level and node.module else (base if node.level else node.module)
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        found |= {t for t in targets if t in known and t != name}
    return found


def find_cycle(graph):
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_find_cycle_finds_a_known_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_between_modules():
    graph = {name: {m for m in imports_of(name) if not m.endswith("ernie_tiny_distill")} for name in module_names()}
    assert graph["ernie_tiny_distill.deploy.export"] >= {"ernie_tiny_distill.deploy.engines"}  # the graph is real
    assert find_cycle(graph) is None


@pytest.mark.parametrize("name", [m for m in module_names() if ".deploy" in m or m.endswith(("tasks", "decoding"))])
def test_deployment_modules_import(name):
    importlib.import_module(name)


def test_no_task_name_or_rank_branches_outside_tasks():
    """issue 12 move 1: task differences live in tasks.py."""
    out = subprocess.run(["grep", "-rn", "-e", '== "ner"', "-e", "== 'ner'", "-e", "ndim", "-e", '== "classification"',
                          str(PACKAGE)], capture_output=True, text=True).stdout
    # the ONNX converter checks the rank of weight tensors in an ONNX graph, not of logits
    left = [line for line in out.splitlines() if not line.split(":")[0].endswith(("tasks.py", "convert_onnx.py", "onnx_graph.py"))]
    assert left == []


def test_the_package_never_imports_the_benchmarks():
    """The benchmark matrix is a client of the package: no module of the package names it, even inside a function."""
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else [])
            offenders += [f"{path.relative_to(PACKAGE)}: {n}" for n in names if n.split(".")[0] == "benchmarks"]
    assert offenders == []
