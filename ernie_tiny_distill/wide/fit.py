"""Stage 'wide': fit the wide n-gram part (wide.py) of a trained task student, its transformer frozen.

The transformer's document logits are computed once (cached like a teacher's, through its export when
model.wide.deep_export holds the same weights), so an epoch over the training set only runs the table lookups:
    z(doc) = deep(doc) + mean over windows of wide(window)
    L = kd_weight · T²·KL(P_teachers/T ‖ P_z/T) + ce_weight · CE(z, gold)      (losses.soft_kl, losses.hard_ce)
With model.wide.fit 'separate' the table is fitted alone (deep(doc) taken as 0 in the loss) and joins the
transformer as z = deep + s · wide, s from WIDE_SCALES, chosen with the epoch on dev and folded into the table.
The soft target is distill.teachers' weighted mean (ensemble.py; model.teacher alone when unset). The table
with the best dev score is kept; best/ holds the transformer's files plus the wide part, and loads, exports and
serves like any task model.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import time
from typing import Dict, List, Optional, Sequence

import numpy as np
import paddle

from ernie_tiny_distill.config import Config
from ernie_tiny_distill.data import batching
from ernie_tiny_distill.distill import ensemble, losses
from ernie_tiny_distill.errors import UserError
from ernie_tiny_distill.models import build as models
from ernie_tiny_distill.models import birth
from ernie_tiny_distill.tasks.adapters import make_task
from ernie_tiny_distill.tasks.base import IGNORE_INDEX
from ernie_tiny_distill.wide import window as wide

logger = logging.getLogger(__name__)

BEST_DIR = "best"
# model.wide.fit 'separate': the scales of the table tried on dev, z = deep + scale * table
WIDE_SCALES = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)


def document_logits(task, layer: wide.WideNgrams, features: Sequence[Dict], deep_rows: np.ndarray,
                    pad_token_id: int) -> paddle.Tensor:
    """z = deep + the wide logits of each document's windows, pooled as the task pools them, [B, C]."""
    batch = batching.collate(features, pad_token_id)  # one row per window; `doc` maps rows to documents
    per_window = layer(paddle.to_tensor(batch["input_ids"]))
    pooled = task.pool(per_window, {"doc": paddle.to_tensor(batch["doc"])} if "doc" in batch else {})
    return paddle.to_tensor(deep_rows) + pooled


def predict_all(task, layer, features, deep_rows, pad_token_id, batch_size=256) -> np.ndarray:
    out = []
    with paddle.no_grad():
        for i in range(0, len(features), batch_size):
            out.append(document_logits(task, layer, features[i:i + batch_size], deep_rows[i:i + batch_size],
                                       pad_token_id).numpy())
    return np.concatenate(out) if out else np.zeros((0, deep_rows.shape[1]), np.float32)


def _evaluate(task, layer, features, deep_rows, examples, pad_token_id) -> Dict:
    return score(task, predict_all(task, layer, features, deep_rows, pad_token_id), features, examples)


def score(task, logits: np.ndarray, features, examples) -> Dict:
    return task.evaluate([task.predict(r, f) for r, f in zip(logits, features)], examples)


def best_scale(task, deep_dev: np.ndarray, table_dev: np.ndarray, features, examples, scales) -> tuple:
    """(scale, dev score) of deep + scale · table best on dev; ties go to the scale nearest 1."""
    by_scale = {s: float(score(task, deep_dev + s * table_dev, features, examples)[task.metric_name]) for s in scales}
    best = max(scales, key=lambda s: (by_scale[s], -abs(s - 1.0)))
    return best, by_scale[best]


def _deep_rows(cfg: Config, task, splits, train, dev, test):
    """The frozen transformer's document logits for each split, through the teacher-logit cache."""
    spec = {"path": cfg.model.student.path, "tfidf": False, "weight": 1.0}
    if cfg.model.wide.deep_export:
        spec["export"] = cfg.model.wide.deep_export
    deep_cfg = dataclasses.replace(cfg, distill=dataclasses.replace(cfg.distill, teachers=[spec]))
    (out,) = ensemble.EnsembleBuilder(deep_cfg, task, splits, train, dev, test).build()
    return out


def _labels_of(cfg: Config) -> List[str]:
    path = models.resolve(cfg.model.student.path)
    meta = models.read_task_metadata(path) if os.path.isdir(path) else None
    if meta is None or meta.get("task") != cfg.task:
        what = "has no task.json (not a task model)" if meta is None else f"is a {meta.get('task')!r} model"
        raise UserError(f"model.student.path {cfg.model.student.path} {what}; stage 'wide' needs the best/ "
                        f"directory of a {cfg.task!r} run", where="config key 'model.student.path'")
    return list(meta["labels"])


@dataclasses.dataclass
class Prepared:
    """What both fits start from: the documents encoded, the soft labels and the frozen transformer's logits."""
    cfg: Config
    task: object
    train: list
    dev: list
    test: list
    labeled: int       # the first `labeled` training features carry gold labels; the rest are the transfer set
    soft: np.ndarray   # the teachers' mixed soft target per training document (logits at temperature T)
    report: Dict       # the ensemble's own dev/test scores
    deep: object       # ensemble.TeacherOutputs of the frozen transformer
    deep_dev: Dict     # its dev metrics
    started: float


def prepare(cfg: Config, tokenizer, splits) -> Prepared:
    """Encode the documents, build the soft labels and score them with the frozen transformer (both cached)."""
    started = time.time()
    labels = _labels_of(cfg)
    task = make_task(cfg.task, tokenizer, labels, cfg.model.max_seq_length, cfg.model.truncation,
                     long_document=cfg.model.long_document.task_option())
    if not task.whole_text_labels:  # one logit row per text, so a bag-of-n-grams part can add to it
        raise UserError(f"stage 'wide' is for tasks with one label per text; {cfg.task!r} is not one",
                        where="config key 'stage'")
    train = ensemble.training_features(task, splits, transfer=bool(cfg.data.unlabeled))  # transfer set: KD only
    labeled = len(splits.train)
    dev, test = task.encode(splits.dev), task.encode(splits.test)

    if not cfg.distill.teachers:  # model.teacher alone, as one ensemble member (its logits are cached the same way)
        cfg = dataclasses.replace(cfg, distill=dataclasses.replace(
            cfg.distill, teachers=[{"path": cfg.model.teacher, "tfidf": False, "weight": 1.0}]))
    (soft, _), report = ensemble.build(cfg, task, splits, train, dev, test)
    deep = _deep_rows(cfg, task, splits, train, dev, test)
    deep_dev = ensemble.score(task, deep.dev, deep.dev_offsets, dev, splits.dev)
    logger.info("frozen transformer alone: dev %s %.4f", task.metric_name, float(deep_dev[task.metric_name]))
    return Prepared(cfg, task, train, dev, test, labeled, soft, report, deep, deep_dev, started)


def run(cfg: Config, tokenizer, splits) -> Dict[str, object]:
    """The window-level table (wide.py), fitted by AdamW over `train.epochs` passes."""
    p = prepare(cfg, tokenizer, splits)
    cfg, task, train, dev, test, labeled, soft = p.cfg, p.task, p.train, p.dev, p.test, p.labeled, p.soft
    report, deep, deep_dev, started = p.report, p.deep, p.deep_dev, p.started
    pad = int(tokenizer.pad_token_id or 0)
    paddle.seed(cfg.train.seed)
    spec = wide.WideSpec(vocab_size=int(tokenizer.vocab_size), buckets=int(cfg.model.wide.buckets), pad_token_id=pad)
    layer = wide.WideNgrams(spec, task.num_labels)
    optimizer = paddle.optimizer.AdamW(learning_rate=cfg.train.learning_rate, parameters=layer.parameters(),
                                       weight_decay=cfg.train.weight_decay)
    d = cfg.distill
    rng = np.random.default_rng(cfg.train.seed)
    epochs = max(1, int(round(cfg.train.epochs)))
    separate = cfg.model.wide.fit == "separate"
    # residual: the table is fitted on top of the transformer's logits; separate: alone, then scaled on dev
    fit_rows = np.zeros_like(deep.train) if separate else deep.train
    scales = WIDE_SCALES if separate else (1.0,)
    no_dev_rows = np.zeros_like(deep.dev)
    # epoch 0 is the transformer alone (the table starts at zero): the wide part is kept only if dev improves
    best = {"score": float(deep_dev[task.metric_name]), "epoch": 0, "scale": 1.0, "table": layer.table.numpy().copy()}
    history = []
    for epoch in range(1, epochs + 1):
        layer.train()
        order = rng.permutation(len(train))
        total = 0.0
        for start in range(0, len(order), cfg.train.batch_size):
            idx = order[start:start + cfg.train.batch_size]
            batch = [train[i] for i in idx]
            z = document_logits(task, layer, batch, fit_rows[idx], pad)
            gold = paddle.to_tensor([f["labels"] for f in batch], dtype="int64")  # IGNORE_INDEX: transfer set
            loss = d.kd_weight * losses.soft_kl(z, paddle.to_tensor(soft[idx]), d.temperature) \
                + d.ce_weight * losses.hard_ce(z, gold, IGNORE_INDEX)
            loss.backward()
            optimizer.step()
            optimizer.clear_grad()
            total += float(loss) * len(idx)
        layer.eval()
        table_dev = predict_all(task, layer, dev, no_dev_rows, pad)  # the table alone, [documents, C]
        scale, dev_score = best_scale(task, deep.dev, table_dev, dev, splits.dev, scales)
        entry = {"epoch": epoch, "loss": round(total / len(order), 5), "dev": round(dev_score, 5)}
        if separate:
            entry.update(scale=scale, table_dev=round(float(
                score(task, table_dev, dev, splits.dev)[task.metric_name]), 5))
        history.append(entry)
        logger.info("wide epoch %d/%d: loss %.4f, dev %s %.4f%s", epoch, epochs, total / len(order),
                    task.metric_name, dev_score,
                    f" (scale {scale:g}; the table alone {entry['table_dev']:.4f})" if separate else "")
        if dev_score > best["score"]:
            best = {"score": dev_score, "epoch": epoch, "scale": scale, "table": layer.table.numpy().copy()}
    # the chosen scale is folded into the table: the saved model is z = deep + table, whichever the fit
    layer.table.set_value(best["scale"] * best["table"])
    layer.eval()

    results = {split: _evaluate(task, layer, feats, rows, examples, pad)
               for split, feats, examples, rows in (("dev", dev, splits.dev, deep.dev),
                                                    ("test", test, splits.test, deep.test)) if feats}
    model = models.load_model(cfg.model.student.path, task.model_class, task.num_labels)
    model = wide.WideAndDeep(model, layer)
    model.eval()
    _check_parity(task, model, layer, deep.dev, dev, pad)
    meta = task.metadata()  # how this stage read documents (windows, pooling), which is how the model is scored
    meta.update(stage="wide", dev=headline(results.get("dev"), task),
                wide={"buckets": spec.buckets, "best_epoch": best["epoch"], "deep": cfg.model.student.path,
                      "fit": cfg.model.wide.fit, "scale": best["scale"]})
    best_dir = os.path.join(cfg.output_dir, BEST_DIR)
    models.save_model_dir(model, tokenizer, best_dir, meta)
    deep_params, wide_params = wide.parameter_counts(model)
    _, deep_nonembedding = birth.count_parameters(model.deep)
    config = models.encoder_of(model).config
    return {"metric_name": task.metric_name, "dev": results.get("dev"), "test": results.get("test"),
            # the table is a lookup like the word embeddings: counted with the embedding parameters
            "nonembedding_params": deep_nonembedding, "layers": int(config.num_hidden_layers),
            "hidden": int(config.hidden_size),
            "deep_dev": deep_dev, "deep_test": ensemble.score(task, deep.test, deep.test_offsets, test, splits.test),
            "ensemble": report, "history": history, "best_epoch": best["epoch"], "best_dir": best_dir,
            "wide_fit": cfg.model.wide.fit, "wide_scale": best["scale"],
            # the table alone (no transformer): how well it learned the soft labels by itself
            "table_dev": _alone(task, layer, dev, splits.dev, pad), "table_test": _alone(task, layer, test, splits.test, pad),
            "train_examples": labeled, "transfer_examples": len(train) - labeled,
            "params": deep_params + wide_params, "wide_params": wide_params,
            "train_seconds": round(time.time() - started, 1)}


def _alone(task, layer, features, examples, pad) -> Optional[Dict]:
    if not features:
        return None
    rows = np.zeros((len(features), task.num_labels), np.float32)
    return headline(_evaluate(task, layer, features, rows, examples, pad), task)


def headline(metrics, task):
    if not metrics:
        return None
    return {task.metric_name: metrics[task.metric_name], "num_examples": metrics.get("num_examples")}


def _check_parity(task, model, layer, deep_rows, features, pad, n: int = 8) -> None:
    """The saved model (transformer + wide part, dygraph) gives the logits the fit scored with, on a few dev
    documents: the cached transformer rows and the attached table are the model's."""
    from ernie_tiny_distill.train import evaluation

    n = min(n, len(features))
    if not n:
        return
    fitted = predict_all(task, layer, features[:n], deep_rows[:n], pad)
    direct = np.stack(evaluation.predict_logits(task, model, list(features[:n]), 8, pad))
    gap = float(np.abs(fitted - direct.reshape(fitted.shape)).max())
    if gap > 1e-3:
        raise UserError(f"the saved wide-and-deep model's dev logits differ from the fitted ones by {gap:.2g} "
                        "(the cached transformer logits are not this model's?)",
                        where="config key 'model.student.path'")
    logger.info("wide-and-deep parity on %d dev documents: max |Δlogit| %.2g", n, gap)

