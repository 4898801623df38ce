"""Synthetic timing inputs of an exact length: random-id features, and texts of whole vocabulary words."""
from __future__ import annotations

from typing import Dict, List

import numpy as np

from ernie_tiny_distill.errors import UserError


def synthetic_features(encoder, seq_len: int, count: int, seed: int = 0) -> List[Dict]:
    """`count` features of exactly seq_len tokens: [CLS] + random ordinary vocabulary ids + [SEP]."""
    tok = encoder.tokenizer
    special = {tok.pad_token_id, tok.cls_token_id, tok.sep_token_id, tok.unk_token_id, tok.mask_token_id}
    vocab = int(encoder.meta["vocab_size"])
    pool = np.array([i for i in range(min(vocab, 30000)) if i not in special], dtype="int64")
    rng = np.random.default_rng(seed)
    features = []
    for _ in range(count):
        ids = [tok.cls_token_id] + rng.choice(pool, size=seq_len - 2).tolist() + [tok.sep_token_id]
        features.append({"input_ids": ids, "token_type_ids": [0] * seq_len})
    return features


def synthetic_texts(encoder, seq_len: int, count: int, seed: int = 0) -> List[str]:
    """Texts of whole vocabulary words that tokenize to about seq_len - 2 pieces (for timings with tokenization)."""
    words = [w for w in encoder.tokenizer.get_vocab() if w.isalpha() and w.islower() and len(w) > 2]
    if not words:
        raise UserError("the vocabulary has no plain words to build timing texts from")
    rng = np.random.default_rng(seed)
    texts = []
    for _ in range(count):
        picked = [words[i] for i in rng.integers(0, len(words), size=seq_len - 2)]
        texts.append(" ".join(picked))
    return texts
