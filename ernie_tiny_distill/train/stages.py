"""Run one stage from a config: read data, build teacher/student, train, evaluate the best checkpoint."""
from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import time
from typing import Dict, Optional

import numpy as np
import paddle
import yaml
from paddlenlp.transformers import ErnieForMaskedLM, ErnieModel

from ernie_tiny_distill.config import DISTILL_STAGES, Config, config_from_dict
from ernie_tiny_distill.data import load as data_lib
from ernie_tiny_distill.distill import distiller as distill
from ernie_tiny_distill.distill import ensemble, teacher_cache
from ernie_tiny_distill.errors import UserError
from ernie_tiny_distill.models import build as models
from ernie_tiny_distill.models import pruning
from ernie_tiny_distill.tasks.adapters import GeneralTask, Task, make_task
from ernie_tiny_distill.train import checkpoint, rundir
from ernie_tiny_distill.train import trainer as trainer_lib
from ernie_tiny_distill.train.trainer import Trainer, init_distributed
from ernie_tiny_distill.util import fsutil
from ernie_tiny_distill.util.threads import apply_threads

logger = logging.getLogger(__name__)

SUMMARY_FILE = "summary.json"
# Stage 1 scores itself on this share of the unlabeled corpus, held out from training.
GENERAL_DEV_FRACTION, GENERAL_DEV_MAX = 0.02, 500
# A teacher must beat the chance level by this margin on dev before it may teach.
WEAK_TEACHER_MARGIN = 0.02


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    paddle.seed(seed)


# Keys that change how a run reports itself or where it keeps its checkpoints, never what it computes.
# data.encoding_errors only decides whether a bad byte stops a run before training: a finished run read its data.
PRESENTATION_KEYS = (("train", "progress"), ("train", "log_every"), ("train", "keep_checkpoints"),
                     ("train", "resume"), ("train", "num_threads"), ("data", "encoding_errors"))


def _without_presentation(config: Dict) -> Dict:
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in config.items()}
    for section, key in PRESENTATION_KEYS:
        if isinstance(out.get(section), dict):
            out[section].pop(key, None)
    if out.get("stage") == "teacher":  # fine-tuning reads neither the student block nor the distillation settings
        out.pop("distill", None)
        if isinstance(out.get("model"), dict):
            out["model"].pop("student", None)
    return out


def same_config(old, new: Dict) -> bool:
    """A recorded config (config.yaml) equals `new` (a complete config dict) after filling the current defaults:
    a key added to the package later, with a default, does not make a finished run look different; a changed
    value or an unknown key does. Presentation keys (progress bar, log interval, threads, ...) do not count."""
    if old is None:
        return False
    if old == new:
        return True
    try:
        return _without_presentation(config_from_dict(old).to_dict()) == _without_presentation(new)
    except (UserError, TypeError, ValueError):
        return False


def _as_current_config(raw) -> Optional[dict]:
    """A config.yaml written by an earlier version, as this version reads it: keys added since then take their
    defaults (so a new option does not make every finished run look changed); None if it no longer loads."""
    from ernie_tiny_distill.config import config_from_dict

    try:
        return config_from_dict(raw).to_dict()
    except (UserError, TypeError, ValueError):
        return None


def finished_summary(cfg: Config):
    """The summary of a finished run of this config (by `same_config`) in cfg.output_dir, else None."""
    summary_file = os.path.join(cfg.output_dir, SUMMARY_FILE)
    config_file = os.path.join(cfg.output_dir, "config.yaml")
    if not (os.path.isfile(summary_file) and os.path.isfile(config_file)):
        return None
    try:
        with open(config_file, encoding="utf-8") as f:
            old = yaml.safe_load(f)
        if not same_config(old, cfg.to_dict()):
            return None
        with open(summary_file, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError, yaml.YAMLError):
        return None


def run_stage(cfg: Config, skip_if_done: bool = False) -> Dict[str, object]:
    """Train one stage as configured; returns (and writes to output_dir/summary.json) the results.

    With skip_if_done, a run that already finished with the same config is not repeated (pipelines re-run
    cheaply); an unfinished one resumes from its last checkpoint either way.

    Nothing is written before the inputs are known to be usable: an output_dir that holds the teacher (or the
    init student) is refused, and the data are read before output_dir is created. The run holds an exclusive
    lock on output_dir (rundir.RunLock) from before it touches anything there until summary.json is written.
    """
    rundir.check_not_a_model_dir(cfg)
    rundir.check_student_run_finished(cfg)
    if skip_if_done:
        done = finished_summary(cfg)
        if done is not None:
            logger.info("%s: already finished with this config; skipping", cfg.output_dir)
            return done
    rundir.check_finished_best(cfg)
    started = time.time()
    apply_threads(cfg.train.num_threads)
    init_distributed()
    is_main = paddle.distributed.get_rank() == 0  # under paddle.distributed.launch only rank 0 writes files
    seed_everything(cfg.train.seed)
    _explain_loss_weights(cfg)
    tokenizer = models.load_tokenizer(cfg.model.teacher)
    data = _read_data(cfg)  # bad data fails here, before output_dir or its config.yaml exist
    os.makedirs(cfg.output_dir, exist_ok=True)
    lock = rundir.RunLock(cfg.output_dir) if is_main else contextlib.nullcontext()
    with lock:
        if is_main:
            if os.path.exists(os.path.join(cfg.output_dir, SUMMARY_FILE)):
                os.remove(os.path.join(cfg.output_dir, SUMMARY_FILE))  # stale until this run finishes
            _warn_if_resuming_another_config(cfg)
            fsutil.write_text(os.path.join(cfg.output_dir, "config.yaml"),
                              yaml.safe_dump(cfg.to_dict(), sort_keys=False))
        if cfg.stage == "general":
            summary = _run_general(cfg, tokenizer, data)
        elif cfg.stage == "wide":
            from ernie_tiny_distill.wide import document_fit as wide_document_fit
            from ernie_tiny_distill.wide import fit as wide_fit

            fit = wide_document_fit if cfg.model.wide.level == "document" else wide_fit
            summary = fit.run(cfg, tokenizer, data)
        else:
            summary = _run_supervised(cfg, tokenizer, data)
        # earlier segments of a resumed run: their training time up to the checkpoint this one resumed from
        earlier = summary.pop("earlier_train_seconds", 0.0) or 0.0
        summary.update(stage=cfg.stage, task=cfg.task, output_dir=cfg.output_dir,
                       seconds=round(time.time() - started + earlier, 1))
        if is_main:
            fsutil.write_json(os.path.join(cfg.output_dir, SUMMARY_FILE), summary)
            rundir.remove_checkpoints(cfg.output_dir, keep=cfg.train.keep_checkpoints_after_finish)
    return summary


def _read_data(cfg: Config):
    """The stage's examples: the unlabeled corpus (stage 1) or the labeled splits (teacher, stage 2)."""
    if cfg.stage == "general":
        corpus = data_lib.read_unlabeled(cfg.data, cfg.task)
        if len(corpus) < 4:
            raise UserError(f"data.unlabeled has {len(corpus)} documents; stage 'general' needs more text")
        return corpus
    transfer = cfg.stage in DISTILL_STAGES and bool(cfg.data.unlabeled)
    return data_lib.load_splits(cfg.data, cfg.task, need_unlabeled=transfer)


def _explain_loss_weights(cfg: Config) -> None:
    """Say what a stage-2 run without KD trains on: a template's ce_weight silently stays otherwise."""
    d = cfg.distill
    if cfg.stage != "task" or d.kd_weight > 0:
        return
    terms = distill.loss_weights(cfg)
    logger.warning("distill.kd_weight=0: the teacher's output distribution is not used; the student trains on %s",
                   " + ".join(f"{k}×{v:g}" for k, v in terms.items()) + (
                       " (the labels with distill.ce_weight=%g)" % d.ce_weight if "ce" in terms else ""))


def _changed_keys(old, new, prefix=""):
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new), key=str):
            out += _changed_keys(old.get(key), new.get(key), f"{prefix}{key}.")
        return out
    return [] if old == new else [f"{prefix.rstrip('.')} ({old!r} -> {new!r})"]


def _warn_if_resuming_another_config(cfg: Config) -> None:
    """Resuming checkpoints written under other settings is allowed (e.g. more epochs), but never silent."""
    config_file = os.path.join(cfg.output_dir, "config.yaml")
    last = checkpoint.latest(os.path.join(cfg.output_dir, "checkpoints")) if cfg.train.resume else None
    if not last and cfg.train.overwrite and os.path.isdir(os.path.join(cfg.output_dir, "best")):
        logger.warning("%s holds a finished run: training starts over and will replace its best/ "
                       "(train.overwrite=true)", cfg.output_dir)
    if not last or not os.path.isfile(config_file):
        return
    try:
        with open(config_file, encoding="utf-8") as f:
            old = yaml.safe_load(f)
    except (OSError, yaml.YAMLError):
        return
    changed = _changed_keys(_as_current_config(old) or old, cfg.to_dict())
    if changed:
        logger.warning("resuming from %s, which was written with other settings: %s; to start over instead, "
                       "use a new output_dir or train.resume=false", last, ", ".join(changed[:6]))


# ---------------------------------------------------------------- stage 1


def _run_general(cfg: Config, tokenizer, corpus: list) -> Dict[str, object]:
    d = cfg.distill
    n_dev = min(GENERAL_DEV_MAX, max(1, int(len(corpus) * GENERAL_DEV_FRACTION)))
    train_docs, dev_docs = corpus[n_dev:], corpus[:n_dev]
    task = GeneralTask(tokenizer, cfg.model.max_seq_length)
    model_class = ErnieForMaskedLM if d.mlm_weight > 0 else ErnieModel
    teacher = models.load_model(cfg.model.teacher, model_class)
    if d.mlm_weight > 0:
        _require_mlm_head(cfg.model.teacher)
    train_features = task.encode(train_docs)
    dev_features = task.encode(dev_docs)
    basis = None
    if cfg.model.student.init == "teacher_pruned":
        if not cfg.model.student.importance_file:
            raise UserError("stage 'general' has no labels to measure head/neuron importance with",
                            where="config key 'model.student.importance_file'",
                            hint="point it at the importance.json of a task-stage run of the same teacher")
        student, basis = _pruned_student(cfg, teacher, train_features, model_class, None, tokenizer)
    else:
        student = models.build_student(cfg.model.student, teacher, tokenizer, model_class, dropout=cfg.model.dropout)
    trainer = _make_trainer(cfg, task, student, teacher, tokenizer, basis=basis)
    best_dir = os.path.join(cfg.output_dir, "best")

    def save_best(metrics):
        models.save_model_dir(trainer.trainable.student, tokenizer, best_dir,
                              {**task.metadata(), "stage": "general", "dev": metrics})

    state = trainer.fit(train_features, dev_features, dev_docs, on_best=save_best)
    total, non_embedding = models.count_parameters(student)
    return {"train_examples": len(train_features), "dev": {"loss": state["best_metric"]}, "best_dir": best_dir,
            "params": total, "nonembedding_params": non_embedding, "history": state["history"],
            "train_seconds": state.get("seconds"), "segments": state.get("segments", 1),
            "earlier_train_seconds": state.get("earlier_seconds")}


def _require_mlm_head(spec: str) -> None:
    path = models.resolve(spec)
    from ernie_tiny_distill.models import convert

    has_head = False
    if os.path.isdir(path) and convert.is_hf_bert_dir(path):
        has_head = convert.load_hf_bert(path)[2]
    elif os.path.isdir(path):
        from safetensors import safe_open

        for name in os.listdir(path):
            if name.endswith(".safetensors"):
                with safe_open(os.path.join(path, name), framework="np") as f:
                    has_head |= any(k.startswith("cls.") for k in f.keys())
    else:
        has_head = True  # PaddleNLP pretrained names ship their MLM head
    if not has_head:
        raise UserError(
            f"distill.mlm_weight > 0 needs a teacher with a masked-LM head, and {spec!r} has none",
            hint="set distill.mlm_weight=0 and use distill.hidden_weight / distill.attention_weight instead",
        )


# ---------------------------------------------------------------- teacher fine-tuning and stage 2


def _teacher_labels(cfg: Config, data_labels) -> list:
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


def _run_supervised(cfg: Config, tokenizer, splits: data_lib.DataSplits) -> Dict[str, object]:
    transfer = cfg.stage in DISTILL_STAGES and bool(cfg.data.unlabeled)
    labels = _teacher_labels(cfg, splits.labels)
    if cfg.stage != "teacher" and cfg.model.student.init == "pretrained":
        rundir.check_student_labels(cfg, models.read_task_metadata(models.resolve(cfg.model.student.path)), labels)
    task = make_task(cfg.task, tokenizer, labels, cfg.model.max_seq_length, cfg.model.truncation,
                     long_document=cfg.model.long_document.task_option())
    if cfg.stage == "teacher":
        teacher = None
        model = models.load_model(cfg.model.teacher, task.model_class, task.num_labels, cfg.model.dropout)
        if cfg.model.lora_rank:
            model = models.add_lora(model, cfg.model.lora_rank)
    else:
        teacher = models.load_model(cfg.model.teacher, task.model_class, task.num_labels)
        model = None
        if cfg.model.student.init != "teacher_pruned":
            model = models.build_student(cfg.model.student, teacher, tokenizer, task.model_class, task.num_labels,
                                         cfg.model.dropout)
    train_features = task.encode(splits.train)
    basis = None
    if model is None:  # a student pruned from the teacher: importance is measured on the training data
        model, basis = _pruned_student(cfg, teacher, train_features, task.model_class, task.num_labels, tokenizer,
                                       task)
    if transfer:
        # transfer set: no gold labels, so only the KD term sees these examples
        train_features += task.encode(splits.unlabeled, offset=len(train_features))
    dev_features, test_features = task.encode(splits.dev), task.encode(splits.test)

    teacher_dev, teacher_rows, ensemble_report = None, None, None
    if teacher is not None and cfg.distill.teachers:
        # an ensemble teaches; model.teacher only provides the tokenizer and the student's initialisation
        rows, ensemble_report = ensemble.build(cfg, task, splits, train_features, dev_features, test_features,
                                               _bar(cfg, "teacher logits"))
        teacher_rows = distill.TeacherRows(*rows)
        teacher_dev = ensemble_report["dev"]
        ensemble.check_members(cfg, task, ensemble_report, splits.dev, _check_teacher)
    elif teacher is not None:
        teacher_task = _teacher_task(cfg, task, tokenizer, labels)
        if teacher_task is task:
            teacher_train, teacher_dev_features = train_features, dev_features
        else:
            teacher_train = teacher_task.encode(splits.train)
            if transfer:
                teacher_train += teacher_task.encode(splits.unlabeled, offset=len(teacher_train))
            teacher_dev_features = teacher_task.encode(splits.dev)
            _check_same_kd_rows(task, train_features, teacher_train, cfg.distill.teacher_max_seq_length)
        teacher_dev = trainer_lib.evaluate(task, teacher, teacher_dev_features, splits.dev,
                                           cfg.train.eval_batch_size, tokenizer.pad_token_id,
                                           progress=_bar(cfg, "teacher on dev"))
        _check_teacher(cfg, task, teacher_dev, splits.dev)
        if cfg.distill.cache_teacher and distill.kd_from_logits_only(cfg):
            teacher_rows = distill.TeacherRows(*_cached_teacher_rows(cfg, teacher_task, teacher, teacher_train,
                                                                     tokenizer.pad_token_id))
    trainer = _make_trainer(cfg, task, model, teacher, tokenizer, teacher_rows, basis)

    best_dir = os.path.join(cfg.output_dir, "best")

    def save_best(metrics):
        model_to_save = trainer.trainable.student
        if cfg.model.lora_rank:
            model_to_save = models.merge_lora(model_to_save, task.model_class)
        models.save_model_dir(model_to_save, tokenizer, best_dir,
                              {**task.metadata(), "stage": cfg.stage, "dev": _headline(metrics, task)})

    state = trainer.fit(train_features, dev_features, splits.dev, on_best=save_best)
    if not trainer.is_main:  # data parallel: rank 0 evaluates the best model and writes the results
        return {"metric_name": task.metric_name, "best_dir": best_dir, "rank": trainer.rank,
                "train_examples": len(splits.train), "skipped_batches": state["skipped_batches"]}
    best = models.load_model(best_dir, task.model_class, task.num_labels)
    dev_metrics = trainer.evaluate(best, dev_features, splits.dev)
    test_metrics = trainer.evaluate(best, test_features, splits.test, split="test") if test_features else None
    total, non_embedding = models.count_parameters(best)
    result = {
        "metric_name": task.metric_name, "dev": dev_metrics, "test": test_metrics,
        "teacher_dev": teacher_dev, "train_examples": len(splits.train),
        "transfer_examples": len(splits.unlabeled), "params": total, "nonembedding_params": non_embedding,
        "layers": models.num_layers(best), "hidden": models.hidden_size(best), "best_dir": best_dir,
        "best_step": state["best_step"], "history": state["history"], "train_seconds": state.get("seconds"),
        "segments": state.get("segments", 1), "earlier_train_seconds": state.get("earlier_seconds"),
        "skipped_batches": state["skipped_batches"], "total_steps": state["total_steps"],
        "stopped_early": state.get("stopped_early"),
    }
    result.update(task.decoding_metadata())  # tagging: the decoding these metrics (and best/'s choice) used
    if ensemble_report is not None:
        result["ensemble"] = ensemble_report
    if teacher_dev is not None:
        result["teacher_comparison"] = compare_with_teacher(cfg, task, dev_metrics, teacher_dev)
        if ensemble_report is not None:  # each member beside the student, as a single teacher would be
            ensemble.compare_members(cfg, task, dev_metrics, ensemble_report, compare_with_teacher)
    fsutil.write_json(os.path.join(best_dir, "metrics.json"),
                      {**task.decoding_metadata(), "dev": dev_metrics, "test": test_metrics,
                       "teacher_dev": teacher_dev})
    return result


def _headline(metrics: Dict, task: Task) -> Dict:
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


def _check_teacher(cfg: Config, task: Task, teacher_dev: Dict, dev_examples, member: Optional[str] = None) -> None:
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


def _teacher_task(cfg: Config, task: Task, tokenizer, labels) -> Task:
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
                     long_document=cfg.model.long_document.task_option())


_check_same_kd_rows = distill.check_same_kd_rows  # the name tests and older callers use


def _pruned_student(cfg: Config, teacher, features, model_class, num_labels, tokenizer, task=None):
    """init=teacher_pruned: (student, basis) cut from `teacher` by importance (measured or cached), with the
    config's dropout."""
    student, basis = pruning.student_from_teacher(
        cfg.model.student, teacher, models.resolve(cfg.model.teacher), features, model_class, num_labels,
        _cache_dir(cfg, "pruning"), cfg.output_dir, tokenizer.pad_token_id, task=task)
    if cfg.model.dropout is not None:
        models.set_dropout(student, cfg.model.dropout)
    return student, basis


def _cache_dir(cfg: Config, kind: str) -> str:
    """Where per-teacher caches go: data.cache_dir, else the teacher's own directory, else the run directory."""
    teacher_dir = models.resolve(cfg.model.teacher)
    if cfg.data.cache_dir:
        return os.path.join(cfg.data.cache_dir, f"teacher_{kind}")
    if os.path.isdir(teacher_dir) and os.access(teacher_dir, os.W_OK):
        return os.path.join(teacher_dir, f"{kind}_cache")
    return os.path.join(cfg.output_dir, f"teacher_{kind}")


def _cached_teacher_rows(cfg: Config, task: Task, teacher, features, pad_token_id: int):
    teacher_dir = models.resolve(cfg.model.teacher)
    cache_dir = _cache_dir(cfg, "logits")
    return teacher_cache.load_or_build(cache_dir, teacher_dir, task, features,
                                       lambda fs: trainer_lib.predict_logits(task, teacher, fs, cfg.train.eval_batch_size,
                                                                             pad_token_id, _bar(cfg, "teacher logits")))


def _bar(cfg: Config, description: str):
    """A progress bar's description when this process shows bars, else None (no bar)."""
    return description if cfg.train.progress and paddle.distributed.get_rank() == 0 else None


def _make_trainer(cfg: Config, task: Task, student, teacher, tokenizer, teacher_rows=None, basis=None) -> Trainer:
    distiller = distill.build_distiller(cfg, task, student, teacher, tokenizer, teacher_rows, basis)
    return Trainer(cfg, task, distiller)
