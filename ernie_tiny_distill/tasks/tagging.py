"""Tagging (NER): one IOB2 tag per word, scored at its first sub-word."""
from __future__ import annotations

import logging
import os
from typing import List, Optional, Sequence, Tuple

import numpy as np
import paddle
from paddlenlp.transformers import ErnieForTokenClassification

from ernie_tiny_distill.data.examples import TaggedSentence
from ernie_tiny_distill.deploy.words import is_blank
from ernie_tiny_distill.tasks import casing
from ernie_tiny_distill.tasks import decoding as iob
from ernie_tiny_distill.tasks import metrics
from ernie_tiny_distill.tasks.base import IGNORE_INDEX, Feature, Task
from ernie_tiny_distill.tasks.windows import best_window, make_windows

logger = logging.getLogger(__name__)


class TaggingTask(Task):
    """One IOB2 tag per word. Each word is scored at its first sub-word; other pieces are ignored (-100).

    `token_mask` marks those first sub-words, so KD and CE cover real words only, labeled or not.
    """

    name = "ner"
    metric_name = "f1"
    greater_is_better = True
    model_class = ErnieForTokenClassification
    decodings = iob.DECODINGS
    supports_case_ids = True

    data_formats = ("demo", "conll", "msra")
    demo_prefix = "ner"

    @classmethod
    def read_labeled_file(cls, path):
        from ernie_tiny_distill.data import readers

        return readers.read_conll(path)

    @classmethod
    def unlabeled_example(cls, text):
        return TaggedSentence(tokens=text.split())  # tagging models need words: split on whitespace

    @classmethod
    def augmented_transfer_set(cls, train, count, seed, embeddings=None):
        from ernie_tiny_distill.data.augment import augmented_transfer_set

        return augmented_transfer_set(train, count, seed=seed), "mention and label-wise word replacement"

    @classmethod
    def calibration_texts(cls, path):
        from ernie_tiny_distill.data import readers

        if os.path.splitext(path)[1].lower() in (".jsonl", ".json", ".csv", ".tsv"):
            return super().calibration_texts(path)
        return [" ".join(s.tokens) for s in readers.read_conll(path)]

    @staticmethod
    def example_labels(examples):
        return [tag for ex in examples for tag in ex.tags]

    @staticmethod
    def slice_logits(logits, row, length):
        return logits[row, :length]  # [length, C]

    @staticmethod
    def head_flops(seq_len, hidden, num_labels):
        return 2 * seq_len * hidden * num_labels  # a classifier on every position

    @staticmethod
    def request_text(example):
        return " ".join(example.tokens)  # the served model splits it into these words again

    def word_pieces(self, words: Sequence[str]) -> List[List[int]]:
        # a word the tokenizer drops entirely (control or zero-width characters) still needs a position
        return [ids or [self.tokenizer.unk_token_id] for ids in self.wordpieces.words(words)]

    def word_cases(self, words: Sequence[str]) -> Optional[List[int]]:
        """The case class of each word (casing.py) with model.case_ids, else None (token types all 0)."""
        return [casing.case_class(w) for w in words] if self.case_ids else None

    def encode(self, examples: Sequence[TaggedSentence], offset: int = 0) -> List[Feature]:
        features = []
        cut_words = cut_sentences = 0
        budget = self.max_seq_length - 2
        for i, ex in enumerate(examples):
            piece_ids, labels, token_mask = [], [IGNORE_INDEX], [0]  # position 0 is [CLS]
            kept, kept_pieces = 0, []
            for w, pieces in enumerate(self.word_pieces(ex.tokens)):
                if len(piece_ids) + len(pieces) > budget:
                    break
                piece_ids += pieces
                kept_pieces.append(pieces)
                tag = IGNORE_INDEX if ex.tags is None else self.label_to_id[ex.tags[w]]
                labels += [tag] + [IGNORE_INDEX] * (len(pieces) - 1)
                token_mask += [1] + [0] * (len(pieces) - 1)
                kept += 1
            if kept < len(ex.tokens):
                cut_words += len(ex.tokens) - kept
                cut_sentences += 1
            input_ids, _ = self.wrap(piece_ids)
            features.append({
                "input_ids": input_ids,
                "token_type_ids": casing.piece_types(kept_pieces, self.word_cases(ex.tokens)),
                "labels": labels + [IGNORE_INDEX],  # [SEP]
                "token_mask": token_mask + [0],
                "num_words": len(ex.tokens),
                "index": offset + i,
            })
        if cut_words:
            # never silently: training sees no label past the cut; evaluation reads such sentences as served
            logger.warning("%d words in %d sentences did not fit in max_seq_length=%d and were cut for training; "
                           "evaluation reads those sentences as word windows, as the served model does",
                           cut_words, cut_sentences, self.max_seq_length)
        return features

    def kd_rows(self, logits, batch):
        mask = batch["token_mask"].astype("bool")  # [B, L]
        return paddle.masked_select(logits, mask.unsqueeze(-1)).reshape([-1, logits.shape[-1]])  # [N_words, C]

    def kd_rows_numpy(self, logits, feature):
        mask = np.asarray(feature["token_mask"], dtype=bool)
        return logits[: len(mask)][mask]  # [n_words, C]

    def kd_row_count(self, feature):
        return int(np.count_nonzero(feature["token_mask"]))

    def predict_rows(self, rows, feature):
        tags, _ = self.decode(rows)
        return tags + ["O"] * (feature["num_words"] - len(tags))

    def decode(self, rows: np.ndarray) -> Tuple[List[str], List[float]]:
        """IOB2 tags and their probabilities for per-word logit rows [N, C] (self.decoding; decoding.py)."""
        return iob.decode_rows(rows, self.labels, self.decoding)

    @staticmethod
    def entities(tags: Sequence[str]) -> List[Tuple[str, int, int]]:
        """(type, first word, last word + 1) entity spans, decoded as the metric decodes them."""
        return iob.entity_spans(tags)

    def predict(self, logits, feature):
        tags, _ = self.decode(self.kd_rows_numpy(logits, feature))
        return tags + ["O"] * (feature["num_words"] - len(tags))  # words cut by truncation

    def feature_rows(self, logits, features):
        rows = [logits[r, p] for r, f in enumerate(features) for p in f["first_positions"]]
        return np.stack(rows) if rows else logits[:0, 0]  # [N_words, C]

    def evaluate(self, predictions, examples):
        return metrics.tagging_metrics([ex.tags for ex in examples], predictions)

    def post_processor(self, predictor):
        from ernie_tiny_distill.tasks.serving import EntityServing

        return EntityServing(predictor)

    # -- word windows: how the served model reads a sentence of any length (training-time evaluation too)
    def sentence_windows(self, pieces: Sequence[List[int]], cases: Optional[Sequence[int]] = None
                         ) -> Tuple[List[Feature], List[Tuple[int, int]]]:
        """Window features of one sentence from its pieces per word (each at most max_seq_length - 2) and its
        words' case classes (word_cases), and, per word, (window number, position of the word in that window)."""
        lengths = [len(p) for p in pieces]
        windows = make_windows(lengths, self.max_seq_length - 2)
        features = []
        cls, sep = self.tokenizer.cls_token_id, self.tokenizer.sep_token_id
        for a, b in windows:
            ids, first = [cls], []
            for w in range(a, b):
                first.append(len(ids))
                ids += pieces[w]
            ids.append(sep)
            types = casing.piece_types(pieces[a:b], None if cases is None else cases[a:b])
            features.append({"input_ids": ids, "token_type_ids": types, "first_positions": first})
        return features, best_window(lengths, windows) if pieces else []

    def windowed(self, sentences: Sequence[Sequence[str]], word_pieces) -> Tuple[List[Feature], list]:
        """Window features of sentences (a blank word is not read) and, per sentence, how to read its words
        back from the windows' logits (windowed_tags); `word_pieces(words)` gives capped pieces per word."""
        features, plans = [], []
        for words in sentences:
            kept = [k for k, w in enumerate(words) if not is_blank(w)]
            kept_words = [words[k] for k in kept]
            feats, best = (self.sentence_windows(word_pieces(kept_words), self.word_cases(kept_words)) if kept
                           else ([], []))
            plans.append((len(features), best, kept, len(words)))
            features += feats
        return features, plans

    def windowed_tags(self, logits: Sequence[np.ndarray], features: Sequence[Feature], plans: list):
        """(tags, scores) per sentence from the logits [L_i, C] of `windowed` features: each word from its best
        window, a blank word O; tags None for a sentence whose logits are not finite."""
        tags, scores = [], []
        for start, best, kept, n_words in plans:
            # the last word read in window 0 means the sentence fits one window: each word's row in one gather
            if best and best[-1][0] == 0:
                rows = logits[start][features[start]["first_positions"][:len(best)]]
            else:
                rows = [logits[start + k][features[start + k]["first_positions"][pos]] for k, pos in best]
                rows = np.stack(rows) if rows else np.zeros((0, len(self.labels)))
            if not np.isfinite(rows).all():
                tags.append(None)
                scores.append([])
                continue
            kept_tags, kept_scores = self.decode(rows)
            sentence_tags, sentence_scores = ["O"] * n_words, [1.0] * n_words
            for k, tag, score in zip(kept, kept_tags, kept_scores):
                sentence_tags[k], sentence_scores[k] = tag, score
            tags.append(sentence_tags)
            scores.append(sentence_scores)
        return tags, scores

    def evaluation_predictions(self, logits, features, examples, predict_logits) -> List[List[str]]:
        """Tags of encoded examples; a sentence encode() cut is read as word windows, as the Predictor reads it,
        so best/ is chosen on the path that is served. `predict_logits(features)` gives logits per feature."""
        predictions = [self.predict(lg, f) for lg, f in zip(logits, features)]
        cut = [i for i, f in enumerate(features) if self.kd_row_count(f) < f["num_words"]]
        if not cut:
            return predictions
        budget = self.max_seq_length - 2
        windows, plans = self.windowed([examples[i].tokens for i in cut],
                                       lambda words: [p[:budget] for p in self.word_pieces(words)])
        rows = [{**f, "labels": [IGNORE_INDEX] * len(f["input_ids"]), "token_mask": [0] * len(f["input_ids"]),
                 "index": k} for k, f in enumerate(windows)]  # what batching.collate reads
        tags, _ = self.windowed_tags(predict_logits(rows), windows, plans)
        for i, sentence_tags in zip(cut, tags):
            predictions[i] = sentence_tags if sentence_tags is not None else ["O"] * len(examples[i].tokens)
        return predictions

    def serving_features(self, encoder, texts):
        return [f for t in texts for f in encoder.tagging_windows(encoder.words(t)[0])[0]]

    trivial_predictor = "tagging every word O"

    def chance_level(self, examples):
        return 0.0  # predicting all "O" finds no entity: F1 = 0
