"""Config loading: YAML + `a.b=c` overrides with typed parsing; unknown keys, wrong types and choices name
their key and what is allowed; files that are not plain config; the shipped configs and the generated reference."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from helpers import fails, load, write

from ernie_tiny_distill.config import config_from_dict, load_config

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "configs").glob("*.y*ml"))


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


# --------------------------------------------------------------------------- shipped configs


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_shipped_config_loads_and_validates(path):
    cfg = load_config(str(path))
    assert cfg.output_dir
    first = path.read_text(encoding="utf-8").lstrip().splitlines()[0]
    # the issue asks for a header comment giving the command that runs the file
    assert first.startswith("#") and "train.py" in path.read_text(encoding="utf-8").split("\n\n")[0], first


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
