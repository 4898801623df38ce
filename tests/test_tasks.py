"""Task adapters on a hand-written WordPiece vocabulary: NER label alignment, truncation, KD rows, metrics."""
from __future__ import annotations

import logging

import numpy as np
import paddle
import pytest
from helpers import CLS, ID, SEP, UNK

from ernie_tiny_distill.data import batching
from ernie_tiny_distill.data.examples import TaggedSentence, TextExample
from ernie_tiny_distill.tasks import metrics
from ernie_tiny_distill.tasks.adapters import GeneralTask, make_task
from ernie_tiny_distill.tasks.base import IGNORE_INDEX
from ernie_tiny_distill.tasks.classification import ClassificationTask
from ernie_tiny_distill.tasks.tagging import TaggingTask

X = IGNORE_INDEX
NER_LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]  # ids 0..4
O, B_PER, I_PER, B_LOC, I_LOC = range(5)

# "John plays unwatchable York ." -> john | play ##s | un ##watch ##able | york | .
SENTENCE = TaggedSentence(["John", "plays", "unwatchable", "York", "."], ["B-PER", "O", "O", "B-LOC", "O"])


def test_tokenizer_fixture_splits_as_designed(hand_tokenizer):
    assert hand_tokenizer.tokenize("unwatchable") == ["un", "##watch", "##able"]
    assert hand_tokenizer.tokenize("plays") == ["play", "##s"]
    assert hand_tokenizer.tokenize("\u200b") == []  # a zero-width space is cleaned away entirely


# --------------------------------------------------------------------------- tagging: alignment


def test_labels_on_first_subword_only(hand_tokenizer):
    task = TaggingTask(hand_tokenizer, NER_LABELS, max_seq_length=32)
    (f,) = task.encode([SENTENCE], offset=7)
    assert f["input_ids"] == [CLS, ID["john"], ID["play"], ID["##s"], ID["un"], ID["##watch"], ID["##able"],
                              ID["york"], ID["."], SEP]
    assert f["labels"] == [X, B_PER, O, X, O, X, X, B_LOC, O, X]
    assert f["token_mask"] == [0, 1, 1, 0, 1, 0, 0, 1, 1, 0]
    assert f["token_type_ids"] == [0] * 10
    assert f["num_words"] == 5 and f["index"] == 7


def test_unlabeled_sentence_keeps_token_mask(hand_tokenizer):
    # transfer-set sentences: no gold tags (CE ignores everything) but KD still sees every word
    task = TaggingTask(hand_tokenizer, NER_LABELS, max_seq_length=32)
    (f,) = task.encode([TaggedSentence(["plays", "John"])])
    assert f["labels"] == [X, X, X, X, X]
    assert f["token_mask"] == [0, 1, 0, 1, 0]


def test_word_that_tokenizes_to_nothing_becomes_unk(hand_tokenizer):
    task = TaggingTask(hand_tokenizer, NER_LABELS, max_seq_length=32)
    (f,) = task.encode([TaggedSentence(["John", "\u200b", "\x00", "."], ["B-PER", "O", "B-LOC", "O"])])
    assert f["input_ids"] == [CLS, ID["john"], UNK, UNK, ID["."], SEP]
    assert f["labels"] == [X, B_PER, O, B_LOC, O, X]
    assert f["token_mask"] == [0, 1, 1, 1, 1, 0]


def test_truncation_cuts_whole_words_and_warns(hand_tokenizer, caplog):
    # max_seq_length 8 -> 6 pieces: john(1) + play ##s(2) + un ##watch ##able(3); "York" and "." are cut
    task = TaggingTask(hand_tokenizer, NER_LABELS, max_seq_length=8)
    short = TaggedSentence(["York"], ["B-LOC"])
    with caplog.at_level(logging.WARNING, logger="ernie_tiny_distill.tasks.adapters"):
        f, g = task.encode([SENTENCE, short])
    assert f["input_ids"] == [CLS, ID["john"], ID["play"], ID["##s"], ID["un"], ID["##watch"], ID["##able"], SEP]
    assert f["labels"] == [X, B_PER, O, X, O, X, X, X]
    assert f["token_mask"] == [0, 1, 1, 0, 1, 0, 0, 0]
    assert f["num_words"] == 5
    assert g["input_ids"] == [CLS, ID["york"], SEP]  # sentences that fit are untouched
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["2 words in 1 sentences did not fit in max_seq_length=8 and were cut for training; "
                        "evaluation reads those sentences as word windows, as the served model does"]


def test_truncation_never_splits_a_word(hand_tokenizer, caplog):
    # 5 pieces of room: john + play ##s = 3; un ##watch ##able (3) does not fit -> cut whole, not as "un"
    task = TaggingTask(hand_tokenizer, NER_LABELS, max_seq_length=7)
    with caplog.at_level(logging.WARNING, logger="ernie_tiny_distill.tasks.adapters"):
        (f,) = task.encode([SENTENCE])
    assert f["input_ids"] == [CLS, ID["john"], ID["play"], ID["##s"], SEP]
    assert f["labels"] == [X, B_PER, O, X, X]
    assert "3 words in 1 sentences" in caplog.text


def test_no_warning_when_everything_fits(hand_tokenizer, caplog):
    task = TaggingTask(hand_tokenizer, NER_LABELS, max_seq_length=10)  # exactly 8 pieces + [CLS] [SEP]
    with caplog.at_level(logging.WARNING, logger="ernie_tiny_distill.tasks.adapters"):
        (f,) = task.encode([SENTENCE])
    assert len(f["input_ids"]) == 10 and f["num_words"] == 5
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_predict_pads_cut_words_with_o(hand_tokenizer):
    task = TaggingTask(hand_tokenizer, NER_LABELS, max_seq_length=8, decoding="argmax")  # alignment, not decoding
    (f,) = task.encode([SENTENCE])
    logits = np.zeros((len(f["input_ids"]), 5), dtype=np.float32)
    # the argmax at every position; only first sub-words (1, 2, 4) count
    for pos, label in enumerate([O, B_PER, I_LOC, B_PER, B_LOC, B_PER, B_PER, B_PER]):
        logits[pos, label] = 1.0
    assert task.predict(logits, f) == ["B-PER", "I-LOC", "B-LOC", "O", "O"]


def test_predict_ignores_padding_beyond_the_feature(hand_tokenizer):
    # logits of a padded batch row are longer than the feature; the extra rows are not words
    task = TaggingTask(hand_tokenizer, NER_LABELS, max_seq_length=32)
    (f,) = task.encode([TaggedSentence(["John"], ["B-PER"])])
    logits = np.zeros((6, 5), dtype=np.float32)
    logits[1, B_PER] = 1.0
    logits[3:, I_LOC] = 5.0  # padding positions (after [SEP] at 2)
    assert task.predict(logits, f) == ["B-PER"]


# --------------------------------------------------------------------------- classification truncation

LONG = "the film was unwatchable john lives in new york"  # 11 pieces: the film was un ##watch ##able john ...
LONG_IDS = [ID[p] for p in ["the", "film", "was", "un", "##watch", "##able", "john", "lives", "in", "new", "york"]]


def test_classification_head_truncation(hand_tokenizer):
    task = ClassificationTask(hand_tokenizer, ["neg", "pos"], max_seq_length=10, truncation="head")
    f, g, h = task.encode([TextExample(LONG, "neg"), TextExample("great !", "pos"), TextExample("bad", None)],
                          offset=3)
    assert f["input_ids"] == [CLS] + LONG_IDS[:8] + [SEP]
    assert f["token_type_ids"] == [0] * 10
    assert (f["labels"], f["index"]) == (0, 3)
    assert g["input_ids"] == [CLS, ID["great"], ID["!"], SEP] and (g["labels"], g["index"]) == (1, 4)
    assert h["labels"] == X and h["index"] == 5  # unlabeled (transfer set)


def test_classification_head_tail_truncation(hand_tokenizer):
    # 8 pieces of room: head 8 // 4 = 2, tail 6 -> the film | ##able john lives in new york
    task = ClassificationTask(hand_tokenizer, ["neg", "pos"], max_seq_length=10, truncation="head_tail")
    (f,) = task.encode([TextExample(LONG, "pos")])
    assert f["input_ids"] == [CLS, ID["the"], ID["film"], ID["##able"], ID["john"], ID["lives"], ID["in"],
                              ID["new"], ID["york"], SEP]
    assert len(f["input_ids"]) == 10
    # short texts are never touched
    (g,) = task.encode([TextExample("the film", "pos")])
    assert g["input_ids"] == [CLS, ID["the"], ID["film"], SEP]


def test_classification_exact_fit_is_not_truncated(hand_tokenizer, caplog):
    task = ClassificationTask(hand_tokenizer, ["neg", "pos"], max_seq_length=13, truncation="head_tail")
    with caplog.at_level(logging.INFO, logger="ernie_tiny_distill.tasks.adapters"):
        (f,) = task.encode([TextExample(LONG, "pos")])
    assert f["input_ids"] == [CLS] + LONG_IDS + [SEP]
    assert "truncated" not in caplog.text


def test_general_task_joins_words_and_truncates(hand_tokenizer):
    task = GeneralTask(hand_tokenizer, max_seq_length=6)
    f, g = task.encode([TaggedSentence(["John", "lives", "in", "new", "york"]), TextExample("bad film")], offset=2)
    assert f["input_ids"] == [CLS, ID["john"], ID["lives"], ID["in"], ID["new"], SEP]  # 4 pieces of room
    assert g["input_ids"] == [CLS, ID["bad"], ID["film"], SEP]
    assert (f["labels"], f["index"], g["index"]) == (X, 2, 3)


def test_make_task():
    assert isinstance(make_task("ner", None, NER_LABELS, 16), TaggingTask)
    assert isinstance(make_task("classification", None, ["a"], 16, "head_tail"), ClassificationTask)
    with pytest.raises(ValueError, match="unknown task 'pos'"):
        make_task("pos", None, [], 16)


# --------------------------------------------------------------------------- KD rows


def test_kd_rows_paddle_and_numpy_agree_on_padded_batch(hand_tokenizer):
    task = TaggingTask(hand_tokenizer, NER_LABELS, max_seq_length=32)
    features = task.encode([
        TaggedSentence(["York", "."]),  # 2 words, 4 positions
        SENTENCE,  # 5 words, 10 positions (the longest)
        TaggedSentence(["unwatchable"]),  # 1 word over 3 pieces
    ])
    batch = batching.collate(features, pad_token_id=0)
    B, L = batch["input_ids"].shape
    assert (B, L) == (3, 10)
    logits = np.arange(B * L * 5, dtype=np.float32).reshape(B, L, 5)  # every row distinct
    rows = task.kd_rows(paddle.to_tensor(logits), {k: paddle.to_tensor(v) for k, v in batch.items()}).numpy()
    expected = np.concatenate([task.kd_rows_numpy(logits[i, :len(f["input_ids"])], f)
                               for i, f in enumerate(features)])
    np.testing.assert_array_equal(rows, expected)
    # and by hand: batch row 0 words at positions 1, 2; row 1 at 1, 2, 4, 7, 8; row 2 at 1
    np.testing.assert_array_equal(rows, logits[[0, 0, 1, 1, 1, 1, 1, 2], [1, 2, 1, 2, 4, 7, 8, 1]])
    assert rows.shape == (8, 5)


def test_classification_kd_rows(hand_tokenizer):
    task = ClassificationTask(hand_tokenizer, ["neg", "pos"], max_seq_length=16)
    logits = np.array([[1.0, 2.0], [3.0, 4.0]], dtype=np.float32)
    np.testing.assert_array_equal(task.kd_rows(paddle.to_tensor(logits), {}).numpy(), logits)
    np.testing.assert_array_equal(task.kd_rows_numpy(logits[1], {}), [[3.0, 4.0]])
    assert task.predict(np.array([0.2, 0.1]), {}) == "neg"


# --------------------------------------------------------------------------- metrics


def test_classification_metrics_by_hand(hand_tokenizer):
    gold = ["pos", "neg", "pos", "pos"]
    pred = ["pos", "pos", "neg", "pos"]
    m = metrics.classification_metrics(gold, pred, ["neg", "pos"])
    assert m["accuracy"] == 0.5 and m["num_examples"] == 4
    # pos: 2 correct of 3 predicted, of 3 gold; neg: 0 of 1 predicted, of 1 gold
    assert m["per_class"]["pos"] == pytest.approx({"precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3, "support": 3})
    assert m["per_class"]["neg"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    # through the task adapter
    task = ClassificationTask(hand_tokenizer, ["neg", "pos"], 16)
    assert task.evaluate(pred, [TextExample("x", g) for g in gold])["accuracy"] == 0.5
    assert task.chance_level([TextExample("x", g) for g in gold]) == 0.75
    with pytest.raises(ValueError, match="4 gold labels but 3 predictions"):
        metrics.classification_metrics(gold, pred[:3], ["neg", "pos"])


def test_tagging_metrics_seqeval_strict_by_hand(hand_tokenizer):
    gold = [["B-PER", "I-PER", "O", "B-LOC", "I-LOC"],
            ["B-ORG", "O"],
            ["B-PER", "I-PER"]]
    pred = [["B-PER", "I-PER", "O", "B-LOC", "O"],  # PER right; LOC with the wrong boundary
            ["O", "O"],  # ORG missed
            ["I-PER", "I-PER"]]  # strict IOB2: a chunk may not start with I-, so no entity at all
    # gold entities 4, predicted 2 (PER, short LOC), correct 1
    m = metrics.tagging_metrics(gold, pred)
    assert m["precision"] == pytest.approx(1 / 2)
    assert m["recall"] == pytest.approx(1 / 4)
    assert m["f1"] == pytest.approx(2 * (1 / 2) * (1 / 4) / (1 / 2 + 1 / 4))  # = 1/3
    assert m["num_sentences"] == 3
    per = m["per_class"]  # per-class keys match classification_metrics ("f1")
    assert per["PER"] == pytest.approx({"precision": 1.0, "recall": 0.5, "f1": 2 / 3, "support": 2})
    assert per["LOC"] == pytest.approx({"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1})
    assert per["ORG"] == pytest.approx({"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1})
    assert set(per) == {"PER", "LOC", "ORG"}
    # through the task adapter
    task = TaggingTask(hand_tokenizer, NER_LABELS, 16)
    assert task.evaluate(pred, [TaggedSentence(["w"] * len(g), g) for g in gold])["f1"] == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="sentence 1: 2 gold tags but 1 predicted"):
        metrics.tagging_metrics(gold, [pred[0], ["O"], pred[2]])


def test_tagging_metrics_perfect_prediction():
    gold = [["B-PER", "I-PER", "O", "B-LOC"]]
    m = metrics.tagging_metrics(gold, gold)
    assert (m["precision"], m["recall"], m["f1"]) == (1.0, 1.0, 1.0)


# --------------------------------------------------------------------------- the adapter's other jobs


def test_slice_logits_per_text_and_per_token():
    batch = np.arange(2 * 4 * 3, dtype="float32").reshape(2, 4, 3)  # [B, L, C]
    assert TaggingTask.slice_logits(batch, 1, 2).tolist() == batch[1, :2].tolist()
    assert ClassificationTask.slice_logits(batch[:, 0], 1, 2).tolist() == [12.0, 13.0, 14.0]


def test_head_flops_by_hand():
    assert ClassificationTask.head_flops(32, 64, 2) == 2 * 64 * 64 + 2 * 64 * 2
    assert TaggingTask.head_flops(32, 64, 9) == 2 * 32 * 64 * 9


def test_unlabeled_examples_and_task_class():
    from ernie_tiny_distill.tasks.adapters import TASKS, task_class

    assert TaggingTask.unlabeled_example("a  b c").tokens == ["a", "b", "c"]
    assert ClassificationTask.unlabeled_example("a b").text == "a b"
    assert task_class("ner") is TaggingTask and set(TASKS) == {"classification", "ner"}
    assert "conll" in TaggingTask.data_formats and "imdb" in ClassificationTask.data_formats


def test_check_examples_names_unknown_labels(hand_tokenizer):
    from ernie_tiny_distill.errors import UserError

    task = TaggingTask(hand_tokenizer, NER_LABELS, max_seq_length=32)
    task.check_examples([SENTENCE], where="dev")
    with pytest.raises(UserError, match="dev: labels not known to the model: 'B-ORG'"):
        task.check_examples([TaggedSentence(["x"], ["B-ORG"])], where="dev")


def test_tagging_predict_uses_the_configured_decoding(hand_tokenizer):
    feature = {"token_mask": [0, 1, 1, 0], "num_words": 2}
    logits = np.log(np.array([[1, 1, 1, 1, 1], [0.6, 0.05, 0.3, 0.025, 0.025], [0.12, 0.08, 0.7, 0.05, 0.05],
                              [1, 1, 1, 1, 1]], dtype="float64"))
    assert TaggingTask(hand_tokenizer, NER_LABELS, 16, decoding="argmax").predict(logits, feature) == ["O", "I-PER"]
    # allowed paths: O O = .6*.12 = .072, O B-PER = .6*.08 = .048, B-PER I-PER = .05*.7 = .035; I-PER after O is not
    assert TaggingTask(hand_tokenizer, NER_LABELS, 16, decoding="viterbi").predict(logits, feature) == ["O", "O"]
    with pytest.raises(ValueError, match="decoding must be one of"):
        TaggingTask(hand_tokenizer, NER_LABELS, 16, decoding="beam")
