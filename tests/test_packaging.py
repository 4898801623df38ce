"""Packaging: every direct import is declared in setup.py (core, or the extra of the module that imports it),
optional imports are lazy, and without any extra the package still trains and exports."""
import ast
import json
import re
import subprocess
import sys
import textwrap
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, packages_distributions, requires
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("ernie_tiny_distill", "tools", "benchmarks")

# Which files each extra serves: an import of a distribution that is not in install_requires must come from one
# of these files, and its distribution must be in that extra.
OWNERS = {
    "serve": {"ernie_tiny_distill/deploy/service.py", "ernie_tiny_distill/commands/serve.py",
              "ernie_tiny_distill/deploy/load_test.py"},
    "onnx": {"ernie_tiny_distill/deploy/onnx_export.py", "ernie_tiny_distill/deploy/quantize.py",
             "ernie_tiny_distill/deploy/engines.py", "ernie_tiny_distill/deploy/latency.py",
             "ernie_tiny_distill/models/convert_onnx.py", "ernie_tiny_distill/models/onnx_graph.py",
             "benchmarks/ort_fusion.py"},
    "vdl": {"ernie_tiny_distill/train/trainer.py"},
    "bench": {"benchmarks/plot.py"},
    "minilm": {"ernie_tiny_distill/models/locate.py", "tools/convert_checkpoint.py"},
}


def setup_lists():
    """(install_requires, extras_require) as setup.py states them (read, not run)."""
    values = {}
    for node in ast.parse((ROOT / "setup.py").read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            if node.targets[0].id in ("INSTALL_REQUIRES", "EXTRAS_REQUIRE"):
                values[node.targets[0].id] = ast.literal_eval(node.value)
    return values["INSTALL_REQUIRES"], values["EXTRAS_REQUIRE"]


def normalise(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def dist_name(requirement):
    return normalise(re.split(r"[<>=!~\[ ;]", requirement.strip())[0])


def imports():
    """(file relative to the repository, top-level module, imported at module level?) for every import."""
    found = []
    for folder in FOLDERS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            top = {id(n) for stmt in tree.body for n in ast.walk(stmt)
                   if not isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
            top |= {id(n) for cls in tree.body if isinstance(cls, ast.ClassDef) for stmt in cls.body
                    if not isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)) for n in ast.walk(stmt)}
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    module = name.split(".")[0]
                    if module not in sys.stdlib_module_names and module not in (
                            "ernie_tiny_distill", "benchmarks", "__future__"):
                        found.append((str(path.relative_to(ROOT)), module, id(node) in top))
    return found


@lru_cache(maxsize=None)
def module_distributions():
    return {module: {normalise(d) for d in dists} for module, dists in packages_distributions().items()}


def distributions_of(module):
    return module_distributions().get(module, {normalise(module)})


def installed_with(dists):
    """dists and everything they require, transitively (requirements of their extras left out)."""
    from packaging.requirements import Requirement

    seen, todo = set(), list(dists)
    while todo:
        dist = todo.pop()
        if dist in seen:
            continue
        seen.add(dist)
        try:
            reqs = requires(dist) or []
        except PackageNotFoundError:
            continue
        for text in reqs:
            req = Requirement(text)
            if req.marker is None or "extra" not in str(req.marker):
                todo.append(normalise(req.name))
    return seen


def optional_modules():
    """Top-level modules of the extras, except those Paddle and the other core packages need.

    PaddleNLP 2.8 declares fastapi, uvicorn, onnx, paddle2onnx and visualdl as requirements although importing
    it needs none of them, so its closure is left out: blocking them shows this package does not need them.
    """
    core, extras = setup_lists()
    needed = installed_with({dist_name(r) for r in core} - {"paddlenlp"})
    optional = {dist_name(r) for reqs in extras.values() for r in reqs} - needed
    return sorted(m for m, dists in module_distributions().items() if dists & optional and m.isidentifier())


def test_every_direct_import_is_declared_core_or_in_its_modules_extra():
    core, extras = setup_lists()
    core = {dist_name(r) for r in core}
    extras = {extra: {dist_name(r) for r in reqs} for extra, reqs in extras.items()}
    problems = []
    for file, module, _ in imports():
        for dist in distributions_of(module) - core:
            owners = [extra for extra, files in OWNERS.items() if file in files]
            if not any(dist in extras[extra] for extra in owners):
                problems.append(f"{file}: {module} ({dist}) is neither core nor in extra {owners or 'none'}")
    assert problems == []
    assert {"paddlepaddle", "paddlenlp", "pydantic", "scikit-learn"} <= core
    assert "fastapi" not in core and "fastapi" in extras["serve"] and "onnxruntime" in extras["onnx"]


def test_optional_imports_are_inside_functions():
    core = {dist_name(r) for r in setup_lists()[0]}
    eager = [f"{file}: {module}" for file, module, top in imports()
             if top and file.startswith("ernie_tiny_distill/") and distributions_of(module) - core]
    assert eager == []


def test_required_extras_name_their_distribution():
    """util.extras.require("module", "extra", ...) names an extra that installs that module."""
    extras = {extra: {dist_name(r) for r in reqs} for extra, reqs in setup_lists()[1].items()}
    calls = []
    for path in (ROOT / "ernie_tiny_distill").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "require":
                module, extra = (ast.literal_eval(a) for a in node.args[:2])
                calls.append((module, extra))
                assert distributions_of(module.split(".")[0]) <= extras[extra], (path, module, extra)
    assert ("uvicorn", "serve") in calls and ("onnx", "onnx") in calls


def test_pins_in_constraints_fall_in_the_setup_ranges():
    from packaging.requirements import Requirement

    pins = {}
    for line in (ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[normalise(name)] = version.strip()
    core, extras = setup_lists()
    out_of_range = []
    for requirement in core + [r for extra, reqs in extras.items() if extra != "minilm" for r in reqs]:
        req = Requirement(requirement)
        version = pins.get(normalise(req.name))
        if version is None or not req.specifier.contains(version, prereleases=True):
            out_of_range.append(f"{requirement}: constraints.txt pins {version}")
    assert out_of_range == []


def test_console_scripts_point_at_main_functions():
    import importlib

    text = (ROOT / "setup.py").read_text(encoding="utf-8")
    names = ast.literal_eval(re.search(r"COMMANDS = (\[.*?\])", text).group(1))
    assert names == ["train", "export", "predict", "evaluate", "serve"]
    for name in names:
        assert callable(importlib.import_module(f"ernie_tiny_distill.commands.{name}").main)
        wrapper = (ROOT / "tools" / f"{name}.py").read_text(encoding="utf-8")
        assert f"from ernie_tiny_distill.commands.{name} import main" in wrapper


# The package as `pip install .` leaves it: the extras' modules cannot be imported, except those that importing
# Paddle and PaddleNLP loads (PaddleNLP's server module imports fastapi and starlette), which every install has.
BLOCK = textwrap.dedent("""
    import importlib.abc, json, sys
    import paddle, paddlenlp.transformers
    BLOCKED = sorted(m for m in sys.argv[1].split(",") if m not in sys.modules)
    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
    sys.meta_path.insert(0, Block())
    sys.argv = sys.argv[1:]
    print("BLOCKED", json.dumps(BLOCKED))
""")
MUST_BLOCK = {"uvicorn", "onnx", "onnxruntime", "paddle2onnx", "ml_dtypes", "matplotlib", "visualdl"}


def run_without_extras(body: str, *args, timeout=300):
    script = BLOCK + textwrap.dedent(body)
    result = subprocess.run([sys.executable, "-c", script, ",".join(optional_modules()), *map(str, args)],
                            capture_output=True, text=True, cwd=ROOT, timeout=timeout)
    blocked = [line for line in result.stdout.splitlines() if line.startswith("BLOCKED ")]
    assert blocked and MUST_BLOCK <= set(json.loads(blocked[0][len("BLOCKED "):])), result.stderr[-3000:]
    return result


def test_optional_modules_leave_out_what_core_needs():
    blocked = optional_modules()
    assert MUST_BLOCK | {"fastapi"} <= set(blocked)
    assert not {"paddle", "paddlenlp", "numpy", "yaml", "httpx", "pydantic"} & set(blocked)  # Paddle needs httpx


@pytest.mark.slow
def test_without_extras_every_module_imports_train_and_export_work_and_serve_names_its_extra(tmp_path):
    """One process (Paddle is imported once): import every module, run a teacher stage on demo data and an FP32
    Paddle Inference export, then ernie-serve, with every extra's module unimportable."""
    result = run_without_extras("""
        import importlib, json, pkgutil, sys
        import ernie_tiny_distill
        failed = {}
        for info in pkgutil.walk_packages(ernie_tiny_distill.__path__, "ernie_tiny_distill."):
            try:
                importlib.import_module(info.name)
            except Exception as e:
                failed[info.name] = repr(e)
        print("IMPORTS", json.dumps(failed))
        root = sys.argv[1]
        from ernie_tiny_distill.data.demo import write_demo_data
        from ernie_tiny_distill.models.random_teacher import write_random_teacher
        write_demo_data(root + "/demo", n_train=24, n_dev=8, n_test=8, n_unlabeled=0)
        write_random_teacher(root + "/pretrained", ["the film was great", "the film was bad"], num_layers=1,
                             hidden_size=16, num_heads=2, intermediate_size=32)
        from ernie_tiny_distill.commands import export, serve, train
        print("TRAIN", train.main(["--config", "configs/demo_cls_teacher.yaml", "data.path=" + root + "/demo",
                                   "model.teacher=" + root + "/pretrained", "output_dir=" + root + "/run",
                                   "train.max_steps=2", "train.batch_size=8", "train.progress=false",
                                   "model.max_seq_length=32"]))
        sys.argv = ["ernie-export", "--model", root + "/run", "--out", root + "/export"]
        print("EXPORT", export.main())
        sys.argv = ["ernie-serve", "--model", root + "/export"]
        print("SERVE", serve.main())
    """, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    printed = dict(line.split(" ", 1) for line in result.stdout.splitlines()
                   if line.startswith(("IMPORTS", "TRAIN", "EXPORT", "SERVE")))
    assert printed == {"IMPORTS": "{}", "TRAIN": "0", "EXPORT": "0", "SERVE": "2"}, result.stderr[-3000:]
    meta = json.loads((tmp_path / "export" / "export.json").read_text(encoding="utf-8"))
    assert meta["task"] == "classification" and (tmp_path / "export" / "inference.pdiparams").is_file()
    assert not (tmp_path / "export" / "model.onnx").exists()
    assert not (tmp_path / "run" / "vdl").exists()  # no VisualDL log without the vdl extra
    assert ("error: ernie-serve needs uvicorn, which is not installed (No module named 'uvicorn')\n"
            "  hint: pip install 'ernie_tiny_distill[serve]'") in result.stderr
