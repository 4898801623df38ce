"""Wide-and-deep students (wide.py, stage 'wide'): the n-gram table by hand, fitting beside a frozen transformer,
saving, loading and exporting."""
from __future__ import annotations

import json
import os

import numpy as np
import paddle
import pytest
import yaml
from helpers import HAS_ORT

from ernie_tiny_distill.config import config_from_dict
from ernie_tiny_distill.errors import UserError
from ernie_tiny_distill.models import build as models
from ernie_tiny_distill.models import birth
from ernie_tiny_distill.wide import window as wide


def test_window_logits_are_the_mean_of_its_ngram_rows_by_hand():
    spec = wide.WideSpec(vocab_size=50, buckets=7, pad_token_id=0)
    layer = wide.WideNgrams(spec, num_labels=2)
    table = np.arange(57 * 2, dtype=np.float32).reshape(57, 2)
    layer.table.set_value(table)
    ids = np.array([[2, 5, 9, 0, 0], [3, 0, 0, 0, 0], [0, 0, 0, 0, 0]], dtype=np.int64)
    # unigrams 2, 5, 9; bigrams (2,5) -> 50 + (2·1000003 + 5) mod 7 = 56, (5,9) -> 50 + (5·1000003 + 9) mod 7 = 51
    assert (2 * 1_000_003 + 5) % 7 == 6 and (5 * 1_000_003 + 9) % 7 == 1
    assert wide.ngram_slots(ids[0], spec).tolist() == [2, 5, 9, 56, 51]
    out = layer(paddle.to_tensor(ids)).numpy()
    np.testing.assert_allclose(out[0], table[[2, 5, 9, 56, 51]].mean(0), rtol=1e-6)
    np.testing.assert_allclose(out[1], table[3], rtol=1e-6)  # one piece, no bigram
    np.testing.assert_allclose(out[2], [0.0, 0.0])  # all padding: no n-gram, zero logits (not NaN)
    unigrams = wide.WideNgrams(wide.WideSpec(50, 0), 2)
    unigrams.table.set_value(table[:50])
    np.testing.assert_allclose(unigrams(paddle.to_tensor(ids[:1])).numpy()[0], table[[2, 5, 9]].mean(0), rtol=1e-6)


def test_a_fresh_wide_part_leaves_the_transformer_unchanged_and_round_trips(cls_model, tmp_path):
    from paddlenlp.transformers import ErnieForSequenceClassification

    deep = models.load_model(cls_model, ErnieForSequenceClassification, 2)
    deep.eval()
    both = wide.WideAndDeep(deep, wide.WideNgrams(wide.WideSpec(int(deep.config.vocab_size), 16), 2))
    both.eval()
    ids = paddle.to_tensor([[2, 7, 9, 3, 0, 0]], dtype="int64")
    types = paddle.zeros_like(ids)
    np.testing.assert_allclose(both(ids, types).numpy(), deep(input_ids=ids, token_type_ids=types).numpy(), rtol=1e-6)
    both.wide.table.set_value(np.random.default_rng(0).normal(size=both.wide.table.shape).astype(np.float32))
    meta = models.read_task_metadata(cls_model)
    models.save_model_dir(both, models.load_tokenizer(cls_model), str(tmp_path / "wd"), meta)
    again = models.load_model(str(tmp_path / "wd"), ErnieForSequenceClassification, 2)
    again.eval()
    assert isinstance(again, wide.WideAndDeep)
    np.testing.assert_allclose(again(ids, types).numpy(), both(ids, types).numpy(), rtol=1e-5)
    # a table of the wrong shape is refused, naming the file
    cfg = json.loads((tmp_path / "wd" / wide.WIDE_CONFIG).read_text())
    (tmp_path / "wd" / wide.WIDE_CONFIG).write_text(json.dumps({**cfg, "buckets": 8}))
    with pytest.raises(UserError, match=r"wide_ngrams.safetensors.*|shape \[.*\], expected"):
        models.load_model(str(tmp_path / "wd"), ErnieForSequenceClassification, 2)


def _wide_config(deploy_root, cls_model, tmp_path, **model):
    return {"task": "classification", "stage": "wide", "output_dir": str(tmp_path / "wide_run"),
            "data": {"format": "demo", "path": str(deploy_root["root"] / "demo"), "cache_dir": str(tmp_path / "c")},
            "model": {"teacher": cls_model, "max_seq_length": 16,
                      "student": {"init": "pretrained", "path": cls_model},
                      "long_document": {"mode": "windows", "max_windows": 4}, "wide": {"buckets": 256}, **model},
            "train": {"epochs": 4, "batch_size": 16, "learning_rate": 0.05, "num_threads": 1, "progress": False},
            "distill": {"temperature": 2.0, "ce_weight": 0.5, "teachers": [{"tfidf": True}]}}


def test_config_of_stage_wide_is_checked(deploy_root, cls_model, tmp_path):
    raw = _wide_config(deploy_root, cls_model, tmp_path)
    assert config_from_dict(raw).model.wide.buckets == 256
    bad = {**raw, "model": {**raw["model"], "student": {"init": "teacher_layers", "every_k": 1}}}
    with pytest.raises(UserError, match="stage 'wide' fits a wide part beside a trained task student"):
        config_from_dict(bad)
    bad = {**raw, "model": {**raw["model"], "wide": {"buckets": -1}}}
    with pytest.raises(UserError, match="model.wide.buckets"):
        config_from_dict(bad)


def test_stage_wide_fits_beside_the_frozen_transformer_and_exports(deploy_root, cls_model, tmp_path):
    from ernie_tiny_distill.deploy import export as ex
    from ernie_tiny_distill.train.stages import run_stage

    cfg = config_from_dict(_wide_config(deploy_root, cls_model, tmp_path))
    summary = run_stage(cfg)
    best = summary["best_dir"]
    assert os.path.isfile(os.path.join(best, wide.WIDE_WEIGHTS)) and summary["wide_params"] == \
        (int(yaml.safe_load(open(os.path.join(cls_model, "config.json")))["vocab_size"]) + 256) * 2
    from paddlenlp.transformers import ErnieForSequenceClassification

    deep_total, deep_nonembedding = birth.count_parameters(models.load_model(cls_model, ErnieForSequenceClassification, 2))
    # the table is a lookup: counted in params, not in the non-embedding parameters
    assert (summary["params"], summary["nonembedding_params"]) == (deep_total + summary["wide_params"], deep_nonembedding)
    # epoch 0 is the transformer alone, so the kept table never scores below it on dev
    assert summary["dev"]["accuracy"] >= summary["deep_dev"]["accuracy"]
    assert summary["best_epoch"] == 0 or summary["dev"]["accuracy"] > summary["deep_dev"]["accuracy"]
    meta = models.read_task_metadata(best)
    assert meta["stage"] == "wide" and meta["wide"]["buckets"] == 256 and meta["long_document"]["max_windows"] == 4
    # the transformer is frozen: best/ holds the student's weights unchanged
    from safetensors.numpy import load_file

    before, after = load_file(os.path.join(cls_model, "model.safetensors")), load_file(
        os.path.join(best, "model.safetensors"))
    assert before.keys() == after.keys() and all(np.array_equal(before[k], after[k]) for k in before)
    # the export holds the wide part: its logits equal the dygraph model's (verify_export) and differ from the
    # transformer's alone once the table is not zero
    out = str(tmp_path / "export")
    export = ex.export_model(best, out, onnx=HAS_ORT)
    assert export["check"]["passed"]
    if HAS_ORT:  # the bigram hash is int64 end to end in ONNX too (a float32 multiply once broke it)
        assert export["onnx"]["max_abs_diff_vs_paddle"] < 1e-4
    from ernie_tiny_distill.data import load as data_lib
    from ernie_tiny_distill.deploy.predictor import Predictor
    from ernie_tiny_distill.tasks.adapters import make_task
    from ernie_tiny_distill.train import evaluation

    dev = data_lib.load_splits(cfg.data, cfg.task).dev
    tokenizer = models.load_tokenizer(best)
    task = make_task("classification", tokenizer, meta["labels"], 16, meta["truncation"],
                     long_document=meta["long_document"])
    features = task.encode(dev)
    model = models.load_model(best, task.model_class, 2)
    dygraph = np.stack(evaluation.predict_logits(task, model, features, 8, tokenizer.pad_token_id))
    served = np.stack(Predictor(out).document_logits([{k: f[k] for k in ("input_ids", "token_type_ids", "windows")
                                                        if k in f} for f in features]))
    assert np.abs(served - dygraph).max() < 1e-4
    # the stage's dev score is the saved model's: the frozen transformer's cached rows plus the fitted table
    accuracy = np.mean([meta["labels"][int(np.argmax(r))] == e.label for r, e in zip(dygraph, dev)])
    assert accuracy == pytest.approx(summary["dev"]["accuracy"])
    if summary["best_epoch"] > 0:  # the table changes predictions: the export does not drop the wide part
        deep = models.load_model(cls_model, task.model_class, 2)
        alone = np.stack(evaluation.predict_logits(task, deep, features, 8, tokenizer.pad_token_id))
        assert np.abs(alone - served).max() > 1e-3


def test_separate_fit_learns_the_table_alone_and_folds_the_dev_scale_into_it(deploy_root, cls_model, tmp_path,
                                                                            monkeypatch):
    from ernie_tiny_distill.data import load as data_lib
    from ernie_tiny_distill.tasks.adapters import make_task
    from ernie_tiny_distill.train import evaluation
    from ernie_tiny_distill.train.stages import run_stage
    from ernie_tiny_distill.wide import fit as wide_fit

    bad = _wide_config(deploy_root, cls_model, tmp_path, wide={"buckets": 256, "fit": "joint"})
    with pytest.raises(UserError, match=r"model\.wide\.fit' must be one of residual, separate; got 'joint'"):
        config_from_dict(bad)
    fitted_on = []  # the transformer rows each training step's logits start from
    real = wide_fit.document_logits

    def spy(task, layer, features, deep_rows, pad):
        if paddle.is_grad_enabled():
            fitted_on.append(np.asarray(deep_rows))
        return real(task, layer, features, deep_rows, pad)

    monkeypatch.setattr(wide_fit, "document_logits", spy)
    cfg = config_from_dict(_wide_config(deploy_root, cls_model, tmp_path, wide={"buckets": 256, "fit": "separate"}))
    summary = run_stage(cfg)
    assert fitted_on and all(not rows.any() for rows in fitted_on)  # the table alone: no transformer in the loss
    assert summary["wide_fit"] == "separate" and summary["wide_scale"] in wide_fit.WIDE_SCALES + (1.0,)
    assert [h["epoch"] for h in summary["history"]] == [1, 2, 3, 4]
    assert all(h["scale"] in wide_fit.WIDE_SCALES and 0 <= h["table_dev"] <= 1 for h in summary["history"])
    chosen = [h for h in summary["history"] if h["epoch"] == summary["best_epoch"]]
    assert not chosen or chosen[0]["scale"] == summary["wide_scale"]
    # the saved model (transformer + scaled table) scores what the fit reported on dev
    best = summary["best_dir"]
    meta = models.read_task_metadata(best)
    assert meta["wide"]["fit"] == "separate" and meta["wide"]["scale"] == summary["wide_scale"]
    dev = data_lib.load_splits(cfg.data, cfg.task).dev
    task = make_task("classification", models.load_tokenizer(best), meta["labels"], 16, meta["truncation"],
                     long_document=meta["long_document"])
    logits = evaluation.predict_logits(task, models.load_model(best, task.model_class, 2), task.encode(dev), 8, 0)
    accuracy = np.mean([meta["labels"][int(np.argmax(r))] == e.label for r, e in zip(logits, dev)])
    assert accuracy == pytest.approx(summary["dev"]["accuracy"])
