"""Stage 'wide' at document level (model.wide.level 'document', wide_document.py): the table fitted alone by
logistic regression (scikit-learn) on the ensemble's soft labels + gold, its strength C (DOCUMENT_C) and scale
(wide_fit.WIDE_SCALES) chosen together on dev; z = deep + s·table, with deep the frozen transformer's cached
document logits (wide_fit.prepare builds them and the soft labels)."""
from __future__ import annotations

import logging
import os
import time
from typing import Dict

import numpy as np

from ernie_tiny_distill.config import Config
from ernie_tiny_distill.distill import ensemble
from ernie_tiny_distill.errors import UserError
from ernie_tiny_distill.models import build as models
from ernie_tiny_distill.models import birth
from ernie_tiny_distill.tasks.base import IGNORE_INDEX
from ernie_tiny_distill.wide import document as wide_document
from ernie_tiny_distill.wide import window as wide
from ernie_tiny_distill.wide.fit import BEST_DIR, WIDE_SCALES, best_scale, headline, prepare, score

logger = logging.getLogger(__name__)

# the inverse L2 strengths tried (scikit-learn's C), chosen with the scale on dev
DOCUMENT_C = (4.0, 16.0, 64.0)


def _soft_rows(X, soft: np.ndarray, gold: np.ndarray, temperature: float, kd_weight: float, ce_weight: float):
    """(rows, labels, sample weights) whose weighted logistic-regression loss is the distillation loss
    kd_weight · CE(softmax(soft / T), p) + ce_weight · CE(gold, p): every document once per class c, weighted by
    the soft target's probability of c, and the labeled documents once more with their gold label. (The fitted
    logits play z / T; the dev-chosen scale absorbs T.)"""
    import scipy.sparse as sps

    z = soft.astype(np.float64) / temperature
    target = np.exp(z - z.max(axis=1, keepdims=True))
    target /= target.sum(axis=1, keepdims=True)
    k = target.shape[1]
    labeled = np.flatnonzero(gold != IGNORE_INDEX) if ce_weight > 0 else np.zeros(0, np.int64)
    rows = sps.vstack([X] * k + ([X[labeled]] if len(labeled) else [])).tocsr()
    labels = np.concatenate([np.full(X.shape[0], c) for c in range(k)] + [gold[labeled]])
    weights = np.concatenate([kd_weight * target[:, c] for c in range(k)] + [np.full(len(labeled), ce_weight)])
    keep = weights > 0
    return rows[keep], labels[keep], weights[keep]


def _table_of(lr, k: int):
    """(table [F, k], bias [k]) of a fitted scikit-learn LogisticRegression, as logits: binary -> [0, w·x + b]."""
    if k == 2:
        table = np.zeros((lr.coef_.shape[1], 2), np.float32)
        table[:, 1] = lr.coef_[0]
        return table, np.array([0.0, lr.intercept_[0]], np.float32)
    order = np.argsort(lr.classes_)
    return lr.coef_[order].T.astype(np.float32), lr.intercept_[order].astype(np.float32)


def run(cfg: Config, tokenizer, splits) -> Dict[str, object]:
    """model.wide.level 'document' (wide_document.py): the document-level table fitted alone by logistic regression
    on the soft labels (+ gold), C (DOCUMENT_C) and scale (WIDE_SCALES) chosen together on dev, z = deep + s·table."""
    from sklearn.linear_model import LogisticRegression

    p = prepare(cfg, tokenizer, splits)
    cfg, task, train, dev, test, labeled, soft = p.cfg, p.task, p.train, p.dev, p.test, p.labeled, p.soft
    report, deep, deep_dev, started = p.report, p.deep, p.deep_dev, p.started
    if not dev:
        raise UserError("stage 'wide' with model.wide.level 'document' chooses its strength and scale on dev, and "
                        "there is no dev split", where="config key 'data.dev_file'")
    d = cfg.distill
    pad = int(tokenizer.pad_token_id or 0)
    spec = wide.WideSpec(vocab_size=int(tokenizer.vocab_size), buckets=int(cfg.model.wide.buckets), pad_token_id=pad)
    k = task.num_labels
    weighting = cfg.model.wide.weighting
    if weighting == "nb" and k != 2:
        raise UserError(f"model.wide.weighting 'nb' (the naive-Bayes log-count ratio) needs two labels; this task has "
                        f"{k}: use 'tfidf'", where="config key 'model.wide.weighting'")
    gold = np.array([f["labels"] for f in train], dtype=np.int64)
    counted = [wide_document.slot_counts(f, spec) for f in train]  # once: vocabulary, NB ratios and rows read it
    slots, idf = wide_document.vocabulary(counted)  # the training documents' text (labeled + transfer), no labels
    # nb: the labeled training documents' labels (never dev or test)
    slot_weights = wide_document.nb_ratios(counted, gold, slots) if weighting == "nb" else idf
    X = wide_document.design_matrix(counted, slots, slot_weights, weighting)
    X_dev = wide_document.design_matrix([wide_document.slot_counts(f, spec) for f in dev], slots, slot_weights,
                                        weighting)
    rows, labels, weights = _soft_rows(X, soft, gold, d.temperature, d.kd_weight, d.ce_weight)
    logger.info("document-level table (%s): %d documents, %d n-gram slots seen in them; %d weighted rows",
                weighting, X.shape[0], len(slots), rows.shape[0])
    best, history = {"score": float(deep_dev[task.metric_name]), "C": None, "scale": 1.0, "table": None}, []
    for C in DOCUMENT_C:
        lr = LogisticRegression(C=C, solver="liblinear" if k == 2 else "lbfgs", max_iter=1000)
        lr.fit(rows, labels, sample_weight=weights)
        table, bias = _table_of(lr, k)
        table_dev = np.asarray(X_dev @ table) + bias
        scale, dev_score = best_scale(task, deep.dev, table_dev, dev, splits.dev, WIDE_SCALES)
        entry = {"C": C, "dev": round(dev_score, 5), "scale": scale,
                 "table_dev": round(float(score(task, table_dev, dev, splits.dev)[task.metric_name]), 5)}
        history.append(entry)
        logger.info("document-level table C=%g: dev %s %.4f (scale %g; the table alone %.4f)", C, task.metric_name,
                    entry["dev"], scale, entry["table_dev"])
        if dev_score > best["score"]:
            best = {"score": dev_score, "C": C, "scale": scale, "table": (table, bias)}
    if best["table"] is None:  # as the window-level fit keeps epoch 0: the transformer alone, a zero table
        logger.warning("the document-level table did not improve dev %s over the transformer alone (%.4f) at any "
                       "C in %s: it is saved as zeros", task.metric_name, best["score"], DOCUMENT_C)
        best["table"] = (np.zeros((len(slots), k), np.float32), np.zeros(k, np.float32))
    table, bias = best["table"]
    part = wide_document.DocumentTable(spec, slots, slot_weights, best["scale"] * table, best["scale"] * bias,
                                       weighting)
    zeros = {n: np.zeros((len(f), k), np.float32) for n, f in (("dev", dev), ("test", test))}
    results, alone = {}, {}
    for split, feats, examples, rows_ in (("dev", dev, splits.dev, deep.dev), ("test", test, splits.test, deep.test)):
        if feats:
            wide_logits = part.logits(feats)
            results[split] = score(task, rows_ + wide_logits, feats, examples)
            alone[split] = headline(score(task, zeros[split] + wide_logits, feats, examples), task)
    model = models.load_model(cfg.model.student.path, task.model_class, task.num_labels)
    if isinstance(model, wide.WideAndDeep) or getattr(model, "document_table", None) is not None:
        raise UserError(f"model.student.path {cfg.model.student.path} already has a wide part; stage 'wide' needs "
                        "the transformer alone", where="config key 'model.student.path'")
    model.document_table = part
    model.eval()
    _check_parity(task, model, part, deep.dev, dev, pad)
    meta = task.metadata()
    meta.update(stage="wide", dev=headline(results.get("dev"), task),
                wide={"buckets": spec.buckets, "level": "document", "weighting": weighting, "C": best["C"], "deep": cfg.model.student.path,
                      "fit": cfg.model.wide.fit, "scale": best["scale"]})
    best_dir = os.path.join(cfg.output_dir, BEST_DIR)
    models.save_model_dir(model, tokenizer, best_dir, meta)
    _, deep_nonembedding = birth.count_parameters(model)
    config = models.encoder_of(model).config
    deep_params = sum(int(p.numel()) for p in model.parameters())
    wide_params = int(part.table.size + part.bias.size)
    return {"metric_name": task.metric_name, "dev": results.get("dev"), "test": results.get("test"),
            "nonembedding_params": deep_nonembedding, "layers": int(config.num_hidden_layers),
            "hidden": int(config.hidden_size),
            "deep_dev": deep_dev, "deep_test": ensemble.score(task, deep.test, deep.test_offsets, test, splits.test),
            "ensemble": report, "history": history, "best_epoch": None, "best_dir": best_dir,
            "wide_fit": cfg.model.wide.fit, "wide_level": "document", "wide_weighting": weighting,
            "wide_scale": best["scale"],
            "wide_C": best["C"], "table_dev": alone.get("dev"), "table_test": alone.get("test"),
            "train_examples": labeled, "transfer_examples": len(train) - labeled,
            "params": deep_params + wide_params, "wide_params": wide_params,
            "train_seconds": round(time.time() - started, 1)}


def _check_parity(task, model, part, deep_rows, features, pad, n: int = 8) -> None:
    """The saved model (transformer + document-level part, evaluation.predict_logits) gives the logits the fit
    scored with, on a few dev documents."""
    from ernie_tiny_distill.train import evaluation

    n = min(n, len(features))
    if not n:
        return
    fitted = deep_rows[:n] + part.logits(features[:n])
    direct = np.stack(evaluation.predict_logits(task, model, list(features[:n]), 8, pad))
    gap = float(np.abs(fitted - direct.reshape(fitted.shape)).max())
    if gap > 1e-3:
        raise UserError(f"the saved model's dev logits differ from the fitted ones by {gap:.2g} (the cached "
                        "transformer logits are not this model's?)", where="config key 'model.student.path'")
    logger.info("document-level wide parity on %d dev documents: max |Δlogit| %.2g", n, gap)
