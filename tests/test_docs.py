"""The user docs: README size and markers, no issue numbers and no machine paths (docs/benchmarks.md is generated)."""
import re
from pathlib import Path

from benchmarks.report import README_BEGIN, README_END

ROOT = Path(__file__).resolve().parents[1]
ISSUE = re.compile(r"\b[Ii]ssues? #?\d+")
MACHINE_PATH = re.compile(r"(?<![\w.~-])/(?:work|root|tmp)/")


def user_docs():
    return [ROOT / "README.md"] + sorted(p for p in (ROOT / "docs").glob("*.md") if p.name != "benchmarks.md")


def offending(pattern, text):
    return [f"{n}: {line.strip()[:80]}" for n, line in enumerate(text.splitlines(), 1) if pattern.search(line)]


def test_patterns_catch_what_they_are_for():
    assert offending(ISSUE, "as in issue 13 and Issue 4, issue #2") != []
    assert offending(MACHINE_PATH, "see /work/shared/x, /root/y or `--out /tmp/qs`") != []
    assert offending(ISSUE, "an issue with 3 labels") == []
    assert offending(MACHINE_PATH, "runs/tmp/x, ./work/y, https://a.b/work/c") == []


def test_user_docs_have_no_issue_numbers_and_no_machine_paths():
    found = {p.name: offending(ISSUE, p.read_text(encoding="utf-8")) + offending(MACHINE_PATH, p.read_text(encoding="utf-8"))
             for p in user_docs()}
    assert {k: v for k, v in found.items() if v} == {}


def test_readme_is_short_and_keeps_the_generated_block_markers():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.encode("utf-8")) <= 12 * 1024
    assert text.index(README_BEGIN) < text.index(README_END)
