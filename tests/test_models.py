"""Teacher-layer selection copies the right tensors; students share the vocabulary; model directories round-trip."""
from __future__ import annotations

import json
import os

import numpy as np
import paddle
import pytest
from paddlenlp.transformers import (
    ErnieForMaskedLM,
    ErnieForSequenceClassification,
    ErnieForTokenClassification,
    ErnieModel,
)

from ernie_tiny_distill.config import StudentConfig
from ernie_tiny_distill.errors import UserError
from ernie_tiny_distill.models import build as models
from ernie_tiny_distill.models import birth

# the tiny teacher: 4 layers, hidden 32, 2 heads, intermediate 64, 512 positions, 2 token types
H, I, L, P, TYPES = 32, 64, 4, 512, 2
LAYER_PARAMS = 16  # q/k/v/out proj (w, b), linear1/2 (w, b), norm1/2 (w, b)


def arrays(model) -> dict:
    return {k: v.numpy() for k, v in model.state_dict().items()}


def vocab_size(teacher_dir) -> int:
    return len((teacher_dir / "vocab.txt").read_text(encoding="utf-8").splitlines())


@pytest.fixture(scope="module")
def teacher(tiny_teacher_dir):
    return models.load_model(str(tiny_teacher_dir), ErnieModel)


@pytest.fixture(scope="module")
def cls_teacher(tiny_teacher_dir):
    """The same encoder under a 3-class head (head randomly initialised, as for a fresh fine-tune)."""
    return models.load_model(str(tiny_teacher_dir), ErnieForSequenceClassification, num_labels=3)


def eval_logits(model, ids):
    model.eval()
    with paddle.no_grad():
        out = model(input_ids=paddle.to_tensor(ids), token_type_ids=paddle.zeros_like(paddle.to_tensor(ids)))
    return (out[0] if isinstance(out, tuple) else out).numpy()


# --------------------------------------------------------------------------- layer selection


def test_select_layers_copies_exactly_the_chosen_layers(teacher):
    student = birth.select_teacher_layers(teacher, [1, 3], ErnieModel)
    t, s = arrays(teacher), arrays(student)
    assert student.config.num_hidden_layers == 2 and teacher.config.num_hidden_layers == L  # teacher untouched
    layer_keys = [k for k in s if k.startswith("encoder.layers.")]
    assert len(layer_keys) == 2 * LAYER_PARAMS
    for key in layer_keys:
        j, rest = key[len("encoder.layers."):].split(".", 1)
        source = f"encoder.layers.{[1, 3][int(j)]}.{rest}"
        np.testing.assert_array_equal(s[key], t[source], err_msg=key)
        # and not the neighbouring layer (random weights differ)
        other = f"encoder.layers.{[0, 2][int(j)]}.{rest}"
        if "weight" in rest and "norm" not in rest:
            assert not np.array_equal(s[key], t[other]), key
    for key in [k for k in s if not k.startswith("encoder.layers.")]:  # embeddings and pooler
        np.testing.assert_array_equal(s[key], t[key], err_msg=key)
    assert {k for k in s if k.startswith("embeddings.")} == {k for k in t if k.startswith("embeddings.")}


def test_selected_student_is_a_copy_not_a_view(teacher):
    student = birth.select_teacher_layers(teacher, [0], ErnieModel)
    before = teacher.embeddings.word_embeddings.weight.numpy().copy()
    student.embeddings.word_embeddings.weight.set_value(np.zeros_like(before))
    np.testing.assert_array_equal(teacher.embeddings.word_embeddings.weight.numpy(), before)


def test_select_layers_with_head_class_copies_classifier(cls_teacher):
    student = birth.select_teacher_layers(cls_teacher, [0, 2], ErnieForSequenceClassification, num_labels=3)
    t, s = arrays(cls_teacher), arrays(student)
    # the student's names are the teacher's minus layers 2 and 3 (its layers are numbered 0, 1)
    assert set(s) == {k for k in t if not k.startswith(("ernie.encoder.layers.2.", "ernie.encoder.layers.3."))}
    for key, value in s.items():
        if key.startswith("ernie.encoder.layers."):
            j, rest = key[len("ernie.encoder.layers."):].split(".", 1)
            np.testing.assert_array_equal(value, t[f"ernie.encoder.layers.{[0, 2][int(j)]}.{rest}"], err_msg=key)
        else:  # embeddings, pooler, classifier
            np.testing.assert_array_equal(value, t[key], err_msg=key)
    assert s["classifier.weight"].shape == (H, 3)


@pytest.mark.filterwarnings("ignore:Skip loading for classifier")  # the new head, by design
def test_select_layers_new_head_when_label_count_differs(cls_teacher):
    student = birth.select_teacher_layers(cls_teacher, [3], ErnieForSequenceClassification, num_labels=2)
    t, s = arrays(cls_teacher), arrays(student)
    assert s["classifier.weight"].shape == (H, 2)  # fresh head, encoder still copied
    np.testing.assert_array_equal(s["ernie.encoder.layers.0.linear1.weight"], t["ernie.encoder.layers.3.linear1.weight"])
    np.testing.assert_array_equal(s["ernie.embeddings.word_embeddings.weight"],
                                  t["ernie.embeddings.word_embeddings.weight"])


@pytest.mark.filterwarnings("ignore:Skip loading for classifier")  # the new head, by design
def test_select_layers_bare_teacher_into_token_classifier(teacher):
    student = birth.select_teacher_layers(teacher, [2], ErnieForTokenClassification, num_labels=5)
    t, s = arrays(teacher), arrays(student)
    np.testing.assert_array_equal(s["ernie.encoder.layers.0.self_attn.q_proj.weight"],
                                  t["encoder.layers.2.self_attn.q_proj.weight"])
    np.testing.assert_array_equal(s["ernie.embeddings.position_embeddings.weight"],
                                  t["embeddings.position_embeddings.weight"])
    np.testing.assert_array_equal(s["ernie.pooler.dense.weight"], t["pooler.dense.weight"])
    assert s["classifier.weight"].shape == (H, 5)
    assert models.num_layers(student) == 1 and models.hidden_size(student) == H


def test_select_layers_copies_mlm_head(tiny_teacher_dir):
    # stage 1 with distill.mlm_weight > 0: the student starts from the teacher's MLM head as well
    mlm_teacher = models.load_model(str(tiny_teacher_dir), ErnieForMaskedLM)
    student = birth.select_teacher_layers(mlm_teacher, [1, 3], ErnieForMaskedLM)
    t, s = arrays(mlm_teacher), arrays(student)
    head = [k for k in s if k.startswith("cls.")]
    assert "cls.predictions.transform.weight" in head
    for key in head + ["ernie.embeddings.word_embeddings.weight"]:
        np.testing.assert_array_equal(s[key], t[key], err_msg=key)
    np.testing.assert_array_equal(s["ernie.encoder.layers.1.norm2.weight"], t["ernie.encoder.layers.3.norm2.weight"])


@pytest.mark.parametrize("cfg, n, expected", [
    (StudentConfig(layers=[0, 2]), 4, [0, 2]),
    (StudentConfig(every_k=2), 4, [1, 3]),
    (StudentConfig(every_k=3), 4, [2]),
    (StudentConfig(every_k=1), 3, [0, 1, 2]),
    (StudentConfig(every_k=2, layers=[3]), 4, [3]),  # explicit layers win
    (StudentConfig(every_k=4), 12, [3, 7, 11]),
])
def test_layers_to_keep(cfg, n, expected):
    assert birth.layers_to_keep(cfg, n) == expected


@pytest.mark.parametrize("cfg, n, message", [
    (StudentConfig(layers=[0, 4]), 4, r"selects layers \[0, 4\], but the teacher has layers 0\.\.3"),
    (StudentConfig(layers=[-1]), 4, r"selects layers \[-1\], but the teacher has layers 0\.\.3"),
    (StudentConfig(every_k=5), 4, r"selects layers \[\], but the teacher has layers 0\.\.3"),
    (StudentConfig(layers=[2, 1]), 4, r"must be increasing and distinct, got \[2, 1\]"),
    (StudentConfig(layers=[1, 1]), 4, r"must be increasing and distinct, got \[1, 1\]"),
])
def test_layers_to_keep_rejects_bad_indices(cfg, n, message):
    with pytest.raises(UserError, match=r"config key 'model\.student\.layers' " + message):
        birth.layers_to_keep(cfg, n)


def test_build_student_rejects_out_of_range_layers(teacher):
    with pytest.raises(UserError, match=r"selects layers \[1, 7\]"):
        birth.build_student(StudentConfig(layers=[1, 7]), teacher, None, ErnieModel)


# --------------------------------------------------------------------------- students from a config, vocabulary


def test_student_from_config_shares_vocabulary(teacher, tiny_teacher_dir):
    cfg = StudentConfig(init="config", num_layers=1, hidden_size=16, num_heads=2, intermediate_size=24)
    student = birth.student_from_config(cfg, teacher, ErnieForSequenceClassification, num_labels=2)
    c = models.encoder_of(student).config
    assert c.vocab_size == teacher.config.vocab_size == vocab_size(tiny_teacher_dir)
    assert (c.hidden_size, c.num_hidden_layers, c.num_attention_heads, c.intermediate_size) == (16, 1, 2, 24)
    assert (c.max_position_embeddings, c.type_vocab_size) == (P, TYPES)
    assert tuple(student.ernie.embeddings.word_embeddings.weight.shape) == (vocab_size(tiny_teacher_dir), 16)
    assert tuple(student.classifier.weight.shape) == (16, 2)
    built = birth.build_student(cfg, teacher, None, ErnieModel, dropout=0.0)
    assert models.num_layers(built) == 1 and models.hidden_size(built) == 16


def test_check_same_vocab(tiny_teacher_dir, hand_tokenizer):
    teacher_tok = models.load_tokenizer(str(tiny_teacher_dir))
    birth.check_same_vocab(teacher_tok, models.load_tokenizer(str(tiny_teacher_dir)), "student")  # no error
    with pytest.raises(UserError, match=r"^students/x: the student's vocabulary \(24 tokens\) differs from the "
                                        r"teacher's \(\d+ tokens\).*distillation needs one tokenizer for both"):
        birth.check_same_vocab(teacher_tok, hand_tokenizer, "students/x")


def test_pretrained_student_with_other_vocabulary_is_refused(teacher, tiny_teacher_dir, hand_tokenizer, tmp_path):
    other = tmp_path / "other"
    models.save_model_dir(birth.select_teacher_layers(teacher, [0], ErnieModel), hand_tokenizer, str(other), {})
    teacher_tok = models.load_tokenizer(str(tiny_teacher_dir))
    with pytest.raises(UserError, match="vocabulary"):
        birth.build_student(StudentConfig(init="pretrained", path=str(other)), teacher, teacher_tok, ErnieModel)


# --------------------------------------------------------------------------- parameter counts


def expected_counts(vocab: int, hidden: int, layers: int, inter: int, labels: int = 0):
    embeddings = (vocab + P + TYPES) * hidden
    per_layer = 4 * (hidden * hidden + hidden) + (hidden * inter + inter) + (inter * hidden + hidden) + 4 * hidden
    rest = 2 * hidden + layers * per_layer + (hidden * hidden + hidden)  # emb LayerNorm, layers, pooler
    rest += hidden * labels + labels if labels else 0
    return embeddings + rest, rest


def test_count_parameters_matches_config_arithmetic(teacher, cls_teacher, tiny_teacher_dir):
    v = vocab_size(tiny_teacher_dir)
    assert birth.count_parameters(teacher) == expected_counts(v, H, L, I)
    assert birth.count_parameters(cls_teacher) == expected_counts(v, H, L, I, labels=3)
    student = birth.select_teacher_layers(teacher, [1, 3], ErnieModel)
    assert birth.count_parameters(student) == expected_counts(v, H, 2, I)
    # the fixture teacher by hand: embeddings (v + 512 + 2)·32, 4 layers of 8,544, pooler 1,056, LayerNorm 64
    assert birth.count_parameters(teacher)[1] == 64 + 4 * 8544 + 1056


# --------------------------------------------------------------------------- model directories


@pytest.fixture
def student_and_tokenizer(cls_teacher, tiny_teacher_dir):
    student = birth.select_teacher_layers(cls_teacher, [0, 3], ErnieForSequenceClassification, num_labels=3)
    rng = np.random.default_rng(0)
    student.classifier.weight.set_value(rng.standard_normal((H, 3)).astype("float32"))
    return student, models.load_tokenizer(str(tiny_teacher_dir))


IDS = np.array([[2, 5, 6, 7, 3], [2, 8, 3, 0, 0]], dtype="int64")


def test_save_and_load_model_dir_round_trip(student_and_tokenizer, tmp_path):
    student, tokenizer = student_and_tokenizer
    run = tmp_path / "run"
    best = run / "best"
    meta = {"task": "classification", "labels": ["a", "b", "c"], "stage": "task"}
    models.save_model_dir(student, tokenizer, str(best), meta)
    files = set(os.listdir(best))
    assert {"config.json", "model.safetensors", "vocab.txt", "task.json"} <= files
    assert not [f for f in files if f.endswith(".pdparams")]  # never pickle
    assert models.read_task_metadata(str(best)) == {**meta, "vocab": models.vocab_record(tokenizer)}
    assert models.resolve(str(run)) == str(best)  # a run directory resolves to its best/ model
    loaded = models.load_model(str(run), ErnieForSequenceClassification, num_labels=3)
    np.testing.assert_array_equal(eval_logits(loaded, IDS), eval_logits(student, IDS))
    assert models.load_tokenizer(str(run)).get_vocab() == tokenizer.get_vocab()
    assert os.listdir(run) == ["best"]  # no temporary siblings left


def test_crash_while_saving_keeps_previous_directory(student_and_tokenizer, tmp_path, monkeypatch):
    student, tokenizer = student_and_tokenizer
    best = tmp_path / "best"
    models.save_model_dir(student, tokenizer, str(best), {"version": 1})
    before = eval_logits(student, IDS)
    student.classifier.weight.set_value(np.zeros((H, 3), dtype="float32"))  # a later, different model

    def boom(*args, **kwargs):
        raise RuntimeError("simulated crash while writing the tokenizer")

    monkeypatch.setattr(tokenizer, "save_pretrained", boom)
    with pytest.raises(RuntimeError, match="simulated crash"):
        models.save_model_dir(student, tokenizer, str(best), {"version": 2})
    assert os.listdir(tmp_path) == ["best"]  # no .best.tmp-* or .best.old-* left behind
    assert models.read_task_metadata(str(best))["version"] == 1
    loaded = models.load_model(str(best), ErnieForSequenceClassification, num_labels=3)
    np.testing.assert_array_equal(eval_logits(loaded, IDS), before)


def test_crash_on_first_save_leaves_nothing(student_and_tokenizer, tmp_path, monkeypatch):
    student, tokenizer = student_and_tokenizer
    monkeypatch.setattr(tokenizer, "save_pretrained", lambda *a, **k: (_ for _ in ()).throw(OSError("full")))
    with pytest.raises(UserError, match=r"best: could not write the model: full"):
        models.save_model_dir(student, tokenizer, str(tmp_path / "best"), {})
    assert os.listdir(tmp_path) == []


def test_load_model_refuses_pickle_only_directory(teacher, tmp_path):
    legacy = tmp_path / "legacy"
    teacher.save_pretrained(str(legacy), safe_serialization=False)
    assert any(f.endswith(".pdparams") for f in os.listdir(legacy))
    assert not any(f.endswith(".safetensors") for f in os.listdir(legacy))
    with pytest.raises(UserError, match=r"has no \.safetensors weights; only safetensors checkpoints are loaded"):
        models.load_model(str(legacy), ErnieModel)


def test_resolve_missing_directory(tmp_path):
    with pytest.raises(UserError, match="model directory not found"):
        models.resolve(str(tmp_path / "missing" / "model"))
    assert models.resolve("ernie-3.0-medium-zh") == "ernie-3.0-medium-zh"  # a PaddleNLP name passes through


def test_task_json_is_plain_json(student_and_tokenizer, tmp_path):
    student, tokenizer = student_and_tokenizer
    models.save_model_dir(student, tokenizer, str(tmp_path / "m"), {"labels": ["x"], "dev": {"f1": 0.5}})
    assert json.loads((tmp_path / "m" / "task.json").read_text()) == {"labels": ["x"], "dev": {"f1": 0.5},
                                                                      "vocab": models.vocab_record(tokenizer)}


def test_random_teacher_vocabulary_splits_words_as_the_basic_tokenizer_does():
    """build_vocab splits printable ASCII a chunk at a time; other text (accents, CJK, tabs, control characters
    that the tokenizer drops) whole: the words and their counts are the tokenizer's either way."""
    from paddlenlp.transformers.bert.tokenizer import BasicTokenizer

    from ernie_tiny_distill.models.random_teacher import SPECIAL_TOKENS, build_vocab

    texts = ["Hello, World! it's the U.S.A.", "the world", "Caf\u00e9 na\u00efve \u4e2d\u6587 x\ty", "a\x1cb c", "  "]
    words = [w for t in texts for w in BasicTokenizer(do_lower_case=True).tokenize(t)]
    assert "ab" in words and "\u4e2d" in words  # the control character is dropped, CJK characters stand alone
    chars = sorted({c for w in words for c in w})
    expected = SPECIAL_TOKENS + chars + [f"##{c}" for c in chars]
    for word in sorted(set(words), key=lambda w: (-words.count(w), words.index(w))):
        if word not in expected:
            expected.append(word)
    assert build_vocab(texts) == expected
