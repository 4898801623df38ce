"""Edited export artefacts are not trusted: every field of export.json is validated (unknown keys refused), its
task must match the graph, and labels.json must hold export.json's labels in order."""
import json
import shutil

import pytest

from ernie_tiny_distill.deploy import predictor as pr
from ernie_tiny_distill.errors import UserError


@pytest.fixture
def export(cls_export, tmp_path):
    return shutil.copytree(cls_export, tmp_path / "e")


def _edit(export, name, change):
    path = export / name
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))
    return path


def _refused(export, pattern):
    with pytest.raises(UserError, match=pattern) as e:
        pr.Predictor(str(export))
    assert str(e.value).count("\n") <= 1  # the message and at most a hint line


def test_reordered_labels_json_is_refused(export):
    path = _edit(export, "labels.json", lambda labels: labels.reverse())
    _refused(export, rf"^{path}: labels\.json lists \['pos', 'neg'\] but export\.json records \['neg', 'pos'\]")


@pytest.mark.parametrize("change, message", [
    (lambda m: m.update(format_version=99), r"format_version 99 is not one this version reads \(1\)"),
    (lambda m: m.update(long_document={"stride": -4, "max_windows": None, "pooling": "mean"}),
     r"long_document\.stride: Input should be greater than 0, got -4"),
    (lambda m: m.update(max_seq_length="64"), r"max_seq_length: Input should be a valid integer, got '64'"),
    (lambda m: m.update(pad_token_id=5000), r"pad_token_id 5000 is not below vocab_size"),
    (lambda m: m.update(surprise=1), r"surprise: unknown key \(not written by this version\), got 1"),
    (lambda m: m.pop("vocab_size"), r"vocab_size: Field required"),
    (lambda m: m.update(task="ner"),
     r"task 'ner' does not match model_class 'ErnieForSequenceClassification' \(a classification model\)"),
])
def test_edited_export_json_is_refused(export, change, message):
    path = _edit(export, "export.json", change)
    _refused(export, rf"^{path}: {message}")


def test_unedited_export_still_loads(export):
    assert pr.Predictor(str(export)).predict(["a fine film"])[0]["label"] in ("neg", "pos")
