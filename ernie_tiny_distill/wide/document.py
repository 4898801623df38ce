"""The wide part at document level (model.wide.level 'document'): weighted word-piece n-grams of the whole document,
one linear layer.

The window-level table (wide.py) lives inside the exported graph and averages its rows over each window; that
function class is a poor copy of TF-IDF + LR, which weighs each n-gram of the *whole* review by a sublinear count
and an idf, and normalises the review's vector to unit length (on IMDB the window-level table learned 89.5% alone
against TF-IDF + LR's 90.6%). This part computes exactly that kind of vector, over word pieces:

    slots  = the n-gram slots (wide.ngram_slots: unigram ids, hashed bigrams) of every window of the document
    x[s]   = tf(count[s]) * weight[s] for the slots it knows, then x / ||x||
    logits = x @ table + bias                                                           [C]

with model.wide.weighting (WEIGHTINGS)
    tfidf: tf = 1 + log count, weight = smoothed idf (TfidfVectorizer(sublinear_tf=True) over these n-grams)
    nb:    tf = 1 (presence), weight = the naive-Bayes log-count ratio of the labeled training documents,
           log((p / |p|) / (q / |q|)) with p, q = 1 + the documents of each label holding the n-gram -- NBSVM's
           features (Wang & Manning, 2012), two labels only

Windows overlap, so an n-gram in an overlap is counted in each window that reads it; training, evaluation and the
Predictor count the same windows, so they compute the same vector. It needs the whole document at once, so it is
added after the windows' logits are pooled (Task.pool), outside the exported graph: the export directory holds
DOCUMENT_CONFIG and DOCUMENT_WEIGHTS beside the inference model, and the Predictor adds the part in numpy (one
np.unique and a dot product per review).
"""
from __future__ import annotations

import json
import os
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ernie_tiny_distill.errors import UserError
from ernie_tiny_distill.util import filemodes
from ernie_tiny_distill.wide.config import WIDE_WEIGHTINGS as WEIGHTINGS
from ernie_tiny_distill.wide.window import HASH_MULTIPLIER, WideSpec, ngram_slots, read_spec

DOCUMENT_CONFIG = "wide_document.json"
DOCUMENT_WEIGHTS = "wide_document.safetensors"
METADATA_KEY = "wide_document"  # in task.json / export.json: the table's settings when it was saved


def document_slots(feature: Dict, spec: WideSpec) -> np.ndarray:
    """Every n-gram slot of the feature's windows (a short document: its one row)."""
    rows = feature.get("windows", [feature])
    return np.concatenate([ngram_slots(r["input_ids"], spec) for r in rows]) if rows else np.zeros(0, np.int64)


def slot_counts(feature: Dict, spec: WideSpec) -> Tuple[np.ndarray, np.ndarray]:
    """(distinct slots, their counts) of a document."""
    return np.unique(document_slots(feature, spec), return_counts=True)


class DocumentTable:
    """x(document) @ table + bias over the `slots` it knows (sorted slot ids, their weights and table rows)."""

    def __init__(self, spec: WideSpec, slots: np.ndarray, weights: np.ndarray, table: np.ndarray, bias: np.ndarray,
                 weighting: str = "tfidf"):
        if weighting not in WEIGHTINGS:
            raise ValueError(f"weighting must be one of {', '.join(WEIGHTINGS)}, got {weighting!r}")
        self.spec = spec
        self.weighting = weighting
        self.slots = np.asarray(slots, dtype=np.int64)
        self.weights = np.asarray(weights, dtype=np.float32)
        self.table = np.asarray(table, dtype=np.float32)
        self.bias = np.asarray(bias, dtype=np.float32)
        if self.table.shape != (len(self.slots), len(self.bias)) or self.weights.shape != self.slots.shape:
            raise ValueError(f"inconsistent document table: {len(self.slots)} slots, {len(self.weights)} weights, "
                             f"table {list(self.table.shape)}, bias {list(self.bias.shape)}")
        if len(self.slots) > 1 and np.any(np.diff(self.slots) <= 0):
            raise ValueError("document table slots must be sorted and distinct")

    @property
    def num_labels(self) -> int:
        return int(self.table.shape[1])

    def vector(self, feature: Dict) -> Tuple[np.ndarray, np.ndarray]:
        """(row indices into the table, values): the document's unit-length weighted vector."""
        return document_vector(*slot_counts(feature, self.spec), self.slots, self.weights, self.weighting)

    def logits(self, features: Sequence[Dict]) -> np.ndarray:
        out = np.tile(self.bias, (len(features), 1))
        for i, f in enumerate(features):
            rows, values = self.vector(f)
            out[i] += values @ self.table[rows]
        return out

    def add_to(self, features: Sequence[Dict], pooled: Sequence[np.ndarray]) -> List[np.ndarray]:
        """Pooled transformer logits per document plus this part's."""
        return [np.asarray(p) + w.astype(np.asarray(p).dtype) for p, w in zip(pooled, self.logits(features))]

    def record(self) -> Dict:
        """What its hashing depends on: recorded in task.json / export.json at saving, checked on load."""
        return {"vocab_size": int(self.spec.vocab_size), "buckets": int(self.spec.buckets),
                "pad_token_id": int(self.spec.pad_token_id), "weighting": self.weighting}

    def metadata(self) -> Dict:
        """The keys it adds to task.json / export.json (check_table reads them back)."""
        return {METADATA_KEY: self.record()}

    def save(self, path: str) -> None:
        from safetensors.numpy import save_file

        with open(os.path.join(path, DOCUMENT_CONFIG), "w", encoding="utf-8") as f:
            json.dump({"vocab_size": self.spec.vocab_size, "buckets": self.spec.buckets,
                       "pad_token_id": self.spec.pad_token_id, "num_labels": self.num_labels,
                       "hash_multiplier": HASH_MULTIPLIER, "weighting": self.weighting}, f, indent=2)
        weights = os.path.join(path, DOCUMENT_WEIGHTS)
        save_file({"slots": self.slots, "weights": self.weights, "table": self.table, "bias": self.bias}, weights)
        filemodes.as_umask_file(weights)  # safetensors writes 0600: a service running as another user reads it

    @classmethod
    def load(cls, path: str) -> "DocumentTable":
        from safetensors.numpy import load_file

        spec, raw = read_spec(os.path.join(path, DOCUMENT_CONFIG), "document-level wide config")
        weights = os.path.join(path, DOCUMENT_WEIGHTS)
        try:
            arrays = load_file(weights)
            # tables written before model.wide.weighting (one scheme, TF-IDF) named their weights "idf"
            weights_of = arrays["weights"] if "weights" in arrays else arrays["idf"]
            table = cls(spec, arrays["slots"], weights_of, arrays["table"], arrays["bias"],
                        raw.get("weighting", "tfidf"))
        except Exception as e:  # missing file or tensor, truncated header, inconsistent shapes
            raise UserError(f"cannot read the document-level wide table: {str(e)[:160]}", where=weights) from None
        if table.num_labels != int(raw["num_labels"]):
            raise UserError(f"the document-level wide table has {table.num_labels} outputs, its config says "
                            f"{raw['num_labels']}", where=weights)
        return table


def document_vector(distinct: np.ndarray, counts: np.ndarray, slots: np.ndarray, weights: np.ndarray,
                    weighting: str = "tfidf") -> Tuple[np.ndarray, np.ndarray]:
    """Rows of `slots` the document's distinct slots hit, and tf(count) * weight normalised to unit length over
    those rows (slots the table does not know are left out, as TfidfVectorizer leaves unknown terms out); tf is
    1 + log count for 'tfidf', 1 for 'nb'."""
    if not len(slots) or not len(distinct):
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    rows, known = _rows_of(slots, distinct)
    tf = 1.0 + np.log(counts[known].astype(np.float64)) if weighting == "tfidf" else np.ones(len(rows))
    values = tf * weights[rows]
    norm = float(np.sqrt((values ** 2).sum()))
    return rows, (values / norm if norm > 0 else values).astype(np.float32)


def _rows_of(slots: np.ndarray, distinct: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """(rows of the sorted `slots` that the sorted `distinct` slots hit, which of `distinct` hit one)."""
    if not len(slots):
        return np.zeros(0, np.int64), np.zeros(len(distinct), bool)
    rows = np.minimum(np.searchsorted(slots, distinct), len(slots) - 1)
    known = slots[rows] == distinct
    return rows[known], known


def has_document_table(path: str) -> bool:
    return os.path.isfile(os.path.join(path, DOCUMENT_CONFIG))


def check_table(table: DocumentTable, meta: Optional[Dict], rows: int, where: str, recorded_in: str) -> None:
    """A wide_document.json edited after saving hashes n-grams into other slots (wrong answers, no error): its
    vocabulary must be the model's and its settings the ones recorded beside the model."""
    if table.spec.vocab_size != rows:
        raise UserError(f"vocab_size {table.spec.vocab_size}, but the model's word embeddings have {rows} rows",
                        where=where, hint="restore the wide_document.json saved with this model")
    if len(table.slots) and int(table.slots.max()) >= table.spec.rows:
        raise UserError(f"buckets {table.spec.buckets}: the table holds slot {int(table.slots.max())}, beyond the "
                        f"{table.spec.rows} slots of vocab_size + buckets", where=where,
                        hint="restore the wide_document.json saved with this model")
    expected = (meta or {}).get(METADATA_KEY) if isinstance(meta, dict) else None
    if expected and expected != table.record():
        raise UserError(f"settings {table.record()} differ from the ones {recorded_in} recorded when it "
                        f"was saved ({expected})", where=where,
                        hint="restore the wide_document.json saved with this model")


def design_matrix(counted: Sequence[Tuple[np.ndarray, np.ndarray]], slots: np.ndarray, weights: np.ndarray,
                  weighting: str = "tfidf"):
    """scipy CSR [documents, len(slots)] of the documents' vectors (for fitting the table), from each document's
    slot_counts."""
    import scipy.sparse as sps

    indptr, indices, data = [0], [], []
    for distinct, counts in counted:
        rows, values = document_vector(distinct, counts, slots, weights, weighting)
        indices.append(rows)
        data.append(values)
        indptr.append(indptr[-1] + len(rows))
    return sps.csr_matrix((np.concatenate(data) if data else np.zeros(0, np.float32),
                           np.concatenate(indices) if indices else np.zeros(0, np.int64), np.asarray(indptr)),
                          shape=(len(counted), len(slots)))


def vocabulary(counted: Sequence[Tuple[np.ndarray, np.ndarray]], min_df: int = 1) -> Tuple[np.ndarray, np.ndarray]:
    """(sorted slots seen in at least `min_df` of the documents, their smoothed idf) -- TfidfVectorizer's
    idf = ln((1 + n) / (1 + df)) + 1 -- from each document's slot_counts. Text only: no labels are read."""
    every = np.concatenate([distinct for distinct, _ in counted]) if counted else np.zeros(0, np.int64)
    slots, df = np.unique(every, return_counts=True)
    keep = df >= min_df
    slots, df = slots[keep], df[keep]
    idf = np.log((1.0 + len(counted)) / (1.0 + df)) + 1.0
    return slots.astype(np.int64), idf.astype(np.float32)


def nb_ratios(counted: Sequence[Tuple[np.ndarray, np.ndarray]], labels: Sequence[int], slots: np.ndarray) -> np.ndarray:
    """The naive-Bayes log-count ratio of each slot, log((p / |p|) / (q / |q|)), p and q = 1 + the number of
    documents labeled 1 and 0 that hold it (labels -100: a transfer document, not counted). Two labels. `counted`:
    each document's slot_counts."""
    pos, neg = np.ones(len(slots)), np.ones(len(slots))
    for (distinct, _), label in zip(counted, labels):
        if label not in (0, 1):
            continue
        rows, _ = _rows_of(slots, distinct)
        (pos if label == 1 else neg)[rows] += 1
    return np.log((pos / pos.sum()) / (neg / neg.sum())).astype(np.float32)
