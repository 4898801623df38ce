"""IOB2 tag decoding shared by evaluation and serving: entity spans (seqeval strict) and constrained Viterbi."""
from __future__ import annotations

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


def viterbi(log_probs: np.ndarray, labels: Sequence[str]) -> List[int]:
    """The most probable tag sequence (sum of per-word log-probabilities [N, C]) among those IOB2 allows."""
    n = log_probs.shape[0]
    if n == 0:
        return []
    start, trans = allowed_transitions(labels)
    penalty = np.where(trans, 0.0, -np.inf)  # [C_prev, C]
    score = np.where(start, log_probs[0], -np.inf)  # [C]
    back = np.zeros((n, log_probs.shape[1]), dtype=np.int64)
    for i in range(1, n):
        total = score[:, None] + penalty  # [C_prev, C]
        back[i] = total.argmax(0)
        score = total.max(0) + log_probs[i]
    path = [int(score.argmax())]
    for i in range(n - 1, 0, -1):
        path.append(int(back[i, path[-1]]))
    return path[::-1]


def log_softmax(x: np.ndarray) -> np.ndarray:
    z = x - x.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def decode_rows(rows: np.ndarray, labels: Sequence[str], decoding: str) -> Tuple[List[str], List[float]]:
    """Tags and their probabilities for per-word logit rows [N, C] ("viterbi": IOB2-constrained; "argmax")."""
    if decoding not in DECODINGS:
        raise ValueError(f"decoding must be one of {DECODINGS}, got {decoding!r}")
    logp = log_softmax(np.asarray(rows, dtype="float64"))
    path = viterbi(logp, labels) if decoding == "viterbi" else [int(k) for k in logp.argmax(-1)]
    return [labels[k] for k in path], [float(np.exp(logp[i, k])) for i, k in enumerate(path)]
