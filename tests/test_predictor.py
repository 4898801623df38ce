"""Predictor on raw text: entity offsets, windows for long sentences, truncation, bad inputs, CLI, HTTP, latency.

Uses the session fixtures of conftest.py (tiny random models; the NER one is rigged so that 'Angela'
'Merkel' 'Berlin' are tagged B-PER I-PER B-LOC whatever their context).
"""
from __future__ import annotations

import json
import logging
import os
import runpy
import shutil
import sys

import numpy as np
import pytest
from helpers import HAS_ORT, NER_MAX_LEN, ROOT

from ernie_tiny_distill.deploy import inputs, service
from ernie_tiny_distill.deploy import predictor as pr
from ernie_tiny_distill.errors import UserError
from ernie_tiny_distill.tasks import windows as windows_mod
from ernie_tiny_distill.tasks.decoding import entity_spans

# ---------------------------------------------------------------- pure functions


def test_entity_spans_are_the_entities_the_metric_scores():
    """A stray I- (after O or another type) is no entity, for the predictor as for seqeval strict."""
    from ernie_tiny_distill.tasks.metrics import tagging_metrics

    assert entity_spans(["B-PER", "I-PER", "O", "B-LOC", "B-LOC", "I-ORG", "I-ORG", "O", "I-MISC"]) == [
        ("PER", 0, 2), ("LOC", 3, 4), ("LOC", 4, 5)]
    assert entity_spans([]) == [] and entity_spans(["O", "O"]) == []
    assert entity_spans(["O", "I-PER", "I-PER", "O"]) == []  # a decoder reading I- as B- would serve a PER here that scores 0
    assert tagging_metrics([["O", "B-PER", "I-PER", "O"]], [["O", "I-PER", "I-PER", "O"]])["precision"] == 0.0


@pytest.mark.parametrize("lengths,budget", [([1] * 100, 10), ([3, 1, 7, 2, 2, 9, 1, 1, 4] * 7, 12), ([5], 5),
                                            ([1, 1], 10)])
def test_windows_cover_every_word(lengths, budget):
    windows = windows_mod.make_windows(lengths, budget)
    assert windows[0][0] == 0 and windows[-1][1] == len(lengths)
    for (a, b), (c, d) in zip(windows, windows[1:]):
        assert a < c <= b  # progress, with overlap or adjacency
    assert all(sum(lengths[a:b]) <= budget for a, b in windows)
    best = windows_mod.best_window(lengths, windows)
    assert len(best) == len(lengths)
    for w, (k, pos) in enumerate(best):
        assert windows[k][0] + pos == w


# ---------------------------------------------------------------- classification


def test_classification_results(cls_export):
    p = pr.Predictor(cls_export, batch_size=3)
    texts = ["A wonderful film.", "", "   \t ", "Dull and far too long.", "x " * 500, "Great fun."]
    out = p.predict(texts)
    assert len(out) == len(texts)
    for i in (0, 3, 4, 5):
        assert out[i]["label"] in ("neg", "pos")
        assert abs(sum(out[i]["probabilities"].values()) - 1) < 1e-6
    assert out[1] == out[2] == {"label": None, "probabilities": None, "error": "empty text"}
    # order is restored after length-sorted batching
    single = [p.predict([t])[0] for t in texts]
    assert [o["label"] for o in out] == [o["label"] for o in single]


@pytest.mark.parametrize("truncation", ["head", "head_tail"])
def test_long_text_truncation_matches_training(cls_export, truncation):
    p = pr.Predictor(cls_export, truncation=truncation)
    words = [w for w in p.encoder.tokenizer.get_vocab() if w.isalpha() and len(w) > 3][:300]
    rng = np.random.default_rng(0)
    text = " ".join(rng.choice(words, size=6000))  # tokenized from the ends only
    fast = p.encoder.classification_feature(text)
    tok = p.encoder.tokenizer
    whole = tok.convert_tokens_to_ids(tok.tokenize(text))  # PaddleNLP, the whole text
    assert fast["input_ids"] == p.encoder.task.wrap(p.encoder.task.truncate(whole))[0] and fast["truncated"]


def test_truncation_is_reported_at_info_once_then_at_debug(cls_export, caplog):
    import logging

    from ernie_tiny_distill.tasks import serving

    p = pr.Predictor(cls_export)
    words = [w for w in p.encoder.tokenizer.get_vocab() if w.isalpha() and len(w) > 3][:50]
    long_text = " ".join(words * 10)
    with caplog.at_level(logging.DEBUG, logger=serving.logger.name):
        for _ in range(3):
            p.predict([long_text, "short"])
    lines = [(r.levelno, r.getMessage()) for r in caplog.records if "were truncated" in r.getMessage()]
    assert [level for level, _ in lines] == [logging.INFO, logging.DEBUG, logging.DEBUG]
    assert lines[0][1].startswith("1 of 2 texts were longer than") and "later calls" in lines[0][1]


def test_one_megabyte_text(cls_export, ner_export):
    text = ("word " * 200_000)[:1_000_000]
    out = pr.Predictor(cls_export).predict([text])[0]
    assert out["label"] in ("neg", "pos")
    entities = pr.Predictor(ner_export, batch_size=64).predict(["Angela Merkel . " + "x " * 3_000 + "in Berlin"])
    assert [e["text"] for e in entities[0]["entities"]] == ["Angela Merkel", "Berlin"]


# ---------------------------------------------------------------- NER


def test_entities_with_offsets_into_the_original(ner_export):
    p = pr.Predictor(ner_export)
    texts = ["Yesterday Angela Merkel met reporters in Berlin.",
             "  ANGELA\u00a0 merkel!!\tberlin's mayor", "nothing to see", "", "   "]
    out = p.predict(texts)
    for text, result in zip(texts, out):
        for e in result["entities"]:
            assert text[e["start"]:e["end"]] == e["text"] and 0 < e["score"] <= 1
    assert [(e["type"], e["text"], e["start"], e["end"]) for e in out[0]["entities"]] == [
        ("PER", "Angela Merkel", 10, 23), ("LOC", "Berlin", 41, 47)]
    assert [(e["type"], e["text"]) for e in out[1]["entities"]] == [("PER", "ANGELA\u00a0 merkel"), ("LOC", "berlin")]
    assert out[2] == out[3] == out[4] == {"entities": []}


def test_long_sentence_windows_lose_no_word(ner_export):
    p = pr.Predictor(ner_export, batch_size=16)
    assert p.encoder.max_seq_length == NER_MAX_LEN
    words = []
    for i in range(150):
        words += ["Angela", "Merkel"] if i % 7 == 0 else (["Berlin"] if i % 11 == 0 else ["filler", "text"])
    tags = p.post.predict_tokens([words, ["Berlin"], []])
    assert [len(t) for t in tags] == [len(words), 1, 0]
    expected = []
    for i, w in enumerate(words):
        expected.append({"Angela": "B-PER", "Merkel": "I-PER", "Berlin": "B-LOC"}.get(w, "O"))
    assert tags[0] == expected and tags[1] == ["B-LOC"]
    text = " ".join(words)
    entities = p.predict([text])[0]["entities"]
    assert len(entities) == words.count("Angela") + words.count("Berlin")
    assert all(text[e["start"]:e["end"]] == e["text"] for e in entities)


def test_window_merge_matches_unwindowed_prediction(ner_export):
    """With enough length for the whole sentence, the windowed and the single-window answers agree."""
    short = pr.Predictor(ner_export)
    long = pr.Predictor(ner_export, max_seq_length=512)
    sentence = ("The chancellor Angela Merkel arrived in Berlin on Monday morning after the summit " * 6).split()
    assert short.post.predict_tokens([sentence]) == long.post.predict_tokens([sentence])


def test_training_time_evaluation_reads_a_long_sentence_as_the_predictor_serves_it(ner_model, ner_export):
    """A sentence longer than max_seq_length: evaluation during training (which picks best/) and the exported
    Predictor tag every word the same way, through the same word windows, and score the same."""
    from paddlenlp.transformers import ErnieForTokenClassification

    from ernie_tiny_distill.data.examples import TaggedSentence
    from ernie_tiny_distill.models import build as models
    from ernie_tiny_distill.tasks.adapters import make_task
    from ernie_tiny_distill.train import evaluation

    words = ["Angela", "Merkel"] + ["filler", "text"] * 15 + ["Berlin", "and", "Angela", "Merkel", "."]
    tags = ["B-PER", "I-PER"] + ["O"] * 30 + ["B-LOC", "O", "B-PER", "I-PER", "O"]
    examples = [TaggedSentence(words, tags), TaggedSentence(["Berlin", "."], ["B-LOC", "O"])]
    task = make_task("ner", models.load_tokenizer(ner_model), models.read_task_metadata(ner_model)["labels"],
                     NER_MAX_LEN)
    model = models.load_model(ner_model, ErnieForTokenClassification, num_labels=len(task.labels))
    features = task.encode(examples)
    assert task.kd_row_count(features[0]) < len(words)  # training reads a cut sentence
    logits = evaluation.predict_logits(task, model, features, 8, 0)
    cut = [task.predict(lg, f) for lg, f in zip(logits, features)]
    assert cut[0][-5:] == ["O"] * 5  # what reading the cut sentence alone would score
    evaluated = task.evaluation_predictions(
        logits, features, examples, lambda more: evaluation.predict_logits(task, model, more, 8, 0))
    served = pr.Predictor(ner_export)
    assert evaluated == served.post.predict_tokens([ex.tokens for ex in examples]) == tags_of(examples)
    metrics = evaluation.evaluate(task, model, features, examples, 8, 0)
    assert metrics == pr.evaluate_export(served, examples) and metrics["f1"] == 1.0


def tags_of(examples):
    return [list(ex.tags) for ex in examples]


# ---------------------------------------------------------------- bad inputs


def test_each_export_serves_through_the_post_processor_of_its_task(cls_export, ner_export):
    cls, ner = pr.Predictor(cls_export), pr.Predictor(ner_export)
    assert (type(cls.post).__name__, type(ner.post).__name__) == ("LabelServing", "EntityServing")
    with pytest.raises(UserError, match="item 0 is list, expected a string$"):
        cls.predict([["Angela", "Merkel"]])  # word lists are for NER
    entities = ner.predict([["Angela", "Merkel", "visited", "Berlin"]])[0]["entities"]
    assert [(e["type"], e["start_token"], e["end_token"]) for e in entities] == [("PER", 0, 2), ("LOC", 3, 4)]
    with pytest.raises(UserError, match="this export is a ner model, but a classification model was asked for"):
        pr.Predictor(ner_export, task="classification")


def test_bad_items(cls_export):
    p = pr.Predictor(cls_export)
    with pytest.raises(UserError, match="item 1 is int"):
        p.predict(["ok", 3])
    with pytest.raises(UserError, match="not a single string"):
        p.predict("just one string")
    with pytest.raises(UserError, match="backend"):
        pr.Predictor(cls_export, backend="tensorrt")
    with pytest.raises(UserError, match="max_seq_length"):
        pr.Predictor(cls_export, max_seq_length=4096)


@pytest.mark.parametrize("missing", ["inference.json", "inference.pdiparams", "labels.json", "export.json",
                                     "vocab.txt", "tokenizer_config.json"])
def test_incomplete_export_dir_names_the_missing_file(cls_export, tmp_path, missing):
    broken = tmp_path / "broken"
    shutil.copytree(cls_export, broken)
    os.remove(broken / missing)
    with pytest.raises(UserError, match=f"{missing} is missing"):
        pr.Predictor(str(broken))


def test_missing_dir_and_missing_onnx(cls_export, tmp_path):
    with pytest.raises(UserError, match="export directory not found"):
        pr.Predictor(str(tmp_path / "nope"))
    copy = tmp_path / "no_onnx"
    shutil.copytree(cls_export, copy)
    for name in ("model.onnx", "model.int8.onnx"):
        if (copy / name).exists():
            os.remove(copy / name)
    if HAS_ORT:
        with pytest.raises(UserError, match="model.onnx is missing"):
            pr.Predictor(str(copy), backend="onnx")
        with pytest.raises(UserError, match="model.int8.onnx is missing"):
            pr.Predictor(str(copy), backend="onnx", precision="int8")


def test_bf16_option(cls_export):
    from paddle.base import core

    texts = ["A wonderful film.", "Dull and far too long.", "Great fun for everyone."]
    if not core.supports_bfloat16():
        with pytest.raises(UserError, match="bf16"):
            pr.Predictor(cls_export, precision="bf16")
        return
    fp32, bf16 = pr.Predictor(cls_export), pr.Predictor(cls_export, precision="bf16")
    features = [fp32.encoder.classification_feature(t) for t in texts]
    assert max(float(np.abs(a - b).max()) for a, b in zip(fp32.logits(features), bf16.logits(features))) < 0.1


def test_input_files(tmp_path):
    f = tmp_path / "in.txt"
    f.write_bytes("first line\n\nbad \xff\xfe bytes caf\xe9\nlast".encode("utf-8").replace(b"\xc3\xbf\xc3\xbe", b"\xff\xfe"))
    texts = inputs.read_texts_file(str(f))
    assert len(texts) == 4 and texts[1] == "" and "\ufffd" in texts[2]
    assert inputs.read_jsonl_items(['{"text": "a"}\n', "\n", '{"text": "b"}']) == ["a", "b"]
    with pytest.raises(UserError, match="stdin:2"):
        inputs.read_jsonl_items(['{"text": "a"}', "{nope"])
    with pytest.raises(UserError, match='string "text" field'):
        inputs.read_jsonl_items(['{"txt": "a"}'])


def test_predict_tool(cls_export, ner_export, tmp_path, monkeypatch, capsys, caplog):
    f = tmp_path / "texts.txt"
    f.write_bytes(b"A wonderful film.\n\nbroken \xff bytes here\n")
    tool = os.path.join(ROOT, "tools", "predict.py")
    main = runpy.run_path(tool, run_name="tool")["main"]  # in-process: Paddle is imported once per session
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the tool sets it when unset; restored after the test
    monkeypatch.setattr(sys, "argv", [tool, "--model", cls_export, "--file", str(f)])
    with caplog.at_level(logging.WARNING):
        assert main() == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(lines) == 3 and lines[1]["error"] == "empty text" and lines[2]["label"] in ("neg", "pos")
    assert "not valid UTF-8" in caplog.text and "1 byte" in caplog.text
    monkeypatch.setattr(sys, "argv", [tool, "--model", ner_export, "--task", "classification", "x"])
    assert main() == 2
    err = capsys.readouterr().err
    assert "error:" in err and "this export is a ner model" in err and "Traceback" not in err
    monkeypatch.setattr(sys, "argv", [tool, "--model", str(tmp_path / "missing"), "x"])
    assert main() == 2 and "export directory not found" in capsys.readouterr().err


# ---------------------------------------------------------------- HTTP service


def test_serve_endpoints(cls_export):
    pytest.importorskip("httpx", reason="fastapi's TestClient needs httpx")
    from fastapi.testclient import TestClient

    app = service.create_app(pr.Predictor(cls_export), max_request_bytes=2000, max_batch_size=4, max_text_chars=500)
    client = TestClient(app)
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["task"] == "classification" and health["labels"] == ["neg", "pos"]
    ok = client.post("/predict", json={"texts": ["A wonderful film.", "Awful."]})
    assert ok.status_code == 200 and len(ok.json()["results"]) == 2
    assert ok.json()["results"][0]["label"] in ("neg", "pos")
    cases = [
        (dict(content=b"{not json"), 400, "not valid UTF-8 JSON"),
        (dict(content=b"\xff\xfe"), 400, "not valid"),
        (dict(json={"texts": []}), 422, "empty"),
        (dict(json={"text": "a"}), 422, "expected a JSON object"),
        (dict(json=["a"]), 422, "expected a JSON object"),
        (dict(json={"texts": ["ok", "  "]}), 422, "texts[1] is empty"),
        (dict(json={"texts": ["ok", 5]}), 422, "texts[1] is not a string"),
        (dict(json={"texts": ["a"] * 5}), 413, "limit is 4"),
        (dict(json={"texts": ["a" * 600]}), 413, "limit is 500"),
        (dict(json={"texts": ["a " * 1500]}), 413, "larger than 2000 bytes"),
    ]
    for kwargs, status, message in cases:
        r = client.post("/predict", **kwargs)
        assert r.status_code == status, (kwargs, r.text)
        assert message in r.json()["error"]


# ---------------------------------------------------------------- latency


def test_latency_measure(cls_export, ner_export):
    from ernie_tiny_distill.deploy import latency

    r = latency.measure(cls_export, seq_len=32, batch_size=4, iterations=3, warmup=1)
    assert r["p50_ms"] > 0 and r["p95_ms"] >= r["p50_ms"] * 0.5 and r["throughput_seq_per_s"] > 0
    # 2 layers, H=64, I=128, S=32: 2*(2*32*(4*64*64 + 2*64*128) + 4*32*32*64) + pooler/classifier
    assert r["gflop_per_seq"] * 1e9 == 2 * (2 * 32 * (4 * 64 * 64 + 2 * 64 * 128) + 4 * 32 * 32 * 64) + 2 * 64 * 64 + 2 * 64 * 2
    assert r["environment"]["paddle_version"] and r["environment"]["threads"] == 1
    t = latency.measure(ner_export, seq_len=16, batch_size=2, iterations=2, warmup=1, include_tokenization=True)
    assert t["include_tokenization"] and t["p50_ms"] > 0
    rows = latency.run_grid(cls_export, seq_lens=[16], threads=[1], backends=["paddle", "dygraph"],
                            precisions=["fp32", "int8"], batch_size=2, iterations=2, warmup=1)
    assert [(r["backend"], r["precision"]) for r in rows] == [("paddle", "fp32"), ("dygraph", "fp32")]
    assert "error" not in rows[1], rows[1]
    table = latency.markdown_table(rows)
    assert table.count("\n") == 3 and "| paddle | fp32 | 1 | 16 |" in table


# ---------------------------------------------------------------- packing, profile, backend auto


def test_length_batches_pad_to_buckets_without_mixing_them():
    from ernie_tiny_distill.deploy.packing import bucket_length, length_batches

    assert [bucket_length(n, (16, 32, 64)) for n in (1, 16, 17, 64, 65)] == [16, 16, 32, 64, 65]
    lengths = [5, 40, 17, 16, 3, 33, 64, 2]
    calls = length_batches(lengths, 2, (16, 32, 64))
    assert calls == [(16, [7, 4]), (16, [0, 3]), (32, [2]), (64, [5, 1]), (64, [6])]
    assert length_batches(lengths, 3, None) == [(5, [7, 4, 0]), (33, [3, 2, 5]), (64, [1, 6])]  # longest in each


def test_bucket_padding_gives_the_unpadded_answers(cls_export, ner_export):
    texts = ["the film was great", "bad", "john lives in new york and the play was bad"]
    for export in (cls_export, ner_export):
        exact, bucketed = pr.Predictor(export, buckets=None), pr.Predictor(export)
        features = exact.encoder.calibration_features(texts)
        for a, b in zip(exact.logits(features), bucketed.logits(features)):
            np.testing.assert_allclose(a, b, atol=1e-4)


def test_profile_counts_items_and_engine_calls(cls_export):
    p = pr.Predictor(cls_export, profile=True, batch_size=2)
    p.predict(["the film was great", "bad", "great", "a " * 30 + "film", ""])
    # three short texts in the 16-token bucket (two calls of at most 2), the long one alone in the 64 bucket
    assert p.stats.items == 5 and p.stats.engine_calls == 3
    assert set(p.stats.per_item_ms()) == {"tokenize", "pack", "engine", "decode", "total"}


def test_backend_auto_times_both_engines_and_keeps_the_answers(cls_export, caplog):
    if not os.path.isfile(os.path.join(cls_export, "model.onnx")):
        pytest.skip("this export has no model.onnx")
    with caplog.at_level(logging.INFO, logger="ernie_tiny_distill.deploy.predictor"):
        auto = pr.Predictor(cls_export, backend="auto")
    assert auto.backend in ("paddle", "onnx")
    assert any(r.getMessage().startswith(f"backend auto: {auto.backend} (median ms") for r in caplog.records)
    texts = ["the film was great", "bad"]
    assert [r["label"] for r in auto.predict(texts)] == [r["label"] for r in pr.Predictor(cls_export).predict(texts)]
