"""Augmented NER sentences keep valid IOB2 tags and the same entities (types, in order) as their source."""
import random

import pytest

from ernie_tiny_distill.config import DataConfig
from ernie_tiny_distill.data.augment import Augmenter, augmented_transfer_set, mentions
from ernie_tiny_distill.data.examples import TaggedSentence
from ernie_tiny_distill.data.load import augment_count, augmented_copies

TRAIN = [
    TaggedSentence("John Smith lives in New York .".split(), ["B-PER", "I-PER", "O", "O", "B-LOC", "I-LOC", "O"]),
    TaggedSentence("Mary visited Paris".split(), ["B-PER", "O", "B-LOC"]),
    TaggedSentence("The United Nations met in Geneva with Ban Ki Moon".split(),
                   ["O", "B-ORG", "I-ORG", "O", "O", "B-LOC", "O", "B-PER", "I-PER", "I-PER"]),
    TaggedSentence("Berlin Paris".split(), ["B-LOC", "B-LOC"]),  # two adjacent mentions of one type
    TaggedSentence("nothing here".split(), ["O", "O"]),
]


def valid_iob2(tags):
    previous = "O"
    for tag in tags:
        if tag.startswith("I-") and previous[2:] != tag[2:]:
            return False
        previous = tag
    return True


def test_mention_replacement_with_certainty_swaps_every_mention_for_one_of_the_same_type():
    aug = Augmenter(TRAIN)
    rng = random.Random(0)
    for s in TRAIN:
        out = aug.replace_mentions(s, 1.0, rng)
        assert valid_iob2(out.tags) and len(out.tokens) == len(out.tags)
        assert [k for k, _, _ in mentions(out.tags)] == [k for k, _, _ in mentions(s.tags)]
        for kind, start, end in mentions(out.tags):
            assert out.tokens[start:end + 1] in aug.mentions[kind]
    # adjacent same-type mentions stay two mentions (B- B-), never merge into one
    two = aug.replace_mentions(TRAIN[3], 1.0, rng)
    assert len(mentions(two.tags)) == 2


def test_word_replacement_keeps_tags_and_draws_from_the_same_tag():
    aug = Augmenter(TRAIN)
    out = aug.replace_words(TRAIN[0], 1.0, random.Random(1))
    assert out.tags == TRAIN[0].tags
    for word, tag in zip(out.tokens, out.tags):
        assert word in aug.words[tag]
    assert aug.replace_words(TRAIN[0], 0.0, random.Random(1)).tokens == TRAIN[0].tokens


@pytest.mark.parametrize("seed", range(5))
def test_every_augmented_sentence_is_valid_iob2_with_the_sources_entities(seed):
    aug = Augmenter(TRAIN)
    rng = random.Random(seed)
    for _ in range(20):
        for s in TRAIN:
            out = aug.augment(s, rng)
            assert valid_iob2(out.tags)
            assert [k for k, _, _ in mentions(out.tags)] == [k for k, _, _ in mentions(s.tags)]


def test_transfer_set_has_the_requested_size_no_tags_and_is_seeded():
    first = augmented_transfer_set(TRAIN, 12, seed=3)
    assert len(first) == 12 and all(s.tags is None for s in first)
    assert [s.tokens for s in first] == [s.tokens for s in augmented_transfer_set(TRAIN, 12, seed=3)]
    assert [s.tokens for s in first] != [s.tokens for s in augmented_transfer_set(TRAIN, 12, seed=4)]


def test_data_unlabeled_augment_gives_max_unlabeled_examples_sentences():
    cfg = DataConfig(unlabeled="augment", max_unlabeled_examples=7)
    assert len(augmented_copies(cfg, "ner", TRAIN)) == 7
    assert len(augmented_copies(DataConfig(unlabeled="augment"), "ner", TRAIN)) == len(TRAIN)
    assert all(isinstance(s, TaggedSentence) and s.tags is None for s in augmented_copies(cfg, "ner", TRAIN))


@pytest.mark.parametrize("copies, cap, expected", [(None, None, 10), (None, 7, 7), (3, None, 30), (3, 25, 25),
                                                   (0.5, None, 5), (0.01, None, 1)])
def test_augment_copies_are_per_training_example_and_capped(copies, cap, expected):
    cfg = DataConfig(unlabeled="augment", augment_copies=copies, max_unlabeled_examples=cap)
    assert augment_count(cfg, 10) == expected
