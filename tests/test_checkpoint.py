"""Training checkpoints: exact resume of weights + AdamW moments + LR schedule, rotation, atomicity, errors."""
from __future__ import annotations

import errno
import json
import os

import numpy as np
import paddle
import paddle.nn as nn
import pytest
from paddlenlp.transformers import LinearDecayWithWarmup
from safetensors import SafetensorError

from ernie_tiny_distill.errors import UserError
from ernie_tiny_distill.train import checkpoint


class Tiny(nn.Layer):
    def __init__(self, hidden: int = 8):
        super().__init__()
        self.a = nn.Linear(4, hidden)
        self.norm = nn.LayerNorm(hidden)
        self.b = nn.Linear(hidden, 3)

    def forward(self, x):
        return self.b(paddle.tanh(self.norm(self.a(x))))


def make(seed: int, hidden: int = 8):
    paddle.seed(seed)
    layer = Tiny(hidden)
    scheduler = LinearDecayWithWarmup(0.05, total_steps=10, warmup=0.2)
    optimizer = paddle.optimizer.AdamW(learning_rate=scheduler, parameters=layer.parameters(), weight_decay=0.01,
                                       grad_clip=nn.ClipGradByGlobalNorm(1.0))
    return layer, optimizer, scheduler


def train_step(layer, optimizer, scheduler, step: int) -> None:
    rng = np.random.default_rng(step)
    x = paddle.to_tensor(rng.standard_normal((5, 4)).astype("float32"))
    y = paddle.to_tensor(rng.integers(0, 3, size=5).astype("int64"))
    loss = nn.functional.cross_entropy(layer(x), y)
    loss.backward()
    optimizer.step()
    scheduler.step()
    optimizer.clear_grad()


def weights(layer) -> dict:
    return {k: v.numpy().copy() for k, v in layer.state_dict().items()}


def assert_same(a: dict, b: dict) -> None:
    assert set(a) == set(b)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def trained(steps: int = 3):
    layer, optimizer, scheduler = make(seed=0)
    for s in range(steps):
        train_step(layer, optimizer, scheduler, s)
    return layer, optimizer, scheduler


# --------------------------------------------------------------------------- exact resume


def test_round_trip_restores_weights_moments_and_schedule(tmp_path):
    layer, optimizer, scheduler = trained(3)
    path = checkpoint.save(str(tmp_path), 3, layer, optimizer, {"best_metric": 0.5, "history": [1, 2]}, keep=2)
    assert path == str(tmp_path / "step-3")
    assert sorted(os.listdir(path)) == ["model.safetensors", "optimizer.safetensors", "trainer_state.json"]

    nn.Linear(2, 2)  # another layer first: Paddle's internal parameter names now differ from the saved ones
    layer2, optimizer2, scheduler2 = make(seed=99)
    state = checkpoint.load(path, layer2, optimizer2)
    assert state == {"best_metric": 0.5, "history": [1, 2], "step": 3}
    assert_same(weights(layer2), weights(layer))
    assert scheduler2.last_epoch == scheduler.last_epoch and scheduler2.get_lr() == scheduler.get_lr()

    # the moments are restored too: one more step gives bit-identical results
    train_step(layer, optimizer, scheduler, 3)
    train_step(layer2, optimizer2, scheduler2, 3)
    assert_same(weights(layer2), weights(layer))
    t1, e1 = checkpoint.optimizer_state(optimizer, layer)
    t2, e2 = checkpoint.optimizer_state(optimizer2, layer2)
    assert_same(t1, t2)
    assert e1 == e2
    assert any(k.endswith("::moment2_0") for k in t1)


def test_restoring_weights_alone_would_not_be_enough(tmp_path):
    # the control for the test above: with fresh AdamW moments the next step differs
    layer, optimizer, scheduler = trained(3)
    path = checkpoint.save(str(tmp_path), 3, layer, optimizer, {}, keep=2)
    layer2, optimizer2, scheduler2 = make(seed=99)
    checkpoint.load(path, layer2, optimizer2)
    layer3, optimizer3, scheduler3 = make(seed=99)
    layer3.set_state_dict(layer2.state_dict())
    for _ in range(3):
        scheduler3.step()
    for trio in ((layer, optimizer, scheduler), (layer3, optimizer3, scheduler3)):
        train_step(*trio, 3)
    assert not np.array_equal(layer3.a.weight.numpy(), layer.a.weight.numpy())


def test_state_json_is_readable(tmp_path):
    layer, optimizer, _ = trained(2)
    path = checkpoint.save(str(tmp_path), 2, layer, optimizer, {"best_metric": None}, keep=1)
    state = json.loads((tmp_path / "step-2" / "trainer_state.json").read_text())
    assert state["step"] == 2 and state["best_metric"] is None
    assert state["optimizer_extras"]["LR_Scheduler"]["last_epoch"] == 2
    assert path.endswith("step-2")


# --------------------------------------------------------------------------- rotation and `latest`


def test_rotation_keeps_newest(tmp_path):
    layer, optimizer, _ = trained(1)
    for step in (1, 2, 10, 11):  # 10 > 2 numerically, though "step-10" < "step-2" as text
        checkpoint.save(str(tmp_path), step, layer, optimizer, {}, keep=2)
    assert sorted(os.listdir(tmp_path)) == ["step-10", "step-11"]
    assert checkpoint.latest(str(tmp_path)) == str(tmp_path / "step-11")
    checkpoint.save(str(tmp_path), 12, layer, optimizer, {}, keep=1)
    assert os.listdir(tmp_path) == ["step-12"]


def test_latest_ignores_incomplete_directories(tmp_path):
    layer, optimizer, _ = trained(1)
    checkpoint.save(str(tmp_path), 4, layer, optimizer, {}, keep=3)
    leftover = tmp_path / ".tmp-step-7-abc123"  # a crash mid-save
    leftover.mkdir()
    (leftover / "trainer_state.json").write_text("{}")
    incomplete = tmp_path / "step-9"  # a step dir without its state file
    incomplete.mkdir()
    (incomplete / "model.safetensors").write_bytes(b"")
    (tmp_path / "step-x").mkdir()
    (tmp_path / "notes.txt").write_text("not a checkpoint")
    assert checkpoint.latest(str(tmp_path)) == str(tmp_path / "step-4")
    assert checkpoint.latest(str(tmp_path / "missing")) is None
    # the next save sweeps the temp dir away
    checkpoint.save(str(tmp_path), 5, layer, optimizer, {}, keep=3)
    assert not leftover.exists()
    assert checkpoint.latest(str(tmp_path)) == str(tmp_path / "step-5")


def test_resaving_the_same_step_replaces_it(tmp_path):
    layer, optimizer, scheduler = trained(1)
    checkpoint.save(str(tmp_path), 1, layer, optimizer, {"v": 1}, keep=2)
    train_step(layer, optimizer, scheduler, 1)
    checkpoint.save(str(tmp_path), 1, layer, optimizer, {"v": 2}, keep=2)
    layer2, optimizer2, _ = make(seed=5)
    assert checkpoint.load(str(tmp_path / "step-1"), layer2, optimizer2)["v"] == 2
    assert_same(weights(layer2), weights(layer))


def test_save_never_deletes_the_checkpoint_it_just_wrote(tmp_path):
    layer, optimizer, _ = trained(1)
    for step in (9, 10):  # an earlier run in the same output_dir
        checkpoint.save(str(tmp_path), step, layer, optimizer, {}, keep=2)
    path = checkpoint.save(str(tmp_path), 2, layer, optimizer, {}, keep=2)  # a new run, resume=false
    assert os.path.isdir(path)
    assert checkpoint.latest(str(tmp_path)) == path


# --------------------------------------------------------------------------- failures


def test_disk_full_keeps_previous_checkpoint(tmp_path, monkeypatch):
    layer, optimizer, scheduler = trained(1)
    checkpoint.save(str(tmp_path), 1, layer, optimizer, {"at": 1}, keep=2)
    saved = weights(layer)
    train_step(layer, optimizer, scheduler, 1)

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint, "save_file", full)
    with pytest.raises(UserError, match=r"could not write checkpoint for step 2: the disk is full") as info:
        checkpoint.save(str(tmp_path), 2, layer, optimizer, {"at": 2}, keep=2)
    assert f"the previous checkpoint is intact: {tmp_path / 'step-1'}" in str(info.value)
    assert str(info.value).startswith(f"{tmp_path}: ")
    assert os.listdir(tmp_path) == ["step-1"]  # no temp dir left
    monkeypatch.undo()
    layer2, optimizer2, _ = make(seed=7)
    assert checkpoint.load(checkpoint.latest(str(tmp_path)), layer2, optimizer2)["at"] == 1
    assert_same(weights(layer2), saved)


def test_other_write_error_is_reported(tmp_path, monkeypatch):
    layer, optimizer, _ = trained(1)

    def denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(checkpoint, "save_file", denied)
    with pytest.raises(UserError, match=r"could not write checkpoint for step 1: .*Permission denied") as info:
        checkpoint.save(str(tmp_path), 1, layer, optimizer, {}, keep=2)
    assert "no earlier checkpoint exists" in str(info.value)
    assert os.listdir(tmp_path) == []


def test_disk_full_as_safetensors_reports_it(tmp_path, monkeypatch):
    layer, optimizer, _ = trained(1)
    checkpoint.save(str(tmp_path), 1, layer, optimizer, {}, keep=2)

    def full(*args, **kwargs):  # the exact error safetensors 0.4+ raises on ENOSPC
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    monkeypatch.setattr(checkpoint, "save_file", full)
    with pytest.raises(UserError, match="the disk is full"):
        checkpoint.save(str(tmp_path), 2, layer, optimizer, {}, keep=2)
    assert os.listdir(tmp_path) == ["step-1"]


def test_loading_into_a_different_model_is_refused(tmp_path):
    layer, optimizer, _ = trained(1)
    path = checkpoint.save(str(tmp_path), 1, layer, optimizer, {}, keep=2)

    other = nn.Sequential(nn.Linear(4, 3))
    other_opt = paddle.optimizer.AdamW(parameters=other.parameters())
    with pytest.raises(UserError, match=r"checkpoint does not match the model being trained \(missing \['0\.bias', "
                                        r"'0\.weight'\], unexpected \['a\.bias', 'a\.weight', 'b\.bias'\]\)"):
        checkpoint.load(path, other, other_opt)

    wider, wider_opt, _ = make(seed=0, hidden=16)  # same names, other shapes
    with pytest.raises(UserError, match=r"checkpoint tensor a\.(bias|weight) has shape \((8,|4, 8)\), "
                                        r"the model expects \((16,|4, 16)\)"):
        checkpoint.load(path, wider, wider_opt)


def test_missing_state_file_is_a_user_error(tmp_path):
    layer, optimizer, _ = trained(1)
    path = checkpoint.save(str(tmp_path), 1, layer, optimizer, {}, keep=2)
    os.remove(os.path.join(path, "trainer_state.json"))
    with pytest.raises(UserError, match="cannot read checkpoint"):
        checkpoint.load(path, layer, optimizer)


def test_damaged_weights_file_is_a_user_error(tmp_path):
    layer, optimizer, _ = trained(1)
    path = checkpoint.save(str(tmp_path), 1, layer, optimizer, {}, keep=2)
    weights_file = os.path.join(path, "model.safetensors")
    data = open(weights_file, "rb").read()
    with open(weights_file, "wb") as f:
        f.write(data[: len(data) // 2])
    with pytest.raises(UserError, match="cannot read checkpoint"):
        checkpoint.load(path, layer, optimizer)
