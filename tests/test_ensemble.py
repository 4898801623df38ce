"""Teacher ensembles (distill.teachers): the mixed soft target by hand, label sets, per-teacher caches, and a
TF-IDF teacher that only ever sees the training split."""
from __future__ import annotations

import math
import os
from types import SimpleNamespace

import numpy as np
import paddle
import pytest
from helpers import tiny_config

from ernie_tiny_distill.config import config_from_dict
from ernie_tiny_distill.data.examples import TextExample
from ernie_tiny_distill.distill import ensemble
from ernie_tiny_distill.distill import tfidf as baselines
from ernie_tiny_distill.errors import UserError
from ernie_tiny_distill.models import build as models
from ernie_tiny_distill.tasks.classification import ClassificationTask
from ernie_tiny_distill.train import evaluation


def test_mixed_soft_target_is_the_weighted_mean_by_hand():
    a = np.array([[0.0, math.log(3.0)]], dtype=np.float32)  # softmax: [1/4, 3/4]
    b = np.array([[5.0, 5.0]], dtype=np.float32)  # softmax: [1/2, 1/2]
    mixed = ensemble.mix([a, b], [1.0, 3.0], temperature=1.0)
    # (1·[1/4, 3/4] + 3·[1/2, 1/2]) / 4 = [7/16, 9/16]
    np.testing.assert_allclose(ensemble.softmax(mixed.astype(np.float64)), [[7 / 16, 9 / 16]], rtol=1e-6)
    # at T = 2 the teachers' distributions are softened first: softmax([0, ln 3] / 2) = [1, √3] / (1 + √3)
    mixed = ensemble.mix([a, b], [1.0, 1.0], temperature=2.0)
    s3 = math.sqrt(3.0)
    want = [(1 / (1 + s3) + 0.5) / 2, (s3 / (1 + s3) + 0.5) / 2]
    np.testing.assert_allclose(ensemble.softmax(mixed.astype(np.float64) / 2.0), [want], rtol=1e-6)


def test_one_teacher_ensemble_keeps_its_distribution():
    rows = np.array([[1.0, -2.0, 0.5], [0.0, 0.0, 3.0]], dtype=np.float32)
    for t in (1.0, 4.0):
        np.testing.assert_allclose(ensemble.softmax(ensemble.mix([rows], [2.5], t) / t),
                                   ensemble.softmax(rows / t), rtol=1e-5)


def test_label_order_and_a_teacher_with_another_label_set_is_refused():
    assert ensemble.label_order(["pos", "neg"], ["neg", "pos"], "t") == [1, 0]
    with pytest.raises(UserError, match="teacher runs/sst3_teacher has labels"):
        ensemble.label_order(["neg", "neutral", "pos"], ["neg", "pos"], "runs/sst3_teacher")


def test_config_teachers_entries():
    raw = {"task": "classification", "stage": "task", "output_dir": "runs/ens_cfg",
           "model": {"teacher": "t", "student": {"every_k": 2}},
           "distill": {"teachers": [{"path": "runs/a", "weight": 2}, {"tfidf": True}]}}
    cfg = config_from_dict(raw)
    assert cfg.distill.teachers == [{"path": "runs/a", "tfidf": False, "weight": 2.0},
                                    {"path": None, "tfidf": True, "weight": 1.0}]
    for bad, key in (([{"path": "a", "tfidf": True}], "distill.teachers[0]"), ([{"path": "a", "weight": 0}],
                     "distill.teachers[0].weight"), ([{"file": "a"}], "distill.teachers[0]"), ([], "distill.teachers")):
        raw["distill"]["teachers"] = bad
        with pytest.raises(UserError, match=key.replace("[", r"\[").replace("]", r"\]")):
            config_from_dict(raw)
    # the ensemble is the KD term's soft target: intermediate terms may stay on (they follow model.teacher)
    raw["distill"] = {"teachers": [{"tfidf": True}], "hidden_weight": 1.0, "attention_weight": 1.0}
    assert config_from_dict(raw).distill.hidden_weight == 1.0
    # model.teacher's export scores cached logit KD; with intermediate terms or an ensemble it would go unused
    raw["distill"] = {"teacher_export": "exports/teacher"}
    assert config_from_dict(raw).distill.teacher_export == "exports/teacher"
    for unused in ({"hidden_weight": 1.0}, {"teachers": [{"tfidf": True}]}, {"cache_teacher": False}):
        raw["distill"] = {"teacher_export": "exports/teacher", **unused}
        with pytest.raises(UserError, match="distill.teacher_export.*cached logit KD only"):
            config_from_dict(raw)
    for bad in ({"kd_weight": 0.0}, {"cache_teacher": False}):
        raw["distill"] = {"teachers": [{"tfidf": True}], **bad}
        with pytest.raises(UserError, match="soft target of cached logit KD"):
            config_from_dict(raw)


TRAIN = [TextExample(t, y) for t, y in [("the film was great", "pos"), ("great great film", "pos"),
                                         ("a great play", "pos"), ("the film was bad", "neg"),
                                         ("bad bad film", "neg"), ("a bad play", "neg"), ("great !", "pos"),
                                         ("bad !", "neg"), ("john was great", "pos"), ("york was bad", "neg")]]
DEV = [TextExample("new york play was great", "pos"), TextExample("unwatchable , bad", "neg")]
TEST = [TextExample("john lives in new york , great", "pos"), TextExample("the play was unwatchable", "neg")]


def _splits():
    return SimpleNamespace(train=TRAIN, dev=DEV, test=TEST, unlabeled=[], labels=["neg", "pos"])


def _cfg(tmp_path, teachers, teacher="t"):
    return config_from_dict({"task": "classification", "stage": "task", "output_dir": str(tmp_path / "run"),
                             "data": {"cache_dir": str(tmp_path / "cache")},
                             "model": {"teacher": teacher, "max_seq_length": 16, "student": {"every_k": 1}},
                             "distill": {"teachers": teachers, "temperature": 2.0}})


def _features(task):
    return task.encode(TRAIN), task.encode(DEV), task.encode(TEST)


def _spy_on_tfidf_fits(monkeypatch) -> list:
    """Every TF-IDF + LR fit from now on appends the texts it was fit on to the returned list."""
    fitted = []
    real = baselines.make_model

    def spying_make_model(*args, **kwargs):
        model = real(*args, **kwargs)
        fit = model.fit

        def record(texts, labels):
            fitted.append(list(texts))
            return fit(texts, labels)

        model.fit = record
        return model

    monkeypatch.setattr(baselines, "make_model", spying_make_model)
    return fitted


def test_tfidf_teacher_is_trained_on_the_training_split_only(hand_tokenizer, tmp_path, monkeypatch):
    fitted = _spy_on_tfidf_fits(monkeypatch)
    task = ClassificationTask(hand_tokenizer, ["neg", "pos"], 16)
    cfg = _cfg(tmp_path, [{"tfidf": True, "weight": 1.0}])
    (rows, offsets), report = ensemble.build(cfg, task, _splits(), *_features(task))
    train_texts = {e.text for e in TRAIN}
    assert fitted and all(set(texts) <= train_texts for texts in fitted)  # every fit: training texts only
    assert fitted[-1] == [e.text for e in TRAIN]  # the final model: refit on the whole training split
    unseen = {e.text for e in DEV + TEST}
    assert not any(set(texts) & unseen for texts in fitted)
    assert rows.shape == (len(TRAIN), 2) and offsets.tolist() == list(range(len(TRAIN) + 1))
    assert report["teachers"][0]["teacher"] == "tfidf" and report["test"]["num_examples"] == 2
    # the second run reads every split from the cache: no fit at all
    fitted.clear()
    ensemble.build(cfg, task, _splits(), *_features(task))
    assert fitted == []


def test_cross_fit_tfidf_scores_each_training_text_with_a_model_that_never_saw_it(hand_tokenizer, tmp_path,
                                                                                    monkeypatch):
    real = baselines.make_model
    fitted = _spy_on_tfidf_fits(monkeypatch)
    task = ClassificationTask(hand_tokenizer, ["neg", "pos"], 16)
    plain, _ = ensemble.build(_cfg(tmp_path / "a", [{"tfidf": True}]), task, _splits(), *_features(task))
    fitted.clear()
    cfg = _cfg(tmp_path / "b", [{"tfidf": True, "cross_fit": 2}])
    assert cfg.distill.teachers == [{"path": None, "tfidf": True, "weight": 1.0, "cross_fit": 2}]
    (rows, _), report = ensemble.build(cfg, task, _splits(), *_features(task))
    # the grid, the full refit, then one model per fold: each fold model leaves out one half of the training texts
    folds = fitted[-2:]
    left_out = [set(e.text for e in TRAIN) - set(f) for f in folds]
    assert all(len(f) == 5 for f in folds) and left_out[0] | left_out[1] == {e.text for e in TRAIN}
    assert not left_out[0] & left_out[1]
    c = float(ensemble.fit_tfidf_teacher([e.text for e in TRAIN], [e.label for e in TRAIN]).steps[-1][1].C)
    for i, example in enumerate(TRAIN):
        fold = next(f for f, out in zip(folds, left_out) if example.text in out)
        m = real(c, 2).fit(fold, [next(e.label for e in TRAIN if e.text == t) for t in fold])
        p = m.predict_proba([example.text])[0][[list(m.classes_).index(y) for y in ("neg", "pos")]]
        mixed = ensemble.softmax(rows[i:i + 1].astype(np.float64) / 2.0)[0]
        np.testing.assert_allclose(mixed, ensemble.softmax(np.log(p)[None] / 2.0)[0], rtol=1e-4)
    assert not np.allclose(rows, plain[0])  # in-sample soft labels differ from out-of-fold ones
    # dev and test are scored by the full model either way
    plain_report = ensemble.build(_cfg(tmp_path / "a", [{"tfidf": True}]), task, _splits(), *_features(task))[1]
    assert report["dev"] == plain_report["dev"] and report["test"] == plain_report["test"]
    with pytest.raises(UserError, match=r"distill.teachers\[0\].cross_fit' must be an integer >= 2"):
        _cfg(tmp_path, [{"tfidf": True, "cross_fit": 1}])
    with pytest.raises(UserError, match=r"cross_fit' must be an integer >= 2 \(folds\) on a tfidf entry"):
        _cfg(tmp_path, [{"path": "runs/a", "cross_fit": 5}])


def _teacher_dir(path, tokenizer, labels, seed):
    from paddlenlp.transformers import ErnieForSequenceClassification

    paddle.seed(seed)
    model = ErnieForSequenceClassification(tiny_config(vocab_size=len(tokenizer.vocab)))
    task = ClassificationTask(tokenizer, labels, 16)
    models.save_model_dir(model, tokenizer, str(path), {**task.metadata(), "stage": "teacher", "dev": None})
    return str(path)


def _count_teacher_runs(monkeypatch, what):
    """Spy on evaluation.predict_logits (still run): the returned list gets what(model, features) per call."""
    calls = []
    real = evaluation.predict_logits

    def counting(task, model, features, *args, **kwargs):
        calls.append(what(model, features))
        return real(task, model, features, *args, **kwargs)

    monkeypatch.setattr(evaluation, "predict_logits", counting)
    return calls


def test_one_changed_teacher_recomputes_only_its_own_outputs(hand_tokenizer, tmp_path, monkeypatch):
    a = _teacher_dir(tmp_path / "a", hand_tokenizer, ["neg", "pos"], 1)
    b = _teacher_dir(tmp_path / "b", hand_tokenizer, ["pos", "neg"], 2)  # another label order: reordered
    real = evaluation.predict_logits
    calls = _count_teacher_runs(monkeypatch, lambda model, features: id(model))
    task = ClassificationTask(hand_tokenizer, ["neg", "pos"], 16)
    cfg = _cfg(tmp_path, [{"path": a, "weight": 1.0}, {"path": b, "weight": 3.0}], teacher=a)
    builder = ensemble.EnsembleBuilder(cfg, task, _splits(), *_features(task))
    first = builder.build()
    assert len(calls) == 6  # two teachers x (train, dev, test)
    # teacher b's own logits, columns swapped into the task's order
    model_b = models.load_model(b, task.model_class, 2)
    logits_b = real(task, model_b, task.encode(TRAIN), 8, 0)
    np.testing.assert_allclose(first[1].train, np.stack(logits_b)[:, ::-1], atol=1e-5)
    calls.clear()
    again = ensemble.EnsembleBuilder(cfg, task, _splits(), *_features(task)).build()
    assert calls == []  # both from their caches
    np.testing.assert_array_equal(again[0].train, first[0].train)
    # teacher b is retrained (new weights file): only its outputs are computed again
    _teacher_dir(tmp_path / "b", hand_tokenizer, ["pos", "neg"], 3)
    os.utime(os.path.join(b, "model.safetensors"), ns=(1, 1))
    third = ensemble.EnsembleBuilder(cfg, task, _splits(), *_features(task)).build()
    assert len(calls) == 3
    np.testing.assert_array_equal(third[0].train, first[0].train)
    assert not np.allclose(third[1].train, first[1].train)


def test_a_teacher_that_reads_text_as_the_run_does_scores_the_runs_own_features(hand_tokenizer, tmp_path,
                                                                               monkeypatch):
    # the run's features are reused (not encoded again) when the teacher's task settings and tokenizer are the
    # run's; teacher b lists its labels in another order, so its features (labels included) are its own
    a = _teacher_dir(tmp_path / "a", hand_tokenizer, ["neg", "pos"], 1)
    b = _teacher_dir(tmp_path / "b", hand_tokenizer, ["pos", "neg"], 2)
    task = ClassificationTask(hand_tokenizer, ["neg", "pos"], 16)
    train, dev, test = _features(task)
    seen = _count_teacher_runs(monkeypatch, lambda model, features: features)
    cfg = _cfg(tmp_path, [{"path": a, "weight": 1.0}, {"path": b, "weight": 1.0}], teacher=a)
    out = ensemble.EnsembleBuilder(cfg, task, _splits(), train, dev, test).build()
    assert [f is own for f, own in zip(seen, (train, dev, test, train, dev, test))] == [True] * 3 + [False] * 3
    assert ensemble.same_encoding(task, ClassificationTask(models.load_tokenizer(a), ["neg", "pos"], 16))
    assert not ensemble.same_encoding(task, ClassificationTask(hand_tokenizer, ["neg", "pos"], 8))  # another length
    # the reused features give the logits a fresh encoding gives
    model_a = models.load_model(a, task.model_class, 2)
    fresh = evaluation.predict_logits(ClassificationTask(models.load_tokenizer(a), ["neg", "pos"], 16), model_a,
                                   task.encode(TRAIN), 8, 0)
    np.testing.assert_allclose(out[0].train, np.stack(fresh), atol=1e-6)


def test_a_neural_teacher_with_another_label_set_is_refused_by_name(hand_tokenizer, tmp_path):
    a = _teacher_dir(tmp_path / "a", hand_tokenizer, ["neg", "pos"], 1)
    c = _teacher_dir(tmp_path / "three", hand_tokenizer, ["neg", "neutral", "pos"], 1)
    task = ClassificationTask(hand_tokenizer, ["neg", "pos"], 16)
    cfg = _cfg(tmp_path, [{"path": a, "weight": 1.0}, {"path": c, "weight": 1.0}], teacher=a)
    with pytest.raises(UserError, match=f"teacher {c} has labels"):
        ensemble.build(cfg, task, _splits(), *_features(task))


def test_each_member_gets_the_single_teacher_checks(hand_tokenizer, tmp_path, caplog):
    from ernie_tiny_distill.train import supervised

    task = ClassificationTask(hand_tokenizer, ["neg", "pos"], 16)
    report = {"teachers": [{"teacher": "runs/strong", "weight": 1.0, "dev": {"accuracy": 0.9}},
                           {"teacher": "tfidf", "weight": 1.0, "dev": {"accuracy": 0.7}},
                           {"teacher": "runs/nodev", "weight": 1.0, "dev": None}]}
    no_kd = _cfg(tmp_path, [{"tfidf": True}])
    no_kd.distill.kd_weight = 0.0
    # a student without KD at 0.8 on dev: matches tfidf (0.7), not runs/strong (0.9) -> one warning, naming tfidf
    with caplog.at_level("WARNING"):
        out = ensemble.compare_members(no_kd, task, {"accuracy": 0.8}, report, supervised.compare_with_teacher)
    assert [(c["teacher"], c["teacher_dev"], c["student_dev"]) for c in out] == [("runs/strong", 0.9, 0.8),
                                                                             ("tfidf", 0.7, 0.8)]
    assert "warning" not in out[0] and "matches teacher tfidf on dev (accuracy 0.8000 vs 0.7000)" in out[1]["warning"]
    assert report["teachers"][1]["comparison"] is out[1] and "comparison" not in report["teachers"][2]
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == [out[1]["warning"]]
    kd = _cfg(tmp_path, [{"tfidf": True}])  # a distilled student: the same report lines, never a warning
    assert all("warning" not in c for c in ensemble.compare_members(kd, task, {"accuracy": 0.95}, report,
                                                                     supervised.compare_with_teacher))
    # chance level (dev: one pos, one neg -> 0.5): a member at 0.5 is refused by name, as a single teacher is
    ensemble.check_members(kd, task, report, DEV, supervised.check_teacher)  # 0.9 and 0.7: fine
    report["teachers"][1]["dev"] = {"accuracy": 0.5}
    with pytest.raises(UserError, match=r"distill.teachers: tfidf.*teacher tfidf's dev accuracy is 0.5000"):
        ensemble.check_members(kd, task, report, DEV, supervised.check_teacher)
    kd.distill.allow_weak_teacher = True
    ensemble.check_members(kd, task, report, DEV, supervised.check_teacher)  # a warning only


def test_score_teachers_scores_dev_and_test_only_and_fills_the_training_runs_cache(hand_tokenizer, tmp_path,
                                                                                   monkeypatch):
    from ernie_tiny_distill.data import load as data_lib

    a = _teacher_dir(tmp_path / "a", hand_tokenizer, ["neg", "pos"], 1)
    monkeypatch.setattr(data_lib, "load_splits", lambda data, task, need_unlabeled=False: _splits())
    calls = _count_teacher_runs(monkeypatch, lambda model, features: len(features))
    cfg = _cfg(tmp_path, [{"path": a, "weight": 1.0}, {"tfidf": True, "weight": 1.0}], teacher=a)
    alone = ensemble.score_teachers(cfg, member=0)
    assert calls == [len(DEV), len(TEST)]  # the training split is never run through the teacher
    assert [m["teacher"] for m in alone["teachers"]] == [a] and alone["test"]["num_examples"] == len(TEST)
    task = ClassificationTask(hand_tokenizer, ["neg", "pos"], 16)
    model = models.load_model(a, task.model_class, 2)
    want = evaluation.evaluate(task, model, task.encode(TEST), TEST, 8, 0)
    assert alone["test"]["accuracy"] == want["accuracy"]  # a one-member ensemble scores as that teacher
    calls.clear()
    both = ensemble.score_teachers(cfg)
    assert calls == []  # the teacher's dev/test rows come from the cache the first call wrote
    assert [m["teacher"] for m in both["teachers"]] == [a, "tfidf"] and both["dev"]["num_examples"] == len(DEV)
    calls.clear()
    ensemble.build(cfg, task, _splits(), *_features(task))  # a training run of the config: only train is new
    assert calls == [len(TRAIN)]
    # --with-train scores the training split ahead of a run (e.g. on the other core): the run then reads the cache
    b = _teacher_dir(tmp_path / "b", hand_tokenizer, ["neg", "pos"], 2)
    cfg_b = _cfg(tmp_path, [{"path": b, "weight": 1.0}], teacher=b)
    calls.clear()
    ahead = ensemble.score_teachers(cfg_b, with_train=True)
    assert calls == [len(TRAIN), len(DEV), len(TEST)] and ahead["train_examples_scored"] == len(TRAIN)
    calls.clear()
    ensemble.build(cfg_b, task, _splits(), *_features(task))
    assert calls == []
    with pytest.raises(UserError, match="--member must be 0..1"):
        ensemble.score_teachers(cfg, member=2)


def test_a_distillation_run_checks_and_reports_each_member(hand_tokenizer, tmp_path, caplog):
    from ernie_tiny_distill.train import supervised

    a = _teacher_dir(tmp_path / "a", hand_tokenizer, ["neg", "pos"], 1)
    raw = {"task": "classification", "stage": "task", "output_dir": str(tmp_path / "run"),
           "data": {"cache_dir": str(tmp_path / "cache")},
           "model": {"teacher": a, "max_seq_length": 16, "student": {"every_k": 1}},
           "distill": {"teachers": [{"path": a}, {"tfidf": True}]},
           "train": {"epochs": 1, "batch_size": 4, "progress": False, "num_threads": 1}}
    # a random teacher: at the chance level on dev (one pos, one neg) -> refused by name
    with pytest.raises(UserError, match=f"distill.teachers: {a}"):
        supervised.run_supervised(config_from_dict(raw), hand_tokenizer, _splits())
    raw["distill"]["allow_weak_teacher"] = True
    with caplog.at_level("WARNING"):
        result = supervised.run_supervised(config_from_dict(raw), hand_tokenizer, _splits())
    members = result["ensemble"]["teachers"]
    assert [m["comparison"]["teacher"] for m in members] == [a, "tfidf"]
    for m in members:  # each member's dev beside the student's (distilled: a report line, never a warning)
        assert m["comparison"]["teacher_dev"] == m["dev"]["accuracy"] and m["comparison"]["kd"]
        assert m["comparison"]["student_dev"] == result["dev"]["accuracy"] and "warning" not in m["comparison"]
    assert any(f"teacher {a}'s dev accuracy" in r.getMessage() for r in caplog.records if r.levelname == "WARNING")
