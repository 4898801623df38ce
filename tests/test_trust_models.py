"""Model directories are cross-checked before use: a config.json with fewer layers than the checkpoint, a truncated
weight file, a shard index naming a missing shard, and a document-level wide table of another vocabulary are
one-line errors naming the file."""
import json
import os
import shutil

import pytest
from paddlenlp.transformers import ErnieModel

from ernie_tiny_distill.errors import UserError
from ernie_tiny_distill.models import build as models


@pytest.fixture
def teacher(tiny_teacher_dir, tmp_path):
    return shutil.copytree(tiny_teacher_dir, tmp_path / "teacher")


def test_config_with_fewer_layers_than_the_checkpoint_is_refused(teacher):
    config = teacher / "config.json"
    raw = json.loads(config.read_text())
    raw["num_hidden_layers"] = 2  # the checkpoint has 4
    config.write_text(json.dumps(raw))
    with pytest.raises(UserError, match=rf"^{config}: the checkpoint has 32 encoder weights that a model built from "
                                        r"this config \(num_hidden_layers 2\) would leave unused, e\.g\. "
                                        r"encoder\.layers\.2\."):
        models.load_model(str(teacher), ErnieModel)


def test_truncated_weight_file_is_named(teacher):
    weights = teacher / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match=rf"^{weights}: cannot read the weights: the file is truncated or corrupt"):
        models.load_model(str(teacher), ErnieModel)


def test_shard_index_naming_a_missing_shard_is_refused(teacher):
    os.rename(teacher / "model.safetensors", teacher / "model-00001-of-00002.safetensors")
    index = teacher / "model.safetensors.index.json"
    index.write_text(json.dumps({"weight_map": {"embeddings.word_embeddings.weight": "model-00001-of-00002.safetensors",
                                                "pooler.dense.weight": "model-00002-of-00002.safetensors"}}))
    with pytest.raises(UserError, match=rf"^{index}: names shard model-00002-of-00002\.safetensors, which is missing"):
        models.load_model(str(teacher), ErnieModel)


def test_intact_teacher_still_loads(teacher):
    assert models.num_layers(models.load_model(str(teacher), ErnieModel)) == 4


@pytest.fixture
def with_document_table(cls_model, tmp_path):
    import numpy as np
    from paddlenlp.transformers import ErnieForSequenceClassification

    from ernie_tiny_distill.wide import document as wide_document
    from ernie_tiny_distill.wide import window as wide

    model = models.load_model(cls_model, ErnieForSequenceClassification, num_labels=2)
    spec = wide.WideSpec(vocab_size=model.ernie.config.vocab_size, buckets=64, pad_token_id=0)
    docs = [{"input_ids": [2, 5, 9, 7, 3]}, {"input_ids": [2, 8, 9, 3]}]
    slots, idf = wide_document.vocabulary([wide_document.slot_counts(d, spec) for d in docs])
    model.document_table = wide_document.DocumentTable(spec, slots, idf, np.ones((len(slots), 2), np.float32),
                                                       np.zeros(2, np.float32))
    out = str(tmp_path / "wide_model")
    models.save_model_dir(model, models.load_tokenizer(cls_model), out, models.read_task_metadata(cls_model))
    return out


@pytest.mark.parametrize("key, value, message", [
    ("vocab_size", 99, r"vocab_size 99, but the model's word embeddings have \d+ rows"),
    ("buckets", 128, r"settings .* differ from the ones task\.json recorded when it was saved"),
])
def test_edited_document_table_config_is_refused(with_document_table, key, value, message):
    from paddlenlp.transformers import ErnieForSequenceClassification

    path = os.path.join(with_document_table, "wide_document.json")
    raw = json.load(open(path))
    assert models.load_model(with_document_table, ErnieForSequenceClassification, 2).document_table.spec.buckets == 64
    json.dump({**raw, key: value}, open(path, "w"))
    with pytest.raises(UserError, match=rf"^{path}: {message}"):
        models.load_model(with_document_table, ErnieForSequenceClassification, 2)


@pytest.mark.parametrize("score, relation", [(0.16, "below"), (0.21, "no better than")])
def test_weak_teacher_wording_names_the_trivial_predictor(hand_tokenizer, score, relation):
    from types import SimpleNamespace

    from ernie_tiny_distill.data.examples import TextExample
    from ernie_tiny_distill.tasks.classification import ClassificationTask
    from ernie_tiny_distill.train import supervised

    labels = ["a", "b", "c", "d", "e", "f"]
    task = ClassificationTask(hand_tokenizer, labels, 16)
    dev = [TextExample("x", label) for label in ["a"] * 20 + ["b"] * 16 + ["c", "d", "e", "f"] * 16]  # 0.2 is "a"
    cfg = SimpleNamespace(distill=SimpleNamespace(allow_weak_teacher=False), model=SimpleNamespace(teacher="t"))
    with pytest.raises(UserError, match=rf"^model\.teacher=t: the teacher's dev accuracy is {score:.4f}, {relation} "
                                        r"the 0\.2000 of always predicting the most frequent label \(6 labels\): "
                                        r"it has nothing to teach"):
        supervised.check_teacher(cfg, task, {"accuracy": score}, dev)
