"""Tests for ernie_tiny_distill.data.readers on text files (CSV with or without a header, TSV, JSONL, plain text)
and on splitting and checking labels, on tiny hand-written fixture files."""
from __future__ import annotations

import logging
import re
from collections import Counter

import pytest
from helpers import at, warnings_of

from ernie_tiny_distill.data import readers
from ernie_tiny_distill.data.examples import TaggedSentence, TextExample
from ernie_tiny_distill.data.readers import (
    check_labels_known,
    label_set,
    read_classification_file,
    read_plain_text,
    split_train_dev,
)
from ernie_tiny_distill.errors import UserError


# --------------------------------------------------------------------------- CSV / TSV / JSONL / plain text

CSV_TEXT = 'text,label\n"Hello, world",pos\n"line one\nline two",neg\n"",neg\nplain,  pos  \n'


def test_csv_quoted_newline_comma_and_empty_text_line(tmp_path, caplog):
    f = tmp_path / "data.csv"
    f.write_text(CSV_TEXT, encoding="utf-8")
    # The empty record starts on physical line 5 because the record before it spans lines 3-4.
    with pytest.raises(UserError, match=at(f, 5) + r"empty text in column 'text'"):
        read_classification_file(str(f))
    with caplog.at_level(logging.WARNING):
        got = read_classification_file(str(f), skip_empty=True)
    assert got == [TextExample("Hello, world", "pos"), TextExample("line one\nline two", "neg"),
                   TextExample("plain", "pos")]
    assert warnings_of(caplog) == [f"{f}: skipped 1 record(s) with empty text"]


def test_csv_missing_column_label_and_field_count(tmp_path):
    f = tmp_path / "data.csv"
    f.write_text("sentence,label\nhi,1\n", encoding="utf-8")
    with pytest.raises(UserError, match=at(f, 1) + re.escape("no column 'text' in the header; columns found: "
                                                             "['sentence', 'label']")):
        read_classification_file(str(f))
    assert read_classification_file(str(f), text_column="sentence", label_column=None) == [TextExample("hi")]
    f.write_text('text,label\n"multi\nline",\n', encoding="utf-8")
    with pytest.raises(UserError, match=at(f, 2) + "missing or empty label in column 'label'"):
        read_classification_file(str(f))
    f.write_text("text,label\nok,1\nunquoted, comma,0\n", encoding="utf-8")
    with pytest.raises(UserError, match=at(f, 3) + r"3 field\(s\) but the header has 2"):
        read_classification_file(str(f))


def test_tsv_and_format_inference(tmp_path):
    f = tmp_path / "data.tsv"
    f.write_text("label\ttext\n1\tgood movie\n0\tbad, bad\n", encoding="utf-8")
    assert read_classification_file(str(f)) == [TextExample("good movie", "1"), TextExample("bad, bad", "0")]
    g = tmp_path / "data.txt"
    g.write_text("text\nx\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"allowed formats are csv, tsv, jsonl"):
        read_classification_file(str(g))
    assert read_classification_file(str(g), file_format="csv", label_column=None) == [TextExample("x")]
    with pytest.raises(UserError, match="file_format must be one of 'csv', 'tsv', 'jsonl'; got 'xml'"):
        read_classification_file(str(g), file_format="xml")


def test_jsonl_int_labels_and_errors(tmp_path):
    f = tmp_path / "data.jsonl"
    f.write_text('{"text": "a", "label": 1}\n\n{"text": " b ", "label": 0}\n', encoding="utf-8")
    assert read_classification_file(str(f)) == [TextExample("a", "1"), TextExample("b", "0")]
    f.write_text('{"text": "a", "label": 1}\n{"text": "b", "label": 0\n', encoding="utf-8")
    with pytest.raises(UserError, match=at(f, 2) + r"invalid JSON: Expecting ',' delimiter \(column 25\)"):
        read_classification_file(str(f))
    f.write_text('{"text": "a", "label": 1}\n{"review": "b", "label": 0}\n', encoding="utf-8")
    with pytest.raises(UserError, match=at(f, 2) + re.escape("no field 'text'; fields found: ['label', 'review']")):
        read_classification_file(str(f))


def test_plain_text(tmp_path):
    f = tmp_path / "docs.txt"
    f.write_bytes(b"\xef\xbb\xbffirst doc\r\n\r\n   \n second doc \n")
    assert read_plain_text(str(f)) == [TextExample("first doc"), TextExample("second doc")]
    with pytest.raises(UserError, match=r"text file not found: .*nope\.txt"):
        read_plain_text(str(tmp_path / "nope.txt"))


# --------------------------------------------------------------------------- splits and labels


def labeled(n_neg, n_pos):
    return [TextExample(f"n{i}", "neg") for i in range(n_neg)] + [TextExample(f"p{i}", "pos") for i in range(n_pos)]


def test_split_deterministic_stratified_stable_order():
    data = labeled(15, 5)
    train, dev = split_train_dev(data, 4, seed=7)
    assert (train, dev) == split_train_dev(data, 4, seed=7)
    assert Counter(e.label for e in dev) == {"neg": 3, "pos": 1}
    assert len(train) == 16 and sorted(map(data.index, train + dev)) == list(range(20))
    assert [data.index(e) for e in train] == sorted(data.index(e) for e in train)
    assert [data.index(e) for e in dev] == sorted(data.index(e) for e in dev)
    assert split_train_dev(data, 0.2, seed=7) == (train, dev)
    _, dev2 = split_train_dev(labeled(10, 10), 2, seed=1)
    assert Counter(e.label for e in dev2) == {"neg": 1, "pos": 1}


def test_split_unlabeled_and_bad_sizes():
    sents = [TaggedSentence([str(i)], ["O"]) for i in range(10)]
    train, dev = split_train_dev(sents, 3, seed=0)
    assert len(train) == 7 and len(dev) == 3 and split_train_dev(sents, 3, seed=0) == (train, dev)
    for bad, msg in [(10, "gives 10 dev example"), (0, "gives 0 dev example"), (1.5, r"fraction must be in \(0, 1\)"),
                     (0.0, r"fraction must be in \(0, 1\)"), ("3", "must be an int count")]:
        with pytest.raises(UserError, match=msg):
            split_train_dev(sents, bad, seed=0)


def test_label_set_ordering():
    assert label_set([TextExample("x", "10"), TextExample("y", "2"), TextExample("z", "1"), TextExample("u")]) == [
        "1", "2", "10"]
    assert label_set([TextExample("x", l) for l in ["b", "a10", "a2"]]) == ["a2", "a10", "b"]
    assert label_set([TaggedSentence(["a", "b"], ["I-PER", "O"]), TaggedSentence(["c"], ["B-LOC"]),
                      TaggedSentence(["d"], ["B-PER"])]) == ["O", "B-LOC", "B-PER", "I-PER"]


def test_check_labels_known_policies(caplog):
    texts = [TextExample("a", "pos"), TextExample("b", "meh"), TextExample("c", "neutral")]
    with pytest.raises(UserError, match=r"^dev\.csv: labels not in the training label set: 'meh', 'neutral'; "
                                        r"known labels: 'neg', 'pos'"):
        check_labels_known(texts, ["neg", "pos"], where="dev.csv")
    with pytest.raises(UserError, match="applies only to tagging data"):
        check_labels_known(texts, ["neg", "pos"], where="dev.csv", policy="map_to_o")
    ok = [TextExample("a", "pos")]
    assert check_labels_known(ok, ["neg", "pos"], where="dev.csv") is ok

    sents = [TaggedSentence(["x", "y", "z"], ["B-PER", "B-EVT", "I-EVT"]), TaggedSentence(["w"], ["O"])]
    with pytest.raises(UserError, match=r"test\.txt: labels not in the training label set: 'B-EVT', 'I-EVT'"):
        check_labels_known(sents, ["O", "B-PER", "I-PER"], where="test.txt")
    with caplog.at_level(logging.WARNING):
        got = check_labels_known(sents, ["O", "B-PER", "I-PER"], where="test.txt", policy="map_to_o")
    assert got == [TaggedSentence(["x", "y", "z"], ["B-PER", "O", "O"]), TaggedSentence(["w"], ["O"])]
    assert sents[0].tags == ["B-PER", "B-EVT", "I-EVT"]  # input left untouched
    assert warnings_of(caplog) == ["test.txt: replaced 2 tag(s) not in the training label set with 'O': B-EVT, I-EVT"]


# ------------------------------------------------------------------ headerless CSV, column positions

AG_NEWS_LIKE = ('"3","Wall St. Bears Claw Back","Reuters - Short-sellers are seeing green again."\n'
                '"4","Carlyle Looks Toward Commercial Aerospace","Reuters - Private investment firm Carlyle"\n'
                '"2","Phelps wins, again",""\n')


def test_headerless_csv_positions_joined_text_columns_and_label_names(tmp_path):
    f = tmp_path / "train.csv"
    f.write_text(AG_NEWS_LIKE, encoding="utf-8")
    classes = tmp_path / "classes.txt"
    classes.write_text("World\nSports\nBusiness\nSci/Tech\n", encoding="utf-8")
    names = readers.read_label_names(str(classes), first_id=1)
    assert names == {"1": "World", "2": "Sports", "3": "Business", "4": "Sci/Tech"}
    got = read_classification_file(str(f), header=False, text_column=[1, 2], label_column=0, label_names=names)
    assert got == [
        TextExample("Wall St. Bears Claw Back Reuters - Short-sellers are seeing green again.", "Business"),
        TextExample("Carlyle Looks Toward Commercial Aerospace Reuters - Private investment firm Carlyle", "Sci/Tech"),
        TextExample("Phelps wins, again", "Sports"),  # an empty second text column adds nothing
    ]
    # without names: the ids as written; one text column by position
    assert [(e.text, e.label) for e in read_classification_file(str(f), header=False, text_column=1,
                                                               label_column=0)][:1] == [
        ("Wall St. Bears Claw Back", "3")]
    # a list of names or a mapping work the same
    assert readers.read_label_names(["a", "b"]) == {"0": "a", "1": "b"}
    assert readers.read_label_names({3: "x"}) == {"3": "x"}


def test_headerless_csv_errors_name_file_and_line(tmp_path):
    f = tmp_path / "train.csv"
    f.write_text(AG_NEWS_LIKE, encoding="utf-8")
    with pytest.raises(UserError, match=at(f, 3) + r"label '2' has no class name: the names given are for ids 3, 4"):
        read_classification_file(str(f), header=False, text_column=1, label_column=0,
                                 label_names={"3": "Business", "4": "Sci/Tech"})
    with pytest.raises(UserError, match=at(f, 1) + r"column position 5 is out of range: the first record has 3 "
                                                   r"columns \(positions 0 to 2\)"):
        read_classification_file(str(f), header=False, text_column=5, label_column=0)
    with pytest.raises(UserError, match=at(f, 1) + r"column 'text' is a name but the file has no header row"):
        read_classification_file(str(f), header=False, label_column=0)
    g = tmp_path / "bad.csv"
    g.write_text('"1","a","b"\n"2","c"\n', encoding="utf-8")
    with pytest.raises(UserError, match=at(g, 2) + r"2 field\(s\) but the first record has 3"):
        read_classification_file(str(g), header=False, text_column=1, label_column=0)
    # positions also work with a header row
    h = tmp_path / "h.csv"
    h.write_text("label,title,body\npos,Good,very\n", encoding="utf-8")
    assert read_classification_file(str(h), text_column=[1, "body"], label_column="label") == [
        TextExample("Good very", "pos")]
    dup = tmp_path / "dup.txt"
    dup.write_text("a\na\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"dup\.txt: class names repeat"):
        readers.read_label_names(str(dup))
