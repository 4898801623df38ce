"""What types alone cannot say about a run config: value ranges, per-stage needs, free-form fields, the file system."""
from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

from ernie_tiny_distill import extensions
from ernie_tiny_distill.config_schema import finite_number
from ernie_tiny_distill.errors import UserError

TASKS = ("classification", "ner")
# the core's stages, then those installed extensions add
STAGES = ("teacher", "general", "task") + extensions.stages()
# stages whose training set is the labeled split plus the transfer set (data.unlabeled), taught by teachers
DISTILL_STAGES = ("task",) + extensions.distill_stages()


# ---------------------------------------------------------------- free-form fields (metadata "parse")


def _column(value: Any, key: str) -> Any:
    if isinstance(value, str) and value.strip():
        return value
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise UserError(f"config key {key!r} must be a column name or a 0-based column position (integer >= 0), "
                    f"got {value!r}")


def _columns(value: Any, key: str) -> Any:
    if isinstance(value, list):
        if not value:
            raise UserError(f"config key {key!r} must name at least one column, got []")
        return [_column(v, f"{key}[{i}]") for i, v in enumerate(value)]
    return _column(value, key)


def _label_names(value: Any, key: str) -> Any:
    if value is None or (isinstance(value, str) and value.strip()):
        return value
    if isinstance(value, list) and value and all(isinstance(v, str) and v.strip() for v in value):
        return value
    if isinstance(value, dict) and value and all(
            isinstance(k, (int, str)) and not isinstance(k, bool) and isinstance(v, str) and v.strip()
            for k, v in value.items()):
        return {str(k): v for k, v in value.items()}
    raise UserError(f"config key {key!r} must be a file of class names (one per line), a list of names or a "
                    f"mapping {{label id: name}}, got {value!r}")


def _teacher_entry(entry: Any, where: str) -> dict:
    if not isinstance(entry, dict) or set(entry) - {"path", "export", "tfidf", "weight", "cross_fit"}:
        raise UserError(f"config key {where!r} must be a mapping with keys path (and export) or tfidf (and "
                        f"cross_fit), and weight; got {entry!r}")
    path, tfidf = entry.get("path"), entry.get("tfidf", False)
    if not isinstance(tfidf, bool):
        raise UserError(f"config key '{where}.tfidf' must be true or false, got {tfidf!r}")
    if (path is None) == (not tfidf):
        raise UserError(f"config key {where!r} must set exactly one of path (a fine-tuned teacher) and "
                        f"tfidf: true, got {entry!r}")
    if path is not None and (not isinstance(path, str) or not path.strip()):
        raise UserError(f"config key '{where}.path' must be a directory path, got {path!r}")
    export = entry.get("export")
    if export is not None and (path is None or not isinstance(export, str) or not export.strip()):
        raise UserError(f"config key '{where}.export' must be the export directory of the teacher in "
                        f"'{where}.path', got {export!r}")
    weight = entry.get("weight", 1.0)
    if not finite_number(weight) or weight <= 0:
        raise UserError(f"config key '{where}.weight' must be a number > 0, got {weight!r}")
    cross_fit = entry.get("cross_fit")
    if cross_fit is not None and (not tfidf or isinstance(cross_fit, bool) or not isinstance(cross_fit, int)
                                  or cross_fit < 2):
        raise UserError(f"config key '{where}.cross_fit' must be an integer >= 2 (folds) on a tfidf entry, got "
                        f"{cross_fit!r}")
    return {"path": path, "tfidf": tfidf, "weight": float(weight), **({"export": export} if export else {}),
            **({"cross_fit": cross_fit} if cross_fit else {})}


def _teachers(value: Any, key: str) -> Any:
    """distill.teachers: null, or a non-empty list of {path [, export] | tfidf, weight} entries (weights > 0)."""
    if value is None:
        return None
    if not isinstance(value, list) or not value:
        raise UserError(f"config key {key!r} must be a list of {{path: DIR, weight: W}} or {{tfidf: true, "
                        f"weight: W}} entries, got {value!r}")
    return [_teacher_entry(entry, f"{key}[{i}]") for i, entry in enumerate(value)]


def _rows(value: Any, key: str) -> Any:
    """data.unlabeled_rows: null or [first, end) with 0 <= first < end (end null = to the end of the file)."""
    if value is None:
        return None
    ok = isinstance(value, list) and len(value) == 2 and all(
        v is None or (isinstance(v, int) and not isinstance(v, bool) and v >= 0) for v in value) \
        and value[0] is not None and (value[1] is None or value[1] > value[0])
    if not ok:
        raise UserError(f"config key {key!r} must be [first, end]: 0-based rows, first included, end excluded "
                        f"(end > first, or null = to the end of the file), got {value!r}")
    return list(value)


PARSERS = {"column": lambda v, key: None if v is None else _column(v, key), "columns": _columns,
           "optional_columns": lambda v, key: None if v is None else _columns(v, key), "rows": _rows,
           "label_names": _label_names, "teachers": _teachers}


# ---------------------------------------------------------------- ranges

Bound = tuple[Callable[[Any], bool], str]
POSITIVE: Bound = (lambda v: v > 0, "> 0")
NON_NEGATIVE: Bound = (lambda v: v >= 0, ">= 0")
POSITIVE_OR_NULL: Bound = (lambda v: v is None or v > 0, "> 0 or null (no limit / the default)")
SIZE_OR_NULL: Bound = (lambda v: v is None or v > 0, "> 0 or null")
SEED: Bound = (lambda v: 0 <= v <= 2 ** 32 - 1, f"in [0, {2 ** 32 - 1}] (numpy's seed range)")


def at_least(low: int, why: str = "") -> Bound:
    return (lambda v: v >= low, f">= {low}{why}")


def at_least_or_null(low: int, why: str = "") -> Bound:
    return (lambda v: v is None or v >= low, f">= {low}{why} or null")


def in_unit(closed_low: bool) -> Bound:
    return ((lambda v: 0.0 <= v < 1.0), "in [0, 1)") if closed_low else ((lambda v: 0.0 < v < 1.0), "in (0, 1)")


def unit_or_null() -> Bound:
    return (lambda v: v is None or 0.0 <= v < 1.0, "in [0, 1)")


# key -> bound; checked in this order, before the per-stage rules
RANGES = {
    "distill.temperature": POSITIVE,
    "distill.teacher_max_seq_length": at_least_or_null(3, " (room for [CLS], one token and [SEP])"),
    **{f"distill.{name}": NON_NEGATIVE for name in ("kd_weight", "ce_weight", "hidden_weight", "attention_weight",
                                                    "mlm_weight", "teacher_state_cache_gb")},
    "distill.mask_prob": in_unit(closed_low=False),
    **{f"train.{name}": POSITIVE for name in ("batch_size", "eval_batch_size", "learning_rate", "epochs",
                                              "num_threads", "log_every", "keep_checkpoints")},
    "train.weight_decay": NON_NEGATIVE,
    "train.max_grad_norm": NON_NEGATIVE,
    "train.seed": SEED,
    "train.warmup_ratio": in_unit(closed_low=True),
    "train.max_steps": POSITIVE_OR_NULL,
    "data.augment_copies": POSITIVE_OR_NULL,
    "train.min_steps": POSITIVE_OR_NULL,
    "train.patience": POSITIVE_OR_NULL,
    "train.eval_every": POSITIVE_OR_NULL,
    "data.max_train_examples": POSITIVE_OR_NULL,
    "data.max_dev_examples": POSITIVE_OR_NULL,
    "data.max_unlabeled_examples": POSITIVE_OR_NULL,
    # 0 test examples is meaningful: a dev-only run (a hyper-parameter sweep never reads the test split)
    "data.max_test_examples": at_least_or_null(0, " (0 = do not read the test split)"),
    "data.dev_size": POSITIVE,
    "model.max_seq_length": at_least(8),
    "model.long_document.max_windows": at_least_or_null(1),
    "model.lora_rank": NON_NEGATIVE,
    "model.dropout": unit_or_null(),
    **{f"model.student.{name}": SIZE_OR_NULL for name in ("every_k", "num_layers", "hidden_size", "num_heads",
                                                         "intermediate_size")},
    "model.student.importance_examples": POSITIVE,
}


def _get(cfg, key: str) -> Any:
    for part in key.split("."):
        cfg = getattr(cfg, part)
    return cfg


def check_ranges(cfg) -> None:
    for key, (ok, text) in RANGES.items():
        value = _get(cfg, key)
        if not ok(value):
            raise UserError(f"config key {key!r} must be {text}, got {value}")


# ---------------------------------------------------------------- per-stage and cross-key rules


def check_teacher(cfg) -> None:
    if not cfg.model.teacher:
        role = "the model to fine-tune" if cfg.stage == "teacher" else "the teacher to distill from"
        raise UserError(f"stage {cfg.stage!r} needs 'model.teacher' ({role}); it is not set",
                        hint="e.g. model.teacher=minilm, a PaddleNLP name such as ernie-3.0-medium-zh, or a run "
                             "directory")
    if cfg.model.lora_rank and cfg.stage != "teacher":
        raise UserError("config key 'model.lora_rank' applies to stage 'teacher' only (students train fully)")


def check_student(cfg) -> None:
    s = cfg.model.student
    if cfg.stage == "teacher":
        return
    if s.init == "pretrained" and not s.path:
        raise UserError("config key 'model.student.path' is required when model.student.init is 'pretrained'")
    if s.init in ("teacher_layers", "teacher_pruned") and not s.layers and s.every_k is None:
        raise UserError(f"model.student.init is {s.init!r} but neither 'model.student.layers' nor "
                        "'model.student.every_k' is set")
    _, hidden, heads, _ = s.shape_for_config_init()
    if s.init == "config" and hidden % heads:
        raise UserError(f"model.student.hidden_size ({hidden}) must be divisible by model.student.num_heads "
                        f"({heads})")


def check_long_documents(cfg) -> None:
    m = cfg.model
    ld = m.long_document
    if ld.stride is not None and not 1 <= ld.stride <= m.max_seq_length - 2:
        raise UserError(f"config key 'model.long_document.stride' must be in 1..{m.max_seq_length - 2} "
                        f"(model.max_seq_length - 2, so consecutive windows leave no piece out) or null, "
                        f"got {ld.stride}")
    if ld.mode == "windows" and cfg.stage == "task" and m.student.init == "teacher_pruned":
        raise UserError("windows do not work with model.student.init=teacher_pruned "
                        "(pruning measures importance per window, not per document)",
                        where="config key 'model.long_document.mode'",
                        hint="prune with mode=truncate, then distill the pruned student (init=pretrained) "
                             "with windows")


def check_case_ids(cfg) -> None:
    from ernie_tiny_distill.tasks.adapters import task_class

    if cfg.model.case_ids and (cfg.stage == "general" or not task_class(cfg.task).supports_case_ids):
        raise UserError(f"case ids are for tagging tasks (task ner), not task {cfg.task!r} at stage {cfg.stage!r}",
                        where="config key 'model.case_ids'", hint="remove it")


def check_losses(cfg) -> None:
    d = cfg.distill
    if d.teachers is not None:
        if cfg.stage not in DISTILL_STAGES:
            raise UserError(f"config key 'distill.teachers' applies to stages "
                            f"{' and '.join(repr(s) for s in DISTILL_STAGES)} only")
        # the ensemble gives the KD term its soft target, computed once and cached; the hidden-state and
        # attention terms still read model.teacher, the model the student was born from and is matched to
        if not d.cache_teacher or d.kd_weight <= 0 or d.mlm_weight > 0:
            raise UserError("distill.teachers (an ensemble) is the soft target of cached logit KD",
                            where="config key 'distill.teachers'",
                            hint="set distill.cache_teacher=true, distill.kd_weight > 0 and distill.mlm_weight to 0 "
                                 "(hidden_weight and attention_weight may stay: those terms follow model.teacher)")
    if d.teacher_export is not None and (d.teachers is not None or cfg.stage not in DISTILL_STAGES
                                         or not d.cache_teacher or d.kd_weight <= 0 or d.hidden_weight > 0
                                         or d.attention_weight > 0 or d.mlm_weight > 0):
        raise UserError("distill.teacher_export scores model.teacher for cached logit KD only; here the teacher "
                        "runs online or distill.teachers scores the teachers",
                        where="config key 'distill.teacher_export'",
                        hint="remove it, or give the export in the distill.teachers entry ({path, weight, export})")
    if cfg.stage == "general":
        if d.hidden_weight + d.attention_weight + d.mlm_weight <= 0:
            raise UserError("stage 'general' needs at least one of distill.hidden_weight, distill.attention_weight, "
                            "distill.mlm_weight to be > 0")
        if not cfg.data.unlabeled:
            raise UserError("stage 'general' needs 'data.unlabeled' (the unlabeled corpus), which is not set")
    if cfg.stage == "task" and d.kd_weight + d.ce_weight + d.hidden_weight + d.attention_weight <= 0:
        raise UserError("stage 'task' has every loss weight at 0: nothing to train")


def _position_table(spec: str | None) -> tuple | None:
    """(config.json path, max_position_embeddings) of a local model (directory, run directory, 'minilm'), else None.

    A PaddleNLP model name is not looked up here (that would download it); its limit is checked by the model.
    """
    if not spec or not (spec == "minilm" or os.path.isdir(spec)):
        return None
    from ernie_tiny_distill.models.locate import resolve

    file = os.path.join(resolve(spec), "config.json")
    try:
        with open(file, encoding="utf-8") as f:
            positions = json.load(f).get("max_position_embeddings")
    except (OSError, ValueError):
        return None  # the model loader reports a missing or broken config.json with its own message
    return (file, positions) if isinstance(positions, int) else None


def check_lengths_against_models(cfg) -> None:
    """model.max_seq_length (and distill.teacher_max_seq_length) must fit the position table of the models that
    read them; otherwise the embedding lookup fails mid-epoch, after data and teacher logits were prepared."""
    m, d = cfg.model, cfg.distill
    checks = [("model.max_seq_length", m.max_seq_length, "model.teacher", m.teacher)]
    if cfg.stage != "teacher" and m.student.init == "pretrained":
        checks.append(("model.max_seq_length", m.max_seq_length, "model.student.path", m.student.path))
    if d.teacher_max_seq_length is not None:
        checks[0] = ("distill.teacher_max_seq_length", d.teacher_max_seq_length, "model.teacher", m.teacher)
        checks.append(("model.max_seq_length", m.max_seq_length, "model.teacher", m.teacher))
    for key, length, model_key, spec in checks:
        table = _position_table(spec)
        if table is not None and length > table[1]:
            raise UserError(
                f"config key {key!r} is {length}, but {model_key}={spec} has {table[1]} positions "
                f"(max_position_embeddings in {table[0]})",
                hint=f"set {key} <= {table[1]} (a student built from this model has the same position table)")


# Kernel file systems: a directory there cannot hold a run (writes fail or vanish at reboot).
_VIRTUAL_ROOTS = ("/proc", "/sys", "/dev")


def check_output_dir(output_dir: str) -> None:
    """output_dir must be a directory or creatable as one: not a file, not below a file, not in /proc, /sys, /dev."""
    where = f"output_dir={output_dir}"
    path = os.path.abspath(os.path.expanduser(output_dir))
    real = os.path.realpath(path)
    for root in _VIRTUAL_ROOTS:
        if real == root or real.startswith(root + os.sep):
            raise UserError(f"{real} is in {root}, a kernel file system, not a place for a run directory",
                            where=where, hint="choose a directory on a disk, e.g. runs/NAME")
    if os.path.exists(path) and not os.path.isdir(path):
        raise UserError("is an existing file, expected a directory (or a path that does not exist yet)",
                        where=where, hint="choose another output_dir; this file is left untouched")
    parent = os.path.dirname(path)
    while parent and not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if parent and not os.path.isdir(parent):
        raise UserError(f"is below {parent}, which is a file, not a directory", where=where,
                        hint="choose another output_dir")


RULES = (check_ranges, lambda cfg: check_output_dir(cfg.output_dir), check_long_documents, check_case_ids,
         check_losses, check_teacher, check_student, extensions.check, check_lengths_against_models)


def validate(cfg) -> None:
    """Range and consistency checks that types alone cannot express; the first failing rule raises."""
    from ernie_tiny_distill.data.checks import validate_data  # the data layer's own rules

    for rule in RULES:
        rule(cfg)
    validate_data(cfg.data, cfg.stage)
