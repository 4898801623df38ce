"""Distillation losses against values computed by hand (math.exp/math.log), masking, gradients, λ mixing."""
from __future__ import annotations

import math

import numpy as np
import paddle
import pytest
from helpers import tiny_config
from paddlenlp.transformers import ErnieForSequenceClassification, ErnieForTokenClassification

from ernie_tiny_distill.config import config_from_dict
from ernie_tiny_distill.data import batching
from ernie_tiny_distill.data.examples import TaggedSentence, TextExample
from ernie_tiny_distill.distill import losses
from ernie_tiny_distill.distill.distiller import Distillable, Distiller, TeacherRows, layer_map_for
from ernie_tiny_distill.errors import UserError
from ernie_tiny_distill.tasks.classification import ClassificationTask
from ernie_tiny_distill.tasks.tagging import TaggingTask

S = [[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]]  # student logits, 2 rows x 3 classes
T = [[2.0, 0.0, 1.0], [1.0, 1.0, 1.0]]  # teacher logits


def softmax(row, temperature=1.0):
    e = [math.exp(x / temperature) for x in row]
    return [v / sum(e) for v in e]


def kl(p, q):
    return sum(pi * math.log(pi / qi) for pi, qi in zip(p, q) if pi > 0)


def hand_soft_kl(s_rows, t_rows, temperature):
    per_row = [kl(softmax(t, temperature), softmax(s, temperature)) for s, t in zip(s_rows, t_rows)]
    return temperature ** 2 * sum(per_row) / len(per_row)


def tensor(x, dtype="float32"):
    return paddle.to_tensor(np.asarray(x, dtype=dtype))


def value(t) -> float:
    return float(t.numpy())


# --------------------------------------------------------------------------- soft_kl


def test_soft_kl_t1_hand_computed():
    # row 0: p = softmax([2,0,1]) = [.6652, .0900, .2447], q = softmax([1,2,.5]) = [.2312, .6285, .1402],
    # KL = .6643; row 1: p uniform, q = [.0466, .0171, .9362], KL = 1.3006; mean .9825
    expected = hand_soft_kl(S, T, 1.0)
    assert expected == pytest.approx(0.9825, abs=1e-4)  # a sanity anchor for the hand formula itself
    assert value(losses.soft_kl(tensor(S), tensor(T), 1.0)) == pytest.approx(expected, rel=1e-5)


def test_soft_kl_t2_includes_t_squared():
    expected = hand_soft_kl(S, T, 2.0)
    kl_only = expected / 4.0  # the bare KL between the T=2 softened distributions
    got = value(losses.soft_kl(tensor(S), tensor(T), 2.0))
    assert got == pytest.approx(expected, rel=1e-5)
    assert got == pytest.approx(4.0 * kl_only, rel=1e-5)
    assert got != pytest.approx(kl_only, rel=1e-2)  # the factor is really there


def test_soft_kl_direction_is_teacher_to_student():
    # KL(P_T || P_S) is not symmetric: swapping the arguments changes the value
    forward = value(losses.soft_kl(tensor(S), tensor(T), 1.0))
    backward = value(losses.soft_kl(tensor(T), tensor(S), 1.0))
    assert backward == pytest.approx(hand_soft_kl(T, S, 1.0), rel=1e-5)
    assert forward != pytest.approx(backward, rel=1e-3)


def test_soft_kl_identical_inputs_is_zero():
    assert abs(value(losses.soft_kl(tensor(S), tensor(S), 1.0))) < 1e-7
    assert abs(value(losses.soft_kl(tensor(S), tensor(S), 3.0))) < 1e-6


def test_soft_kl_of_zero_rows_is_zero_not_nan():
    # what Task.kd_rows gives for a tagging batch whose words were all truncated away
    empty = paddle.zeros([0, 3], dtype="float32")
    empty.stop_gradient = False
    loss = losses.soft_kl(empty, paddle.zeros([0, 3], dtype="float32"), 2.0)
    assert value(loss) == 0.0
    loss.backward()
    assert empty.grad is None or empty.grad.shape == [0, 3]


@pytest.mark.parametrize("temperature", [1.0, 2.0, 4.0])
def test_soft_kl_gradient_is_t_times_prob_difference_over_n(temperature):
    # d/ds [T²·mean_i KL(p_T,i || softmax(s_i/T))] = T·(softmax(s/T) − softmax(t/T)) / N   (Hinton et al.)
    s = paddle.to_tensor(np.array(S, dtype="float32"), stop_gradient=False)
    losses.soft_kl(s, tensor(T), temperature).backward()
    n = len(S)
    expected = np.array([[temperature * (ps - pt) / n
                          for ps, pt in zip(softmax(srow, temperature), softmax(trow, temperature))]
                         for srow, trow in zip(S, T)])
    np.testing.assert_allclose(s.grad.numpy(), expected, rtol=1e-5, atol=1e-7)


# --------------------------------------------------------------------------- hard_ce


def test_hard_ce_hand_computed_with_ignored_row():
    logits = [[1.0, 2.0, 0.5], [0.0, -1.0, 3.0], [2.0, 2.0, 2.0]]
    labels = [1, 2, -100]
    expected = (-math.log(softmax(logits[0])[1]) - math.log(softmax(logits[1])[2])) / 2
    assert value(losses.hard_ce(tensor(logits), tensor(labels, "int64"))) == pytest.approx(expected, rel=1e-5)


def test_hard_ce_custom_ignore_index():
    logits = [[1.0, 2.0, 0.5], [0.0, -1.0, 3.0], [2.0, 2.0, 2.0]]
    expected = (-math.log(softmax(logits[0])[1]) - math.log(1 / 3)) / 2
    got = losses.hard_ce(tensor(logits), tensor([1, 7, 0], "int64"), ignore_index=7)
    assert value(got) == pytest.approx(expected, rel=1e-5)


def test_hard_ce_token_level_averages_over_labeled_tokens_only():
    # [B=2, L=2, C=3] tagging logits, labels [B, L] with -100 on special tokens / later sub-words
    logits = [[[1.0, 2.0, 0.5], [5.0, -5.0, 0.0]], [[0.0, -1.0, 3.0], [2.0, 0.0, 0.0]]]
    labels = [[0, -100], [2, -100]]
    expected = (-math.log(softmax(logits[0][0])[0]) - math.log(softmax(logits[1][0])[2])) / 2
    assert value(losses.hard_ce(tensor(logits), tensor(labels, "int64"))) == pytest.approx(expected, rel=1e-5)


def test_hard_ce_all_ignored_is_exactly_zero():
    logits = paddle.to_tensor(np.array(S, dtype="float32"), stop_gradient=False)
    loss = losses.hard_ce(logits, tensor([-100, -100], "int64"))
    assert value(loss) == 0.0
    loss.backward()
    assert np.isfinite(logits.grad.numpy()).all() and (logits.grad.numpy() == 0).all()


# --------------------------------------------------------------------------- hidden_mse


def test_hidden_mse_masked_hand_computed():
    s = [[[1.0, 2.0], [0.0, 0.0], [100.0, -100.0]]]  # [B=1, L=3, H=2]; token 2 is padding
    t = [[[0.0, 0.0], [1.0, 3.0], [0.0, 0.0]]]
    per_token = [(1 + 4) / 2, (1 + 9) / 2, (1e4 + 1e4) / 2]
    got = losses.hidden_mse(tensor(s), tensor(t), tensor([[1, 1, 0]], "int64"))
    assert value(got) == pytest.approx((per_token[0] + per_token[1]) / 2, rel=1e-6)
    assert value(losses.hidden_mse(tensor(s), tensor(t))) == pytest.approx(sum(per_token) / 3, rel=1e-6)
    assert value(losses.hidden_mse(tensor(s), tensor(t), tensor([[0, 0, 0]], "int64"))) == 0.0


def test_relative_hidden_mse_divides_by_the_teachers_variance():
    s = [[[1.0, 2.0], [0.0, 0.0], [100.0, -100.0]]]  # token 2 is padding
    t = [[[0.0, 0.0], [1.0, 3.0], [0.0, 0.0]]]
    mask = tensor([[1, 1, 0]], "int64")
    # valid teacher tokens (0, 0), (1, 3): mean (0.5, 1.5), squared deviations per token (0.25 + 2.25) / 2 = 1.25;
    # hidden_mse over the same tokens = ((1 + 4) / 2 + (1 + 9) / 2) / 2 = 3.75
    assert value(losses.relative_hidden_mse(tensor(s), tensor(t), mask)) == pytest.approx(3.75 / 1.25, rel=1e-5)
    # predicting the teacher's mean state for every token explains none of its variance: exactly 1
    mean_state = [[[0.5, 1.5], [0.5, 1.5], [7.0, 7.0]]]
    assert value(losses.relative_hidden_mse(tensor(mean_state), tensor(t), mask)) == pytest.approx(1.0, rel=1e-5)
    assert value(losses.relative_hidden_mse(tensor(t), tensor(t), mask)) == 0.0


# --------------------------------------------------------------------------- attention_loss

# teacher: 2 heads, student: 1 head; [B=1, heads, L=2, L=2] rows are attention distributions
TEACHER_ATT = [[[[0.5, 0.5], [0.9, 0.1]], [[0.7, 0.3], [0.1, 0.9]]]]  # head mean: [[.6, .4], [.5, .5]]
STUDENT_ATT = [[[[0.8, 0.2], [0.5, 0.5]]]]


def test_attention_kl_averages_heads_then_rows():
    row0 = 0.6 * math.log(0.6 / 0.8) + 0.4 * math.log(0.4 / 0.2)
    got = losses.attention_loss(tensor(STUDENT_ATT), tensor(TEACHER_ATT), tensor([[1, 1]], "int64"), kind="kl")
    assert value(got) == pytest.approx((row0 + 0.0) / 2, rel=1e-5)
    got = losses.attention_loss(tensor(STUDENT_ATT), tensor(TEACHER_ATT), tensor([[1, 0]], "int64"), kind="kl")
    assert value(got) == pytest.approx(row0, rel=1e-5)


def test_attention_mse_hand_computed():
    row0 = (0.8 - 0.6) ** 2 + (0.2 - 0.4) ** 2  # summed over keys
    got = losses.attention_loss(tensor(STUDENT_ATT), tensor(TEACHER_ATT), tensor([[1, 1]], "int64"), kind="mse")
    assert value(got) == pytest.approx(row0 / 2, rel=1e-5)


def test_attention_kl_with_zero_probability_keys_is_finite():
    # a padded key has probability 0 in both maps: it contributes 0, not 0·log 0 = NaN
    teacher = [[[[0.25, 0.75, 0.0], [1.0, 0.0, 0.0], [1 / 3, 1 / 3, 1 / 3]]]]
    student = [[[[0.5, 0.5, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]]]
    row0 = 0.25 * math.log(0.25 / 0.5) + 0.75 * math.log(0.75 / 0.5)
    got = losses.attention_loss(tensor(student), tensor(teacher), tensor([[1, 1, 0]], "int64"), kind="kl")
    assert value(got) == pytest.approx(row0 / 2, rel=1e-5)


def test_attention_identical_maps_give_zero_and_bad_kind_raises():
    assert abs(value(losses.attention_loss(tensor(TEACHER_ATT), tensor(TEACHER_ATT), kind="kl"))) < 1e-6
    assert value(losses.attention_loss(tensor(TEACHER_ATT), tensor(TEACHER_ATT), kind="mse")) == 0.0
    with pytest.raises(ValueError, match="'kl' or 'mse'"):
        losses.attention_loss(tensor(STUDENT_ATT), tensor(TEACHER_ATT), kind="cosine")


# --------------------------------------------------------------------------- λ mixing in the Distiller


def make_cfg(tmp_path, **distill):
    return config_from_dict({"output_dir": str(tmp_path), "stage": "task",
                             "model": {"teacher": "unused", "student": {"every_k": 1}}, "distill": distill})


def classification_batch(tokenizer):
    task = ClassificationTask(tokenizer, ["neg", "pos"], max_seq_length=16)
    examples = [TextExample("the film was great", "pos"), TextExample("unwatchable film", "neg"),
                TextExample("john lives in new york", None)]  # an unlabeled (transfer-set) example
    batch = batching.collate(task.encode(examples), tokenizer.pad_token_id)
    return task, {k: paddle.to_tensor(v) for k, v in batch.items()}


def test_combine_is_weighted_sum(tmp_path, hand_tokenizer):
    task, _ = classification_batch(hand_tokenizer)
    paddle.seed(0)
    distiller = Distiller(make_cfg(tmp_path, kd_weight=0.3, ce_weight=0.7), task,
                      Distillable(ErnieForSequenceClassification(tiny_config()), 16, None))
    total = distiller.combine({"kd": paddle.to_tensor(2.0), "ce": paddle.to_tensor(5.0)})
    assert value(total) == pytest.approx(0.3 * 2.0 + 0.7 * 5.0, rel=1e-6)


def with_large_head(model, seed):
    # the default init (std 0.02) gives near-equal logits; a unit-scale head makes KD and CE clearly non-trivial
    rng = np.random.default_rng(seed)
    model.classifier.weight.set_value(rng.standard_normal(model.classifier.weight.shape).astype("float32"))
    return model


def test_loss_parts_kd_and_ce_then_lambda_mix(tmp_path, hand_tokenizer):
    task, batch = classification_batch(hand_tokenizer)
    paddle.seed(1)
    student = with_large_head(ErnieForSequenceClassification(tiny_config()), 1)
    paddle.seed(2)
    teacher = with_large_head(ErnieForSequenceClassification(tiny_config()), 2)
    distiller = Distiller(make_cfg(tmp_path, kd_weight=0.3, ce_weight=0.7, temperature=2.0), task,
                      Distillable(student, 16, None), teacher=teacher)
    parts = distiller.loss_parts(batch)
    assert sorted(parts) == ["ce", "kd"]

    inputs = dict(input_ids=batch["input_ids"], token_type_ids=batch["token_type_ids"],
                  attention_mask=batch["attention_mask"])
    with paddle.no_grad():
        s_logits = student(**inputs).numpy().astype(np.float64)
        t_logits = teacher(**inputs).numpy().astype(np.float64)
    kd = hand_soft_kl(s_logits.tolist(), t_logits.tolist(), 2.0)  # all 3 rows, the unlabeled one included
    ce = (-math.log(softmax(s_logits[0])[1]) - math.log(softmax(s_logits[1])[0])) / 2  # labeled rows only
    assert kd > 0.01 and ce > 0.1
    assert value(parts["kd"]) == pytest.approx(kd, rel=1e-4)
    assert value(parts["ce"]) == pytest.approx(ce, rel=1e-4)
    assert value(distiller.combine(parts)) == pytest.approx(0.3 * kd + 0.7 * ce, rel=1e-4)


def test_kd_weight_zero_is_plain_fine_tuning(tmp_path, hand_tokenizer):
    task, batch = classification_batch(hand_tokenizer)
    paddle.seed(1)
    student = ErnieForSequenceClassification(tiny_config())
    distiller = Distiller(make_cfg(tmp_path, kd_weight=0.0, ce_weight=0.5), task, Distillable(student, 16, None),
                      teacher=ErnieForSequenceClassification(tiny_config()))
    assert distiller.weights == {"ce": 0.5}
    parts = distiller.loss_parts(batch)
    assert list(parts) == ["ce"]
    assert value(distiller.combine(parts)) == pytest.approx(0.5 * value(parts["ce"]), rel=1e-6)


def test_tagging_batch_with_no_words_gives_zero_not_nan(tmp_path, hand_tokenizer):
    labels = ["O", "B-PER", "I-PER"]
    task = TaggingTask(hand_tokenizer, labels, max_seq_length=4)  # 2 pieces of room: "unwatchable" has 3
    features = task.encode([TaggedSentence(["unwatchable"], ["O"])])
    assert features[0]["token_mask"] == [0, 0]  # the only word was cut
    batch = {k: paddle.to_tensor(v) for k, v in batching.collate(features, 0).items()}
    paddle.seed(1)
    student = ErnieForTokenClassification(tiny_config(num_labels=3))
    teacher = ErnieForTokenClassification(tiny_config(num_labels=3))
    distiller = Distiller(make_cfg(tmp_path, kd_weight=1.0, ce_weight=1.0, temperature=2.0), task,
                      Distillable(student, 16, None), teacher=teacher)
    parts = distiller.loss_parts(batch)
    assert value(parts["ce"]) == 0.0
    assert value(parts["kd"]) == 0.0  # all-masked -> 0, not NaN (issue: "an all-masked batch gives 0")


def test_cached_teacher_rows_given_to_the_constructor_replace_the_online_teacher(tmp_path, hand_tokenizer):
    task, batch = classification_batch(hand_tokenizer)
    paddle.seed(1)
    student = with_large_head(ErnieForSequenceClassification(tiny_config()), 1)
    cfg = make_cfg(tmp_path, kd_weight=1.0, ce_weight=0.0, temperature=1.0)
    t_rows = np.asarray([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]], dtype="float32")  # one row per example
    rows = TeacherRows(t_rows, np.arange(4))
    distiller = Distiller(cfg, task, Distillable(student, 16, None), teacher=None, teacher_rows=rows)
    assert not distiller.needs_online_teacher
    parts = distiller.loss_parts(batch)
    with paddle.no_grad():
        s_logits = student(input_ids=batch["input_ids"], token_type_ids=batch["token_type_ids"],
                           attention_mask=batch["attention_mask"]).numpy().astype(np.float64)
    assert value(parts["kd"]) == pytest.approx(hand_soft_kl(s_logits.tolist(), t_rows.tolist(), 1.0), rel=1e-4)


# --------------------------------------------------------------------------- layer map


def layer_cfg(tmp_path, student, layer_map=None):
    return config_from_dict({"output_dir": str(tmp_path), "stage": "task",
                             "model": {"teacher": "unused", "student": student},
                             "distill": {"layer_map": layer_map, "hidden_weight": 1.0}})


def test_layer_map_uniform_for_a_configured_student(tmp_path):
    cfg = layer_cfg(tmp_path, {"init": "config", "num_layers": 4, "hidden_size": 64, "num_heads": 2,
                               "intermediate_size": 128})
    assert layer_map_for(cfg, 4, 12) == [0, 3, 6, 9, 12]
    assert layer_map_for(cfg, 3, 4) == [0, 1, 3, 4]  # round(4/3)=1, round(8/3)=3


def test_layer_map_of_teacher_layers_matches_each_copy_to_its_source(tmp_path):
    assert layer_map_for(layer_cfg(tmp_path, {"every_k": 2}), 3, 6) == [0, 2, 4, 6]
    assert layer_map_for(layer_cfg(tmp_path, {"layers": [0, 5]}), 2, 6) == [0, 1, 6]


def test_layer_map_from_config_is_checked(tmp_path):
    assert layer_map_for(layer_cfg(tmp_path, {"every_k": 2}, [0, 1, 2, 3]), 3, 6) == [0, 1, 2, 3]
    with pytest.raises(UserError, match=r"must list 4 teacher indices in 0..6 .* got \[0, 1, 7, 3\]"):
        layer_map_for(layer_cfg(tmp_path, {"every_k": 2}, [0, 1, 7, 3]), 3, 6)
