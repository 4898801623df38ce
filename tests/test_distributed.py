"""Data-parallel training: `python -m paddle.distributed.launch --nproc_per_node 2 tools/train.py ...`.

Paddle's CPU build runs it with the gloo backend, so the two-process test runs here for real. Gradients are
averaged with one explicit all-reduce per step (Trainer._sync_gradients): loss_parts calls the student and the
projection directly, which paddle.DataParallel's reducer would not see. The pieces that need no devices (gradient
averaging, the shared NaN decision, the logged shard) are tested with a faked second process.
"""
import glob
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import paddle
import pytest
from safetensors.numpy import load_file

from ernie_tiny_distill.config import config_from_dict, load_config
from ernie_tiny_distill.data import batching
from ernie_tiny_distill.data import load as data
from ernie_tiny_distill.data.demo import write_demo_data
from ernie_tiny_distill.models import build as models
from ernie_tiny_distill.models.random_teacher import write_random_teacher
from ernie_tiny_distill.tasks.adapters import make_task
from ernie_tiny_distill.train import trainer as trainer_mod

ROOT = Path(__file__).resolve().parents[1]
TRAIN = str(ROOT / "tools" / "train.py")


# ---------------------------------------------------------------- without devices: a faked second process


def bare_trainer(layer, world_size=2, rank=0, **train):
    cfg = config_from_dict({"output_dir": "unused", "model": {"teacher": "t"}, "stage": "teacher",
                            "train": {"batch_size": 4, "seed": 5, **train}})
    t = object.__new__(trainer_mod.Trainer)
    t.cfg, t.trainable, t.world_size, t.rank, t.is_main = cfg, layer, world_size, rank, rank == 0
    t.distiller = SimpleNamespace(weights={"ce": 1.0})
    return t


def test_gradients_are_averaged_over_processes(monkeypatch):
    paddle.seed(0)
    layer = paddle.nn.Sequential(paddle.nn.Linear(3, 4), paddle.nn.Linear(4, 2), paddle.nn.Linear(2, 2))
    frozen = layer[2].weight
    frozen.stop_gradient = True
    layer[1](layer[0](paddle.randn([5, 3]))).sum().backward()  # layer[2] gets no gradient at all
    local = {p.name: p.grad.numpy().copy() for p in layer.parameters() if p.grad is not None}
    other = {name: np.full_like(g, 0.5) for name, g in local.items()}  # what "rank 1" computed

    def fake_all_reduce(tensor, op=None, group=None, sync_op=True):  # SUM over two processes
        tensor.set_value(tensor + paddle.to_tensor(np.concatenate([other[n].ravel() for n in local])))

    monkeypatch.setattr(paddle.distributed, "all_reduce", fake_all_reduce)
    bare_trainer(layer)._sync_gradients()
    for p in layer.parameters():
        if p.name in local:
            np.testing.assert_allclose(p.grad.numpy(), (local[p.name] + other[p.name]) / 2, rtol=1e-6)
    assert frozen.grad is None and layer[2].bias.grad is None


def test_a_non_finite_loss_on_any_process_stops_or_skips_all_of_them(monkeypatch):
    def other_rank_is_bad(tensor, op=None, group=None, sync_op=True):
        assert op == paddle.distributed.ReduceOp.MAX
        tensor.set_value(paddle.to_tensor([1.0]))

    t = bare_trainer(paddle.nn.Linear(2, 2))
    monkeypatch.setattr(paddle.distributed, "all_reduce", other_rank_is_bad)
    assert t._any_process(False) is True
    single = bare_trainer(paddle.nn.Linear(2, 2), world_size=1)
    assert single._any_process(False) is False and single._any_process(True) is True


def test_run_header_logs_effective_batch_and_this_process_shard(monkeypatch):
    lengths = [3 + (i * 7) % 20 for i in range(40)]
    t = bare_trainer(paddle.nn.Linear(2, 2), world_size=2, rank=1)
    lines = []
    monkeypatch.setattr(trainer_mod.logger, "info", lambda fmt, *args: lines.append(fmt % args))
    t._log_run_header(40, per_epoch=5, total_steps=10, lengths=lengths)
    assert "batch 4 x 2 process(es) = effective batch 8" in lines[0]
    shard = [i for b in batching.train_batches(lengths, 4, 5, 0, rank=1, world_size=2) for i in b]
    other = [i for b in batching.train_batches(lengths, 4, 5, 0, rank=0, world_size=2) for i in b]
    assert not set(shard) & set(other)
    assert lines[1] == (f"process 1 of 2: 5 batches per epoch, batches 1, 1+2, ... of each shuffled epoch "
                        f"(disjoint from the other processes); epoch 1: {len(shard)} examples, index digest "
                        f"{trainer_mod.shard_digest(shard)}")
    assert trainer_mod.shard_digest(shard) != trainer_mod.shard_digest(other)


def test_single_process_needs_no_process_group():
    assert trainer_mod.init_distributed() == 1
    assert not paddle.distributed.is_initialized()


# ---------------------------------------------------------------- two real processes (gloo on CPU)


def test_two_processes_train_data_parallel_on_cpu(tmp_path):
    paths = write_demo_data(str(tmp_path / "demo"))
    with open(paths["sentiment_unlabeled"], encoding="utf-8") as f:
        texts = f.read().splitlines()
    teacher = write_random_teacher(str(tmp_path / "pretrained"), texts, num_layers=1, hidden_size=16, num_heads=2,
                                   intermediate_size=32)
    out, logs = tmp_path / "run", tmp_path / "log"
    args = ["--config", str(ROOT / "configs" / "demo_cls_teacher.yaml"), f"data.path={tmp_path / 'demo'}",
            f"model.teacher={teacher}", f"output_dir={out}", "train.batch_size=8", "train.epochs=2",
            "train.progress=false", "train.num_threads=1", "train.log_every=1", "train.learning_rate=0.003",
            "data.max_train_examples=48", "data.max_dev_examples=16", "data.max_test_examples=16",
            "model.max_seq_length=32", "train.keep_checkpoints_after_finish=true"]
    result = subprocess.run(
        [sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", "2", "--log_dir", str(logs),
         TRAIN, *args],
        capture_output=True, text=True, timeout=400, env={**os.environ, "OMP_NUM_THREADS": "1"})
    worker = [(logs / f"workerlog.{r}").read_text(encoding="utf-8", errors="replace") for r in range(2)]
    assert result.returncode == 0, "\n".join(w[-2000:] for w in worker) + result.stdout[-2000:]

    # the data each process sees: recompute the shards the way the trainer does
    cfg = load_config(None, [a for a in args if a != "--config" and not a.endswith(".yaml")]
                      + ["task=classification", "stage=teacher"])
    tokenizer = models.load_tokenizer(cfg.model.teacher)
    splits = data.load_splits(cfg.data, cfg.task)
    task = make_task(cfg.task, tokenizer, splits.labels, cfg.model.max_seq_length, cfg.model.truncation)
    lengths = [len(f["input_ids"]) for f in task.encode(splits.train)]
    shards = [[i for b in batching.train_batches(lengths, 8, cfg.train.seed, 0, r, 2) for i in b] for r in range(2)]
    assert not set(shards[0]) & set(shards[1]) and len(shards[0]) == len(shards[1]) == 24

    checksums = []
    for rank, log in enumerate(worker):
        assert "stage teacher: 48 training examples, batch 8 x 2 process(es) = effective batch 16, " \
               "3 steps/epoch, 6 steps" in log
        assert (f"process {rank} of 2: 3 batches per epoch, batches {rank}, {rank}+2, ... of each shuffled epoch "
                f"(disjoint from the other processes); epoch 1: 24 examples, index digest "
                f"{trainer_mod.shard_digest(shards[rank])}") in log
        found = re.findall(rf"process {rank} of 2: final parameter checksum (\S+), identical on all processes", log)
        assert len(found) == 1, log[-3000:]
        checksums.append(float(found[0]))
    assert checksums[0] == checksums[1]  # both replicas hold the same weights after training

    # only rank 0 writes: its checkpoint holds exactly the weights both processes ended with
    last = os.path.join(out, "checkpoints", "step-6")
    weights = load_file(os.path.join(last, "model.safetensors"))
    saved = float(sum(np.abs(v.astype(np.float64)).sum() for v in weights.values()))
    assert saved == pytest.approx(checksums[0], rel=1e-9)
    with open(out / "train_log.jsonl", encoding="utf-8") as f:
        assert [json.loads(line)["step"] for line in f] == [1, 2, 3, 4, 5, 6]
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["test"]["num_examples"] == 16 and summary["skipped_batches"] == 0
    assert glob.glob(str(out / "best" / "model.safetensors"))
