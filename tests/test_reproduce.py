"""tools/reproduce.py machinery on a miniature matrix: a tiny random teacher, demo reviews, two student rows.

Proves: generated configs run through tools/train.py, results.json has the report's row schema, a second
invocation retrains nothing, --only/--skip select rows (and pull in dependencies), and the report is written.
"""
import json
import os
import time
from pathlib import Path

import pytest
import yaml
from helpers import call_in_process

from benchmarks import effects, report
from benchmarks import rows as bench_rows
from benchmarks import runner
from benchmarks.cli import main as reproduce_main
from benchmarks.jobs import Matrix
from benchmarks.profile import Profile, profile_from_dict
from ernie_tiny_distill.data.demo import write_demo_data
from ernie_tiny_distill.models.random_teacher import write_random_teacher
from ernie_tiny_distill.train import stages

ROOT = Path(__file__).resolve().parents[1]

ROW_KEYS = {"task", "model", "variant", "layers", "hidden", "params", "nonembedding_params", "size_mb", "metric_name",
            "metric", "metric_std", "seeds", "pct_of_teacher", "latency_ms_p50", "latency_ms_p95", "throughput_per_s",
            "speedup_vs_teacher", "command"}


def tiny_profile(root: Path) -> Profile:
    paths = write_demo_data(str(root / "demo"))
    with open(paths["sentiment_unlabeled"], encoding="utf-8") as f:
        texts = f.read().splitlines()
    pretrained = write_random_teacher(str(root / "pretrained"), texts, num_layers=2, hidden_size=32, num_heads=2,
                                      intermediate_size=64)
    teacher_yaml = root / "teacher.yaml"
    if not teacher_yaml.exists():
        teacher_yaml.write_text(yaml.safe_dump({
            "task": "classification", "stage": "teacher", "output_dir": str(root / "runs" / "demo" / "teacher"),
            "data": {"format": "demo", "path": str(root / "demo"), "max_train_examples": 48,
                     "max_dev_examples": 24, "max_test_examples": 24},
            "model": {"teacher": pretrained, "max_seq_length": 48},
            "train": {"epochs": 2, "batch_size": 8, "learning_rate": 3e-3, "num_threads": 1, "progress": False,
                      "log_every": 2},
        }))
    return profile_from_dict({
        "name": "tiny", "runs_dir": str(root / "runs"), "config_dir": str(root / "configs"),
        "out_dir": str(root / "out"),
        "tasks": {"demo": {"teacher_config": str(teacher_yaml), "unlabeled": "demo", "max_unlabeled": 48,
                           "transfer": True, "no_kd_epochs": 2, "kd_epochs": 1, "general_epochs": 1, "tfidf": True,
                           "title": "demo reviews"}},
        "students": {"B": {"model": {"init": "config", "num_layers": 1, "hidden_size": 16, "num_heads": 2,
                                     "intermediate_size": 32, "embeddings": "teacher_pca"}, "seeds": [1]}},
        "variants": {"no_kd": {"kd": False}, "task_kd": {}, "two_stage_kd": {"stage1": True}},
        "sweep": None, "nokd_sweep_lr": None,
        "fixed": {"temperature": 2.0, "ce_weight": 0.5, "learning_rate": 3e-3, "nokd_learning_rate": 3e-3},
        "general": {"learning_rate": 3e-3, "hidden_weight": 1.0, "attention_weight": 1.0},
        "train": {"batch_size": 8, "eval_batch_size": 16, "warmup_ratio": 0.1, "weight_decay": 0.01, "log_every": 2,
                  "num_threads": 1, "progress": False},
        "tfidf_grid": [1.0], "extra_distill": {"allow_weak_teacher": True}, "quiet_timeout": 0})


@pytest.fixture(scope="module")
def mini(tmp_path_factory):
    root = tmp_path_factory.mktemp("reproduce")
    profiles = {"tiny": lambda: tiny_profile(root)}
    cwd = os.getcwd()
    os.chdir(ROOT)  # tools/train.py paths in the recorded commands are relative to the repository root
    try:
        with pytest.MonkeyPatch.context() as patch:
            # each job's command line runs in this process: Paddle is imported once, not once per job
            patch.setattr(runner.subprocess, "call", call_in_process)
            first = reproduce_main(["--task", "demo", "--profile", "tiny", "--only", "demo/B/task_kd",
                                    "--only", "demo/tfidf_lr/subset", "--skip", "export,latency"], profiles=profiles)
    finally:
        os.chdir(cwd)
    return root, profiles, first


def test_selection_by_name_prefix_component_and_glob(tmp_path):
    m = Matrix(tiny_profile(tmp_path), ["demo"])
    names = [j.name for j in m.jobs()]
    assert names[0] == "demo/tfidf_lr/subset" and names[-1] == "demo/latency"  # latency is measured last
    picked = [j.name for j in m.select(["demo/B/task_kd/seed1"])]
    assert picked == ["demo/teacher", "demo/B/sweep/select", "demo/B/task_kd/seed1"]  # dependencies come along
    assert [j.name for j in m.select(["demo/B/task_kd"], ["teacher"])] == ["demo/B/sweep/select",
                                                                           "demo/B/task_kd/seed1"]
    everything = {j.name for j in m.select()}
    without = {j.name for j in m.select([], ["export,latency", "int8"])}
    assert everything - without == {"demo/export/teacher", "demo/export/B", "demo/int8/B", "demo/latency"}
    assert {j.name for j in m.select(["*/B/*/seed1"])} >= {"demo/B/no_kd/seed1", "demo/B/two_stage_kd/seed1"}
    two_stage = m.stages(next(j for j in m.jobs() if j.name == "demo/B/two_stage_kd/seed1"))
    assert [s.name for s in two_stage] == ["demo/B/general/seed1", "demo/B/two_stage_kd/seed1"]
    assert two_stage[1].cfg["model"]["student"]["path"] == os.path.join(two_stage[0].cfg["output_dir"], "best")
    text = Path(two_stage[1].yaml_path).read_text()
    assert f"# Run: python tools/train.py --config {two_stage[1].yaml_path}" in text


def test_rows_run_and_results_schema(mini):
    root, _, first = mini
    assert not first["failed"], first["failed"]
    # the teacher comes along as a dependency of the selected student row
    assert first["ran"] == ["demo/tfidf_lr/subset", "demo/teacher", "demo/B/task_kd/seed1"]
    rows = json.loads((root / "out" / "benchmarks" / "results.json").read_text())
    assert [(r["model"].split()[0], r["variant"]) for r in rows] == [
        ("teacher", "teacher"), ("student", "task_kd"), ("TF-IDF", "tfidf_lr")]
    for r in rows:
        assert ROW_KEYS <= set(r), ROW_KEYS - set(r)
        assert r["task"] == "demo" and r["metric_name"] == "accuracy" and 0.0 <= r["metric"] <= 1.0
    teacher, task_kd, tfidf = rows
    assert teacher["pct_of_teacher"] == 100.0 and teacher["layers"] == 2 and teacher["hidden"] == 32
    assert task_kd["layers"] == 1 and task_kd["hidden"] == 16 and task_kd["seeds"] == [1]
    assert task_kd["params"] > task_kd["nonembedding_params"] > 0
    assert abs(task_kd["pct_of_teacher"] - 100 * task_kd["metric"] / teacher["metric"]) < 1e-9
    # every training command recorded is the generated config through tools/train.py, and reproduces the row
    cmd = task_kd["train_commands"][0]
    assert cmd.startswith("python tools/train.py --config ") and cmd.endswith("demo_B_task_kd_seed1.yaml")
    cfg = yaml.safe_load(Path(cmd.split("--config ")[1]).read_text())
    assert cfg["distill"]["kd_weight"] == 1.0 and cfg["data"]["unlabeled"] == "demo"
    assert cfg["train"]["epochs"] == 1.0 and cfg["train"]["num_threads"] == 1
    m = Matrix(tiny_profile(root), ["demo"])
    nokd_cfg = m.stages(next(j for j in m.jobs() if j.name == "demo/B/no_kd/seed1"))[0].cfg
    assert nokd_cfg["distill"]["kd_weight"] == 0.0 and nokd_cfg["data"]["unlabeled"] is None
    assert nokd_cfg["data"] == {**cfg["data"], "unlabeled": None, "max_unlabeled_examples": None}
    assert nokd_cfg["train"]["epochs"] == 2.0 and nokd_cfg["data"]["max_test_examples"] == 24
    assert tfidf["command"].startswith("python -m ernie_tiny_distill.distill.tfidf --config")


def test_rerun_skips_finished_rows(mini):
    root, profiles, _ = mini
    summary = root / "runs" / "demo" / "B" / "task_kd" / "seed1" / "summary.json"
    before = summary.stat().st_mtime_ns
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        started = time.time()
        again = reproduce_main(["--task", "demo", "--profile", "tiny", "--only", "demo/B/task_kd,tfidf_lr/subset",
                                "--skip", "export,latency", "--no-report"], profiles=profiles)
    finally:
        os.chdir(cwd)
    assert again["ran"] == [] and not again["failed"]
    assert set(again["done"]) == {"demo/tfidf_lr/subset", "demo/teacher", "demo/B/sweep/select",
                                  "demo/B/task_kd/seed1"}
    assert summary.stat().st_mtime_ns == before
    assert time.time() - started < 10


def test_report_only_writes_markdown_and_figure(mini):
    root, profiles, _ = mini
    out = reproduce_main(["--task", "demo", "--profile", "tiny", "--report-only"], profiles=profiles)
    md = Path(out["report"]["markdown"]).read_text()
    assert "| model | variant | L×H |" in md and "| student B 1L-16H | task_kd | 1×16 |" in md
    assert "## Goals" in md and "## Summary" in md
    assert "python tools/train.py --config" in md
    pytest.importorskip("matplotlib")
    assert Path(out["report"]["figure"]).is_file()


def test_report_fills_the_readme_between_markers_only(mini, tmp_path):
    root, profiles, _ = mini
    readme = root / "out" / "README.md"
    readme.write_text(f"# Title\n\nbefore\n{report.README_BEGIN}\nstale table\n{report.README_END}\nafter\n")
    out = reproduce_main(["--task", "demo", "--profile", "tiny", "--report-only"], profiles=profiles)
    text = readme.read_text()
    assert out["report"]["readme"] == str(readme)
    assert "stale table" not in text
    assert text.startswith("# Title\n\nbefore\n") and text.endswith(f"{report.README_END}\nafter\n")
    assert "| demo reviews | teacher, 2 layers x 32 |" in text and "(docs/benchmarks.md)" in text
    assert "`python tools/reproduce.py --task demo --profile tiny --report-only`" in text
    assert not report.update_readme(str(tmp_path / "missing.md"), "x")
    plain = tmp_path / "plain.md"
    plain.write_text("no markers\n")
    assert not report.update_readme(str(plain), "x") and plain.read_text() == "no markers\n"


def test_config_schema_additions_do_not_invalidate_finished_runs(tmp_path):
    m = Matrix(tiny_profile(tmp_path), ["demo"])
    stage = m.stages(next(j for j in m.jobs() if j.name == "demo/B/no_kd/seed1"))[0]
    old = json.loads(json.dumps(stage.cfg))
    del old["train"]["amp"]                      # written by an older version of the package
    assert stages.same_config(old, stage.cfg)
    old["train"]["learning_rate"] = 1.0
    assert not stages.same_config(old, stage.cfg)


def test_stage1_and_kd_gain_compare_rows_on_the_seeds_both_ran():
    row = {"task": "x", "model": "student B 2L-128H", "metric_name": "accuracy", "pct_of_teacher": 95.0}
    nokd = dict(row, variant="no_kd", metric=0.78, metric_std=0.01, per_seed={"1": 0.77, "2": 0.78, "3": 0.79})
    kd = dict(row, variant="task_kd", metric=0.80, metric_std=0.01, per_seed={"1": 0.79, "2": 0.80, "3": 0.81})
    two = dict(row, variant="two_stage_kd", metric=0.82, metric_std=None, per_seed={"1": 0.82})
    assert bench_rows._paired(two, kd) == (["1"], 0.82, 0.79)
    (line,) = effects.stage1_effect([nokd, kd, two], ["x"])
    assert line == ("- x, student B: two_stage_kd 82.00 vs task_kd 79.00 (on the seed both ran: 1) = +3.00 points: "
                    "stage 1 helps.")
    lines = bench_rows.goals([nokd, kd, two], ["x"])   # no goals for task x
    assert lines == []
    gains = [g for g in bench_rows.goals([dict(r, task="imdb") for r in (nokd, kd, two)], ["imdb"]) if "beats" in g]
    assert gains[0].endswith("(mean of 3 seeds) — **met**: +2.00 points (80.00 vs 78.00).")
    assert gains[1].endswith("(on the seed both ran: 1) — **met**: +5.00 points (82.00 vs 77.00).")


def test_latency_goal_of_a_carried_row_names_its_own_runs_teacher_time():
    # a row carried over from an earlier run keeps that run's speed-up; today's teacher time beside it would not
    # give that ratio (2.95 ms vs 44.48 ms is 15.1x, not the 11.3x stored)
    teacher = {"task": "imdb", "model": "teacher MiniLM-L6-H384", "variant": "teacher", "metric": 0.86,
               "latency_ms_p50": 44.48}
    b = {"task": "imdb", "model": "student B 2L-128H", "variant": "no_kd", "metric": 0.82, "pct_of_teacher": 95.0,
         "latency_ms_p50": 2.95, "speedup_vs_teacher": 11.3}
    line = next(g for g in bench_rows.goals([teacher, dict(b, carried="an earlier run")], ["imdb"])
                if "student B ≥ 10×" in g)
    assert line.endswith("— **met**: 2.95 ms vs 33.34 ms p50 (both from the earlier run the row is carried over "
                         "from, †) = 11.3×.")
    fresh = next(g for g in bench_rows.goals([teacher, dict(b, speedup_vs_teacher=15.1)], ["imdb"])
                 if "student B ≥ 10×" in g)
    assert fresh.endswith("— **met**: 2.95 ms vs 44.48 ms p50 = 15.1×.")


def test_stage1_effect_compares_born_students_recipe_with_and_without_stage1():
    row = {"task": "x", "model": "student Bp 2L-128H (pruned)", "metric_name": "f1", "pct_of_teacher": 92.0,
           "metric_std": None}
    kd = dict(row, variant="kd_recipe", metric=0.7897, per_seed={"1": 0.7922, "2": 0.7872})
    two = dict(row, variant="two_stage_kd_recipe", metric=0.7944, per_seed={"1": 0.7944})
    (line,) = effects.stage1_effect([kd, two], ["x"])
    assert line == ("- x, student Bp: two_stage_kd_recipe 79.44 vs kd_recipe 79.22 (on the seed both ran: 1) = "
                    "+0.22 points: stage 1 helps.")


def test_selecting_latency_pulls_in_only_the_teacher_export(tmp_path):
    m = Matrix(tiny_profile(tmp_path), ["demo"])
    names = [j.name for j in m.select(["demo/latency"])]
    assert names == ["demo/teacher", "demo/export/teacher", "demo/latency"]


def test_long_input_row_is_compared_with_the_same_recipe_at_the_short_length(tmp_path):
    m = Matrix(tiny_profile(tmp_path), ["demo"])
    m.p.tasks["demo"].long_seq = 64
    short_len = m.teacher_cfg("demo").model.max_seq_length
    row = {"task": "demo", "metric_name": "accuracy", "pct_of_teacher": 90.0, "metric_std": None}
    two = dict(row, model="student B 1L-16H", variant="two_stage_kd", metric=0.75, per_seed={"1": 0.70, "2": 0.80})
    kd = dict(row, model="student B 1L-16H", variant="task_kd", metric=0.9, per_seed={"1": 0.9})
    long_row = dict(row, model="student B 1L-16H, 64 tokens", variant="len64", metric=0.72, per_seed={"1": 0.72},
                    latency_ms_p50=2.0, speedup_vs_teacher=5.0)
    (line,) = effects.long_input_effect([kd, two, long_row], m)
    assert line.startswith(f"- demo, student B, two-stage recipe: 64 tokens 72.00 vs {short_len} tokens 70.00 "
                           "(on the seed both ran: 1) = +2.00 points; p50 latency at 64 tokens 2.00 ms "
                           "(5.0× faster than the teacher at 128).")
    assert effects.long_input_effect([kd, two], m) == ["- demo: not measured yet."]


def test_teacher_export_variant_distills_through_the_teacher_export(tmp_path):
    from benchmarks.profile import Variant

    m = Matrix(tiny_profile(tmp_path), ["demo"])
    m.p.variants["big"] = Variant("big", teacher_export=True, data={"demo": {"max_unlabeled_examples": None}})
    m.p.students["B"].variants = ["task_kd", "big"]
    jobs = {j.name: j for j in m.jobs()}
    assert "demo/export/teacher" in jobs["demo/B/big/seed1"].deps
    assert "demo/export/teacher" not in jobs["demo/B/task_kd/seed1"].deps
    (stage,) = m.stages(jobs["demo/B/big/seed1"])
    teacher_dir = m.teacher_cfg("demo").output_dir
    assert stage.cfg["distill"]["teachers"] == [{"path": teacher_dir, "tfidf": False, "weight": 1.0,
                                                  "export": str(tmp_path / "runs" / "demo" / "export" / "teacher")}]
    assert stage.cfg["data"]["max_unlabeled_examples"] is None
    (plain,) = m.stages(jobs["demo/B/task_kd/seed1"])
    assert plain.cfg["distill"]["teachers"] is None


def test_export_variant_picks_the_recipe_exported_per_task(tmp_path):
    from ernie_tiny_distill.errors import UserError

    p = tiny_profile(tmp_path)
    p.students["B"].deploy_variant = "task_kd"
    p.students["B"].export_variant = {"demo": "no_kd"}
    m = Matrix(p, ["demo"])
    jobs = {j.name: j for j in m.jobs()}
    assert jobs["demo/export/B"].deps == ["demo/B/no_kd/seed1"]
    assert jobs["demo/int8/B"].extra["row"] == "demo/B/no_kd/seed1"
    assert m.deploy_variant("B", "demo") == "task_kd"     # stage 1's importance source is unchanged
    bad = {"name": "x", "runs_dir": "r", "config_dir": "c",
           "tasks": {"demo": {"teacher_config": "t.yaml"}},
           "students": {"B": {"model": {"init": "config"}, "export_variant": {"demo": "nope"}}},
           "variants": {"task_kd": {}}, "sweep_student": "B", "sweep": None, "nokd_sweep_lr": None,
           "fixed": {}, "general": {}, "train": {}}
    with pytest.raises(UserError, match=r"students\.B\.export_variant\.demo: 'nope'"):
        profile_from_dict(bad, "x.yaml")
