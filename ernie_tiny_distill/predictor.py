"""Run an export directory (see export.py) on raw text with Paddle Inference or ONNX Runtime.

    from ernie_tiny_distill.predictor import Predictor
    p = Predictor("exports/imdb_student", num_threads=2)
    p.predict(["A wonderful film.", "Dull and far too long."])
    # classification -> [{"label": "pos", "probabilities": {"neg": 0.03, "pos": 0.97}}, ...]
    # NER            -> [{"entities": [{"type": "PER", "text": "Angela Merkel", "start": 0, "end": 13,
    #                                   "score": 0.98}, ...]}, ...]

Defined results and errors:
- empty or whitespace-only text: classification gives {"label": None, "probabilities": None,
  "error": "empty text"}; NER gives {"entities": []}. Neither is an exception, so one bad line in a batch
  does not fail the others. A non-string item raises UserError naming its index.
- long text: classification keeps max_seq_length tokens ("head": the first ones; "head_tail": a quarter
  from the start and the rest from the end, as in training). NER never drops a word: a sentence longer
  than max_seq_length is cut into overlapping word windows (stride half a window) and each word takes
  the prediction of the window in which it has the most context on its poorer side.
- a missing or incomplete export directory, a wrong task, an unsupported backend/precision: UserError.

NER words are found like CoNLL tokens (split_words): whitespace separates words; punctuation stands alone
except inside words (U.S., 1996-08-30, O'Neill, 3.5); clitics 's n't 're 've 'll 'd 'm are split off;
CJK characters are single words. Each word is scored at its first sub-word, exactly as TaggingTask does in
training, and entities are decoded from IOB2 tags (an I- tag that does not continue an entity of its type
starts one, as seqeval does). Entity offsets index the original string: text == original[start:end].
"""
from __future__ import annotations

import logging
import math
import os
import re
import threading
import unicodedata
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from . import export as ex
from .errors import UserError

logger = logging.getLogger(__name__)

BACKENDS = ("paddle", "onnx", "auto")
PRECISIONS = ("fp32", "bf16", "int8")
DEVICES = ("cpu", "gpu", "auto")
EMPTY_TEXT = "empty text"
WORD_CACHE_SIZE = 200_000  # memoized word -> pieces entries per predictor (cleared when full)
LONG_TEXT_CHARS = 20_000  # classification texts longer than this are tokenized from both ends only

# ---------------------------------------------------------------- words with offsets

_CJK = ("\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3040-\u30ff\uac00-\ud7af"
        "\U00020000-\U0002a6df\U0002a700-\U0002ebef\U00030000-\U0003134f")
_W = rf"[^\W{_CJK}]"  # a word character that is not CJK
_CLITIC = r"(?:'|\u2019)(?:s|re|ve|ll|d|m)(?![^\W_])"
_WORD_RE = re.compile(
    rf"""
    (?:[A-Za-z]\.){{2,}}(?![^\W_])                     # abbreviations: U.S. U.K. e.g.
    | {_W}+(?=n(?:'|\u2019)t(?![^\W_]))                 # do|n't
    | n(?:'|\u2019)t(?![^\W_])                         # n't
    | {_CLITIC}                                        # 's 're 've 'll 'd 'm
    | {_W}+(?:(?:[-.,/:&@]|(?:'|\u2019)(?!(?:s|re|ve|ll|d|m|t)(?![^\W_]))){_W}+)*   # words, numbers
    | [{_CJK}]                                         # one CJK character
    | \S                                               # any other visible character (punctuation)
    """,
    re.VERBOSE | re.IGNORECASE,
)


def split_words(text: str) -> List[Tuple[str, int, int]]:
    """CoNLL-like words of `text` as (word, start, end) with text[start:end] == word.

    Characters the WordPiece tokenizer deletes (control/format characters, U+FFFD) never form a word.
    """
    words = []
    for m in _WORD_RE.finditer(text):
        word = m.group()
        if len(word) == 1 and (word == "\ufffd" or unicodedata.category(word).startswith("C")):
            continue
        words.append((word, m.start(), m.end()))
    return words


def iob_entities(tags: Sequence[str]) -> List[Tuple[str, int, int]]:
    """(type, first word, last word + 1) spans of IOB2 `tags`; a stray I-X starts an entity (seqeval)."""
    spans = []
    current = None  # [type, start]
    for i, tag in enumerate(list(tags) + ["O"]):
        prefix, _, kind = tag.partition("-")
        continues = prefix == "I" and current is not None and current[0] == kind
        if current is not None and not continues:
            spans.append((current[0], current[1], i))
            current = None
        if prefix in ("B", "I") and not continues and kind:
            current = [kind, i]
    return spans


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


# ---------------------------------------------------------------- encoding


def _softmax(x: np.ndarray) -> np.ndarray:
    z = x - x.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


class TextEncoder:
    """Tokenizer + task rules of an export directory: raw text or words -> model features (no model needed)."""

    def __init__(self, export_dir: str, *, max_seq_length: Optional[int] = None, truncation: Optional[str] = None):
        from . import tasks

        self.export_dir = export_dir
        self.meta = ex.read_export_metadata(export_dir)
        _check_listed_files(export_dir, self.meta)
        self.labels: List[str] = self.meta["labels"]
        self.task_name: str = self.meta["task"]
        trained_length = int(self.meta.get("max_seq_length") or 128)
        # `is None`, not `or`: an explicit 0 is refused below, never replaced by the trained length
        self.max_seq_length = int(trained_length if max_seq_length is None else max_seq_length)
        limit = int(self.meta.get("max_position_embeddings") or 512)
        if not 3 <= self.max_seq_length <= limit:
            raise UserError(f"max_seq_length must be between 3 and the model's {limit} positions, "
                            f"got {self.max_seq_length}")
        self.truncation = truncation or self.meta.get("truncation") or "head"
        if self.truncation not in ("head", "head_tail"):
            raise UserError(f"truncation must be 'head' or 'head_tail', got {self.truncation!r}")
        self.tokenizer = _load_tokenizer(export_dir)
        self.pad_token_id = int(self.meta.get("pad_token_id", 0))
        self.task = tasks.make_task(self.task_name, self.tokenizer, self.labels, self.max_seq_length,
                                    self.truncation)
        self.budget = self.max_seq_length - 2
        self._word_cache: Dict[str, List[int]] = {}

    # -- classification
    def classification_feature(self, text: str) -> Dict:
        pieces = self._text_pieces(text)
        input_ids, token_type_ids = self.task._wrap(self.task.truncate(pieces))
        return {"input_ids": input_ids, "token_type_ids": token_type_ids, "truncated": len(pieces) > self.budget}

    def _text_pieces(self, text: str) -> List[int]:
        """All pieces of `text`, or (very long text) enough pieces from each end for the truncation rule.

        The tokenizer treats whitespace as a hard word boundary, so the pieces of a prefix cut at a
        space are exactly the first pieces of the whole text (and likewise for suffixes).
        """
        if len(text) <= LONG_TEXT_CHARS:
            return self.task._pieces(text)
        head, complete = self._end_pieces(text, self.budget + 1, from_start=True)
        if complete:
            return head
        if self.truncation == "head":
            return head  # more than budget pieces: truncate() keeps the first budget
        n_head = self.budget // 4
        tail, _ = self._end_pieces(text, self.budget - n_head, from_start=False)
        # a stand-in of exactly budget + 1 pieces that truncate() cuts to head + tail
        return head[:n_head] + [self.tokenizer.unk_token_id] + tail[len(tail) - (self.budget - n_head):]

    def _end_pieces(self, text: str, need: int, from_start: bool) -> Tuple[List[int], bool]:
        size = max(1024, need * 16)
        while True:
            if size >= len(text):
                return self.task._pieces(text), True
            if from_start:
                cut = max(text.rfind(c, 0, size) for c in " \t\n\r")
                part = text[:cut] if cut > 0 else None
            else:
                start = len(text) - size
                cuts = [i for i in (text.find(c, start) for c in " \t\n\r") if i >= 0]
                part = text[min(cuts) + 1:] if cuts else None
            if part is not None:
                pieces = self.task._pieces(part)
                if len(pieces) >= need:
                    return pieces, False
            size *= 4

    # -- tagging
    def word_pieces(self, words: Sequence[str]) -> List[List[int]]:
        """Pieces per word, as TaggingTask.word_pieces (an untokenizable word gets [UNK]), capped at the
        window budget. Words repeat a lot, so their pieces are memoized (the tokenizer call dominates)."""
        cache = self._word_cache
        out = []
        for word in words:
            pieces = cache.get(word)
            if pieces is None:
                pieces = self.task.word_pieces([word])[0][: self.budget]
                if len(cache) >= WORD_CACHE_SIZE:
                    cache.clear()
                cache[word] = pieces
            out.append(pieces)
        return out

    def tagging_windows(self, words: Sequence[str]) -> Tuple[List[Dict], List[Tuple[int, int]]]:
        """Window features for one sentence and, per word, (window number, position in that window)."""
        pieces = self.word_pieces(words)
        lengths = [len(p) for p in pieces]
        windows = make_windows(lengths, self.budget)
        features = []
        cls, sep = self.tokenizer.cls_token_id, self.tokenizer.sep_token_id
        for a, b in windows:
            ids, first = [cls], []
            for w in range(a, b):
                first.append(len(ids))
                ids += pieces[w]
            ids.append(sep)
            features.append({"input_ids": ids, "token_type_ids": [0] * len(ids), "first_positions": first})
        return features, best_window(lengths, windows) if words else []

    # -- both
    def calibration_features(self, texts: Sequence[str]) -> List[Dict]:
        """Model inputs for calibration/agreement checks: one per text (classification) or per window (NER)."""
        features = []
        for text in texts:
            if not isinstance(text, str) or not text.strip():
                continue
            if self.task_name == "classification":
                features.append(self.classification_feature(text))
            else:
                features += self.tagging_windows([w for w, _, _ in split_words(text)])[0]
        return features

    def collate(self, features: Sequence[Dict]) -> Tuple[np.ndarray, np.ndarray]:
        """Pad to the longest feature with pad_token_id: int64 input_ids, token_type_ids [B, L]."""
        length = max(len(f["input_ids"]) for f in features)
        ids = np.full((len(features), length), self.pad_token_id, dtype="int64")
        types = np.zeros((len(features), length), dtype="int64")
        for i, f in enumerate(features):
            n = len(f["input_ids"])
            ids[i, :n] = f["input_ids"]
            types[i, :n] = f["token_type_ids"]
        return ids, types


def _check_listed_files(export_dir: str, meta: Dict) -> None:
    """Every file export.json lists (tokenizer files included) must still be there."""
    optional = {ex.ONNX_FILE, ex.INT8_ONNX_FILE, ex.MODEL_FILE, ex.PARAMS_FILE}  # checked per backend
    for name in meta.get("files") or {}:
        if name not in optional and not os.path.isfile(os.path.join(export_dir, name)):
            raise UserError(f"incomplete export directory: {name} is missing", where=export_dir,
                            hint="re-run tools/export.py for this model")


def _load_tokenizer(export_dir: str):
    from paddlenlp.transformers import AutoTokenizer

    if not os.path.isfile(os.path.join(export_dir, "tokenizer_config.json")):
        raise UserError("incomplete export directory: tokenizer_config.json is missing", where=export_dir)
    try:
        return AutoTokenizer.from_pretrained(export_dir)
    except Exception as e:  # PaddleNLP raises assorted errors for missing/corrupt vocabularies
        raise UserError(f"could not load the tokenizer: {e}", where=export_dir) from None


# ---------------------------------------------------------------- engines


class PaddleEngine:
    """Paddle Inference predictor over inference.json/.pdiparams: run(input_ids, token_type_ids) -> logits."""

    def __init__(self, export_dir: str, *, num_threads: int = 1, use_mkldnn: bool = True, precision: str = "fp32",
                 device: str = "cpu"):
        from paddle import inference

        model, params = (os.path.join(export_dir, f) for f in (ex.MODEL_FILE, ex.PARAMS_FILE))
        for f in (model, params):
            if not os.path.isfile(f):
                raise UserError(f"incomplete export directory: {os.path.basename(f)} is missing", where=export_dir,
                                hint="re-run tools/export.py for this model")
        if precision == "int8":
            raise UserError(
                "Paddle Inference 3.3.1 has no CPU INT8 path for PIR (inference.json) models: its oneDNN "
                "passes delete quantize/dequantize ops and run FP32",
                hint="INT8 runs with ONNX Runtime: backend='onnx', precision='int8' "
                     "(export with tools/export.py --int8)")
        config = inference.Config(model, params)  # PIR: (json, pdiparams); the .pdmodel form is legacy
        self.device = _resolve_device(device)
        if self.device == "gpu":
            config.enable_use_gpu(256, 0)
        else:
            config.disable_gpu()
            if use_mkldnn:
                config.enable_mkldnn()
                if precision == "bf16":
                    from paddle.base import core

                    if not core.supports_bfloat16():
                        raise UserError("this CPU has no bf16 support for oneDNN (needs AVX512-BF16 or AMX)")
                    config.enable_mkldnn_bfloat16()
            elif precision == "bf16":
                raise UserError("bf16 needs oneDNN: drop use_mkldnn=False")
        config.set_cpu_math_library_num_threads(int(num_threads))
        config.disable_glog_info()
        try:
            self.predictor = inference.create_predictor(config)
        except Exception as e:
            raise UserError(f"Paddle Inference could not load the model: {e}", where=export_dir) from None
        names = self.predictor.get_input_names()
        if sorted(names) != sorted(ex.INPUT_NAMES):
            raise UserError(f"the exported model takes inputs {names}, expected {list(ex.INPUT_NAMES)}",
                            where=export_dir)
        self.output_name = self.predictor.get_output_names()[0]

    def run(self, input_ids: np.ndarray, token_type_ids: np.ndarray) -> np.ndarray:
        for name, value in (("input_ids", input_ids), ("token_type_ids", token_type_ids)):
            handle = self.predictor.get_input_handle(name)
            handle.reshape(list(value.shape))
            handle.copy_from_cpu(np.ascontiguousarray(value, dtype="int64"))
        self.predictor.run()
        return self.predictor.get_output_handle(self.output_name).copy_to_cpu()


class OnnxEngine:
    """ONNX Runtime session over model.onnx or model.int8.onnx with the same run() as PaddleEngine."""

    def __init__(self, model_file: str, *, num_threads: int = 1, device: str = "cpu"):
        try:
            import onnxruntime as ort
        except ImportError:
            raise UserError("backend 'onnx' needs onnxruntime", hint="pip install onnxruntime") from None
        if not os.path.isfile(model_file):
            raise UserError(f"incomplete export directory: {os.path.basename(model_file)} is missing",
                            where=os.path.dirname(model_file),
                            hint="add it with tools/export.py --onnx (model.onnx) or --int8 (model.int8.onnx)")
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(num_threads)
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3
        providers = ["CPUExecutionProvider"]
        if device in ("gpu", "auto") and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        elif device == "gpu":
            raise UserError("device 'gpu' asked for, but this onnxruntime has no CUDA provider",
                            hint="pip install onnxruntime-gpu, or use device='cpu'")
        try:
            self.session = ort.InferenceSession(model_file, options, providers=providers)
        except Exception as e:
            raise UserError(f"ONNX Runtime could not load {os.path.basename(model_file)}: {e}") from None
        self.device = "gpu" if providers[0].startswith("CUDA") else "cpu"

    def run(self, input_ids: np.ndarray, token_type_ids: np.ndarray) -> np.ndarray:
        return self.session.run(None, {"input_ids": np.ascontiguousarray(input_ids, dtype="int64"),
                                       "token_type_ids": np.ascontiguousarray(token_type_ids, dtype="int64")})[0]


def _resolve_device(device: str) -> str:
    if device not in DEVICES:
        raise UserError(f"device must be one of {', '.join(DEVICES)}, got {device!r}")
    if device == "cpu":
        return "cpu"
    import paddle

    available = paddle.device.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0
    if device == "gpu" and not available:
        raise UserError("device 'gpu' asked for, but this Paddle build sees no CUDA GPU",
                        hint="install paddlepaddle-gpu on a GPU machine, or use device='cpu'")
    return "gpu" if available else "cpu"


# ---------------------------------------------------------------- predictor


class Predictor:
    """Raw text in, labels/entities out, for one export directory (see the module docstring)."""

    def __init__(self, export_dir: str, *, backend: str = "paddle", num_threads: int = 1, use_mkldnn: bool = True,
                 precision: str = "fp32", batch_size: int = 32, max_seq_length: Optional[int] = None,
                 device: str = "cpu", truncation: Optional[str] = None, task: Optional[str] = None):
        if backend not in BACKENDS:
            raise UserError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
        if precision not in PRECISIONS:
            raise UserError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        if batch_size < 1 or num_threads < 1:
            raise UserError("batch_size and num_threads must be at least 1")
        self.encoder = TextEncoder(export_dir, max_seq_length=max_seq_length, truncation=truncation)
        self.meta = self.encoder.meta
        self.task = self.meta["task"]
        self.labels = self.encoder.labels
        if task is not None and task != self.task:
            raise UserError(f"this export is a {self.task} model, but a {task} model was asked for",
                            where=export_dir)
        if backend == "auto":
            backend = "onnx" if precision == "int8" else "paddle"
        if precision == "bf16" and backend == "onnx":
            raise UserError("bf16 is available with backend 'paddle' (oneDNN) only")
        self.backend, self.precision, self.batch_size = backend, precision, int(batch_size)
        self.num_threads = int(num_threads)
        if backend == "paddle":
            self.engine = PaddleEngine(export_dir, num_threads=num_threads, use_mkldnn=use_mkldnn,
                                       precision=precision, device=device)
        else:
            name = ex.INT8_ONNX_FILE if precision == "int8" else ex.ONNX_FILE
            self.engine = OnnxEngine(os.path.join(export_dir, name), num_threads=num_threads, device=device)
        self._lock = threading.Lock()  # one predictor is not safe to run from several threads at once

    # -- low level
    def logits(self, features: Sequence[Dict]) -> List[np.ndarray]:
        """Logits per encoded feature ({"input_ids", "token_type_ids"}), in order: [C] or [L_i, C].

        Batches of `batch_size`, sorted by length (dynamic padding); the original order is restored.
        """
        out: List[Optional[np.ndarray]] = [None] * len(features)
        lengths = [len(f["input_ids"]) for f in features]
        limit = int(self.meta.get("max_position_embeddings") or 512)
        if lengths and (max(lengths) > limit or min(lengths) < 1):
            raise UserError(f"features must have 1..{limit} tokens (the model's position embeddings), "
                            f"got {min(lengths)}..{max(lengths)}")
        order = sorted(range(len(features)), key=lambda i: lengths[i])
        for start in range(0, len(order), self.batch_size):
            idx = order[start:start + self.batch_size]
            ids, types = self.encoder.collate([features[i] for i in idx])
            with self._lock:
                logits = self.engine.run(ids, types)
            for row, i in enumerate(idx):
                out[i] = logits[row] if logits.ndim == 2 else logits[row, : lengths[i]]
        return out

    # -- classification
    def classify(self, texts: Sequence[str]) -> List[Dict]:
        self._require("classification", "classify")
        texts = _check_texts(texts)
        keep = [i for i, t in enumerate(texts) if t.strip()]
        features = [self.encoder.classification_feature(texts[i]) for i in keep]
        truncated = sum(f["truncated"] for f in features)
        if truncated:
            logger.info("%d of %d texts were longer than %d tokens and were truncated (%s)", truncated,
                        len(features), self.encoder.max_seq_length, self.encoder.truncation)
        results: List[Dict] = [{"label": None, "probabilities": None, "error": EMPTY_TEXT} for _ in texts]
        for i, logits in zip(keep, self.logits(features)):
            probs = _softmax(logits.astype("float64"))
            results[i] = {"label": self.labels[int(np.argmax(logits))],
                          "probabilities": {label: float(p) for label, p in zip(self.labels, probs)}}
        return results

    # -- NER
    def tag_words(self, sentences: Sequence[Sequence[str]]) -> Tuple[List[List[str]], List[List[float]]]:
        """IOB2 tags and their probabilities for pre-split words (every word gets a tag)."""
        features, where, offsets = [], [], []
        for words in sentences:
            feats, best = self.encoder.tagging_windows(list(words)) if len(words) else ([], [])
            offsets.append(len(features))
            features += feats
            where.append(best)
        logits = self.logits(features)
        tags, scores = [], []
        for start, best in zip(offsets, where):
            sentence_tags, sentence_scores = [], []
            for k, pos in best:
                feature = features[start + k]
                row = logits[start + k][feature["first_positions"][pos]]
                probs = _softmax(row.astype("float64"))
                j = int(np.argmax(probs))
                sentence_tags.append(self.labels[j])
                sentence_scores.append(float(probs[j]))
            tags.append(sentence_tags)
            scores.append(sentence_scores)
        return tags, scores

    def predict_tokens(self, sentences: Sequence[Sequence[str]]) -> List[List[str]]:
        """IOB2 tags for pre-tokenized sentences (e.g. CoNLL words), one per word, none lost to length."""
        self._require("ner", "predict_tokens")
        for i, words in enumerate(sentences):
            if isinstance(words, str) or not all(isinstance(w, str) for w in words):
                raise UserError(f"item {i}: predict_tokens takes lists of word strings")
        return self.tag_words(sentences)[0]

    def extract_entities(self, texts: Sequence[str]) -> List[Dict]:
        self._require("ner", "extract_entities")
        texts = _check_texts(texts)
        split = [split_words(t) for t in texts]
        tags, scores = self.tag_words([[w for w, _, _ in words] for words in split])
        results = []
        for text, words, sentence_tags, sentence_scores in zip(texts, split, tags, scores):
            entities = []
            for kind, a, b in iob_entities(sentence_tags):
                start, end = words[a][1], words[b - 1][2]
                entities.append({"type": kind, "text": text[start:end], "start": start, "end": end,
                                 "score": float(np.mean(sentence_scores[a:b]))})
            results.append({"entities": entities})
        return results

    def predict(self, texts: Sequence[str]) -> List[Dict]:
        """classify() or extract_entities(), whichever the exported task is."""
        return self.classify(texts) if self.task == "classification" else self.extract_entities(texts)

    def _require(self, task: str, call: str) -> None:
        if self.task != task:
            raise UserError(f"{call}() needs a {task} model, but this export is a {self.task} model "
                            f"(labels {self.labels[:4]}{'...' if len(self.labels) > 4 else ''})")


def _check_texts(texts) -> List[str]:
    if isinstance(texts, str):
        raise UserError("predict() takes a list of texts, not a single string")
    texts = list(texts)
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise UserError(f"item {i} is {type(t).__name__}, expected a string")
    return texts


# ---------------------------------------------------------------- input files (tools/predict.py)


def read_texts_file(path: str) -> List[str]:
    """One text per line (a blank line is an empty text, so output lines match input lines).

    Bytes that are not UTF-8 are replaced with U+FFFD; the count is logged as a warning.
    """
    from .readers import _read_bytes, decode_bytes

    text = decode_bytes(_read_bytes(path, what="text file"), where=path, encoding_errors="replace")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.rstrip("\r") for line in lines]


def read_jsonl_texts(stream, where: str = "stdin") -> List[str]:
    """{"text": ...} per line (blank lines skipped); a bad line raises UserError naming its line number."""
    import json

    texts = []
    for number, raw in enumerate(stream, 1):
        line = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as e:
            raise UserError(f"not valid JSON: {e}", where=f"{where}:{number}",
                            hint='expected one {"text": "..."} object per line') from None
        if not isinstance(record, dict) or not isinstance(record.get("text"), str):
            raise UserError('expected an object with a string "text" field', where=f"{where}:{number}")
        texts.append(record["text"])
    return texts


# ---------------------------------------------------------------- HTTP service (tools/serve.py)


def create_app(predictor: Predictor, *, max_request_bytes: int = 1 << 20, max_batch_size: int = 64,
               max_text_chars: int = 100_000):
    """A FastAPI app: POST /predict {"texts": [...]} -> {"results": [...]}, GET /health.

    4xx answers: 400 body is not JSON; 413 body larger than max_request_bytes, more than max_batch_size
    texts, or a text longer than max_text_chars; 422 no "texts" list, an empty list, a non-string or an
    empty/whitespace-only text. The predictor runs in a worker thread (one request at a time).
    """
    import json

    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse
    from starlette.concurrency import run_in_threadpool

    app = FastAPI(title="ernie_tiny_distill predictor", version="1")
    info = {"task": predictor.task, "labels": predictor.labels, "backend": predictor.backend,
            "precision": predictor.precision, "max_seq_length": predictor.encoder.max_seq_length,
            "model": os.path.basename(os.path.abspath(predictor.encoder.export_dir))}

    def fail(status: int, message: str):
        return JSONResponse({"error": message}, status_code=status)

    def health():
        return {"status": "ok", **info}

    async def predict(request):
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > max_request_bytes:
            return fail(413, f"request body is larger than {max_request_bytes} bytes")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > max_request_bytes:
                return fail(413, f"request body is larger than {max_request_bytes} bytes")
        try:
            payload = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            return fail(400, f"request body is not valid UTF-8 JSON: {e}")
        texts = payload.get("texts") if isinstance(payload, dict) else None
        if not isinstance(texts, list):
            return fail(422, 'expected a JSON object {"texts": ["...", ...]}')
        if not texts:
            return fail(422, '"texts" is empty')
        if len(texts) > max_batch_size:
            return fail(413, f"{len(texts)} texts in one request; the limit is {max_batch_size}")
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                return fail(422, f"texts[{i}] is not a string")
            if not t.strip():
                return fail(422, f"texts[{i}] is empty")
            if len(t) > max_text_chars:
                return fail(413, f"texts[{i}] has {len(t)} characters; the limit is {max_text_chars}")
        try:
            results = await run_in_threadpool(predictor.predict, texts)
        except UserError as e:
            return fail(422, str(e))
        return {"task": predictor.task, "results": results}

    predict.__annotations__ = {"request": Request}  # explicit: this module uses postponed annotations
    app.get("/health")(health)
    app.post("/predict")(predict)
    return app


def evaluate_export(predictor: "Predictor", examples: Sequence) -> Dict:
    """The task metric of an exported model on labeled examples, computed as training-time evaluation does."""
    from . import metrics

    task = predictor.meta["task"]
    if task == "ner":
        predicted = predictor.predict_tokens([ex.tokens for ex in examples])
        return metrics.tagging_metrics([ex.tags for ex in examples], predicted)
    predicted = [r["label"] for r in predictor.classify([ex.text for ex in examples])]
    return metrics.classification_metrics([ex.label for ex in examples], predicted, predictor.meta["labels"])
