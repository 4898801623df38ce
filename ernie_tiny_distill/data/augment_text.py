"""Unlabeled copies of classification texts for a transfer set: word replacement, span deletion, word swaps.

TinyBERT's recipe without an MLM head: words are replaced by words of the training vocabulary that are about as
frequent (a frequency band of ranks), or by their nearest neighbours in a teacher's word-embedding table when one
is given (TinyBERT used GloVe neighbours). The copies are unlabeled: the teacher labels them (KD term only), so a
copy whose meaning drifted costs nothing but the teacher's opinion of it.
"""
from __future__ import annotations

import logging
import os
import random
import re
from collections import Counter
from typing import Dict, List, Optional, Sequence

from ernie_tiny_distill.data.examples import TextExample
from ernie_tiny_distill.errors import UserError

logger = logging.getLogger(__name__)

TEACHER_EMBEDDINGS = "teacher"  # data.augment_embeddings: the table of the run's own teacher (model.teacher)
# Words (with inner apostrophes) and single punctuation marks; BERT tokenizers split punctuation the same way.
_TOKEN = re.compile(r"\w+(?:['’]\w+)*|[^\w\s]")


def tokens(text: str) -> List[str]:
    return _TOKEN.findall(text)


class TextAugmenter:
    """Replacement candidates for the words of a training set: same-frequency-band words or given neighbours."""

    def __init__(self, texts: Sequence[str], *, band: int = 50, protect: int = 50,
                 neighbours: Optional[Dict[str, List[str]]] = None):
        counts = Counter(t.lower() for text in texts for t in tokens(text) if t.isalpha())
        self.ranked = [w for w, _ in counts.most_common()]  # ties keep first-seen order: deterministic
        self.rank = {w: i for i, w in enumerate(self.ranked)}
        # The most frequent words are function words: swapping "the" for "of" only breaks the grammar.
        self.protected = set(self.ranked[:protect])
        self.band = band
        self.neighbours = neighbours or {}

    def candidates(self, word: str) -> List[str]:
        low = word.lower()
        if low in self.protected or low not in self.rank:
            return []
        if low in self.neighbours:
            return self.neighbours[low]
        r = self.rank[low]
        lo, hi = max(len(self.protected), r - self.band), min(len(self.ranked), r + self.band + 1)
        return [w for w in self.ranked[lo:hi] if w != low]

    def augment(self, text: str, rng: random.Random, replace_p: float = 0.3, delete_p: float = 0.3,
                swap_p: float = 0.3) -> str:
        """One copy: each word replaced with probability replace_p, then maybe one span deleted and two words
        swapped. At least one token is always kept, so a copy is never empty."""
        words = tokens(text)
        if not words:
            return text.strip() or text
        out = []
        for w in words:
            options = self.candidates(w) if rng.random() < replace_p else []
            new = rng.choice(options) if options else w
            out.append(new.capitalize() if w[:1].isupper() and new != w else new)
        if len(out) >= 3 and rng.random() < delete_p:
            span = rng.randint(1, max(1, len(out) // 5))
            start = rng.randrange(len(out) - span + 1)
            del out[start:start + span]
        if len(out) >= 2 and rng.random() < swap_p:
            i, j = rng.sample(range(len(out)), 2)
            out[i], out[j] = out[j], out[i]
        return " ".join(out)


def augmented_texts(train: Sequence[TextExample], count: int, seed: int, embeddings=None) -> List[TextExample]:
    """`count` unlabeled augmented copies of the training texts (cycling through a seeded shuffle); embeddings =
    (vocabulary, word-embedding table) replaces words by their nearest neighbours instead of frequency bands."""
    texts = [ex.text for ex in train if ex.text.strip()]
    if not texts:
        return []
    augmenter = TextAugmenter(texts)
    if embeddings is not None:
        vocab, table = embeddings
        augmenter.neighbours = embedding_neighbours(
            [w for w in augmenter.ranked if w not in augmenter.protected], vocab, table)
    rng = random.Random(seed)
    order = list(range(len(texts)))
    out: List[TextExample] = []
    while len(out) < count:
        rng.shuffle(order)
        out.extend(TextExample(augmenter.augment(texts[i], rng), None) for i in order[: count - len(out)])
    return out


def embedding_neighbours(words: Sequence[str], vocab: Dict[str, int], table, k: int = 10,
                         max_words: int = 10000) -> Dict[str, List[str]]:
    """The k nearest (cosine) training words of each training word in a word-embedding table.

    Only words that are one entry of the vocabulary take part (a word split into pieces has no row); the most
    frequent max_words of them bound the cost (a max_words^2 similarity matrix, computed in blocks).
    """
    import numpy as np

    kept = [w for w in words if w in vocab][:max_words]
    if len(kept) < 2:
        return {}
    vectors = np.asarray(table, dtype=np.float32)[[vocab[w] for w in kept]]
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-6)
    k = min(k, len(kept) - 1)
    out: Dict[str, List[str]] = {}
    for start in range(0, len(kept), 1024):
        sims = vectors[start:start + 1024] @ vectors.T  # [block, words]
        for row, i in enumerate(range(start, min(start + 1024, len(kept)))):
            sims[row, i] = -np.inf  # a word is not its own neighbour
        top = np.argsort(-sims, axis=1, kind="stable")[:, :k]
        for row, i in enumerate(range(start, start + len(top))):
            out[kept[i]] = [kept[j] for j in top[row]]
    return out


def model_word_table(model_dir: str):
    """(vocabulary {token: id}, word-embedding table) of a model directory: vocab.txt and the one
    `*word_embeddings.weight` tensor of its safetensors file, read without building the model."""
    from safetensors import safe_open

    vocab_file = os.path.join(model_dir, "vocab.txt")
    weights = os.path.join(model_dir, "model.safetensors")
    for path in (vocab_file, weights):
        if not os.path.isfile(path):
            raise UserError(f"{os.path.basename(path)} not found in {model_dir}",
                            where="config key 'data.augment_embeddings'",
                            hint="give a model directory with vocab.txt and model.safetensors, a run directory or "
                                 "'minilm'")
    with open(vocab_file, encoding="utf-8") as f:
        vocab = {line.rstrip("\n"): i for i, line in enumerate(f)}
    with safe_open(weights, framework="numpy") as f:
        names = [n for n in f.keys() if n.endswith("word_embeddings.weight")]
        if len(names) != 1:
            raise UserError(f"expected one word-embedding table (*word_embeddings.weight) in {weights}, found "
                            f"{len(names)}", where="config key 'data.augment_embeddings'")
        return vocab, f.get_tensor(names[0])


def teacher_word_table(teacher: str) -> Optional[str]:
    """data.augment_embeddings: teacher -> `teacher` (a model spec for model_word_table), or None when it has no
    readable word-embedding table (a model name not downloaded yet, a checkpoint without safetensors): words are
    then replaced by same-frequency training words, said in the log."""
    from ernie_tiny_distill.models.locate import resolve

    try:
        model_word_table(resolve(teacher))
    except (UserError, OSError) as e:
        logger.warning("augmentation: the teacher %s has no readable word-embedding table (%s); words are replaced "
                       "by training words of about the same frequency instead", teacher, e)
        return None
    return teacher
