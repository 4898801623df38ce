"""The vocabulary is checked against the model: no more tokens than embedding rows, and the very vocabulary the
model was trained (task.json) and exported (export.json) with."""
import json
import os
import random
import shutil

import pytest

from ernie_tiny_distill.deploy import predictor as pr
from ernie_tiny_distill.errors import UserError
from ernie_tiny_distill.models import build as models


def _copy(src, dst):
    shutil.copytree(src, dst)
    return str(dst)


def _rewrite_vocab(path, change):
    file = os.path.join(path, "vocab.txt")
    with open(file, encoding="utf-8") as f:
        tokens = f.read().splitlines()
    with open(file, "w", encoding="utf-8") as f:
        f.write("\n".join(change(tokens)) + "\n")
    return file, tokens


def _shuffled(tokens):
    special = [t for t in tokens if t.startswith("[")]
    rest = [t for t in tokens if not t.startswith("[")]
    random.Random(0).shuffle(rest)
    return special + rest


def test_training_records_the_vocabulary(cls_model):
    meta = models.read_task_metadata(cls_model)
    assert meta["vocab"] == models.vocab_record(models.load_tokenizer(cls_model))
    assert meta["vocab"]["size"] == json.load(open(os.path.join(cls_model, "config.json")))["vocab_size"]


def test_larger_vocabulary_than_embedding_rows_is_refused(cls_model, tmp_path):
    model = _copy(cls_model, tmp_path / "m")
    file, tokens = _rewrite_vocab(model, lambda t: t + [f"extra{i}" for i in range(50)])
    rows = json.load(open(os.path.join(model, "config.json")))["vocab_size"]
    with pytest.raises(UserError, match=rf"^{file}: the vocabulary has {len(tokens) + 50} tokens but the model's "
                                        rf"word embeddings have {rows} rows"):
        models.load_tokenizer(model)


def test_shuffled_vocabulary_of_the_same_size_is_refused(cls_model, tmp_path):
    model = _copy(cls_model, tmp_path / "m")
    file, _ = _rewrite_vocab(model, _shuffled)
    with pytest.raises(UserError, match=rf"^{file}: the vocabulary is not the one this model was trained with"):
        models.load_tokenizer(model)


def test_export_records_and_checks_the_vocabulary(cls_export, tmp_path):
    meta = json.load(open(os.path.join(cls_export, "export.json")))
    assert meta["vocab"]["size"] <= meta["vocab_size"]
    export = _copy(cls_export, tmp_path / "e")
    file, _ = _rewrite_vocab(export, _shuffled)
    with pytest.raises(UserError, match=rf"^{file}: the vocabulary is not the one this model was exported with"):
        pr.Predictor(export)
    _rewrite_vocab(export, lambda t: t + [f"extra{i}" for i in range(2000)])
    with pytest.raises(UserError, match=r"vocab\.txt: the vocabulary has \d+ tokens but the model's word embeddings "
                                        r"have \d+ rows"):
        pr.Predictor(export)
