"""Export: files and metadata, dygraph vs Paddle Inference parity (both tasks), ONNX and INT8, bad model dirs.

Tiny random ERNIE models (2 layers, hidden 64) built in seconds by the session fixtures in conftest.py
(deploy_root, cls_model, ner_model, cls_export, ner_export), shared with test_predictor.py. Tolerances: Paddle Inference and ONNX Runtime logits within 1e-4 of dygraph (absolute);
INT8 argmax agreement with FP32 >= 90% of scored rows.
"""
from __future__ import annotations

import json
import os
import runpy
import shutil
import sys

import numpy as np
import pytest
from helpers import HAS_ORT, HAS_ORT_QUANT

from ernie_tiny_distill.data.examples import TextExample
from ernie_tiny_distill.data.readers import read_classification_file, read_conll
from ernie_tiny_distill.deploy import export as ex
from ernie_tiny_distill.deploy import layout, quantize
from ernie_tiny_distill.errors import UserError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONLL_TEST = os.path.join(ROOT, "..", "shared", "datasets", "conll2003", "test.txt")
TOLERANCE = 1e-4


# ---------------------------------------------------------------- helpers


def dygraph_logits(model_dir, features):
    """Logits the way Trainer.predict_logits computes them (explicit attention_mask, padded batch)."""
    import paddle

    from ernie_tiny_distill.data import batching
    from ernie_tiny_distill.models import build as models

    meta = models.read_task_metadata(model_dir)
    cls = ex.model_class_for(meta)
    model = models.load_model(model_dir, cls, num_labels=len(meta["labels"]))
    model.eval()
    batch = batching.collate([{**f, "labels": 0, "index": i} for i, f in enumerate(features)], 0)
    with paddle.no_grad():
        out = model(input_ids=paddle.to_tensor(batch["input_ids"]), token_type_ids=paddle.to_tensor(batch["token_type_ids"]),
                    attention_mask=paddle.to_tensor(batch["attention_mask"]), return_dict=True).logits.numpy()
    return [out[i] if out.ndim == 2 else out[i, : len(f["input_ids"])] for i, f in enumerate(features)]


def max_diff(a, b):
    return max(float(np.abs(x - y).max()) for x, y in zip(a, b))


def ner_sentences(deploy_root, n_conll=30):
    sentences = [s.tokens for s in read_conll(deploy_root["paths"]["ner_test"])][:30]
    if os.path.isfile(CONLL_TEST):
        sentences += [s.tokens for s in read_conll(CONLL_TEST)][:n_conll]
    return sentences


# ---------------------------------------------------------------- tests


def test_export_writes_a_self_contained_directory(cls_export):
    files = set(os.listdir(cls_export))
    assert {layout.MODEL_FILE, layout.PARAMS_FILE, layout.LABELS_FILE, layout.EXPORT_FILE, "vocab.txt", "tokenizer_config.json"} <= files
    assert not any(f.startswith(".") for f in files)
    meta = json.load(open(os.path.join(cls_export, layout.EXPORT_FILE)))
    assert json.load(open(os.path.join(cls_export, layout.LABELS_FILE))) == ["neg", "pos"]
    assert meta["task"] == "classification" and meta["layers"] == 2 and meta["hidden"] == 64 and meta["heads"] == 4
    assert meta["params"] > meta["nonembedding_params"] > 0 and meta["vocab_size"] > 100
    assert meta["paddle_version"] and meta["inputs"] == ["input_ids", "token_type_ids"]
    assert meta["files"][layout.PARAMS_FILE] == os.path.getsize(os.path.join(cls_export, layout.PARAMS_FILE))
    assert meta["check"]["max_abs_diff_dygraph_vs_inference"] <= TOLERANCE
    assert meta["check"]["max_abs_diff_padded_vs_unpadded"] <= TOLERANCE
    # no training-time checkpoint files: the directory runs on its own
    assert "model.safetensors" not in files and "task.json" not in files


def test_classification_parity_on_demo_texts(deploy_root, cls_model, cls_export):
    from ernie_tiny_distill.deploy.predictor import Predictor

    p = Predictor(cls_export, batch_size=8)
    texts = [e.text for e in read_classification_file(deploy_root["paths"]["sentiment_test"])][:40]
    features = p.encoder.task.encode([TextExample(t) for t in texts])
    assert len({len(f["input_ids"]) for f in features}) > 5  # batches really are padded
    assert max_diff(dygraph_logits(cls_model, features), p.logits(features)) <= TOLERANCE


def test_ner_parity_on_real_sentences(deploy_root, ner_model, ner_export):
    from ernie_tiny_distill.data.examples import TaggedSentence
    from ernie_tiny_distill.deploy.predictor import Predictor

    p = Predictor(ner_export, batch_size=8)
    sentences = ner_sentences(deploy_root)
    features = p.encoder.task.encode([TaggedSentence(s, None) for s in sentences])
    assert max_diff(dygraph_logits(ner_model, features), p.logits(features)) <= TOLERANCE
    # and the tags equal the training-time TaggingTask.predict for sentences that fit
    ref = dygraph_logits(ner_model, features)
    fits = [i for i, f in enumerate(features) if f["num_words"] == sum(f["token_mask"])]
    expected = [p.encoder.task.predict(ref[i], features[i]) for i in fits]
    assert p.post.predict_tokens([sentences[i] for i in fits]) == expected


def test_export_of_a_model_without_task_is_refused(deploy_root, tmp_path):
    with pytest.raises(UserError, match="not a task model"):
        ex.export_model(deploy_root["teacher"], str(tmp_path / "out"))
    general = tmp_path / "general"
    shutil.copytree(deploy_root["teacher"], general)
    (general / "task.json").write_text(json.dumps({"task": "general", "labels": []}))
    with pytest.raises(UserError, match="not a task model"):
        ex.export_model(str(general), str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_failed_export_leaves_the_old_directory(cls_model, tmp_path, monkeypatch):
    out = tmp_path / "exp"
    out.mkdir()
    (out / "keep.txt").write_text("old")
    with pytest.raises(UserError, match="not an export directory"):  # never replaces arbitrary directories
        ex.export_model(cls_model, str(out))
    with pytest.raises(UserError, match="would overwrite the checkpoint"):
        ex.export_model(cls_model, cls_model)
    (out / layout.EXPORT_FILE).write_text("{}")  # an earlier export may be replaced, but only by a complete one
    import paddle

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(paddle.jit, "save", boom)
    with pytest.raises(RuntimeError):
        ex.export_model(cls_model, str(out), verify=False)
    assert sorted(os.listdir(out)) == [layout.EXPORT_FILE, "keep.txt"]
    assert sorted(os.listdir(tmp_path)) == ["exp"]  # no temporary directories left behind


def test_export_tool_reports_clean_errors(deploy_root, tmp_path, monkeypatch, capsys):
    tool = os.path.join(ROOT, "tools", "export.py")
    main = runpy.run_path(tool, run_name="tool")["main"]
    monkeypatch.setattr(sys, "argv", [tool, "--model", deploy_root["teacher"], "--out", str(tmp_path / "x")])
    assert main() == 2
    err = capsys.readouterr().err
    assert "error:" in err and "not a task model" in err and "Traceback" not in err
    monkeypatch.setattr(sys, "argv", [tool, "--model", deploy_root["teacher"], "--out", str(tmp_path / "x"), "--int8",
                                      "--int8-method", "static"])
    assert main() == 2 and "--calibration-file" in capsys.readouterr().err


@pytest.mark.skipif(not HAS_ORT, reason="onnxruntime / paddle2onnx not installed")
def test_onnx_parity_both_tasks(deploy_root, cls_export, ner_export):
    from ernie_tiny_distill.data.examples import TaggedSentence
    from ernie_tiny_distill.deploy.predictor import Predictor

    for export_dir in (cls_export, ner_export):
        meta = json.load(open(os.path.join(export_dir, layout.EXPORT_FILE)))
        assert meta["onnx"]["max_abs_diff_vs_paddle"] <= TOLERANCE
        paddle_p, onnx_p = Predictor(export_dir), Predictor(export_dir, backend="onnx")
        if meta["task"] == "classification":
            texts = [e.text for e in read_classification_file(deploy_root["paths"]["sentiment_test"])][:20]
            features = paddle_p.encoder.task.encode([TextExample(t) for t in texts])
        else:
            features = paddle_p.encoder.task.encode([TaggedSentence(s, None) for s in ner_sentences(deploy_root, 10)])
        assert max_diff(paddle_p.logits(features), onnx_p.logits(features)) <= TOLERANCE
    texts = ["Angela Merkel visited Berlin .", "nothing here"]

    def spans(results):
        return [[(e["type"], e["start"], e["end"]) for e in r["entities"]] for r in results]

    assert spans(Predictor(ner_export).predict(texts)) == spans(Predictor(ner_export, backend="onnx").predict(texts))


@pytest.mark.skipif(not HAS_ORT_QUANT, reason="onnxruntime.quantization (onnxruntime, ml_dtypes) not installed")
@pytest.mark.parametrize("method", ["static", "dynamic"])
def test_int8_agrees_with_fp32(deploy_root, cls_export, tmp_path, method):
    from ernie_tiny_distill.deploy.predictor import Predictor

    export_dir = str(tmp_path / "int8")
    shutil.copytree(cls_export, export_dir)
    train = [e.text for e in read_classification_file(deploy_root["paths"]["sentiment_train"])]
    meta = quantize.quantize_int8(export_dir, train[:100], method=method)
    assert os.path.isfile(os.path.join(export_dir, layout.INT8_ONNX_FILE))
    assert meta["int8"]["method"] == method and meta["int8"]["agreement_with_fp32"] >= 0.9
    test = [e.text for e in read_classification_file(deploy_root["paths"]["sentiment_test"])]
    fp32 = [r["label"] for r in Predictor(export_dir).predict(test)]
    int8 = [r["label"] for r in Predictor(export_dir, backend="onnx", precision="int8").predict(test)]
    assert np.mean([a == b for a, b in zip(fp32, int8)]) >= 0.9
    with pytest.raises(UserError, match="INT8"):
        Predictor(export_dir, backend="paddle", precision="int8")


@pytest.mark.parametrize("task", ["classification", "ner"])
def test_deployed_metric_equals_training_time_evaluation(deploy_root, cls_model, cls_export, ner_model, ner_export,
                                                         task):
    """tools/evaluate.py's metric (exported model) equals Trainer.evaluate's (dygraph) on the same examples."""
    from ernie_tiny_distill.config import config_from_dict
    from ernie_tiny_distill.deploy.predictor import Predictor, evaluate_export
    from ernie_tiny_distill.distill.distiller import Distillable, Distiller
    from ernie_tiny_distill.models import build as models
    from ernie_tiny_distill.train.trainer import Trainer

    model_dir, export_dir = (cls_model, cls_export) if task == "classification" else (ner_model, ner_export)
    p = Predictor(export_dir, batch_size=8)
    if task == "classification":
        examples = read_classification_file(deploy_root["paths"]["sentiment_test"])[:60]
        metric = "accuracy"
    else:
        examples = read_conll(deploy_root["paths"]["ner_test"])[:60]
        metric = "f1"
    cfg = config_from_dict({"task": task, "stage": "teacher", "output_dir": str(deploy_root["root"] / "eval"),
                            "model": {"teacher": model_dir, "max_seq_length": 512}})
    model = models.load_model(model_dir, ex.model_class_for(p.meta), num_labels=len(p.labels))
    trainer = Trainer(cfg, p.encoder.task, Distiller(cfg, p.encoder.task, Distillable(model, 1, None)))
    # the long length keeps every word, as the predictor's windows do
    p.encoder.task.max_seq_length = 512
    expected = trainer.evaluate(model, p.encoder.task.encode(examples), examples)
    assert evaluate_export(p, examples)[metric] == pytest.approx(expected[metric], abs=1e-9)


def test_exports_and_random_teachers_take_the_users_umask(cls_export, tiny_teacher_dir):
    """Directories built in a temporary sibling get the user's umask, not mkdtemp's 0700."""
    mask = os.umask(0)
    os.umask(mask)
    for path in (cls_export, str(tiny_teacher_dir)):
        assert os.stat(path).st_mode & 0o777 == 0o777 & ~mask, path
