"""Augmented transfer sets. NER: tag-preserving augmentation (Dai & Adel 2020, "An Analysis of Simple Data
Augmentation for Named Entity Recognition"): mention replacement and label-wise token replacement, drawn from the
training set; classification: augment_text.py.

Used as a transfer set: the teacher labels the augmented sentences (soft labels, KD term only), so a tag the
augmentation gets semantically wrong ("Paris" where a person was) costs nothing but the teacher's opinion of it.
Every output still has valid IOB2 tags and exactly the entity types, in order, of the sentence it came from.
"""
from __future__ import annotations

import random
from typing import Dict, List, Sequence, Tuple

from seqeval.metrics.sequence_labeling import get_entities

from ernie_tiny_distill.data.examples import TaggedSentence


def mentions(tags: Sequence[str]) -> List[Tuple[str, int, int]]:
    """(type, start, end inclusive) of each entity under strict IOB2, as seqeval scores them."""
    return [(t, s, e) for t, s, e in get_entities(list(tags))]


class Augmenter:
    """Pools of mentions by entity type and of words by tag, built from labeled training sentences."""

    def __init__(self, sentences: Sequence[TaggedSentence]):
        self.mentions: Dict[str, List[List[str]]] = {}
        self.words: Dict[str, List[str]] = {}
        for s in sentences:
            for kind, start, end in mentions(s.tags):
                self.mentions.setdefault(kind, []).append(list(s.tokens[start:end + 1]))
            for word, tag in zip(s.tokens, s.tags):
                self.words.setdefault(tag, []).append(word)

    def replace_mentions(self, s: TaggedSentence, p: float, rng: random.Random) -> TaggedSentence:
        """Each mention is, with probability p, swapped for a random training mention of the same type."""
        tokens, tags, last = [], [], 0
        for kind, start, end in mentions(s.tags):
            tokens += s.tokens[last:start]
            tags += s.tags[last:start]
            mention = s.tokens[start:end + 1]
            if rng.random() < p and self.mentions.get(kind):
                mention = rng.choice(self.mentions[kind])
            tokens += mention
            tags += [f"B-{kind}"] + [f"I-{kind}"] * (len(mention) - 1)
            last = end + 1
        return TaggedSentence(tokens + list(s.tokens[last:]), tags + list(s.tags[last:]))

    def replace_words(self, s: TaggedSentence, p: float, rng: random.Random) -> TaggedSentence:
        """Each word is, with probability p, swapped for a random training word that had the same tag."""
        tokens = [rng.choice(self.words[tag]) if rng.random() < p and self.words.get(tag) else word
                  for word, tag in zip(s.tokens, s.tags)]
        return TaggedSentence(tokens, list(s.tags))

    def augment(self, s: TaggedSentence, rng: random.Random, mention_p: float = 0.5, word_p: float = 0.3):
        return self.replace_words(self.replace_mentions(s, mention_p, rng), word_p, rng)


def augmented_transfer_set(train: Sequence[TaggedSentence], count: int, seed: int) -> List[TaggedSentence]:
    """`count` augmented copies of training sentences (cycling through a seeded shuffle), tags dropped."""
    labeled = [s for s in train if s.tags is not None and s.tokens]
    if not labeled:
        return []
    augmenter = Augmenter(labeled)
    rng = random.Random(seed)
    order = list(range(len(labeled)))
    out = []
    while len(out) < count:
        rng.shuffle(order)
        for i in order[: count - len(out)]:
            out.append(TaggedSentence(augmenter.augment(labeled[i], rng).tokens))
    return out
