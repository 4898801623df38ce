"""Word windows: a tagged sentence longer than the model reads as overlapping windows, each word from its best one."""
from __future__ import annotations

import math
from typing import List, Optional, Sequence, Tuple

import numpy as np


def make_windows(lengths: Sequence[int], budget: int) -> List[Tuple[int, int]]:
    """Word windows [a, b) whose piece counts fit `budget`; consecutive windows overlap by ~budget/2 pieces."""
    n = len(lengths)
    if n == 0:
        return [(0, 0)]
    stride = max(1, budget // 2)
    windows = []
    a = 0
    while True:
        b, used = a, 0
        while b < n and used + lengths[b] <= budget:
            used += lengths[b]
            b += 1
        b = max(b, a + 1)  # callers cap each word at `budget` pieces, so this only guards bad input
        windows.append((a, b))
        if b >= n:
            return windows
        nxt, moved = a, 0
        while nxt < b and moved + lengths[nxt] <= stride:
            moved += lengths[nxt]
            nxt += 1
        a = max(nxt, a + 1)


def best_window(lengths: Sequence[int], windows: Sequence[Tuple[int, int]]) -> List[Tuple[int, int]]:
    """For each word, (window index, position of the word inside that window's word list).

    A word's context in a window is the number of pieces on its poorer side; a side that reaches the
    start or end of the text counts as unlimited. Ties go to the earlier window.
    """
    n = len(lengths)
    if len(windows) == 1:  # a sentence that fits one window: every word is read there (the usual case)
        return [(0, w) for w in range(n)]
    cum = np.concatenate([[0], np.cumsum(lengths)]) if n else np.zeros(1)
    best: List[Optional[Tuple[float, int, int]]] = [None] * n
    for k, (a, b) in enumerate(windows):
        for w in range(a, b):
            left = math.inf if a == 0 else cum[w] - cum[a]
            right = math.inf if b == n else cum[b] - cum[w + 1]
            score = min(left, right)
            if best[w] is None or score > best[w][0]:
                best[w] = (score, k, w - a)
    return [(k, pos) for _, k, pos in best]
