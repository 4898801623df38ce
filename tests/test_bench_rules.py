"""Benchmark rules without training: the shared "finished with this config" rule, the report guard, interleaved
latency scheduling (fake clock), backends an export cannot run, the TF-IDF baseline on 3 classes, --plan."""
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from benchmarks import plan
from benchmarks.cli import main as reproduce_main
from benchmarks.jobs import Matrix
from benchmarks.profile import profile_from_dict
from benchmarks.report import README_BEGIN, README_END
from ernie_tiny_distill.config import config_from_dict
from ernie_tiny_distill.deploy import latency
from ernie_tiny_distill.distill import tfidf as baselines
from ernie_tiny_distill.errors import UserError
from ernie_tiny_distill.train import stages


def _teacher_yaml(root: Path) -> Path:
    path = root / "teacher.yaml"
    path.write_text(yaml.safe_dump({"task": "classification", "stage": "teacher", "output_dir": str(root / "t"),
                                    "data": {"format": "demo", "path": str(root / "demo")},
                                    "model": {"teacher": "minilm"}}))
    return path


def _profile(root: Path):
    return profile_from_dict({
        "name": "tiny", "runs_dir": str(root / "runs"), "config_dir": str(root / "configs"),
        "out_dir": str(root / "out"),
        "tasks": {"demo": {"teacher_config": str(_teacher_yaml(root)), "title": "demo"}},
        "students": {"B": {"model": {"init": "config", "num_layers": 1, "hidden_size": 16, "num_heads": 2,
                                     "intermediate_size": 32}, "seeds": [1, 2]}},
        "variants": {"no_kd": {"kd": False}, "task_kd": {}},
        "sweep": None, "nokd_sweep_lr": None,
        "fixed": {"temperature": 2.0, "ce_weight": 0.5, "learning_rate": 1e-3, "nokd_learning_rate": 1e-3},
        "general": {"learning_rate": 1e-3, "hidden_weight": 1.0, "attention_weight": 1.0},
        "train": {"batch_size": 8, "warmup_ratio": 0.1, "weight_decay": 0.01, "num_threads": 1}})


# ---------------------------------------------------------------- one "finished with this config" rule


def test_finished_summary_counts_a_config_written_before_a_key_was_added(tmp_path):
    cfg = config_from_dict({"task": "classification", "stage": "teacher", "output_dir": str(tmp_path),
                            "data": {"format": "demo"}, "model": {"teacher": "minilm"}})
    old = cfg.to_dict()
    del old["train"]["amp"]                       # written by a version of the package without train.amp
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(old))
    (tmp_path / "summary.json").write_text('{"seconds": 1.5}')
    assert stages.finished_summary(cfg) == {"seconds": 1.5}   # a raw dict comparison would give None
    old["train"]["learning_rate"] = 1.0           # a changed value is another config
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(old))
    assert stages.finished_summary(cfg) is None
    assert not stages.same_config(dict(old, unknown_key=1), cfg.to_dict())


# ---------------------------------------------------------------- the report does not drop committed rows


def _committed(out: Path):
    row = {"task": "demo", "model": "teacher", "variant": "teacher", "metric": 0.9}
    (out / "benchmarks").mkdir(parents=True)
    (out / "docs").mkdir()
    (out / "benchmarks" / "results.json").write_text(json.dumps([row]))
    (out / "docs" / "benchmarks_tiny.md").write_text("committed\n")
    (out / "README.md").write_text(f"x\n{README_BEGIN}\ncommitted table\n{README_END}\n")
    return {p: p.read_bytes() for p in [out / "benchmarks" / "results.json", out / "docs" / "benchmarks_tiny.md",
                                        out / "README.md"]}


def test_report_only_without_runs_refuses_to_overwrite_committed_rows(tmp_path):
    profiles = {"tiny": lambda: _profile(tmp_path)}
    before = _committed(tmp_path / "out")
    with pytest.raises(UserError, match=r"results.json: .* 1 row\(s\) already in that file would be lost "
                                        r"\(e.g. demo / teacher / teacher\).*--out-dir.*--force-report"):
        reproduce_main(["--task", "demo", "--profile", "tiny", "--report-only"], profiles=profiles)
    assert {p: p.read_bytes() for p in before} == before
    assert not (tmp_path / "out" / "docs" / "pareto_tiny.png").exists()
    # elsewhere: written; with --force-report: overwritten
    other = reproduce_main(["--task", "demo", "--profile", "tiny", "--report-only", "--out-dir",
                            str(tmp_path / "elsewhere")], profiles=profiles)
    assert json.loads(Path(other["report"]["results"]).read_text())[0]["metric"] is None
    reproduce_main(["--task", "demo", "--profile", "tiny", "--report-only", "--force-report"], profiles=profiles)
    assert (tmp_path / "out" / "docs" / "benchmarks_tiny.md").read_bytes() != before[tmp_path / "out" / "docs" /
                                                                               "benchmarks_tiny.md"]


# ---------------------------------------------------------------- interleaved latency


def test_interleave_runs_round_robin_and_keeps_ratios_under_drift():
    calls = []
    cost = {"teacher": 10, "B": 1}             # "milliseconds" of a fake clock; integers stay exact
    clock = [0]

    def runner(name):
        def run():
            slowdown = 1 if len(calls) < 6 else 2   # the machine halves its speed after 6 calls (2 warm-up)
            calls.append(name)
            clock[0] += cost[name] * slowdown
        return run

    samples = latency.interleave({"teacher": runner("teacher"), "B": runner("B")}, rounds=4, per_round=1, warmup=1,
                                 timer=lambda: clock[0])
    assert calls == ["teacher", "B"] + ["teacher", "B", "B", "teacher", "teacher", "B", "B", "teacher"]
    assert samples == {"teacher": [10, 10, 20, 20], "B": [1, 1, 2, 2]}
    # p50 over all samples of each model: the speed-up is the true 10x although the machine slowed down midway
    assert np.percentile(samples["teacher"], 50) / np.percentile(samples["B"], 50) == 10.0


def test_interleave_gives_every_model_rounds_times_per_round_samples():
    clock = [0]
    samples = latency.interleave({k: (lambda: clock.__setitem__(0, clock[0] + 1)) for k in "abc"}, rounds=3,
                                 per_round=2, warmup=0, timer=lambda: clock[0])
    assert {k: len(v) for k, v in samples.items()} == {"a": 6, "b": 6, "c": 6}


# ---------------------------------------------------------------- backends an export cannot run


def test_onnx_backend_on_an_export_without_model_onnx_is_one_line_or_an_error(tmp_path):
    lines = []
    pairs = latency.pairs_or_error(str(tmp_path), ["paddle", "onnx"], ["fp32", "int8"], lines.append)
    assert pairs == [("paddle", "fp32")]
    assert lines == [f"skipped onnx fp32/int8: {tmp_path} has no model.onnx or model.int8.onnx (add them with "
                     "tools/export.py --onnx / tools/export.py --int8)"]
    with pytest.raises(UserError, match=f"^--backends/--precisions: nothing to time: skipped onnx fp32: {tmp_path} "
                                        r"has no model.onnx \(add it with tools/export.py --onnx\)$"):
        latency.pairs_or_error(str(tmp_path), ["onnx"], ["fp32"], lines.append)
    assert len(lines) == 1   # the error says it all, no extra line
    (tmp_path / "model.onnx").write_bytes(b"")
    assert latency.pairs_or_error(str(tmp_path), ["onnx"], ["fp32"]) == [("onnx", "fp32")]


# ---------------------------------------------------------------- TF-IDF on 3+ classes


def test_tfidf_baseline_fits_three_classes():
    texts = ["good great fine film", "bad awful poor film", "news report today film"] * 6
    labels = ["pos", "neg", "news"] * 6
    fit = baselines.fit_tfidf_lr(texts, labels, texts[:3], labels[:3], grid=[1.0])
    assert fit["dev_accuracy"] == 1.0 and list(fit["model"].predict(texts[:3])) == labels[:3]
    assert baselines.solver_for(3) == "lbfgs" and baselines.solver_for(2) == "liblinear"


# ---------------------------------------------------------------- --plan


def test_plan_shows_commands_and_recorded_times(tmp_path):
    m = Matrix(_profile(tmp_path), ["demo"])
    (tmp_path / "out" / "benchmarks").mkdir(parents=True)
    (tmp_path / "out" / "benchmarks" / "results.json").write_text(json.dumps([
        {"task": "demo", "model": "student B 1L-16H", "variant": "task_kd", "train_seconds": 240.0, "seeds": [1, 2]}]))
    text = plan.render(m, m.jobs())
    assert f"demo/teacher   [no recorded time]\n    python tools/train.py --config {tmp_path / 'teacher.yaml'}" in text
    assert "demo/B/task_kd/seed2   [~2 min, recorded in benchmarks/results.json]" in text
    assert "demo/B/no_kd/seed1   [no recorded time]" in text
    assert f"demo/export/B\n    python tools/export.py --model {tmp_path / 'runs/demo/B/task_kd/seed1/best'}" in text
    assert "python tools/benchmark.py latency --interleave --model" in text
    assert text.endswith("estimated training time 4 min for 2 of 4 training jobs with a recorded time "
                         "(one job at a time, on the machine that recorded it)")


def test_presentation_keys_do_not_make_a_finished_run_look_different():
    from ernie_tiny_distill.config import load_config

    cfg = load_config(overrides=["output_dir=x", "model.teacher=t", "stage=teacher"])
    shown = load_config(overrides=["output_dir=x", "model.teacher=t", "stage=teacher", "train.progress=false",
                                   "train.log_every=7", "train.num_threads=1"])
    assert stages.same_config(shown.to_dict(), cfg.to_dict())
    changed = load_config(overrides=["output_dir=x", "model.teacher=t", "stage=teacher", "train.seed=1"])
    assert not stages.same_config(changed.to_dict(), cfg.to_dict())


def test_a_teacher_run_ignores_student_and_distill_settings():
    from ernie_tiny_distill.config import load_config

    base = ["output_dir=x", "model.teacher=t", "stage=teacher"]
    cfg = load_config(overrides=base)
    other = load_config(overrides=base + ["model.student.init=config", "model.student.num_layers=3",
                                          "distill.temperature=4"])
    assert stages.same_config(other.to_dict(), cfg.to_dict())
    task = load_config(overrides=["output_dir=x", "model.teacher=t", "stage=task", "model.student.init=config"])
    task_other = load_config(overrides=["output_dir=x", "model.teacher=t", "stage=task", "model.student.init=config",
                                        "model.student.num_layers=3"])
    assert not stages.same_config(task_other.to_dict(), task.to_dict())


def test_committed_rows_without_runs_are_carried_over_and_marked(tmp_path):
    import json

    from benchmarks.report import carry_over

    path = tmp_path / "results.json"
    old = [{"task": "conll", "model": "teacher", "variant": "teacher", "metric": 0.85},
           {"task": "conll", "model": "student B", "variant": "no_kd", "metric": 0.65},
           {"task": "conll", "model": "student Ap", "variant": "kd_recipe", "metric": 0.70}]
    path.write_text(json.dumps(old))
    new = [{"task": "conll", "model": "teacher", "variant": "teacher", "metric": 0.86},
           {"task": "conll", "model": "student Ap", "variant": "kd_recipe", "metric": 0.80}]
    merged = carry_over(str(path), new)
    assert [(r["model"], r["metric"], bool(r.get("carried"))) for r in merged] == [
        ("teacher", 0.86, False), ("student Ap", 0.80, False), ("student B", 0.65, True)]


def test_a_committed_row_whose_job_now_gives_another_row_is_replaced_not_carried(tmp_path):
    import json

    from benchmarks.report import carry_over, dropped_rows

    path = tmp_path / "results.json"
    cmd = "python tools/reproduce.py --task imdb --only imdb/int8/Bp"
    old = [{"task": "imdb", "model": "student Bp (kd_recipe seed 1, INT8)", "variant": "int8", "metric": 0.83,
            "command": cmd},
           {"task": "imdb", "model": "student B (task_kd seed 1, INT8)", "variant": "int8", "metric": 0.80,
            "command": "python tools/reproduce.py --task imdb --only imdb/int8/B"}]
    path.write_text(json.dumps(old))
    new = [{"task": "imdb", "model": "student Bp (task_kd_transfer50k seed 1, INT8)", "variant": "int8",
            "metric": 0.85, "command": cmd}]
    merged = carry_over(str(path), new)
    assert [(r["model"], bool(r.get("carried"))) for r in merged] == [
        ("student Bp (task_kd_transfer50k seed 1, INT8)", False), ("student B (task_kd seed 1, INT8)", True)]
    # the stale row is not "lost" either: only B's row (no run here) would be
    assert dropped_rows(str(path), new) == ["imdb / student B (task_kd seed 1, INT8) / int8"]


def test_a_stopped_training_process_counts_as_paused_not_busy(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    from benchmarks.runner import busy

    script = tmp_path / "train.py"
    script.write_text("import time\ntime.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, str(script)], cwd=tmp_path)
    try:
        def wait_for(key):   # the exec and the state change show in /proc within moments
            for _ in range(100):
                state = busy(sample_s=0)   # the process lists only; no CPU sampling
                if any(str(script) in a for a in state[key]):
                    return state
                time.sleep(0.05)
            return state

        mine = [a for a in wait_for("training_processes")["training_processes"] if str(script) in a]
        assert mine == [f"{sys.executable} {script}"]
        proc.send_signal(signal.SIGSTOP)
        state = wait_for("paused_processes")
        assert not [a for a in state["training_processes"] if str(script) in a]
        assert [a for a in state["paused_processes"] if str(script) in a] == [f"{sys.executable} {script}"]
    finally:
        proc.kill()
        proc.wait()


def test_teacher_scores_do_not_depend_on_the_student_the_config_names():
    from benchmarks.deploy import teachers_fingerprint

    cfg = {"data": {"path": "imdb.tar.gz", "max_train_examples": 12000},
           "model": {"max_seq_length": 128, "long_document": {"mode": "windows", "max_windows": 16},
                     "student": {"init": "pretrained", "path": "runs/a/best"}},
           "distill": {"temperature": 2.0, "teachers": [{"path": "runs/teacher", "weight": 1.0}]}}
    base = teachers_fingerprint(cfg, 0, "w1")
    other_student = {**cfg, "model": {**cfg["model"], "student": {"init": "pretrained", "path": "runs/b/best"}}}
    assert teachers_fingerprint(other_student, 0, "w1") == base
    wide = {**cfg, "model": {**cfg["model"], "wide": {"buckets": 16, "fit": "separate", "level": "document"}}}
    assert teachers_fingerprint(wide, 0, "w1") == base          # nor on a wide part's settings
    more_windows = {**cfg, "model": {**cfg["model"], "long_document": {"mode": "windows", "max_windows": 8}}}
    assert teachers_fingerprint(more_windows, 0, "w1") != base
    assert teachers_fingerprint({**cfg, "data": {**cfg["data"], "max_train_examples": 24000}}, 0, "w1") != base
    assert teachers_fingerprint(cfg, None, "w1") != base        # the ensemble, not member 0
    assert teachers_fingerprint(cfg, 0, "w2") != base           # the teacher's weights changed


def test_a_quiet_machine_is_judged_by_cpu_use_now_not_the_decaying_load_average():
    from benchmarks.runner import is_quiet

    just_ended = {"cpu_busy_pct": 3.0, "loadavg_1min": 1.97, "training_processes": [], "paused_processes": []}
    assert is_quiet(just_ended)
    assert not is_quiet(dict(just_ended, cpu_busy_pct=50.0))                      # one core busy of two
    assert not is_quiet(dict(just_ended, training_processes=["python tools/train.py --config x.yaml"]))
    assert is_quiet(dict(just_ended, paused_processes=["python tools/train.py --config x.yaml"]))
    assert not is_quiet(dict(just_ended, cpu_busy_pct=None))                      # not sampled: not known quiet
