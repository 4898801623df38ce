"""Teacher logits computed once per (teacher, data) and stored on disk, validated against both before reuse."""
from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import time
import zipfile
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ernie_tiny_distill.errors import UserError
from ernie_tiny_distill.tasks.base import Feature, Task
from ernie_tiny_distill.util import fsutil

logger = logging.getLogger(__name__)

FORMAT_VERSION = 2  # 2: keyed by content digests, with a digest record per file


# Every file that holds (or indexes) weights: a sharded checkpoint is model-0000N-of-0000M.safetensors plus
# model.safetensors.index.json; .pdparams for PaddleNLP directories.
_WEIGHT_SUFFIXES = (".safetensors", ".safetensors.index.json", ".pdparams", ".pdparams.index.json")


def weight_files(teacher_dir: str) -> List[str]:
    """The teacher's weight files, sorted by name (model.safetensors alone for an unsharded teacher)."""
    if not os.path.isdir(teacher_dir):
        return []
    return sorted(os.path.join(teacher_dir, name) for name in os.listdir(teacher_dir)
                  if name.endswith(_WEIGHT_SUFFIXES) and os.path.isfile(os.path.join(teacher_dir, name)))


_DIGESTS: Dict[Tuple[str, int, int], str] = {}  # (realpath, size, mtime_ns) -> blake2b, per process


def file_digest(path: str) -> str:
    """blake2b of a file's content (hex), remembered per process while its size and mtime stay the same."""
    st = os.stat(path)
    memo = (os.path.realpath(path), st.st_size, st.st_mtime_ns)
    if memo not in _DIGESTS:
        h = hashlib.blake2b(digest_size=20)
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _DIGESTS[memo] = h.hexdigest()
    return _DIGESTS[memo]


def weights_digest(teacher_dir: str) -> Optional[str]:
    """One blake2b over the name and content digest of every weight file of the teacher (None: no such files)."""
    files = weight_files(teacher_dir)
    if not files:
        return None
    h = hashlib.blake2b(digest_size=20)
    for path in files:
        h.update(f"{os.path.basename(path)}|{file_digest(path)}|".encode())
    return h.hexdigest()


def fingerprint(teacher_dir: str, task: Task, features: Sequence[Feature], identity: Optional[str] = None) -> str:
    """Hash of what the logits depend on: the content of every teacher weight file (or `identity`, for a teacher
    that is not a model directory, e.g. TF-IDF), the label list, the pooling and every input id sequence. Content,
    not path/size/mtime: a teacher re-trained within a second, or copied with its times kept, is still seen."""
    h = hashlib.blake2b(f"v{FORMAT_VERSION}|{task.name}|{task.labels}".encode(), digest_size=20)
    if identity is not None:
        h.update(f"identity|{identity}".encode())
    # windowed documents are cached as pooled rows: the pooling is part of the key (the input ids, the windows'
    # concatenation, already carry stride and cap)
    h.update(f"pooling|{(task.long_document or {}).get('pooling', 'mean')}".encode())
    weights = weights_digest(teacher_dir) if identity is None else None
    if identity is None:
        h.update(f"weights|{weights or teacher_dir}".encode())  # a model name (no local files): the name
    for f in features:
        h.update(np.asarray(f["input_ids"], dtype=np.int64).tobytes())
        h.update(b"|")
        if "token_mask" in f:
            h.update(np.asarray(f["token_mask"], dtype=np.int8).tobytes())
        if any(f.get("token_type_ids", ())):  # case ids (model.case_ids); all-0 types leave older keys as they were
            h.update(b"types|" + np.asarray(f["token_type_ids"], dtype=np.int8).tobytes())
    return h.hexdigest()[:20]


def build_rows(logits: Sequence[np.ndarray], task: Task, features: Sequence[Feature]):
    rows = [task.kd_rows_numpy(lg, f) for lg, f in zip(logits, features)]
    offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(r) for r in rows])
    return np.concatenate(rows, axis=0).astype(np.float32), offsets


def _record_path(path: str) -> str:
    return path[:-len(".npz")] + ".json"


def _trusted(path: str) -> Optional[str]:
    """None when the cache file's content digest equals the one recorded beside it, else why not."""
    record = _record_path(path)
    try:
        with open(record, encoding="utf-8") as f:
            recorded = json.load(f).get("file_blake2b")
    except (OSError, ValueError, AttributeError):
        return f"has no readable digest record ({os.path.basename(record)})"
    if recorded != file_digest(path):
        return f"was changed after it was written (its blake2b differs from {os.path.basename(record)})"
    return None


def load_or_build(cache_dir: str, teacher_dir: str, task: Task, features: Sequence[Feature], compute_logits,
                  identity: Optional[str] = None):
    """(rows [N, C], offsets [n_features + 1]); `compute_logits(features)` runs the teacher when needed."""
    key = fingerprint(teacher_dir, task, features, identity)
    path = os.path.join(cache_dir, f"teacher_logits-{key}.npz")
    if os.path.isfile(path):
        try:
            with np.load(path, allow_pickle=False) as z:
                meta = json.loads(str(z["meta"]))
                rows, offsets = z["rows"], z["offsets"]
            if not (meta.get("fingerprint") == key and len(offsets) == len(features) + 1
                    and offsets[-1] == len(rows) and rows.shape[1] == task.num_labels):
                logger.warning("teacher-logit cache %s does not match the data; rebuilding", path)
            elif _trusted(path):
                logger.warning("teacher-logit cache %s %s; rebuilding", path, _trusted(path))
            else:
                logger.info("teacher logits from cache %s", path)
                return rows, offsets
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
            logger.warning("teacher-logit cache %s is unreadable (%s); rebuilding", path, e)
    logger.info("computing teacher logits for %d examples (cached in %s)", len(features), cache_dir)
    rows, offsets = build_rows(compute_logits(features), task, features)
    teacher = identity if identity is not None else os.path.realpath(teacher_dir)
    weights = weights_digest(teacher_dir) if identity is None else None
    meta = json.dumps({"fingerprint": key, "teacher": teacher_dir, "num_features": len(features)})
    try:
        # a file object, not a name: np.savez would append .npz to the temporary name
        with fsutil.atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, rows=rows, offsets=offsets, meta=np.array(meta))
        fsutil.write_json(_record_path(path), {"file_blake2b": file_digest(path), "teacher": teacher,
                                               "weights_blake2b": weights, "format_version": FORMAT_VERSION})
    except OSError as e:
        full = e.errno == errno.ENOSPC
        raise UserError(f"could not write the teacher-logit cache: {'no space left on device' if full else e}",
                        where=path, hint="free some space, or set data.cache_dir to a disk with room") from None
    _prune_superseded(cache_dir, path, teacher, weights)
    return rows, offsets


def _prune_superseded(cache_dir: str, kept: str, teacher: str, weights: Optional[str]) -> None:
    """Remove cache files of this teacher made from other weights (it was re-trained: they can never be hit again)
    and files of an earlier cache format without a digest record."""
    for name in os.listdir(cache_dir):
        path = os.path.join(cache_dir, name)
        if not (name.startswith("teacher_logits-") and name.endswith(".npz")) or path == kept:
            continue
        try:
            with open(_record_path(path), encoding="utf-8") as f:
                record = json.load(f)
        except FileNotFoundError:
            if time.time() - os.path.getmtime(path) < 60:
                continue  # another run may be writing its record right now
            record = {"format_version": 1}
        except (OSError, ValueError):
            continue
        superseded = record.get("teacher") == teacher and record.get("weights_blake2b") != weights
        if record.get("format_version", 1) < FORMAT_VERSION or superseded:
            for doomed in (path, _record_path(path)):
                with contextlib.suppress(OSError):
                    os.remove(doomed)
            logger.info("removed superseded teacher-logit cache %s", path)
