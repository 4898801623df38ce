"""A teacher scored through its Paddle Inference export (deploy/scoring.py): the same logits as dygraph over
windows, used only for the same weights, and the same teacher-logit cache either way."""
import json
import os
import shutil

import numpy as np
import pytest
import yaml

from ernie_tiny_distill.data.readers import read_classification_file
from ernie_tiny_distill.deploy import scoring
from ernie_tiny_distill.deploy.engines import PaddleEngine
from ernie_tiny_distill.distill import ensemble
from ernie_tiny_distill.errors import UserError
from ernie_tiny_distill.models import build as models
from ernie_tiny_distill.tasks.adapters import make_task
from ernie_tiny_distill.train import evaluation

WINDOWS = {"stride": None, "max_windows": 4, "pooling": "mean"}


def _windowed(deploy_root, cls_model, max_seq_length=16):
    path = models.resolve(cls_model)
    meta = models.read_task_metadata(path)
    tokenizer = models.load_tokenizer(path)
    task = make_task("classification", tokenizer, meta["labels"], max_seq_length, "head", long_document=WINDOWS)
    examples = read_classification_file(deploy_root["paths"]["sentiment_test"])
    return path, meta, tokenizer, task, task.encode(examples)


def test_export_logits_equal_dygraph_over_windows(deploy_root, cls_model, cls_export):
    path, meta, tokenizer, task, features = _windowed(deploy_root, cls_model)
    assert sum(len(f["windows"]) > 1 for f in features) >= 5   # long documents: several windows of different widths
    model = models.load_model(path, task.model_class, task.num_labels)
    want = evaluation.predict_logits(task, model, features, 8, tokenizer.pad_token_id)
    # 3 window rows per engine call: batches mix windows of several documents, sorted by length
    got = scoring.predict_logits(task, PaddleEngine(cls_export), features, tokenizer.pad_token_id, batch_size=3)
    assert len(got) == len(want) and all(g.shape == (task.num_labels,) for g in got)
    assert max(float(np.abs(g - w).max()) for g, w in zip(got, want)) <= 1e-4


def test_an_export_stands_for_the_teacher_only_with_the_same_weights(deploy_root, cls_model, cls_export, tmp_path):
    path = models.resolve(cls_model)
    labels = models.read_task_metadata(path)["labels"]
    assert scoring.export_mismatch(cls_export, path, labels) is None   # export_model recorded the weights' sha256
    copy = str(tmp_path / "export")
    shutil.copytree(cls_export, copy)
    meta_path = os.path.join(copy, "export.json")
    meta = json.load(open(meta_path))
    assert meta["source_weights"] == scoring.weights_digest(path) and list(meta["source_weights"]) == ["model.safetensors"]

    def edited(**changes):
        with open(meta_path, "w") as f:
            json.dump({k: v for k, v in {**meta, **changes}.items() if v is not None}, f)
        return scoring.export_mismatch(copy, path, labels)

    assert edited(labels=labels[::-1]) == f"its labels {labels[::-1]} are not the teacher's {labels}"
    assert edited(source_weights={"model.safetensors": "0" * 64}) == "it was exported from other weights (sha256)"
    # an export written before source_weights: the same directory, after the weights last changed
    assert edited(source_weights=None, created="2999-01-01T00:00:00+00:00") is None
    assert edited(source_weights=None, created="2000-01-01T00:00:00+00:00") == "the weights changed after it was exported"
    assert edited(source_weights=None, source="/elsewhere") == f"it was exported from /elsewhere, not {path}"
    os.remove(os.path.join(copy, "inference.pdiparams"))
    assert scoring.export_mismatch(copy, path, labels) == f"{copy} is not a complete Paddle Inference export"


def test_scorer_falls_back_to_dygraph_when_the_spot_check_disagrees(deploy_root, cls_model, cls_export):
    path, meta, tokenizer, task, features = _windowed(deploy_root, cls_model)
    model = models.load_model(path, task.model_class, task.num_labels)
    calls = []

    def dygraph(fs, shift=0.0):
        calls.append(len(fs))
        return [x + shift for x in evaluation.predict_logits(task, model, fs, 8, tokenizer.pad_token_id)]

    compute = scoring.export_scorer(cls_export, path, meta["labels"], task, tokenizer.pad_token_id, dygraph)
    out = compute(features)
    assert calls == [scoring.SPOT_DOCUMENTS]   # dygraph ran on the spot-check documents only
    assert max(float(np.abs(a - b).max()) for a, b in zip(out, dygraph(features))) <= 1e-4
    calls.clear()
    wrong = scoring.export_scorer(cls_export, path, meta["labels"], task, tokenizer.pad_token_id,
                                  lambda fs: dygraph(fs, shift=1.0))
    assert wrong(features) is not None and calls == [scoring.SPOT_DOCUMENTS, len(features)]   # all in dygraph
    assert scoring.export_scorer(None, path, meta["labels"], task, 0, dygraph) is dygraph
    assert scoring.export_scorer(str(deploy_root["root"]), path, meta["labels"], task, 0, dygraph) is dygraph


def test_ensemble_member_through_its_export_fills_the_same_cache(deploy_root, cls_model, cls_export, tmp_path):
    def config(export, cache):
        cfg = {"task": "classification", "stage": "task", "output_dir": str(tmp_path / "run"),
               "data": {"format": "demo", "path": str(deploy_root["root"] / "demo"), "cache_dir": str(cache)},
               "model": {"teacher": cls_model, "max_seq_length": 16, "student": {"every_k": 1},
                         "long_document": {"mode": "windows", "max_windows": 4}},
               "distill": {"teachers": [{"path": cls_model, **({"export": export} if export else {})}]}}
        path = tmp_path / f"cfg-{bool(export)}.yaml"
        path.write_text(yaml.safe_dump(cfg))
        return str(path)

    from ernie_tiny_distill.config import load_config

    cfg = load_config(config(cls_export, tmp_path / "a"))
    assert cfg.distill.teachers == [{"path": cls_model, "tfidf": False, "weight": 1.0, "export": cls_export}]
    fast = ensemble.score_teachers(cfg)
    slow = ensemble.score_teachers(load_config(config(None, tmp_path / "b")))
    assert fast["test"] == slow["test"] and fast["dev"] == slow["dev"]
    a, b = (sorted(n for n in os.listdir(tmp_path / d / "teacher_logits") if n.endswith(".npz")) for d in ("a", "b"))
    assert a == b and len(a) == 2   # dev and test, under the same keys (the weights and the data)
    for name in a:
        with np.load(tmp_path / "a" / "teacher_logits" / name) as x, np.load(tmp_path / "b" / "teacher_logits" / name) as y:
            assert np.array_equal(x["offsets"], y["offsets"]) and np.abs(x["rows"] - y["rows"]).max() <= 1e-4
    with pytest.raises(UserError, match=r"distill.teachers\[0\]\.export. must be the export directory"):
        load_config(config(cls_export, tmp_path / "c"), ["distill.teachers=[{tfidf: true, export: x}]"])
