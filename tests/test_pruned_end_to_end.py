"""A student pruned from its fine-tuned teacher runs end to end: prune -> task KD -> export -> predictor parity."""
import json
import os

import numpy as np
import paddle
import pytest
from helpers import demo_ner_teacher
from paddlenlp.transformers import ErnieForTokenClassification

from ernie_tiny_distill.config import config_from_dict
from ernie_tiny_distill.models import build as models
from ernie_tiny_distill.train.stages import run_stage


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("pruned")
    base = demo_ner_teacher(root, "random_teacher", num_layers=3, hidden_size=32, num_heads=4, intermediate_size=64)

    def config(stage, name, **sections):
        raw = {"task": "ner", "stage": stage, "output_dir": str(root / name),
               "data": {"format": "demo", "path": str(root / "demo"), "max_train_examples": 48,
                        "max_dev_examples": 16, "max_test_examples": 16},
               "model": {"teacher": base, "max_seq_length": 40},
               "train": {"epochs": 2, "batch_size": 8, "learning_rate": 3e-3, "warmup_ratio": 0.0, "progress": False,
                         "seed": 3, "num_threads": 1}}
        for key, value in sections.items():
            raw[key] = {**raw.get(key, {}), **value}
        return config_from_dict(raw)

    teacher = run_stage(config("teacher", "teacher"))
    student_block = {"init": "teacher_pruned", "layers": [0, 2], "num_heads": 2, "intermediate_size": 16,
                     "hidden_size": 24, "importance_examples": 32}
    sections = {"model": {"teacher": teacher["output_dir"], "max_seq_length": 40, "student": student_block},
                "distill": {"temperature": 2.0, "hidden_weight": 1.0, "attention_weight": 1.0,
                            "allow_weak_teacher": True}}
    student = run_stage(config("task", "student", **sections))
    return {"root": root, "teacher": teacher, "student": student, "config": config, "student_sections": sections}


def test_the_pruned_student_has_the_planned_shape_and_records_it(runs):
    out = runs["student"]["output_dir"]
    with open(os.path.join(runs["student"]["best_dir"], "config.json"), encoding="utf-8") as f:
        config = json.load(f)
    assert config["layer_heads"] == [2, 2] and config["layer_intermediate"] == [16, 16]
    assert config["hidden_size"] == 24 and config["num_hidden_layers"] == 2
    with open(os.path.join(out, "pruning.json"), encoding="utf-8") as f:
        plan = json.load(f)
    assert plan["layers"] == [0, 2] and [len(h) for h in plan["heads"]] == [2, 2]
    assert len(plan["init_report"]["hidden_relative_error"]) == 3  # embeddings + 2 layers
    with open(os.path.join(out, "importance.json"), encoding="utf-8") as f:
        importance = json.load(f)
    assert np.asarray(importance["heads"]).shape == (3, 4) and importance["examples"] == 32
    with open(os.path.join(out, "train_log.jsonl"), encoding="utf-8") as f:
        first = json.loads(f.readline())
    assert {"kd", "ce", "hidden", "attention"} <= set(first)


def test_a_second_student_reuses_the_cached_importance(runs, caplog):
    import logging

    caplog.set_level(logging.INFO, logger="ernie_tiny_distill")
    cfg = runs["config"]("task", "student_seed2", train={"max_steps": 1, "seed": 4}, **runs["student_sections"])
    run_stage(cfg)
    assert any("importance from cache" in r.getMessage() for r in caplog.records)
    assert not any("measuring head/neuron importance" in r.getMessage() for r in caplog.records)
    with open(os.path.join(cfg.output_dir, "importance.json"), encoding="utf-8") as f, \
            open(os.path.join(runs["student"]["output_dir"], "importance.json"), encoding="utf-8") as g:
        assert json.load(f) == json.load(g)


def test_export_onnx_int8_and_predictor_parity(runs, tmp_path):
    from ernie_tiny_distill.data.examples import TaggedSentence
    from ernie_tiny_distill.deploy import export as ex
    from ernie_tiny_distill.deploy import layout, quantize
    from ernie_tiny_distill.deploy.predictor import Predictor

    best = runs["student"]["best_dir"]
    out = str(tmp_path / "export")
    ex.export_model(best, out, onnx=True)
    meta = layout.read_export_metadata(out)
    assert meta["check"]["max_abs_diff_dygraph_vs_inference"] <= 1e-4
    model = models.load_model(best, ErnieForTokenClassification)
    model.eval()
    sentences = [["John", "lives", "in", "New", "York", "."], ["the", "film", "was", "great"]]
    for backend in ("paddle", "onnx"):
        p = Predictor(out, backend=backend, batch_size=4)
        features = p.encoder.task.encode([TaggedSentence(s, None) for s in sentences])
        expected = []
        with paddle.no_grad():
            for f in features:
                ids = paddle.to_tensor([f["input_ids"]])
                expected.append(model(input_ids=ids, token_type_ids=paddle.zeros_like(ids)).numpy()[0])
        got = p.logits(features)
        assert max(float(np.abs(a - b).max()) for a, b in zip(expected, got)) <= 1e-4, backend
    quantize.quantize_int8(out, [" ".join(s) for s in sentences])
    assert os.path.isfile(os.path.join(out, "model.int8.onnx"))
    int8 = Predictor(out, backend="onnx", precision="int8")
    assert len(int8.predict([" ".join(sentences[0])])) == 1


def test_stage_one_from_a_pruned_student_reuses_the_task_runs_importance(runs):
    importance = os.path.join(runs["student"]["output_dir"], "importance.json")
    block = {**runs["student_sections"]["model"]["student"], "importance_file": importance}
    cfg = runs["config"]("general", "general_pruned", train={"max_steps": 2},
                         data={"unlabeled": "demo", "max_unlabeled_examples": 40},
                         model={"teacher": runs["teacher"]["output_dir"], "max_seq_length": 40, "student": block},
                         distill={"hidden_weight": 1.0, "attention_weight": 1.0})
    summary = run_stage(cfg)
    with open(os.path.join(summary["best_dir"], "config.json"), encoding="utf-8") as f:
        config = json.load(f)
    assert config["layer_heads"] == [2, 2] and config["source_layers"] == [0, 2]
    with open(os.path.join(cfg.output_dir, "pruning.json"), encoding="utf-8") as f:
        assert json.load(f)["init_report"]["prediction_agreement"] is None  # a bare encoder predicts nothing
    # without an importance file stage 1 has nothing to measure importance with
    from ernie_tiny_distill.errors import UserError

    bad = runs["config"]("general", "general_pruned_bad", train={"max_steps": 1},
                         data={"unlabeled": "demo", "max_unlabeled_examples": 40},
                         model={"teacher": runs["teacher"]["output_dir"], "max_seq_length": 40,
                                "student": runs["student_sections"]["model"]["student"]},
                         distill={"hidden_weight": 1.0})
    with pytest.raises(UserError, match="model.student.importance_file"):
        run_stage(bad)
