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

from ernie_tiny_distill.errors import UserError

logger = logging.getLogger(__name__)

LOCK_FILE = ".lock"
HOLDER_FILE = ".lock.holder.json"


def _real(path: str) -> str:
    return os.path.realpath(os.path.abspath(os.path.expanduser(path)))


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _model_dirs(cfg) -> List[Tuple[str, str]]:
    """(config key=value, directory) of every local model the run reads: the teacher and an init student, both as
    given (a run directory) and as resolved (its best/)."""
    from ernie_tiny_distill.models import build as models  # imports Paddle

    specs = [("model.teacher", cfg.model.teacher)]
    if cfg.stage != "teacher" and cfg.model.student.init == "pretrained":
        specs.append(("model.student.path", cfg.model.student.path))
    dirs = []
    for key, spec in specs:
        if not spec:
            continue
        candidates = [spec] if os.path.isdir(spec) else []
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
