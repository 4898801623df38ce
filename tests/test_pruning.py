"""Students pruned from the teacher: exact slicing, masking equivalence, importance order, projection, errors."""
from __future__ import annotations

import copy
import json
import os

import numpy as np
import paddle
import pytest
from paddlenlp.transformers import ErnieConfig, ErnieForSequenceClassification, ErnieForTokenClassification

from ernie_tiny_distill.config import StudentConfig
from ernie_tiny_distill.errors import UserError
from ernie_tiny_distill.models import build as models
from ernie_tiny_distill.models import pruning
from ernie_tiny_distill.models.pruned_ernie import (
    PrunedErnieForSequenceClassification,
    PrunedErnieForTokenClassification,
)

HIDDEN, HEADS, FFN, LAYERS = 16, 4, 24, 3  # head size 4
IDS = [[2, 5, 6, 7, 8, 9, 3], [2, 10, 11, 12, 3, 0, 0]]


def teacher_of(model_class, seed=0):
    paddle.seed(seed)
    config = ErnieConfig(vocab_size=24, hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
                         intermediate_size=FFN, max_position_embeddings=32, type_vocab_size=2, pad_token_id=0,
                         hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    config.num_labels = 3
    model = model_class(config)
    # LayerNorm gains/biases away from 1/0 so that their mapping is actually exercised
    rng = np.random.default_rng(seed)
    for name, p in model.named_parameters():
        if "norm" in name:
            p.set_value((rng.normal(size=p.shape) * 0.3 + ("weight" in name)).astype("float32"))
    model.eval()
    return model


def run(model, ids=IDS, hidden=False):
    ids = paddle.to_tensor(ids)
    with paddle.no_grad():
        out = model(input_ids=ids, token_type_ids=paddle.zeros_like(ids), attention_mask=(ids != 0).astype("int64"),
                    output_hidden_states=hidden, return_dict=True)
    return out


def ones_importance(heads=HEADS, ffn=FFN, width=HIDDEN, layers=LAYERS):
    return pruning.Importance(np.ones((layers, heads)), np.ones((layers, ffn)), np.eye(width), 1)


def features(token_level: bool):
    out = []
    for i, row in enumerate(IDS):
        n = sum(1 for t in row if t)
        ids = row[:n]
        labels = [-100] + [i % 3] * (n - 2) + [-100] if token_level else i % 2
        f = {"input_ids": ids, "token_type_ids": [0] * n, "labels": labels, "index": i}
        if token_level:
            f["token_mask"] = [0] + [1] * (n - 2) + [0]
        out.append(f)
    return out


@pytest.mark.parametrize("model_class", [ErnieForSequenceClassification, ErnieForTokenClassification])
def test_pruning_nothing_reproduces_the_teacher_exactly(model_class):
    teacher = teacher_of(model_class)
    plan = pruning.make_plan(ones_importance(), list(range(LAYERS)), None, None, None)
    student = pruning.build_pruned(teacher, plan, model_class, 3, pruning.principal_basis(np.eye(HIDDEN), HIDDEN))
    np.testing.assert_array_equal(run(student).logits.numpy(), run(teacher).logits.numpy())


def test_removed_heads_and_neurons_equal_masking_them_in_the_teacher():
    teacher = teacher_of(ErnieForSequenceClassification, seed=1)
    keep_heads = [[0, 2], [1, 3], [3]]
    keep_neurons = [[0, 5, 7, 20], [1, 2, 3, 4], [23, 9, 11, 0]]
    plan = pruning.Plan(layers=[0, 1, 2], heads=keep_heads, neurons=[sorted(n) for n in keep_neurons],
                        hidden_size=HIDDEN)
    student = pruning.build_pruned(teacher, plan, ErnieForSequenceClassification, 3, np.eye(HIDDEN))
    assert isinstance(student, PrunedErnieForSequenceClassification)
    assert student.config.layer_heads == [2, 2, 1] and student.config.layer_intermediate == [4, 4, 4]
    # the same model with the removed units' outputs zeroed: out_proj rows of a head, linear2 rows of a neuron
    masked = copy.deepcopy(teacher)
    for layer, heads, neurons in zip(masked.ernie.encoder.layers, keep_heads, keep_neurons):
        w = layer.self_attn.out_proj.weight.numpy()
        for h in set(range(HEADS)) - set(heads):
            w[h * 4:(h + 1) * 4] = 0
        layer.self_attn.out_proj.weight.set_value(w)
        w = layer.linear2.weight.numpy()
        w[sorted(set(range(FFN)) - set(neurons))] = 0
        layer.linear2.weight.set_value(w)
    np.testing.assert_allclose(run(student).logits.numpy(), run(masked).logits.numpy(), atol=1e-5)


def test_importance_ranks_a_silenced_head_and_neuron_last():
    teacher = teacher_of(ErnieForTokenClassification, seed=2)
    layer = teacher.ernie.encoder.layers[1]
    w = layer.self_attn.out_proj.weight.numpy()
    w[2 * 4:3 * 4] = 0  # head 2 of layer 1 writes nothing: the loss cannot depend on its mask
    layer.self_attn.out_proj.weight.set_value(w)
    w = layer.linear2.weight.numpy()
    w[5] = 0  # neuron 5 of layer 1 likewise
    layer.linear2.weight.set_value(w)
    importance = pruning.measure_importance(teacher, features(token_level=True))
    assert importance.heads.shape == (LAYERS, HEADS) and importance.neurons.shape == (LAYERS, FFN)
    assert importance.heads[1, 2] == 0 and importance.neurons[1, 5] == 0
    assert (np.delete(importance.heads[1], 2) > 0).all() and (np.delete(importance.neurons[1], 5) > 0).all()
    plan = pruning.make_plan(importance, [1], num_heads=HEADS - 1, intermediate_size=FFN - 1, hidden_size=None)
    assert plan.heads == [[0, 1, 3]] and 5 not in plan.neurons[0] and len(plan.neurons[0]) == FFN - 1
    # the hooks are gone and the teacher is unchanged: its parameters still take no gradient of their own
    assert all(not layer._forward_pre_hooks for layer in teacher.sublayers())


def test_allocation_uniform_and_global():
    scores = np.array([[9.0, 1.0, 2.0, 8.0], [1.0, 1.0, 1.0, 1.0]])
    uniform = pruning._allocate(scores, 2, "uniform")
    assert uniform == [[0, 3], [0, 1]]  # ties keep the lower index
    # normalised per row: row 0 = [.74, .08, .16, .66], row 1 = [.5, .5, .5, .5]; 4 units in all, >= 1 per row
    assert pruning._allocate(scores, 2, "global") == [[0, 3], [0, 1]]
    peaked = np.array([[9.0, 8.0, 7.0, 0.1], [5.0, 0.1, 0.1, 0.1]])  # [.63 .56 .49 .01], [.99 .02 .02 .02]
    assert pruning._allocate(peaked, 2, "global") == [[0, 1, 2], [0]]


def test_a_permuted_full_width_basis_reproduces_the_teachers_states():
    """Full width through a non-identity orthonormal basis (a permutation, which LayerNorm commutes with):
    every hidden state is the teacher's, permuted, and the logits are the teacher's."""
    teacher = teacher_of(ErnieForTokenClassification, seed=3)
    perm = np.random.default_rng(0).permutation(HIDDEN)
    basis = np.eye(HIDDEN)[:, perm]  # [H, H]
    plan = pruning.make_plan(ones_importance(), list(range(LAYERS)), None, None, None)
    student = pruning.build_pruned(teacher, plan, ErnieForTokenClassification, 3, basis)
    t, s = run(teacher, hidden=True), run(student, hidden=True)
    for t_h, s_h in zip(t.hidden_states, s.hidden_states):
        np.testing.assert_allclose(s_h.numpy(), t_h.numpy()[..., perm], atol=1e-5)
    np.testing.assert_allclose(s.logits.numpy(), t.logits.numpy(), atol=1e-5)


def test_principal_basis_takes_the_top_directions():
    moment = np.diag([1.0, 5.0, 3.0, 0.5])
    basis = pruning.principal_basis(moment, 2)
    np.testing.assert_allclose(np.abs(basis), np.eye(4)[:, [1, 2]])
    np.testing.assert_array_equal(pruning.principal_basis(moment, 4), np.eye(4))  # full width: no rotation


def test_a_narrower_student_runs_and_reports_its_starting_error():
    teacher = teacher_of(ErnieForSequenceClassification, seed=4)
    importance = pruning.measure_importance(teacher, features(token_level=False))
    plan = pruning.make_plan(importance, [0, 2], num_heads=2, intermediate_size=8, hidden_size=12)
    basis = pruning.principal_basis(importance.second_moment, 12)
    student = pruning.build_pruned(teacher, plan, ErnieForSequenceClassification, 3, basis)
    assert student.ernie.embeddings.word_embeddings.weight.shape == [24, 12]
    assert student.ernie.pooler.dense.weight.shape == [12, HIDDEN]  # the pooler keeps the teacher's width
    from ernie_tiny_distill.tasks.adapters import make_task

    task = make_task("classification", None, ["a", "b", "c"], 32)
    report = pruning.init_report(teacher, student, features(token_level=False), basis, [0, 1, 3], task=task)
    assert len(report["hidden_relative_error"]) == 3 and report["examples"] == 2
    assert 0 < report["hidden_relative_error"][0] < 1  # the embeddings lose the 4 weakest directions only
    assert report["prediction_agreement"] in (0.0, 0.5, 1.0)


@pytest.mark.parametrize("key,value,message", [
    ("num_heads", HEADS + 1, "'model.student.num_heads' is 5, but the teacher has 4 attention heads"),
    ("intermediate_size", FFN + 1, "'model.student.intermediate_size' is 25, but the teacher has 24 FFN neurons"),
    ("hidden_size", HIDDEN * 2, "'model.student.hidden_size' is 32, but the teacher has 16 hidden units"),
])
def test_impossible_shapes_name_the_key(key, value, message):
    kwargs = {"num_heads": None, "intermediate_size": None, "hidden_size": None, key: value}
    with pytest.raises(UserError, match=message):
        pruning.make_plan(ones_importance(), [0, 1], **kwargs)


def test_a_pruned_directory_loads_back_as_its_pruned_class(tmp_path):
    teacher = teacher_of(ErnieForTokenClassification, seed=5)
    plan = pruning.Plan(layers=[1, 2], heads=[[0], [1, 2]], neurons=[[1, 2, 3], [4, 5]], hidden_size=HIDDEN)
    student = pruning.build_pruned(teacher, plan, ErnieForTokenClassification, 3, np.eye(HIDDEN))
    student.save_pretrained(str(tmp_path), safe_serialization=True)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["layer_heads"] == [1, 2] and config["layer_intermediate"] == [3, 2]
    assert config["source_heads"] == [[0], [1, 2]]
    loaded = models.load_model(str(tmp_path), ErnieForTokenClassification, num_labels=3)
    assert isinstance(loaded, PrunedErnieForTokenClassification)
    loaded.eval()
    np.testing.assert_array_equal(run(loaded).logits.numpy(), run(student).logits.numpy())


def test_importance_is_cached_and_reused(tmp_path, monkeypatch):
    teacher = teacher_of(ErnieForSequenceClassification, seed=6)
    feats = features(token_level=False)
    first = pruning.load_or_measure(str(tmp_path / "cache"), str(tmp_path / "no-dir"), teacher, feats, 0)
    monkeypatch.setattr(pruning, "measure_importance", lambda *a, **k: pytest.fail("measured twice"))
    again = pruning.load_or_measure(str(tmp_path / "cache"), str(tmp_path / "no-dir"), teacher, feats, 0)
    np.testing.assert_array_equal(first.heads, again.heads)
    (tmp_path / "bad.json").write_text('{"format": 1, "heads": [[1]]}')
    with pytest.raises(UserError, match="bad.json.*not an importance file"):
        pruning.load_or_measure("", "", teacher, feats, 0, path=str(tmp_path / "bad.json"))


def test_config_takes_teacher_pruned_and_checks_it():
    from ernie_tiny_distill.config import load_config

    cfg = load_config(overrides=["output_dir=x", "model.teacher=t", "model.student.init=teacher_pruned",
                                 "model.student.layers=[1,4]", "model.student.num_heads=6",
                                 "model.student.intermediate_size=512", "model.student.hidden_size=256"])
    assert cfg.model.student.init == "teacher_pruned" and cfg.model.student.num_heads == 6
    with pytest.raises(UserError, match="neither 'model.student.layers' nor 'model.student.every_k'"):
        load_config(overrides=["output_dir=x", "model.teacher=t", "model.student.init=teacher_pruned"])
    with pytest.raises(UserError, match="'model.student.num_heads' must be > 0"):
        load_config(overrides=["output_dir=x", "model.teacher=t", "model.student.init=teacher_pruned",
                               "model.student.every_k=2", "model.student.num_heads=0"])
    assert StudentConfig().shape_for_config_init() == (4, 312, 12, 1248)


def test_attention_of_pruned_heads_is_matched_head_by_head():
    from ernie_tiny_distill.distill import losses

    rng = np.random.default_rng(0)
    logits = rng.normal(size=(1, 3, 4, 4)).astype("float32")
    teacher = paddle.nn.functional.softmax(paddle.to_tensor(logits), axis=-1)  # 3 heads
    student = paddle.index_select(teacher, paddle.to_tensor([2, 0]), axis=1)  # kept heads 2 and 0, in that order
    assert float(losses.attention_loss(student, teacher, teacher_heads=[2, 0])) == pytest.approx(0.0, abs=1e-6)
    assert float(losses.attention_loss(student, teacher)) > 1e-3  # head-averaged maps differ
    swapped = float(losses.attention_loss(student, teacher, teacher_heads=[0, 2]))
    t = teacher.numpy()[0]
    expected = np.mean([(t[h] * (np.log(t[h] + 1e-8) - np.log(t[k] + 1e-8))).sum(-1).mean()
                        for h, k in ((0, 2), (2, 0))])
    assert swapped == pytest.approx(expected, rel=1e-5)


def test_attention_head_map_only_where_a_layer_meets_its_source():
    from types import SimpleNamespace

    from ernie_tiny_distill.distill.distiller import attention_heads as _attention_heads

    config = SimpleNamespace(source_heads=[[0, 3], [1]], source_layers=[2, 5])
    student = SimpleNamespace(ernie=SimpleNamespace(config=config))  # a task model: its encoder is .ernie
    assert _attention_heads(student, [0, 3, 6]) == [[0, 3], [1]]
    assert _attention_heads(student, [0, 3, 4]) == [[0, 3], None]
    assert _attention_heads(student, None) is None


def test_a_no_kd_student_that_matches_its_teacher_is_warned_about(caplog):
    from ernie_tiny_distill.config import load_config
    from ernie_tiny_distill.tasks.adapters import make_task
    from ernie_tiny_distill.train.supervised import compare_with_teacher

    task = make_task("ner", None, ["O", "B-PER", "I-PER"], 32)
    no_kd = load_config(overrides=["output_dir=x", "model.teacher=t", "model.student.init=config",
                                   "distill.kd_weight=0"])
    kd = load_config(overrides=["output_dir=x", "model.teacher=t", "model.student.init=config"])
    out = compare_with_teacher(no_kd, task, {"f1": 0.40}, {"f1": 0.36})
    assert "already matches its teacher on dev (f1 0.4000 vs 0.3600)" in out["warning"]
    assert "already matches" in caplog.text
    assert "warning" not in compare_with_teacher(no_kd, task, {"f1": 0.30}, {"f1": 0.36})
    assert "warning" not in compare_with_teacher(kd, task, {"f1": 0.40}, {"f1": 0.36})  # a KD run: a report line
    assert compare_with_teacher(kd, task, {"f1": 0.40}, {"f1": 0.36})["teacher_dev"] == 0.36


def test_flops_of_a_pruned_student_count_each_layers_own_widths():
    from ernie_tiny_distill.deploy.latency import flops_per_sequence

    dense = {"layers": 2, "hidden": 8, "intermediate": 16, "labels": ["a", "b"], "task": "classification"}
    S = 4
    # H=8, I=16: per layer 2*S*(4*64 + 2*128) + 4*S*S*8 = 4096 + 512; head 2*64 + 2*8*2 = 160
    assert flops_per_sequence(dense, S) == 2 * (4096 + 512) + 160
    pruned = dict(dense, layer_heads=[1, 2], layer_intermediate=[4, 16], attention_head_size=2)
    # layer 1: A=2, I=4: 2*4*(4*8*2 + 2*8*4) + 4*16*2 = 1024 + 128; layer 2: A=4, I=16: 2*4*(128 + 256) + 256
    assert flops_per_sequence(pruned, S) == (1024 + 128) + (3072 + 256) + 160
