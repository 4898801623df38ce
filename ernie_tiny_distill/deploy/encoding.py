"""Text encoding for serving: raw text or words -> padded model inputs, through the Task's public API.

Classification keeps max_seq_length tokens as in training ("head" or "head_tail"), or, for a model trained with
model.long_document windows, reads every window and pools their logits as in training. NER never drops a
word: a sentence longer than max_seq_length is cut into overlapping word windows (stride half a window)
and each word takes the prediction of the window in which it has the most context on its poorer side.
"""
from __future__ import annotations

import os
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ernie_tiny_distill.deploy import layout
from ernie_tiny_distill.deploy import words as words_mod
from ernie_tiny_distill.deploy.packing import pack
from ernie_tiny_distill.errors import UserError
from ernie_tiny_distill.tasks import adapters as tasks
from ernie_tiny_distill.tasks.base import DEFAULT_DECODING
from ernie_tiny_distill.tasks.decoding import DECODINGS

WORD_CACHE_SIZE = 200_000  # memoized word -> pieces entries per encoder (cleared when full)


class TextEncoder:
    """Tokenizer + task rules of an export directory: raw text or words -> model features (no model needed)."""

    def __init__(self, export_dir: str, *, max_seq_length: Optional[int] = None, truncation: Optional[str] = None,
                 word_splitter: Optional[str] = None, decoding: Optional[str] = None,
                 long_document: Optional[Dict] = None):
        self.export_dir = export_dir
        self.meta = layout.read_export_metadata(export_dir)
        layout.check_listed_files(export_dir, self.meta)
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
        layout.check_vocab(export_dir, self.meta, self.tokenizer)
        self.pad_token_id = int(self.meta.get("pad_token_id", 0))
        self.word_splitter = word_splitter or self.meta.get("word_splitter") or words_mod.DEFAULT_SPLITTER
        if self.word_splitter not in words_mod.SPLITTERS:
            raise UserError(f"word splitter must be one of {', '.join(words_mod.SPLITTERS)}, "
                            f"got {self.word_splitter!r}")
        decoding = decoding or self.meta.get("decoding") or DEFAULT_DECODING
        if decoding not in DECODINGS:
            raise UserError(f"decoding must be one of {', '.join(DECODINGS)}, got {decoding!r}")
        self.task = tasks.make_task(self.task_name, self.tokenizer, self.labels, self.max_seq_length,
                                    self.truncation, decoding, _long_document(self.meta, long_document),
                                    case_ids=bool(self.meta.get("case_ids")))  # as in training: export.json
        self.budget = self.max_seq_length - 2
        self._word_cache: Dict[str, List[int]] = {}

    def words(self, text: str) -> Tuple[List[str], List[Tuple[int, int]]]:
        """The words of raw text (this export's word splitter, after NFC) and their offsets in `text`."""
        return words_mod.words_and_offsets(text, self.word_splitter)

    def clear_cache(self) -> None:
        """Forget memoized word pieces, here and in the tokenizer (for timing tokenization from cold)."""
        self._word_cache.clear()
        self.task.wordpieces.clear()

    # -- classification
    def classification_feature(self, text: str) -> Dict:
        """Model inputs of one text as in training (Task.document_feature): truncated, or every window of a long
        document (export.json `long_document`), which `windows` then lists. Truncation tokenizes only the
        kept ends of a long text (tasks/tokenizer.py)."""
        return self.task.text_feature(text)

    # -- tagging
    def word_pieces(self, words: Sequence[str]) -> List[List[int]]:
        """Pieces per word, as TaggingTask.word_pieces (an untokenizable word gets [UNK]), capped at the
        window budget. Words repeat a lot, so their pieces are memoized (the tokenizer call dominates)."""
        cache = self._word_cache
        out = [cache.get(w) for w in words]
        if None not in out:
            return out
        new = list(dict.fromkeys(w for w, pieces in zip(words, out) if pieces is None))
        if len(cache) + len(new) > WORD_CACHE_SIZE:
            cache.clear()
        fresh = {w: pieces[: self.budget] for w, pieces in zip(new, self.task.word_pieces(new))}  # one call
        cache.update(fresh)
        return [fresh[w] if pieces is None else pieces for w, pieces in zip(words, out)]

    def tagging_windows(self, words: Sequence[str]) -> Tuple[List[Dict], List[Tuple[int, int]]]:
        """Window features for one sentence and, per word, (window number, position in that window)."""
        return self.task.sentence_windows(self.word_pieces(words), self.task.word_cases(words))

    # -- both
    def calibration_features(self, texts: Sequence[str]) -> List[Dict]:
        """Model inputs for calibration/agreement checks: one per text (classification) or per window (NER)."""
        return self.task.serving_features(self, [t for t in texts if isinstance(t, str) and t.strip()])

    def collate(self, features: Sequence[Dict]) -> Tuple[np.ndarray, np.ndarray]:
        return collate(features, self.pad_token_id)


def collate(features: Sequence[Dict], pad_token_id: int) -> Tuple[np.ndarray, np.ndarray]:
    """Pad to the longest feature with pad_token_id: int64 input_ids, token_type_ids [B, L]."""
    return pack(features, max(len(f["input_ids"]) for f in features), pad_token_id)


def _long_document(meta: Dict, override: Optional[Dict]) -> Optional[Dict]:
    """export.json's long_document, or `override` ({stride, max_windows, pooling}): e.g. a model fine-tuned on
    truncated text read as windows at inference (no retraining)."""
    return dict(override) if override is not None else meta.get("long_document")


def _load_tokenizer(export_dir: str):
    from paddlenlp.transformers import AutoTokenizer

    if not os.path.isfile(os.path.join(export_dir, "tokenizer_config.json")):
        raise UserError("incomplete export directory: tokenizer_config.json is missing", where=export_dir)
    try:
        return AutoTokenizer.from_pretrained(export_dir)
    except Exception as e:  # PaddleNLP raises assorted errors for missing/corrupt vocabularies
        raise UserError(f"could not load the tokenizer: {e}", where=export_dir) from None
