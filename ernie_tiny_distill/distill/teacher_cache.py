"""Teacher logits computed once per (teacher, data) and stored on disk, validated against both before reuse."""
from __future__ import annotations

import hashlib
import json
import logging
import os
import zipfile
from typing import List, Optional, Sequence

import numpy as np

from ernie_tiny_distill.tasks.adapters import Feature, Task
from ernie_tiny_distill.util import fsutil

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1


# Every file that holds (or indexes) weights: a sharded checkpoint is model-0000N-of-0000M.safetensors plus
# model.safetensors.index.json; .pdparams for PaddleNLP directories.
_WEIGHT_SUFFIXES = (".safetensors", ".safetensors.index.json", ".pdparams", ".pdparams.index.json")


def weight_files(teacher_dir: str) -> List[str]:
    """The teacher's weight files, sorted by name (model.safetensors alone for an unsharded teacher)."""
    if not os.path.isdir(teacher_dir):
        return []
    return sorted(os.path.join(teacher_dir, name) for name in os.listdir(teacher_dir)
                  if name.endswith(_WEIGHT_SUFFIXES) and os.path.isfile(os.path.join(teacher_dir, name)))


def fingerprint(teacher_dir: str, task: Task, features: Sequence[Feature], identity: Optional[str] = None) -> str:
    """Hash of the identity of every teacher weight file (or `identity`, for a teacher that is not a model
    directory, e.g. TF-IDF), the label list and every input id sequence."""
    h = hashlib.sha256(f"v{FORMAT_VERSION}|{task.name}|{task.labels}".encode())
    if identity is not None:
        h.update(f"identity|{identity}".encode())
    # windowed documents are cached as pooled rows: the pooling is part of the key (the input ids, the windows'
    # concatenation, already carry stride and cap). Mean pooling, the default, adds nothing, so keys made before
    # pooling was keyed stay valid.
    pooling = (task.long_document or {}).get("pooling", "mean")
    if pooling != "mean":
        h.update(f"pooling|{pooling}".encode())
    files = weight_files(teacher_dir) if identity is None else []
    for weights in files:
        st = os.stat(weights)
        # realpath: the same teacher reached through a symlink (another checkout's runs/) hits the same cache
        h.update(f"{os.path.realpath(weights)}|{st.st_size}|{st.st_mtime_ns}".encode())
    if not files and identity is None:
        h.update(teacher_dir.encode())
    for f in features:
        h.update(np.asarray(f["input_ids"], dtype=np.int64).tobytes())
        h.update(b"|")
        if "token_mask" in f:
            h.update(np.asarray(f["token_mask"], dtype=np.int8).tobytes())
    return h.hexdigest()[:20]


def build_rows(logits: Sequence[np.ndarray], task: Task, features: Sequence[Feature]):
    rows = [task.kd_rows_numpy(lg, f) for lg, f in zip(logits, features)]
    offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(r) for r in rows])
    return np.concatenate(rows, axis=0).astype(np.float32), offsets


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
            if (meta.get("fingerprint") == key and len(offsets) == len(features) + 1
                    and offsets[-1] == len(rows) and rows.shape[1] == task.num_labels):
                logger.info("teacher logits from cache %s", path)
                return rows, offsets
            logger.warning("teacher-logit cache %s does not match the data; rebuilding", path)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
            logger.warning("teacher-logit cache %s is unreadable (%s); rebuilding", path, e)
    logger.info("computing teacher logits for %d examples (cached in %s)", len(features), cache_dir)
    rows, offsets = build_rows(compute_logits(features), task, features)
    meta = json.dumps({"fingerprint": key, "teacher": teacher_dir, "num_features": len(features)})
    # a file object, not a name: np.savez would append .npz to the temporary name
    with fsutil.atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, rows=rows, offsets=offsets, meta=np.array(meta))
    return rows, offsets
