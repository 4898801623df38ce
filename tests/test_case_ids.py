"""model.case_ids: word case classes as token types, the same on every encoding path, inherited by students."""
import json
import os

import numpy as np
import paddle
import pytest
from helpers import demo_ner_teacher
from paddlenlp.transformers import ErnieForTokenClassification

from ernie_tiny_distill.config import StudentConfig, config_from_dict
from ernie_tiny_distill.data.examples import TaggedSentence
from ernie_tiny_distill.errors import UserError
from ernie_tiny_distill.models import birth, pruning
from ernie_tiny_distill.models import build as models
from ernie_tiny_distill.tasks import tokenizer as wordpiece
from ernie_tiny_distill.tasks.adapters import make_task
from ernie_tiny_distill.tasks.casing import case_class
from ernie_tiny_distill.train import evaluation
from ernie_tiny_distill.train.stages import run_stage

CASED = [["Angela", "Merkel", "visited", "BERLIN", "and", "McDonald", "'s", "in", "U.S.", "."],
         ["iPhone", "sales", "of", "Apple", "rose", "3.5", "%", "in", "NEW", "York", "É", "é"]]


@pytest.mark.parametrize("word, expected", [
    ("apple", 0), ("3.5", 0), ("'s", 0), ("--", 0), ("", 0), ("漢字", 0),  # lower, or no cased letter
    ("Apple", 1), ("I", 1), ("A.", 1), ("Éric", 1), ("L'oreal", 1),  # first cased letter upper, the rest lower
    ("USA", 2), ("U.S.", 2), ("NEW", 2), ("É-U", 2),  # all upper, more than one
    ("McDonald", 3), ("iPhone", 3), ("O'Neil", 3), ("Jean-Pierre", 3), ("eBay", 3),
])
def test_case_classes_of_tricky_words(word, expected):
    assert case_class(word) == expected


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("case_ids")
    teacher = demo_ner_teacher(root, num_layers=2, hidden_size=32, num_heads=2, intermediate_size=64)
    return {"root": root, "teacher": teacher, "tokenizer": models.load_tokenizer(teacher)}


def _task(setup, case_ids=True, fast=True):
    task = make_task("ner", setup["tokenizer"], ["O", "B-PER", "I-PER"], 64, case_ids=case_ids)
    task._pieces = wordpiece.WordPieces(setup["tokenizer"], fast=fast)
    return task


def test_fast_and_paddlenlp_paths_give_the_same_ids_and_types(setup):
    fast, reference = _task(setup), _task(setup, fast=False)
    assert fast.wordpieces.is_fast and not reference.wordpieces.is_fast
    sentences = [TaggedSentence(tokens=words) for words in CASED]
    a, b = fast.encode(sentences), reference.encode(sentences)
    assert [f["input_ids"] for f in a] == [f["input_ids"] for f in b]
    assert [f["token_type_ids"] for f in a] == [f["token_type_ids"] for f in b]
    assert all(fast.kd_row_count(f) == f["num_words"] for f in a)  # nothing cut
    # each piece carries its word's class; [CLS] and [SEP] 0
    pieces = fast.word_pieces(CASED[0])
    assert a[0]["token_type_ids"] == [0] + [c for w, p in zip(CASED[0], pieces) for c in [case_class(w)] * len(p)] + [0]
    assert set(a[1]["token_type_ids"]) == {0, 1, 2, 3}
    # the served windows hold the same types as training's features
    windows, _ = fast.sentence_windows(pieces, fast.word_cases(CASED[0]))
    assert len(windows) == 1 and windows[0]["token_type_ids"] == a[0]["token_type_ids"]
    assert all(set(f["token_type_ids"]) == {0} for f in _task(setup, case_ids=False).encode(sentences))


def _logits(model, features):
    return evaluation.predict_logits(make_task("ner", None, ["O", "B-PER", "I-PER"], 64), model, features, 8, 0,
                                     None)


def test_grown_table_leaves_the_untrained_model_unchanged(setup):
    paddle.seed(0)
    plain = models.load_model(setup["teacher"], ErnieForTokenClassification, num_labels=3)
    grown = models.load_model(setup["teacher"], ErnieForTokenClassification, num_labels=3)
    grown.set_state_dict(plain.state_dict())  # the same head
    birth.match_case_ids(grown, setup["teacher"], True, "model to fine-tune", grow=True)
    assert grown.ernie.embeddings.token_type_embeddings.weight.shape == [4, 32]
    assert grown.config.type_vocab_size == 4
    plain.eval(), grown.eval()
    sentences = [TaggedSentence(tokens=words) for words in CASED + [["angela", "visited", "berlin", "."]]]
    cased, uncased = _task(setup).encode(sentences), _task(setup, case_ids=False).encode(sentences)
    assert cased[2]["token_type_ids"] == uncased[2]["token_type_ids"]  # lower-case text: all 0
    for a, b in zip(_logits(grown, cased), _logits(plain, uncased)):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)


@pytest.fixture(scope="module")
def trained(setup):
    root = setup["root"]

    def config(stage, name, case_ids=True, **model):
        return config_from_dict({
            "task": "ner", "stage": stage, "output_dir": str(root / name),
            "data": {"format": "demo", "path": str(root / "demo"), "max_train_examples": 32,
                     "max_dev_examples": 8, "max_test_examples": 8},
            "model": {"teacher": setup["teacher"], "max_seq_length": 64, "case_ids": case_ids, **model},
            "distill": {"allow_weak_teacher": True},
            "train": {"epochs": 1, "batch_size": 8, "learning_rate": 3e-3, "warmup_ratio": 0.0, "progress": False,
                      "seed": 3}})

    return {"teacher": run_stage(config("teacher", "teacher")), "config": config}


def test_trained_export_serves_what_the_dygraph_model_predicts(trained, setup):
    from ernie_tiny_distill.deploy import export as ex
    from ernie_tiny_distill.deploy import predictor as pr

    best = trained["teacher"]["best_dir"]
    with open(os.path.join(best, "config.json"), encoding="utf-8") as f:
        assert json.load(f)["type_vocab_size"] == 4
    assert models.read_task_metadata(best)["case_ids"] is True
    model = models.load_model(best, ErnieForTokenClassification, num_labels=len(models.read_task_metadata(best)["labels"]))
    rows = model.ernie.embeddings.token_type_embeddings.weight.numpy()
    assert not np.allclose(rows[1], rows[0])  # training moved the Title row away from its copy of row 0
    out = str(setup["root"] / "export")
    ex.export_model(best, out)
    with open(os.path.join(out, "export.json"), encoding="utf-8") as f:
        assert json.load(f)["case_ids"] is True
    predictor = pr.Predictor(out)
    task = predictor.encoder.task
    assert task.case_ids
    features = task.encode([TaggedSentence(tokens=words) for words in CASED])
    assert all(task.kd_row_count(f) == f["num_words"] for f in features)  # no sentence cut: one window each
    assert all(set(f["token_type_ids"]) > {0} for f in features)
    model.eval()
    dygraph = evaluation.predict_logits(task, model, features, 8, 0, None)
    windows = [task.sentence_windows(predictor.encoder.word_pieces(w), task.word_cases(w))[0][0] for w in CASED]
    assert [w["token_type_ids"] for w in windows] == [f["token_type_ids"] for f in features]
    for served, expected in zip(predictor.logits(windows), dygraph):
        np.testing.assert_allclose(served, expected, rtol=1e-4, atol=1e-4)
    assert predictor.post.predict_tokens(CASED) == [task.predict(lg, f) for lg, f in zip(dygraph, features)]


def test_born_students_keep_the_case_table(trained, setup):
    teacher_dir = trained["teacher"]["best_dir"]
    labels = models.read_task_metadata(teacher_dir)["labels"]
    teacher = models.load_model(teacher_dir, ErnieForTokenClassification, num_labels=len(labels))
    table = teacher.ernie.embeddings.token_type_embeddings.weight.numpy()
    layers = birth.build_student(StudentConfig(init="teacher_layers", layers=[1]), teacher, setup["tokenizer"],
                                 ErnieForTokenClassification, len(labels))
    np.testing.assert_array_equal(layers.ernie.embeddings.token_type_embeddings.weight.numpy(), table)
    narrow = birth.build_student(StudentConfig(init="config", num_layers=1, hidden_size=16, num_heads=2,
                                               intermediate_size=32), teacher, setup["tokenizer"],
                                 ErnieForTokenClassification, len(labels))
    assert narrow.ernie.embeddings.token_type_embeddings.weight.shape == [4, 16]
    importance = pruning.Importance(np.ones((2, 2)), np.ones((2, 64)), np.eye(32), 1)
    plan = pruning.make_plan(importance, [0], 1, 32, 24)
    pruned = pruning.build_pruned(teacher, plan, ErnieForTokenClassification, len(labels),
                                  pruning.principal_basis(np.eye(32), 24))
    assert pruned.ernie.embeddings.token_type_embeddings.weight.shape == [4, 24]


def test_a_student_must_use_the_case_ids_of_its_teacher(trained):
    cfg = trained["config"]("task", "student", case_ids=False, teacher=trained["teacher"]["best_dir"],
                            student={"init": "teacher_layers", "layers": [1]})
    with pytest.raises(UserError, match="trained with model.case_ids=true"):
        run_stage(cfg)


def test_case_ids_are_refused_for_classification():
    with pytest.raises(UserError, match="model.case_ids"):
        config_from_dict({"task": "classification", "stage": "teacher", "output_dir": "x",
                          "model": {"teacher": "minilm", "case_ids": True}})
