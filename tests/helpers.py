"""Shared test helpers: a hand-written WordPiece vocabulary, a tiny ERNIE config and a tiny random teacher.

Import what a test module needs (`from helpers import ...`); pytest puts tests/ on sys.path.
Fixtures imported into several modules still build their files once per session (module-level cache).
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

# ids are the list positions: [PAD]=0 [UNK]=1 [CLS]=2 [SEP]=3 [MASK]=4 john=5 ... play=23
HAND_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "john", "lives", "in", "new", "york", "the", "film",
              "was", "un", "##watch", "##able", "great", "bad", ".", "!", "a", "##s", "##ing", "play"]
ID = {piece: i for i, piece in enumerate(HAND_VOCAB)}
PAD, UNK, CLS, SEP = ID["[PAD]"], ID["[UNK]"], ID["[CLS]"], ID["[SEP]"]

# sentences for the random teacher's vocabulary (characters + frequent words)
TEACHER_TEXTS = ["the cat sat on the mat .", "a dog ran in the park !", "John lives in New York .",
                 "the film was great", "the film was bad , unwatchable"]

_CACHE: dict = {}


def write_vocab(directory, pieces=HAND_VOCAB) -> str:
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(str(directory), "vocab.txt")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(pieces) + "\n")
    return path


def make_tokenizer(directory, pieces=HAND_VOCAB):
    from paddlenlp.transformers import BertTokenizer

    return BertTokenizer(vocab_file=write_vocab(directory, pieces), do_lower_case=True)


def tiny_config(vocab_size: int = len(HAND_VOCAB), hidden: int = 16, layers: int = 2, heads: int = 2,
                intermediate: int = 32, num_labels: int = 2):
    """A tiny ErnieConfig without dropout (so forward passes are deterministic in train mode too)."""
    from paddlenlp.transformers import ErnieConfig

    config = ErnieConfig(vocab_size=vocab_size, hidden_size=hidden, num_hidden_layers=layers,
                         num_attention_heads=heads, intermediate_size=intermediate, max_position_embeddings=64,
                         type_vocab_size=2, pad_token_id=0, hidden_dropout_prob=0.0,
                         attention_probs_dropout_prob=0.0)
    config.num_labels = num_labels
    return config


@pytest.fixture(scope="session")
def hand_tokenizer(tmp_path_factory):
    if "tokenizer" not in _CACHE:
        _CACHE["tokenizer"] = make_tokenizer(tmp_path_factory.mktemp("hand_vocab"))
    return _CACHE["tokenizer"]


@pytest.fixture(scope="session")
def tiny_teacher_dir(tmp_path_factory) -> Path:
    """A random 4-layer, 32-wide, 2-head ErnieModel directory (safetensors + vocab.txt), built once."""
    if "teacher" not in _CACHE:
        from ernie_tiny_distill.random_teacher import write_random_teacher

        path = tmp_path_factory.mktemp("tiny_teacher") / "teacher"
        write_random_teacher(str(path), TEACHER_TEXTS, num_layers=4, hidden_size=32, num_heads=2,
                             intermediate_size=64, seed=0)
        _CACHE["teacher"] = path
    return _CACHE["teacher"]
