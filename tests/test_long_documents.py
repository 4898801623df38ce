"""Long documents as pooled windows (model.long_document): coverage, equality with truncation for short texts,
pooling, and the predictor on a long document equal to training-time evaluation."""
from __future__ import annotations

import numpy as np
import paddle
import pytest
from helpers import tiny_config

from ernie_tiny_distill.config import config_from_dict
from ernie_tiny_distill.data import batching
from ernie_tiny_distill.data.examples import TextExample
from ernie_tiny_distill.errors import UserError
from ernie_tiny_distill.models import build as models
from ernie_tiny_distill.tasks.adapters import make_task
from ernie_tiny_distill.tasks.classification import ClassificationTask
from ernie_tiny_distill.train import evaluation

WINDOWS = {"stride": None, "max_windows": None, "pooling": "mean"}


def windowed(tokenizer, max_seq_length=10, **option):
    return ClassificationTask(tokenizer, ["neg", "pos"], max_seq_length, long_document={**WINDOWS, **option})


@pytest.mark.parametrize("n, max_seq_length, stride", [(0, 10, None), (1, 10, None), (8, 10, None), (9, 10, None),
                                                       (17, 10, None), (100, 10, 3), (100, 10, 8), (57, 12, 1)])
def test_every_piece_is_in_a_window(hand_tokenizer, n, max_seq_length, stride):
    task = windowed(hand_tokenizer, max_seq_length, stride=stride)
    pieces = list(range(1000, 1000 + n))  # distinct ids, none of them [CLS]/[SEP]
    feature = task.document_feature(pieces)
    seen = set()
    for w in feature["windows"]:
        ids = w["input_ids"]
        assert len(ids) <= max_seq_length and ids[0] == hand_tokenizer.cls_token_id
        assert ids[-1] == hand_tokenizer.sep_token_id
        assert ids[1:-1] == pieces[ids[1] - 1000:ids[1] - 1000 + len(ids) - 2] if len(ids) > 2 else True
        seen.update(ids[1:-1])
    assert seen == set(pieces) and not feature["truncated"]
    assert feature["input_ids"] == [t for w in feature["windows"] for t in w["input_ids"]]


def test_window_starts_by_hand(hand_tokenizer):
    task = windowed(hand_tokenizer, 10)  # 8 pieces a window, stride 4
    assert task.window_starts(8) == [0]
    assert task.window_starts(9) == [0, 4]
    assert task.window_starts(20) == [0, 4, 8, 12]
    capped = windowed(hand_tokenizer, 10, max_windows=2)  # the first window and the one ending the text
    assert capped.window_starts(20) == [0, 12]
    assert capped.document_feature(list(range(1000, 1020)))["truncated"]  # pieces 1008..1011 are in no window
    assert windowed(hand_tokenizer, 10, max_windows=1).window_starts(20) == [0]


def test_short_document_encodes_as_today(hand_tokenizer):
    examples = [TextExample("the film was great !", "pos"), TextExample("", "neg")]
    today = ClassificationTask(hand_tokenizer, ["neg", "pos"], 10).encode(examples)
    windows = windowed(hand_tokenizer, 10).encode(examples)
    for a, b in zip(today, windows):
        assert b["windows"] == [{"input_ids": a["input_ids"], "token_type_ids": a["token_type_ids"]}]
        assert (b["input_ids"], b["labels"], b["index"]) == (a["input_ids"], a["labels"], a["index"])


def test_pooling_by_hand(hand_tokenizer):
    logits = paddle.to_tensor(np.array([[1., 2.], [3., 4.], [5., 0.]], dtype="float32"))  # [W=3, C]
    batch = {"doc": paddle.to_tensor(np.array([0, 0, 1], dtype="int64"))}
    mean = windowed(hand_tokenizer).pool(logits, batch).numpy()
    best = windowed(hand_tokenizer, pooling="max").pool(logits, batch).numpy()
    np.testing.assert_array_equal(mean, [[2., 3.], [5., 0.]])
    np.testing.assert_array_equal(best, [[3., 4.], [5., 0.]])
    np.testing.assert_array_equal(windowed(hand_tokenizer).pool_numpy(logits.numpy()[:2]), [2., 3.])
    np.testing.assert_array_equal(windowed(hand_tokenizer, pooling="max").pool_numpy(logits.numpy()), [5., 4.])
    assert ClassificationTask(hand_tokenizer, ["neg", "pos"], 10).pool(logits, {}) is logits  # no windows: as is


def test_collate_keeps_a_documents_windows_together(hand_tokenizer):
    task = windowed(hand_tokenizer, 6)  # 4 pieces a window, stride 2
    features = task.encode([TextExample("the film was great ! great", "pos"), TextExample("bad", "neg")])
    batch = batching.collate(features, pad_token_id=0)
    assert batch["doc"].tolist() == [0, 0, 1]  # 6 pieces: windows at 0 and 2; 1 piece: one window
    assert batch["input_ids"].shape == (3, 6) and batch["labels"].tolist() == [1, 0]


def _tiny_classifier(tokenizer):
    from paddlenlp.transformers import ErnieForSequenceClassification

    paddle.seed(3)
    model = ErnieForSequenceClassification(tiny_config(vocab_size=len(tokenizer.vocab)))
    model.eval()
    return model


def test_pooled_logits_of_one_window_documents_equal_unpooled(hand_tokenizer):
    model = _tiny_classifier(hand_tokenizer)
    examples = [TextExample(t, "pos") for t in ("the film was great !", "john lives in new york .", "bad")]
    today = ClassificationTask(hand_tokenizer, ["neg", "pos"], 10)
    windows = windowed(hand_tokenizer, 10)
    a = evaluation.predict_logits(today, model, today.encode(examples), 8, 0)
    b = evaluation.predict_logits(windows, model, windows.encode(examples), 8, 0)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


def test_windows_are_for_classification_only(hand_tokenizer, tmp_path):
    with pytest.raises(UserError, match="model.long_document.mode"):
        make_task("ner", hand_tokenizer, ["O"], 10, long_document=WINDOWS)
    raw = {"task": "classification", "stage": "task", "output_dir": str(tmp_path / "r"),
           "model": {"teacher": "t", "max_seq_length": 10, "long_document": {"mode": "windows", "stride": 9},
                     "student": {"every_k": 2}}}
    with pytest.raises(UserError, match="model.long_document.stride"):
        config_from_dict(raw)
    raw["model"]["long_document"]["stride"] = 8
    assert config_from_dict(raw).model.long_document.task_option() == {"stride": 8, "max_windows": None,
                                                                      "pooling": "mean"}
    raw["model"]["student"] = {"init": "teacher_pruned", "every_k": 2}
    with pytest.raises(UserError, match="teacher_pruned"):
        config_from_dict(raw)


@pytest.fixture(scope="module")
def windows_export(deploy_root, tmp_path_factory):
    """A classification model trained (format) with windows of 16 tokens, exported."""
    from ernie_tiny_distill.deploy import export as ex
    from ernie_tiny_distill.tasks.classification import ClassificationTask

    root = tmp_path_factory.mktemp("windows")
    tokenizer = models.load_tokenizer(deploy_root["teacher"])
    model = models.load_model(deploy_root["teacher"], ClassificationTask.model_class, num_labels=2)
    with paddle.no_grad():
        model.classifier.weight.set_value(model.classifier.weight * 40.0)  # margins, as helpers._sharpen_head
    task = ClassificationTask(tokenizer, ["neg", "pos"], 16, long_document={**WINDOWS, "stride": 10})
    model_dir = str(root / "model")
    models.save_model_dir(model, tokenizer, model_dir, {**task.metadata(), "stage": "teacher", "dev": None})
    out = str(root / "export")
    ex.export_model(model_dir, out, onnx=False)
    return {"model_dir": model_dir, "export": out, "task": task}


def test_predictor_on_a_long_document_equals_training_evaluation(windows_export):
    from ernie_tiny_distill.deploy.predictor import Predictor
    from ernie_tiny_distill.tasks.serving import softmax

    p = Predictor(windows_export["export"])
    assert p.encoder.meta["long_document"] == {"stride": 10, "max_windows": None, "pooling": "mean"}
    assert p.encoder.meta["check"]["passed"]  # export parity (dygraph vs Paddle Inference), as for any export
    vocab = [w for w in p.encoder.tokenizer.get_vocab() if w.isalpha() and len(w) > 3][:200]
    rng = np.random.default_rng(1)
    texts = [" ".join(rng.choice(vocab, size=n)) for n in (90, 3, 40)]
    task = windows_export["task"]
    features = task.encode([TextExample(t) for t in texts])
    assert [len(f["windows"]) for f in features][0] > 5  # a long document: many windows
    model = models.load_model(windows_export["model_dir"], task.model_class, task.num_labels)
    expected = evaluation.predict_logits(task, model, features, 4, 0)
    served = p.predict(texts)
    for want, got in zip(expected, served):
        assert got["label"] == task.labels[int(np.argmax(want))]
        np.testing.assert_allclose([got["probabilities"][k] for k in task.labels], softmax(want.astype("float64")),
                                   atol=1e-5)


# ---------------------------------------------------------------- latency per real review (bench/latency_review.py)


def test_per_review_latency_runs_each_review_once_with_all_its_windows(windows_export, cls_export, monkeypatch):
    from ernie_tiny_distill.deploy import latency_review
    from ernie_tiny_distill.deploy.predictor import Predictor

    calls, rows = [], []
    predict, logits = Predictor.predict, Predictor.logits

    def who(predictor):  # which target: the export, read as windows or not
        return predictor.encoder.export_dir, predictor.encoder.task.long_document is not None

    def spy_predict(self, items):
        calls.append((who(self), list(items)))
        return predict(self, items)

    def spy_logits(self, features):
        rows.append((who(self), len(features)))
        return logits(self, features)

    monkeypatch.setattr(Predictor, "predict", spy_predict)
    monkeypatch.setattr(Predictor, "logits", spy_logits)
    p = Predictor(windows_export["export"])
    vocab = [w for w in p.encoder.tokenizer.get_vocab() if w.isalpha() and len(w) > 3][:200]
    rng = np.random.default_rng(2)
    pool = [" ".join(rng.choice(vocab, size=n)) for n in (400, 3, 40, 12, 60, 7)]
    assert set(latency_review.sample_texts(pool, 4, seed=0)) < set(pool)
    texts = latency_review.sample_texts(pool + ["  "], 9, seed=0)  # all of them (at most), the blank one never
    assert sorted(texts) == sorted(pool) and texts == latency_review.sample_texts(pool + ["  "], 9, seed=0)  # seeded
    calls.clear(), rows.clear()
    cls_windows = {"stride": None, "max_windows": 3, "pooling": "mean"}
    targets = [{"key": "W", "export_dir": windows_export["export"], "backend": "paddle", "precision": "fp32"},
               {"key": "T", "export_dir": cls_export, "backend": "paddle", "precision": "fp32"},
               {"key": "T-windows", "export_dir": cls_export, "backend": "paddle", "precision": "fp32",
                "long_document": cls_windows}]
    out = latency_review.measure_per_review(targets, texts, rounds=2, warmup=1)
    # one predict call per review (plus one warm-up) and model, each with that review alone, in the sample's order
    for target in [(windows_export["export"], True), (cls_export, False), (cls_export, True)]:
        assert [items for w, items in calls if w == target] == [[t] for t in texts[:1] + texts], target
    # a windows model scores every window of a review in that one call; a truncating one a single row
    task = windows_export["task"]
    expected = [len(f["windows"]) for f in task.encode([TextExample(t) for t in texts])]
    assert max(expected) > 5
    assert [n for w, n in rows if w == (windows_export["export"], True)] == expected[:1] + expected
    assert [n for w, n in rows if w == (cls_export, False)] == [1] * (1 + len(texts))
    served = Predictor(cls_export, long_document=cls_windows).encoder
    capped = [len(served.classification_feature(t)["windows"]) for t in texts]
    assert max(capped) == 3  # the 400-word review, capped at 3 windows
    assert [n for w, n in rows if w == (cls_export, True)] == capped[:1] + capped
    assert out["W"]["reviews"] == out["T"]["reviews"] == out["T-windows"]["reviews"] == 6
    assert out["W"]["windows_mean"] == np.mean(expected) and out["T"]["windows_mean"] is None
    assert out["T-windows"]["windows_mean"] == np.mean(capped)
    assert out["T"]["reads"].startswith("head ") and out["T-windows"]["reads"].endswith("max 3, mean)")


def test_interleave_items_rotates_models_over_chunks():
    from ernie_tiny_distill.deploy import latency_review

    order = []
    runners = {k: (lambda k: lambda item: order.append((k, item)))(k) for k in "ab"}
    samples = latency_review.interleave_items(runners, [1, 2, 3, 4, 5], rounds=2, warmup=1)
    assert order == [("a", 1), ("b", 1),                                   # warm-up
                     ("a", 1), ("a", 2), ("a", 3), ("b", 1), ("b", 2), ("b", 3),   # round 0: a first
                     ("b", 4), ("b", 5), ("a", 4), ("a", 5)]               # round 1: b first
    assert {k: len(v) for k, v in samples.items()} == {"a": 5, "b": 5}
