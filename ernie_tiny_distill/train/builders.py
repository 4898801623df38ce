"""What every training stage builds: the pruned student, the trainer, teacher caches and progress bars."""
from __future__ import annotations

import os

import paddle

from ernie_tiny_distill.config import Config
from ernie_tiny_distill.distill import distiller as distill
from ernie_tiny_distill.distill import teacher_cache
from ernie_tiny_distill.models import birth, pruning
from ernie_tiny_distill.models import build as models
from ernie_tiny_distill.tasks.base import Task
from ernie_tiny_distill.train import evaluation
from ernie_tiny_distill.train.trainer import Trainer


def pruned_student(cfg: Config, teacher, features, model_class, num_labels, tokenizer, task=None):
    """init=teacher_pruned: (student, basis) cut from `teacher` by importance (measured or cached), with the
    config's dropout."""
    student, basis = pruning.student_from_teacher(
        cfg.model.student, teacher, models.resolve(cfg.model.teacher), features, model_class, num_labels,
        cache_dir(cfg, "pruning"), cfg.output_dir, tokenizer.pad_token_id, task=task)
    if cfg.model.dropout is not None:
        birth.set_dropout(student, cfg.model.dropout)
    return student, basis


def cache_dir(cfg: Config, kind: str) -> str:
    """Where per-teacher caches go: data.cache_dir, else the teacher's own directory, else the run directory."""
    teacher_dir = models.resolve(cfg.model.teacher)
    if cfg.data.cache_dir:
        return os.path.join(cfg.data.cache_dir, f"teacher_{kind}")
    if os.path.isdir(teacher_dir) and os.access(teacher_dir, os.W_OK):
        return os.path.join(teacher_dir, f"{kind}_cache")
    return os.path.join(cfg.output_dir, f"teacher_{kind}")


def cached_teacher_rows(cfg: Config, task: Task, teacher, features, pad_token_id: int):
    """The teacher's KD rows of `features`, from the logit cache or computed once and stored there."""
    from ernie_tiny_distill.deploy import scoring

    teacher_dir = models.resolve(cfg.model.teacher)
    def predict(fs):
        return evaluation.predict_logits(task, teacher, fs, cfg.train.eval_batch_size, pad_token_id,
                                          progress_bar(cfg, "teacher logits"))

    compute = scoring.export_scorer(cfg.distill.teacher_export, teacher_dir, task.labels, task, pad_token_id, predict,
                                    num_threads=int(os.environ.get("OMP_NUM_THREADS") or cfg.train.num_threads or 1),
                                    progress=progress_bar(cfg, "teacher logits"))
    return teacher_cache.load_or_build(cache_dir(cfg, "logits"), teacher_dir, task, features, compute)


def progress_bar(cfg: Config, description: str):
    """A progress bar's description when this process shows bars, else None (no bar)."""
    return description if cfg.train.progress and paddle.distributed.get_rank() == 0 else None


def make_trainer(cfg: Config, task: Task, student, teacher, tokenizer, teacher_rows=None, basis=None) -> Trainer:
    """The one training loop, driven by the distiller the config composes (fine-tuning: no teacher)."""
    distiller = distill.build_distiller(cfg, task, student, teacher, tokenizer, teacher_rows, basis)
    return Trainer(cfg, task, distiller)
