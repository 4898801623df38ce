"""Run one stage from a config: refuse unusable run directories, read the data, dispatch to the stage, write summary.json."""
from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import random
import time
from typing import Dict, Optional

import numpy as np
import paddle
import yaml

from ernie_tiny_distill import extensions
from ernie_tiny_distill.config import DISTILL_STAGES, Config, config_from_dict
from ernie_tiny_distill.data import load as data_lib
from ernie_tiny_distill.data.augment_text import TEACHER_EMBEDDINGS, teacher_word_table
from ernie_tiny_distill.distill import distiller as distill
from ernie_tiny_distill.errors import UserError
from ernie_tiny_distill.models import build as models
from ernie_tiny_distill.train import checkpoint, general, rundir, supervised
from ernie_tiny_distill.train.trainer import init_distributed
from ernie_tiny_distill.util import fsutil
from ernie_tiny_distill.util.threads import apply_threads

logger = logging.getLogger(__name__)

SUMMARY_FILE = "summary.json"


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
            summary = general.run_general(cfg, tokenizer, data)
        elif extensions.stage_runner(cfg.stage) is not None:  # a stage an installed extension adds
            summary = extensions.stage_runner(cfg.stage)(cfg, tokenizer, data)
        else:
            summary = supervised.run_supervised(cfg, tokenizer, data)
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
    data_cfg = cfg.data
    if transfer and data_cfg.augment_embeddings == TEACHER_EMBEDDINGS:
        data_cfg = dataclasses.replace(data_cfg, augment_embeddings=teacher_word_table(cfg.model.teacher))
    return data_lib.load_splits(data_cfg, cfg.task, need_unlabeled=transfer)


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
