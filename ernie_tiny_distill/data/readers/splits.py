"""Seeded train/dev splits, stratified by label when every example has one."""
from __future__ import annotations

import math
import numbers
import random
from typing import Dict, List, Tuple

from ernie_tiny_distill.data.readers.labels import sorted_labels
from ernie_tiny_distill.errors import UserError


def _dev_count(dev_size, n: int) -> int:
    if isinstance(dev_size, bool) or not isinstance(dev_size, (numbers.Integral, float)):
        raise UserError(f"dev_size must be an int count or a float fraction in (0, 1); got {dev_size!r}")
    if isinstance(dev_size, float):
        if not 0.0 < dev_size < 1.0:
            raise UserError(f"dev_size as a fraction must be in (0, 1); got {dev_size!r}")
        count = max(1, round(dev_size * n))
    else:
        count = int(dev_size)
    if n < 2:
        raise UserError(f"cannot split {n} example(s) into train and dev: need at least 2")
    if count <= 0 or count >= n:
        raise UserError(
            f"dev_size {dev_size!r} gives {count} dev example(s) out of {n}: expected between 1 and {n - 1}, "
            "so that both train and dev are non-empty"
        )
    return count


def is_stratified(examples: list) -> bool:
    """Whether split_train_dev stratifies these examples: each has one string label (classification)."""
    return bool(examples) and all(isinstance(getattr(ex, "label", None), str) for ex in examples)


def split_train_dev(examples: list, dev_size, seed: int) -> Tuple[list, list]:
    """Seeded train/dev split, stratified by label for labeled examples; both parts keep the input order."""
    n = len(examples)
    dev_n = _dev_count(dev_size, n)
    rng = random.Random(seed)
    labels = [getattr(ex, "label", None) for ex in examples]
    if is_stratified(examples):
        by_label: Dict[str, List[int]] = {}
        for i, label in enumerate(labels):
            by_label.setdefault(label, []).append(i)
        classes = sorted_labels(by_label)
        # Largest-remainder apportionment: each class gets its share of the dev set, rounded fairly.
        quota = {c: dev_n * len(by_label[c]) / n for c in classes}
        take = {c: math.floor(quota[c]) for c in classes}
        by_remainder = sorted(classes, key=lambda c: -(quota[c] - take[c]))  # stable: ties keep label order
        for c in by_remainder[: dev_n - sum(take.values())]:
            take[c] += 1
        dev_idx = []
        for c in classes:
            members = list(by_label[c])
            rng.shuffle(members)
            dev_idx.extend(members[: take[c]])
    else:
        order = list(range(n))
        rng.shuffle(order)
        dev_idx = order[:dev_n]
    dev_set = set(dev_idx)
    train = [examples[i] for i in range(n) if i not in dev_set]
    dev = [examples[i] for i in sorted(dev_set)]
    return train, dev
