"""Each stage trains a tiny model and its loss goes down; an interrupted run resumes to the same weights."""
import json
import os

import numpy as np
import pytest
from safetensors.numpy import load_file

from ernie_tiny_distill.config import config_from_dict
from ernie_tiny_distill.data.demo import write_demo_data
from ernie_tiny_distill.distill.distiller import Distiller
from ernie_tiny_distill.models.random_teacher import write_random_teacher
from ernie_tiny_distill.train import checkpoint
from ernie_tiny_distill.train.stages import run_stage


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, demo_root):
    root = tmp_path_factory.mktemp("trainer")
    paths = write_demo_data(str(demo_root))  # the session's demo data (already written: returns its paths)
    texts = []
    for key in ("sentiment_train", "sentiment_unlabeled", "ner_unlabeled"):
        with open(paths[key], encoding="utf-8") as f:
            texts += f.read().splitlines()
    teacher = write_random_teacher(str(root / "random_teacher"), texts, num_layers=2, hidden_size=32,
                                   num_heads=2, intermediate_size=64)
    return {"root": root, "demo": str(demo_root), "teacher": teacher}


def make_config(ws, task, stage, name, **sections):
    raw = {
        "task": task, "stage": stage, "output_dir": str(ws["root"] / name),
        "data": {"format": "demo", "path": ws["demo"], "unlabeled": "demo", "max_train_examples": 64,
                 "max_dev_examples": 32, "max_test_examples": 32, "max_unlabeled_examples": 64},
        "model": {"teacher": ws["teacher"], "max_seq_length": 48,
                  "student": {"init": "config", "num_layers": 1, "hidden_size": 16, "num_heads": 2,
                              "intermediate_size": 32}},
        "train": {"epochs": 4, "batch_size": 8, "learning_rate": 3e-3, "warmup_ratio": 0.0, "log_every": 2,
                  "progress": False, "seed": 7, "num_threads": 1},
    }
    for key, value in sections.items():
        raw[key] = {**raw.get(key, {}), **value}
    return config_from_dict(raw)


def logged(run_dir, part):
    with open(os.path.join(run_dir, "train_log.jsonl"), encoding="utf-8") as f:
        return [json.loads(line)[part] for line in f]


def first_vs_last(values, k=3):
    return float(np.mean(values[:k])), float(np.mean(values[-k:]))


@pytest.fixture(scope="module")
def cls_teacher(workspace):
    cfg = make_config(workspace, "classification", "teacher", "cls_teacher", train={"epochs": 6})
    return run_stage(cfg)


def test_teacher_stage_ce_goes_down(cls_teacher):
    first, last = first_vs_last(logged(cls_teacher["output_dir"], "ce"))
    assert last < first
    assert os.path.isfile(os.path.join(cls_teacher["best_dir"], "model.safetensors"))
    assert cls_teacher["test"]["num_examples"] == 32


@pytest.mark.parametrize("hidden_loss", ["mse", "relative_mse"])
def test_general_stage_hidden_and_attention_go_down(workspace, hidden_loss):
    cfg = make_config(workspace, "classification", "general", f"general_{hidden_loss}",
                      distill={"hidden_weight": 1.0, "attention_weight": 1.0, "hidden_loss": hidden_loss})
    summary = run_stage(cfg)
    for part in ("hidden", "attention"):
        first, last = first_vs_last(logged(summary["output_dir"], part))
        assert last < first, part
    # the projection (student 16 -> teacher 32 wide) is trained but not part of the saved student
    weights = load_file(os.path.join(summary["best_dir"], "model.safetensors"))
    assert not any("projection" in k for k in weights)


def test_general_stage_mlm_kl_with_an_mlm_teacher(workspace, tmp_path):
    """A teacher with a masked-LM head: the student (teacher layer 1 + the copied head) learns P_T at masked tokens."""
    import paddle
    from paddlenlp.transformers import ErnieForMaskedLM

    from ernie_tiny_distill.models import build as models

    paddle.seed(0)
    base = models.load_model(workspace["teacher"], ErnieForMaskedLM)  # the MLM head starts random
    mlm_dir = str(tmp_path / "mlm_teacher")
    base.save_pretrained(mlm_dir, safe_serialization=True)
    models.load_tokenizer(workspace["teacher"]).save_pretrained(mlm_dir)
    cfg = make_config(workspace, "classification", "general", "general_mlm",
                      model={"teacher": mlm_dir, "student": {"init": "teacher_layers", "layers": [1]}},
                      distill={"mlm_weight": 1.0, "temperature": 1.0})
    summary = run_stage(cfg)
    first, last = first_vs_last(logged(summary["output_dir"], "mlm"))
    assert last < first
    weights = load_file(os.path.join(summary["best_dir"], "model.safetensors"))
    assert any(k.startswith("cls.predictions") for k in weights)  # the student keeps its MLM head


def test_task_stage_kd_goes_down_and_uses_cache(workspace, cls_teacher):
    cfg = make_config(workspace, "classification", "task", "cls_student",
                      model={"teacher": cls_teacher["output_dir"]},
                      distill={"temperature": 2.0, "allow_weak_teacher": True})
    summary = run_stage(cfg)
    first, last = first_vs_last(logged(summary["output_dir"], "kd"))
    assert last < first
    cache = os.path.join(cls_teacher["best_dir"], "logits_cache")
    assert len([f for f in os.listdir(cache) if f.endswith(".npz")]) == 1
    assert summary["transfer_examples"] == 64  # the unlabeled set fed the KD term


def test_ner_task_stage_runs_per_token(workspace):
    teacher = run_stage(make_config(workspace, "ner", "teacher", "ner_teacher", train={"epochs": 3}))
    cfg = make_config(workspace, "ner", "task", "ner_student", model={"teacher": teacher["output_dir"]},
                      distill={"allow_weak_teacher": True})
    summary = run_stage(cfg)
    assert set(summary["test"]) >= {"f1", "precision", "recall", "per_class"}
    first, last = first_vs_last(logged(summary["output_dir"], "kd"))
    assert last < first


def test_lora_teacher_trains_adapters_and_saves_a_merged_plain_model(workspace):
    cfg = make_config(workspace, "classification", "teacher", "lora_teacher", model={"lora_rank": 4},
                      train={"epochs": 3})
    summary = run_stage(cfg)
    first, last = first_vs_last(logged(summary["output_dir"], "ce"))
    assert last < first
    merged = load_file(os.path.join(summary["best_dir"], "model.safetensors"))
    base = load_file(os.path.join(workspace["teacher"], "model.safetensors"))
    assert not any("lora" in k for k in merged)
    # the merged plain model scores exactly what the adapter model scored on dev during training
    assert summary["dev"]["accuracy"] == max(h["accuracy"] for h in summary["history"])
    # the adapters changed the attention projections, folded into the plain weights
    key = "encoder.layers.0.self_attn.q_proj.weight"
    assert np.abs(merged["ernie." + key] - base[key]).max() > 0
    # ... while parameters without adapters stay frozen
    np.testing.assert_array_equal(merged["ernie.embeddings.word_embeddings.weight"],
                                  base["embeddings.word_embeddings.weight"])


class Interrupt(Exception):
    pass


@pytest.mark.parametrize("average_decay", [None, 0.9])
def test_interrupted_run_resumes_to_identical_weights(workspace, cls_teacher, monkeypatch, average_decay):
    common = dict(model={"teacher": cls_teacher["output_dir"]},
                  distill={"temperature": 2.0, "allow_weak_teacher": True},
                  train={"max_steps": 12, "eval_every": 4, "average_decay": average_decay})
    suffix = "" if average_decay is None else "_average"
    straight = run_stage(make_config(workspace, "classification", "task", "resume_a" + suffix, **common))

    # crash in the middle of step 7, after the checkpoint at step 4 was written
    original = Distiller.loss_parts
    calls = {"n": 0}

    def crashing(self, batch, step=0):
        calls["n"] += 1
        if step == 6 and self.trainable.training:
            raise Interrupt()
        return original(self, batch, step)

    monkeypatch.setattr(Distiller, "loss_parts", crashing)
    cfg_b = make_config(workspace, "classification", "task", "resume_b" + suffix, **common)
    with pytest.raises(Interrupt):
        run_stage(cfg_b)
    monkeypatch.setattr(Distiller, "loss_parts", original)
    assert os.listdir(os.path.join(cfg_b.output_dir, "checkpoints")) == ["step-4"]
    resumed = run_stage(cfg_b)

    a = load_file(os.path.join(straight["best_dir"], "model.safetensors"))
    b = load_file(os.path.join(resumed["best_dir"], "model.safetensors"))
    assert straight["best_step"] == resumed["best_step"]
    for key in a:
        np.testing.assert_allclose(a[key], b[key], rtol=0, atol=1e-6, err_msg=key)
    assert resumed["test"]["accuracy"] == straight["test"]["accuracy"]


def test_best_holds_the_average_and_the_checkpoint_the_trained_weights(workspace, cls_teacher):
    cfg = make_config(workspace, "classification", "task", "average_best",
                      model={"teacher": cls_teacher["output_dir"]}, distill={"allow_weak_teacher": True},
                      train={"max_steps": 6, "eval_every": 6, "average_decay": 0.5,
                             "keep_checkpoints_after_finish": True})
    summary = run_stage(cfg)
    step = os.path.join(cfg.output_dir, "checkpoints", "step-6")
    best = load_file(os.path.join(summary["best_dir"], "model.safetensors"))
    averaged = load_file(os.path.join(step, checkpoint.AVERAGE_FILE))
    trained = load_file(os.path.join(step, "model.safetensors"))
    assert set(averaged) <= set(best)
    for name, value in averaged.items():
        np.testing.assert_array_equal(best[name], value, err_msg=name)
    assert any(not np.array_equal(trained["student." + name], value) for name, value in averaged.items())


def test_teacher_at_its_own_length_teaches_a_longer_student(workspace, cls_teacher):
    """distill.teacher_max_seq_length: the cached soft labels are the teacher's logits on 8-token inputs while
    the student reads 48."""
    import paddle

    from ernie_tiny_distill.data import load as data_lib
    from ernie_tiny_distill.models import build as models
    from ernie_tiny_distill.tasks.adapters import make_task

    cache_dir = workspace["root"] / "t8_cache"
    cfg = make_config(workspace, "classification", "task", "cls_student_t8", model={"teacher": cls_teacher["output_dir"]},
                      data={"cache_dir": str(cache_dir)}, train={"epochs": 1},
                      distill={"teacher_max_seq_length": 8, "allow_weak_teacher": True})
    summary = run_stage(cfg)
    assert summary["test"]["num_examples"] == 32
    # the student reads 48 tokens: its metric is a count of correct answers out of 32
    assert summary["test"]["accuracy"] * 32 == pytest.approx(round(summary["test"]["accuracy"] * 32), abs=1e-9)
    (npz,) = list((cache_dir / "teacher_logits").glob("*.npz"))
    with np.load(npz, allow_pickle=False) as z:
        rows = z["rows"]
    tokenizer = models.load_tokenizer(cls_teacher["best_dir"])
    splits = data_lib.load_splits(cfg.data, cfg.task, need_unlabeled=True)
    task8 = make_task("classification", tokenizer, models.read_task_metadata(cls_teacher["best_dir"])["labels"], 8)
    feature = task8.encode(splits.train[:1])[0]
    assert len(feature["input_ids"]) == 8
    teacher = models.load_model(cls_teacher["best_dir"], task8.model_class, task8.num_labels)
    teacher.eval()
    with paddle.no_grad():
        expected = teacher(input_ids=paddle.to_tensor([feature["input_ids"]]),
                           token_type_ids=paddle.to_tensor([feature["token_type_ids"]])).numpy()[0]
    np.testing.assert_allclose(rows[0], expected, atol=1e-5)
    assert len(rows) == 64 + 64  # labeled + transfer set, one row each


def test_teacher_length_needs_logit_only_kd(workspace, cls_teacher):
    from ernie_tiny_distill.errors import UserError

    cfg = make_config(workspace, "classification", "task", "cls_student_t8_hidden",
                      model={"teacher": cls_teacher["output_dir"]},
                      distill={"teacher_max_seq_length": 8, "hidden_weight": 1.0, "allow_weak_teacher": True})
    with pytest.raises(UserError, match="teacher_max_seq_length=8 .* works with cached logit KD only"):
        run_stage(cfg)


def test_kd_rows_must_agree_between_lengths():
    from ernie_tiny_distill.errors import UserError
    from ernie_tiny_distill.tasks.tagging import TaggingTask
    from ernie_tiny_distill.distill.distiller import check_same_kd_rows

    task = TaggingTask.__new__(TaggingTask)   # kd_row_count reads only the feature
    same = [{"token_mask": [0, 1, 1, 0], "index": 0}]
    check_same_kd_rows(task, same, [{"token_mask": [0, 1, 0, 1, 0], "index": 0}], 5)
    with pytest.raises(UserError, match="training example 3 has 2 KD rows for the student but 1 at the teacher's "
                                        "length 3"):
        check_same_kd_rows(task, [{"token_mask": [0, 1, 1, 0], "index": 3}], [{"token_mask": [0, 1, 0], "index": 3}], 3)


# --------------------------------------------------------------------------- what the terminal shows


def screen(raw: str):
    """The lines a terminal ends up showing for `raw`: '\\r' returns to column 0, '\\n' starts the next line and
    ESC[A moves up one line (how tqdm draws and clears bars); later characters overwrite earlier ones."""
    rows, row, col, i = [[]], 0, 0, 0
    while i < len(raw):
        if raw.startswith("\x1b[A", i):
            row, i = max(0, row - 1), i + 3
            continue
        ch = raw[i]
        if ch == "\r":
            col = 0
        elif ch == "\n":
            row, col = row + 1, 0
            while len(rows) <= row:
                rows.append([])
        else:
            line = rows[row]
            line.extend(" " * (col + 1 - len(line)))
            line[col] = ch
            col += 1
        i += 1
    return [text for text in ("".join(r).rstrip() for r in rows) if text]


def test_progress_shows_one_final_bar_and_log_lines_on_their_own(workspace, cls_teacher, capsys, tmp_path):
    import logging
    import sys

    handler = logging.StreamHandler(sys.stderr)  # what setup_logging installs for a terminal user
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    level, root.level = root.level, logging.INFO
    try:
        cfg = make_config(workspace, "classification", "task", "progress_bars",
                          model={"teacher": cls_teacher["output_dir"]}, data={"cache_dir": str(tmp_path)},
                          train={"max_steps": 4, "eval_every": 2, "progress": True},
                          distill={"allow_weak_teacher": True})
        run_stage(cfg)
    finally:
        root.removeHandler(handler)
        root.level = level
    shown = screen(capsys.readouterr().err)
    train_bars = [line for line in shown if line.startswith("task train:")]
    assert len(train_bars) == 1 and "100%" in train_bars[0] and "4/4" in train_bars[0]
    dev_lines = [line for line in shown if "step 2 dev accuracy" in line or "step 4 dev accuracy" in line]
    assert len(dev_lines) == 2  # each on a line of its own, not glued to a bar:
    assert all(line.startswith("INFO ernie_tiny_distill.train.trainer: step ") for line in dev_lines)
    # the teacher's logits were computed (a fresh cache dir) with a bar of their own
    assert not any(line.startswith("teacher logits") for line in shown)  # transient: cleared when done
    assert any(line.startswith("INFO ernie_tiny_distill.distill.teacher_cache: computing teacher logits") for line in shown)


def test_an_ensemble_gives_the_soft_target_while_hidden_and_attention_terms_follow_model_teacher(
        workspace, cls_teacher, monkeypatch):
    """distill.teachers with intermediate terms on: the KD rows are the ensemble's (cached, scored on dev as the
    run's teacher), the hidden-state and attention terms come from model.teacher run online."""
    made = []
    real = Distiller.__init__

    def spy(self, *args, **kwargs):
        real(self, *args, **kwargs)
        made.append(self)

    monkeypatch.setattr(Distiller, "__init__", spy)
    cfg = make_config(workspace, "classification", "task", "cls_ensemble_hidden",
                      model={"teacher": cls_teacher["output_dir"]},
                      data={"cache_dir": str(workspace["root"] / "ens_hidden_cache")}, train={"epochs": 1},
                      distill={"allow_weak_teacher": True, "hidden_weight": 1.0, "attention_weight": 1.0,
                               "teachers": [{"path": cls_teacher["output_dir"], "weight": 1.0},
                                            {"tfidf": True, "weight": 1.0}]})
    summary = run_stage(cfg)
    (d,) = made
    assert d.teacher_rows is not None and d.needs_online_teacher  # cached mixed rows + the live teacher
    assert [t["teacher"] for t in summary["ensemble"]["teachers"]] == [cls_teacher["output_dir"], "tfidf"]
    assert summary["teacher_dev"] == summary["ensemble"]["dev"]
    for part in ("kd", "hidden", "attention"):
        values = logged(summary["output_dir"], part)
        assert np.isfinite(values).all() and min(values) > 0, part


def test_cached_logits_through_the_teachers_export_are_the_dygraph_logits(workspace, cls_teacher, monkeypatch):
    """distill.teacher_export: model.teacher's soft labels are computed through its Paddle Inference export (the
    scorer is asked for them), and the cached rows equal those computed in dygraph."""
    from ernie_tiny_distill.deploy import scoring
    from ernie_tiny_distill.deploy.export import export_model

    export = str(workspace["root"] / "cls_teacher_export")
    export_model(cls_teacher["output_dir"], export)
    through = []
    real = scoring.predict_logits
    monkeypatch.setattr(scoring, "predict_logits", lambda *a, **k: through.append(len(a[2])) or real(*a, **k))
    rows = {}
    for name, extra in (("dygraph", {}), ("export", {"teacher_export": export})):
        cache = workspace["root"] / f"cache_{name}"
        cfg = make_config(workspace, "classification", "task", f"cls_logits_{name}",
                          model={"teacher": cls_teacher["output_dir"]}, data={"cache_dir": str(cache)},
                          train={"epochs": 1}, distill={"allow_weak_teacher": True, **extra})
        run_stage(cfg)
        (npz,) = [p for p in (cache / "teacher_logits").glob("*.npz") if np.load(p)["rows"].shape[0] == 128]
        rows[name] = np.load(npz)["rows"]
    assert 128 in through  # the 64 labeled + 64 transfer texts, scored through the export
    np.testing.assert_allclose(rows["export"], rows["dygraph"], atol=1e-4)


def test_windows_student_distilled_from_an_ensemble(workspace, cls_teacher):
    """Long documents as windows (12 tokens: every demo review spans several) and a two-teacher ensemble (the
    fine-tuned teacher reading the same windows + TF-IDF): the run trains on pooled logits, reports the
    ensemble's dev/test accuracy, and records the windows in task.json for export."""
    from ernie_tiny_distill.models import build as models

    cfg = make_config(workspace, "classification", "task", "cls_windows_ensemble",
                      model={"teacher": cls_teacher["output_dir"], "max_seq_length": 12,
                             "long_document": {"mode": "windows", "stride": 5, "max_windows": 8}},
                      data={"cache_dir": str(workspace["root"] / "ens_cache")}, train={"epochs": 1},
                      distill={"temperature": 2.0, "allow_weak_teacher": True,
                               "teachers": [{"path": cls_teacher["output_dir"], "weight": 1.0},
                                            {"tfidf": True, "weight": 1.0}]})
    summary = run_stage(cfg)
    ens = summary["ensemble"]
    assert [t["teacher"] for t in ens["teachers"]] == [cls_teacher["output_dir"], "tfidf"]
    assert ens["dev"]["num_examples"] == 32 and ens["test"]["num_examples"] == 32
    assert summary["teacher_dev"] == ens["dev"]
    assert np.isfinite(logged(summary["output_dir"], "kd")).all()
    meta = models.read_task_metadata(summary["best_dir"])
    assert meta["long_document"] == {"stride": 5, "max_windows": 8, "pooling": "mean"}
    # one cached row per document (labeled + transfer set), however many windows it has
    (npz,) = [p for p in (workspace["root"] / "ens_cache" / "teacher_logits").glob("*.npz")
              if np.load(p)["offsets"].shape[0] == 64 + 64 + 1]
    assert np.load(npz)["rows"].shape == (128, 2)
