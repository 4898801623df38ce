"""User data formats through the `data` config: `LABEL text` lines, encodings, CoNLL `word TAG` files, columns."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from ernie_tiny_distill.config import config_from_dict
from ernie_tiny_distill.data.examples import TextExample
from ernie_tiny_distill.data.load import load_splits
from ernie_tiny_distill.data.readers import read_classification_file, read_label_text
from ernie_tiny_distill.errors import UserError

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "datasets"


def cfg(tmp_path, task="classification", **data):
    return config_from_dict({"task": task, "stage": "teacher", "output_dir": str(tmp_path / "run"),
                             "model": {"teacher": "minilm"}, "data": data})


def write(path: Path, text, encoding="utf-8") -> str:
    path.write_bytes(text if isinstance(text, bytes) else text.encode(encoding))
    return str(path)


def test_label_text_lines_take_the_first_field_as_label(tmp_path):
    f = write(tmp_path / "q.label", "NUM:dist How far is it ?\n\nHUM:ind\tWho  was   Galileo ?\r\n")
    assert read_label_text(f) == [TextExample("How far is it ?", "NUM:dist"),
                                  TextExample("Who was Galileo ?", "HUM:ind")]


def test_label_text_line_without_text_is_an_error_naming_the_line(tmp_path):
    f = write(tmp_path / "q.label", "NUM:dist How far ?\nLOC:city\n")
    with pytest.raises(UserError, match=re.escape(f"{f}:2: a label but no text in line 'LOC:city'")):
        read_label_text(f)
    assert read_label_text(f, skip_empty=True) == [TextExample("How far ?", "NUM:dist")]


def test_label_text_ids_get_class_names(tmp_path):
    f = write(tmp_path / "q.label", "1 first text\n2 second text\n3 third\n")
    assert [ex.label for ex in read_label_text(f, label_names={"1": "World", "2": "Sports", "3": "Tech"})] == [
        "World", "Sports", "Tech"]
    with pytest.raises(UserError, match=re.escape(f"{f}:3: label '3' has no class name: the names given are for ids "
                                                  "1, 2")):
        read_label_text(f, label_names={"1": "World", "2": "Sports"})


def test_label_separator_keeps_the_coarse_label(tmp_path):
    train = write(tmp_path / "train.label", "NUM:dist a\nNUM:date b\nHUM:ind c\nHUM:gr d\nLOC:city e\n")
    test = write(tmp_path / "test.label", "LOC:other f\nNUM:count g\n")
    splits = load_splits(cfg(tmp_path, format="label_text", train_file=train, dev_file=train, test_file=test,
                             label_separator=":").data, "classification")
    assert splits.labels == ["HUM", "LOC", "NUM"]
    assert [ex.label for ex in splits.test] == ["LOC", "NUM"]
    fine = load_splits(cfg(tmp_path, format="label_text", train_file=train, dev_file=train).data, "classification")
    assert fine.labels == ["HUM:gr", "HUM:ind", "LOC:city", "NUM:date", "NUM:dist"]


def test_latin1_file_read_as_utf8_is_an_error_naming_file_line_and_data_encoding(tmp_path):
    train = write(tmp_path / "train.label", "A:x first\nB:y a sister\xe9city\nA:z third\n", encoding="latin-1")
    data = cfg(tmp_path, format="label_text", train_file=train).data
    with pytest.raises(UserError) as err:
        load_splits(data, "classification")
    first_line = str(err.value).splitlines()[0]
    assert first_line == (f"{train}:2: not valid UTF-8: byte 0xe9 at byte offset 22 (invalid continuation byte) "
                          "in line 'B:y a sister\ufffdcity'")
    assert "data.encoding=latin-1" in str(err.value)
    splits = load_splits(cfg(tmp_path, format="label_text", train_file=train, dev_file=train,
                             encoding="latin-1").data, "classification")
    assert splits.train[1] == TextExample("a sister\xe9city", "B:y")


def test_replace_is_an_explicit_choice_that_warns(tmp_path, caplog):
    train = write(tmp_path / "train.label", b"A x\nB bad \xff byte\n")
    splits = load_splits(cfg(tmp_path, format="label_text", train_file=train, dev_file=train,
                             encoding_errors="replace").data, "classification")
    assert splits.train[1].text == "bad \ufffd byte"
    assert "replaced 1 byte(s) that are not valid UTF-8 with U+FFFD (first at line 2)" in caplog.text


def test_unknown_encoding_names_the_key(tmp_path):
    with pytest.raises(UserError, match="config key 'data.encoding' is 'latin-9x', which is not a text encoding"):
        cfg(tmp_path, format="label_text", train_file="x", encoding="latin-9x")


def test_encoding_reaches_every_reader(tmp_path):
    conll = write(tmp_path / "train.txt", "Zürich B-LOC\nis O\n\nnice O\nMüller B-PER\n", encoding="cp1252")
    with pytest.raises(UserError, match=re.escape(f"{conll}:1: not valid UTF-8")):
        load_splits(cfg(tmp_path, "ner", format="conll", train_file=conll, dev_file=conll).data, "ner")
    ner = load_splits(cfg(tmp_path, "ner", format="conll", train_file=conll, dev_file=conll,
                          encoding="cp1252").data, "ner")
    assert ner.train[0].tokens == ["Zürich", "is"]
    csv = write(tmp_path / "t.csv", "text,label\ncafé,a\nthé,b\n", encoding="latin-1")
    cls = load_splits(cfg(tmp_path, format="csv", train_file=csv, dev_file=csv, encoding="latin-1").data,
                      "classification")
    assert [ex.text for ex in cls.train] == ["café", "thé"]


def test_word_tag_files_read_as_conll_from_explicit_train_and_test_files(tmp_path):
    # MIT Restaurant's layout: `word TAG`, no POS columns, blank lines between sentences, no dev file
    sentences = [f"cheap B-Price\n{w} B-Cuisine\nfood O\nfive B-Rating\nstar I-Rating\n\n"
                 for w in ["thai", "greek", "indian", "korean", "cuban"]]
    train = write(tmp_path / "mit_train.txt", "".join(sentences) * 4)
    test = write(tmp_path / "mit_test.txt", "a O\nfour B-Rating\nstar I-Rating\nplace O\n")
    splits = load_splits(cfg(tmp_path, "ner", format="conll", train_file=train, test_file=test).data, "ner")
    assert (len(splits.train), len(splits.dev), len(splits.test)) == (18, 2, 1)
    assert splits.test[0].tags == ["O", "B-Rating", "I-Rating", "O"]


def test_per_file_text_columns(tmp_path):
    train = write(tmp_path / "train.csv", "sentence,label\ngood,pos\nbad,neg\n")
    dev = write(tmp_path / "dev.csv", "id,content,label\n1,fine,pos\n2,awful,neg\n")
    test = write(tmp_path / "test.csv", "content,label\nok,pos\n")
    splits = load_splits(cfg(tmp_path, format="csv", train_file=train, dev_file=dev, test_file=test,
                             text_column="sentence", dev_text_column="content", test_text_column="content").data,
                         "classification")
    assert [ex.text for ex in splits.dev] == ["fine", "awful"] and splits.test == [TextExample("ok", "pos")]
    with pytest.raises(UserError, match=re.escape(f"{dev}:1: no column 'sentence' in the header")):
        load_splits(cfg(tmp_path, format="csv", train_file=train, dev_file=dev, text_column="sentence").data,
                    "classification")


def test_column_positions_work_in_files_with_a_header(tmp_path):
    f = write(tmp_path / "t.tsv", "id\tlabel\ttitle\tbody\n7\tpos\tGreat\tloved it\n")
    assert read_classification_file(f, text_column=[2, 3], label_column=1) == [TextExample("Great loved it", "pos")]
    with pytest.raises(UserError, match=re.escape(f"{f}:1: column position 4 is out of range: the header has 4")):
        read_classification_file(f, text_column=4, label_column=1)


@pytest.mark.skipif(not (SHARED / "trec").is_dir(), reason="../shared/datasets/trec not present")
def test_real_trec_reads_with_latin1_and_six_coarse_labels(tmp_path):
    trec = SHARED / "trec"
    data = dict(format="label_text", train_file=str(trec / "train_5500.label"), test_file=str(trec / "TREC_10.label"))
    with pytest.raises(UserError, match=r"train_5500\.label:66: not valid UTF-8: byte 0xf0"):
        load_splits(cfg(tmp_path, **data).data, "classification")
    splits = load_splits(cfg(tmp_path, encoding="latin-1", label_separator=":", **data).data, "classification")
    assert splits.labels == ["ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"]
    assert (len(splits.train), len(splits.dev), len(splits.test)) == (4907, 545, 500)


@pytest.mark.skipif(not (SHARED / "mit_restaurant").is_dir(), reason="../shared/datasets/mit_restaurant not present")
def test_real_mit_restaurant_reads_from_explicit_files(tmp_path):
    mit = SHARED / "mit_restaurant"
    splits = load_splits(cfg(tmp_path, "ner", format="conll", train_file=str(mit / "train.txt"),
                             test_file=str(mit / "test.txt")).data, "ner")
    assert len(splits.train) + len(splits.dev) == 7660 and len(splits.test) == 1521
    assert {t[2:] for t in splits.labels if t != "O"} == {"Amenity", "Cuisine", "Dish", "Hours", "Location", "Price",
                                                            "Rating", "Restaurant_Name"}
