"""The document-level wide part (wide_document.py, model.wide.level 'document'): its TF-IDF vector by hand and
against scikit-learn's, saving and loading, the stage 'wide' fit, and the same logits in dygraph and served."""
from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest
from helpers import HAS_ORT

from ernie_tiny_distill.config import config_from_dict
from ernie_tiny_distill.errors import UserError
from ernie_tiny_distill.models import build as models
from ernie_tiny_distill.models import birth
from ernie_tiny_distill.wide import document as wide_document
from ernie_tiny_distill.wide import window as wide

UNIGRAMS = wide.WideSpec(vocab_size=50, buckets=0, pad_token_id=0)


def _doc(*windows):
    return {"windows": [{"input_ids": list(w)} for w in windows]} if len(windows) > 1 else {"input_ids": list(windows[0])}


def test_tfidf_vector_by_hand():
    slots, idf = np.array([2, 5, 9]), np.array([1.0, 2.0, 1.0], np.float32)
    # slot 2 once, slot 5 three times (across two overlapping windows), slot 7 unknown to the table
    rows, values = wide_document.document_vector(*wide_document.slot_counts(_doc([2, 5, 5, 0], [5, 7, 0, 0]), UNIGRAMS),
                                              slots, idf)
    a, b = 1.0, (1 + math.log(3)) * 2.0
    assert rows.tolist() == [0, 1]
    np.testing.assert_allclose(values, [a / math.hypot(a, b), b / math.hypot(a, b)], rtol=1e-6)
    # nothing known: an empty vector, no division by zero
    rows, values = wide_document.document_vector(np.array([7]), np.array([1]), slots, idf)
    assert rows.tolist() == [] and values.tolist() == []


def test_nb_weighting_by_hand():
    spec = UNIGRAMS
    # slot 3 in both positive documents and no negative one; slot 4 in every document; 7 only in an unlabeled one
    docs = [_doc([3, 4, 0]), _doc([3, 3, 4]), _doc([4, 5, 0]), _doc([7, 4, 0])]
    labels = [1, 1, 0, -100]
    slots = np.array([3, 4, 5, 7])
    ratios = wide_document.nb_ratios([wide_document.slot_counts(d, spec) for d in docs], labels, slots)
    p, q = np.array([3.0, 3, 1, 1]), np.array([1.0, 2, 2, 1])  # 1 + documents of each label holding the slot
    np.testing.assert_allclose(ratios, np.log((p / p.sum()) / (q / q.sum())), rtol=1e-6)
    # presence, not counts: slot 3 twice in the second document weighs as once
    rows, values = wide_document.document_vector(*wide_document.slot_counts(docs[1], spec), slots, ratios, "nb")
    expected = ratios[[0, 1]] / np.linalg.norm(ratios[[0, 1]])
    assert rows.tolist() == [0, 1]
    np.testing.assert_allclose(values, expected, rtol=1e-6)


def test_design_matrix_is_scikit_learns_sublinear_tfidf_of_the_slots():
    from sklearn.feature_extraction.text import TfidfVectorizer

    rng = np.random.default_rng(0)
    spec = wide.WideSpec(vocab_size=30, buckets=11, pad_token_id=0)
    docs = [_doc(*[rng.integers(1, 30, size=int(rng.integers(2, 9))) for _ in range(int(rng.integers(1, 4)))])
            for _ in range(40)]
    counted = [wide_document.slot_counts(d, spec) for d in docs]
    slots, idf = wide_document.vocabulary(counted[:30])
    ours = wide_document.design_matrix(counted, slots, idf).toarray()
    vectorizer = TfidfVectorizer(analyzer=lambda d: [str(s) for s in wide_document.document_slots(d, spec)],
                                 sublinear_tf=True, norm="l2", smooth_idf=True)
    vectorizer.fit(docs[:30])
    theirs = vectorizer.transform(docs).toarray()
    columns = [vectorizer.vocabulary_[str(s)] for s in slots]  # scikit-learn orders its columns as strings
    assert len(columns) == theirs.shape[1]
    np.testing.assert_allclose(ours, theirs[:, columns], atol=1e-6)


def test_table_round_trips_and_bad_files_are_named(tmp_path):
    spec = wide.WideSpec(vocab_size=50, buckets=7, pad_token_id=0)
    docs = [_doc([2, 5, 9, 0]), _doc([3, 4, 0, 0], [4, 9, 0, 0])]
    slots, idf = wide_document.vocabulary([wide_document.slot_counts(d, spec) for d in docs])
    table = np.arange(len(slots) * 2, dtype=np.float32).reshape(-1, 2)
    part = wide_document.DocumentTable(spec, slots, idf, table, np.array([0.5, -0.5], np.float32))
    rows, values = part.vector(docs[1])
    np.testing.assert_allclose(part.logits(docs)[1], values @ table[rows] + [0.5, -0.5], rtol=1e-6)
    part.save(str(tmp_path))
    from ernie_tiny_distill.util import filemodes

    # readable like the export's other files (safetensors alone writes 0600)
    assert os.stat(tmp_path / wide_document.DOCUMENT_WEIGHTS).st_mode & 0o777 == 0o666 & ~filemodes.current_umask()
    again = wide_document.DocumentTable.load(str(tmp_path))
    np.testing.assert_allclose(again.logits(docs), part.logits(docs), rtol=1e-6)
    raw = json.loads((tmp_path / wide_document.DOCUMENT_CONFIG).read_text())
    (tmp_path / wide_document.DOCUMENT_CONFIG).write_text(json.dumps({**raw, "num_labels": 3}))
    with pytest.raises(UserError, match="wide_document.safetensors.*3|has 2 outputs, its config says 3"):
        wide_document.DocumentTable.load(str(tmp_path))
    (tmp_path / wide_document.DOCUMENT_WEIGHTS).write_bytes(b"junk")
    with pytest.raises(UserError, match="cannot read the document-level wide table"):
        wide_document.DocumentTable.load(str(tmp_path))
    with pytest.raises(ValueError, match="sorted and distinct"):
        wide_document.DocumentTable(spec, slots[::-1], idf, table, np.zeros(2, np.float32))


def _config(deploy_root, cls_model, tmp_path, **wide_options):
    return {"task": "classification", "stage": "wide", "output_dir": str(tmp_path / "wide_run"),
            "data": {"format": "demo", "path": str(deploy_root["root"] / "demo"), "cache_dir": str(tmp_path / "c")},
            "model": {"teacher": cls_model, "max_seq_length": 16,
                      "student": {"init": "pretrained", "path": cls_model},
                      "long_document": {"mode": "windows", "max_windows": 4},
                      "wide": {"buckets": 256, "level": "document", "fit": "separate", **wide_options}},
            "train": {"num_threads": 1, "progress": False},
            "distill": {"temperature": 2.0, "ce_weight": 0.5, "teachers": [{"tfidf": True}]}}


def test_level_document_is_checked(deploy_root, cls_model, tmp_path):
    with pytest.raises(UserError, match="model.wide.weighting' must be one of tfidf, nb; got 'bm25'"):
        config_from_dict(_config(deploy_root, cls_model, tmp_path, weighting="bm25"))
    with pytest.raises(UserError, match="model.wide.level' must be one of window, document; got 'page'"):
        config_from_dict(_config(deploy_root, cls_model, tmp_path, level="page"))
    with pytest.raises(UserError, match="'document' is fitted alone .* set model.wide.fit to 'separate'"):
        config_from_dict(_config(deploy_root, cls_model, tmp_path, fit="residual"))


@pytest.mark.parametrize("weighting", ["tfidf", "nb"])
def test_stage_wide_at_document_level_fits_saves_exports_and_serves_the_same_logits(deploy_root, cls_model,
                                                                                   tmp_path, weighting):
    from ernie_tiny_distill.data import load as data_lib
    from ernie_tiny_distill.deploy import export as ex
    from ernie_tiny_distill.deploy.predictor import Predictor
    from ernie_tiny_distill.tasks.adapters import make_task
    from ernie_tiny_distill.train import evaluation
    from ernie_tiny_distill.train.stages import run_stage
    from ernie_tiny_distill.wide import document_fit as wide_document_fit

    cfg = config_from_dict(_config(deploy_root, cls_model, tmp_path, weighting=weighting))
    summary = run_stage(cfg)
    assert summary["wide_weighting"] == weighting
    assert summary["wide_level"] == "document" and [h["C"] for h in summary["history"]] == list(wide_document_fit.DOCUMENT_C)
    assert summary["dev"]["accuracy"] >= summary["deep_dev"]["accuracy"]  # the transformer alone is the floor
    best = summary["best_dir"]
    assert os.path.isfile(os.path.join(best, wide_document.DOCUMENT_WEIGHTS))
    assert not os.path.isfile(os.path.join(best, wide.WIDE_CONFIG))  # no window-level table in the graph
    meta = models.read_task_metadata(best)
    assert meta["wide"]["level"] == "document" and meta["wide"]["scale"] == summary["wide_scale"]
    dev = data_lib.load_splits(cfg.data, cfg.task).dev
    tokenizer = models.load_tokenizer(best)
    task = make_task("classification", tokenizer, meta["labels"], 16, meta["truncation"],
                     long_document=meta["long_document"])
    features = task.encode(dev)
    assert any(len(f.get("windows", [])) > 1 for f in features)  # long documents: several windows each
    model = models.load_model(best, task.model_class, 2)
    assert model.document_table.weighting == weighting
    dygraph = np.stack(evaluation.predict_logits(task, model, features, 8, tokenizer.pad_token_id))
    # the saved model scores what the fit reported on dev
    accuracy = np.mean([meta["labels"][int(np.argmax(r))] == e.label for r, e in zip(dygraph, dev)])
    assert accuracy == pytest.approx(summary["dev"]["accuracy"])
    # the part is added after pooling: dygraph logits = the transformer's pooled ones + the table's
    deep = models.load_model(cls_model, task.model_class, 2)
    alone = np.stack(evaluation.predict_logits(task, deep, features, 8, tokenizer.pad_token_id))
    np.testing.assert_allclose(dygraph, alone + model.document_table.logits(features), atol=1e-5)
    # exported: the Predictor (Paddle Inference, and ONNX when available) adds the same part
    out = str(tmp_path / "export")
    export = ex.export_model(best, out, onnx=HAS_ORT)
    assert export["check"]["passed"] and os.path.isfile(os.path.join(out, wide_document.DOCUMENT_CONFIG))
    inputs = [{k: f[k] for k in ("input_ids", "token_type_ids", "windows") if k in f} for f in features]
    served = np.stack(Predictor(out).document_logits(inputs))
    assert np.abs(served - dygraph).max() < 1e-4
    if HAS_ORT:
        onnx = np.stack(Predictor(out, backend="onnx").document_logits(inputs))
        assert np.abs(onnx - dygraph).max() < 1e-4
    # training the transformer on from this directory would drop the part: refused, naming the key
    from paddlenlp.transformers import AutoTokenizer

    student = config_from_dict(dict(_config(deploy_root, cls_model, tmp_path), stage="task",
                                    model={"teacher": cls_model, "max_seq_length": 16,
                                           "student": {"init": "pretrained", "path": best}})).model.student
    with pytest.raises(UserError, match="has a document-level wide part"):
        birth.build_student(student, None, AutoTokenizer.from_pretrained(cls_model), task.model_class, 2)
