"""The wide part of a wide-and-deep student: a linear model over the word-piece n-grams of each window.

A transformer student of a few layers reads word order and context but learns slowly which of 30k word pieces
carry sentiment; a bag-of-n-grams linear model (TF-IDF + LR, fastText) learns that from labels alone and beats
every small transformer on IMDB. The wide part gives the student that linear path: for each window it averages
a learned logit vector over the window's unigrams (the word-piece ids) and hashed bigrams, and adds it to the
transformer's logits. It costs one table lookup per token at inference and lives inside the exported graph
(same inputs: input_ids), so the predictor, windows and pooling are unchanged.

A model directory with a wide part holds the transformer's files plus WIDE_CONFIG and WIDE_WEIGHTS; models.load_model
attaches the wide part when they are present.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from typing import Dict, Sequence, Tuple

import numpy as np
import paddle
import paddle.nn as nn

from ernie_tiny_distill.errors import UserError
from ernie_tiny_distill.util import filemodes

WIDE_CONFIG = "wide_ngrams.json"
WIDE_WEIGHTS = "wide_ngrams.safetensors"
# bigram (a, b) -> vocab_size + (a * HASH_MULTIPLIER + b) mod buckets; a prime well above any vocabulary size,
# so distinct pairs of ids only collide through the modulo (int64: 30522 * 1000003 + b < 2^63)
HASH_MULTIPLIER = 1_000_003


@dataclass(frozen=True)
class WideSpec:
    vocab_size: int
    buckets: int  # hashed bigram slots (0: unigrams only)
    pad_token_id: int = 0

    @property
    def rows(self) -> int:
        return self.vocab_size + self.buckets


def ngram_slots(input_ids: Sequence[int], spec: WideSpec) -> np.ndarray:
    """The table rows one window reads (numpy, for tests and inspection): every non-pad id, then every bigram
    of two adjacent non-pad ids hashed into the buckets."""
    ids = np.asarray(input_ids, dtype=np.int64)
    valid = ids != spec.pad_token_id
    slots = [ids[valid]]
    if spec.buckets:
        pair = valid[:-1] & valid[1:]
        slots.append(spec.vocab_size + (ids[:-1][pair] * HASH_MULTIPLIER + ids[1:][pair]) % spec.buckets)
    return np.concatenate(slots)


def read_spec(where: str, what: str) -> Tuple[WideSpec, Dict]:
    """(WideSpec, the whole JSON) of a saved wide part's config; an unreadable one or another hash is refused."""
    try:
        with open(where, encoding="utf-8") as f:
            raw = json.load(f)
        spec = WideSpec(int(raw["vocab_size"]), int(raw["buckets"]), int(raw.get("pad_token_id", 0)))
        int(raw["num_labels"])
        if int(raw.get("hash_multiplier", HASH_MULTIPLIER)) != HASH_MULTIPLIER:
            raise ValueError(f"hash_multiplier {raw['hash_multiplier']} (this version hashes with {HASH_MULTIPLIER})")
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UserError(f"unreadable {what}: {e}", where=where) from None
    return spec, raw


class WideNgrams(nn.Layer):
    """input_ids [W, L] -> logits [W, C]: the mean of the table rows of the window's n-grams (0 for no n-gram).
    Starts at zero, so attaching it leaves a trained transformer's predictions unchanged."""

    def __init__(self, spec: WideSpec, num_labels: int):
        super().__init__()
        self.spec = spec
        self.num_labels = num_labels
        self.table = self.create_parameter([spec.rows, num_labels], dtype="float32",
                                           default_initializer=nn.initializer.Constant(0.0))

    def forward(self, input_ids):
        spec = self.spec
        valid = (input_ids != spec.pad_token_id).astype("float32")  # [W, L]
        total = (nn.functional.embedding(input_ids, self.table) * valid.unsqueeze(-1)).sum(axis=1)  # [W, C]
        count = valid.sum(axis=1)  # [W]
        if spec.buckets:
            left, right = input_ids[:, :-1], input_ids[:, 1:]
            pair = valid[:, :-1] * valid[:, 1:]  # [W, L-1]
            # int64 tensors on both sides: a Python constant becomes a `scale` op, which paddle2onnx runs in float32
            # (17·1000003 + 99 came out as 17000151 in ONNX)
            code = paddle.multiply(left, paddle.full([1], HASH_MULTIPLIER, dtype="int64")) + right
            slots = paddle.remainder(code, paddle.full([1], spec.buckets, dtype="int64")) \
                + paddle.full([1], spec.vocab_size, dtype="int64")
            total = total + (nn.functional.embedding(slots, self.table) * pair.unsqueeze(-1)).sum(axis=1)
            count = count + pair.sum(axis=1)
        return total / paddle.clip(count, min=1.0).unsqueeze(-1)

    def save(self, path: str) -> None:
        from safetensors.numpy import save_file

        with open(os.path.join(path, WIDE_CONFIG), "w", encoding="utf-8") as f:
            json.dump({**asdict(self.spec), "num_labels": self.num_labels, "hash_multiplier": HASH_MULTIPLIER}, f,
                      indent=2)
        save_file({"table": np.asarray(self.table.numpy(), dtype=np.float32)}, os.path.join(path, WIDE_WEIGHTS))
        filemodes.as_umask_file(os.path.join(path, WIDE_WEIGHTS))  # safetensors writes 0600

    @classmethod
    def load(cls, path: str) -> "WideNgrams":
        from safetensors.numpy import load_file

        spec, raw = read_spec(os.path.join(path, WIDE_CONFIG), "wide n-gram config")
        num_labels = int(raw["num_labels"])
        try:
            table = load_file(os.path.join(path, WIDE_WEIGHTS))["table"]
        except Exception as e:  # missing file, truncated header, no "table"
            raise UserError(f"cannot read the wide n-gram table: {str(e)[:160]}",
                            where=os.path.join(path, WIDE_WEIGHTS)) from None
        if table.shape != (spec.rows, num_labels):
            raise UserError(f"the wide n-gram table has shape {list(table.shape)}, expected "
                            f"[{spec.rows}, {num_labels}] (vocab_size + buckets, num_labels)",
                            where=os.path.join(path, WIDE_WEIGHTS))
        layer = cls(spec, num_labels)
        layer.table.set_value(table)
        return layer


class WideAndDeep(nn.Layer):
    """A task model (`deep`, a PaddleNLP sequence classifier) plus a WideNgrams part: logits add up."""

    def __init__(self, deep, wide: WideNgrams):
        super().__init__()
        self.deep = deep
        self.wide = wide

    # what the rest of the package reads from a PaddleNLP classifier
    @property
    def ernie(self):
        return self.deep.ernie

    @property
    def config(self):
        return self.deep.config

    def forward(self, input_ids, token_type_ids=None, return_dict=False, **kwargs):
        out = self.deep(input_ids=input_ids, token_type_ids=token_type_ids, return_dict=False, **kwargs)
        logits = (out[0] if isinstance(out, (tuple, list)) else out) + self.wide(input_ids)
        if return_dict:
            from paddlenlp.transformers.model_outputs import SequenceClassifierOutput

            return SequenceClassifierOutput(logits=logits)
        return logits

    def save_pretrained(self, path: str, **kwargs) -> None:
        self.deep.save_pretrained(path, **kwargs)
        self.wide.save(path)


def has_wide(path: str) -> bool:
    return os.path.isfile(os.path.join(path, WIDE_CONFIG))


def attach(model, path: str) -> WideAndDeep:
    """`model` with the wide part saved in `path`."""
    wide = WideNgrams.load(path)
    vocab = int(model.config.vocab_size)
    if wide.spec.vocab_size != vocab:
        raise UserError(f"the wide part was built for a vocabulary of {wide.spec.vocab_size} ids, the model has "
                        f"{vocab}", where=os.path.join(path, WIDE_CONFIG))
    return WideAndDeep(model, wide)


def parameter_counts(model) -> Tuple[int, int]:
    """(transformer, wide) parameter counts."""
    if not isinstance(model, WideAndDeep):
        return sum(int(p.numel()) for p in model.parameters()), 0
    return (sum(int(p.numel()) for p in model.deep.parameters()), int(model.wide.table.numel()))
