"""The data section refuses silent mix-ups, carves a logged dev split, and takes the subsets and unlabeled text
users asked for."""
from __future__ import annotations

import json
import logging
import re
from collections import Counter
from pathlib import Path

import pytest

from ernie_tiny_distill.config import config_from_dict
from ernie_tiny_distill.data.demo import write_demo_data
from ernie_tiny_distill.data.examples import TextExample
from ernie_tiny_distill.data.load import load_splits, read_unlabeled
from ernie_tiny_distill.data.readers import read_classification_file
from ernie_tiny_distill.errors import UserError


def cfg(tmp_path, task="classification", stage="teacher", **data):
    return config_from_dict({"task": task, "stage": stage, "output_dir": str(tmp_path / "run"),
                             "model": {"teacher": "minilm", "student": {"every_k": 2}}, "data": data})


def write(path: Path, text: str) -> str:
    path.write_text(text, encoding="utf-8")
    return str(path)


def labeled_csv(tmp_path, counts, name="train.csv") -> str:
    rows = [f"text {label} {i},{label}" for label, n in counts.items() for i in range(n)]
    return write(tmp_path / name, "text,label\n" + "\n".join(rows) + "\n")


# ---------------------------------------------------------------- dev split and subsets


def test_no_dev_file_holds_out_a_stratified_seeded_tenth_and_says_so(tmp_path, caplog):
    train = labeled_csv(tmp_path, {"a": 80, "b": 20})
    data = cfg(tmp_path, format="csv", train_file=train, split_seed=3).data
    with caplog.at_level(logging.INFO, logger="ernie_tiny_distill.data.load"):
        splits = load_splits(data, "classification")
    assert Counter(ex.label for ex in splits.dev) == {"a": 8, "b": 2} and len(splits.train) == 90
    assert (f"no dev file: 10 of the 100 training examples in {train} held out as dev (stratified by label, "
            "data.dev_size 0.1, seed 3)") in caplog.messages
    assert load_splits(data, "classification").dev == splits.dev
    assert load_splits(cfg(tmp_path, format="csv", train_file=train, split_seed=4).data,
                       "classification").dev != splits.dev


def test_no_ner_dev_file_holds_out_seeded_random_sentences(tmp_path, caplog):
    train = write(tmp_path / "train.txt", "".join(f"w{i} B-X\nv O\n\n" for i in range(30)))
    with caplog.at_level(logging.INFO, logger="ernie_tiny_distill.data.load"):
        splits = load_splits(cfg(tmp_path, "ner", format="conll", train_file=train).data, "ner")
    assert len(splits.dev) == 3 and len(splits.train) == 27
    assert (f"no dev file: 3 of the 30 training examples in {train} held out as dev (at random, data.dev_size 0.1, "
            "seed 0)") in caplog.messages


def test_max_train_examples_takes_the_first_n_or_a_seeded_random_subset(tmp_path):
    train = labeled_csv(tmp_path, {"a": 10, "b": 10})
    base = dict(format="csv", train_file=train, dev_file=train, max_train_examples=12)
    first = load_splits(cfg(tmp_path, subset="first", **base).data, "classification").train
    assert [ex.text for ex in first] == [f"text a {i}" for i in range(10)] + ["text b 0", "text b 1"]
    random_subset = load_splits(cfg(tmp_path, **base).data, "classification").train
    assert len(random_subset) == 12 and random_subset != first
    assert random_subset == load_splits(cfg(tmp_path, **base).data, "classification").train


# ---------------------------------------------------------------- silent mix-ups


def test_demo_format_refuses_data_files(tmp_path):
    for key in ("train_file", "dev_file", "test_file"):
        with pytest.raises(UserError, match=f"config key 'data.{key}' is set but data.format is 'demo'"):
            cfg(tmp_path, **{key: "mine.csv"})


def test_demo_format_refuses_a_path_holding_other_data(tmp_path):
    mine = tmp_path / "conll"
    mine.mkdir()
    write(mine / "train.txt", "a O\n")
    with pytest.raises(UserError, match=re.escape(f"config key 'data.path' = {str(mine)!r} holds other files "
                                                  "(train.txt), but data.format is 'demo'")) as err:
        cfg(tmp_path, path=str(mine))
    assert "set data.format to your data's format" in str(err.value)
    with pytest.raises(UserError, match="is a file, but data.format is 'demo'"):
        cfg(tmp_path, path=str(mine / "train.txt"))
    demo = tmp_path / "demo"
    cfg(tmp_path, path=str(demo))  # not there yet: the demo data is written there
    write_demo_data(str(demo), n_train=4, n_dev=2, n_test=2, n_unlabeled=2)
    assert cfg(tmp_path, path=str(demo)).data.path == str(demo)


def test_demo_transfer_set_with_other_data_is_an_error(tmp_path):
    with pytest.raises(UserError, match="config key 'data.unlabeled' is 'demo' .* but data.format is 'csv'"):
        cfg(tmp_path, stage="task", format="csv", train_file="t.csv", unlabeled="demo")


def test_options_of_other_formats_are_errors_not_ignored(tmp_path):
    with pytest.raises(UserError, match="config key 'data.label_separator' applies to formats csv, tsv, jsonl, "
                                        "label_text, but data.format is 'conll'"):
        cfg(tmp_path, "ner", format="conll", train_file="t.txt", label_separator=":")
    with pytest.raises(UserError, match="config key 'data.dev_text_column' applies to formats csv, tsv, jsonl, but "
                                        "data.format is 'label_text'"):
        cfg(tmp_path, format="label_text", train_file="t.txt", dev_text_column="content")


def test_training_set_with_one_class_is_an_error(tmp_path):
    train = labeled_csv(tmp_path, {"pos": 5})
    with pytest.raises(UserError, match=re.escape(f"the training examples in {train} have one label only (pos)")):
        load_splits(cfg(tmp_path, format="csv", train_file=train, dev_file=train).data, "classification")
    ner = write(tmp_path / "train.txt", "a O\nb O\n\nc O\n")
    with pytest.raises(UserError, match=re.escape(f"the training examples in {ner} have one label only (O)")):
        load_splits(cfg(tmp_path, "ner", format="conll", train_file=ner, dev_file=ner).data, "ner")


def test_repeated_header_name_is_an_error(tmp_path):
    f = write(tmp_path / "t.csv", "text,label,text\nhello,pos,world\n")
    with pytest.raises(UserError, match=re.escape(f"{f}:1: column name 'text' repeats in the header (positions 0 "
                                                  "and 2)")):
        read_classification_file(f)


def test_integer_label_among_string_labels_is_an_error(tmp_path):
    f = write(tmp_path / "t.jsonl", "\n".join(json.dumps(r) for r in [
        {"text": "a", "label": "pos"}, {"text": "b", "label": "neg"}, {"text": "c", "label": 1}]) + "\n")
    with pytest.raises(UserError, match=re.escape(f"{f}:3: label 1 is an integer but line 1 has a string label "
                                                  "'pos'")):
        read_classification_file(f)
    ids = write(tmp_path / "ids.jsonl", '{"text": "a", "label": 0}\n{"text": "b", "label": 1}\n')
    assert [ex.label for ex in read_classification_file(ids)] == ["0", "1"]


def test_deeply_nested_json_is_a_one_line_error(tmp_path):
    f = write(tmp_path / "t.jsonl", '{"text": "a", "label": "x"}\n' + "[" * 100_000 + "]" * 100_000 + "\n")
    with pytest.raises(UserError) as err:
        read_classification_file(f)
    assert str(err.value).splitlines()[0] == f"{f}:2: JSON nested too deeply to read (thousands of levels of [ or {{)"


# ---------------------------------------------------------------- unlabeled text


def test_unlabeled_text_from_a_csv_column_and_a_row_range(tmp_path, caplog):
    f = write(tmp_path / "u.csv", "id,body\n" + "".join(f"{i},doc {i}\n" for i in range(10)))
    base = dict(format="csv", train_file="t.csv", unlabeled=f, unlabeled_column="body")
    with caplog.at_level(logging.INFO, logger="ernie_tiny_distill.data.load"):
        docs = read_unlabeled(cfg(tmp_path, stage="task", **base).data, "classification")
    assert [d.text for d in docs] == [f"doc {i}" for i in range(10)] and all(d.label is None for d in docs)
    assert f"unlabeled text: 10 document(s) from column 'body' of {f}" in caplog.messages
    docs = read_unlabeled(cfg(tmp_path, stage="task", unlabeled_rows=[6, None], **base).data, "classification")
    assert [d.text for d in docs] == ["doc 6", "doc 7", "doc 8", "doc 9"]
    docs = read_unlabeled(cfg(tmp_path, stage="task", unlabeled_rows=[2, 4], max_unlabeled_examples=1, **base).data,
                          "classification")
    assert docs == [TextExample("doc 2", None)]
    assert (f"unlabeled text: 1 document(s) from column 'body' of {f} rows 2 to 3 (the first 1 of 2: "
            "data.max_unlabeled_examples)") in caplog.messages
    with pytest.raises(UserError, match=r"'data.unlabeled_rows' starts at row 10 but column 'body' of .* has 10 rows"):
        read_unlabeled(cfg(tmp_path, stage="task", unlabeled_rows=[10, None], **base).data, "classification")


def test_unlabeled_row_range_of_a_text_file_and_bad_settings(tmp_path):
    f = write(tmp_path / "u.txt", "one\ntwo\nthree\n")
    docs = read_unlabeled(cfg(tmp_path, stage="task", format="csv", train_file="t.csv", unlabeled=f,
                              unlabeled_rows=[1, 2]).data, "classification")
    assert docs == [TextExample("two", None)]
    with pytest.raises(UserError, match="'data.unlabeled_column' is set but .*u.txt is a plain text file"):
        read_unlabeled(cfg(tmp_path, stage="task", format="csv", train_file="t.csv", unlabeled=f,
                           unlabeled_column="body").data, "classification")
    with pytest.raises(UserError, match="config key 'data.unlabeled_rows' applies to an unlabeled file"):
        cfg(tmp_path, format="csv", train_file="t.csv", unlabeled_rows=[0, 3])
    with pytest.raises(UserError, match=r"config key 'data.unlabeled_rows' must be \[first, end\]"):
        cfg(tmp_path, format="csv", train_file="t.csv", unlabeled=f, unlabeled_rows=[3, 1])


def test_the_transfer_set_source_and_size_are_logged(tmp_path, caplog):
    demo = str(tmp_path / "demo")
    with caplog.at_level(logging.INFO, logger="ernie_tiny_distill.data.load"):
        docs = read_unlabeled(cfg(tmp_path, stage="task", path=demo, unlabeled="demo").data, "classification")
    assert f"unlabeled text: {len(docs)} document(s) from demo text {demo}/sentiment/unlabeled.txt" in caplog.messages
