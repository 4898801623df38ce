"""Faults: non-finite losses, `kill -9` in the middle of a run, half-written checkpoints, stale teacher caches.

The resume test runs tools/train.py in a subprocess, kills it with SIGKILL as soon as its first checkpoint exists,
runs the same command again and compares with an uninterrupted run: dev/test metrics must be equal and the best
weights equal within 1e-6 (the trainer reseeds every step from (seed, step) and rebuilds each epoch's batch order
from (seed, epoch), so in practice they are bit-identical).
"""
import glob
import json
import logging
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import random_teacher_workspace, run_tool
from safetensors.numpy import load_file

from ernie_tiny_distill.config import config_from_dict
from ernie_tiny_distill.distill.distiller import Distiller
from ernie_tiny_distill.errors import UserError
from ernie_tiny_distill.train import checkpoint
from ernie_tiny_distill.train.stages import run_stage

ROOT = Path(__file__).resolve().parents[1]
TRAIN = str(ROOT / "tools" / "train.py")
RESUME_TOLERANCE = 1e-6


@pytest.fixture(scope="module")
def ws(tmp_path_factory, demo_root):
    return random_teacher_workspace(tmp_path_factory, demo_root, "faults", num_layers=2, hidden_size=32,
                                    num_heads=2, intermediate_size=64)


def task_config(ws, name, **sections):
    """Stage 2 from the (random, untrained) teacher: a KD term and a CE term, tiny student, few steps."""
    raw = {
        "task": "classification", "stage": "task", "output_dir": str(ws["root"] / name),
        "data": {"format": "demo", "path": ws["demo"], "max_train_examples": 48, "max_dev_examples": 16,
                 "max_test_examples": 16, "cache_dir": str(ws["root"] / "cache")},
        "model": {"teacher": ws["teacher"], "max_seq_length": 32,
                  "student": {"init": "config", "num_layers": 1, "hidden_size": 16, "num_heads": 2,
                              "intermediate_size": 32}},
        "train": {"max_steps": 8, "eval_every": 2, "batch_size": 8, "learning_rate": 3e-3, "warmup_ratio": 0.0,
                  "log_every": 1, "progress": False, "seed": 3, "num_threads": 1},
        "distill": {"temperature": 2.0, "allow_weak_teacher": True},
    }
    for key, value in sections.items():
        raw[key] = {**raw.get(key, {}), **value}
    return config_from_dict(raw)


class Records(logging.Handler):
    """Log records of the package (works with `-p no:logging`, unlike pytest's log capture)."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records = []

    def emit(self, record):
        self.records.append(record)

    def messages(self, name, level=logging.DEBUG):
        return [r.getMessage() for r in self.records if r.name == name and r.levelno >= level]

    def clear(self):
        self.records.clear()


@pytest.fixture
def logs():
    logger = logging.getLogger("ernie_tiny_distill")
    handler, level = Records(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


def poison(monkeypatch, part, steps, value=float("nan")):
    """Make loss part `part` non-finite at the given 0-based training steps (evaluation is left alone)."""
    original = Distiller.loss_parts

    def patched(self, batch, step=0):
        parts = original(self, batch, step)
        if self.trainable.training and step in steps:
            parts[part] = parts[part] * value
        return parts

    monkeypatch.setattr(Distiller, "loss_parts", patched)


def all_finite(path):
    return all(np.isfinite(v).all() for v in load_file(path).values())


# ---------------------------------------------------------------- NaN / inf


def test_nan_loss_stops_naming_step_and_part_and_keeps_last_good_checkpoint(ws, monkeypatch):
    cfg = task_config(ws, "nan_stop")
    poison(monkeypatch, "kd", steps={4})  # the 5th step; checkpoints were written after steps 2 and 4
    with pytest.raises(UserError) as err:
        run_stage(cfg)
    message = str(err.value)
    assert message.startswith("step 5: the kd loss is nan; training stopped (train.on_nan=stop)"), message
    ckpt_dir = os.path.join(cfg.output_dir, "checkpoints")
    assert f"hint: the last good checkpoint is {os.path.join(ckpt_dir, 'step-4')}" in message
    assert "train.on_nan=skip" in message
    assert checkpoint.latest(ckpt_dir) == os.path.join(ckpt_dir, "step-4")
    assert all_finite(os.path.join(ckpt_dir, "step-4", "model.safetensors"))
    assert not os.path.exists(os.path.join(cfg.output_dir, "summary.json"))

    # the kept checkpoint is usable: without the fault, the same command resumes from it and finishes
    monkeypatch.undo()
    summary = run_stage(cfg)
    assert summary["skipped_batches"] == 0 and summary["best_step"] in {2, 4, 6, 8}  # an evaluation step
    with open(os.path.join(cfg.output_dir, "train_log.jsonl"), encoding="utf-8") as f:
        steps = [json.loads(line)["step"] for line in f]
    assert steps == [1, 2, 3, 4, 5, 6, 7, 8]  # steps 1-4 from the first run, 5-8 after resuming


def test_inf_loss_with_on_nan_skip_skips_and_counts_batches(ws, monkeypatch, logs):
    cfg = task_config(ws, "nan_skip", train={"on_nan": "skip"})
    poison(monkeypatch, "ce", steps={1, 5}, value=float("inf"))
    summary = run_stage(cfg)
    assert summary["skipped_batches"] == 2
    with open(os.path.join(cfg.output_dir, "summary.json"), encoding="utf-8") as f:
        assert json.load(f)["skipped_batches"] == 2
    skipped = [m for m in logs.messages("ernie_tiny_distill.train.trainer", logging.WARNING) if "batch skipped" in m]
    assert skipped == ["step 2: the ce loss is inf; batch skipped (train.on_nan=skip)",
                       "step 6: the ce loss is inf; batch skipped (train.on_nan=skip)"]
    with open(os.path.join(cfg.output_dir, "train_log.jsonl"), encoding="utf-8") as f:
        records = [json.loads(line) for line in f]
    assert [r["step"] for r in records] == [1, 3, 4, 5, 7, 8]  # skipped steps are not trained on nor logged
    assert [h["step"] for h in summary["history"]] == [2, 4, 6, 8]  # but evaluation and checkpoints still happen
    assert all(math.isfinite(r["loss"]) for r in records)
    assert all_finite(os.path.join(summary["best_dir"], "model.safetensors"))


def test_rerun_with_changed_settings_warns_before_resuming(ws, logs):
    # a finished run can be continued only if it kept its checkpoints (removed by default)
    cfg = task_config(ws, "changed", train={"max_steps": 2, "keep_checkpoints_after_finish": True})
    run_stage(cfg)
    def resume_warnings():
        return [m for m in logs.messages("ernie_tiny_distill.train.stages", logging.WARNING) if m.startswith("resuming")]

    assert resume_warnings() == []
    run_stage(cfg)  # the same settings again: resumes (nothing left to do) without a warning
    assert resume_warnings() == []
    longer = task_config(ws, "changed", train={"max_steps": 4, "learning_rate": 1e-3,
                                               "keep_checkpoints_after_finish": True})
    run_stage(longer)
    warnings = resume_warnings()
    assert len(warnings) == 1
    assert "which was written with other settings: train.learning_rate (0.003 -> 0.001), " \
           "train.max_steps (2 -> 4)" in warnings[0]
    assert "use a new output_dir or train.resume=false" in warnings[0]


# ---------------------------------------------------------------- kill -9 and resume


def train_args(ws, out_dir):
    return ["--config", str(ROOT / "configs" / "demo_cls_teacher.yaml"),
            f"data.path={ws['demo']}", f"model.teacher={ws['teacher']}", f"output_dir={out_dir}",
            "data.max_train_examples=64", "data.max_dev_examples=32", "data.max_test_examples=32",
            "model.max_seq_length=48", "train.batch_size=8", "train.max_steps=60", "train.eval_every=5",
            "train.log_every=5", "train.learning_rate=0.003", "train.warmup_ratio=0", "train.progress=false",
            "train.num_threads=1", "train.seed=11"]


ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def run_to_end(args):
    """tools/train.py in this process (only the run that gets killed needs a process of its own)."""
    result = run_tool("train.py", *args)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_kill_9_then_same_command_resumes_to_the_same_result(ws, logs):
    straight_dir, killed_dir = ws["root"] / "straight", ws["root"] / "killed"
    straight = run_to_end(train_args(ws, straight_dir))

    proc = subprocess.Popen([sys.executable, TRAIN, *train_args(ws, killed_dir)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=ENV)
    deadline = time.time() + 240
    try:
        while not glob.glob(str(killed_dir / "checkpoints" / "step-*")):
            assert proc.poll() is None, "training exited before writing a checkpoint"
            assert time.time() < deadline, "no checkpoint after 240 s"
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (killed_dir / "summary.json").exists(), "the run finished before it could be killed"
    complete = checkpoint.latest(str(killed_dir / "checkpoints"))
    assert complete.rsplit("-", 1)[1] in {str(s) for s in range(5, 60, 5)}  # step-5, step-10, ... (eval_every=5)

    # what a crash in the middle of a save leaves behind; neither may be resumed from
    tmp = killed_dir / "checkpoints" / ".tmp-step-55-x1y2"
    tmp.mkdir()
    (tmp / "model.safetensors").write_bytes(b"\0" * 10)
    no_state = killed_dir / "checkpoints" / "step-58"
    no_state.mkdir()
    (no_state / "model.safetensors").write_bytes(b"\0" * 10)

    logs.clear()
    resumed = run_to_end(train_args(ws, killed_dir))
    assert f"resumed from {complete} (step {complete.rsplit('-', 1)[1]} of 60)" in \
        logs.messages("ernie_tiny_distill.train.trainer")
    assert not tmp.exists()  # temp dirs of crashed saves are cleaned up by the next save

    a = json.loads((straight_dir / "summary.json").read_text())
    b = json.loads((killed_dir / "summary.json").read_text())
    assert a["best_step"] == b["best_step"]
    assert a["history"] == b["history"]
    assert a["dev"] == b["dev"] and a["test"] == b["test"]
    assert json.loads(straight.stdout)["test"] == json.loads(resumed.stdout)["test"]
    wa = load_file(str(straight_dir / "best" / "model.safetensors"))
    wb = load_file(str(killed_dir / "best" / "model.safetensors"))
    assert wa.keys() == wb.keys()
    for key in wa:
        np.testing.assert_allclose(wa[key], wb[key], rtol=0, atol=RESUME_TOLERANCE, err_msg=key)


# ---------------------------------------------------------------- teacher-logit cache


def npz_files(ws):
    return sorted(glob.glob(str(ws["root"] / "cache" / "teacher_logits" / "*.npz")))


def test_teacher_logit_cache_is_rebuilt_for_other_data_and_when_damaged(ws, logs):
    def messages(level=logging.INFO):
        return logs.messages("ernie_tiny_distill.distill.teacher_cache", level)

    before = set(npz_files(ws))
    short = dict(train={"max_steps": 1, "eval_every": 1})
    run_stage(task_config(ws, "cache_a", data={"max_train_examples": 24}, **short))
    first = sorted(set(npz_files(ws)) - before)
    assert len(first) == 1 and any(m.startswith("computing teacher logits for 24 examples") for m in messages())

    logs.clear()  # another subset of the data: another fingerprint, so a new cache file
    run_stage(task_config(ws, "cache_b", data={"max_train_examples": 32}, **short))
    assert len(set(npz_files(ws)) - before) == 2
    assert any(m.startswith("computing teacher logits for 32 examples") for m in messages())

    logs.clear()  # the same data again: reused
    run_stage(task_config(ws, "cache_c", data={"max_train_examples": 24}, **short))
    assert messages() == [f"teacher logits from cache {first[0]}"]

    logs.clear()  # a truncated file (e.g. a full disk while another tool copied it): rebuilt, with a warning
    with open(first[0], "r+b") as f:
        f.truncate(os.path.getsize(first[0]) // 2)
    run_stage(task_config(ws, "cache_d", data={"max_train_examples": 24}, **short))
    warned = messages(logging.WARNING)
    assert len(warned) == 1 and warned[0].startswith(f"teacher-logit cache {first[0]} is unreadable"), warned
    assert warned[0].endswith("rebuilding")
    with np.load(first[0], allow_pickle=False) as z:
        assert len(z["offsets"]) == 24 + 1
