"""Teacher ensembles (distill.teachers): each teacher's KD rows, cached, mixed into one soft target.

A teacher is a fine-tuned run directory or TF-IDF + logistic regression (bench/baselines.py) fit on the training
split only. The soft target is the weighted mean of the teachers' softmax(logits / T); it is handed to the KD loss
as logits T·log(p), whose softmax at temperature T is exactly that mean (losses.soft_kl is unchanged).
"""
from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from ernie_tiny_distill.config import DISTILL_STAGES
from ernie_tiny_distill.distill import distiller as distill
from ernie_tiny_distill.distill import teacher_cache
from ernie_tiny_distill.errors import UserError
from ernie_tiny_distill.models import build as models
from ernie_tiny_distill.tasks.adapters import make_task
from ernie_tiny_distill.tasks.base import Task

logger = logging.getLogger(__name__)

# Probabilities are clipped here before log(): a TF-IDF model can give exactly 0 and log(0) = -inf.
MIN_PROBABILITY = 1e-12
SPLITS = ("train", "dev", "test")
# The TF-IDF teacher picks its C on this share of the training split (held out from its fit, then refit on all).
TFIDF_HOLDOUT = 0.1


@dataclass
class TeacherOutputs:
    """One teacher's KD rows for the training features (+ transfer set), dev and test, in the task's label order."""

    name: str
    weight: float
    train: np.ndarray  # [N_rows, C]
    offsets: np.ndarray  # [n_features + 1]
    dev: np.ndarray
    dev_offsets: np.ndarray
    test: np.ndarray
    test_offsets: np.ndarray


def softmax(x: np.ndarray) -> np.ndarray:
    z = x - x.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


def mix(rows: Sequence[np.ndarray], weights: Sequence[float], temperature: float) -> np.ndarray:
    """T·log(Σ w_i softmax(rows_i / T) / Σ w_i): logits whose softmax at temperature T is the weighted mean of the
    teachers' softened distributions. rows: one [N, C] array per teacher, aligned."""
    t = float(temperature)
    total = float(sum(weights))
    p = sum(w / total * softmax(r.astype(np.float64) / t) for r, w in zip(rows, weights))  # [N, C]
    return (t * np.log(np.clip(p, MIN_PROBABILITY, None))).astype(np.float32)


def label_order(teacher_labels: Sequence[str], task_labels: Sequence[str], name: str) -> List[int]:
    """Columns of the teacher's outputs in the task's label order; a teacher with another label set is refused."""
    if sorted(teacher_labels) != sorted(task_labels):
        raise UserError(f"teacher {name} has labels {sorted(teacher_labels)[:8]} but the task has "
                        f"{sorted(task_labels)[:8]}: its outputs cannot be mixed with the others",
                        where="config key 'distill.teachers'",
                        hint="list only teachers fine-tuned on this task's label set")
    return [list(teacher_labels).index(label) for label in task_labels]


def fit_tfidf_teacher(train_texts: Sequence[str], train_labels: Sequence[str], grid: Optional[Sequence[float]] = None,
                      holdout: float = TFIDF_HOLDOUT, seed: int = 0):
    """TF-IDF + LR fit on training texts only: C picked on a held-out share of them, then refit on all of them.

    Takes no dev or test data by construction (the caller passes the training split alone)."""
    from ernie_tiny_distill.distill.tfidf import C_GRID, fit_tfidf_lr, make_model

    texts, labels = list(train_texts), list(train_labels)
    order = np.random.default_rng(seed).permutation(len(texts))
    n_held = max(1, int(len(texts) * holdout))
    held, fit = order[:n_held], order[n_held:]
    chosen = fit_tfidf_lr([texts[i] for i in fit], [labels[i] for i in fit], [texts[i] for i in held],
                          [labels[i] for i in held], grid or C_GRID)
    logger.info("TF-IDF teacher: C=%g (accuracy %.4f on %d held-out training texts); refit on %d training texts",
                chosen["C"], chosen["dev_accuracy"], n_held, len(texts))
    return make_model(chosen["C"], len(set(labels))).fit(texts, labels)


def out_of_fold(texts: Sequence[str], labels: Sequence[str], folds: int, full, task_labels: Sequence[str],
                seed: int = 0) -> np.ndarray:
    """[N, C] probabilities of each training text from a TF-IDF + LR model fit on the other folds (the C the
    `full` model chose; no text is scored by a model that saw it)."""
    from ernie_tiny_distill.distill.tfidf import make_model

    c = float(full.steps[-1][1].C)
    order = np.random.default_rng(seed).permutation(len(texts))
    probs = np.zeros((len(texts), len(task_labels)), dtype=np.float64)
    for k, held in enumerate(np.array_split(order, folds)):
        rest = np.setdiff1d(order, held)
        m = make_model(c, len(set(labels))).fit([texts[i] for i in rest], [labels[i] for i in rest])
        columns = [list(m.classes_).index(label) for label in task_labels]
        probs[held] = m.predict_proba([texts[i] for i in held])[:, columns]
        logger.info("TF-IDF teacher, cross-fit fold %d/%d: %d texts scored by a model fit on %d others", k + 1,
                    folds, len(held), len(rest))
    return probs


def training_features(task: Task, splits, transfer: bool) -> list:
    """The training split as a distillation run encodes it: labeled documents, then the transfer set (labels
    IGNORE_INDEX: only the KD term sees them), in the order EnsembleBuilder scores them."""
    features = task.encode(splits.train)
    if transfer:
        features += task.encode(splits.unlabeled, offset=len(features))
    return features


def same_encoding(a: Task, b: Task) -> bool:
    """Whether two tasks turn the same text into the same features: same task settings (labels, length,
    truncation, windows) and tokenizers with the same class, vocabulary, casing and special tokens."""
    if a.metadata() != b.metadata():
        return False
    ta, tb = a.tokenizer, b.tokenizer
    specials = ("cls_token_id", "sep_token_id", "pad_token_id", "unk_token_id")
    return (type(ta) is type(tb) and getattr(ta, "do_lower_case", None) == getattr(tb, "do_lower_case", None)
            and all(getattr(ta, k, None) == getattr(tb, k, None) for k in specials) and ta.get_vocab() == tb.get_vocab())


def _digest(parts: Sequence[str]) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode("utf-8", "replace"))
        h.update(b"\x00")
    return h.hexdigest()[:20]


class EnsembleBuilder:
    """Computes (or reads from the caches) every teacher's rows for one run's splits."""

    def __init__(self, cfg, task: Task, splits, train_features, dev_features, test_features, bar=None):
        self.cfg, self.task, self.splits, self.bar = cfg, task, splits, bar
        self.wanted = SPLITS
        self.features = {"train": train_features, "dev": dev_features, "test": test_features}
        self.transfer = cfg.stage in DISTILL_STAGES and bool(cfg.data.unlabeled)

    def _examples(self, split: str) -> list:
        s = self.splits
        if split == "train":
            return list(s.train) + (list(s.unlabeled) if self.transfer else [])
        return list(getattr(s, split))

    def _cache_dir(self, teacher_dir: Optional[str], kind: str) -> str:
        cfg = self.cfg
        if cfg.data.cache_dir:
            return os.path.join(cfg.data.cache_dir, f"teacher_{kind}")
        if teacher_dir and os.path.isdir(teacher_dir) and os.access(teacher_dir, os.W_OK):
            return os.path.join(teacher_dir, f"{kind}_cache")
        return os.path.join(cfg.output_dir, f"teacher_{kind}")

    def build(self, splits: Sequence[str] = SPLITS) -> List[TeacherOutputs]:
        """Every teacher's rows for `splits` (the others left empty: e.g. dev and test alone, to score them)."""
        self.wanted = tuple(splits)
        out = []
        for entry in self.cfg.distill.teachers:
            out.append(self._tfidf(entry["weight"], entry.get("cross_fit")) if entry["tfidf"]
                       else self._neural(entry["path"], entry["weight"], entry.get("export")))
        return out

    def _empty(self) -> tuple:
        return np.zeros((0, self.task.num_labels), np.float32), np.zeros(1, np.int64)

    # -- a fine-tuned teacher
    def _neural(self, spec: str, weight: float, export: Optional[str] = None) -> TeacherOutputs:
        from ernie_tiny_distill.deploy import scoring
        from ernie_tiny_distill.train import evaluation

        path = models.resolve(spec)
        meta = models.read_task_metadata(path) if os.path.isdir(path) else None
        if meta is None or meta.get("task") != self.task.name:
            what = "has no task.json (not a fine-tuned model)" if meta is None else f"is a {meta.get('task')!r} model"
            raise UserError(f"teacher {spec} {what}; the task is {self.task.name!r}", where="config key 'distill.teachers'")
        columns = label_order(meta["labels"], self.task.labels, spec)
        tokenizer = models.load_tokenizer(path)
        length = self.cfg.distill.teacher_max_seq_length or self.cfg.model.max_seq_length
        ttask = make_task(self.task.name, tokenizer, meta["labels"], length, self.cfg.model.truncation,
                          long_document=self.cfg.model.long_document.task_option(), case_ids=meta.get("case_ids"))
        model = models.load_model(path, ttask.model_class, ttask.num_labels)
        cache_dir = self._cache_dir(path, "logits")

        def dygraph(fs):
            return evaluation.predict_logits(ttask, model, fs, self.cfg.train.eval_batch_size,
                                              tokenizer.pad_token_id, self.bar)

        # through the teacher's export when it holds these weights (same logits, faster); the cache key is the
        # weights' and the data's either way
        threads = int(os.environ.get("OMP_NUM_THREADS") or self.cfg.train.num_threads or 1)
        compute = scoring.export_scorer(export, path, meta["labels"], ttask, tokenizer.pad_token_id, dygraph,
                                        num_threads=threads, progress=self.bar)
        rows = {}
        reuse = same_encoding(self.task, ttask)
        for split in SPLITS:
            examples = self._examples(split) if split in self.wanted else []
            # the run's own encoding when the teacher reads text the same way (a student's own transformer, a
            # teacher sharing its vocabulary): encoding 76k reviews twice costs minutes
            own = self.features[split]
            features = own if reuse and examples and len(own) == len(examples) else ttask.encode(examples)
            if not features:
                rows[split] = self._empty()
                continue
            distill.check_same_kd_rows(self.task, self.features[split], features, length)
            r, offsets = teacher_cache.load_or_build(cache_dir, path, ttask, features, compute)
            rows[split] = (r[:, columns], offsets)
        return TeacherOutputs(spec, weight, *rows["train"], *rows["dev"], *rows["test"])

    # -- TF-IDF + logistic regression
    def _tfidf(self, weight: float, cross_fit: Optional[int] = None) -> TeacherOutputs:
        task = self.task
        train = list(self.splits.train)
        texts = [task.example_text(e) for e in train]
        labels = [e.label for e in train]
        label_order(sorted(set(labels)), task.labels, "tfidf (its training split)")
        identity = "tfidf|" + _digest([f"{t}\t{y}" for t, y in zip(texts, labels)])
        cache_dir = self._cache_dir(None, "tfidf")
        state = {}

        def model():
            if "model" not in state:
                state["model"] = fit_tfidf_teacher(texts, labels)
            return state["model"]

        rows = {}
        for split in SPLITS:
            examples, features = self._examples(split), self.features[split]
            if not features or split not in self.wanted:
                rows[split] = self._empty()
                continue
            split_texts = [task.example_text(e) for e in examples]

            def compute(fs, split_texts=split_texts, split=split):
                m = model()
                columns = [list(m.classes_).index(label) for label in task.labels]
                probs = m.predict_proba(split_texts)[:, columns]  # [N, C] in the task's label order
                if split == "train" and cross_fit:
                    # the labeled training texts come first in the train split (the transfer set follows)
                    probs[:len(texts)] = out_of_fold(texts, labels, cross_fit, m, task.labels)
                return list(np.log(np.clip(probs, MIN_PROBABILITY, None)).astype(np.float32))

            oof = f"|oof{cross_fit}" if (split == "train" and cross_fit) else ""
            rows[split] = teacher_cache.load_or_build(
                cache_dir, "tfidf", task, features, compute,
                identity=identity + oof + "|" + _digest(split_texts))
        return TeacherOutputs("tfidf", weight, *rows["train"], *rows["dev"], *rows["test"])


def mixed_rows(outputs: Sequence[TeacherOutputs], split: str, temperature: float) -> np.ndarray:
    return mix([getattr(o, split) for o in outputs], [o.weight for o in outputs], temperature)


def score(task: Task, rows: np.ndarray, offsets: np.ndarray, features, examples) -> Optional[Dict]:
    """The task metric of predictions made from KD rows (one slice of `rows` per feature)."""
    if not features:
        return None
    predictions = [task.predict_rows(rows[offsets[i]:offsets[i + 1]], f) for i, f in enumerate(features)]
    return task.evaluate(predictions, examples)


def build(cfg, task: Task, splits, train_features, dev_features, test_features, bar=None):
    """(train rows, offsets) of the mixed soft target, and the ensemble's report (its own and each teacher's
    dev/test metrics)."""
    outputs = EnsembleBuilder(cfg, task, splits, train_features, dev_features, test_features, bar).build()
    report = _report(cfg, task, outputs, splits, dev_features, test_features)
    return (mixed_rows(outputs, "train", cfg.distill.temperature), outputs[0].offsets), report


def _report(cfg, task: Task, outputs: Sequence[TeacherOutputs], splits, dev_features, test_features) -> Dict:
    """The ensemble's own dev/test metrics and each teacher's."""
    t = cfg.distill.temperature
    report = {"temperature": t, "teachers": []}
    for o in outputs:
        report["teachers"].append({"teacher": o.name, "weight": o.weight,
                                   "dev": _headline(score(task, o.dev, o.dev_offsets, dev_features, splits.dev)),
                                   "test": _headline(score(task, o.test, o.test_offsets, test_features, splits.test))})
    first = outputs[0]
    report["dev"] = score(task, mixed_rows(outputs, "dev", t), first.dev_offsets, dev_features, splits.dev)
    report["test"] = score(task, mixed_rows(outputs, "test", t), first.test_offsets, test_features, splits.test)
    if report["dev"] is not None:
        logger.info("teacher ensemble of %d: dev %s %.4f", len(outputs), task.metric_name,
                    float(report["dev"][task.metric_name]))
    return report


def _headline(metrics: Optional[Dict]) -> Optional[Dict]:
    return None if metrics is None else {k: v for k, v in metrics.items() if k != "per_class"}


# ---------------------------------------------------------------- each member checked as a single teacher is


def check_members(cfg, task: Task, report: Dict, dev_examples, check: Callable) -> None:
    """Each member's dev metric against the chance level, by the single-teacher rule `check`
    (supervised.check_teacher): a member at chance is refused by name unless distill.allow_weak_teacher."""
    for member in report["teachers"]:
        if member["dev"] is not None:
            check(cfg, task, member["dev"], dev_examples, member=member["teacher"])


def compare_members(cfg, task: Task, student_dev: Dict, report: Dict, compare: Callable) -> List[Dict]:
    """Each member's dev metric beside the student's, by the single-teacher rule `compare`
    (supervised.compare_with_teacher: a warning, not a refusal, when a student trained without KD already matches
    that member), stored as report["teachers"][i]["comparison"]; returns them. (The config accepts distill.teachers
    with kd_weight > 0 only, so in a training run these are report lines; the warning needs a no-KD student.)"""
    out = []
    for member in report["teachers"]:
        if member["dev"] is not None:
            member["comparison"] = {"teacher": member["teacher"],
                                    **compare(cfg, task, student_dev, member["dev"], member=member["teacher"])}
            out.append(member["comparison"])
    return out


# ---------------------------------------------------------------- the ensemble (or one member) scored alone


def score_teachers(cfg, member: Optional[int] = None, with_train: bool = False) -> Dict:
    """Dev/test metrics of a config's teacher ensemble (or of its `member`-th teacher alone), reading documents as
    the config does (model.long_document: a teacher fine-tuned on truncated text scores windows, no retraining).
    Dev and test are scored (and the training split with its transfer set, `with_train`: to fill the cache ahead of
    a training run, e.g. on the other core); their rows land in the caches a training run of this config reads."""
    import dataclasses

    from ernie_tiny_distill.data import load as data_lib

    if not cfg.distill.teachers:
        raise UserError("the config has no distill.teachers to score", where="config key 'distill.teachers'")
    if member is not None:
        if not 0 <= member < len(cfg.distill.teachers):
            raise UserError(f"--member must be 0..{len(cfg.distill.teachers) - 1}, got {member}")
        cfg = dataclasses.replace(cfg, distill=dataclasses.replace(cfg.distill,
                                                                   teachers=[cfg.distill.teachers[member]]))
    transfer = with_train and cfg.stage in DISTILL_STAGES and bool(cfg.data.unlabeled)
    splits = data_lib.load_splits(cfg.data, cfg.task, need_unlabeled=transfer)
    tokenizer = models.load_tokenizer(models.resolve(cfg.model.teacher))
    meta = models.read_task_metadata(models.resolve(cfg.model.teacher))
    labels = list(meta["labels"]) if meta else list(splits.labels)  # the order a training run of cfg uses
    task = make_task(cfg.task, tokenizer, labels, cfg.model.max_seq_length, cfg.model.truncation,
                     long_document=cfg.model.long_document.task_option(), case_ids=cfg.model.case_ids)
    dev, test = task.encode(splits.dev), task.encode(splits.test)
    train = training_features(task, splits, transfer) if with_train else []
    outputs = EnsembleBuilder(cfg, task, splits, train, dev, test).build(("train", "dev", "test") if with_train
                                                                         else ("dev", "test"))
    report = _report(cfg, task, outputs, splits, dev, test)
    reads = cfg.model.long_document.task_option()
    return {"metric_name": task.metric_name, "dev": _headline(report["dev"]), "test": _headline(report["test"]),
            "teachers": report["teachers"], "temperature": report["temperature"],
            "reads": {"max_seq_length": cfg.model.max_seq_length, "windows": reads,
                      "truncation": None if reads else cfg.model.truncation},
            "dev_examples": len(splits.dev), "test_examples": len(splits.test),
            "train_examples_scored": len(train)}


def main(argv: Optional[Sequence[str]] = None) -> int:
    """python -m ernie_tiny_distill.distill.ensemble --config CFG [--member N] --out JSON [key=value ...]"""
    import argparse
    import json
    import time

    from ernie_tiny_distill.cli import run_tool
    from ernie_tiny_distill.config import load_config

    parser = argparse.ArgumentParser(description="Dev/test metrics of a config's distill.teachers ensemble "
                                                 "(or one member) as the config reads documents.")
    parser.add_argument("--config", required=True, help="a task-stage config with distill.teachers")
    parser.add_argument("--member", type=int, help="score only this teacher (0-based index in distill.teachers)")
    parser.add_argument("--out", required=True, help="where to write the metrics (JSON)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for the neural teachers")
    parser.add_argument("--with-train", action="store_true",
                        help="also score the training split and transfer set (fills the cache a training run reads)")
    parser.add_argument("overrides", nargs="*", help="key=value overrides of the config")

    def run(args) -> int:
        from ernie_tiny_distill.util import fsutil

        started = time.time()
        result = score_teachers(load_config(args.config, args.overrides), args.member, args.with_train)
        result["seconds"] = round(time.time() - started, 1)
        fsutil.write_json(args.out, result)
        print(json.dumps({k: result[k] for k in ("metric_name", "dev", "test", "seconds")}, indent=2))
        return 0

    return run_tool(parser, run, argv)


if __name__ == "__main__":
    import sys

    sys.exit(main())
