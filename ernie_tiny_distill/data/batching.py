"""Batches with dynamic padding: length-bucketed, seeded per epoch (so a resumed run sees the same order)."""
from __future__ import annotations

import random
from typing import Dict, Iterator, List, Sequence

import numpy as np

from ernie_tiny_distill.tasks.adapters import Feature, pad_labels

# Neighbouring lengths are grouped within pools of this many batches, then the batches are shuffled:
# little padding, yet every batch still mixes the data set.
POOL_BATCHES = 50


def train_batches(lengths: Sequence[int], batch_size: int, seed: int, epoch: int,
                  rank: int = 0, world_size: int = 1) -> List[List[int]]:
    """Index batches for one epoch. Deterministic in (seed, epoch); rank r of `world_size` gets every r-th batch."""
    rng = random.Random(seed * 100_003 + epoch)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    batches = []
    pool = batch_size * POOL_BATCHES
    for start in range(0, len(order), pool):
        chunk = sorted(order[start:start + pool], key=lambda i: lengths[i])
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    # every rank takes the same number of batches, so data-parallel steps stay in lock-step
    per_rank = len(batches) // world_size if world_size > 1 else len(batches)
    return batches[rank::world_size][:per_rank]


def eval_batches(lengths: Sequence[int], batch_size: int) -> List[List[int]]:
    """Length-sorted batches for inference (least padding); callers restore the original order by index."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def collate(features: Sequence[Feature], pad_token_id: int) -> Dict[str, np.ndarray]:
    """Pad a list of features to the longest one: int64 arrays [B, L] (labels [B] or [B, L]).

    A feature that holds `windows` (a long document, Task.document_feature) gives one model row per window, and
    the batch gets `doc` [W]: the feature each row belongs to (Task.pool turns the rows back into [B, C])."""
    windowed = any("windows" in f for f in features)
    rows = [w for f in features for w in f["windows"]] if windowed else list(features)
    max_len = max(len(r["input_ids"]) for r in rows)
    n = len(rows)
    input_ids = np.full((n, max_len), pad_token_id, dtype="int64")
    token_type_ids = np.zeros((n, max_len), dtype="int64")
    attention_mask = np.zeros((n, max_len), dtype="int64")
    for i, f in enumerate(rows):
        k = len(f["input_ids"])
        input_ids[i, :k] = f["input_ids"]
        token_type_ids[i, :k] = f["token_type_ids"]
        attention_mask[i, :k] = 1
    batch = {"input_ids": input_ids, "token_type_ids": token_type_ids, "attention_mask": attention_mask,
             "index": np.array([f["index"] for f in features], dtype="int64")}
    if windowed:
        batch["doc"] = np.array([b for b, f in enumerate(features) for _ in f["windows"]], dtype="int64")
    batch.update(pad_labels(features, max_len))  # labels [B] or labels, token_mask [B, L]: the Task rule
    return batch


def iterate(features: Sequence[Feature], batches: Sequence[Sequence[int]], pad_token_id: int
            ) -> Iterator[Dict[str, np.ndarray]]:
    for idx in batches:
        yield collate([features[i] for i in idx], pad_token_id)
