"""Config loading: YAML + `a.b=c` overrides with typed parsing; every error names its key and what is allowed."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from ernie_tiny_distill.config import Config, config_from_dict, load_config
from ernie_tiny_distill.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "configs").glob("*.y*ml"))

# the smallest valid stage-2 config
BASE = ["output_dir=out", "model.teacher=teacher_dir", "model.student.every_k=2"]


def write(tmp_path, text: str, name: str = "run.yaml") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def load(*overrides, path=None) -> Config:
    return load_config(path, list(BASE) + list(overrides))


def fails(match: str, *overrides, path=None, base=True):
    with pytest.raises(UserError, match=match) as info:
        load_config(path, (list(BASE) if base else []) + list(overrides))
    return str(info.value)


# --------------------------------------------------------------------------- loading and overrides


def test_yaml_file_is_read(tmp_path):
    path = write(tmp_path, """
task: ner
stage: task
output_dir: runs/ner
data: {format: conll, path: data/conll, max_train_examples: 200}
model:
  teacher: minilm
  max_seq_length: 64
  student: {init: teacher_layers, layers: [1, 3]}
train: {batch_size: 8, learning_rate: 0.0001, amp: false, max_steps: 50}
distill: {temperature: 2, kd_weight: 0.5}
""")
    cfg = load_config(path)
    assert (cfg.task, cfg.stage, cfg.output_dir) == ("ner", "task", "runs/ner")
    assert (cfg.data.format, cfg.data.path, cfg.data.max_train_examples) == ("conll", "data/conll", 200)
    assert cfg.model.teacher == "minilm" and cfg.model.max_seq_length == 64
    assert cfg.model.student.layers == [1, 3] and cfg.model.student.every_k is None
    assert (cfg.train.batch_size, cfg.train.learning_rate, cfg.train.amp, cfg.train.max_steps) == (8, 1e-4, False, 50)
    assert cfg.distill.temperature == 2.0 and isinstance(cfg.distill.temperature, float)  # int widened
    assert cfg.distill.kd_weight == 0.5
    assert cfg.distill.ce_weight == 1.0 and cfg.train.epochs == 3.0  # untouched keys keep their defaults


def test_overrides_parse_types_and_win_over_yaml(tmp_path):
    path = write(tmp_path, "output_dir: o\nmodel: {teacher: t, student: {every_k: 2}}\n"
                           "train: {max_steps: 100, amp: false}\n")
    cfg = load_config(path, [
        "train.batch_size=8",  # int
        "distill.temperature=2.5",  # float
        "distill.kd_weight=3",  # int for a float key
        "train.amp=true",  # bool
        "model.student.layers=[0, 2]",  # list
        "train.max_steps=null",  # null clears a value set in the file
        "model.teacher=minilm",  # string
        "data.unlabeled=corpus.txt",  # a section absent from the file is created
        "output_dir=elsewhere",
    ])
    assert cfg.train.batch_size == 8 and type(cfg.train.batch_size) is int
    assert cfg.distill.temperature == 2.5
    assert cfg.distill.kd_weight == 3.0 and type(cfg.distill.kd_weight) is float
    assert cfg.train.amp is True
    assert cfg.model.student.layers == [0, 2]
    assert cfg.train.max_steps is None
    assert cfg.model.teacher == "minilm" and cfg.data.unlabeled == "corpus.txt"
    assert cfg.output_dir == "elsewhere"


@pytest.mark.parametrize("how", ["override", "yaml"])
def test_scientific_notation_learning_rate(tmp_path, how):
    if how == "override":
        cfg = load("train.learning_rate=1e-5")
    else:
        cfg = load(path=write(tmp_path, "train:\n  learning_rate: 1e-5\n"))
    assert cfg.train.learning_rate == pytest.approx(1e-5)


def test_saved_config_round_trips(tmp_path):
    # stages.run_stage writes output_dir/config.yaml with yaml.safe_dump(cfg.to_dict())
    cfg = load("train.learning_rate=0.00005", "model.student.layers=[0, 1]", "distill.temperature=4")
    path = write(tmp_path, yaml.safe_dump(cfg.to_dict(), sort_keys=False), "config.yaml")
    assert load_config(path) == cfg
    assert config_from_dict(cfg.to_dict()) == cfg


# --------------------------------------------------------------------------- unknown keys, types, choices


def test_unknown_key_names_key_and_suggests():
    msg = fails(r"unknown config key 'train\.learnig_rate'", "train.learnig_rate=0.1")
    assert "did you mean 'learning_rate'?" in msg
    assert "allowed keys here:" in msg and "batch_size" in msg


def test_unknown_top_level_section_in_yaml(tmp_path):
    path = write(tmp_path, "trian:\n  epochs: 1\n")
    msg = fails(r"unknown config key 'trian'", path=path)
    assert "did you mean 'train'?" in msg


def test_unknown_nested_key_without_close_match():
    msg = fails(r"unknown config key 'model\.student\.zzz'", "model.student.zzz=1")
    assert "did you mean" not in msg and "every_k" in msg


@pytest.mark.parametrize("override, message", [
    ("train.batch_size=abc", r"config key 'train\.batch_size' must be an integer, got 'abc'"),
    ("train.batch_size=2.5", r"config key 'train\.batch_size' must be an integer, got 2\.5"),
    ("train.batch_size=true", r"config key 'train\.batch_size' must be an integer, got True"),
    ("train.amp=maybe", r"config key 'train\.amp' must be true or false, got 'maybe'"),
    ("distill.temperature=hot", r"config key 'distill\.temperature' must be a number, got 'hot'"),
    ("model.student.layers=3", r"config key 'model\.student\.layers' must be a list of int, got 3"),
    ("model.student.layers=[1, x]", r"config key 'model\.student\.layers\[1\]' must be an integer, got 'x'"),
    ("model.teacher=[a]", r"config key 'model\.teacher' must be a string, got \['a'\]"),
])
def test_wrong_type_names_key_and_expected_type(override, message):
    fails(message, override)


def test_scalar_where_a_section_is_expected(tmp_path):
    fails(r"config key 'train' must be a section \(mapping\), got 5", path=write(tmp_path, "train: 5\n"))
    fails(r"cannot set 'output_dir\.x': 'output_dir' is not a section", "output_dir.x=1")


@pytest.mark.parametrize("override, message", [
    ("task=nerr", r"config key 'task' must be one of classification, ner; got 'nerr'\. did you mean 'ner'\?"),
    ("stage=distill", r"config key 'stage' must be one of teacher, general, task, wide; got 'distill'"),
    ("distill.attention_loss=l2", r"config key 'distill\.attention_loss' must be one of kl, mse; got 'l2'"),
    ("model.truncation=tail", r"config key 'model\.truncation' must be one of head, head_tail; got 'tail'"),
    ("data.format=parquet", r"config key 'data\.format' must be one of demo, imdb, conll, msra, csv, tsv, jsonl"),
])
def test_bad_choice_lists_choices(override, message):
    fails(message, override)


def test_malformed_override_and_files(tmp_path):
    fails(r"override 'train\.epochs' is not of the form key=value", "train.epochs")
    fails(r"override '=3' is not of the form key=value", "=3")
    fails(r"config file not found: .*nope\.yaml", path=str(tmp_path / "nope.yaml"))
    bad = write(tmp_path, "train: [unclosed\n", "bad.yaml")
    fails(re.escape(bad) + r": not valid YAML", path=bad)
    listy = write(tmp_path, "- a\n- b\n", "list.yaml")
    fails(re.escape(listy) + r": expected a mapping of config keys at the top level", path=listy)


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


# --------------------------------------------------------------------------- shipped configs


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_shipped_config_loads_and_validates(path):
    cfg = load_config(str(path))
    assert cfg.output_dir
    first = path.read_text(encoding="utf-8").lstrip().splitlines()[0]
    # the issue asks for a header comment giving the command that runs the file
    assert first.startswith("#") and "train.py" in path.read_text(encoding="utf-8").split("\n\n")[0], first


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


# --------------------------------------------------------------------------- files that are not plain config


def test_duplicate_yaml_key_names_file_and_both_lines(tmp_path):
    path = write(tmp_path, "output_dir: o\ntrain:\n  epochs: 1\n  batch_size: 4\n  epochs: 2\n")
    fails(re.escape(path) + r":5: duplicate config key 'epochs' \(first set on line 3\)$", path=path, base=False)
    top = write(tmp_path, "output_dir: a\nmodel: {teacher: t}\noutput_dir: b\n", "top.yaml")
    fails(re.escape(top) + r":3: duplicate config key 'output_dir' \(first set on line 1\)$", path=top, base=False)


def test_non_utf8_config_is_one_line(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("# a caf\u00e9 run\noutput_dir: o\n".encode("latin-1"))
    msg = fails(re.escape(str(path)) + r":1: not UTF-8 text \(byte 0xe9\)", path=str(path), base=False)
    assert "\n" not in msg


def test_yaml_error_is_one_line(tmp_path):
    bad = write(tmp_path, "train:\n  epochs: [1,\n", "bad.yaml")
    assert "\n" not in fails(re.escape(bad) + r": not valid YAML", path=bad)


@pytest.mark.parametrize("override, value", [("train.learning_rate=3e-4", 3e-4), ("train.learning_rate=2E-5", 2e-5),
                                             ("data.max_train_examples=1e3", 1000), ("train.epochs=1e1", 10.0)])
def test_scientific_notation_is_a_number(override, value):
    cfg = load(override)
    key = override.split("=")[0].split(".")
    got = getattr(getattr(cfg, key[0]), key[1])
    assert got == value and type(got) is type(value)


def test_a_quoted_number_stays_text_and_is_refused():
    fails(r"config key 'train\.learning_rate' must be a number, got '1e-5'", "train.learning_rate='1e-5'")


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


# --------------------------------------------------------------------------- the generated reference


def test_configuration_reference_is_up_to_date():
    from ernie_tiny_distill.config_reference import reference

    committed = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert committed == reference(), "run: python -m ernie_tiny_distill.config_reference > docs/configuration.md"


def test_every_key_has_type_default_and_meaning():
    from ernie_tiny_distill.config_reference import rows

    table = {key: (kind, default, meaning) for key, kind, default, meaning in rows()}
    assert [key for key, (_, _, meaning) in table.items() if not meaning] == []
    assert table["train.learning_rate"][:2] == ("float", "`5e-05`")
    assert table["output_dir"][1] == "(required)" and table["model.student.layers"][0] == "list of int or null"
    assert table["distill.attention_loss"][0] == "one of `kl`, `mse`"
    # a comment block above the field and one at its end both count
    assert table["distill.hidden_loss"][2].startswith("mse: TinyBERT's MSE")
    assert table["model.long_document.pooling"][2] == "of the window logits"


def test_field_comments_reads_blocks_and_end_of_line_comments():
    from ernie_tiny_distill.config_reference import field_comments

    source = "class A:\n    # first\n    # second\n    x: int = 1  # end\n\n    y: int = 2\n    z: str = 'a # b'\n"
    assert field_comments(source) == {("A", "x"): "first second end", ("A", "y"): "", ("A", "z"): ""}
