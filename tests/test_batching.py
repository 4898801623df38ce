"""Length-bucketed, seeded training batches; rank sharding; dynamic padding in collate."""
from __future__ import annotations

import numpy as np
import pytest

from ernie_tiny_distill.data import batching
from ernie_tiny_distill.data.batching import collate, eval_batches, iterate, train_batches

LENGTHS = [(i * 37) % 23 + 3 for i in range(103)]  # 103 examples, lengths 3..25 in a scrambled order


def flat(batches):
    return [i for b in batches for i in b]


def test_deterministic_per_seed_and_epoch():
    assert train_batches(LENGTHS, 8, seed=1, epoch=0) == train_batches(LENGTHS, 8, seed=1, epoch=0)
    assert train_batches(LENGTHS, 8, seed=1, epoch=2) == train_batches(LENGTHS, 8, seed=1, epoch=2)


def test_order_changes_across_epochs_and_seeds():
    e0 = train_batches(LENGTHS, 8, seed=1, epoch=0)
    assert train_batches(LENGTHS, 8, seed=1, epoch=1) != e0
    assert train_batches(LENGTHS, 8, seed=2, epoch=0) != e0


@pytest.mark.parametrize("batch_size", [1, 7, 8, 103, 200])
def test_every_index_exactly_once_per_epoch(batch_size):
    for epoch in range(3):
        batches = train_batches(LENGTHS, batch_size, seed=5, epoch=epoch)
        assert sorted(flat(batches)) == list(range(len(LENGTHS)))
        assert all(1 <= len(b) <= batch_size for b in batches)
        assert len(batches) == -(-len(LENGTHS) // batch_size)  # ceil: only one short batch


def test_batches_group_similar_lengths(monkeypatch):
    # within a pool the indices are sorted by length, so a batch spans a narrow length range
    batches = train_batches(LENGTHS, 8, seed=0, epoch=0)
    spread = np.mean([max(LENGTHS[i] for i in b) - min(LENGTHS[i] for i in b) for b in batches])
    assert spread < 4  # random batches of 8 from 3..25 would spread ~15
    # pools bound the sorting: with pools of one batch, batches are just shuffled slices
    monkeypatch.setattr(batching, "POOL_BATCHES", 1)
    assert sorted(flat(train_batches(LENGTHS, 8, seed=0, epoch=0))) == list(range(len(LENGTHS)))


@pytest.mark.parametrize("world_size", [2, 3, 4])
def test_rank_shards_are_disjoint_with_equal_counts(world_size):
    per_rank = [train_batches(LENGTHS, 4, seed=3, epoch=1, rank=r, world_size=world_size)
                for r in range(world_size)]
    counts = {len(b) for b in per_rank}
    assert len(counts) == 1  # every rank steps the same number of times
    n_batches = -(-len(LENGTHS) // 4)  # 26
    assert counts.pop() == n_batches // world_size
    seen = [set(flat(b)) for b in per_rank]
    for a in range(world_size):
        for b in range(a + 1, world_size):
            assert not seen[a] & seen[b]
    # together they cover all but the few batches dropped to keep ranks in lock-step
    assert len(set().union(*seen)) >= len(LENGTHS) - (world_size - 1) * 4
    # the shards are taken from one shared epoch order
    whole = train_batches(LENGTHS, 4, seed=3, epoch=1)
    assert per_rank[0] == whole[0::world_size][:n_batches // world_size]


def test_eval_batches_sorted_by_length_and_complete():
    batches = eval_batches([5, 1, 4, 2, 3], 2)
    assert batches == [[1, 3], [4, 2], [0]]
    assert eval_batches([], 4) == []


# --------------------------------------------------------------------------- collate


def test_collate_classification_pads_to_longest():
    features = [
        {"input_ids": [2, 7, 8, 3], "token_type_ids": [0, 0, 0, 0], "labels": 1, "index": 10},
        {"input_ids": [2, 9, 3], "token_type_ids": [0, 0, 0], "labels": -100, "index": 4},
    ]
    batch = collate(features, pad_token_id=0)
    np.testing.assert_array_equal(batch["input_ids"], [[2, 7, 8, 3], [2, 9, 3, 0]])
    np.testing.assert_array_equal(batch["token_type_ids"], [[0, 0, 0, 0], [0, 0, 0, 0]])
    np.testing.assert_array_equal(batch["attention_mask"], [[1, 1, 1, 1], [1, 1, 1, 0]])
    np.testing.assert_array_equal(batch["labels"], [1, -100])
    np.testing.assert_array_equal(batch["index"], [10, 4])
    assert "token_mask" not in batch
    assert all(v.dtype == np.int64 for v in batch.values())


def test_collate_tagging_pads_labels_with_ignore_and_mask_with_zero():
    features = [
        {"input_ids": [2, 5, 3], "token_type_ids": [0, 0, 0], "labels": [-100, 1, -100],
         "token_mask": [0, 1, 0], "num_words": 1, "index": 0},
        {"input_ids": [2, 5, 6, 7, 3], "token_type_ids": [0, 0, 0, 0, 0], "labels": [-100, 0, -100, 2, -100],
         "token_mask": [0, 1, 0, 1, 0], "num_words": 2, "index": 1},
    ]
    batch = collate(features, pad_token_id=9)  # a non-zero pad id shows where padding went
    np.testing.assert_array_equal(batch["input_ids"], [[2, 5, 3, 9, 9], [2, 5, 6, 7, 3]])
    np.testing.assert_array_equal(batch["attention_mask"], [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    np.testing.assert_array_equal(batch["labels"], [[-100, 1, -100, -100, -100], [-100, 0, -100, 2, -100]])
    np.testing.assert_array_equal(batch["token_mask"], [[0, 1, 0, 0, 0], [0, 1, 0, 1, 0]])
    assert batch["labels"].shape == batch["input_ids"].shape == (2, 5)


def test_iterate_follows_batches():
    features = [{"input_ids": [2] * (i + 2), "token_type_ids": [0] * (i + 2), "labels": i, "index": i}
                for i in range(5)]
    out = list(iterate(features, [[3, 0], [4]], pad_token_id=0))
    assert [b["index"].tolist() for b in out] == [[3, 0], [4]]
    assert out[0]["input_ids"].shape == (2, 5)
