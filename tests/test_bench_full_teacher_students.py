"""Students of the full-data teacher (`python -m benchmarks.full_teacher_students`), recorded from fake finished
runs into copies of the committed results file and report: one row over the seeds after the student's last row,
its shape and speed from the matrix row it follows, its command listed; runs of another teacher are refused."""
import json
from pathlib import Path

import pytest
import yaml

from benchmarks import full_teacher_students
from benchmarks.report import row_command_lines
from helpers import committed_report_without
from ernie_tiny_distill.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
TEACHER = "runs/imdb_teacher_full"
COMMAND = ("python tools/train.py --config runs/bench/configs/imdb_Bp_task_kd_transfer50k_seed1.yaml "
           "output_dir=runs/imdb_full_teacher/Bp/seed{seed} train.seed={seed} model.teacher=" + TEACHER)
MODEL = "student Bp 2L-128H (pruned)"


@pytest.fixture
def world(tmp_path, monkeypatch):
    rows, markdown = committed_report_without(lambda r: r.get("taught_by"))
    full = next(r for r in rows if r["task"] == "imdb" and r["variant"] == "teacher_full")
    monkeypatch.chdir(tmp_path)
    teacher = tmp_path / TEACHER
    teacher.mkdir(parents=True)
    (teacher / "summary.json").write_text(json.dumps({"test": {"accuracy": full["metric"]}}))
    out = tmp_path / "out"
    (out / "benchmarks").mkdir(parents=True)
    (out / "docs").mkdir()
    (out / "benchmarks" / "results.json").write_text(json.dumps(rows, indent=2), encoding="utf-8")
    (out / "docs" / "benchmarks.md").write_text(markdown, encoding="utf-8")
    return out


def _run(name, seed, accuracy, teacher=TEACHER):
    run = Path("runs") / name
    run.mkdir(parents=True)
    (run / "summary.json").write_text(json.dumps({
        "stage": "task", "dev": {"accuracy": accuracy + 0.01}, "test": {"accuracy": accuracy}, "layers": 2,
        "hidden": 128, "train_examples": 4000, "transfer_examples": 50000, "seconds": 100.0}))
    (run / "config.yaml").write_text(yaml.safe_dump({
        "model": {"teacher": teacher}, "train": {"seed": seed},
        "distill": {"teachers": [{"path": teacher, "weight": 1.0, "export": "runs/export"}]}}))
    return str(run)


def _record(out, runs, command=COMMAND, like="task_kd_transfer50k", variant=None):
    return full_teacher_students.main(["--runs", *runs, "--teacher-run", TEACHER, "--like", like,
                                       "--command", command, "--out-dir", str(out),
                                       *(["--variant", variant] if variant else [])])


def test_the_row_averages_the_seeds_and_follows_the_students_last_row(world):
    before = json.loads((world / "benchmarks" / "results.json").read_text(encoding="utf-8"))
    assert _record(world, [_run("s1", 1, 0.86), _run("s2", 2, 0.88)]) == 0
    rows = json.loads((world / "benchmarks" / "results.json").read_text(encoding="utf-8"))
    assert len(rows) == len(before) + 1
    at = next(i for i, r in enumerate(rows) if r.get("taught_by"))
    row, like = rows[at], next(r for r in before if r["task"] == "imdb" and r["model"] == MODEL
                                and r["variant"] == "task_kd_transfer50k")
    assert row["variant"] == "task_kd_transfer50k_full_teacher" and row["model"] == MODEL
    assert row["metric"] == pytest.approx(0.87) and row["seeds"] == [1, 2]
    assert row["per_seed"] == {"1": 0.86, "2": 0.88} and row["dev_metric"] == pytest.approx(0.88)
    assert row["latency_ms_p50"] == like["latency_ms_p50"] and row["size_mb"] == like["size_mb"]
    assert row["train_commands"][1].endswith("Bp/seed2 train.seed=2 model.teacher=" + TEACHER)
    assert rows[at + 1]["model"] != MODEL and rows[at - 1]["model"] == MODEL   # after the student's last row
    markdown = (world / "docs" / "benchmarks.md").read_text(encoding="utf-8")
    full = next(r for r in rows if r["task"] == "imdb" and r["variant"] == "teacher_full")
    pct_full = f"{100 * 0.87 / full['metric']:.1f}"
    assert f"| {MODEL} | task_kd_transfer50k_full_teacher | 2×128 |" in markdown
    assert f"| 87.00 ± 1.41 (seeds 1,2) | {row['pct_of_teacher']:.1f} | {pct_full} |" in markdown
    assert "\n".join(row_command_lines(like)) + "\n" + "\n".join(row_command_lines(row)) in markdown
    # the ablation grows by the row, after its student's matrix rows, with its dev and test scores
    ablation = markdown.split(full_teacher_students.ABLATION_HEADING)[1].split("\n\n")[0].splitlines()
    mine = [ln for ln in ablation if "| task_kd_transfer50k_full_teacher |" in ln]
    assert mine == [f"| imdb | {MODEL} | task_kd_transfer50k_full_teacher | task_kd_transfer50k taught by the "
                    "full-data teacher | 88.00 | 87.00 |"]
    assert ablation.index(mine[0]) == max(i for i, ln in enumerate(ablation) if f"| imdb | {MODEL} |" in ln)


def test_recording_again_replaces_the_row(world):
    _record(world, [_run("s1", 1, 0.86)], command=COMMAND.replace("{seed}", "1"))
    _record(world, [_run("t1", 1, 0.85), _run("t2", 2, 0.87), _run("t3", 3, 0.89)])
    rows = json.loads((world / "benchmarks" / "results.json").read_text(encoding="utf-8"))
    recorded = [r for r in rows if r.get("taught_by")]
    assert len(recorded) == 1 and recorded[0]["seeds"] == [1, 2, 3]
    markdown = (world / "docs" / "benchmarks.md").read_text(encoding="utf-8")
    assert markdown.count("task_kd_transfer50k_full_teacher:") == 1   # one command entry


def test_a_named_variant_is_a_row_of_its_own_after_the_default_one(world):
    _record(world, [_run("s1", 1, 0.86)], command=COMMAND.replace("{seed}", "1"))
    _record(world, [_run("m1", 1, 0.88)], command=COMMAND.replace("{seed}", "1") + " data.max_train_examples=null",
            variant="task_kd_transfer74k_full_teacher")
    rows = json.loads((world / "benchmarks" / "results.json").read_text(encoding="utf-8"))
    recorded = [(r["variant"], r["like"], r["metric"]) for r in rows if r.get("taught_by")]
    assert recorded == [("task_kd_transfer50k_full_teacher", "task_kd_transfer50k", 0.86),
                        ("task_kd_transfer74k_full_teacher", "task_kd_transfer50k", 0.88)]
    markdown = (world / "docs" / "benchmarks.md").read_text(encoding="utf-8")
    assert f"| {MODEL} | task_kd_transfer74k_full_teacher | 2×128 |" in markdown
    assert markdown.count("task_kd_transfer74k_full_teacher:") == 1
    with pytest.raises(UserError, match="ending in '_full_teacher'"):
        _record(world, [_run("m2", 1, 0.88)], command=COMMAND.replace("{seed}", "1"), variant="all_labels")


def test_a_regenerated_report_keeps_the_recorded_row_after_its_student(world):
    _record(world, [_run("s1", 1, 0.86)], command=COMMAND.replace("{seed}", "1"))
    results = json.loads((world / "benchmarks" / "results.json").read_text(encoding="utf-8"))
    fresh = [r for r in results if not r.get("taught_by")]
    assert full_teacher_students.with_recorded(fresh, results) == results


@pytest.mark.parametrize("case, message", [
    ("other teacher", "expected runs/imdb_teacher_full"),
    ("teacher metric", "the teacher_full row [0-9.]+: not the recorded teacher"),
    ("no seed slot", "write {seed}"),
    ("absolute path", "relative to the repository"),
    ("shape", "expected one imdb row of that variant"),
])
def test_runs_that_do_not_fit_the_row_are_refused(world, case, message):
    runs, command, like = [_run("s1", 1, 0.86), _run("s2", 2, 0.87)], COMMAND, "task_kd_transfer50k"
    if case == "other teacher":
        runs[1] = _run("o2", 2, 0.87, teacher="runs/bench/imdb/teacher")
    elif case == "teacher metric":
        Path(TEACHER, "summary.json").write_text(json.dumps({"test": {"accuracy": 0.5}}))
    elif case == "no seed slot":
        command = COMMAND.replace("{seed}", "1")
    elif case == "absolute path":
        command = COMMAND.replace("runs/bench", "/" + "srv/runs/bench")   # an absolute path
    else:
        like = "no_kd_nonexistent"
    with pytest.raises(UserError, match=message):
        _record(world, runs, command=command, like=like)


CASE_TEACHER = "runs/conll_teacher_case"
CASE_COMMAND = ("python tools/train.py --config runs/bench/configs/conll_Bp_kd_recipe_aug_seed1.yaml "
                "output_dir=runs/conll_case/Bp/seed{seed} train.seed={seed} model.teacher=" + CASE_TEACHER +
                " model.case_ids=true")


def _conll_run(name, seed, f1, case_ids=True):
    run = Path("runs") / name
    run.mkdir(parents=True)
    (run / "summary.json").write_text(json.dumps({
        "stage": "task", "dev": {"f1": f1 + 0.01}, "test": {"f1": f1}, "layers": 2, "hidden": 128,
        "train_examples": 14041, "transfer_examples": 14041, "seconds": 100.0}))
    (run / "config.yaml").write_text(yaml.safe_dump({
        "model": {"teacher": CASE_TEACHER, "case_ids": case_ids}, "train": {"seed": seed}}))
    return str(run)


def _record_case(out, runs):
    return full_teacher_students.main(["--runs", *runs, "--teacher-run", CASE_TEACHER, "--like", "kd_recipe_aug",
                                       "--command", CASE_COMMAND, "--taught-by", "case_ids", "--out-dir", str(out)])


def test_students_of_the_case_ids_teacher_are_compared_with_it(world):
    rows = json.loads((world / "benchmarks" / "results.json").read_text(encoding="utf-8"))
    case = next(r for r in rows if r["task"] == "conll" and r["variant"] == "teacher_case_ids")
    Path(CASE_TEACHER).mkdir(parents=True)
    Path(CASE_TEACHER, "summary.json").write_text(json.dumps({"test": {"f1": case["metric"]}}))
    assert _record_case(world, [_conll_run("c1", 1, 0.84), _conll_run("c2", 2, 0.86)]) == 0   # --task: conll
    after = json.loads((world / "benchmarks" / "results.json").read_text(encoding="utf-8"))
    row = next(r for r in after if r.get("taught_by"))
    assert (row["task"], row["variant"], row["like"], row["taught_by"]) == (
        "conll", "kd_recipe_aug_case_ids", "kd_recipe_aug", "teacher_case_ids")
    assert row["metric"] == pytest.approx(0.85)
    markdown = (world / "docs" / "benchmarks.md").read_text(encoding="utf-8")
    cells = f"| 85.00 ± 1.41 (seeds 1,2) | {row['pct_of_teacher']:.1f} | {100 * 0.85 / case['metric']:.1f} |"
    assert f"| {MODEL} | kd_recipe_aug_case_ids | 2×128 |" in markdown and cells in markdown
    with pytest.raises(UserError, match="model.case_ids is not true"):
        _record_case(world, [_conll_run("u1", 1, 0.84, case_ids=False)])
