"""Compatibility names for serving: the code lives in deploy/ (predictor.py, encoding.py, engines.py, words.py,
inputs.py, service.py)."""
from __future__ import annotations

from .decoding import entity_spans as iob_entities  # noqa: F401
from .deploy.encoding import LONG_TEXT_CHARS, WORD_CACHE_SIZE, TextEncoder, best_window, make_windows  # noqa: F401
from .deploy.engines import DEVICES, OnnxEngine, PaddleEngine  # noqa: F401
from .deploy.inputs import read_jsonl_items, read_jsonl_texts, read_texts_file  # noqa: F401
from .deploy.predictor import BACKENDS, EMPTY_TEXT, PRECISIONS, Predictor, evaluate_export  # noqa: F401
from .deploy.service import create_app  # noqa: F401
from .deploy.words import split_words  # noqa: F401
