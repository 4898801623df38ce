"""Config validation: values that load but do not make sense (missing output_dir, stages without what they
need, ranges, limits) are refused with their key and what is allowed."""
from __future__ import annotations

import re

import pytest
from helpers import fails, load, write

from ernie_tiny_distill.config import load_config


# --------------------------------------------------------------------------- semantic validation


def test_missing_output_dir():
    fails(r"missing required config key 'output_dir'", "model.teacher=t", "model.student.every_k=2", base=False)


@pytest.mark.parametrize("override", ["output_dir=null", "output_dir="])
def test_null_or_empty_output_dir_is_rejected(override):
    fails(r"output_dir", override)


@pytest.mark.parametrize("temperature", ["0", "-1.5"])
def test_temperature_must_be_positive(temperature):
    fails(rf"config key 'distill\.temperature' must be > 0, got {re.escape(str(float(temperature)))}",
          f"distill.temperature={temperature}")


def test_teacher_max_seq_length_must_leave_room_for_a_token():
    fails(r"config key 'distill\.teacher_max_seq_length' must be >= 3 .* got 2", "distill.teacher_max_seq_length=2")


@pytest.mark.parametrize("name", ["kd_weight", "ce_weight", "hidden_weight", "attention_weight", "mlm_weight"])
def test_negative_weight(name):
    fails(rf"config key 'distill\.{name}' must be >= 0, got -0\.5", f"distill.{name}=-0.5")


def test_all_task_weights_zero():
    fails(r"stage 'task' has every loss weight at 0", "distill.kd_weight=0", "distill.ce_weight=0")


@pytest.mark.parametrize("stage, role", [("task", "the teacher to distill from"),
                                         ("general", "the teacher to distill from"),
                                         ("teacher", "the model to fine-tune")])
def test_stage_needs_a_teacher(stage, role):
    msg = fails(rf"stage '{stage}' needs 'model\.teacher' \({role}\); it is not set",
                "output_dir=o", f"stage={stage}", "model.student.every_k=2", "distill.hidden_weight=1",
                "data.unlabeled=u.txt", base=False)
    assert "hint:" in msg


def test_teacher_stage_needs_no_student_settings():
    cfg = load_config(None, ["output_dir=o", "stage=teacher", "model.teacher=t"])
    assert cfg.stage == "teacher"


def test_general_stage_needs_unlabeled_data():
    fails(r"stage 'general' needs 'data\.unlabeled'", "stage=general", "distill.hidden_weight=1")
    fails(r"stage 'general' needs at least one of distill\.hidden_weight, distill\.attention_weight, "
          r"distill\.mlm_weight", "stage=general", "data.unlabeled=u.txt")
    cfg = load("stage=general", "distill.attention_weight=1", "data.unlabeled=u.txt")
    assert cfg.stage == "general"


def test_student_settings():
    fails(r"neither 'model\.student\.layers' nor 'model\.student\.every_k' is set",
          "output_dir=o", "model.teacher=t", base=False)
    fails(r"config key 'model\.student\.every_k' must be > 0 or null, got -1", "model.student.every_k=-1")
    fails(r"'model\.student\.path' is required when model\.student\.init is 'pretrained'",
          "model.student.init=pretrained")
    fails(r"model\.student\.hidden_size \(100\) must be divisible by model\.student\.num_heads \(12\)",
          "model.student.init=config", "model.student.hidden_size=100")


def test_every_k_zero_is_reported_as_out_of_range():
    fails(r"config key 'model\.student\.every_k' must be > 0 or null, got 0", "model.student.every_k=0")


@pytest.mark.parametrize("override, message", [
    ("model.max_seq_length=4", r"config key 'model\.max_seq_length' must be >= 8, got 4"),
    ("model.max_seq_length=0", r"config key 'model\.max_seq_length' must be >= 8, got 0"),
    ("train.batch_size=0", r"config key 'train\.batch_size' must be > 0, got 0"),
    ("train.warmup_ratio=1", r"config key 'train\.warmup_ratio' must be in \[0, 1\), got 1\.0"),
    ("distill.mask_prob=0", r"config key 'distill\.mask_prob' must be in \(0, 1\), got 0\.0"),
    ("model.dropout=1.5", r"config key 'model\.dropout' must be in \[0, 1\), got 1\.5"),
    ("data.dev_size=0", r"config key 'data\.dev_size' must be > 0, got 0\.0"),
])
def test_range_checks(override, message):
    fails(message, override)


# --------------------------------------------------------------------------- values that are not meaningful


@pytest.mark.parametrize("override, message", [
    ("data.max_dev_examples=0", r"config key 'data\.max_dev_examples' must be > 0 or null .*, got 0$"),
    ("data.max_train_examples=-1", r"config key 'data\.max_train_examples' must be > 0 or null .*, got -1$"),
    ("data.max_test_examples=-1", r"config key 'data\.max_test_examples' must be >= 0 \(0 = do not read the test split\)"),
    ("data.max_unlabeled_examples=0", r"config key 'data\.max_unlabeled_examples' must be > 0 or null"),
    ("train.max_steps=0", r"config key 'train\.max_steps' must be > 0 or null .*, got 0$"),
    ("train.max_steps=-5", r"config key 'train\.max_steps' must be > 0 or null .*, got -5$"),
    ("train.eval_every=-3", r"config key 'train\.eval_every' must be > 0 or null .*, got -3$"),
    ("train.epochs=.nan", r"config key 'train\.epochs' must be a finite number, got nan$"),
    ("train.epochs=.inf", r"config key 'train\.epochs' must be a finite number, got inf$"),
    ("train.learning_rate=.nan", r"config key 'train\.learning_rate' must be a finite number, got nan$"),
    ("distill.temperature=-.inf", r"config key 'distill\.temperature' must be a finite number, got -inf$"),
])
def test_values_that_are_not_meaningful_are_rejected(override, message):
    fails(message, override)


def test_null_limits_are_accepted():
    cfg = load("data.max_train_examples=null", "train.max_steps=null", "train.eval_every=5", "train.max_steps=3")
    assert (cfg.data.max_train_examples, cfg.train.max_steps, cfg.train.eval_every) == (None, 3, 5)


def test_output_dir_that_is_a_file_below_a_file_or_in_proc(tmp_path):
    f = tmp_path / "results.txt"
    f.write_text("keep me", encoding="utf-8")
    msg = fails(r"^output_dir=.*results\.txt: is an existing file, expected a directory", f"output_dir={f}")
    assert "hint:" in msg
    fails(r"^output_dir=.*results\.txt/run: is below .*results\.txt, which is a file", f"output_dir={f}/run")
    fails(r"^output_dir=.*results\.txt/a/b: is below .*results\.txt, which is a file", f"output_dir={f}/a/b")
    fails(r"^output_dir=/proc/run: /proc/run is in /proc, a kernel file system", "output_dir=/proc/run")
    assert f.read_text(encoding="utf-8") == "keep me"
    assert load(f"output_dir={tmp_path}/new/run").output_dir.endswith("new/run")


def test_column_positions_several_text_columns_and_label_names():
    cfg = load("data.format=csv", "data.header=false", "data.text_column=[1, 2]", "data.label_column=0",
               "data.label_names=classes.txt", "data.first_label_id=1")
    d = cfg.data
    assert (d.text_column, d.label_column, d.header, d.label_names, d.first_label_id) == ([1, 2], 0, False,
                                                                                         "classes.txt", 1)
    assert load("data.text_column=2").data.text_column == 2
    assert load("data.label_names={1: World, 2: Sports}").data.label_names == {"1": "World", "2": "Sports"}
    assert load("data.label_names=[World, Sports]").data.label_names == ["World", "Sports"]
    fails(r"config key 'data\.text_column' must be a column name or a 0-based column position .*got -1",
          "data.text_column=-1")
    fails(r"config key 'data\.text_column\[1\]' must be a column name", "data.text_column=[1, true]")
    fails(r"config key 'data\.label_names' must be a file of class names", "data.label_names=3")


def test_max_seq_length_above_the_models_position_table_is_refused_before_any_work(tmp_path):
    # a token id outside the vocabulary would crash mid-epoch inside the embedding op
    import json

    teacher = tmp_path / "teacher"
    teacher.mkdir()
    (teacher / "config.json").write_text(json.dumps({"max_position_embeddings": 512}), encoding="utf-8")
    msg = fails(r"^config key 'model\.max_seq_length' is 1000, but model\.teacher=.*teacher has 512 positions "
                r"\(max_position_embeddings in .*teacher/config\.json\)", f"model.teacher={teacher}",
                "model.max_seq_length=1000")
    assert "hint: set model.max_seq_length <= 512" in msg
    assert load(f"model.teacher={teacher}", "model.max_seq_length=512").model.max_seq_length == 512
    fails(r"^config key 'distill\.teacher_max_seq_length' is 600, but model\.teacher=", f"model.teacher={teacher}",
          "distill.teacher_max_seq_length=600")
    # a teacher run directory: its best/ model is checked
    run = tmp_path / "run"
    (run / "best").mkdir(parents=True)
    (run / "best" / "config.json").write_text(json.dumps({"max_position_embeddings": 128}), encoding="utf-8")
    fails(r"'model\.max_seq_length' is 256, but model\.teacher=.*run has 128 positions \(.*best/config\.json\)",
          f"model.teacher={run}", "model.max_seq_length=256")
    # a pretrained student with a shorter table
    fails(r"'model\.max_seq_length' is 256, but model\.student\.path=.*best has 128 positions",
          f"model.teacher={teacher}", "model.max_seq_length=256", "model.student.init=pretrained",
          f"model.student.path={run / 'best'}")


# --------------------------------------------------------------------------- ranges added with the pydantic checks


@pytest.mark.parametrize("override, message", [
    ("train.seed=-1", r"config key 'train\.seed' must be in \[0, 4294967295\] .*, got -1$"),
    ("train.seed=4294967296", r"config key 'train\.seed' must be in \[0, 4294967295\] .*, got 4294967296$"),
    ("train.weight_decay=-0.01", r"config key 'train\.weight_decay' must be >= 0, got -0\.01$"),
    ("train.max_grad_norm=-1", r"config key 'train\.max_grad_norm' must be >= 0, got -1\.0$"),
    ("model.wide.fit=seperate", r"config key 'model\.wide\.fit' must be one of residual, separate; got 'seperate'\. "
                                r"did you mean 'separate'\?$"),
])
def test_new_range_checks(override, message):
    fails(message, override)


def test_range_edges_are_accepted():
    cfg = load("train.seed=0", "train.weight_decay=0", "train.max_grad_norm=0")
    assert (cfg.train.seed, cfg.train.weight_decay, cfg.train.max_grad_norm) == (0, 0.0, 0.0)
    assert load("train.seed=4294967295").train.seed == 2 ** 32 - 1


def test_an_empty_section_means_its_defaults(tmp_path):
    cfg = load(path=write(tmp_path, "train:\ndistill:\n"))
    assert cfg.train == type(cfg.train)() and cfg.distill == type(cfg.distill)()


def test_unknown_key_is_reported_before_a_type_error():
    msg = fails(r"unknown config key 'train\.bach_size'", "train.epochs=x", "train.bach_size=2")
    assert "did you mean 'batch_size'?" in msg
