"""The recorded teacher rows (`python -m benchmarks.full_teacher`), recorded from fake finished runs into copies of
the results file and report: the full-data teacher's row after the task's teacher, a column of every row's % of it,
nothing else rewritten; the case-ids teacher's row after those, without a column; without the rows the tables
render as committed."""
import json
from pathlib import Path

import pytest
import yaml

from benchmarks import full_teacher
from helpers import committed_report_without
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
    rows, markdown = _unrecorded()
    (out / "benchmarks" / "results.json").write_text(json.dumps(rows, indent=2), encoding="utf-8")
    (out / "docs" / "benchmarks.md").write_text(markdown, encoding="utf-8")
    return run, out


RECORDED = ("teacher_full", "teacher_case_ids")


def _unrecorded():
    """The committed results file and report as they were before any row was recorded into them: the tests
    record their own fake rows into that state."""
    return committed_report_without(lambda r: r.get("variant") in RECORDED or r.get("taught_by"))


CASE_COMMAND = ("python tools/train.py --config configs/conll_teacher.yaml output_dir=runs/conll_teacher_case_ids "
                "model.case_ids=true")
CASE_MODEL = "teacher MiniLM-L6-H384, case ids (word letter case as token type)"


def _record(run, out, command=COMMAND, *extra):
    return full_teacher.main(["--run", str(run), "--command", command, "--out-dir", str(out), *extra])


def _conll_run(path, f1, case_ids=True):
    """A fake finished CoNLL teacher run, trained with model.case_ids=`case_ids`."""
    path.mkdir()
    (path / "summary.json").write_text(json.dumps({
        "stage": "teacher", "task": "tagging", "metric_name": "f1", "dev": {"f1": f1 + 0.03},
        "test": {"f1": f1, "num_examples": 3453}, "train_examples": 14041, "params": 22713986,
        "nonembedding_params": 10796162, "layers": 6, "hidden": 384, "seconds": 2345.6}))
    model = {"teacher": "minilm-l6-h384", **({"case_ids": True} if case_ids else {})}
    (path / "config.yaml").write_text(yaml.safe_dump({"model": model}))
    return path


def _results(out):
    return json.loads((out / "benchmarks" / "results.json").read_text(encoding="utf-8"))


def _conll_table(markdown):
    return markdown.split("### CoNLL-2003 NER — test entity F1")[1].split("\n\n")[1].splitlines()


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


def test_the_committed_tables_render_from_the_committed_rows_with_and_without_the_recorded_ones():
    rows = json.loads((ROOT / "benchmarks" / "results.json").read_text(encoding="utf-8"))
    markdown = (ROOT / "docs" / "benchmarks.md").read_text(encoding="utf-8")
    for task in ("imdb", "conll"):
        assert markdown.count(full_teacher.table_block(rows, task) + "\n") == 1
    rows, markdown = _unrecorded()
    assert not any(r["variant"] in RECORDED for r in rows) and "full-data" not in markdown
    for task in ("imdb", "conll"):
        assert markdown.count(full_teacher.table_block(rows, task) + "\n") == 1


def test_the_report_keeps_a_recorded_row_after_its_teacher():
    rows = [{"task": "a", "variant": "teacher"}, {"task": "a", "variant": "no_kd"}, {"task": "b", "variant": "teacher"}]
    recorded = {"task": "a", "variant": "teacher_full", "metric": 0.9}
    case = {"task": "a", "variant": "teacher_case_ids", "metric": 0.91}
    assert full_teacher.with_recorded(rows, [rows[0], recorded]) == [rows[0], recorded, rows[1], rows[2]]
    assert full_teacher.with_recorded(rows, [case]) == [rows[0], case, rows[1], rows[2]]
    for results in ([recorded, case], [case, recorded]):   # the full-data teacher first, whatever the file's order
        assert full_teacher.with_recorded(rows, results) == [rows[0], recorded, case, rows[1], rows[2]]
    assert full_teacher.with_recorded(rows, [rows[1]]) == rows
    assert full_teacher.with_recorded(rows[2:], [recorded, case]) == rows[2:]   # its task did not run here


def test_unfinished_runs_and_machine_paths_are_refused(world):
    run, out = world
    results_before = (out / "benchmarks" / "results.json").read_bytes()
    with pytest.raises(UserError, match="--command: write paths relative to the repository"):
        _record(run, out, COMMAND.replace("runs/imdb", "/data/runs/imdb"))
    (run / "summary.json").unlink()
    with pytest.raises(UserError, match="summary.json not found or not JSON: the run has not finished"):
        _record(run, out)
    assert (out / "benchmarks" / "results.json").read_bytes() == results_before


def test_the_case_ids_row_follows_the_teacher_and_every_conll_row_gets_its_column(world, tmp_path):
    run, out = _conll_run(tmp_path / "case", 0.87), world[1]
    before = _results(out)
    markdown_before = (out / "docs" / "benchmarks.md").read_text(encoding="utf-8")
    assert _record(run, out, CASE_COMMAND, "--variant", "case_ids") == 0   # --task defaults to conll
    after = _results(out)
    at = next(i for i, r in enumerate(before) if r["task"] == "conll" and r["variant"] == "teacher")
    row = after[at + 1]
    assert after[:at + 1] + after[at + 2:] == before   # no other row rewritten
    assert {k: row[k] for k in ("task", "metric_name", "model", "variant", "metric", "command", "train_examples")} \
        == {"task": "conll", "metric_name": "f1", "model": CASE_MODEL, "variant": "teacher_case_ids",
            "metric": 0.87, "command": CASE_COMMAND, "train_examples": 14041}
    assert row["pct_of_teacher"] == pytest.approx(100 * 0.87 / before[at]["metric"])
    markdown = (out / "docs" / "benchmarks.md").read_text(encoding="utf-8")
    conll = _conll_table(markdown)
    assert conll[0] == _conll_table(markdown_before)[0].replace(
        "| % of teacher |", "| % of teacher | % of the case-ids teacher |")   # one new column
    assert conll[3].startswith(f"| {CASE_MODEL} | teacher_case_ids | 6×384 | ")
    assert f"| 87.00 | {100 * 0.87 / before[at]['metric']:.1f} | 100.0 |" in conll[3]
    assert "full-data" not in markdown
    entry = f"- conll / {CASE_MODEL} / teacher_case_ids: `{CASE_COMMAND}`\n"
    teacher_entry = ("- conll / teacher MiniLM-L6-H384 / teacher: "
                     "`python tools/train.py --config configs/conll_teacher.yaml`\n")
    assert markdown.count(teacher_entry + entry) == 1
    old_block = full_teacher.table_block(before, "conll")
    assert markdown.replace(full_teacher.table_block(after, "conll"), old_block).replace(entry, "") == \
        markdown_before
    # the report, regenerated from the runs' rows and the results file, renders the same table
    runs_rows = [r for r in after if r["variant"] != "teacher_case_ids"]
    assert markdown.count(full_teacher.table_block(full_teacher.with_recorded(runs_rows, after), "conll") + "\n") == 1
    # recording again replaces the row and its command
    (run / "summary.json").write_text((run / "summary.json").read_text().replace('"f1": 0.87', '"f1": 0.86'))
    _record(run, out, CASE_COMMAND, "--variant", "case_ids", "--task", "conll")
    again = _results(out)
    assert [r["metric"] for r in again if r["variant"] == "teacher_case_ids"] == [0.86] and len(again) == len(after)
    markdown = (out / "docs" / "benchmarks.md").read_text(encoding="utf-8")
    assert markdown.count("/ teacher_case_ids: `") == 1 and markdown.count(teacher_entry + entry) == 1
    assert f"| {CASE_MODEL} | teacher_case_ids | 6×384 | " in _conll_table(markdown)[3]


@pytest.mark.parametrize("case_first", [True, False])
def test_the_case_ids_row_comes_after_the_full_data_teacher_whichever_is_recorded_first(world, tmp_path, case_first):
    out = world[1]
    case, full = _conll_run(tmp_path / "case", 0.87), _conll_run(tmp_path / "full", 0.9, case_ids=False)
    full_command = CASE_COMMAND.replace("case_ids=true", "case_ids=false").replace("runs/conll_teacher_case_ids",
                                                                                 "runs/conll_teacher_full")
    records = [lambda: _record(case, out, CASE_COMMAND, "--variant", "case_ids"),
               lambda: _record(full, out, full_command, "--task", "conll")]
    for record in records if case_first else records[::-1]:
        record()
    rows = _results(out)
    at = next(i for i, r in enumerate(rows) if r["task"] == "conll" and r["variant"] == "teacher")
    assert [r["variant"] for r in rows[at:at + 4]] == ["teacher", "teacher_full", "teacher_case_ids", "kd_recipe"]
    markdown = (out / "docs" / "benchmarks.md").read_text(encoding="utf-8")
    conll = _conll_table(markdown)
    assert conll[0].split(" | ")[7:9] == ["% of teacher", "% of the full-data teacher"]
    assert [line.split(" | ")[1] for line in conll[2:5]] == ["teacher", "teacher_full", "teacher_case_ids"]
    assert conll[4].split(" | ")[8] == f"{100 * 0.87 / 0.9:.1f}"   # the full-data teacher's column only
    assert markdown.count("full-data teacher:") == 1
    commands = [line.split(": `")[1] for line in markdown.splitlines() if line.startswith("- conll / teacher")]
    assert commands == ["python tools/train.py --config configs/conll_teacher.yaml`", full_command + "`",
                        CASE_COMMAND + "`"]
    assert [r["variant"] for r in full_teacher.with_recorded(rows[:at + 1], rows)] == \
        ["teacher", "teacher_full", "teacher_case_ids"]


def test_a_run_without_case_ids_is_refused_as_the_case_ids_row(world, tmp_path):
    run, out = _conll_run(tmp_path / "plain", 0.87, case_ids=False), world[1]
    results_before = (out / "benchmarks" / "results.json").read_bytes()
    markdown_before = (out / "docs" / "benchmarks.md").read_bytes()
    with pytest.raises(UserError, match=r"plain/config.yaml: model.case_ids is None; --variant case_ids records"):
        _record(run, out, CASE_COMMAND, "--variant", "case_ids")
    assert (out / "benchmarks" / "results.json").read_bytes() == results_before
    assert (out / "docs" / "benchmarks.md").read_bytes() == markdown_before
