"""Optional parts (extensions.py): the core never names the wide part, finds it through its entry point, and a
config or model that needs a part that is not installed is refused, naming the key and the part."""
from __future__ import annotations

import ast
import io
import json
import pathlib
import re
import subprocess
import sys
import tokenize
import types

import pytest

from ernie_tiny_distill import extensions
from ernie_tiny_distill.errors import UserError

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "ernie_tiny_distill"
PART = "wide"


def _words(text: str):
    """The lower-case words of identifiers and prose: snake_case, CamelCase and runs of letters split apart."""
    return {w.lower() for w in re.findall(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+", text)}


def imports_of_part(source: str, module: str):
    """Lines where `source` (the module `module`) imports ernie_tiny_distill.wide, absolutely or relatively."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = module.rsplit(".", node.level)[0] if node.level else ""
            base = ".".join(p for p in (base, node.module or "") if p)
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        if any(t == f"ernie_tiny_distill.{PART}" or t.startswith(f"ernie_tiny_distill.{PART}.") for t in targets):
            found.append(node.lineno)
    return found


def names_of_part(source: str):
    """(line, token) of every name, string or comment holding the word PART ("wider", "widened" do not)."""
    kinds = (tokenize.NAME, tokenize.STRING, tokenize.COMMENT)
    return [(tok.start[0], tok.string) for tok in tokenize.generate_tokens(io.StringIO(source).readline)
            if tok.type in kinds and PART in _words(tok.string)]


def test_the_detectors_find_each_kind():
    source = '''"""A docstring about the wide part."""
from ernie_tiny_distill.wide import window
from ernie_tiny_distill import wide
from . import wide as w
import ernie_tiny_distill.wide.document
x = WideAndDeep(supports_wide)  # a comment
y = "the %d-wide teacher"  # widened, a wider table: not the part
'''
    assert imports_of_part(source, "ernie_tiny_distill.models.build") == [2, 3, 5]
    assert imports_of_part(source, "ernie_tiny_distill.config") == [2, 3, 4, 5]  # `from . import wide`
    assert [line for line, _ in names_of_part(source)] == [1, 2, 3, 4, 5, 6, 6, 7]


def _core_modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        if rel.parts[0] != PART:
            yield rel, ".".join(("ernie_tiny_distill",) + rel.with_suffix("").parts).replace(".__init__", "")


def test_no_module_outside_the_part_imports_or_names_it():
    """The part is optional: the core calls the hooks of extensions.py and names it nowhere, not even in a comment
    or a string (its entry point in setup.py is the one place that does)."""
    found = {}
    for rel, module in _core_modules():
        source = (PACKAGE / rel).read_text(encoding="utf-8")
        hits = [f"{line}: imports it" for line in imports_of_part(source, module)]
        hits += [f"{line}: {text[:60]}" for line, text in names_of_part(source)]
        if hits:
            found[rel.as_posix()] = hits
    assert found == {}
    assert len(list(_core_modules())) > 100  # the walk is real


def test_the_part_is_found_through_its_entry_point():
    assert PART in extensions.names()
    from ernie_tiny_distill import config

    assert PART in config.STAGES and PART in config.DISTILL_STAGES
    assert extensions.stage_runner(PART) is not None and extensions.stage_runner("task") is None


def _entry(name, load):
    return types.SimpleNamespace(name=name, value=f"some.module:{name.upper()}", load=load)


def test_an_entry_point_that_does_not_load_or_names_no_extension_is_refused():
    def broken():
        raise ImportError("No module named 'sklearn'")

    with pytest.raises(UserError, match=r"extension 'x' does not load: ImportError: No module named 'sklearn'"):
        extensions._load(_entry("x", broken))
    with pytest.raises(UserError, match=r"extension 'x' must name an Extension called 'x'"):
        extensions._load(_entry("x", lambda: extensions.Extension(name="y")))
    with pytest.raises(UserError, match=r"section 'train.x' of the extension 'x' must be a dataclass below one of model"):
        extensions._load(_entry("x", lambda: extensions.Extension(name="x", sections={"train.x": dict})))


# Python with no extension installed: the entry-point group reads empty
WITHOUT_EXTENSIONS = """
import importlib.metadata as m, json, sys
real = m.entry_points
m.entry_points = lambda **kw: [] if kw.get("group") == "ernie_tiny_distill.extensions" else real(**kw)
from ernie_tiny_distill.config import config_from_dict
from ernie_tiny_distill.errors import UserError
answers = []
for raw in json.loads(sys.argv[1]):
    try:
        config_from_dict(raw)
        answers.append("accepted")
    except UserError as e:
        answers.append(str(e))
print(json.dumps(answers))
"""


def _without_extensions(*raws) -> list:
    """What config_from_dict says of each config in one process where no extension is installed (one Paddle
    start-up for all of them)."""
    out = subprocess.run([sys.executable, "-c", WITHOUT_EXTENSIONS, json.dumps(raws)], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_config_asking_for_a_part_that_is_not_installed_names_the_key_and_the_part(tmp_path):
    base = {"task": "classification", "output_dir": str(tmp_path / "run"),
            "model": {"teacher": "t", "student": {"init": "pretrained", "path": "s"}}}
    accepted, stage, section, typo = _without_extensions(
        {**base, "stage": "task"}, {**base, "stage": PART},
        {**base, "stage": "task", "model": {**base["model"], PART: {"buckets": 16}}},
        {**base, "stage": "task", "model": {**base["model"], "studnet": {}}})
    assert accepted == "accepted"  # the core runs without it
    assert stage.startswith(f"config key 'stage' must be one of teacher, general, task; got '{PART}': no "
                            f"installed extension provides stage '{PART}' (optional parts register through the "
                            "entry-point group 'ernie_tiny_distill.extensions'; installed: none)"), stage
    assert "pip install -e ." in stage
    assert section == (f"unknown config key 'model.{PART}': no installed extension provides this section (optional "
                       "parts register through the entry-point group 'ernie_tiny_distill.extensions'; installed: "
                       "none)"), section
    # a typo of a core key is still a typo
    assert typo.startswith("unknown config key 'model.studnet'; did you mean 'student'?"), typo


def test_a_model_saved_by_a_stage_that_is_not_installed_is_refused(tmp_path, monkeypatch):
    from ernie_tiny_distill import config_rules
    from ernie_tiny_distill.models import build as models

    (tmp_path / "task.json").write_text(json.dumps({"stage": PART, "labels": ["a", "b"]}))
    models._check_saving_stage_installed(str(tmp_path))  # installed: loads
    monkeypatch.setattr(config_rules, "STAGES", ("teacher", "general", "task"))
    monkeypatch.setattr(extensions, "names", lambda: ())
    with pytest.raises(UserError, match=rf"task.json: saved by stage '{PART}': no installed extension provides "
                                        rf"stage '{PART}' .*installed: none"):
        models._check_saving_stage_installed(str(tmp_path))
