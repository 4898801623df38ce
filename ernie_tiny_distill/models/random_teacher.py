"""A randomly initialised tiny ERNIE with a vocabulary built from given texts: for tests and offline demos."""
from __future__ import annotations

import collections
import logging
import os
from typing import Iterable

from paddlenlp.transformers import BertTokenizer, ErnieConfig, ErnieModel

from ernie_tiny_distill.util import fsutil

logger = logging.getLogger(__name__)

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def build_vocab(texts: Iterable[str], max_words: int = 4000) -> list:
    """Special tokens, every character and its ##continuation, then the most frequent lower-cased words.

    Characters make every word tokenizable (WordPiece falls back to them); frequent words keep sequences short.
    """
    from paddlenlp.transformers.bert.tokenizer import BasicTokenizer

    basic = BasicTokenizer(do_lower_case=True)  # the same punctuation-aware split BertTokenizer applies
    split_chunks = {}  # chunk -> its words

    def split(text: str) -> list:
        """basic.tokenize(text), a space-separated chunk at a time and each distinct chunk once: printable ASCII
        text has nothing for the tokenizer's cleaning to drop or respace, and the rest of its split is per chunk."""
        if not (text.isascii() and text.isprintable()):
            return basic.tokenize(text)
        out = []
        for chunk in text.split():
            if chunk not in split_chunks:
                split_chunks[chunk] = basic.tokenize(chunk)
            out += split_chunks[chunk]
        return out

    words, chars = collections.Counter(), set()
    for text in texts:
        for word in split(text):
            words[word] += 1
            chars.update(word)
    vocab = list(SPECIAL_TOKENS)
    vocab += sorted(chars) + [f"##{c}" for c in sorted(chars)]
    seen = set(vocab)
    for word, _ in words.most_common():
        if len(vocab) >= max_words + len(SPECIAL_TOKENS) + 2 * len(chars):
            break
        if word not in seen:
            vocab.append(word)
            seen.add(word)
    return vocab


def write_random_teacher(path: str, texts: Iterable[str], num_layers: int = 2, hidden_size: int = 64,
                         num_heads: int = 4, intermediate_size: int = 128, seed: int = 0) -> str:
    """Save a random ErnieModel + WordPiece tokenizer as a PaddleNLP directory (safetensors) at `path`."""
    import paddle

    if os.path.isfile(os.path.join(path, "model.safetensors")):
        return path
    vocab = build_vocab(texts)
    with fsutil.atomic_dir(path, prefix=".random-teacher-") as tmp:
        vocab_file = os.path.join(tmp, "vocab.txt")
        with open(vocab_file, "w", encoding="utf-8") as f:
            f.write("\n".join(vocab) + "\n")
        tokenizer = BertTokenizer(vocab_file=vocab_file, do_lower_case=True)
        paddle.seed(seed)
        config = ErnieConfig(vocab_size=len(vocab), hidden_size=hidden_size, num_hidden_layers=num_layers,
                             num_attention_heads=num_heads, intermediate_size=intermediate_size,
                             max_position_embeddings=512, type_vocab_size=2, pad_token_id=0)
        model = ErnieModel(config)
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
    logger.info("wrote a randomly initialised %d-layer teacher of width %d with a %d-token vocabulary to %s",
                num_layers, hidden_size, len(vocab), path)
    return path
