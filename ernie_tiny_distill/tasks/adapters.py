"""Task adapters: everything task-specific lives here (encoding, label alignment, head, distilled logits,
decoding, metric, export model class, serving, data formats); other modules call these public methods."""
from __future__ import annotations

import logging
import os
from typing import Dict, List, Optional, Sequence, Tuple, TypedDict, Union

import numpy as np
import paddle
from paddlenlp.transformers import ErnieForSequenceClassification, ErnieForTokenClassification, ErnieModel

from ernie_tiny_distill.data.examples import TaggedSentence, TextExample
from ernie_tiny_distill.tasks import decoding as iob
from ernie_tiny_distill.tasks import metrics
from ernie_tiny_distill.tasks import tokenizer as wordpiece

logger = logging.getLogger(__name__)

IGNORE_INDEX = -100  # label of positions that take no loss (padding, special tokens, non-first sub-words)



class Window(TypedDict):
    input_ids: List[int]
    token_type_ids: List[int]


class Feature(TypedDict, total=False):
    """One encoded example, as encode() makes it and batching, the trainer and the teacher cache read it."""

    input_ids: List[int]  # [CLS] pieces [SEP]; with windows, their concatenation
    token_type_ids: List[int]
    labels: Union[int, List[int]]  # one label id per text, or one per position (IGNORE_INDEX: no loss there)
    token_mask: List[int]  # tagging: 1 at each word's first piece
    num_words: int  # tagging: words of the sentence (words cut by max_seq_length are predicted O)
    first_positions: List[int]  # serving (tagging): the position of each word's first piece
    windows: List[Window]  # a long text read as windows (model.long_document)
    truncated: bool  # encode() bookkeeping: the text did not fit in max_seq_length
    index: int  # position in the split (+ offset): keys teacher logits and caches

POOLINGS = ("mean", "max")  # how window logits become one document's logits (model.long_document.pooling)
# Tags are decoded by IOB2-constrained Viterbi (decoding.py) unless a caller asks for per-word argmax
# (`--decoding argmax` in tools/evaluate.py, predict.py and serve.py): it beat argmax on CoNLL-2003 dev
# (docs/deployment.md). Training-time evaluation uses it too, so it picks best/; runs record it in summary.json,
# best/metrics.json and task.json (runs before the switch have no such key: they were scored with argmax, and
# `tools/reproduce.py --only conll/decoding` re-scores their best/ under both decodings).
DEFAULT_DECODING = "viterbi"


class Task:
    """Base adapter. Subclasses define how examples become features and logits become predictions."""

    name = "base"
    metric_name = "loss"
    greater_is_better = False
    model_class = ErnieModel

    supports_windows = False  # can read a long text as windows whose logits are pooled (model.long_document)
    whole_text_labels = False  # one label per whole text: a bag-of-n-grams model (the TF-IDF teacher) can learn it
    decodings: Tuple[str, ...] = ()  # how its predictions can be decoded (tagging: decoding.DECODINGS); () = one way

    def __init__(self, tokenizer, labels: Sequence[str], max_seq_length: int, truncation: str = "head",
                 decoding: Optional[str] = None, long_document: Optional[Dict] = None):
        self.tokenizer = tokenizer
        self._pieces: Optional[wordpiece.WordPieces] = None  # built on first use (a task may never encode)
        # None: a long text is truncated (self.truncation); else {"stride", "max_windows", "pooling"}
        self.long_document = dict(long_document) if long_document else None
        if self.long_document is not None:
            if not self.supports_windows:
                from ernie_tiny_distill.errors import UserError

                raise UserError(f"long documents as windows are for classification, not task {self.name!r}",
                                where="config key 'model.long_document.mode'", hint="set it to 'truncate'")
            if self.long_document.get("pooling", "mean") not in POOLINGS:
                raise ValueError(f"pooling must be one of {POOLINGS}, got {self.long_document['pooling']!r}")
        self.decoding = decoding or DEFAULT_DECODING  # how tags are decoded (TaggingTask; see decoding.py)
        if self.decoding not in iob.DECODINGS:
            raise ValueError(f"decoding must be one of {iob.DECODINGS}, got {self.decoding!r}")
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

    def wrap(self, piece_ids: List[int]) -> Tuple[List[int], List[int]]:
        """[CLS] pieces [SEP] and their token type ids."""
        ids = [self.tokenizer.cls_token_id] + piece_ids + [self.tokenizer.sep_token_id]
        return ids, [0] * len(ids)

    @property
    def wordpieces(self) -> wordpiece.WordPieces:
        """The tokenizer's fast WordPiece path (tasks/tokenizer.py): every text becomes ids through it."""
        if self._pieces is None:
            self._pieces = wordpiece.word_pieces(self.tokenizer)
        return self._pieces

    def pieces(self, text: str) -> List[int]:
        """WordPiece ids of `text` (no special tokens)."""
        return self.wordpieces.ids(text)

    # -- data (class-level: data.py has no tokenizer)
    data_formats: Tuple[str, ...] = ()  # data.format values holding this task's labeled data
    demo_prefix = ""  # demo_data file names: f"{demo_prefix}_train", ...

    @classmethod
    def read_labeled_file(cls, path: str):
        """Examples of a demo data file of this task."""
        raise NotImplementedError

    @classmethod
    def unlabeled_example(cls, text: str):
        """An unlabeled example (stage 1 corpus, transfer set) from one line of raw text."""
        return TextExample(text, None)

    @classmethod
    def augmented_transfer_set(cls, train: Sequence, count: int, seed: int, embeddings=None) -> Tuple[list, str]:
        """`count` altered copies of training texts (unlabeled: the teacher labels them) for data.unlabeled=augment,
        and how they were made; `embeddings` (a word table) picks replacement words by embedding neighbours."""
        from ernie_tiny_distill.data.augment_text import augmented_texts

        how = "teacher word-embedding neighbours" if embeddings is not None else "same-frequency-band words"
        return augmented_texts(train, count, seed, embeddings), f"word replacement by {how}, span deletion, word swaps"

    @classmethod
    def calibration_texts(cls, path: str) -> List[str]:
        """Raw texts for INT8 calibration from `path` in this task's usual file format."""
        from ernie_tiny_distill.data import readers

        suffix = os.path.splitext(path)[1].lower()
        if suffix in (".jsonl", ".json", ".csv", ".tsv"):
            return [e.text for e in readers.read_classification_file(path, label_column=None, skip_empty=True)]
        return [e.text for e in readers.read_plain_text(path)]

    @staticmethod
    def example_labels(examples: Sequence) -> List[str]:
        """Every gold label the examples use (for checking them against a model's labels)."""
        raise NotImplementedError

    # -- model outputs
    @staticmethod
    def slice_logits(logits: np.ndarray, row: int, length: int) -> np.ndarray:
        """One example's logits out of a padded batch: [C] (per text) or [length, C] (per token)."""
        raise NotImplementedError

    @staticmethod
    def head_flops(seq_len: int, hidden: int, num_labels: int) -> int:
        """Multiply-add FLOPs (x2) of the task head on one sequence."""
        raise NotImplementedError

    # -- model outputs
    def pool(self, logits: paddle.Tensor, batch: Dict[str, paddle.Tensor]) -> paddle.Tensor:
        """One logit row per feature: a batch of windowed documents (batching.collate adds `doc`, the feature of
        each window row) pools its window rows [W, C] into [B, C]; any other batch is returned as it is."""
        if "doc" not in batch:
            return logits
        if self.long_document["pooling"] == "max":
            return paddle.geometric.segment_max(logits, batch["doc"])  # [B, C]
        return paddle.geometric.segment_mean(logits, batch["doc"])  # [B, C]

    def pool_numpy(self, rows: np.ndarray) -> np.ndarray:
        """The same pooling of one document's window logits [W, C] -> [C] in numpy (the predictor)."""
        return rows.max(axis=0) if self.long_document["pooling"] == "max" else rows.mean(axis=0)

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

    def predict_rows(self, rows: np.ndarray, feature: Feature):
        """The prediction for one example from its KD rows [n, C] (e.g. an ensemble's mixed rows)."""
        raise NotImplementedError

    def example_text(self, example) -> str:
        """The whole text of a labeled example, for a teacher that reads raw text (TF-IDF)."""
        from ernie_tiny_distill.errors import UserError

        raise UserError(f"a TF-IDF teacher scores whole texts: it works for classification, not task {self.name!r}",
                        where="config key 'distill.teachers'")

    @staticmethod
    def request_text(example) -> str:
        """A labeled example as a user would send it to the served model (raw text)."""
        raise NotImplementedError

    def feature_rows(self, logits: np.ndarray, features: Sequence[Feature]) -> np.ndarray:
        """The [N, C] prediction rows of a padded batch of serving features (one per text or per word)."""
        raise NotImplementedError

    # -- serving (the Predictor calls back the method that fits the task)
    def serve(self, predictor, items: Sequence) -> List[Dict]:
        raise NotImplementedError

    def score_served(self, predictor, examples: Sequence) -> Dict[str, object]:
        """The task metric of what `predictor` returns for labeled examples."""
        raise NotImplementedError

    def serving_features(self, encoder, texts: Sequence[str]) -> List[Feature]:
        """Model inputs for raw texts (calibration, agreement checks): one per text or per word window."""
        raise NotImplementedError

    def evaluate(self, predictions: list, examples: Sequence) -> Dict[str, object]:
        raise NotImplementedError

    # the trivial predictor chance_level scores (said in the weak-teacher message)
    trivial_predictor = "a trivial predictor"

    def chance_level(self, examples: Sequence) -> float:
        """The metric a trivial predictor reaches; a teacher at this level has nothing to teach."""
        raise NotImplementedError

    def metadata(self) -> Dict[str, object]:
        meta = {
            "task": self.name,
            "labels": self.labels,
            "max_seq_length": self.max_seq_length,
            "truncation": self.truncation,
            "model_class": self.model_class.__name__,
        }
        if self.long_document is not None:  # absent = truncation, as in exports written before windows existed
            meta["long_document"] = dict(self.long_document)
        return {**meta, **self.decoding_metadata()}

    def decoding_metadata(self) -> Dict[str, str]:
        """{"decoding": ...} for tasks whose predictions have a decoding (tagging), else {}: what produced the
        metrics of a run (summary.json, best/metrics.json) and what an export serves (task.json)."""
        return {"decoding": self.decoding} if self.decodings else {}

    def check_examples(self, examples: Sequence, where: str) -> None:
        """Refuse examples whose labels this model does not have (they could only be scored as errors)."""
        from ernie_tiny_distill.errors import UserError

        unknown = sorted(set(self.example_labels(examples)) - set(self.labels))
        if unknown:
            raise UserError(f"labels not known to the model: {', '.join(map(repr, unknown[:5]))}"
                            f"{' ...' if len(unknown) > 5 else ''}; the model has {self.labels}", where=where,
                            hint="score the model on data of the task and label set it was trained on")


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
    supports_wide = True  # stage 'wide': one logit row per text, so a bag-of-n-grams part can add to it

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

    def serve(self, predictor, items):
        return predictor.classify(items)

    def score_served(self, predictor, examples):
        predicted = [r["label"] for r in predictor.classify([ex.text for ex in examples])]
        return self.evaluate(predicted, examples)

    def serving_features(self, encoder, texts):
        features = [encoder.classification_feature(t) for t in texts]
        return [w for f in features for w in f.get("windows", [f])]  # model inputs: one row per window

    trivial_predictor = "always predicting the most frequent label"

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
    decodings = iob.DECODINGS

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
            input_ids, token_type_ids = self.wrap(piece_ids)
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

    def serve(self, predictor, items):
        return predictor.extract_entities(items)

    def score_served(self, predictor, examples):
        """Scores the entities the predictor serves for the gold words (not a separate tag path)."""
        served = predictor.extract_entities([list(ex.tokens) for ex in examples])
        predicted = [iob.spans_to_tags([(e["type"], e["start_token"], e["end_token"]) for e in r["entities"]],
                                            len(ex.tokens)) for r, ex in zip(served, examples)]
        return self.evaluate(predicted, examples)

    def serving_features(self, encoder, texts):
        return [f for t in texts for f in encoder.tagging_windows(encoder.words(t)[0])[0]]

    trivial_predictor = "tagging every word O"

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
            input_ids, token_type_ids = self.wrap(self.wordpieces.ends(text, self.max_seq_length - 2, 0)[0])
            features.append({"input_ids": input_ids, "token_type_ids": token_type_ids, "labels": IGNORE_INDEX,
                             "index": offset + i})
        return features


TASKS = {"classification": ClassificationTask, "ner": TaggingTask}  # the tasks a model can be trained for


def task_class(name: str):
    """The Task subclass of a task name ("classification", "ner")."""
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; expected one of {', '.join(TASKS)}") from None


def make_task(name: str, tokenizer, labels: Sequence[str], max_seq_length: int, truncation: str = "head",
              decoding: Optional[str] = None, long_document: Optional[Dict] = None) -> Task:
    """The adapter for `name` (decoding: how tags are decoded, for tagging tasks; long_document: windows for
    long texts, see config.LongDocumentConfig.task_option)."""
    return task_class(name)(tokenizer, labels, max_seq_length, truncation, decoding, long_document)


def model_class_named(name: str):
    """The PaddleNLP model class a task.json / export.json names (model_class)."""
    import paddlenlp.transformers as transformers

    cls = getattr(transformers, name, None) if isinstance(name, str) else None
    if cls is None:
        from ernie_tiny_distill.errors import UserError

        raise UserError(f"task.json names model_class {name!r}, which PaddleNLP does not have")
    return cls


def pad_labels(features: Sequence[Feature], max_len: int) -> Dict[str, np.ndarray]:
    """Batch label arrays: labels [B] (one per text), or labels and token_mask [B, L] (per token, padded)."""
    n = len(features)
    if not isinstance(features[0]["labels"], list):
        return {"labels": np.array([f["labels"] for f in features], dtype="int64")}
    labels = np.full((n, max_len), IGNORE_INDEX, dtype="int64")
    token_mask = np.zeros((n, max_len), dtype="int64")
    for i, f in enumerate(features):
        labels[i, :len(f["labels"])] = f["labels"]
        token_mask[i, :len(f["token_mask"])] = f["token_mask"]
    return {"labels": labels, "token_mask": token_mask}
