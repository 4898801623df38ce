"""Teacher fine-tuning and task distillation (stage 2): teacher checks, the training run, best/ scored on dev/test."""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Dict, Optional

from ernie_tiny_distill.config import DISTILL_STAGES, Config
from ernie_tiny_distill.data import load as data_lib
from ernie_tiny_distill.distill import distiller as distill
from ernie_tiny_distill.distill import ensemble
from ernie_tiny_distill.errors import UserError
from ernie_tiny_distill.models import birth
from ernie_tiny_distill.models import build as models
from ernie_tiny_distill.tasks.adapters import make_task
from ernie_tiny_distill.tasks.base import Task
from ernie_tiny_distill.train import builders, rundir
from ernie_tiny_distill.train import evaluation
from ernie_tiny_distill.util import fsutil

logger = logging.getLogger(__name__)

# A teacher must beat the chance level by this margin on dev before it may teach.
WEAK_TEACHER_MARGIN = 0.02


def teacher_labels(cfg: Config, data_labels) -> list:
    """For distillation the label order is the teacher's (its logits are in that order)."""
    meta = models.read_task_metadata(models.resolve(cfg.model.teacher)) if cfg.stage == "task" else None
    if meta is None:
        return list(data_labels)
    where = f"model.teacher={cfg.model.teacher}"
    if meta.get("task") != cfg.task:
        raise UserError(f"the teacher is a {meta.get('task')!r} model but task is {cfg.task!r}", where=where)
    if sorted(meta["labels"]) != sorted(data_labels):
        raise UserError(
            f"the teacher was trained with {len(meta['labels'])} labels {meta['labels'][:8]} but the training "
            f"data has {len(data_labels)}: {list(data_labels)[:8]}", where=where)
    return list(meta["labels"])

def run_supervised(cfg: Config, tokenizer, splits: data_lib.DataSplits) -> Dict[str, object]:
    """Teacher fine-tuning (stage 'teacher') or task distillation (stage 'task'): train, keep best/, score it."""
    transfer = cfg.stage in DISTILL_STAGES and bool(cfg.data.unlabeled)
    labels = teacher_labels(cfg, splits.labels)
    if cfg.stage != "teacher" and cfg.model.student.init == "pretrained":
        rundir.check_student_labels(cfg, models.read_task_metadata(models.resolve(cfg.model.student.path)), labels)
    task = make_task(cfg.task, tokenizer, labels, cfg.model.max_seq_length, cfg.model.truncation,
                     long_document=cfg.model.long_document.task_option(), case_ids=cfg.model.case_ids)
    teacher, model = _teacher_and_model(cfg, task, tokenizer)
    train_features = task.encode(splits.train)
    basis = None
    if model is None:  # a student pruned from the teacher: importance is measured on the training data
        model, basis = builders.pruned_student(cfg, teacher, train_features, task.model_class, task.num_labels,
                                               tokenizer, task)
    if transfer:
        # transfer set: no gold labels, so only the KD term sees these examples
        train_features += task.encode(splits.unlabeled, offset=len(train_features))
    features = {"train": train_features, "dev": task.encode(splits.dev), "test": task.encode(splits.test)}
    teaching = _Teaching()
    if teacher is not None and cfg.distill.teachers:
        teaching = _ensemble_teaching(cfg, task, splits, features)
    elif teacher is not None:
        teaching = _single_teacher(cfg, task, tokenizer, labels, teacher, splits, features, transfer)
    trainer = builders.make_trainer(cfg, task, model, teacher, tokenizer, teaching.rows, basis)
    best_dir = os.path.join(cfg.output_dir, "best")
    state = trainer.fit(features["train"], features["dev"], splits.dev,
                        on_best=_best_saver(cfg, task, trainer, tokenizer, best_dir))
    if not trainer.is_main:  # data parallel: rank 0 evaluates the best model and writes the results
        return {"metric_name": task.metric_name, "best_dir": best_dir, "rank": trainer.rank,
                "train_examples": len(splits.train), "skipped_batches": state["skipped_batches"]}
    return _score_best(cfg, task, trainer, state, splits, features, best_dir, teaching)


@dataclass
class _Teaching:
    """What teaches a student: the teacher's dev metrics, its logit rows (when cached) and an ensemble's report."""

    dev: Optional[Dict] = None
    rows: Optional[distill.TeacherRows] = None
    ensemble_report: Optional[Dict] = None


def _teacher_and_model(cfg: Config, task: Task, tokenizer):
    """(teacher, model to train): (None, the teacher) to fine-tune it; (teacher, student or None) to distil, None
    when the student is pruned from the teacher after the training data are encoded."""
    case_ids = cfg.model.case_ids
    if cfg.stage == "teacher":
        model = models.load_model(cfg.model.teacher, task.model_class, task.num_labels, cfg.model.dropout)
        model = birth.match_case_ids(model, cfg.model.teacher, case_ids, "model to fine-tune", grow=True)
        if cfg.model.lora_rank:
            model = birth.add_lora(model, cfg.model.lora_rank, case_ids)
        return None, model
    teacher = models.load_model(cfg.model.teacher, task.model_class, task.num_labels)
    birth.match_case_ids(teacher, cfg.model.teacher, case_ids, "teacher", grow=False)
    if cfg.model.student.init == "teacher_pruned":
        return teacher, None  # the pruned student inherits the teacher's token-type table
    student = birth.build_student(cfg.model.student, teacher, tokenizer, task.model_class, task.num_labels,
                                  cfg.model.dropout)
    if cfg.model.student.init == "pretrained":  # born from the teacher, a student inherits its table
        student = birth.match_case_ids(student, cfg.model.student.path, case_ids, "student", grow=True)
    return teacher, student


def _ensemble_teaching(cfg: Config, task: Task, splits, features: Dict[str, list]) -> _Teaching:
    """An ensemble teaches; model.teacher only provides the tokenizer and the student's initialisation."""
    rows, report = ensemble.build(cfg, task, splits, features["train"], features["dev"], features["test"],
                                  builders.progress_bar(cfg, "teacher logits"))
    ensemble.check_members(cfg, task, report, splits.dev, check_teacher)
    return _Teaching(dev=report["dev"], rows=distill.TeacherRows(*rows), ensemble_report=report)


def _single_teacher(cfg: Config, task: Task, tokenizer, labels, teacher, splits, features: Dict[str, list],
                    transfer: bool) -> _Teaching:
    """model.teacher teaches: scored on dev (and refused when weak), its logits cached when KD needs only them."""
    teacher_task_ = teacher_task(cfg, task, tokenizer, labels)
    if teacher_task_ is task:
        teacher_train, teacher_dev_features = features["train"], features["dev"]
    else:
        teacher_train = teacher_task_.encode(splits.train)
        if transfer:
            teacher_train += teacher_task_.encode(splits.unlabeled, offset=len(teacher_train))
        teacher_dev_features = teacher_task_.encode(splits.dev)
        distill.check_same_kd_rows(task, features["train"], teacher_train, cfg.distill.teacher_max_seq_length)
    teacher_dev = evaluation.evaluate(task, teacher, teacher_dev_features, splits.dev,
                                       cfg.train.eval_batch_size, tokenizer.pad_token_id,
                                       progress=builders.progress_bar(cfg, "teacher on dev"))
    check_teacher(cfg, task, teacher_dev, splits.dev)
    rows = None
    if cfg.distill.cache_teacher and distill.kd_from_logits_only(cfg):
        rows = distill.TeacherRows(*builders.cached_teacher_rows(cfg, teacher_task_, teacher, teacher_train,
                                                                 tokenizer.pad_token_id))
    return _Teaching(dev=teacher_dev, rows=rows)


def _best_saver(cfg: Config, task: Task, trainer, tokenizer, best_dir: str):
    """The trainer's on_best callback: the student (LoRA merged) and its headline dev metrics into best/."""
    def save_best(metrics):
        model_to_save = trainer.trainable.student
        if cfg.model.lora_rank:
            model_to_save = birth.merge_lora(model_to_save, task.model_class)
        models.save_model_dir(model_to_save, tokenizer, best_dir,
                              {**task.metadata(), "stage": cfg.stage, "dev": _headline(metrics)})

    return save_best


def _score_best(cfg: Config, task: Task, trainer, state: Dict, splits, features: Dict[str, list], best_dir: str,
                teaching: _Teaching) -> Dict[str, object]:
    """The summary of a finished run: best/ scored on dev and test beside its teacher; best/metrics.json."""
    best = models.load_model(best_dir, task.model_class, task.num_labels)
    dev_metrics = trainer.evaluate(best, features["dev"], splits.dev)
    test_metrics = (trainer.evaluate(best, features["test"], splits.test, split="test") if features["test"]
                    else None)
    total, non_embedding = birth.count_parameters(best)
    result = {
        "metric_name": task.metric_name, "dev": dev_metrics, "test": test_metrics,
        "teacher_dev": teaching.dev, "train_examples": len(splits.train),
        "transfer_examples": len(splits.unlabeled), "params": total, "nonembedding_params": non_embedding,
        "layers": models.num_layers(best), "hidden": models.hidden_size(best), "best_dir": best_dir,
        "best_step": state["best_step"], "history": state["history"], "train_seconds": state.get("seconds"),
        "segments": state.get("segments", 1), "earlier_train_seconds": state.get("earlier_seconds"),
        "skipped_batches": state["skipped_batches"], "total_steps": state["total_steps"],
        "stopped_early": state.get("stopped_early"),
    }
    result.update(task.decoding_metadata())  # tagging: the decoding these metrics (and best/'s choice) used
    if teaching.ensemble_report is not None:
        result["ensemble"] = teaching.ensemble_report
    if teaching.dev is not None:
        result["teacher_comparison"] = compare_with_teacher(cfg, task, dev_metrics, teaching.dev)
        if teaching.ensemble_report is not None:  # each member beside the student, as a single teacher would be
            ensemble.compare_members(cfg, task, dev_metrics, teaching.ensemble_report, compare_with_teacher)
    fsutil.write_json(os.path.join(best_dir, "metrics.json"),
                      {**task.decoding_metadata(), "dev": dev_metrics, "test": test_metrics,
                       "teacher_dev": teaching.dev})
    return result


def _headline(metrics: Dict) -> Dict:
    return {k: v for k, v in metrics.items() if k != "per_class"}


def compare_with_teacher(cfg: Config, task: Task, student_dev: Dict, teacher_dev: Dict,
                         member: Optional[str] = None) -> Dict[str, object]:
    """The student's dev metric beside its teacher's, with a warning when the teacher has little left to teach.

    A student trained without KD that already matches its teacher on dev says the teacher is weak for this
    student: distilling from it has made such students worse (e.g. an undertrained tweet-NER teacher), so say so.
    `member`: the name of one teacher of an ensemble (distill.teachers), said in the log and the warning.
    """
    name = task.metric_name
    teacher_is = f"teacher {member}" if member else "its teacher"
    student, teacher = float(student_dev[name]), float(teacher_dev[name])
    kd = cfg.distill.kd_weight > 0 or cfg.distill.hidden_weight > 0 or cfg.distill.attention_weight > 0
    logger.info("dev %s: student %.4f, %s %.4f (%s)", name, student, teacher_is, teacher,
                "distilled" if kd else "trained without KD")
    out: Dict[str, object] = {"metric": name, "student_dev": student, "teacher_dev": teacher, "kd": kd}
    matches = student >= teacher if task.greater_is_better else student <= teacher
    if not kd and matches:
        out["warning"] = (f"without KD this student already matches {teacher_is} on dev ({name} {student:.4f} vs "
                          f"{teacher:.4f}): the teacher has little to teach it, and KD from it may make it worse; "
                          "compare a KD run with this one before using it")
        logger.warning(out["warning"])
    return out


def check_teacher(cfg: Config, task: Task, teacher_dev: Dict, dev_examples, member: Optional[str] = None) -> None:
    score, chance = float(teacher_dev[task.metric_name]), task.chance_level(dev_examples)
    logger.info("teacher dev %s = %.4f (chance level %.4f)", task.metric_name, score, chance)
    if score <= chance + WEAK_TEACHER_MARGIN:
        who = f"teacher {member}" if member else "teacher"
        # "chance" is the trivial predictor's score on these dev labels, not 1/classes: say which, and whether
        # the teacher is below it or merely not clearly above it
        relation = "below" if score < chance - WEAK_TEACHER_MARGIN else "no better than"
        message = (f"the {who}'s dev {task.metric_name} is {score:.4f}, {relation} the {chance:.4f} of "
                   f"{task.trivial_predictor} ({len(task.labels)} labels): it has nothing to teach")
        if not cfg.distill.allow_weak_teacher:
            where = f"distill.teachers: {member}" if member else f"model.teacher={cfg.model.teacher}"
            raise UserError(message, where=where,
                            hint="fine-tune it first (stage=teacher), or set distill.allow_weak_teacher=true")
        logger.warning("%s (continuing: distill.allow_weak_teacher=true)", message)


def teacher_task(cfg: Config, task: Task, tokenizer, labels) -> Task:
    """The student's task, or the same task at distill.teacher_max_seq_length when that differs."""
    length = cfg.distill.teacher_max_seq_length
    if not length or length == cfg.model.max_seq_length:
        return task
    if not (cfg.distill.cache_teacher and distill.kd_from_logits_only(cfg)):
        raise UserError(
            f"distill.teacher_max_seq_length={length} (student: model.max_seq_length={cfg.model.max_seq_length}) "
            "works with cached logit KD only", where="config key 'distill.teacher_max_seq_length'",
            hint="set distill.cache_teacher=true and distill.hidden_weight/attention_weight/mlm_weight to 0, "
                 "or remove teacher_max_seq_length")
    logger.info("the teacher reads %d tokens, the student %d", length, cfg.model.max_seq_length)
    return make_task(cfg.task, tokenizer, labels, length, cfg.model.truncation,
                     long_document=cfg.model.long_document.task_option(), case_ids=cfg.model.case_ids)
