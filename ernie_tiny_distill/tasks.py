"""Task adapters: everything task-specific (encoding, label alignment, head, distilled logits, metric) lives here."""
from __future__ import annotations

import logging
from typing import Dict, List, Sequence, Tuple

import numpy as np
import paddle
from paddlenlp.transformers import ErnieForSequenceClassification, ErnieForTokenClassification, ErnieModel

from . import metrics
from .examples import TaggedSentence, TextExample

logger = logging.getLogger(__name__)

IGNORE_INDEX = -100  # label of positions that take no loss (padding, special tokens, non-first sub-words)

Feature = Dict[str, object]  # input_ids, token_type_ids, labels, (token_mask), index


class Task:
    """Base adapter. Subclasses define how examples become features and logits become predictions."""

    name = "base"
    metric_name = "loss"
    greater_is_better = False
    model_class = ErnieModel

    def __init__(self, tokenizer, labels: Sequence[str], max_seq_length: int, truncation: str = "head"):
        self.tokenizer = tokenizer
        self.labels = list(labels)
        self.label_to_id = {label: i for i, label in enumerate(self.labels)}
        self.max_seq_length = max_seq_length
        self.truncation = truncation

    @property
    def num_labels(self) -> int:
        return len(self.labels)

    # -- encoding
    def encode(self, examples: Sequence, offset: int = 0) -> List[Feature]:
        raise NotImplementedError

    def _wrap(self, piece_ids: List[int]) -> Tuple[List[int], List[int]]:
        ids = [self.tokenizer.cls_token_id] + piece_ids + [self.tokenizer.sep_token_id]
        return ids, [0] * len(ids)

    def _pieces(self, text: str) -> List[int]:
        return self.tokenizer.convert_tokens_to_ids(self.tokenizer.tokenize(text))

    # -- model outputs
    def kd_rows(self, logits: paddle.Tensor, batch: Dict[str, paddle.Tensor]) -> paddle.Tensor:
        """The [N, C] rows of logits that knowledge distillation compares (one per example or per word)."""
        raise NotImplementedError

    def kd_rows_numpy(self, logits: np.ndarray, feature: Feature) -> np.ndarray:
        """Same rows for one example's logits in numpy (for the teacher-logit cache), in the same order."""
        raise NotImplementedError

    def kd_row_count(self, feature: Feature) -> int:
        """How many rows kd_rows_numpy gives for this feature (features of one example encoded at two lengths
        must agree for a teacher at another length to teach it)."""
        raise NotImplementedError

    def predict(self, logits: np.ndarray, feature: Feature):
        raise NotImplementedError

    def evaluate(self, predictions: list, examples: Sequence) -> Dict[str, object]:
        raise NotImplementedError

    def chance_level(self, examples: Sequence) -> float:
        """The metric a trivial predictor reaches; a teacher at this level has nothing to teach."""
        raise NotImplementedError

    def metadata(self) -> Dict[str, object]:
        return {
            "task": self.name,
            "labels": self.labels,
            "max_seq_length": self.max_seq_length,
            "truncation": self.truncation,
            "model_class": self.model_class.__name__,
        }


class ClassificationTask(Task):
    """One label per text: [CLS] pooled output -> linear head; KD on the per-example logits."""

    name = "classification"
    metric_name = "accuracy"
    greater_is_better = True
    model_class = ErnieForSequenceClassification

    def truncate(self, piece_ids: List[int]) -> List[int]:
        budget = self.max_seq_length - 2  # [CLS] and [SEP]
        if len(piece_ids) <= budget:
            return piece_ids
        if self.truncation == "head_tail":
            # Sun et al. (2019): the start and the end of a long review carry most of its sentiment
            head = budget // 4
            return piece_ids[:head] + piece_ids[len(piece_ids) - (budget - head) :]
        return piece_ids[:budget]

    def encode(self, examples: Sequence[TextExample], offset: int = 0) -> List[Feature]:
        features = []
        truncated = 0
        for i, ex in enumerate(examples):
            pieces = self._pieces(ex.text)
            truncated += len(pieces) > self.max_seq_length - 2
            input_ids, token_type_ids = self._wrap(self.truncate(pieces))
            label = IGNORE_INDEX if ex.label is None else self.label_to_id[ex.label]
            features.append({"input_ids": input_ids, "token_type_ids": token_type_ids, "labels": label, "index": offset + i})
        if truncated:
            logger.info("%d of %d texts were longer than %d tokens and were truncated (%s)",
                        truncated, len(examples), self.max_seq_length, self.truncation)
        return features

    def kd_rows(self, logits, batch):
        return logits  # [B, C]

    def kd_rows_numpy(self, logits, feature):
        return logits[None, :]  # [1, C]

    def kd_row_count(self, feature):
        return 1

    def predict(self, logits, feature):
        return self.labels[int(np.argmax(logits))]

    def evaluate(self, predictions, examples):
        return metrics.classification_metrics([ex.label for ex in examples], predictions, self.labels)

    def chance_level(self, examples):
        counts = {}
        for ex in examples:
            counts[ex.label] = counts.get(ex.label, 0) + 1
        return max(counts.values()) / max(1, len(examples))


class TaggingTask(Task):
    """One IOB2 tag per word. Each word is scored at its first sub-word; other pieces are ignored (-100).

    `token_mask` marks those first sub-words, so KD and CE cover real words only, labeled or not.
    """

    name = "ner"
    metric_name = "f1"
    greater_is_better = True
    model_class = ErnieForTokenClassification

    def word_pieces(self, words: Sequence[str]) -> List[List[int]]:
        pieces = []
        for word in words:
            ids = self._pieces(word)
            # a word the tokenizer drops entirely (control or zero-width characters) still needs a position
            pieces.append(ids or [self.tokenizer.unk_token_id])
        return pieces

    def encode(self, examples: Sequence[TaggedSentence], offset: int = 0) -> List[Feature]:
        features = []
        cut_words = cut_sentences = 0
        budget = self.max_seq_length - 2
        for i, ex in enumerate(examples):
            piece_ids, labels, token_mask = [], [IGNORE_INDEX], [0]  # position 0 is [CLS]
            kept = 0
            for w, pieces in enumerate(self.word_pieces(ex.tokens)):
                if len(piece_ids) + len(pieces) > budget:
                    break
                piece_ids += pieces
                tag = IGNORE_INDEX if ex.tags is None else self.label_to_id[ex.tags[w]]
                labels += [tag] + [IGNORE_INDEX] * (len(pieces) - 1)
                token_mask += [1] + [0] * (len(pieces) - 1)
                kept += 1
            if kept < len(ex.tokens):
                cut_words += len(ex.tokens) - kept
                cut_sentences += 1
            input_ids, token_type_ids = self._wrap(piece_ids)
            features.append({
                "input_ids": input_ids,
                "token_type_ids": token_type_ids,
                "labels": labels + [IGNORE_INDEX],  # [SEP]
                "token_mask": token_mask + [0],
                "num_words": len(ex.tokens),
                "index": offset + i,
            })
        if cut_words:
            # never silently: these words are predicted "O" at evaluation and so count as errors
            logger.warning("%d words in %d sentences did not fit in max_seq_length=%d and were cut; "
                           "they are predicted as 'O'", cut_words, cut_sentences, self.max_seq_length)
        return features

    def kd_rows(self, logits, batch):
        mask = batch["token_mask"].astype("bool")  # [B, L]
        return paddle.masked_select(logits, mask.unsqueeze(-1)).reshape([-1, logits.shape[-1]])  # [N_words, C]

    def kd_rows_numpy(self, logits, feature):
        mask = np.asarray(feature["token_mask"], dtype=bool)
        return logits[: len(mask)][mask]  # [n_words, C]

    def kd_row_count(self, feature):
        return int(np.count_nonzero(feature["token_mask"]))

    def predict(self, logits, feature):
        rows = self.kd_rows_numpy(logits, feature)
        tags = [self.labels[int(k)] for k in rows.argmax(-1)]
        return tags + ["O"] * (feature["num_words"] - len(tags))  # words cut by truncation

    def evaluate(self, predictions, examples):
        return metrics.tagging_metrics([ex.tags for ex in examples], predictions)

    def chance_level(self, examples):
        return 0.0  # predicting all "O" finds no entity: F1 = 0


class GeneralTask(Task):
    """Stage 1 (general distillation) on unlabeled text: no head, no labels; tagged sentences are joined."""

    name = "general"
    metric_name = "loss"
    greater_is_better = False
    model_class = ErnieModel

    def __init__(self, tokenizer, max_seq_length: int):
        super().__init__(tokenizer, [], max_seq_length)

    def encode(self, examples, offset: int = 0) -> List[Feature]:
        features = []
        for i, ex in enumerate(examples):
            text = ex.text if isinstance(ex, TextExample) else " ".join(ex.tokens)
            input_ids, token_type_ids = self._wrap(self._pieces(text)[: self.max_seq_length - 2])
            features.append({"input_ids": input_ids, "token_type_ids": token_type_ids, "labels": IGNORE_INDEX,
                             "index": offset + i})
        return features


def make_task(name: str, tokenizer, labels: Sequence[str], max_seq_length: int, truncation: str = "head") -> Task:
    if name == "classification":
        return ClassificationTask(tokenizer, labels, max_seq_length, truncation)
    if name == "ner":
        return TaggingTask(tokenizer, labels, max_seq_length, truncation)
    raise ValueError(f"unknown task {name!r}")
