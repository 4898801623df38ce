"""IOB2 tag decoding shared by evaluation and serving: entity spans (seqeval strict) and constrained Viterbi."""
from __future__ import annotations

import functools
import math
from typing import List, Sequence, Tuple

import numpy as np

DECODINGS = ("viterbi", "argmax")


def entity_spans(tags: Sequence[str]) -> List[Tuple[str, int, int]]:
    """(type, first word, last word + 1) of the entities in `tags`, exactly as the metric counts them.

    seqeval strict IOB2 (the mode metrics.tagging_metrics scores in): an entity starts at B-X and continues
    over I-X; a stray I-X (after O or another type) is not an entity. Tags of B/I/O form are decoded here in
    one pass (seqeval builds an object per tag, a tenth of a millisecond per sentence when serving); any
    other tag goes to seqeval, which names it in its error.
    """
    tags = list(tags)
    if not all(t and t[0] in "BIO" for t in tags):
        return _seqeval_spans(tags)
    spans, i, n = [], 0, len(tags)
    while i < n:
        if tags[i][0] != "B":
            i += 1
            continue
        kind, end = _kind(tags[i]), i + 1
        while end < n and tags[end][0] == "I" and _kind(tags[end]) == kind:
            end += 1
        spans.append((kind, i, end))
        i = end
    return spans


def _kind(tag: str) -> str:
    return tag[1:].strip("-") or "_"  # seqeval's type of a tag: after the prefix, '_' when there is none


def _seqeval_spans(tags: List[str]) -> List[Tuple[str, int, int]]:
    from seqeval.scheme import IOB2, Entities

    if not tags:
        return []
    return [(e.tag, e.start, e.end) for e in Entities([tags], IOB2, suffix=False).entities[0]]


def spans_to_tags(spans: Sequence[Tuple[str, int, int]], length: int) -> List[str]:
    """IOB2 tags of `length` words holding exactly the entities `spans` (inverse of entity_spans)."""
    tags = ["O"] * length
    for kind, start, end in spans:
        tags[start] = f"B-{kind}"
        for i in range(start + 1, end):
            tags[i] = f"I-{kind}"
    return tags


def allowed_transitions(labels: Sequence[str]) -> Tuple[np.ndarray, np.ndarray]:
    """(start [C], transition [C, C]) boolean masks of what IOB2 allows: I-X only after B-X or I-X."""
    kinds = [(t.partition("-")[0], t.partition("-")[2]) for t in labels]
    start = np.array([p != "I" for p, _ in kinds])
    trans = np.ones((len(labels), len(labels)), dtype=bool)
    for j, (p, kind) in enumerate(kinds):
        if p == "I":
            trans[:, j] = [pi in ("B", "I") and ki == kind for pi, ki in kinds]
    return start, trans


@functools.lru_cache(maxsize=32)
def _structure(labels: Tuple[str, ...]):
    """allowed_transitions' masks, and per tag its allowed previous tags in index order."""
    start, trans = allowed_transitions(labels)
    prevs = tuple(tuple(int(k) for k in np.flatnonzero(trans[:, j])) for j in range(len(labels)))
    return start, trans, prevs


def viterbi(log_probs: np.ndarray, labels: Sequence[str]) -> List[int]:
    """The most probable tag sequence (sum of per-word log-probabilities [N, C]) among those IOB2 allows.

    When each word's best tag is unique and together they form an allowed sequence, that sequence is the
    optimum and is returned without the search (the usual case for a trained tagger). The search runs in
    plain Python over each tag's allowed predecessors, breaking ties as argmax does (the first best index):
    with a few tags, a numpy step per word costs more in call overhead than it saves.
    """
    n = log_probs.shape[0]
    if n == 0:
        return []
    start_mask, trans, prevs = _structure(tuple(labels))
    first = log_probs.argmax(-1)  # [N]
    if _greedy_allowed(first, log_probs - log_probs[np.arange(n), first][:, None], labels):
        return first.tolist()
    start = start_mask.tolist()
    tags = range(len(labels))
    anything = [len(p) == len(labels) for p in prevs]  # O and B-X may follow any tag: the overall best
    rows = np.asarray(log_probs, dtype="float64").tolist()
    score = [x if ok else -math.inf for x, ok in zip(rows[0], start)]
    back = []
    for row in rows[1:]:
        # the best allowed predecessor of each tag (an I-X whose B-X is not a label has none: -inf)
        top = max(tags, key=score.__getitem__)
        best = [top if a else max(p, key=score.__getitem__) if p else 0 for a, p in zip(anything, prevs)]
        back.append(best)
        score = [score[k] + x if p else -math.inf for k, x, p in zip(best, row, prevs)]
    path = [max(tags, key=score.__getitem__)]
    for best in reversed(back):
        path.append(best[path[-1]])
    return path[::-1]


def _greedy_allowed(first: np.ndarray, shifted: np.ndarray, labels: Sequence[str]) -> bool:
    """Whether the per-word best tags `first` [N] are the constrained optimum: IOB2 allows the sequence and each
    word's best is unique (`shifted` [N, C]: each row's scores minus its best, so the best is 0 and alone)."""
    start_mask, trans, _ = _structure(tuple(labels))
    # every row has at least one 0 (its best), so N zeros in all means one per row
    return bool(start_mask[first[0]] and trans[first[:-1], first[1:]].all()
                and np.count_nonzero(shifted == 0) == len(first))


def log_softmax(x: np.ndarray) -> np.ndarray:
    z = x - x.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def decode_rows(rows: np.ndarray, labels: Sequence[str], decoding: str) -> Tuple[List[str], List[float]]:
    """Tags and their probabilities for per-word logit rows [N, C] ("viterbi": IOB2-constrained; "argmax")."""
    if decoding not in DECODINGS:
        raise ValueError(f"decoding must be one of {DECODINGS}, got {decoding!r}")
    x = np.asarray(rows, dtype="float64")
    n = x.shape[0]
    if n == 0:
        return [], []
    # one softmax pass serves both the usual case and the search: rows shifted so each best is 0
    first = x.argmax(-1)
    shifted = x - x.max(-1, keepdims=True)
    total = np.exp(shifted).sum(-1)
    if decoding == "argmax" or _greedy_allowed(first, shifted, labels):
        return [labels[k] for k in first.tolist()], (1.0 / total).tolist()  # each best tag's e^0 / total
    logp = shifted - np.log(total)[:, None]
    path = viterbi(logp, labels)
    return [labels[k] for k in path], np.exp(logp[np.arange(n), np.asarray(path, dtype=np.intp)]).tolist()
