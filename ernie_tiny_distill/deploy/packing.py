"""Packing encoded inputs into engine calls: length buckets, length-sorted batches, padded int64 arrays."""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

BUCKETS = (16, 32, 64, 128, 256, 384, 512)  # padded lengths: a few shapes, each reused by the engine


def bucket_length(length: int, buckets: Optional[Sequence[int]]) -> int:
    """The padded length of a batch whose longest input has `length` tokens: the smallest bucket that holds
    it (the length itself without buckets or beyond the largest)."""
    for b in buckets or ():
        if b >= length:
            return b
    return length


def length_batches(lengths: Sequence[int], batch_size: int,
                   buckets: Optional[Sequence[int]] = None) -> List[Tuple[int, List[int]]]:
    """(padded length, indices) per engine call: indices sorted by length, at most `batch_size` per call;
    with buckets, one call never mixes buckets (a short input is not padded to a long one's length)."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    calls: List[Tuple[int, List[int]]] = []
    for i in order:
        padded = bucket_length(lengths[i], buckets)
        if calls and len(calls[-1][1]) < batch_size and (buckets is None or calls[-1][0] == padded):
            calls[-1] = (max(calls[-1][0], padded), calls[-1][1] + [i])
        else:
            calls.append((padded, [i]))
    return calls


def pack(features: Sequence[Dict], length: int, pad_token_id: int) -> Tuple[np.ndarray, np.ndarray]:
    """int64 input_ids, token_type_ids [B, length], padded with pad_token_id (length >= the longest)."""
    ids = np.full((len(features), length), pad_token_id, dtype="int64")
    types = np.zeros((len(features), length), dtype="int64")
    for i, f in enumerate(features):
        n = len(f["input_ids"])
        ids[i, :n] = f["input_ids"]
        types[i, :n] = f["token_type_ids"]
    return ids, types
