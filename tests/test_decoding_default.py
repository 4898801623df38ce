"""IOB2-constrained Viterbi is the default tag decoding; runs and exports record the decoding; the
bench job `<task>/decoding` re-scores finished runs under both decodings and report rows show the default's."""
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from ernie_tiny_distill.models import build as models
from ernie_tiny_distill.tasks import adapters as tasks
from ernie_tiny_distill.tasks.base import DEFAULT_DECODING
from ernie_tiny_distill.tasks import decoding
from ernie_tiny_distill.tasks.classification import ClassificationTask
from ernie_tiny_distill.tasks.tagging import TaggingTask

NER_LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]  # ids 0..4

# ---------------------------------------------------------------- the default


def test_viterbi_is_the_default_and_repairs_a_stray_inside_tag(hand_tokenizer):
    assert DEFAULT_DECODING == "viterbi"
    feature = {"token_mask": [0, 1, 1, 0], "num_words": 2}
    # per word: O then I-PER (argmax); I-PER after O is what IOB2 forbids
    logits = np.log(np.array([[1, 1, 1, 1, 1], [0.6, 0.05, 0.3, 0.025, 0.025], [0.12, 0.08, 0.7, 0.05, 0.05],
                              [1, 1, 1, 1, 1]], dtype="float64"))
    task = TaggingTask(hand_tokenizer, NER_LABELS, 16)  # no decoding given
    assert task.decoding == "viterbi"
    assert task.predict(logits, feature) == ["O", "O"]  # best allowed path: .6 * .12 > .6 * .08 > .05 * .7
    tags, _ = task.decode(np.log(np.array([[0.1, 0.2, 0.6, 0.05, 0.05], [0.1, 0.1, 0.7, 0.05, 0.05]])))
    assert tags == ["B-PER", "I-PER"]  # argmax: I-PER I-PER, no entity under strict IOB2; Viterbi: one PER
    assert decoding.entity_spans(tags) == [("PER", 0, 2)]


def test_tagging_metadata_records_the_decoding_and_classification_has_none(hand_tokenizer):
    assert TaggingTask(hand_tokenizer, NER_LABELS, 16).metadata()["decoding"] == "viterbi"
    assert TaggingTask(hand_tokenizer, NER_LABELS, 16, decoding="argmax").decoding_metadata() == {
        "decoding": "argmax"}
    cls = ClassificationTask(hand_tokenizer, ["neg", "pos"], 16)
    assert cls.decoding_metadata() == {} and "decoding" not in cls.metadata()


# ---------------------------------------------------------------- a tiny trained NER run


@pytest.fixture(scope="module")
def ner_run(tmp_path_factory):
    from helpers import demo_ner_teacher

    from ernie_tiny_distill.config import config_from_dict
    from ernie_tiny_distill.train.stages import run_stage

    root = tmp_path_factory.mktemp("decoding")
    base = demo_ner_teacher(root, "pretrained", num_layers=2, hidden_size=32, num_heads=2, intermediate_size=64)
    raw = {"task": "ner", "stage": "teacher", "output_dir": str(root / "runs" / "demo" / "teacher"),
           "data": {"format": "demo", "path": str(root / "demo"), "max_train_examples": 96, "max_dev_examples": 24,
                    "max_test_examples": 24},
           "model": {"teacher": base, "max_seq_length": 40},
           # enough to find some entities (and to make Viterbi and argmax differ: dev F1 0.45 vs 0.40)
           "train": {"epochs": 4, "batch_size": 8, "eval_batch_size": 16, "learning_rate": 1e-2, "num_threads": 1,
                     "progress": False, "seed": 1}}
    (root / "teacher.yaml").write_text(yaml.safe_dump(raw))
    summary = run_stage(config_from_dict(raw))
    assert summary["dev"]["f1"] > 0 and summary["test"]["f1"] > 0  # the comparisons below compare something
    return {"root": root, "summary": summary, "run_dir": raw["output_dir"], "raw": raw}


def _read(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def test_a_run_records_its_decoding_in_summary_metrics_and_task_json(ner_run):
    run_dir = ner_run["run_dir"]
    assert ner_run["summary"]["decoding"] == "viterbi"
    assert _read(os.path.join(run_dir, "summary.json"))["decoding"] == "viterbi"
    assert _read(os.path.join(run_dir, "best", "metrics.json"))["decoding"] == "viterbi"
    assert _read(os.path.join(run_dir, "best", "task.json"))["decoding"] == "viterbi"


def _evaluate(run_dir, split, decoding_name):
    """The metrics of best/ on `split` as training-time evaluation computes them, with this decoding."""
    from ernie_tiny_distill.config import config_from_dict
    from ernie_tiny_distill.data import load as data_lib
    from ernie_tiny_distill.train.evaluation import evaluate

    best = os.path.join(run_dir, "best")
    meta = models.read_task_metadata(best)
    with open(os.path.join(run_dir, "config.yaml"), encoding="utf-8") as f:
        cfg = config_from_dict(yaml.safe_load(f))
    tokenizer = models.load_tokenizer(best)
    task = tasks.make_task("ner", tokenizer, meta["labels"], meta["max_seq_length"], decoding=decoding_name)
    examples = getattr(data_lib.load_splits(cfg.data, cfg.task), split)
    model = models.load_model(best, task.model_class, task.num_labels)
    return evaluate(task, model, task.encode(examples), examples, cfg.train.eval_batch_size, tokenizer.pad_token_id)


def test_rescoring_writes_both_decodings_equal_to_evaluation_and_skips_unchanged_weights(ner_run, tmp_path):
    from benchmarks.decoding import DECODING_FILE, rescore_run

    run_dir = str(tmp_path / "run")
    shutil.copytree(ner_run["run_dir"], run_dir, ignore=shutil.ignore_patterns(DECODING_FILE))
    record, fresh = rescore_run(run_dir)
    assert fresh and record == _read(os.path.join(run_dir, DECODING_FILE))
    assert record["best_selected_by"] == "viterbi"
    for name in ("argmax", "viterbi"):
        for split in ("dev", "test"):
            assert record[name][split] == _evaluate(run_dir, split, name), (name, split)
    assert record["argmax"]["dev"] != record["viterbi"]["dev"]  # two decodings, not one scored twice
    summary = ner_run["summary"]
    assert record["viterbi"]["dev"] == summary["dev"] and record["viterbi"]["test"] == summary["test"]
    before = os.stat(os.path.join(run_dir, DECODING_FILE)).st_mtime_ns
    again, fresh = rescore_run(run_dir)
    assert not fresh and again == record
    assert os.stat(os.path.join(run_dir, DECODING_FILE)).st_mtime_ns == before
    # other weights: scored again
    weights = os.path.join(run_dir, "best", "model.safetensors")
    from safetensors.numpy import load_file, save_file

    state = load_file(weights)
    key = next(k for k in sorted(state) if "classifier.bias" in k)
    state[key] = state[key] + np.arange(len(state[key]), dtype=state[key].dtype)
    save_file(state, weights, metadata={"format": "np"})
    changed, fresh = rescore_run(run_dir)
    assert fresh and changed["fingerprint"] != record["fingerprint"]
    assert changed["argmax"]["dev"] == _evaluate(run_dir, "dev", "argmax")


def test_an_export_serves_the_decoding_its_checkpoint_recorded(ner_model, ner_export, tmp_path):
    from ernie_tiny_distill.deploy.encoding import TextEncoder
    from ernie_tiny_distill.deploy.layout import EXPORT_FILE

    assert _read(os.path.join(ner_model, "task.json"))["decoding"] == "viterbi"
    assert _read(os.path.join(ner_export, EXPORT_FILE))["decoding"] == "viterbi"
    copy = str(tmp_path / "export")
    shutil.copytree(ner_export, copy)
    meta = _read(os.path.join(copy, EXPORT_FILE))
    with open(os.path.join(copy, EXPORT_FILE), "w", encoding="utf-8") as f:
        json.dump(dict(meta, decoding="argmax"), f)
    assert TextEncoder(copy).task.decoding == "argmax"  # the export's
    assert TextEncoder(copy, decoding="viterbi").task.decoding == "viterbi"  # the caller's wins
    del meta["decoding"]
    with open(os.path.join(copy, EXPORT_FILE), "w", encoding="utf-8") as f:
        json.dump(meta, f)
    assert TextEncoder(copy).task.decoding == "viterbi"  # exports without the key: the default


def test_tools_and_service_show_a_decoding_for_tagging_models_only(deploy_root, cls_export, ner_export, tmp_path,
                                                                   monkeypatch, capsys):
    import runpy
    import sys

    from ernie_tiny_distill.deploy.predictor import Predictor

    tool = str(Path(__file__).resolve().parents[1] / "tools" / "evaluate.py")
    main = runpy.run_path(tool, run_name="tool")["main"]

    for task, export, expected in (("classification", cls_export, None), ("ner", ner_export, "viterbi")):
        config = tmp_path / f"{task}.yaml"
        config.write_text(yaml.safe_dump({"task": task, "stage": "teacher", "output_dir": "unused",
                                          "model": {"teacher": "minilm"},
                                          "data": {"format": "demo", "path": str(deploy_root["root"] / "demo"),
                                                   "max_dev_examples": 8}}))
        monkeypatch.setattr(sys, "argv", [tool, "--model", export, "--config", str(config), "--threads", "1"])
        assert main() == 0
        assert json.loads(capsys.readouterr().out).get("decoding") == expected, task
        pytest.importorskip("httpx", reason="fastapi's TestClient needs httpx")
        from fastapi.testclient import TestClient

        from ernie_tiny_distill.deploy import service

        health = TestClient(service.create_app(Predictor(export))).get("/health").json()
        assert health["status"] == "ok" and health.get("decoding") == expected, task


# ---------------------------------------------------------------- the bench job and the rows


def _profile(root):
    from benchmarks.profile import profile_from_dict

    return profile_from_dict({
        "name": "tiny", "runs_dir": str(root / "runs"), "config_dir": str(root / "configs"),
        "out_dir": str(root / "out"),
        "tasks": {"demo": {"teacher_config": str(root / "teacher.yaml"), "title": "demo NER"}},
        "students": {"B": {"model": {"init": "config", "num_layers": 1, "hidden_size": 16, "num_heads": 2,
                                     "intermediate_size": 32}, "seeds": [1]}},
        "variants": {"no_kd": {"kd": False}},
        "sweep": None, "nokd_sweep_lr": None,
        "fixed": {"temperature": 2.0, "ce_weight": 0.5, "learning_rate": 3e-3, "nokd_learning_rate": 3e-3},
        "general": {"learning_rate": 3e-3, "hidden_weight": 1.0, "attention_weight": 1.0},
        "train": {"batch_size": 8, "eval_batch_size": 16, "num_threads": 1, "progress": False},
        "quiet_timeout": 0})


def test_decoding_job_rescores_finished_runs_and_rows_show_the_default_decoding(ner_run):
    from benchmarks import report, schedule
    from benchmarks.jobs import Matrix
    from benchmarks.rows import collect_rows

    root = ner_run["root"]
    m = Matrix(_profile(root), ["demo"])
    assert [j.name for j in m.select(["demo/decoding"])] == ["demo/decoding"]  # no training job comes along
    # a row run whose summary records no decoding (scored with argmax) and other numbers
    student = m.out("demo", "B", "no_kd", "seed1")
    shutil.copytree(ner_run["run_dir"], student, ignore=shutil.ignore_patterns("decoding.json"))
    old = {k: v for k, v in ner_run["summary"].items() if k != "decoding"}
    old.update(dev={"f1": 0.25}, test={"f1": 0.125}, output_dir=student, best_dir=os.path.join(student, "best"))
    with open(os.path.join(student, "summary.json"), "w", encoding="utf-8") as f:
        json.dump(old, f)
    from benchmarks.runner import summary_digest

    result = m.result_path("demo/B/no_kd/seed1")
    os.makedirs(os.path.dirname(result), exist_ok=True)
    with open(result, "w", encoding="utf-8") as f:
        json.dump({"name": "demo/B/no_kd/seed1", "status": "done", "summary": summary_digest(old),
                   "commands": ["python tools/train.py --config x.yaml"], "seconds": 1.0}, f)

    rows, _ = collect_rows(m)  # before the job: the student row has only its summary's (argmax) numbers
    before = next(r for r in rows if r["variant"] == "no_kd")
    assert (before["metric"], before["decoding"], before["decoding_source"]) == (0.125, "argmax", "summary.json")

    outcome = schedule.run(m, ["demo/decoding"])
    assert outcome["done"] == ["demo/decoding"] and not outcome["failed"]
    rescored = _read(os.path.join(student, "decoding.json"))
    teacher_rescored = _read(os.path.join(ner_run["run_dir"], "decoding.json"))
    assert set(m.result("demo/decoding")["runs"]) == {ner_run["run_dir"], student}
    assert rescored["best_selected_by"] == "argmax" and teacher_rescored["best_selected_by"] == "viterbi"

    rows, _ = collect_rows(m)
    teacher = next(r for r in rows if r["variant"] == "teacher")
    row = next(r for r in rows if r["variant"] == "no_kd")
    summary = ner_run["summary"]
    assert (teacher["metric"], teacher["decoding"], teacher["decoding_source"]) == (
        summary["test"]["f1"], "viterbi", "summary.json")
    assert (row["metric"], row["dev_metric"], row["decoding"], row["decoding_source"]) == (
        rescored["viterbi"]["test"]["f1"], rescored["viterbi"]["dev"]["f1"], "viterbi", "decoding.json")
    assert row["pct_of_teacher"] == 100 * row["metric"] / teacher["metric"]
    # the decoding its summary records comes from the summary; the others from decoding.json
    assert row["by_decoding"] == {"argmax": {"dev": 0.25, "test": 0.125},
                                  "viterbi": {s: rescored["viterbi"][s]["f1"] for s in ("dev", "test")}}
    assert row["best_selected_by"] == "argmax" and teacher["best_selected_by"] == "viterbi"
    assert "decoding" not in _row_of_classification()

    table = report.decoding_table(rows, ["demo"])
    v = rescored["viterbi"]["test"]["f1"]
    assert "| student B 1L-16H | no_kd | argmax | 25.00 | " in "\n".join(table)
    assert any(line.endswith(f"| 12.50 | {100 * v:.2f} | {100 * v - 12.5:+.2f} |") and "no_kd" in line
               for line in table)


def _row_of_classification():
    """A classification row as collect_rows builds it has no decoding field (the helper keeps runs unchanged)."""
    from benchmarks.rows import _decoded

    runs = [(1, {"summary": {"metric_name": "accuracy", "dev": {"accuracy": 0.5}, "test": {"accuracy": 0.5}}})]
    out, info = _decoded(runs, False, "accuracy")
    assert out == runs
    return info
