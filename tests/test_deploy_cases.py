"""Deployment cases: NaN outputs, evaluate checks, NFC text, one decoder, messages, INT8, pre-split tokens, decoding.

Uses the session fixtures of test_export.py (tiny random models built once).
"""
from __future__ import annotations

import errno
import json
import os
import runpy
import shutil
import sys

import numpy as np
import pytest
from test_export import HAS_ORT_QUANT, ROOT

from ernie_tiny_distill.data.examples import TaggedSentence, TextExample
from ernie_tiny_distill.deploy import engines, layout
from ernie_tiny_distill.deploy import export as ex
from ernie_tiny_distill.deploy.predictor import Predictor, evaluate_export
from ernie_tiny_distill.deploy.words import split_words
from ernie_tiny_distill.errors import UserError
from ernie_tiny_distill.tasks import decoding


def copy(src, dst):
    shutil.copytree(src, dst)
    return str(dst)


def nan_checkpoint(src, dst):
    from safetensors.numpy import load_file, save_file

    out = copy(src, dst)
    weights = load_file(os.path.join(out, "model.safetensors"))
    name = sorted(k for k in weights if weights[k].dtype.kind == "f")[0]
    weights[name] = np.full_like(weights[name], np.nan)
    save_file(weights, os.path.join(out, "model.safetensors"), metadata={"format": "np"})
    return out


# ---------------------------------------------------------------- NaN weights and logits


def test_nan_weights_are_refused_at_export(cls_model, tmp_path):
    bad = nan_checkpoint(cls_model, tmp_path / "nan")
    with pytest.raises(UserError, match="non-finite"):
        ex.export_model(bad, str(tmp_path / "out"))
    assert not os.path.exists(tmp_path / "out")


def test_parity_check_treats_nan_as_failure(cls_model, cls_export, tmp_path):
    from ernie_tiny_distill.models import build as models

    bad = nan_checkpoint(cls_model, tmp_path / "nan")
    meta = json.load(open(os.path.join(cls_export, layout.EXPORT_FILE)))
    model = models.load_model(bad, ex.model_class_for(meta), num_labels=2)  # skips export's weight check
    model.eval()
    with pytest.raises(UserError, match="not finite"):
        ex.verify_export(model, cls_export, task="classification", pad_token_id=meta["pad_token_id"],
                         vocab_size=meta["vocab_size"])
    assert np.isnan(ex.max_abs_diff([np.array([np.nan, 1.0])], [np.array([0.0, 1.0])]))


def test_nan_logits_are_refused_at_load(cls_export, monkeypatch):
    monkeypatch.setattr(engines.PaddleEngine, "run", lambda self, ids, types: np.full((len(ids), 2), np.nan))
    with pytest.raises(UserError, match="non-finite logits"):
        Predictor(cls_export)


# ---------------------------------------------------------------- tools/evaluate.py checks first


def test_evaluate_refuses_labels_the_model_does_not_have(cls_export, ner_export):
    p = Predictor(cls_export)
    with pytest.raises(UserError, match="labels not known to the model: 'neutral'"):
        evaluate_export(p, [TextExample("fine", "pos"), TextExample("meh", "neutral")])
    with pytest.raises(UserError, match="'B-XYZ'"):
        evaluate_export(Predictor(ner_export), [TaggedSentence(["a", "b"], ["B-XYZ", "O"])])


def test_evaluate_tool_checks_the_task_first(cls_export, tmp_path, monkeypatch, capsys):
    config = tmp_path / "ner.yaml"
    config.write_text("task: ner\nstage: teacher\noutput_dir: unused\nmodel:\n  teacher: minilm\n"
                      "data:\n  format: conll\n  path: /nonexistent\n")
    tool = os.path.join(ROOT, "tools", "evaluate.py")
    main = runpy.run_path(tool, run_name="tool")["main"]
    monkeypatch.setattr(sys, "argv", [tool, "--model", cls_export, "--config", str(config)])
    assert main() == 2
    err = capsys.readouterr().err
    assert "this export is a classification model, but a ner model was asked for" in err and "Traceback" not in err


def test_evaluate_windows_reads_whole_texts_as_the_config_says(deploy_root, cls_export, ner_export, tmp_path,
                                                                 monkeypatch, capsys):
    """--windows: the metric of the predictor that reads whole texts as the config's windows; refused for NER."""
    import json

    from ernie_tiny_distill.data.readers import read_classification_file

    config = tmp_path / "cls.yaml"
    config.write_text("task: classification\nstage: teacher\noutput_dir: unused\nmodel:\n  teacher: minilm\n"
                      f"data:\n  format: jsonl\n  train_file: {deploy_root['paths']['sentiment_train']}\n"
                      f"  test_file: {deploy_root['paths']['sentiment_test']}\n")
    tool = os.path.join(ROOT, "tools", "evaluate.py")
    main = runpy.run_path(tool, run_name="tool")["main"]
    args = [tool, "--model", cls_export, "--config", str(config), "--windows", "model.long_document.stride=4",
            "model.long_document.max_windows=3", "model.max_seq_length=8"]
    monkeypatch.setattr(sys, "argv", args)
    assert main() == 0, capsys.readouterr().err
    shown = json.loads(capsys.readouterr().out)
    windows = {"stride": 4, "max_windows": 3, "pooling": "mean"}
    assert shown["windows"] == windows and shown["num_examples"] == 40
    test = read_classification_file(deploy_root["paths"]["sentiment_test"])
    whole = Predictor(cls_export, long_document=windows)
    assert shown["accuracy"] == evaluate_export(whole, test)["accuracy"]
    assert any(len(f.get("windows", [])) > 1 for f in (whole.encoder.classification_feature(e.text) for e in test))
    monkeypatch.setattr(sys, "argv", [tool, "--model", ner_export, "--config", str(config).replace("cls", "ner"),
                                      "--windows"])
    (tmp_path / "ner.yaml").write_text("task: ner\nstage: teacher\noutput_dir: unused\nmodel:\n  teacher: minilm\n"
                                       f"data:\n  format: conll\n  path: {tmp_path}\n")
    assert main() == 2
    assert "model.long_document.mode" in capsys.readouterr().err


# ---------------------------------------------------------------- NFC before word splitting


def test_decomposed_accents_stay_in_one_word():
    text = "Ge\u0301rard Depardieu met Zoe\u0308 ."
    words = split_words(text)
    assert [w for w, _, _ in words] == ["G\u00e9rard", "Depardieu", "met", "Zo\u00eb", "."]
    assert [text[a:b] for _, a, b in words] == ["Ge\u0301rard", "Depardieu", "met", "Zoe\u0308", "."]


def test_decomposed_text_gives_the_entities_of_the_composed_one(ner_export):
    p = Predictor(ner_export)
    composed, decomposed = "Ang\u00e9la Merkel visited Berlin .", "Ange\u0301la Merkel visited Berlin ."
    a, b = p.predict([composed, decomposed])
    assert [(e["type"], e["start_token"], e["end_token"]) for e in a["entities"]] == \
        [(e["type"], e["start_token"], e["end_token"]) for e in b["entities"]]
    for e in b["entities"]:
        assert decomposed[e["start"]:e["end"]] == e["text"]


# ---------------------------------------------------------------- one decoder for served and scored


def test_evaluation_scores_the_entities_the_predictor_serves():
    from types import SimpleNamespace

    from ernie_tiny_distill.tasks.serving import EntityServing
    from ernie_tiny_distill.tasks.tagging import TaggingTask

    class Served(EntityServing):  # serves one PER entity over words 1..2 of every sentence
        def __call__(self, items):
            return [{"entities": [{"type": "PER", "start_token": 1, "end_token": 3}]} for _ in items]

    task = TaggingTask(None, ["O", "B-PER", "I-PER"], 16)
    examples = [TaggedSentence(["a", "b", "c", "d"], ["O", "B-PER", "I-PER", "O"]),
                TaggedSentence(["a", "b", "c"], ["B-PER", "O", "O"])]
    result = Served(SimpleNamespace(encoder=SimpleNamespace(task=task))).score(examples)
    assert result["precision"] == 0.5 and result["recall"] == 0.5  # 1 of 2 served right, 1 of 2 gold found


# ---------------------------------------------------------------- deployment messages


@pytest.mark.parametrize("labels", [["neg", "pos", "neutral"], ["neg"]])
def test_labels_json_that_does_not_match_the_outputs(cls_export, tmp_path, labels):
    out = copy(cls_export, tmp_path / "e")
    (tmp_path / "e" / layout.LABELS_FILE).write_text(json.dumps(labels))
    meta = json.loads((tmp_path / "e" / layout.EXPORT_FILE).read_text())
    (tmp_path / "e" / layout.EXPORT_FILE).write_text(json.dumps({**meta, "labels": labels}))  # edited alike
    with pytest.raises(UserError, match=f"labels.json has {len(labels)} labels but the model has 2 outputs") as e:
        Predictor(out)
    assert "labels.json" in str(e.value)


def test_serve_refuses_an_impossible_port(cls_export, monkeypatch, capsys):
    tool = os.path.join(ROOT, "tools", "serve.py")
    main = runpy.run_path(tool, run_name="tool")["main"]
    monkeypatch.setattr(sys, "argv", [tool, "--model", cls_export, "--port", "99999"])
    with pytest.raises(SystemExit) as e:
        main()
    assert e.value.code == 2 and "'99999' is not a port number (1..65535)" in capsys.readouterr().err


def test_deeply_nested_json_is_a_400(cls_export):
    pytest.importorskip("httpx")
    from fastapi.testclient import TestClient

    from ernie_tiny_distill.deploy.service import create_app

    client = TestClient(create_app(Predictor(cls_export)))
    r = client.post("/predict", content=b"[" * 100_000 + b"]" * 100_000)
    assert r.status_code == 400 and "nested too deeply" in r.json()["error"]
    r = client.post("/predict", content=b'{"texts": ' + b"[" * 100_000 + b"]" * 100_000 + b"}")
    assert r.status_code == 400


def test_truncated_safetensors_names_the_file(cls_model, tmp_path):
    bad = copy(cls_model, tmp_path / "cut")
    weights = os.path.join(bad, "model.safetensors")
    with open(weights, "r+b") as f:
        f.truncate(os.path.getsize(weights) // 2)
    with pytest.raises(UserError, match="cannot read model.safetensors: the file is truncated or corrupt") as e:
        ex.export_model(bad, str(tmp_path / "out"))
    assert weights in str(e.value)


def test_disk_full_during_export_names_the_path(cls_model, tmp_path, monkeypatch):
    import paddle

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(paddle.jit, "save", full)
    out = str(tmp_path / "out")
    with pytest.raises(UserError, match="the disk is full") as e:
        ex.export_model(cls_model, out)
    assert out in str(e.value) and os.listdir(tmp_path) == []  # the temporary directory is gone too


# ---------------------------------------------------------------- dynamic INT8 needs no calibration file


@pytest.mark.skipif(not HAS_ORT_QUANT, reason="onnxruntime.quantization not installed")
def test_dynamic_int8_export_without_calibration_file(cls_model, tmp_path, monkeypatch, capsys):
    tool = os.path.join(ROOT, "tools", "export.py")
    main = runpy.run_path(tool, run_name="tool")["main"]
    out = str(tmp_path / "int8")
    monkeypatch.setattr(sys, "argv", [tool, "--model", cls_model, "--out", out, "--int8", "--no-verify"])
    assert main() == 0, capsys.readouterr().err
    meta = json.load(open(os.path.join(out, layout.EXPORT_FILE)))
    assert meta["int8"]["method"] == "dynamic" and os.path.isfile(os.path.join(out, layout.INT8_ONNX_FILE))
    assert Predictor(out, backend="onnx", precision="int8").predict(["A fine film."])[0]["label"] in ("neg", "pos")


# ---------------------------------------------------------------- pre-split tokens, configurable splitter


def test_word_splitters():
    text = "@jo loves #NYC &amp; http://t.co/x :) U.S."
    assert [w for w, _, _ in split_words(text, "tweet")] == ["@jo", "loves", "#NYC", "&amp;", "http://t.co/x", ":)",
                                                            "U.S."]
    assert [w for w, _, _ in split_words(text, "whitespace")] == text.split()
    assert [w for w, _, _ in split_words(text)][:3] == ["@", "jo", "loves"]
    with pytest.raises(UserError, match="unknown word splitter"):
        split_words(text, "spacy")


def test_export_records_the_word_splitter_and_the_predictor_uses_it(ner_export, tmp_path):
    assert json.load(open(os.path.join(ner_export, layout.EXPORT_FILE)))["word_splitter"] == "conll"
    out = copy(ner_export, tmp_path / "e")
    meta = json.load(open(os.path.join(out, layout.EXPORT_FILE)))
    meta["word_splitter"] = "whitespace"
    (tmp_path / "e" / layout.EXPORT_FILE).write_text(json.dumps(meta))
    p = Predictor(out)
    assert p.encoder.word_splitter == "whitespace" and p.encoder.words("U.S.-made car")[0] == ["U.S.-made", "car"]
    assert Predictor(out, word_splitter="conll").encoder.words("car, boat")[0] == ["car", ",", "boat"]


def test_predict_tokens_input_cli_and_service(ner_export, monkeypatch, capsys):
    import io

    tokens = ["Angela", "Merkel", "visited", "Berlin", "."]
    p = Predictor(ner_export)
    from_text = p.predict([" ".join(tokens)])[0]["entities"]
    from_tokens = p.predict([tokens])[0]["entities"]
    assert [(e["type"], e["text"], e["start_token"], e["end_token"]) for e in from_tokens] == \
        [(e["type"], e["text"], e["start_token"], e["end_token"]) for e in from_text]
    assert from_tokens and "start" not in from_tokens[0]
    tool = os.path.join(ROOT, "tools", "predict.py")
    main = runpy.run_path(tool, run_name="tool")["main"]
    monkeypatch.setattr(sys, "argv", [tool, "--model", ner_export])
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(json.dumps({"tokens": tokens}).encode() + b"\n")))
    assert main() == 0
    # the tool's backend "auto" may pick ONNX Runtime: the same entities, scores equal to float rounding
    served = json.loads(capsys.readouterr().out)["entities"]
    assert [{**e, "score": pytest.approx(e["score"], abs=1e-6)} for e in served] == from_tokens
    pytest.importorskip("httpx")
    from fastapi.testclient import TestClient

    from ernie_tiny_distill.deploy.service import create_app

    client = TestClient(create_app(p))
    r = client.post("/predict", json={"tokens": [tokens]})
    assert r.status_code == 200 and r.json()["results"][0]["entities"] == from_tokens
    assert client.post("/predict", json={"tokens": [["a", 3]]}).json()["error"] == "tokens[0][1] is not a string"


# ---------------------------------------------------------------- constrained IOB2 decoding


def test_allowed_transitions_iob2():
    start, trans = decoding.allowed_transitions(["O", "B-PER", "I-PER", "B-LOC", "I-LOC"])
    assert start.tolist() == [True, True, False, True, False]
    assert trans[:, 2].tolist() == [False, True, True, False, False]  # I-PER only after B-PER / I-PER
    assert trans[:, 4].tolist() == [False, False, False, True, True]
    assert trans[:, [0, 1, 3]].all()


def test_viterbi_repairs_a_stray_inside_tag():
    labels = ["O", "B-PER", "I-PER"]
    probs = np.array([[0.9, 0.05, 0.05], [0.3, 0.3, 0.4], [0.2, 0.1, 0.7]])
    logits = np.log(probs)
    # argmax: O I-PER I-PER (no entity under strict IOB2); allowed paths: O B I = .9*.3*.7 = .189 is the best
    assert decoding.decode_rows(logits, labels, "argmax")[0] == ["O", "I-PER", "I-PER"]
    tags, scores = decoding.decode_rows(logits, labels, "viterbi")
    assert tags == ["O", "B-PER", "I-PER"] and scores == pytest.approx([0.9, 0.3, 0.7])
    assert decoding.entity_spans(tags) == [("PER", 1, 3)]
    assert decoding.decode_rows(np.zeros((0, 3)), labels, "viterbi") == ([], [])
