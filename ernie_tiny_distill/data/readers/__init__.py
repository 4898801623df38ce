"""Data readers: IMDB, CoNLL, MSRA, plain text, `LABEL text` lines and CSV/TSV/JSONL into example lists.

One module per job: text (bytes to text, plain-text files), imdb (+ imdb_layout, imdb_cache), tagging (CoNLL,
MSRA), tables (CSV/TSV/JSONL), lines (`LABEL text`), labels (class names, label sets), splits (train/dev).
"""
from __future__ import annotations

from ernie_tiny_distill.data.readers.imdb import read_imdb
from ernie_tiny_distill.data.readers.labels import check_labels_known, label_set, read_label_names
from ernie_tiny_distill.data.readers.lines import read_label_text
from ernie_tiny_distill.data.readers.splits import is_stratified, split_train_dev
from ernie_tiny_distill.data.readers.tables import read_classification_file
from ernie_tiny_distill.data.readers.tagging import read_conll, read_msra
from ernie_tiny_distill.data.readers.text import decode_bytes, read_bytes, read_plain_text

__all__ = [
    "read_imdb",
    "read_plain_text",
    "read_conll",
    "read_msra",
    "read_classification_file",
    "read_label_text",
    "read_label_names",
    "decode_bytes",
    "read_bytes",
    "is_stratified",
    "split_train_dev",
    "label_set",
    "check_labels_known",
]
