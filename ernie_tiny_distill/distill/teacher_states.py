"""Teacher outputs the task-stage KD terms read, kept per example: the frozen teacher runs once, not per epoch."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import paddle

# An attention term: (student layer i >= 1, teacher hidden-state index j >= 1, teacher heads matched to the student's
# heads one by one, or None = compare head means). Only these maps are kept: the selected heads, or their mean.
AttentionTerm = Tuple[int, int, Optional[List[int]]]


@dataclass
class TeacherTargets:
    """What the loss terms read from the teacher for one padded batch (online or from the cache)."""

    rows: Optional[paddle.Tensor] = None  # [N, C] logit rows in Task.kd_rows order (None: no kd term / cached rows)
    hidden: Dict[int, paddle.Tensor] = field(default_factory=dict)  # teacher hidden-state index -> [R, L, H]
    attention: List[paddle.Tensor] = field(default_factory=list)  # per AttentionTerm: [R, h, L, L] (h=1: head mean)


def select_heads(attention: paddle.Tensor, heads: Optional[Sequence[int]]) -> paddle.Tensor:
    """[R, heads_T, L, L] -> the matched heads [R, h, L, L], or the mean over heads [R, 1, L, L]."""
    t = attention.astype("float32")
    if heads is None:
        return t.mean(axis=1, keepdim=True)
    return paddle.index_select(t, paddle.to_tensor(list(heads), dtype="int64"), axis=1)


def row_owners(batch: Dict[str, paddle.Tensor]) -> np.ndarray:
    """For each model row of the batch, the position of its feature in the batch (a windowed document has one
    row per window, batching.collate's `doc`)."""
    if "doc" in batch:
        return batch["doc"].numpy()
    return np.arange(int(batch["input_ids"].shape[0]))


ROW_KEYS = ("input_ids", "token_type_ids", "attention_mask")  # one row per model row (window); the rest per feature


def sub_batch(batch: Dict[str, paddle.Tensor], positions: Sequence[int]) -> Dict[str, paddle.Tensor]:
    """The batch restricted to the features at `positions` (ascending) and their window rows, same padding."""
    owners = row_owners(batch)
    rows = np.flatnonzero(np.isin(owners, positions))
    out = {}
    for key, value in batch.items():
        if key == "doc":
            out[key] = paddle.to_tensor(np.searchsorted(positions, owners[rows]).astype("int64"))
        else:
            picked = rows if key in ROW_KEYS else np.asarray(positions)
            out[key] = paddle.index_select(value, paddle.to_tensor(picked, dtype="int64"), axis=0)
    return out


def kd_row_owners(task, pooled_logits: paddle.Tensor, batch: Dict[str, paddle.Tensor]) -> np.ndarray:
    """The batch position of each row Task.kd_rows picks from `pooled_logits` [B, ..., C] (any task: kd_rows is
    applied to a tensor of that shape holding each feature's batch position)."""
    shape = list(pooled_logits.shape)
    position = paddle.arange(shape[0], dtype="float32").reshape([-1] + [1] * (len(shape) - 1))
    return task.kd_rows(paddle.expand(position, shape), batch).numpy()[:, 0].astype("int64")


def estimate_bytes(features: Sequence[dict], row_counts: Sequence[int], hidden_layers: int, hidden_size: int,
                   attention_maps: int, num_labels: int) -> int:
    """float32 bytes of the cache once every feature is in it: per model row of length L, hidden_layers·L·H
    states and attention_maps·L² probabilities; per feature, its KD logit rows (row_counts[i] x num_labels)."""
    total = 0
    for feature, n_rows in zip(features, row_counts):
        for row in feature.get("windows", [feature]):
            length = len(row["input_ids"])
            total += hidden_layers * length * hidden_size + attention_maps * length * length
        total += n_rows * num_labels
    return 4 * total


class TeacherStates:
    """Per training feature (key: its `index`): the teacher's KD logit rows [n, C] and, per model row (window),
    the mapped layers' hidden states [n_hidden, L, H] and the used attention maps [n_maps, L, L], trimmed to the
    row's real length L. Batches of features all seen before are served from here, padded to the batch's length
    with zeros (the losses' masks exclude padded positions: padded queries are masked out, padded keys carry
    probability 0, exactly as the teacher's -1e4 attention mask gives them).

    In memory only: a run resumed after a kill starts with an empty cache and recomputes each example the first
    time it meets it again, so its results are those of an uninterrupted run."""

    def __init__(self, hidden_keys: Sequence[int], attention_sizes: Sequence[int], with_rows: bool):
        self.hidden_keys = list(hidden_keys)  # teacher hidden-state indices, in storage order
        self.attention_sizes = list(attention_sizes)  # maps (heads) per attention term, in storage order
        self.with_rows = with_rows
        self.entries: Dict[int, tuple] = {}  # index -> (rows [n, C] | None, [(hidden, attention) per window])

    def __len__(self) -> int:
        return len(self.entries)

    def missing(self, indices: Sequence[int]) -> List[int]:
        """Batch positions of the features not cached yet."""
        return [b for b, i in enumerate(indices) if int(i) not in self.entries]

    def store(self, batch: Dict[str, paddle.Tensor], targets: TeacherTargets,
              row_owner: Optional[np.ndarray] = None) -> None:
        """Keep each not yet cached feature's part of an online batch (copied, so the batch can be freed);
        row_owner [N]: the batch position of each KD logit row (kd_row_owners)."""
        indices = batch["index"].numpy()
        owners = row_owners(batch)
        lengths = batch["attention_mask"].numpy().sum(axis=1)
        hidden = np.stack([targets.hidden[j].astype("float32").numpy() for j in self.hidden_keys], axis=1) \
            if self.hidden_keys else None  # [R, n_hidden, L, H]
        attention = np.concatenate([a.numpy() for a in targets.attention], axis=1) \
            if self.attention_sizes else None  # [R, n_maps, L, L]
        if self.with_rows:
            rows = targets.rows.astype("float32").numpy()  # [N, C]
        for b, index in enumerate(indices):
            if int(index) in self.entries:
                continue
            windows = []
            for r in np.flatnonzero(owners == b):
                n = int(lengths[r])
                windows.append((None if hidden is None else hidden[r, :, :n].copy(),
                                None if attention is None else attention[r, :, :n, :n].copy()))
            feature_rows = rows[row_owner == b].copy() if self.with_rows else None
            self.entries[int(index)] = (feature_rows, windows)

    def gather(self, batch: Dict[str, paddle.Tensor]) -> TeacherTargets:
        """The targets of a batch whose features are all cached, padded to the batch's length."""
        indices = batch["index"].numpy()
        owners = row_owners(batch)
        n_rows, length = (int(d) for d in batch["input_ids"].shape)
        entries = [self.entries[int(i)] for i in indices]
        windows = [None] * n_rows
        seen = [0] * len(indices)
        for r, b in enumerate(owners):  # the k-th row of feature b is its k-th window
            windows[r] = entries[b][1][seen[b]]
            seen[b] += 1
        targets = TeacherTargets()
        if self.with_rows:
            targets.rows = paddle.to_tensor(np.concatenate([e[0] for e in entries], axis=0))  # [N, C]
        for k, j in enumerate(self.hidden_keys):
            width = windows[0][0].shape[-1]
            padded = np.zeros([n_rows, length, width], dtype="float32")  # [R, L, H]
            for r, (hidden, _) in enumerate(windows):
                padded[r, :hidden.shape[1]] = hidden[k]
            targets.hidden[j] = paddle.to_tensor(padded)
        start = 0
        for size in self.attention_sizes:
            padded = np.zeros([n_rows, size, length, length], dtype="float32")  # [R, h, L, L]
            for r, (_, attention) in enumerate(windows):
                n = attention.shape[-1]
                padded[r, :, :n, :n] = attention[start:start + size]
            targets.attention.append(paddle.to_tensor(padded))
            start += size
        return targets
