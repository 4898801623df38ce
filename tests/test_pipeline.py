"""The one-command pipeline end to end on tiny data (a random tiny teacher): report fields, resume, dev split."""
import dataclasses
import json
import os

import pytest
import yaml
from helpers import ROOT, run_tool

from ernie_tiny_distill.errors import UserError
from ernie_tiny_distill.pipeline import measure
from ernie_tiny_distill.pipeline.recipes import Options, planned_steps
from ernie_tiny_distill.pipeline.report import consistency_errors
from ernie_tiny_distill.pipeline.run import run_pipeline

N_TRAIN, N_TEST = 60, 20  # demo examples written per split; dev is carved from train unless a file is given
TINY_STUDENT = {"init": "teacher_pruned", "layers": [0, 2], "num_heads": 2, "intermediate_size": 16,
                "hidden_size": 24, "importance_examples": 32}
TINY_ASSISTANT = {"init": "teacher_pruned", "layers": [0, 1, 2], "num_heads": 4, "intermediate_size": 32,
                  "importance_examples": 32}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Demo files, a random 3-layer teacher whose vocabulary covers them, and tiny copies of the recipes."""
    from ernie_tiny_distill.data.demo import write_demo_data
    from ernie_tiny_distill.models.random_teacher import write_random_teacher

    root = tmp_path_factory.mktemp("pipeline")
    paths = write_demo_data(str(root / "demo"), n_train=N_TRAIN, n_dev=10, n_test=N_TEST, n_unlabeled=0)
    texts = [line for key in ("sentiment_train", "ner_train") for line in open(paths[key], encoding="utf-8")]
    teacher = write_random_teacher(str(root / "random_teacher"), texts, num_layers=3, hidden_size=32, num_heads=4,
                                   intermediate_size=64)
    recipes = {}
    for task in ("classification", "ner"):
        with open(ROOT / "configs" / "recipes" / f"{task}_10x.yaml", encoding="utf-8") as f:
            recipe = yaml.safe_load(f)
        for role in ("teacher", "student"):
            recipe[role]["model"]["max_seq_length"] = 40
            recipe[role]["train"].update(epochs=1, min_steps=4, batch_size=8, learning_rate=3e-3)
        recipe["student"]["model"]["student"] = dict(TINY_STUDENT)
        recipe["student"].setdefault("data", {})["max_unlabeled_examples"] = 16
        recipe.pop("assistant", None)
        if task == "classification":  # the classification runs have an assistant (a tiny 5x recipe)
            with open(ROOT / "configs" / "recipes" / f"{task}_5x.yaml", encoding="utf-8") as f:
                five = yaml.safe_load(f)
            five["student"]["model"]["student"] = dict(TINY_ASSISTANT)
            five["student"]["train"].update(epochs=1, min_steps=4, batch_size=8, learning_rate=3e-3)
            five["student"].setdefault("data", {})["max_unlabeled_examples"] = 12
            with open(root / "assistant_5x.yaml", "w", encoding="utf-8") as f:
                yaml.safe_dump(five, f)
            recipe["assistant"] = {"recipe": str(root / "assistant_5x.yaml"), "weight": 0.5}
        recipes[task] = str(root / f"recipe_{task}.yaml")
        with open(recipes[task], "w", encoding="utf-8") as f:
            yaml.safe_dump(recipe, f)
    prefix = {"classification": "sentiment", "ner": "ner"}
    return {"root": root, "paths": paths, "teacher": teacher, "recipes": recipes, "prefix": prefix}


def options(world, task, out, **kw):
    given = {"train": world["paths"][f"{world['prefix'][task]}_train"],
             "test": world["paths"][f"{world['prefix'][task]}_test"], "teacher": world["teacher"]}
    given.update(kw)
    return Options(task=task, out=str(world["root"] / out), recipe=world["recipes"][task], allow_weak_teacher=True,
                   latency_texts=5, overrides=["train.progress=false", "train.num_threads=1"], **given)


@pytest.fixture(scope="module")
def ner_report(world):
    return run_pipeline(options(world, "ner", "ner", control=True))


@pytest.fixture(scope="module")
def cls_report(world):
    """Through the command line, as a user runs it."""
    p = world["paths"]
    out = world["root"] / "cls"
    result = run_tool("distill.py", "--task", "classification", "--train", p["sentiment_train"],
                      "--test", p["sentiment_test"], "--teacher", world["teacher"],
                      "--recipe", world["recipes"]["classification"], "--control", "--allow-weak-teacher",
                      "--latency-texts", "5", "--out", out, "train.progress=false",
                      "train.num_threads=1")
    assert result.returncode == 0, result.stderr
    assert "## KD gain (--control)" in result.stdout
    with open(out / "report.json", encoding="utf-8") as f:
        return json.load(f)


@pytest.mark.parametrize("name", ["cls_report", "ner_report"])
def test_the_report_has_every_figure_and_they_agree(name, request, world):
    r = request.getfixturevalue(name)
    assert consistency_errors(r) == []
    d = r["data"]
    assert (d["train"] + d["dev"], d["test"]) == (N_TRAIN, N_TEST)
    assert d["dev"] == round(0.1 * N_TRAIN)  # no --dev: a tenth of --train held out
    assert d["dev_source"].startswith("held out from --train: 10%")
    s, t, c = r["student"], r["teacher"], r["control"]
    assert s["pct_of_teacher_fp32"] == round(100 * s["fp32"] / t["fp32"], 2)
    assert s["pct_of_teacher_int8"] == round(100 * s["int8"] / t["fp32"], 2)
    metric = r["metric"]
    assert c["kd_gain"] == round(c["student_test"][metric] - c["test"][metric], 6)
    assert (s["layers"], s["hidden"], t["layers"], t["hidden"]) == (2, 24, 3, 32)  # the recipe's shape
    assert s["params"] < t["params"] and 0 < s["fp32_mb"] < t["fp32_mb"] and s["int8_mb"] > 0
    for key in ("teacher_fp32", "student_fp32", "student_int8"):
        assert 0 < r["latency"][key]["p50_ms"] <= r["latency"][key]["p95_ms"]
        assert r["latency"][key]["reviews"] == 5
    # FP32 is timed on the engine serve/predict pick by default; INT8 runs on ONNX Runtime
    assert [r["latency"][k]["backend"] for k in ("teacher_fp32", "student_fp32", "student_int8")] == \
        ["auto", "auto", "onnx"]
    assert r["latency"]["student_fp32"]["backend_used"] in ("paddle", "onnx")
    assert r["latency"]["student_int8"]["backend_used"] == "onnx"
    assert r["latency"]["speedup_int8"] == round(r["latency"]["teacher_fp32"]["p50_ms"]
                                                 / r["latency"]["student_int8"]["p50_ms"], 2)
    assert s["seconds_per_step"] > 0 and t["seconds_per_step"] > 0
    assert s["planned_steps"] == planned_steps(d["train"] + d["transfer"], {"epochs": 1, "batch_size": 8,
                                                                            "min_steps": 4})
    assistant = {"assistant"} if name == "cls_report" else set()
    assert set(r["time"]["step_seconds"]) == {"estimate", "teacher", "student", "control", "export", "evaluate",
                                               "latency"} | assistant
    assert r["time"]["estimate_seconds"] > 0
    assert r["commands"]["serve"].startswith("python tools/serve.py --model ")
    with open(os.path.join(os.path.dirname(s["export"]), "..", "report.md"), encoding="utf-8") as f:
        md = f.read()
    assert r["commands"]["predict"] in md and f"{s['pct_of_teacher_fp32']:.2f}" in md
    assert "| student INT8 | 2x24 |" in md and "| ONNX Runtime |" in md


def test_an_assistant_is_distilled_first_and_teaches_with_the_teacher(cls_report, world):
    a = cls_report["assistant"]
    assert (a["layers"], a["hidden"], a["weight"]) == (3, 32, 0.5)
    assert a["recipe"] == str(world["root"] / "assistant_5x.yaml") and a["steps"] >= 4
    out = world["root"] / "cls"
    with open(out / "configs" / "assistant.yaml", encoding="utf-8") as f:
        assistant_cfg = yaml.safe_load(f)
    # its own transfer set (the 5x recipe's, not the student's) and no teacher ensemble of its own
    assert assistant_cfg["data"]["max_unlabeled_examples"] == 12 and "teachers" not in assistant_cfg["distill"]
    with open(out / "configs" / "student.yaml", encoding="utf-8") as f:
        teachers = yaml.safe_load(f)["distill"]["teachers"]
    assert [(t["path"], t["weight"]) for t in teachers] == [(str(out / "teacher"), 1.0), (str(out / "assistant"), 0.5)]
    # both score the transfer set through their Paddle Inference exports
    assert [t.get("export") for t in teachers] == [str(out / "export" / "teacher"), str(out / "export" / "assistant")]
    assert cls_report["time"]["estimate_parts"]["assistant"] > 0
    with open(out / "report.md", encoding="utf-8") as f:
        assert "Assistant: a 3x32 student" in f.read()


def test_ner_distills_with_the_augmented_transfer_set(ner_report):
    assert ner_report["data"]["transfer"] == 16 and "augment" in ner_report["data"]["transfer_source"]
    assert ner_report["student"]["transfer_examples"] == 16


def test_an_interrupted_run_resumes_and_skips_finished_steps(world, ner_report, monkeypatch):
    """Scoring fails once (after export); the re-run skips every finished step. --teacher is the NER run's
    fine-tuned teacher, so no teacher is trained here at all (its labels match the data's)."""
    teacher_dir = ner_report["teacher"]["dir"]
    opts = options(world, "ner", "resumed", teacher=teacher_dir, dev=world["paths"]["ner_dev"])
    real = measure.score_export

    def broken(*args, **kwargs):
        raise RuntimeError("killed while scoring")

    monkeypatch.setattr(measure, "score_export", broken)
    with pytest.raises(RuntimeError, match="killed while scoring"):
        run_pipeline(opts)
    steps = world["root"] / "resumed" / "steps"
    assert sorted(os.listdir(steps)) == ["estimate.json", "export.json", "student.json", "teacher.json"]
    monkeypatch.setattr(measure, "score_export", real)
    r = run_pipeline(opts)
    assert r["time"]["skipped_steps"] == ["estimate", "teacher", "student", "export"]
    assert r["teacher"]["reused"] is True and r["teacher"]["check"] is None
    assert r["data"]["dev"] == 10 and r["data"]["dev_source"] == f"--dev {world['paths']['ner_dev']}"
    assert r["data"]["train"] == N_TRAIN
    assert consistency_errors(r) == []
    # a changed input re-runs only the steps that read it
    again = run_pipeline(dataclasses.replace(opts, latency_texts=4))
    assert again["time"]["skipped_steps"] == ["estimate", "teacher", "student", "export", "evaluate"]
    assert again["latency"]["student_int8"]["reviews"] == 4


def test_a_weak_teacher_stops_the_pipeline_before_distillation(world):
    from ernie_tiny_distill.pipeline import teacher_check

    check = {"metric": "accuracy", "teacher_dev": 0.5, "baseline_dev": 0.75, "below_baseline": True,
             "still_improving": False}
    with pytest.raises(UserError, match="below TF-IDF \\+ logistic regression .*0.7500.* too weak"):
        teacher_check.verdict(check, extended=True, allow_weak=False)
    assert "too weak" in teacher_check.verdict(check, extended=True, allow_weak=True)["warning"]


def test_missing_files_are_named(world, tmp_path):
    with pytest.raises(UserError, match="--test .*nothing.csv: no such file"):
        run_pipeline(options(world, "classification", "missing", test=str(tmp_path / "nothing.csv")))


def test_an_error_in_the_labeled_file_is_raised_as_it_is_not_as_a_missing_transfer_set(world, tmp_path, caplog):
    from ernie_tiny_distill.pipeline.recipes import load_recipe
    from ernie_tiny_distill.pipeline.run import read_user_data

    bad = tmp_path / "bad.csv"
    bad.write_text("text,label\ngood film,pos\nbad film,neg\nno label here,\n", encoding="utf-8")
    opts = options(world, "classification", "bad", train=str(bad), test=None)
    with pytest.raises(UserError, match=r"bad\.csv:4: missing or empty label in column 'label'"):
        read_user_data(opts, load_recipe("classification", 10, world["recipes"]["classification"]))
    assert "transfer set" not in caplog.text


def test_the_quickstart_prints_the_students_answers_on_its_sentences(cls_report, ner_report):
    from ernie_tiny_distill.pipeline.quickstart import SAMPLES, format_reports, predict_samples

    shown = []
    for report in (cls_report, ner_report):
        report = dict(report, samples=predict_samples(report["student"]["export"], SAMPLES[report["task"]]))
        assert [s["text"] for s in report["samples"]] == SAMPLES[report["task"]]
        shown.append(report)
    assert {s["prediction"]["label"] for s in shown[0]["samples"]} <= {"neg", "pos"}
    assert all(isinstance(s["prediction"]["entities"], list) for s in shown[1]["samples"])
    text = format_reports(shown)
    assert "'It was not good.' -> {\"label\": " in text and "'Kofi Annan met Angela Merkel in Berlin .' ->" in text
    assert text.count("# Distillation report") == 2


def test_a_new_transfer_set_leaves_the_teachers_config_as_it_was(world):
    """The teacher never reads the transfer set: changing it (recipe or --unlabeled) must not re-train it."""
    from types import SimpleNamespace

    from ernie_tiny_distill.pipeline.recipes import load_recipe
    from ernie_tiny_distill.pipeline.run import UserData, plan_stages

    recipe = load_recipe("classification", 10, world["recipes"]["classification"])
    opts = options(world, "classification", "plans")
    splits = SimpleNamespace(train=[None] * 40, unlabeled=[None] * 80)
    plans = [plan_stages(opts, recipe, UserData(splits, dict(data), "held out", "augment", 1), None)
             for data in ({"format": "csv", "unlabeled": "augment", "max_unlabeled_examples": 80},
                          {"format": "csv", "unlabeled": "other.txt", "augment_embeddings": "minilm"})]
    assert plans[0]["teacher"] == plans[1]["teacher"]
    assert plans[0]["teacher"]["data"] == {"format": "csv"}
    assert plans[0]["student"]["data"]["max_unlabeled_examples"] == 80
    assert plans[1]["student"]["data"]["unlabeled"] == "other.txt"


def test_a_student_section_the_assistant_cannot_teach_is_refused_before_any_training(world, tmp_path):
    """An assistant teaches through the soft target of cached logit KD: a student section without a KD term is
    refused when the run is planned, naming the recipe, not after the teacher and the assistant have trained."""
    from types import SimpleNamespace

    from ernie_tiny_distill.pipeline.recipes import load_recipe
    from ernie_tiny_distill.pipeline.run import UserData, check_plans, plan_stages

    with open(world["recipes"]["classification"], encoding="utf-8") as f:
        recipe = yaml.safe_load(f)
    recipe["student"]["distill"]["kd_weight"] = 0.0
    path = tmp_path / "no_kd.yaml"
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    opts = dataclasses.replace(options(world, "classification", "no_kd"), recipe=str(path))
    splits = SimpleNamespace(train=[None] * 40, unlabeled=[None] * 80)
    user = UserData(splits, {"format": "csv", "unlabeled": "augment"}, "held out", "augment", 1)
    for loaded, refused in ((load_recipe("classification", 10, str(path)), True),
                            (load_recipe("classification", 10, world["recipes"]["classification"]), False),
                            (load_recipe("ner", 10, world["recipes"]["ner"]), False)):
        plans = plan_stages(opts, loaded, user, None)
        if refused:
            with pytest.raises(UserError, match=r"no_kd\.yaml: the student step's config.*soft target of cached "
                                                r"logit KD"):
                check_plans(opts, plans, loaded)
        else:
            check_plans(opts, plans, loaded)


def test_a_cached_soft_target_is_scored_through_the_teachers_export(world, monkeypatch):
    """The student step exports the teacher first whenever its soft labels are cached: as distill.teacher_export
    for logit KD alone, as the teacher's entry in distill.teachers with an assistant; not when the teacher runs
    online for hidden-state and attention terms."""
    from ernie_tiny_distill.pipeline import run
    from ernie_tiny_distill.pipeline.recipes import load_recipe

    exported, trained = [], []
    monkeypatch.setattr(run.measure, "export", lambda src, out, int8: exported.append((src, out, int8)) or {"dir": out})
    monkeypatch.setattr(run, "_train", lambda opts, raw, teacher_dir, name: trained.append(raw) or {})
    opts = options(world, "classification", "exports")
    recipe = load_recipe("classification", 10, world["recipes"]["classification"])
    plan = dict(recipe["student"], task="classification", stage="task", output_dir="s", data={"format": "csv"})
    export = str(world["root"] / "exports" / "export" / "teacher")
    run._student(opts, plan, "T", None, recipe)  # logit KD alone (the 10x classification recipe)
    assert exported == [("T", export, False)] and trained[-1]["distill"]["teacher_export"] == export
    run._student(opts, plan, "T", {"output_dir": "A", "export": "A/export"}, recipe)
    assert [m.get("export") for m in trained[-1]["distill"]["teachers"]] == [export, "A/export"]
    assert "teacher_export" not in trained[-1]["distill"]
    exported.clear()
    ner = load_recipe("ner", 10, world["recipes"]["ner"])  # hidden-state and attention terms: online teacher
    run._student(options(world, "ner", "exports"), dict(ner["student"], task="ner", stage="task", output_dir="s",
                                                       data={"format": "conll"}), "T", None, ner)
    assert exported == [] and "teacher_export" not in trained[-1].get("distill", {})


def test_no_assistant_skips_the_recipes_assistant(world):
    from ernie_tiny_distill.pipeline.cli import parser
    from ernie_tiny_distill.pipeline.run import run_recipe

    args = ["--task", "classification", "--train", "t.csv", "--out", "o"]
    assert parser().parse_args(args).assistant is True
    assert parser().parse_args(args + ["--no-assistant"]).assistant is False
    opts = options(world, "classification", "no_assistant")
    assert run_recipe(opts)["assistant"]["weight"] == 0.5
    skipped = run_recipe(dataclasses.replace(opts, assistant=False))
    assert "assistant" not in skipped and skipped["student"] == run_recipe(opts)["student"]


def test_recipe_augment_embeddings_teacher_is_the_pipelines_teacher_or_a_logged_fallback(world, caplog):
    from ernie_tiny_distill.data.augment_text import teacher_word_table

    assert teacher_word_table(world["teacher"]) == world["teacher"]
    with caplog.at_level("WARNING", logger="ernie_tiny_distill.data.augment_text"):
        assert teacher_word_table("ernie-3.0-not-downloaded") is None
    assert any("ernie-3.0-not-downloaded has no readable word-embedding table" in m for m in caplog.messages)


def test_a_step_whose_recipe_changed_replaces_its_finished_run(world, ner_report, tmp_path):
    """The pipeline owns OUT/control: a recipe change after it finished re-runs it there instead of refusing."""
    with open(world["recipes"]["ner"], encoding="utf-8") as f:
        recipe = yaml.safe_load(f)
    recipe["control"].setdefault("train", {})["min_steps"] = 5
    changed = tmp_path / "recipe.yaml"
    changed.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    r = run_pipeline(dataclasses.replace(options(world, "ner", "ner", control=True), recipe=str(changed)))
    assert "control" not in r["time"]["skipped_steps"] and "student" in r["time"]["skipped_steps"]
    with open(world["root"] / "ner" / "control" / "summary.json", encoding="utf-8") as f:
        summary = json.load(f)
    assert summary["total_steps"] >= 5 and r["control"]["dir"] == summary["best_dir"]
