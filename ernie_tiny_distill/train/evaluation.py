"""Training-time scoring in dygraph: logits per encoded feature and the task metric of a model."""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import numpy as np
import paddle
from tqdm import tqdm

from ernie_tiny_distill.data import batching
from ernie_tiny_distill.tasks.base import Feature, Task


def predict_logits(task: Task, model, features: Sequence[Feature], batch_size: int, pad_token_id: int,
                   progress: Optional[str] = None) -> List[np.ndarray]:
    """Logits per feature (classification [C]; tagging [L_i, C]) in the order of `features`.

    With `progress` (a description), a transient progress bar counts the examples done.
    """
    model.eval()
    out: List[Optional[np.ndarray]] = [None] * len(features)
    lengths = [len(f["input_ids"]) for f in features]
    bar = tqdm(total=len(features), desc=progress, unit="ex", leave=False, dynamic_ncols=True,
               disable=progress is None)
    with paddle.no_grad(), bar:
        for idx in batching.eval_batches(lengths, batch_size):
            batch = _to_tensors(batching.collate([features[i] for i in idx], pad_token_id))
            logits = model(input_ids=batch["input_ids"], token_type_ids=batch["token_type_ids"],
                           attention_mask=batch["attention_mask"], return_dict=True).logits
            logits = task.pool(logits, batch).numpy()  # one row per feature (a long document's windows pooled)
            for row, i in enumerate(idx):
                out[i] = task.slice_logits(logits, row, lengths[i])
            bar.update(len(idx))
    document_table = getattr(model, "document_table", None)  # added after pooling (extensions.py)
    return document_table.add_to(features, out) if document_table is not None else out


def evaluate(task: Task, model, features: Sequence[Feature], examples: Sequence, batch_size: int,
             pad_token_id: int, progress: Optional[str] = None) -> Dict[str, object]:
    """The task's metrics for `model` on encoded `features` of `examples` (dygraph, as during training); a
    tagged sentence longer than max_seq_length is read as the served model reads it (word windows)."""
    logits = predict_logits(task, model, features, batch_size, pad_token_id, progress)
    predictions = task.evaluation_predictions(
        logits, features, examples, lambda more: predict_logits(task, model, more, batch_size, pad_token_id))
    return task.evaluate(predictions, examples)


def _to_tensors(batch: Dict[str, np.ndarray]) -> Dict[str, paddle.Tensor]:
    return {k: paddle.to_tensor(v) for k, v in batch.items()}
