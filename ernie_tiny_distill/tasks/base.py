"""The Task adapter's interface and the feature types every task encodes into (tasks/adapters.py picks a task)."""
from __future__ import annotations

import os
from typing import Dict, List, Optional, Sequence, Tuple, TypedDict, Union

import numpy as np
import paddle
from paddlenlp.transformers import ErnieModel

from ernie_tiny_distill.data.examples import TextExample
from ernie_tiny_distill.tasks import decoding as iob
from ernie_tiny_distill.tasks import tokenizer as wordpiece

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
# best/metrics.json and task.json. A run without that key was scored with argmax;
# `tools/reproduce.py --only conll/decoding` re-scores such a run's best/ under both decodings.
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
    supports_case_ids = False  # can give each word's case class as its token type (model.case_ids; casing.py)

    def __init__(self, tokenizer, labels: Sequence[str], max_seq_length: int, truncation: str = "head",
                 decoding: Optional[str] = None, long_document: Optional[Dict] = None, case_ids: bool = False):
        self.tokenizer = tokenizer
        if case_ids and not self.supports_case_ids:
            from ernie_tiny_distill.errors import UserError

            raise UserError(f"case ids are for tagging (words with their own case), not task {self.name!r}",
                            where="config key 'model.case_ids'", hint="remove it")
        self.case_ids = bool(case_ids)
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

    # -- serving
    def post_processor(self, predictor):
        """The serving object of this task (tasks/serving.py), chosen once by the Predictor: raw items in,
        served results out, and the task metric of what it serves."""
        raise NotImplementedError

    def serving_features(self, encoder, texts: Sequence[str]) -> List[Feature]:
        """Model inputs for raw texts (calibration, agreement checks): one per text or per word window."""
        raise NotImplementedError

    def evaluate(self, predictions: list, examples: Sequence) -> Dict[str, object]:
        raise NotImplementedError

    def evaluation_predictions(self, logits: Sequence[np.ndarray], features: Sequence[Feature], examples: Sequence,
                               predict_logits) -> list:
        """Training-time predictions of encoded examples from their logits (`predict_logits(features)` scores
        other inputs when the task reads some examples otherwise, as TaggingTask does long sentences)."""
        return [self.predict(lg, f) for lg, f in zip(logits, features)]

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
        if self.case_ids:  # absent = off, as in models trained before case ids existed
            meta["case_ids"] = True
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
