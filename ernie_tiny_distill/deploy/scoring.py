"""A fine-tuned teacher's logits through its Paddle Inference export instead of dygraph (the same numbers, several
times faster on CPU), used only when the export was made from the same weights: window rows batched by length,
pooled per document as in training (evaluation.predict_logits)."""
from __future__ import annotations

import datetime
import hashlib
import logging
import os
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from ernie_tiny_distill.deploy import layout
from ernie_tiny_distill.deploy.predictor import logits_by_length, pool_windows, window_rows
from ernie_tiny_distill.distill import teacher_cache

logger = logging.getLogger(__name__)

# window rows per engine call; rows are sorted by length first, so a batch pads little
WINDOW_BATCH = 32
# the spot check: this many documents scored both ways must agree within TOLERANCE (export.verify_export's)
SPOT_DOCUMENTS = 2
TOLERANCE = 1e-4


def weights_digest(model_dir: str) -> Dict[str, str]:
    """sha256 of each weight file of a model directory (teacher_cache.weight_files), by file name."""
    out = {}
    for path in teacher_cache.weight_files(model_dir):
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 22), b""):
                h.update(block)
        out[os.path.basename(path)] = h.hexdigest()
    return out


def export_mismatch(export_dir: str, model_dir: str, labels: Sequence[str]) -> Optional[str]:
    """Why the export in `export_dir` cannot stand for the weights in `model_dir`; None when it can.

    export.json's `source_weights` (sha256 per weight file, written by export_model) must equal the weights'; an
    export written before that record existed must come from the same directory, after its weights last changed."""
    meta_path = os.path.join(export_dir, layout.EXPORT_FILE)
    if not all(os.path.isfile(os.path.join(export_dir, f)) for f in (layout.EXPORT_FILE, layout.MODEL_FILE,
                                                                     layout.PARAMS_FILE)):
        return f"{export_dir} is not a complete Paddle Inference export"
    meta = layout.read_json(meta_path)
    if list(meta.get("labels") or []) != list(labels):
        return f"its labels {meta.get('labels')} are not the teacher's {list(labels)}"
    recorded = meta.get("source_weights")
    if recorded is not None:
        return None if recorded == weights_digest(model_dir) else "it was exported from other weights (sha256)"
    source = meta.get("source")
    if not source or os.path.realpath(source) != os.path.realpath(model_dir):
        return f"it was exported from {source}, not {model_dir}"
    try:
        created = datetime.datetime.fromisoformat(meta["created"]).timestamp()
    except (KeyError, TypeError, ValueError):
        return "its export.json has no creation time to compare with the weights"
    changed = max((os.stat(p).st_mtime for p in teacher_cache.weight_files(model_dir)), default=None)
    if changed is None or changed > created:
        return "the weights changed after it was exported"
    return None


def predict_logits(task, engine, features: Sequence[Dict], pad_token_id: int, batch_size: int = WINDOW_BATCH,
                   progress: Optional[str] = None, document_table=None) -> List[np.ndarray]:
    """Logits per feature, as evaluation.predict_logits gives them (classification [C], a long document's windows
    pooled by task.pool_numpy; tagging [L_i, C]), from `engine.run(input_ids, token_type_ids)`: the Predictor's
    batching and pooling (predictor.logits_by_length, pool_windows)."""
    from tqdm import tqdm

    rows = window_rows(features)
    with tqdm(total=len(rows), desc=progress, unit="window", leave=False, dynamic_ncols=True,
              disable=progress is None) as bar:
        logits = logits_by_length(engine.run, task, rows, pad_token_id, batch_size, on_batch=bar.update)
    pooled = [x.astype(np.float32) for x in pool_windows(task, features, logits)]
    # a document table in the export (extensions.py) joins after pooling, as in the Predictor
    return document_table.add_to(features, pooled) if document_table is not None else pooled


def export_scorer(export_dir: Optional[str], model_dir: str, labels: Sequence[str], task, pad_token_id: int,
                  dygraph: Callable, num_threads: int = 1, progress: Optional[str] = None) -> Callable:
    """compute(features) -> logits per feature: through the export in `export_dir` when it matches the weights in
    `model_dir` and the spot check passes (the first SPOT_DOCUMENTS features scored both ways agree within
    TOLERANCE), else `dygraph(features)`. The caller's cache key stays that of the weights and the data."""
    if not export_dir:
        return dygraph
    why = export_mismatch(export_dir, model_dir, labels)
    if why:
        logger.warning("teacher %s: not scored through the export %s (%s); scoring in dygraph", model_dir,
                       export_dir, why)
        return dygraph
    from ernie_tiny_distill.deploy.engines import PaddleEngine

    engines = []  # loaded when first needed (all features cached: never)
    from ernie_tiny_distill import extensions

    document_table = extensions.export_document_table(export_dir, layout.read_json(
        os.path.join(export_dir, layout.EXPORT_FILE)))

    def compute(features):
        if not engines:
            engines.append(PaddleEngine(export_dir, num_threads=num_threads))
        engine = engines[0]
        spot = list(features[:SPOT_DOCUMENTS])
        if spot:
            diff = max(float(np.abs(a - b).max()) for a, b in
                       zip(dygraph(spot), predict_logits(task, engine, spot, pad_token_id,
                                                                  document_table=document_table)))
            if not diff <= TOLERANCE:
                logger.warning("teacher %s: the export %s differs from dygraph by %.3g (> %g) on %d document(s); "
                               "scoring in dygraph", model_dir, export_dir, diff, TOLERANCE, len(spot))
                return dygraph(features)
        logger.info("teacher %s: scoring %d features through the export %s (%d window rows per call)", model_dir,
                    len(features), export_dir, WINDOW_BATCH)
        return predict_logits(task, engine, features, pad_token_id, progress=progress,
                              document_table=document_table)

    return compute
