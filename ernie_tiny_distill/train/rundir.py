"""The run directory (output_dir): never a model's own directory, one run at a time, cleaned up when finished."""
from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import sys
import time
from typing import List, Optional, Tuple

from filelock import FileLock, Timeout

from ernie_tiny_distill import extensions
from ernie_tiny_distill.errors import UserError
from ernie_tiny_distill.util import fsutil

logger = logging.getLogger(__name__)

LOCK_FILE = ".lock"
HOLDER_FILE = ".lock.holder.json"


def _real(path: str) -> str:
    return os.path.realpath(os.path.abspath(os.path.expanduser(path)))


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _model_specs(cfg) -> List[Tuple[str, Optional[str]]]:
    """(config key, path or model name) of every model the run reads."""
    specs = [("model.teacher", cfg.model.teacher)]
    for i, entry in enumerate(cfg.distill.teachers or []):
        specs += [(f"distill.teachers[{i}].path", entry.get("path")),
                  (f"distill.teachers[{i}].export", entry.get("export"))]
    if cfg.stage != "teacher" and cfg.model.student.init == "pretrained":
        specs.append(("model.student.path", cfg.model.student.path))
    return specs + extensions.input_exports(cfg)


def _model_dirs(cfg) -> List[Tuple[str, str]]:
    """(config key=value, directory) of every local model the run reads (teacher, ensemble teachers and their
    exports, an init student, the exports an extension's stage reads), both as given (a run directory) and as
    resolved (its best/)."""
    from ernie_tiny_distill.models import build as models  # imports Paddle

    dirs = []
    exports = {key for key, _ in extensions.input_exports(cfg)}
    for key, spec in _model_specs(cfg):
        if not spec:
            continue
        # an export is read if present: refused as an output_dir before it exists too
        candidates = [spec] if os.path.isdir(spec) or key in exports or key.endswith(".export") else []
        if spec == models.MINILM or os.path.isdir(spec):
            candidates.append(models.resolve(spec))
        dirs += [(f"{key}={spec}", _real(c)) for c in candidates]
    return dirs


def check_not_a_model_dir(cfg) -> None:
    """Refuse an output_dir that is, contains or is inside a directory the run reads its models from: the run
    would delete that model's summary, rewrite its config.yaml and finally replace its best/ with the student."""
    out = _real(cfg.output_dir)
    for where, model_dir in _model_dirs(cfg):
        if _inside(out, model_dir) or _inside(model_dir, out):
            relation = ("is" if out == model_dir else "is inside" if _inside(out, model_dir) else "contains")
            raise UserError(
                f"output_dir {cfg.output_dir} {relation} the directory this run reads its model from ({model_dir}); "
                "writing there would overwrite that model", where=where,
                hint="choose a new output_dir for this run (e.g. next to it: runs/NAME_student)")


STUDENT_KEY = "config key 'model.student.path'"


def _run_dir_of(path: str) -> Optional[str]:
    """The run directory (one with config.yaml) that `path` is, or whose best/ it is; None for other models."""
    path = os.path.abspath(path)
    if os.path.isfile(os.path.join(path, "config.yaml")):
        return path
    parent = os.path.dirname(path)
    if os.path.basename(path) == "best" and os.path.isfile(os.path.join(parent, "config.yaml")):
        return parent
    return None


def check_student_run_finished(cfg) -> None:
    """An init student taken from another run's output must come from a finished run: an unfinished one's best/
    may still be replaced (or be a crash's leftover) while this run reads it."""
    path = cfg.model.student.path
    if cfg.stage == "teacher" or cfg.model.student.init != "pretrained" or not path or not os.path.isdir(path):
        return
    run_dir = _run_dir_of(path)
    if run_dir and not os.path.isfile(os.path.join(run_dir, "summary.json")):
        raise UserError(f"{path} is the output of a run that has not finished (no summary.json in {run_dir})",
                        where=STUDENT_KEY,
                        hint="finish that run first (re-run its command: it resumes), or point model.student.path "
                             "at a finished run")


def check_student_labels(cfg, student_meta: Optional[dict], labels: List[str]) -> None:
    """A task student from another run must have been trained for this task with these labels in this order:
    its head's rows are that run's label order."""
    from ernie_tiny_distill.tasks.adapters import TASKS

    if not student_meta or student_meta.get("task") not in TASKS:
        return  # a stage-1 encoder (no head) or a model without task.json
    path = cfg.model.student.path
    if student_meta["task"] != cfg.task:
        raise UserError(f"{path} is a {student_meta['task']!r} model but task is {cfg.task!r}", where=STUDENT_KEY,
                        hint=f"point model.student.path at a {cfg.task} run, or at a stage-1 (general) run")
    theirs = list(student_meta.get("labels") or [])
    if theirs != list(labels):
        raise UserError(f"{path} was trained with labels {theirs[:8]} but this run's data has {list(labels)[:8]}",
                        where=STUDENT_KEY,
                        hint="point model.student.path at a run trained on these labels, or at a stage-1 (general) "
                             "run")


def check_finished_best(cfg) -> None:
    """A finished run's best/ (summary.json written, or best/ left without checkpoints to resume from) is never
    replaced by a run that starts over, unless train.overwrite."""
    from ernie_tiny_distill.train import checkpoint

    out = cfg.output_dir
    if cfg.train.overwrite or not os.path.isdir(os.path.join(out, "best")):
        return
    last = checkpoint.latest(os.path.join(out, "checkpoints"))
    if cfg.train.resume and last:
        return  # continuing from a checkpoint (stages warns when its settings differ)
    if last and not os.path.isfile(os.path.join(out, "summary.json")):
        return  # an unfinished run started over on purpose (train.resume=false)
    raise UserError("holds a finished run; this run would start over and its best/ would be replaced",
                    where=f"output_dir={out}",
                    hint="choose another output_dir for the new run, or set train.overwrite=true to replace it "
                         "(train.keep_checkpoints_after_finish=true keeps a run's checkpoints so it can be continued)")


def _holder() -> dict:
    return {"pid": os.getpid(), "host": socket.gethostname(), "command": " ".join(sys.argv) or sys.executable,
            "started": time.strftime("%Y-%m-%d %H:%M:%S")}


class RunLock:
    """An exclusive lock on output_dir for the whole run (filelock: released by the OS if the process dies).

    A second run on the same directory fails at once with the holder's pid, host and command.
    """

    def __init__(self, output_dir: str):
        self.output_dir = output_dir
        self.lock = FileLock(os.path.join(output_dir, LOCK_FILE))

    def __enter__(self) -> "RunLock":
        try:
            self.lock.acquire(timeout=0)
        except Timeout:
            raise UserError(
                f"another run is using this directory: {describe_holder(self.output_dir)}",
                where=f"output_dir={self.output_dir}",
                hint="wait for it to finish, or choose another output_dir; two runs in one directory would mix "
                     "one run's config with the other's model") from None
        with open(os.path.join(self.output_dir, HOLDER_FILE), "w", encoding="utf-8") as f:
            json.dump(_holder(), f)
        return self

    def __exit__(self, *exc) -> None:
        try:
            os.remove(os.path.join(self.output_dir, HOLDER_FILE))
        except OSError:
            pass
        self.lock.release()


def describe_holder(output_dir: str) -> str:
    try:
        with open(os.path.join(output_dir, HOLDER_FILE), encoding="utf-8") as f:
            h = json.load(f)
        return f"pid {h['pid']} on {h['host']} since {h['started']}, command: {h['command']}"
    except (OSError, ValueError, KeyError):
        return "a process that has not yet said who it is"


def remove_checkpoints(output_dir: str, keep: bool) -> Optional[int]:
    """After a finished run (best/ final, summary written), drop checkpoints/ (weights + optimizer state, the
    bulk of a run's disk use) unless train.keep_checkpoints_after_finish. Returns the bytes freed."""
    ckpt = os.path.join(output_dir, "checkpoints")
    if keep or not os.path.isdir(ckpt):
        return None
    freed = sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(ckpt) for f in files)
    shutil.rmtree(ckpt, ignore_errors=True)
    logger.info("run finished: removed %s (%.1f MB of resume state; train.keep_checkpoints_after_finish=true "
                "keeps it)", ckpt, freed / 1e6)
    return freed


def truncate_log(log_path: str, step: int) -> None:
    """Keep the train_log.jsonl lines up to `step` (the checkpoint a run resumes from; 0 = a fresh start)."""
    if not os.path.isfile(log_path):
        return
    with open(log_path, encoding="utf-8") as f:
        lines = f.readlines()
    kept = []
    for line in lines:
        try:
            if json.loads(line)["step"] <= step:
                kept.append(line)
        except (ValueError, KeyError, TypeError):
            pass  # a line cut by a kill mid-write
    if len(kept) != len(lines):
        fsutil.write_text(log_path, "".join(kept))
