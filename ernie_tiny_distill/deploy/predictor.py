"""The Predictor: raw text (or pre-split words) in, labels/entities out, for one export directory.

    from ernie_tiny_distill.deploy.predictor import Predictor
    p = Predictor("exports/imdb_student", num_threads=2)
    p.predict(["A wonderful film.", "Dull and far too long."])
    # classification -> [{"label": "pos", "probabilities": {"neg": 0.03, "pos": 0.97}}, ...]
    # NER            -> [{"entities": [{"type": "PER", "text": "Angela Merkel", "start": 0, "end": 13,
    #                                   "start_token": 0, "end_token": 2, "score": 0.98}, ...]}, ...]

Defined results and errors:
- text with nothing to read (whitespace, control/format characters such as U+200B, U+0000; words.is_blank)
  is an empty text: classification gives {"label": None, "probabilities": None,
  "error": "empty text"}; NER gives {"entities": []}. Neither is an exception, so one bad line in a batch
  does not fail the others. A non-string item raises UserError naming its index.
- NER items may be pre-split words (a list of strings) instead of text: entities then carry the word span
  (start_token, end_token) and the words joined by spaces, no character offsets. A blank word is tagged O
  without being read by the model, so it is never (part of) an entity.
- an item whose model output is not finite (a logit overflowing to inf) gets {"error": NON_FINITE} (label
  and probabilities None, or no entities) and a warning in the log; the other items and later calls are
  unaffected.
- with Paddle Inference, inputs are padded to length buckets (BUCKETS), so a stream of varying lengths repeats a
  few shapes and oneDNN does not rebuild its kernels for every new length (ONNX Runtime has no per-shape
  kernels: exact lengths); `profile=True` keeps per-stage times (Stats).
- backend "auto" (FP32, with model.onnx in the export) times both engines at load and keeps the faster: Paddle
  Inference has a per-call floor of ~2 ms that ONNX Runtime lacks, which decides it for small students.
- long text: see encoding.py (truncation as in training, or pooled windows for a model trained with
  model.long_document windows, or for any classifier given `long_document={...}`; NER word windows, no word
  dropped).
- NER tags are decoded by the Task (argmax or IOB2-constrained Viterbi) and entities by the metric's own
  decoder (seqeval strict IOB2, decoding.entity_spans): what is served is what is scored.
- the Rust tokenizer runs on the calling thread (TOKENIZERS_PARALLELISM=false unless set otherwise).
- a missing or incomplete export directory, a wrong task, labels.json that does not match the model's
  outputs, a model whose logits are not finite at load, an unsupported backend/precision: UserError.
"""
from __future__ import annotations

import contextlib
import copy
import logging
import os
import threading
import time
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from ernie_tiny_distill import extensions
from ernie_tiny_distill.deploy import layout
from ernie_tiny_distill.deploy.encoding import TextEncoder
from ernie_tiny_distill.deploy.engines import OnnxEngine, PaddleEngine, check_finite
from ernie_tiny_distill.deploy.packing import BUCKETS, length_batches, pack
from ernie_tiny_distill.errors import UserError
from ernie_tiny_distill.tasks.serving import Item, check_items

logger = logging.getLogger(__name__)

BACKENDS = ("paddle", "onnx", "auto")
PRECISIONS = ("fp32", "bf16", "int8")
STAGES = ("tokenize", "pack", "engine", "decode")
_NOT_TIMED = contextlib.nullcontext()


def probe_inputs(vocab_size: int, pad_token_id: int, seed: int = 0) -> np.ndarray:
    """A small int64 batch with different real lengths (padded with pad_token_id), for parity and load checks."""
    rng = np.random.default_rng(seed)
    lengths = [24, 17, 9, 3]
    ids = np.full((len(lengths), max(lengths)), pad_token_id, dtype="int64")
    low = min(5, vocab_size - 1)
    for i, n in enumerate(lengths):
        row = rng.integers(low, vocab_size, size=n)
        row[row == pad_token_id] = low
        ids[i, :n] = row
    return ids


def window_rows(features: Sequence[Dict]) -> List[Dict]:
    """The model inputs of features: one row per window of a long document, else the feature itself."""
    return [w for f in features for w in f.get("windows", [f])]


def pool_windows(task, features: Sequence[Dict], row_logits: Sequence[np.ndarray]) -> List[np.ndarray]:
    """Logits per feature from the logits of its `window_rows`: a long document's windows pooled as in training
    (task.pool_numpy), [C]; a feature without windows keeps its own row."""
    out, start = [], 0
    for f in features:
        n = len(f.get("windows", [f]))
        out.append(task.pool_numpy(np.stack(row_logits[start:start + n])) if "windows" in f else row_logits[start])
        start += n
    return out


def logits_by_length(run, task, features: Sequence[Dict], pad_token_id: int, batch_size: int,
                     on_batch=None, buckets: Optional[Sequence[int]] = None) -> List[np.ndarray]:
    """Logits per feature in order ([C] or [L_i, C]) from `run(input_ids, token_type_ids)`: batches of
    `batch_size` sorted by length (dynamic padding, or `buckets`), the original order restored; `on_batch(n)`
    after each."""
    out: List[Optional[np.ndarray]] = [None] * len(features)
    lengths = [len(f["input_ids"]) for f in features]
    for length, idx in length_batches(lengths, batch_size, buckets):
        logits = run(*pack([features[i] for i in idx], length, pad_token_id))  # [B, C] or [B, L, C]
        for row, i in enumerate(idx):
            out[i] = task.slice_logits(logits, row, lengths[i])
        if on_batch is not None:
            on_batch(len(idx))
    return out


class Stats:
    """Seconds spent per stage (tokenize, pack, engine, decode), items predicted and engine calls."""

    def __init__(self):
        self.seconds = dict.fromkeys(STAGES, 0.0)
        self.items = 0
        self.engine_calls = 0

    def per_item_ms(self) -> Dict[str, float]:
        """Milliseconds per predicted item, per stage and in total."""
        n = max(1, self.items)
        out = {k: 1000 * v / n for k, v in self.seconds.items()}
        out["total"] = sum(out.values())
        return out


class Predictor:
    """Raw text in, labels/entities out, for one export directory (see the module docstring)."""

    def __init__(self, export_dir: str, *, backend: str = "paddle", num_threads: int = 1, use_mkldnn: bool = True,
                 precision: str = "fp32", batch_size: int = 32, max_seq_length: Optional[int] = None,
                 device: str = "cpu", truncation: Optional[str] = None, task: Optional[str] = None,
                 word_splitter: Optional[str] = None, decoding: Optional[str] = None,
                 long_document: Optional[Dict] = None, buckets: Union[str, Sequence[int], None] = "auto",
                 profile: bool = False):
        if backend not in BACKENDS:
            raise UserError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
        if precision not in PRECISIONS:
            raise UserError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        if batch_size < 1 or num_threads < 1:
            raise UserError("batch_size and num_threads must be at least 1")
        # a request brings a few new words: the Rust tokenizer's thread pool costs more to wake than it saves
        # (mean 0.22 vs 0.04 ms per call on a loaded 2-core machine), so it runs on the calling thread
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        self.encoder = TextEncoder(export_dir, max_seq_length=max_seq_length, truncation=truncation,
                                   word_splitter=word_splitter, decoding=decoding, long_document=long_document)
        self.meta = self.encoder.meta
        self.task = self.meta["task"]
        self.labels = self.encoder.labels
        if task is not None and task != self.task:
            raise UserError(f"this export is a {self.task} model, but a {task} model was asked for",
                            where=export_dir)
        if precision == "bf16" and backend == "onnx":
            raise UserError("bf16 is available with backend 'paddle' (oneDNN) only")
        self.precision, self.batch_size = precision, int(batch_size)
        self.num_threads = int(num_threads)
        self.limit = int(self.meta.get("max_position_embeddings") or 512)

        def load(name: str):
            if name == "paddle":
                return PaddleEngine(export_dir, num_threads=num_threads, use_mkldnn=use_mkldnn,
                                    precision=precision, device=device)
            file = layout.INT8_ONNX_FILE if precision == "int8" else layout.ONNX_FILE
            return OnnxEngine(os.path.join(export_dir, file), num_threads=num_threads, device=device)

        if backend != "auto":
            self.backend, self.engine = backend, load(backend)
        elif precision != "fp32" or not os.path.isfile(os.path.join(export_dir, layout.ONNX_FILE)):
            self.backend = "onnx" if precision == "int8" else "paddle"  # the only engine for this precision
            self.engine = load(self.backend)
        else:
            self.backend, self.engine = self._faster({name: load(name) for name in ("paddle", "onnx")})
        if isinstance(buckets, str):
            if buckets != "auto":
                raise UserError(f"buckets must be 'auto', None or a list of lengths, got {buckets!r}")
            buckets = BUCKETS if self.engine.pads_to_buckets else None
        self.buckets = tuple(b for b in buckets if b <= self.limit) if buckets else None
        # a part an extension saved in the export: added to each document's pooled logits (extensions.py)
        self.document_table = extensions.export_document_table(export_dir, self.meta)
        self._lock = threading.Lock()  # one predictor is not safe to run from several threads at once
        self.stats: Optional[Stats] = Stats() if profile else None
        self.post = self.encoder.task.post_processor(self)  # the task's post-processing, chosen once
        self._check_model()

    def _faster(self, engines: Dict) -> Tuple[str, object]:
        """The engine with the lower median time over inputs of 16 and 128 tokens, timed in turns (backend auto:
        Paddle Inference has a per-call floor that ONNX Runtime lacks on small models, not on large ones)."""
        vocab = int(self.meta.get("vocab_size") or 100)
        ids = probe_inputs(vocab, self.encoder.pad_token_id)[:1]
        shapes = [np.resize(ids, (1, n)) for n in (16, min(128, self.limit))]
        times: Dict[str, List[float]] = {name: [] for name in engines}
        for turn in range(12):
            for name, engine in engines.items():
                for x in shapes:
                    start = time.perf_counter()
                    engine.run(x, np.zeros_like(x))
                    if turn >= 2:  # the first turns build kernels
                        times[name].append(time.perf_counter() - start)
        ms = {name: 1000 * float(np.median(t)) for name, t in times.items()}
        best = min(ms, key=ms.get)
        logger.info("backend auto: %s (median ms per call at 16 and 128 tokens: %s)", best,
                    ", ".join(f"{k} {v:.2f}" for k, v in ms.items()))
        return best, engines[best]

    def clone(self) -> "Predictor":
        """A predictor sharing this one's tokenizer and weights with an engine of its own (a server worker)."""
        other = copy.copy(self)
        other.engine = self.engine.clone()
        other._lock = threading.Lock()
        other.stats = Stats() if self.stats is not None else None
        other.post = other.encoder.task.post_processor(other)
        return other

    def _check_model(self) -> None:
        """Run the model once: its outputs must be finite and match labels.json, or it is refused at load."""
        where = self.encoder.export_dir
        ids = probe_inputs(int(self.meta.get("vocab_size") or 100), self.encoder.pad_token_id)[:, :8]
        logits = check_finite(self.engine.run(ids, np.zeros_like(ids)), where)
        if logits.shape[-1] != len(self.labels):
            raise UserError(f"{layout.LABELS_FILE} has {len(self.labels)} labels but the model has "
                            f"{logits.shape[-1]} outputs", where=os.path.join(where, layout.LABELS_FILE),
                            hint="restore the labels.json written by tools/export.py (index = logit column)")
        if self.buckets:  # each bucket's kernels are built now, not on the first request of that length
            for length in self.buckets[:4]:
                self.engine.run(*pack([{"input_ids": [0], "token_type_ids": [0]}], length, 0))

    def stage(self, name: str):
        """Counts the seconds of the block toward stage `name` when profiling (Stats); else a shared no-op
        context (a request passes several stages: a generator per stage would cost more than the timing)."""
        return _NOT_TIMED if self.stats is None else self._timed(name)

    @contextlib.contextmanager
    def _timed(self, name: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.stats.seconds[name] += time.perf_counter() - start

    # -- low level
    def logits(self, features: Sequence[Dict]) -> List[np.ndarray]:
        """Logits per encoded feature ({"input_ids", "token_type_ids"}), in order: [C] or [L_i, C].

        Sorted by length into calls of at most `batch_size` padded to a bucket; the original order is restored.
        Non-finite rows are returned as they are (the callers fail those items only).
        """
        lengths = [len(f["input_ids"]) for f in features]
        if lengths and (max(lengths) > self.limit or min(lengths) < 1):
            raise UserError(f"features must have 1..{self.limit} tokens (the model's position embeddings), "
                            f"got {min(lengths)}..{max(lengths)}")
        out: List[Optional[np.ndarray]] = [None] * len(features)
        task = self.encoder.task
        for length, idx in length_batches(lengths, self.batch_size, self.buckets):
            with self.stage("pack"):
                ids, types = pack([features[i] for i in idx], length, self.encoder.pad_token_id)
            with self.stage("engine"), self._lock:
                logits = self.engine.run(ids, types)  # [B, C] or [B, L, C]
            for row, i in enumerate(idx):
                out[i] = task.slice_logits(logits, row, lengths[i])
            if self.stats is not None:
                self.stats.engine_calls += 1
        return out

    def document_logits(self, features: Sequence[Dict]) -> List[np.ndarray]:
        """Logits [C] per text feature; a long document's windows are scored and pooled as in training."""
        if not any("windows" in f for f in features):
            pooled = self.logits(features)
        else:
            pooled = pool_windows(self.encoder.task, features, self.logits(window_rows(features)))
        return self.document_table.add_to(features, pooled) if self.document_table is not None else pooled

    def predict(self, items: Sequence[Item]) -> List[Dict]:
        """Labels (classification) or entities (NER) of raw texts, or of pre-split word lists for NER."""
        results = self.post(check_items(items, words_allowed=self.post.accepts_words))
        if self.stats is not None:
            self.stats.items += len(results)
        return results


def evaluate_export(predictor: Predictor, examples: Sequence, where: str = "data") -> Dict:
    """The task metric of what the exported model serves for labeled examples (labels checked first)."""
    predictor.encoder.task.check_examples(examples, where)
    return predictor.post.score(examples)
