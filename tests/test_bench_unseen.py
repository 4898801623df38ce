"""The unseen-data benchmark (benchmarks/unseen.py): its four commands, the goals computed from report.json
figures, and the rendered doc with missing runs and repo-relative commands only."""
import json
import re

import pytest

from benchmarks import unseen, unseen_record
from ernie_tiny_distill.errors import UserError

MACHINE_PATH = re.compile(r"(?<![\w.~-])/(?:work|root|tmp)/")


def _report(task, metric, teacher, fp32, int8, control, kd_gain, seconds, reused=False, layers=2, hidden=128):
    """The report.json keys benchmarks/unseen.py reads, as tools/distill.py writes them."""
    return {
        "task": task, "metric": metric, "split": "test",
        "data": {"train": 100, "dev": 10, "test": 50, "labels": 6},
        "teacher": {"layers": 6, "hidden": 384, "fp32": teacher, "reused": reused},
        "student": {"layers": layers, "hidden": hidden, "fp32": fp32, "int8": int8,
                    "pct_of_teacher_fp32": round(100 * fp32 / teacher, 2),
                    "pct_of_teacher_int8": round(100 * int8 / teacher, 2)},
        "latency": {"teacher_fp32": {"p50_ms": 10.0, "backend": "auto", "backend_used": "paddle"},
                    "student_fp32": {"p50_ms": 2.0, "backend": "auto", "backend_used": "onnx"},
                    "student_int8": {"p50_ms": 0.5, "backend": "onnx"},  # a report older than backend_used
                    "speedup_fp32": 5.0, "speedup_int8": 20.0},
        "control": {"test": {metric: control}, "kd_gain": kd_gain},
        "time": {"steps_total_seconds": seconds},
    }


# TREC 10x: 0.95 / 0.96 = 98.96% (met at >= 98), KD gain +0.5 point (missed), 30 min (met)
TREC_10X = _report("classification", "accuracy", 0.96, 0.95, 0.94, 0.945, 0.005, 1800.0)
# MIT 5x: 0.78 / 0.80 = 97.5% (missed at >= 98), KD gain +2 points (met), 75 min (missed)
MIT_5X = _report("ner", "f1", 0.80, 0.78, 0.77, 0.76, 0.02, 4500.0, reused=True, layers=3, hidden=256)


def test_the_commands_are_the_pipeline_runs_in_order_with_two_more_seeds_at_10x():
    mit = ("python tools/distill.py --task ner --train ../shared/datasets/mit_restaurant/train.txt "
           "--test ../shared/datasets/mit_restaurant/test.txt")
    trec = ("python tools/distill.py --task classification --train ../shared/datasets/trec/train_5500.label "
            "--test ../shared/datasets/trec/TREC_10.label --format label_text --encoding latin-1")
    mit_seed = f"{mit} --speedup 10 --control --teacher runs/unseen/mit_restaurant_10x/teacher"
    trec_seed = f"{trec} --speedup 10 --control --teacher runs/unseen/trec_10x/teacher"
    assert [unseen.command_text(n) for n in unseen.RUN_NAMES] == [
        f"{mit} --speedup 10 --control --out runs/unseen/mit_restaurant_10x --threads 1",
        f"{mit} --speedup 5 --control --teacher runs/unseen/mit_restaurant_10x/teacher "
        "--out runs/unseen/mit_restaurant_5x --threads 1",
        f"{mit_seed} --out runs/unseen/mit_restaurant_10x_seed2 --threads 1 train.seed=2",
        f"{mit_seed} --out runs/unseen/mit_restaurant_10x_seed3 --threads 1 train.seed=3",
        f"{trec} --speedup 10 --control --out runs/unseen/trec_10x --threads 1 data.label_separator=:",
        f"{trec} --speedup 5 --control --teacher runs/unseen/trec_10x/teacher --out runs/unseen/trec_5x "
        "--threads 1 data.label_separator=:",
        f"{trec_seed} --out runs/unseen/trec_10x_seed2 --threads 1 data.label_separator=: train.seed=2",
        f"{trec_seed} --out runs/unseen/trec_10x_seed3 --threads 1 data.label_separator=: train.seed=3",
    ]
    assert unseen.parse_name("mit_restaurant_10x_seed3") == ("mit_restaurant", 10, 3)
    assert unseen.parse_name("trec_5x") == ("trec", 5, None)


def test_goals_are_computed_from_the_report_figures():
    trec = {r["goal"]: r for r in unseen.goal_rows("trec_10x", TREC_10X)}
    assert trec["10x student FP32, % of teacher"]["value"] == 98.96
    assert trec["10x student FP32, % of teacher"]["met"] is True                  # >= 98
    assert trec["10x student INT8, % of teacher"]["value"] == 97.92               # 0.94 / 0.96
    assert trec["10x student INT8, % of teacher"]["met"] is False
    assert trec["10x KD − no-KD (test, points)"]["value"] == pytest.approx(0.5)
    assert trec["10x KD − no-KD (test, points)"]["met"] is False                   # < +1.0
    assert trec["10x run's total time"]["value"] == 30.0 and trec["10x run's total time"]["met"] is True
    mit = {r["goal"]: r for r in unseen.goal_rows("mit_restaurant_5x", MIT_5X)}
    assert mit["5x student FP32, % of teacher"]["target"] == 98.0                  # NER at 5x
    assert mit["5x student FP32, % of teacher"]["met"] is False                    # 97.5
    assert mit["5x KD − no-KD (test, points)"]["met"] is True                      # +2.0
    assert mit["5x run's total time"]["value"] == 75.0 and mit["5x run's total time"]["met"] is False
    # with the other seeds' runs the score goals take the mean: FP32 (98.96 + 96.88) / 2
    seed2 = _report("classification", "accuracy", 0.96, 0.93, 0.93, 0.92, 0.01, 900.0, reused=True)
    both = {r["goal"]: r for r in unseen.goal_rows("trec_10x", TREC_10X, [seed2])}
    assert both["10x student FP32, % of teacher (mean of 2 seeds)"]["value"] == pytest.approx(97.92)
    assert both["10x student FP32, % of teacher (mean of 2 seeds)"]["met"] is False
    assert both["10x KD − no-KD (test, points) (mean of 2 seeds)"]["value"] == pytest.approx(0.75)
    assert both["10x run's total time"]["value"] == 30.0  # the first run's, which trained the teacher
    missing = unseen.goal_rows("trec_5x", None)
    assert [r["target"] for r in missing] == [99.5, 99.5, 1.0, 60.0]
    assert {r["value"] for r in missing} == {None} and {r["met"] for r in missing} == {None}


def test_the_doc_has_a_table_per_data_set_the_goals_and_the_missing_runs():
    lines = unseen.render({"trec_10x": TREC_10X, "mit_restaurant_5x": MIT_5X}).splitlines()
    assert lines[0] == "# Unseen data: TREC and MIT Restaurant"
    assert "rendered by `python -m benchmarks.unseen report`" in lines[2]
    assert [ln for ln in lines if ln.startswith("## ")] == [
        "## MIT Restaurant (NER, 8 entity types)", "## TREC (question classification, 6 coarse classes)",
        "## Commands"]
    assert "| teacher FP32 (6x384) | 0.9600 | 100.00 | — | Paddle Inference | 10.00 | 1.00 | 30.0 |" in lines
    assert "| 10x student FP32 (2x128) | 0.9500 | 98.96 | +0.50 | ONNX Runtime | 2.00 | 5.00 | 30.0 |" in lines
    # INT8 gain: the exported INT8 score minus the control, 0.94 - 0.945
    assert "| 10x student INT8 (2x128) | 0.9400 | 97.92 | -0.50 | ONNX Runtime | 0.50 | 20.00 | 30.0 |" in lines
    assert "| 10x no-KD control (2x128, FP32) | 0.9450 | 98.44 | 0 (reference) | — | — | — | 30.0 |" in lines
    assert "| 5x student FP32 (3x256) | 0.7800 | 97.50 | +2.00 | ONNX Runtime | 2.00 | 5.00 | 75.0 |" in lines
    assert "| 10x KD − no-KD (test, points) | ≥ 1 pt | +0.50 pt | missed |" in lines
    assert "| 5x run's total time | ≤ 60 min | 75.00 min | missed |" in lines
    assert "| 5x student FP32, % of teacher | ≥ 99.5% | not run yet | — |" in lines
    assert any("5x run reuses the 10x run's teacher" in ln for ln in lines)
    assert [ln for ln in lines if ln.startswith("- ")] == [
        f"- {n}: `{unseen.command_text(n)}`" for n in ("mit_restaurant_10x", "mit_restaurant_10x_seed2",
                                                      "mit_restaurant_10x_seed3", "trec_5x", "trec_10x_seed2",
                                                      "trec_10x_seed3")]


def test_the_doc_gives_each_seed_of_the_10x_recipe_and_their_mean():
    seed3 = _report("classification", "accuracy", 0.96, 0.93, 0.93, 0.92, 0.01, 900.0, reused=True)
    lines = unseen.render({"trec_10x": TREC_10X, "trec_10x_seed3": seed3}).splitlines()
    assert "| 42 | 0.9500 | 98.96 | 0.9400 | 97.92 | +0.50 |" in lines
    assert "| 3 | 0.9300 | 96.88 | 0.9300 | 96.88 | +1.00 |" in lines
    assert "| mean | 0.9400 | 97.92 | 0.9350 | 97.40 | +0.75 |" in lines
    assert "| 10x student FP32, % of teacher (mean of 2 seeds) | ≥ 98% | 97.92% | missed |" in lines


def test_runs_read_from_other_directories_leave_no_machine_path_in_the_doc(tmp_path):
    run_dir = tmp_path / "trec10"
    run_dir.mkdir()
    (run_dir / "report.json").write_text(json.dumps(TREC_10X), encoding="utf-8")
    out = tmp_path / "doc.md"
    assert unseen.main(["report", "--runs-dir", str(tmp_path / "none"), "--run", f"trec_10x={run_dir}",
                        "--out", str(out), "--record", str(tmp_path / "record.json")]) == 0
    text = out.read_text(encoding="utf-8")
    assert "| 10x student FP32 (2x128) | 0.9500 | 98.96 |" in text
    assert "--out runs/unseen/trec_10x" in text and "- trec_10x:" not in text
    assert [ln for ln in text.splitlines() if MACHINE_PATH.search(ln)] == []


def test_a_run_override_names_one_of_the_four_runs():
    assert unseen.parse_run_overrides(["trec_5x=runs/t5"]) == {"trec_5x": "runs/t5"}
    with pytest.raises(UserError, match="unknown run 'trec_20x'"):
        unseen.parse_run_overrides(["trec_20x=runs/t"])
    with pytest.raises(UserError, match="expected NAME=DIR"):
        unseen.parse_run_overrides(["trec_5x"])


def test_run_skips_finished_runs_and_needs_the_10x_teacher_for_5x(tmp_path, monkeypatch, capsys):
    called = []
    monkeypatch.setattr(unseen.subprocess, "call", lambda args, cwd: called.append(args) or 0)
    for name in ("trec_10x", "trec_5x"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "report.json").write_text("{}", encoding="utf-8")
    assert unseen.main(["run", "--runs-dir", str(tmp_path), "--only", "trec_5x"]) == 0
    assert called == [] and "trec_5x: finished" in capsys.readouterr().out
    # --again calls a finished run too (the pipeline skips its unchanged steps)
    (tmp_path / "trec_10x" / "teacher").mkdir()
    assert unseen.main(["run", "--runs-dir", str(tmp_path), "--only", "trec_5x", "--again"]) == 0
    assert len(called) == 1
    args = called.pop()
    assert args[args.index("--out") + 1] == str(tmp_path / "trec_5x")
    # MIT: the 10x run starts; the 5x run finds no 10x teacher and stops
    assert unseen.main(["run", "--runs-dir", str(tmp_path)]) == 1
    assert len(called) == 1
    assert called[0][1:4] == ["tools/distill.py", "--task", "ner"]
    assert called[0][called[0].index("--out") + 1] == str(tmp_path / "mit_restaurant_10x")
    assert "mit_restaurant_5x: needs the 10x run's teacher" in capsys.readouterr().err
    (tmp_path / "mit_restaurant_10x" / "teacher").mkdir(parents=True)
    assert unseen.main(["run", "--runs-dir", str(tmp_path), "--only", "mit_restaurant_5x"]) == 0
    assert called[1][called[1].index("--teacher") + 1] == str(tmp_path / "mit_restaurant_10x" / "teacher")


def test_the_record_keeps_each_shown_run_without_machine_paths_and_fills_in_runs_not_run_again(tmp_path):
    runs = tmp_path / "runs"
    for name, report in (("trec_10x", TREC_10X), ("mit_restaurant_5x", MIT_5X)):
        (runs / name).mkdir(parents=True)
        located = {**report, "student": {**report["student"], "dir": "/srv/runs/x/student/best"},
                   "commands": {"serve": "python tools/serve.py --model /srv/runs/x/export/student"}}
        if name == "trec_10x":
            located["assistant"] = {"recipe": "/srv/main/configs/recipes/classification_5x.yaml", "layers": 3,
                                    "hidden": 384, "dev": {"accuracy": 0.9431}, "weight": 1.0}
        (runs / name / "report.json").write_text(json.dumps(located), encoding="utf-8")
    record, doc = tmp_path / "record.json", tmp_path / "doc.md"
    assert unseen.main(["report", "--runs-dir", str(runs), "--out", str(doc), "--record", str(record)]) == 0
    written = json.loads(record.read_text(encoding="utf-8"))["runs"]
    assert sorted(written) == ["mit_restaurant_5x", "trec_10x"]
    assert "dir" not in written["trec_10x"]["student"] and "commands" not in written["trec_10x"]
    assert written["trec_10x"]["assistant"]["recipe"] == "classification_5x.yaml"
    assert written["trec_10x"]["student"]["fp32"] == 0.95
    assert ("The 10x student learns from the teacher and an assistant distilled first, a 3x384 student "
            "(classification_5x.yaml, dev accuracy 0.9431; weight 1 beside the teacher's 1); its run time "
            "includes the assistant's.") in doc.read_text(encoding="utf-8").splitlines()

    # only the 10x run repeated: without the flag the doc shows it alone; with it, the 5x run comes from the record
    (runs / "mit_restaurant_5x" / "report.json").unlink()
    assert unseen.main(["report", "--runs-dir", str(runs), "--out", str(doc), "--record", str(tmp_path / "r2.json"),
                        ]) == 0
    assert "| 5x student FP32 (3x256) |" not in doc.read_text(encoding="utf-8")
    assert unseen.main(["report", "--runs-dir", str(runs), "--out", str(doc), "--record", str(record),
                        "--keep-committed-runs"]) == 0
    text = doc.read_text(encoding="utf-8")
    assert "| 5x student FP32 (3x256) | 0.7800 | 97.50 | +2.00 |" in text
    assert ("Taken from the committed record (`benchmarks/unseen_results.json`, written when the doc was last "
            "rendered from their run directories), not run again: mit_restaurant_5x.") in text.splitlines()
    assert [ln for ln in text.splitlines() if MACHINE_PATH.search(ln) or "/srv/" in ln] == []
    assert sorted(json.loads(record.read_text(encoding="utf-8"))["runs"]) == ["mit_restaurant_5x", "trec_10x"]
    assert "/srv/" not in record.read_text(encoding="utf-8")


def test_a_record_that_is_not_the_unseen_record_is_refused_by_name(tmp_path):
    bad = tmp_path / "record.json"
    bad.write_text(json.dumps({"trec_10x": {}}), encoding="utf-8")
    with pytest.raises(UserError, match="record.json.*expected an object"):
        unseen_record.read(str(bad))
    assert unseen_record.read(str(tmp_path / "missing.json")) == {}
