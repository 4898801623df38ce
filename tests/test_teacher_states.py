"""Teacher states cached per example (task-stage KD recipe): the same losses and training as the online teacher,
with the teacher run only in the first epoch; over budget the run stays online and says so."""
from __future__ import annotations

import logging
import os

import numpy as np
import paddle
import pytest
from helpers import demo_ner_teacher, tiny_config
from paddlenlp.transformers import ErnieForSequenceClassification, ErnieForTokenClassification
from safetensors.numpy import load_file

from ernie_tiny_distill.config import config_from_dict
from ernie_tiny_distill.data import batching
from ernie_tiny_distill.data.examples import TaggedSentence, TextExample
from ernie_tiny_distill.distill.distiller import Distillable, Distiller
from ernie_tiny_distill.errors import UserError
from ernie_tiny_distill.tasks.classification import ClassificationTask
from ernie_tiny_distill.tasks.tagging import TaggingTask
from ernie_tiny_distill.train import checkpoint
from ernie_tiny_distill.train.stages import run_stage

RECIPE = {"kd_weight": 1.0, "ce_weight": 0.5, "hidden_weight": 1.0, "attention_weight": 1.0, "temperature": 2.0}


def recipe_cfg(tmp_path, **distill):
    return config_from_dict({"output_dir": str(tmp_path), "stage": "task",
                             "model": {"teacher": "unused", "student": {"every_k": 1}},
                             "distill": {**RECIPE, **distill}})


def count_calls(layer) -> list:
    """The batch size of every forward pass of `layer`."""
    calls = []
    forward = layer.forward

    def counted(*args, **kwargs):
        calls.append(int(kwargs["input_ids"].shape[0]))
        return forward(*args, **kwargs)

    object.__setattr__(layer, "forward", counted)
    return calls


def as_batch(features, pad_token_id=0):
    return {k: paddle.to_tensor(v) for k, v in batching.collate(features, pad_token_id).items()}


def values(parts):
    return {k: float(v) for k, v in parts.items()}


def sharpened(model, seed):
    """The default init (std 0.02) gives near-uniform attention and logits: unit-scale-ish weights make every term
    clearly non-zero."""
    rng = np.random.default_rng(seed)
    for p in model.parameters():
        if len(p.shape) == 2:
            p.set_value(rng.normal(0.0, 0.3, p.shape).astype("float32"))
    return model


def distillers(tmp_path, task, student_cls, num_labels, attention_heads, **distill):
    """An online and a caching Distiller sharing one student (+ W_h) and one 4-layer, 4-head, 32-wide teacher."""
    paddle.seed(3)
    teacher = sharpened(student_cls(tiny_config(hidden=32, layers=4, heads=4, intermediate=64,
                                                num_labels=num_labels)), 1)
    student = sharpened(student_cls(tiny_config(hidden=16, layers=2, heads=2, num_labels=num_labels)), 2)
    trainable = Distillable(student, 16, 32)  # hidden 16 -> 32: the learned projection is part of the loss
    cfg = recipe_cfg(tmp_path, **distill)
    make = lambda: Distiller(cfg, task, trainable, teacher=teacher, layer_map=[0, 2, 4],  # noqa: E731
                             attention_heads=attention_heads)
    return make(), make(), teacher


@pytest.mark.parametrize("attention_loss", ["kl", "mse"])
def test_cached_states_give_the_online_losses_at_another_padding_length(tmp_path, hand_tokenizer, attention_loss):
    task = TaggingTask(hand_tokenizer, ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"], max_seq_length=24)
    sentences = [TaggedSentence(["john"], ["B-PER"]),
                 TaggedSentence("the film was unwatchable and bad , john".split(), ["O"] * 7 + ["B-PER"]),
                 TaggedSentence("john lives in new york".split(), ["B-PER", "O", "O", "B-LOC", "I-LOC"]),
                 TaggedSentence("a great play".split(), ["O", "O", "O"])]
    features = task.encode(sentences)
    # student layer 1 was pruned from teacher heads 1 and 3 (matched one by one); layer 2 compares head means
    online, cached, teacher = distillers(tmp_path, task, ErnieForTokenClassification, 5, [[1, 3], None],
                                         attention_loss=attention_loss)
    cached.plan_teacher_states(features, epochs=2)
    calls = count_calls(teacher)
    # epoch 1: the teacher runs; example 0 is padded to 7 pieces (example 2's length)
    first = [as_batch([features[0], features[2]]), as_batch([features[1]])]
    for batch in first:
        assert values(cached.loss_parts(batch)) == pytest.approx(values(online.loss_parts(batch)), abs=1e-6)
    assert len(calls) == 4 and len(cached.states) == 3
    # epoch 2: other batches, example 0 now padded to 11 pieces and example 2 unpadded; the teacher does not run
    for batch in [as_batch([features[1], features[0]]), as_batch([features[2]])]:
        n = len(calls)
        got = values(cached.loss_parts(batch))
        assert len(calls) == n  # served from the cache
        want = values(online.loss_parts(batch))
        assert sorted(got) == ["attention", "ce", "hidden", "kd"]
        assert min(want.values()) > 1e-3  # every term is non-trivial
        assert got == pytest.approx(want, abs=1e-6)
    # a batch with a feature not met before: the teacher runs on that feature alone, the rest comes from the cache
    n = len(calls)
    batch = as_batch([features[3], features[1], features[2]])
    assert values(cached.loss_parts(batch)) == pytest.approx(values(online.loss_parts(batch)), abs=1e-6)
    assert calls[n:] == [1, 3] and len(cached.states) == 4  # cached: example 3 only; online: the whole batch


def test_cached_states_of_windowed_documents(tmp_path, hand_tokenizer):
    """A long document gives one model row per window: each window's states are kept and put back in order."""
    task = ClassificationTask(hand_tokenizer, ["neg", "pos"], max_seq_length=8,
                              long_document={"stride": 3, "max_windows": None, "pooling": "mean"})
    long_text = "the film was great . john lives in new york . the film was bad !"
    features = task.encode([TextExample(long_text, "pos"), TextExample("bad film", "neg"),
                            TextExample("john was great", "pos")])
    assert len(features[0]["windows"]) > 2
    online, cached, teacher = distillers(tmp_path, task, ErnieForSequenceClassification, 2, None)
    cached.plan_teacher_states(features, epochs=2)
    for batch in [as_batch([features[1], features[0]]), as_batch([features[2]])]:
        cached.loss_parts(batch)
    calls = count_calls(teacher)
    for batch in [as_batch([features[0], features[2]]), as_batch([features[1]])]:
        got = values(cached.loss_parts(batch))
        assert got == pytest.approx(values(online.loss_parts(batch)), abs=1e-6)
    assert len(calls) == 2  # the online distiller's two batches only


def test_over_budget_or_one_epoch_stays_online_and_says_so(tmp_path, hand_tokenizer, caplog):
    task = TaggingTask(hand_tokenizer, ["O", "B-PER"], max_seq_length=16)
    features = task.encode([TaggedSentence(["john", "lives"], ["B-PER", "O"]), TaggedSentence(["play"], ["O"])])
    _, cached, teacher = distillers(tmp_path, task, ErnieForTokenClassification, 2, None,
                                    teacher_state_cache_gb=1e-6)  # ~1 KB: less than these two examples need
    with caplog.at_level(logging.INFO, logger="ernie_tiny_distill.distill.distiller"):
        cached.plan_teacher_states(features, epochs=3)
    assert cached.states is None
    warning = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warning) == 1 and "NOT cached" in warning[0] and "teacher_state_cache_gb=1e-06" in warning[0]
    calls = count_calls(teacher)
    batch = as_batch(features)
    cached.loss_parts(batch)
    cached.loss_parts(batch)
    assert len(calls) == 2  # online every step
    caplog.clear()
    _, one_epoch, _ = distillers(tmp_path, task, ErnieForTokenClassification, 2, None)
    with caplog.at_level(logging.INFO, logger="ernie_tiny_distill.distill.distiller"):
        one_epoch.plan_teacher_states(features, epochs=1)
    assert one_epoch.states is None and "not cached" in caplog.text


def test_estimate_counts_hidden_states_attention_maps_and_logit_rows(tmp_path, hand_tokenizer, caplog):
    task = TaggingTask(hand_tokenizer, ["O", "B-PER", "I-PER"], max_seq_length=16)
    features = task.encode([TaggedSentence(["john", "lives"], ["B-PER", "O"])])  # [CLS] john lives [SEP]: 4
    _, cached, _ = distillers(tmp_path, task, ErnieForTokenClassification, 3, [[1, 3], None])
    with caplog.at_level(logging.INFO, logger="ernie_tiny_distill.distill.distiller"):
        cached.plan_teacher_states(features, epochs=2)
    # 3 hidden states x 4 x 32 + (2 heads + 1 mean) x 4 x 4 + 2 words x 3 labels, float32
    expected = 4 * (3 * 4 * 32 + 3 * 4 * 4 + 2 * 3)
    assert f"estimated {expected / 2**30:.2f} GB" in caplog.text and cached.states is not None
    assert "heads [1, 3]" in caplog.text and "head mean" in caplog.text


# ---------------------------------------------------------------------------- a 2-epoch KD-recipe training


@pytest.fixture(scope="module")
def ner_teacher(tmp_path_factory):
    root = tmp_path_factory.mktemp("tstates")
    base = demo_ner_teacher(root, "random_teacher", num_layers=3, hidden_size=32, num_heads=4, intermediate_size=64)

    def config(stage, name, **sections):
        raw = {"task": "ner", "stage": stage, "output_dir": str(root / name),
               "data": {"format": "demo", "path": str(root / "demo"), "max_train_examples": 40,
                        "max_dev_examples": 16, "max_test_examples": 16},
               "model": {"teacher": base, "max_seq_length": 40},
               "train": {"epochs": 2, "batch_size": 8, "learning_rate": 3e-3, "warmup_ratio": 0.0,
                         "progress": False, "seed": 5, "keep_checkpoints_after_finish": True,
                         "num_threads": 1}}
        for key, value in sections.items():
            raw[key] = {**raw.get(key, {}), **value}
        return config_from_dict(raw)

    return {"dir": run_stage(config("teacher", "teacher", train={"epochs": 1}))["output_dir"], "config": config}


STUDENT = {"init": "teacher_pruned", "layers": [0, 2], "num_heads": 2, "intermediate_size": 16, "hidden_size": 24,
           "importance_examples": 16}


def recipe_run_cfg(ner_teacher, name, cache):
    return ner_teacher["config"]("task", name,
                                 model={"teacher": ner_teacher["dir"], "max_seq_length": 40, "student": STUDENT},
                                 distill={**RECIPE, "allow_weak_teacher": True, "cache_teacher_states": cache},
                                 train={"eval_every": 3})  # checkpoints at steps 3, 6, 9 and the last


def last_weights(output_dir):
    return load_file(os.path.join(checkpoint.latest(os.path.join(output_dir, "checkpoints")), "model.safetensors"))


def count_teacher_forwards(monkeypatch) -> dict:
    """Examples the Distiller's teacher forward passes read, per value of distill.cache_teacher_states."""
    calls = {}
    forward = Distiller._forward

    def spy(self, model, batch, *args, **kwargs):
        if model is self.teacher:
            key = self.cfg.distill.cache_teacher_states
            calls[key] = calls.get(key, 0) + int(batch["input_ids"].shape[0])
        return forward(self, model, batch, *args, **kwargs)

    monkeypatch.setattr(Distiller, "_forward", spy)
    return calls


@pytest.fixture(scope="module")
def recipe_runs(ner_teacher):
    """The same 2-epoch KD-recipe training of a pruned student with the teacher-state cache on and off."""
    monkeypatch = pytest.MonkeyPatch()
    calls = count_teacher_forwards(monkeypatch)
    try:
        summaries = {cache: run_stage(recipe_run_cfg(ner_teacher, f"student_cache_{cache}", cache))
                     for cache in (True, False)}
    finally:
        monkeypatch.undo()
    return {"calls": calls, "weights": {c: last_weights(s["output_dir"]) for c, s in summaries.items()},
            "examples": summaries[True]["train_examples"]}


def test_two_epoch_kd_recipe_trains_the_same_student_with_the_teacher_run_once(recipe_runs):
    calls, weights = recipe_runs["calls"], recipe_runs["weights"]
    # online: every example in both epochs; cached: every example once (epoch 1)
    assert calls[True] == recipe_runs["examples"] >= 24 and calls[False] == 2 * calls[True]
    assert sorted(weights[True]) == sorted(weights[False]) and any("projection" in k for k in weights[True])
    for name, value in weights[False].items():
        np.testing.assert_allclose(weights[True][name], value, atol=1e-5, err_msg=name)


class Interrupt(Exception):
    pass


def test_a_run_killed_in_epoch_one_resumes_with_an_empty_cache_to_the_same_student(ner_teacher, recipe_runs,
                                                                                    monkeypatch):
    """The cache is in memory only: the resumed run refills it as it meets examples again (the teacher reads each
    example once more: the rest of epoch 1, then in epoch 2 the examples not met since the resume) and ends with
    the uninterrupted run's weights."""
    original = Distiller.loss_parts

    def crashing(self, batch, step=0):
        if step == 4:  # epoch 1's last step, after the checkpoint at step 3
            raise Interrupt()
        return original(self, batch, step)

    monkeypatch.setattr(Distiller, "loss_parts", crashing)
    cfg = recipe_run_cfg(ner_teacher, "student_resumed", True)
    with pytest.raises(Interrupt):
        run_stage(cfg)
    monkeypatch.setattr(Distiller, "loss_parts", original)
    calls = count_teacher_forwards(monkeypatch)
    run_stage(cfg)
    assert calls[True] == recipe_runs["examples"]
    for name, value in recipe_runs["weights"][True].items():
        np.testing.assert_allclose(last_weights(cfg.output_dir)[name], value, atol=1e-5, err_msg=name)


def test_budget_key_is_checked(tmp_path):
    with pytest.raises(UserError, match="distill.teacher_state_cache_gb' must be >= 0"):
        recipe_cfg(tmp_path, teacher_state_cache_gb=-1)
