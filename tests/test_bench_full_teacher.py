"""The full-data teacher's row (`python -m benchmarks.full_teacher`), recorded from a fake finished run into copies
of the results file and report: the row after the task's teacher, a column of every row's % of it, nothing else
rewritten; without the row the tables render as committed."""
import json
import shutil
from pathlib import Path

import pytest
import yaml

from benchmarks import full_teacher
from benchmarks.reviews import PER_REVIEW
from ernie_tiny_distill.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
COMMAND = ("python tools/train.py --config configs/imdb_teacher.yaml output_dir=runs/imdb_teacher_full "
           "data.max_train_examples=null train.eval_every=250")


@pytest.fixture
def world(tmp_path):
    """A fake finished teacher run and a report root holding copies of the committed results file and report."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "summary.json").write_text(json.dumps({
        "stage": "teacher", "task": "classification", "metric_name": "accuracy", "dev": {"accuracy": 0.9},
        "test": {"accuracy": 0.88, "num_examples": 24999}, "train_examples": 24000, "params": 22713986,
        "nonembedding_params": 10796162, "layers": 6, "hidden": 384, "seconds": 1234.5}))
    (run / "config.yaml").write_text(yaml.safe_dump({"model": {"teacher": "minilm-l6-h384"}}))
    out = tmp_path / "out"
    (out / "benchmarks").mkdir(parents=True)
    (out / "docs").mkdir()
    shutil.copy(ROOT / "benchmarks" / "results.json", out / "benchmarks" / "results.json")
    shutil.copy(ROOT / "docs" / "benchmarks.md", out / "docs" / "benchmarks.md")
    return run, out


def _record(run, out, command=COMMAND):
    return full_teacher.main(["--run", str(run), "--command", command, "--out-dir", str(out)])


def test_the_row_follows_the_teacher_and_every_imdb_row_gets_its_column(world):
    run, out = world
    before = json.loads((out / "benchmarks" / "results.json").read_text(encoding="utf-8"))
    markdown_before = (out / "docs" / "benchmarks.md").read_text(encoding="utf-8")
    assert _record(run, out) == 0
    after = json.loads((out / "benchmarks" / "results.json").read_text(encoding="utf-8"))
    at = next(i for i, r in enumerate(before) if r["task"] == "imdb" and r["variant"] == "teacher")
    row = after[at + 1]
    teacher = before[at]["metric"]
    assert after[:at + 1] + after[at + 2:] == before   # no other row rewritten
    assert {k: row[k] for k in ("task", "dataset", "metric_name", "model", "variant", "layers", "hidden", "metric",
                                "dev_metric", "command", "train_commands", "train_examples")} == {
        "task": "imdb", "dataset": "IMDB sentiment", "metric_name": "accuracy",
        "model": "teacher MiniLM-L6-H384, all 24000 labeled training examples", "variant": "teacher_full",
        "layers": 6, "hidden": 384, "metric": 0.88, "dev_metric": 0.9, "command": COMMAND,
        "train_commands": [COMMAND], "train_examples": 24000}
    assert row["pct_of_teacher"] == pytest.approx(100 * 0.88 / teacher)
    assert set(before[at]) <= set(row)   # every field of the teacher row
    markdown = (out / "docs" / "benchmarks.md").read_text(encoding="utf-8")
    imdb = markdown.split("### IMDB sentiment — test accuracy")[1].split("\n\n")[1].splitlines()
    assert imdb[0].split(" | ")[7:9] == ["% of teacher", "% of the full-data teacher"]
    cells = {line.split(" | ")[0][2:] + " / " + line.split(" | ")[1]: line.split(" | ")[8] for line in imdb[2:]}
    assert cells["teacher MiniLM-L6-H384 / teacher"] == f"{100 * teacher / 0.88:.1f}"
    assert cells["teacher MiniLM-L6-H384, all 24000 labeled training examples / teacher_full"] == "100.0"
    students = [r for r in before if r["task"] == "imdb" and r["variant"] != PER_REVIEW and r["metric"] is not None]
    assert len(cells) == len(students) + 1 and len(students) > 30
    assert "% of the full-data teacher: each row's test metric over that of the `teacher_full` row" in markdown
    # its command follows the IMDB teacher's in the list of commands; the CoNLL table and the rest as before
    entry = f"- imdb / {row['model']} / teacher_full: `{COMMAND}`\n"
    teacher_entry = ("- imdb / teacher MiniLM-L6-H384 / teacher: "
                     "`python tools/train.py --config configs/imdb_teacher.yaml`\n")
    assert markdown.count(teacher_entry + entry) == 1
    old_block = full_teacher.table_block(before, "imdb")
    assert markdown.replace(full_teacher.table_block(after, "imdb"), old_block).replace(entry, "") == markdown_before
    assert "full-data" not in markdown.split("### IMDB sentiment — test accuracy")[0]
    # recording again replaces the row
    summary = (run / "summary.json").read_text()
    (run / "summary.json").write_text(summary.replace('"accuracy": 0.88', '"accuracy": 0.87'))
    _record(run, out)
    again = json.loads((out / "benchmarks" / "results.json").read_text(encoding="utf-8"))
    assert [r["metric"] for r in again if r["variant"] == "teacher_full"] == [0.87] and len(again) == len(after)
    markdown = (out / "docs" / "benchmarks.md").read_text(encoding="utf-8")
    assert markdown.count("full-data teacher:") == 1 and markdown.count("/ teacher_full: `") == 1


def test_without_the_row_the_tables_render_as_committed():
    rows = json.loads((ROOT / "benchmarks" / "results.json").read_text(encoding="utf-8"))
    markdown = (ROOT / "docs" / "benchmarks.md").read_text(encoding="utf-8")
    assert not any(r["variant"] == "teacher_full" for r in rows) and "full-data" not in markdown
    for task in ("imdb", "conll"):
        assert markdown.count(full_teacher.table_block(rows, task) + "\n") == 1


def test_the_report_keeps_a_recorded_row_after_its_teacher():
    rows = [{"task": "a", "variant": "teacher"}, {"task": "a", "variant": "no_kd"}, {"task": "b", "variant": "teacher"}]
    recorded = {"task": "a", "variant": "teacher_full", "metric": 0.9}
    assert full_teacher.with_recorded(rows, [rows[0], recorded]) == [rows[0], recorded, rows[1], rows[2]]
    assert full_teacher.with_recorded(rows, [rows[1]]) == rows
    assert full_teacher.with_recorded(rows[2:], [recorded]) == rows[2:]   # its task did not run here


def test_unfinished_runs_and_machine_paths_are_refused(world):
    run, out = world
    with pytest.raises(UserError, match="--command: write paths relative to the repository"):
        _record(run, out, COMMAND.replace("runs/imdb", "/data/runs/imdb"))
    (run / "summary.json").unlink()
    with pytest.raises(UserError, match="summary.json not found or not JSON: the run has not finished"):
        _record(run, out)
    assert (out / "benchmarks" / "results.json").read_bytes() == (ROOT / "benchmarks" / "results.json").read_bytes()
