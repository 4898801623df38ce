"""Tracked text (code, configs, docs): no issue numbers and no machine paths (two generated records exempt);
the README's size and generated-block markers."""
import re
import subprocess
from pathlib import Path

from benchmarks.report import README_BEGIN, README_END

ROOT = Path(__file__).resolve().parents[1]
ISSUE = re.compile(r"\bissues? ?#?\d+|\bissue-\d+", re.IGNORECASE)
MACHINE_PATH = re.compile(r"(?<![\w.~-])/(?:work|root|tmp)/")
GENERATED = {"benchmarks/results.json", "docs/benchmarks.md"}  # records the benchmark runs write
ISSUE_WORD = "issue"  # the samples below are assembled so that this file passes its own check


SOURCE_DIRS = ("ernie_tiny_distill", "benchmarks", "tests", "tools", "docs")  # where a copy without git looks


def tracked_text_files():
    """git's tracked .py/.yaml/.yml/.md files; in a copy without git (an unpacked archive), those of SOURCE_DIRS
    and the top directory."""
    listed = subprocess.run(["git", "ls-files", "*.py", "*.yaml", "*.yml", "*.md"], cwd=ROOT,
                            capture_output=True, text=True)
    if listed.returncode == 0:
        paths = listed.stdout.split()
    else:
        found = [p for d in SOURCE_DIRS for p in (ROOT / d).rglob("*")] + list(ROOT.glob("*"))
        paths = [p.relative_to(ROOT).as_posix() for p in found
                 if p.is_file() and p.suffix in (".py", ".yaml", ".yml", ".md") and "__pycache__" not in p.parts]
    return [ROOT / p for p in sorted(set(paths)) if p not in GENERATED]


def offending(pattern, text):
    return [f"{n}: {line.strip()[:80]}" for n, line in enumerate(text.splitlines(), 1) if pattern.search(line)]


def test_patterns_catch_what_they_are_for():
    i = ISSUE_WORD
    assert len(offending(ISSUE, f"as in {i} 13 and {i.title()} 4, {i} #2, {i.upper()}S 7, {i}-13")) == 1
    assert [bool(ISSUE.search(s)) for s in (f"{i} 13", f"{i.title()} 4", f"{i} #2", f"{i}s 7", f"{i}-13")] == \
        [True] * 5
    assert offending(MACHINE_PATH, "see " + "/work" + "/shared/x, " + "/root" + "/y or `--out " + "/tmp" + "/qs`")
    assert offending(ISSUE, f"an {i} with 3 labels") == []
    assert offending(MACHINE_PATH, "runs/tmp/x, ./work/y, https://a.b/work/c") == []


def test_tracked_files_have_no_issue_numbers_and_no_machine_paths():
    files = tracked_text_files()
    assert any(p.name == "README.md" for p in files) and any(p.suffix == ".yaml" for p in files)
    found = {}
    for p in files:
        text = p.read_text(encoding="utf-8")
        hits = offending(ISSUE, text) + offending(MACHINE_PATH, text)
        if hits:
            found[p.relative_to(ROOT).as_posix()] = hits
    assert found == {}


def test_readme_is_short_and_keeps_the_generated_block_markers():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.encode("utf-8")) <= 12 * 1024
    assert text.index(README_BEGIN) < text.index(README_END)
