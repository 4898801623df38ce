"""Augmented classification copies: unlabeled, never empty, seeded, drawn from the training vocabulary."""
from __future__ import annotations

import logging
import random

import numpy as np

from ernie_tiny_distill.config import config_from_dict
from ernie_tiny_distill.data.augment_text import TextAugmenter, augmented_texts, embedding_neighbours, tokens
from ernie_tiny_distill.data.examples import TextExample
from ernie_tiny_distill.data.load import load_splits

TRAIN = [
    TextExample("What is the capital of France ?", "LOC"),
    TextExample("Who wrote the novel Dracula ?", "HUM"),
    TextExample("How far is the moon ?", "NUM"),
    TextExample("Why", "DESC"),  # one word: no deletion or swap can empty it
    TextExample("What does NASA stand for ?", "ABBR"),
    TextExample("Who painted the Mona Lisa ?", "HUM"),
]


def test_copies_are_unlabeled_never_empty_and_leave_the_training_set_alone():
    before = [TextExample(ex.text, ex.label) for ex in TRAIN]
    copies = augmented_texts(TRAIN, 200, seed=1)
    assert len(copies) == 200 and all(c.label is None for c in copies)
    assert all(c.text.strip() for c in copies)
    assert TRAIN == before


def test_copies_are_seeded():
    first = [c.text for c in augmented_texts(TRAIN, 30, seed=5)]
    assert first == [c.text for c in augmented_texts(TRAIN, 30, seed=5)]
    assert first != [c.text for c in augmented_texts(TRAIN, 30, seed=6)]


def test_replacements_come_from_the_training_vocabulary():
    vocab = {t.lower() for ex in TRAIN for t in tokens(ex.text)}
    for copy in augmented_texts(TRAIN, 100, seed=2):
        assert {t.lower() for t in tokens(copy.text)} <= vocab


def test_frequency_band_candidates_skip_the_most_frequent_words():
    texts = ["a a a a b b b c c d", "e f g"]
    aug = TextAugmenter(texts, band=1, protect=1)  # ranks: a b c d e f g; "a" is protected
    assert aug.candidates("a") == []
    assert aug.candidates("C") == ["b", "d"]  # ranks 1 and 3 around c's 2
    assert aug.candidates("unseen") == []


def test_every_operation_at_probability_one_still_keeps_a_word():
    aug = TextAugmenter([ex.text for ex in TRAIN], protect=0)
    rng = random.Random(0)
    for ex in TRAIN:
        n = len(tokens(ex.text))
        for _ in range(20):
            kept = len(tokens(aug.augment(ex.text, rng, replace_p=1.0, delete_p=1.0, swap_p=1.0)))
            # one span of 1 to n // 5 tokens goes from texts of 3 tokens or more; shorter ones keep all
            assert (n - max(1, n // 5) <= kept <= n - 1) if n >= 3 else kept == n


def test_embedding_neighbours_are_the_nearest_other_words():
    vocab = {"cat": 0, "dog": 1, "car": 2, "bus": 3}
    table = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]], dtype=np.float32)
    assert embedding_neighbours(["cat", "dog", "car", "bus", "zebra"], vocab, table, k=1) == {
        "cat": ["dog"], "dog": ["cat"], "car": ["bus"], "bus": ["car"]}


def test_data_unlabeled_augment_for_classification(tmp_path, caplog):
    train = tmp_path / "train.label"
    train.write_text("".join(f"{ex.label} {ex.text}\n" for ex in TRAIN), encoding="utf-8")
    cfg = config_from_dict({"task": "classification", "stage": "task", "output_dir": str(tmp_path / "run"),
                            "model": {"teacher": "minilm", "student": {"every_k": 2}},
                            "data": {"format": "label_text", "train_file": str(train), "dev_file": str(train),
                                     "unlabeled": "augment", "max_unlabeled_examples": 15, "split_seed": 2}})
    with caplog.at_level(logging.INFO, logger="ernie_tiny_distill.data.load"):
        splits = load_splits(cfg.data, "classification", need_unlabeled=True)
    assert len(splits.unlabeled) == 15 and all(ex.label is None for ex in splits.unlabeled)
    assert splits.train == TRAIN
    assert ("transfer set: 15 augmented copies of the 6 training examples (word replacement by same-frequency-band "
            "words, span deletion, word swaps; seed 2)") in caplog.messages
