"""Serving post-processors, one per task: raw items in, served results (labels or entities) out, and the task
metric of what is served. The Predictor chooses one at load (Task.post_processor) and calls only it."""
from __future__ import annotations

import logging
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from ernie_tiny_distill.deploy.words import is_blank
from ernie_tiny_distill.errors import UserError
from ernie_tiny_distill.tasks import decoding as iob

logger = logging.getLogger(__name__)

EMPTY_TEXT = "empty text"
NON_FINITE = "non-finite model output"
Item = Union[str, Sequence[str]]


def softmax(x: np.ndarray) -> np.ndarray:
    z = x - x.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


def check_items(items, *, words_allowed: bool) -> List[Item]:
    """The items of one predict() call: strings, or (when the task reads them) lists of word strings."""
    if isinstance(items, str):
        raise UserError("predict() takes a list of texts, not a single string")
    items = list(items)
    for i, t in enumerate(items):
        if isinstance(t, str):
            continue
        if words_allowed and isinstance(t, (list, tuple)) and all(isinstance(w, str) for w in t):
            continue
        expected = "a string or a list of word strings" if words_allowed else "a string"
        raise UserError(f"item {i} is {type(t).__name__}, expected {expected}")
    return items


def warn_non_finite(i: int) -> None:
    logger.warning("item %d: the model output is not finite (NaN or inf); that item fails", i)


class LabelServing:
    """Classification: a label and its probabilities per text (windows pooled, a document table added)."""

    accepts_words = False  # requests carry texts only

    def __init__(self, predictor):
        self.predictor = predictor
        # truncation is reported at INFO on the first call that truncates, then at DEBUG: a service calling
        # predict() once per request would otherwise log a line per long request
        self._truncation_reported = False

    def __call__(self, texts: Sequence[str]) -> List[Dict]:
        p = self.predictor
        keep = [i for i, t in enumerate(texts) if not is_blank(t)]
        with p.stage("tokenize"):
            features = [p.encoder.classification_feature(texts[i]) for i in keep]
        self._report_truncation(features)
        results: List[Dict] = [{"label": None, "probabilities": None, "error": EMPTY_TEXT} for _ in texts]
        logits_per_text = p.document_logits(features)
        with p.stage("decode"):
            for i, logits in zip(keep, logits_per_text):
                if not np.isfinite(logits).all():
                    warn_non_finite(i)
                    results[i] = {"label": None, "probabilities": None, "error": NON_FINITE}
                    continue
                probs = softmax(logits.astype("float64"))
                results[i] = {"label": p.labels[int(np.argmax(logits))],
                              "probabilities": {label: float(q) for label, q in zip(p.labels, probs)}}
        return results

    def _report_truncation(self, features: Sequence[Dict]) -> None:
        truncated = sum(f["truncated"] for f in features)
        if not truncated:
            return
        encoder = self.predictor.encoder
        how = "windows capped at max_windows" if encoder.task.long_document else encoder.truncation
        level = logging.DEBUG if self._truncation_reported else logging.INFO
        self._truncation_reported = True
        logger.log(level, "%d of %d texts were longer than %d tokens and were truncated (%s)%s", truncated,
                   len(features), encoder.max_seq_length, how,
                   "" if level == logging.DEBUG else "; later calls report this at DEBUG level")

    def score(self, examples: Sequence) -> Dict[str, object]:
        """The task metric of the labels served for labeled examples."""
        predicted = [r["label"] for r in self([ex.text for ex in examples])]
        return self.predictor.encoder.task.evaluate(predicted, examples)


class EntityServing:
    """NER: entities of raw texts (character offsets) or of pre-split words, every word read in a word window."""

    accepts_words = True  # requests may carry pre-split words ("tokens")

    def __init__(self, predictor):
        self.predictor = predictor

    def tag_words(self, sentences: Sequence[Sequence[str]]) -> Tuple[List[Optional[List[str]]], List[List[float]]]:
        """IOB2 tags and their probabilities for pre-split words (every word gets a tag; a blank word O without
        being read). A sentence whose model output is not finite gets None for its tags."""
        p, task = self.predictor, self.predictor.encoder.task
        with p.stage("tokenize"):
            features, plans = task.windowed(sentences, p.encoder.word_pieces)
        logits = p.logits(features)
        with p.stage("decode"):
            tags, scores = task.windowed_tags(logits, features, plans)
        for n, sentence_tags in enumerate(tags):
            if sentence_tags is None:
                warn_non_finite(n)
        return tags, scores

    def predict_tokens(self, sentences: Sequence[Sequence[str]]) -> List[List[str]]:
        """IOB2 tags for pre-tokenized sentences (e.g. CoNLL words), one per word, none lost to length."""
        for i, words in enumerate(sentences):
            if isinstance(words, str) or not all(isinstance(w, str) for w in words):
                raise UserError(f"item {i}: predict_tokens takes lists of word strings")
        tags = self.tag_words(sentences)[0]
        for i, t in enumerate(tags):
            if t is None:
                raise UserError(f"sentence {i}: the model output is not finite (NaN or inf)")
        return tags

    def __call__(self, items: Sequence[Item]) -> List[Dict]:
        p = self.predictor
        with p.stage("tokenize"):
            split = [p.encoder.words(t) if isinstance(t, str) else (list(t), None) for t in items]
        tags, scores = self.tag_words([words for words, _ in split])
        results = []
        with p.stage("decode"):
            for item, (words, offsets), sentence_tags, sentence_scores in zip(items, split, tags, scores):
                if sentence_tags is None:
                    results.append({"entities": [], "error": NON_FINITE})
                    continue
                results.append({"entities": _entities(p.encoder.task, item, words, offsets, sentence_tags,
                                                      sentence_scores)})
        return results

    def score(self, examples: Sequence) -> Dict[str, object]:
        """The task metric of the entities served for the gold words (not a separate tag path)."""
        served = self([list(ex.tokens) for ex in examples])
        predicted = [iob.spans_to_tags([(e["type"], e["start_token"], e["end_token"]) for e in r["entities"]],
                                       len(ex.tokens)) for r, ex in zip(served, examples)]
        return self.predictor.encoder.task.evaluate(predicted, examples)


def _entities(task, item: Item, words: List[str], offsets, tags: List[str], scores: List[float]) -> List[Dict]:
    """One entity per decoded word span: its text is those words (or their characters), never more."""
    entities = []
    for kind, a, b in task.entities(tags):
        entity = {"type": kind, "text": " ".join(w for w in words[a:b] if not is_blank(w)),
                  "start_token": a, "end_token": b, "score": float(np.mean(scores[a:b]))}
        if offsets is not None:
            start, end = offsets[a][0], offsets[b - 1][1]
            entity.update(text=item[start:end], start=start, end=end)
        entities.append(entity)
    return entities
