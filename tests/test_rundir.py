"""The run directory: never a model's directory, one run at a time, resumable without repeats, cleaned up
when finished; LoRA resumes exactly; the thread count is the configured one."""
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
from safetensors.numpy import load_file

from ernie_tiny_distill.config import config_from_dict
from ernie_tiny_distill.data.demo import write_demo_data
from ernie_tiny_distill.distill.distiller import Distiller
from ernie_tiny_distill.errors import UserError
from ernie_tiny_distill.models.random_teacher import write_random_teacher
from ernie_tiny_distill.train import checkpoint, rundir
from ernie_tiny_distill.train.stages import run_stage
from ernie_tiny_distill.train.rundir import truncate_log

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    root = tmp_path_factory.mktemp("rundir")
    paths = write_demo_data(str(root / "demo"))
    with open(paths["sentiment_unlabeled"], encoding="utf-8") as f:
        texts = f.read().splitlines()
    teacher = write_random_teacher(str(root / "pretrained"), texts, num_layers=2, hidden_size=16, num_heads=2,
                                   intermediate_size=32)
    return {"root": root, "demo": str(root / "demo"), "teacher": teacher}


def config(ws, name, stage="teacher", **sections):
    raw = {"task": "classification", "stage": stage, "output_dir": str(ws["root"] / name),
           "data": {"format": "demo", "path": ws["demo"], "max_train_examples": 32, "max_dev_examples": 16,
                    "max_test_examples": 8},
           "model": {"teacher": ws["teacher"], "max_seq_length": 32,
                     "student": {"init": "teacher_layers", "layers": [1]}},
           "train": {"max_steps": 4, "batch_size": 8, "progress": False, "num_threads": 1, "log_every": 1,
                     "learning_rate": 3e-3, "warmup_ratio": 0.0, "seed": 3}}
    for key, value in sections.items():
        raw[key] = {**raw.get(key, {}), **value}
    return config_from_dict(raw)


@pytest.fixture(scope="module")
def teacher_run(ws):
    return run_stage(config(ws, "teacher_run"))


def snapshot(directory):
    out = {}
    for d, _, files in os.walk(directory):
        for f in files:
            p = os.path.join(d, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, directory)] = fh.read()
    return out


# ------------------------------------------------------------------ 1: output_dir = the teacher's directory


def test_output_dir_that_is_contains_or_is_inside_the_teacher_is_refused_before_touching_it(ws, teacher_run):
    run = teacher_run["output_dir"]
    before = snapshot(run)
    for out, relation in ((run, "is"), (os.path.join(run, "student"), "is inside"),
                          (os.path.dirname(run), "contains")):
        for resume in (True, False):  # train.resume=false must not help either
            cfg = config(ws, "unused", stage="task", model={"teacher": run}, train={"resume": resume},
                         distill={"allow_weak_teacher": True})
            cfg.output_dir = out
            with pytest.raises(UserError, match=rf"^model\.teacher={run}: output_dir {out} {relation} the directory "
                                                r"this run reads its model from"):
                run_stage(cfg)
    assert snapshot(run) == before  # summary.json, config.yaml and best/ untouched
    assert not os.path.exists(os.path.join(run, "student"))
    # the same for the init student of stage 2
    cfg = config(ws, "unused", stage="task", model={"teacher": ws["teacher"],
                                                    "student": {"init": "pretrained", "path": teacher_run["best_dir"]}})
    cfg.output_dir = teacher_run["best_dir"]
    with pytest.raises(UserError, match=r"^model\.student\.path=.*: output_dir .* is the directory"):
        run_stage(cfg)


# ------------------------------------------------------------------ 3: two runs, one directory


HOLD = """
import sys, time
from ernie_tiny_distill.train.rundir import RunLock
with RunLock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(120)
"""


def test_second_run_on_a_locked_directory_fails_naming_the_holder(ws, tmp_path):
    cfg = config(ws, "locked")
    os.makedirs(cfg.output_dir, exist_ok=True)
    holder = subprocess.Popen([sys.executable, "-c", HOLD, cfg.output_dir], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": ROOT})
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(UserError) as err:
            run_stage(cfg)
        message = str(err.value)
        assert message.startswith(f"output_dir={cfg.output_dir}: another run is using this directory: "
                                  f"pid {holder.pid} on ")
        assert "command: -c " in message
        assert not os.path.exists(os.path.join(cfg.output_dir, "config.yaml"))  # nothing of this run written
    finally:
        holder.kill()
        holder.wait()
    # the holder died (as with kill -9): the lock is free again without any manual cleanup
    assert run_stage(cfg)["stage"] == "teacher"


# ------------------------------------------------------------------ 10: LoRA resumes exactly


class Interrupt(Exception):
    pass


def test_lora_unmerges_on_every_switch_back_to_training_and_resumes_exactly(ws, monkeypatch):
    from paddlenlp.transformers import ErnieForSequenceClassification

    from ernie_tiny_distill.distill.distiller import Distillable
    from ernie_tiny_distill.models import build as models
    from ernie_tiny_distill.models import birth

    lora = birth.add_lora(models.load_model(ws["teacher"], ErnieForSequenceClassification, 2), 2)
    wrapper = Distillable(lora, 16, None)
    lora_layers = [layer for layer in wrapper.sublayers() if hasattr(layer, "merged")]
    assert lora_layers
    wrapper.eval()
    assert all(layer.merged for layer in lora_layers)
    wrapper.train()
    assert not any(layer.merged for layer in lora_layers)

    # eval every step with a learning rate so high that most evaluations do not improve
    common = dict(model={"lora_rank": 2}, train={"max_steps": 8, "eval_every": 1, "learning_rate": 0.5,
                                                 "keep_checkpoints_after_finish": True})
    straight = run_stage(config(ws, "lora_a", **common))
    assert len({h["accuracy"] for h in straight["history"]}) < len(straight["history"])  # some did not improve

    original = Distiller.loss_parts

    def crashing(self, batch, step=0):
        if step == 5 and self.trainable.training:
            raise Interrupt()
        return original(self, batch, step)

    monkeypatch.setattr(Distiller, "loss_parts", crashing)
    cfg_b = config(ws, "lora_b", **common)
    with pytest.raises(Interrupt):
        run_stage(cfg_b)
    monkeypatch.setattr(Distiller, "loss_parts", original)
    resumed = run_stage(cfg_b)
    a = load_file(os.path.join(straight["output_dir"], "checkpoints", "step-8", "model.safetensors"))
    b = load_file(os.path.join(resumed["output_dir"], "checkpoints", "step-8", "model.safetensors"))
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    assert resumed["history"] == straight["history"]


# ------------------------------------------------------------------ 16: resumed log, emptied checkpoint dirs


def test_resume_drops_log_lines_past_the_checkpoint(tmp_path):
    log = tmp_path / "train_log.jsonl"
    log.write_text("".join(json.dumps({"step": s, "loss": 1.0}) + "\n" for s in (1, 2, 3, 4, 5, 6)) + '{"step": 7',
                   encoding="utf-8")
    truncate_log(str(log), 4)
    assert [json.loads(line)["step"] for line in log.read_text(encoding="utf-8").splitlines()] == [1, 2, 3, 4]
    truncate_log(str(log), 0)  # a fresh start (train.resume=false) starts a fresh log
    assert log.read_text(encoding="utf-8") == ""


def test_resumed_run_logs_each_step_once(ws, monkeypatch):
    original = Distiller.loss_parts

    def crashing(self, batch, step=0):
        if step == 3 and self.trainable.training:
            raise Interrupt()
        return original(self, batch, step)

    cfg = config(ws, "relog", train={"eval_every": 2})
    monkeypatch.setattr(Distiller, "loss_parts", crashing)
    with pytest.raises(Interrupt):
        run_stage(cfg)
    monkeypatch.setattr(Distiller, "loss_parts", original)
    state = json.load(open(os.path.join(cfg.output_dir, "checkpoints", "step-2", checkpoint.STATE_FILE)))
    summary = run_stage(cfg)
    steps = [json.loads(line)["step"] for line in open(os.path.join(cfg.output_dir, "train_log.jsonl"))]
    assert steps == [1, 2, 3, 4]
    # the summary counts both segments' training time
    assert summary["segments"] == 2
    assert summary["train_seconds"] >= state["train_seconds"] and summary["seconds"] >= state["train_seconds"]


def test_emptied_step_dirs_and_interrupted_removals_are_cleaned(tmp_path):
    ckpt = tmp_path / "checkpoints"
    for name in ("step-2", "step-4", ".tmp-step-6-x", ".tmp-step-2-deleting"):
        (ckpt / name).mkdir(parents=True)
    (ckpt / "step-4" / checkpoint.STATE_FILE).write_text("{}", encoding="utf-8")
    checkpoint.remove_incomplete(str(ckpt))
    assert sorted(os.listdir(ckpt)) == ["step-4"]
    checkpoint._discard(str(ckpt / "step-4"))
    assert os.listdir(ckpt) == []


# ------------------------------------------------------------------ 17, 18, 25: finished runs


def test_finished_run_removes_its_checkpoints_unless_asked_to_keep_them(ws, teacher_run):
    assert not os.path.exists(os.path.join(teacher_run["output_dir"], "checkpoints"))
    assert os.path.isfile(os.path.join(teacher_run["best_dir"], "model.safetensors"))
    kept = run_stage(config(ws, "kept", train={"keep_checkpoints_after_finish": True}))
    assert os.listdir(os.path.join(kept["output_dir"], "checkpoints")) == ["step-4"]


def test_checkpoint_directories_get_the_users_umask(ws):
    old = os.umask(0o022)
    try:
        run = run_stage(config(ws, "modes", train={"keep_checkpoints_after_finish": True}))
    finally:
        os.umask(old)
    step = os.path.join(run["output_dir"], "checkpoints", "step-4")
    assert os.stat(step).st_mode & 0o777 == 0o755
    assert os.stat(run["best_dir"]).st_mode & 0o777 == 0o755  # best/ (models.save_model_dir)
    for name in ("summary.json", "config.yaml"):  # fsutil.atomic_path (mkstemp)
        assert os.stat(os.path.join(run["output_dir"], name)).st_mode & 0o777 == 0o644, name


def test_bad_data_creates_no_output_directory(ws, tmp_path):
    (tmp_path / "train.csv").write_text("text,label\n,pos\n", encoding="utf-8")
    cfg = config(ws, "never_created", data={"format": "csv", "train_file": str(tmp_path / "train.csv")})
    with pytest.raises(UserError, match=r"train\.csv:2: empty text"):
        run_stage(cfg)
    assert not os.path.exists(cfg.output_dir)


def test_kd_weight_zero_says_what_the_student_trains_on(ws, teacher_run, caplog):
    cfg = config(ws, "no_kd", stage="task", model={"teacher": teacher_run["output_dir"]},
                 distill={"kd_weight": 0.0, "ce_weight": 0.5, "allow_weak_teacher": True})
    with caplog.at_level("WARNING", logger="ernie_tiny_distill.train.stages"):
        run_stage(cfg)
    assert ("distill.kd_weight=0: the teacher's output distribution is not used; the student trains on ce×0.5 "
            "(the labels with distill.ce_weight=0.5)") in caplog.text


# ------------------------------------------------------------------ 12: threads


def test_num_threads_wins_over_exported_omp_and_is_logged(ws, monkeypatch, caplog):
    from threadpoolctl import threadpool_info

    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    with caplog.at_level("INFO", logger="ernie_tiny_distill.util.threads"):
        run_stage(config(ws, "threads1", train={"num_threads": 1}))
    assert os.environ["OMP_NUM_THREADS"] == "1"
    assert {info["num_threads"] for info in threadpool_info()} == {1}
    assert "CPU threads: 1 (train.num_threads); runtimes report " in caplog.text


def test_train_cli_config_threads_override_exported_omp(tmp_path):
    from ernie_tiny_distill.cli import set_threads

    os.environ["OMP_NUM_THREADS"] = "3"
    try:
        set_threads(1)
        assert os.environ["OMP_NUM_THREADS"] == "3"  # a tool's default does not override
        set_threads(1, override=True)
        assert os.environ["OMP_NUM_THREADS"] == "1"  # a configured count does
    finally:
        os.environ["OMP_NUM_THREADS"] = "1"


def test_rerunning_a_finished_run_without_checkpoints_needs_overwrite_and_says_it_starts_over(ws, caplog):
    run_stage(config(ws, "finished_twice"))
    with pytest.raises(UserError, match="holds a finished run; this run would start over"):
        run_stage(config(ws, "finished_twice", train={"max_steps": 5}))
    cfg = config(ws, "finished_twice", train={"max_steps": 5, "overwrite": True})
    with caplog.at_level("WARNING", logger="ernie_tiny_distill.train.stages"):
        run_stage(cfg)
    assert "holds a finished run: training starts over and will replace its best/ (train.overwrite=true)" \
        in caplog.text
