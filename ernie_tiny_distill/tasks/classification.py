"""Classification: one label per text, long texts truncated or read as pooled windows."""
from __future__ import annotations

import logging
from typing import List, Sequence, Tuple

import numpy as np
from paddlenlp.transformers import ErnieForSequenceClassification

from ernie_tiny_distill.data.examples import TextExample
from ernie_tiny_distill.tasks import metrics
from ernie_tiny_distill.tasks.base import IGNORE_INDEX, Feature, Task

logger = logging.getLogger(__name__)


class ClassificationTask(Task):
    """One label per text: [CLS] pooled output -> linear head; KD on the per-example logits."""

    name = "classification"
    metric_name = "accuracy"
    greater_is_better = True
    model_class = ErnieForSequenceClassification

    data_formats = ("demo", "imdb", "csv", "tsv", "jsonl", "label_text")
    demo_prefix = "sentiment"
    supports_windows = True
    whole_text_labels = True

    @classmethod
    def read_labeled_file(cls, path):
        from ernie_tiny_distill.data import readers

        return readers.read_classification_file(path)

    @staticmethod
    def example_labels(examples):
        return [ex.label for ex in examples]

    @staticmethod
    def slice_logits(logits, row, length):
        return logits[row]  # [C]

    @staticmethod
    def head_flops(seq_len, hidden, num_labels):
        return 2 * hidden * hidden + 2 * hidden * num_labels  # pooler on [CLS] + classifier

    def kept_ends(self) -> Tuple[int, int]:
        """How many pieces truncation keeps from the start and from the end of a long text."""
        budget = self.max_seq_length - 2  # [CLS] and [SEP]
        if self.truncation == "head_tail":
            # Sun et al. (2019): the start and the end of a long review carry most of its sentiment
            return budget // 4, budget - budget // 4
        return budget, 0

    def truncate(self, piece_ids: List[int]) -> List[int]:
        head, tail = self.kept_ends()
        if len(piece_ids) <= head + tail:
            return piece_ids
        return piece_ids[:head] + piece_ids[len(piece_ids) - tail:]

    def window_starts(self, n_pieces: int) -> List[int]:
        """Where each window of max_seq_length - 2 pieces starts: every `stride` pieces until one reaches the
        end; over max_windows, the first max_windows - 1 windows and the one that ends the text."""
        budget = self.max_seq_length - 2
        stride = self.long_document.get("stride") or max(1, budget // 2)
        starts = [0]
        while starts[-1] + budget < n_pieces:
            starts.append(starts[-1] + stride)
        cap = self.long_document.get("max_windows")
        if cap and len(starts) > cap:
            starts = starts[:cap - 1] + [n_pieces - budget] if cap > 1 else [0]
        return starts

    def document_feature(self, pieces: List[int]) -> Feature:
        """Model inputs of one text from all its pieces: truncated (input_ids), or with long_document the
        windows too (`windows`: one {input_ids, token_type_ids} each; input_ids is then their concatenation,
        which sorts documents by total length and identifies the windows in the teacher-logit cache)."""
        budget = self.max_seq_length - 2
        if self.long_document is None:
            input_ids, token_type_ids = self.wrap(self.truncate(pieces))
            return {"input_ids": input_ids, "token_type_ids": token_type_ids, "truncated": len(pieces) > budget}
        starts = self.window_starts(len(pieces))
        windows = []
        for start in starts:
            ids, types = self.wrap(pieces[start:start + budget])
            windows.append({"input_ids": ids, "token_type_ids": types})
        # pieces no window reads (max_windows)
        gap = starts[-1] + budget < len(pieces) or any(b > a + budget for a, b in zip(starts, starts[1:]))
        return {"input_ids": [t for w in windows for t in w["input_ids"]],
                "token_type_ids": [t for w in windows for t in w["token_type_ids"]],
                "windows": windows, "truncated": gap}

    def text_feature(self, text: str) -> Feature:
        """document_feature of a raw text; under truncation only the kept ends of a long text are tokenized."""
        if self.long_document is not None:
            return self.document_feature(self.pieces(text))
        pieces, truncated = self.wordpieces.ends(text, *self.kept_ends())
        input_ids, token_type_ids = self.wrap(pieces)
        return {"input_ids": input_ids, "token_type_ids": token_type_ids, "truncated": truncated}

    def encode(self, examples: Sequence[TextExample], offset: int = 0) -> List[Feature]:
        features = []
        truncated = windowed = 0
        if self.long_document is not None:  # windows read every piece: one batched call
            documents = [self.document_feature(p) for p in self.wordpieces.many([ex.text for ex in examples])]
        else:
            documents = [self.text_feature(ex.text) for ex in examples]
        for i, (ex, feature) in enumerate(zip(examples, documents)):
            truncated += feature.pop("truncated")
            windowed += len(feature.get("windows", ())) > 1
            feature["labels"] = IGNORE_INDEX if ex.label is None else self.label_to_id[ex.label]
            feature["index"] = offset + i
            features.append(feature)
        if windowed:
            logger.info("%d of %d texts were longer than %d tokens and are read as windows (%s pooling)",
                        windowed, len(examples), self.max_seq_length, self.long_document["pooling"])
        if truncated:
            how = "windows capped at max_windows" if self.long_document else self.truncation
            logger.info("%d of %d texts were longer than %d tokens and were truncated (%s)",
                        truncated, len(examples), self.max_seq_length, how)
        return features

    def kd_rows(self, logits, batch):
        return logits  # [B, C]

    def kd_rows_numpy(self, logits, feature):
        return logits[None, :]  # [1, C]

    def kd_row_count(self, feature):
        return 1

    def predict(self, logits, feature):
        return self.labels[int(np.argmax(logits))]

    def predict_rows(self, rows, feature):
        return self.predict(rows[0], feature)

    def example_text(self, example):
        return example.text

    @staticmethod
    def request_text(example):
        return example.text

    def feature_rows(self, logits, features):
        return logits  # [B, C]

    def evaluate(self, predictions, examples):
        return metrics.classification_metrics([ex.label for ex in examples], predictions, self.labels)

    def post_processor(self, predictor):
        from ernie_tiny_distill.tasks.serving import LabelServing

        return LabelServing(predictor)

    def serving_features(self, encoder, texts):
        features = [encoder.classification_feature(t) for t in texts]
        return [w for f in features for w in f.get("windows", [f])]  # model inputs: one row per window

    trivial_predictor = "always predicting the most frequent label"

    def chance_level(self, examples):
        counts = {}
        for ex in examples:
            counts[ex.label] = counts.get(ex.label, 0) + 1
        return max(counts.values()) / max(1, len(examples))
