"""Tests for ernie_tiny_distill.data.readers, on tiny hand-written fixture files (plus optional real-data checks)."""
from __future__ import annotations

import logging
import os
import re
import sys
import tarfile
import types
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

from ernie_tiny_distill.data import readers  # noqa: E402
from ernie_tiny_distill.data.examples import TaggedSentence, TextExample  # noqa: E402
from ernie_tiny_distill.data.readers import (  # noqa: E402
    check_labels_known,
    decode_bytes,
    label_set,
    read_classification_file,
    read_conll,
    read_imdb,
    read_msra,
    read_plain_text,
    split_train_dev,
)

# the module whose memo and one-pass read the IMDB tests patch: the attributes read_imdb really uses
from ernie_tiny_distill.data.readers import imdb as imdb_reader  # noqa: E402
from ernie_tiny_distill.errors import UserError  # noqa: E402

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "datasets"


def at(path, line=None):
    """Regex for the 'file:line: ' prefix of a UserError message."""
    return re.escape(f"{path}:{line}: " if line is not None else f"{path}: ")


def warnings_of(caplog):
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


# --------------------------------------------------------------------------- IMDB

IMDB_FILES = {
    "aclImdb/train/pos/10_9.txt": "Great<br /><br />movie,   truly.",
    "aclImdb/train/pos/2_8.txt": "Fine film<br/>overall",
    "aclImdb/train/pos/1_10.txt": "  Best\tever \n",
    "aclImdb/train/neg/12_2.txt": "Awful<BR>plot",
    "aclImdb/train/neg/3_1.txt": "Boring.",
    "aclImdb/train/unsup/40_0.txt": "unsup forty",
    "aclImdb/train/unsup/5_0.txt": "unsup five",
    "aclImdb/train/unsup/7_0.txt": "unsup<br />seven",
    "aclImdb/imdbEr.txt": "0.0\n",  # a non-review file of the official layout (urls_*.txt: see _imdb_archive)
    "aclImdb/test/pos/0_7.txt": "Test good",
    "aclImdb/test/neg/0_3.txt": "Test bad",
}
TRAIN_EXPECTED = [
    TextExample("Boring.", "neg"),
    TextExample("Awful plot", "neg"),
    TextExample("Best ever", "pos"),
    TextExample("Fine film overall", "pos"),
    TextExample("Great movie, truly.", "pos"),
]


def write_tree(root: Path, files: dict) -> None:
    for name, text in files.items():
        f = root / name
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(text, encoding="utf-8")


@pytest.fixture
def imdb_dir(tmp_path):
    root = tmp_path / "extracted"
    write_tree(root, IMDB_FILES)
    return root


@pytest.fixture
def imdb_tar(tmp_path, imdb_dir):
    tar_path = tmp_path / "aclImdb_v1.tar.gz"
    with tarfile.open(tar_path, "w:gz") as tar:
        tar.add(imdb_dir / "aclImdb", arcname="aclImdb")
    imdb_reader._imdb_tar_memo.clear()
    return tar_path


def test_imdb_tar_splits_order_labels_and_html(imdb_tar):
    assert read_imdb(str(imdb_tar), "train") == TRAIN_EXPECTED
    assert read_imdb(str(imdb_tar), "test") == [TextExample("Test bad", "neg"), TextExample("Test good", "pos")]
    assert read_imdb(str(imdb_tar), "unsup") == [
        TextExample("unsup five", None),
        TextExample("unsup seven", None),
        TextExample("unsup forty", None),
    ]


def test_imdb_extracted_folder_both_levels(imdb_dir):
    assert read_imdb(str(imdb_dir), "train") == TRAIN_EXPECTED
    assert read_imdb(str(imdb_dir / "aclImdb"), "train") == TRAIN_EXPECTED
    assert [e.text for e in read_imdb(str(imdb_dir / "aclImdb"), "unsup")] == [
        "unsup five", "unsup seven", "unsup forty"]


def test_imdb_tar_one_pass_memo_and_jsonl_cache(imdb_tar, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    calls = []
    real = imdb_reader._read_imdb_tar_all
    monkeypatch.setattr(imdb_reader, "_read_imdb_tar_all", lambda p: calls.append(p) or real(p))
    read_imdb(str(imdb_tar), "train", cache_dir=str(cache))
    read_imdb(str(imdb_tar), "test", cache_dir=str(cache))
    assert len(calls) == 1  # one pass served both splits
    assert len(imdb_reader._imdb_tar_memo) == 1  # ...and is remembered in the memo read_imdb consults
    assert sorted(f.name.split("-")[2] for f in cache.iterdir()) == ["test", "train", "unsup"]
    assert not [f for f in cache.iterdir() if f.name.endswith(".tmp")]

    # A fresh process (empty memo) reuses the JSONL cache without touching the tarball's contents.
    imdb_reader._imdb_tar_memo.clear()
    monkeypatch.setattr(imdb_reader, "_read_imdb_tar_all", lambda p: pytest.fail("tarball re-read"))
    assert read_imdb(str(imdb_tar), "train", cache_dir=str(cache)) == TRAIN_EXPECTED
    assert read_imdb(str(imdb_tar), "unsup", cache_dir=str(cache), limit=1) == [TextExample("unsup five")]
    assert imdb_reader._imdb_tar_memo == {}  # served by the cache files, not by the memo


def test_imdb_cache_is_keyed_by_content_not_mtime(imdb_tar, imdb_dir, tmp_path, monkeypatch):
    # the shared dataset is re-created each session (same bytes, new mtime): that must not add a new 130 MB
    # set of cache files every time; files of an older cache version or another tarball are pruned on write
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "imdb-v1-train-123-456.jsonl").write_text("{}\n", encoding="utf-8")  # an mtime-keyed file, version 1
    read_imdb(str(imdb_tar), "train", cache_dir=str(cache))
    first = sorted(f.name for f in cache.iterdir())
    assert len(first) == 3 and all(name.startswith("imdb-v2-") for name in first)

    os.utime(imdb_tar, ns=(1_000_000_000, 1_000_000_000))  # same bytes, another mtime
    imdb_reader._imdb_tar_memo.clear()
    imdb_reader._imdb_digest_memo.clear()
    monkeypatch.setattr(imdb_reader, "_read_imdb_tar_all", lambda p: pytest.fail("tarball re-read"))
    assert read_imdb(str(imdb_tar), "train", cache_dir=str(cache)) == TRAIN_EXPECTED
    assert sorted(f.name for f in cache.iterdir()) == first

    monkeypatch.undo()
    (imdb_dir / "aclImdb" / "test" / "neg" / "0_2.txt").write_text("Test worse", encoding="utf-8")  # new content
    with tarfile.open(imdb_tar, "w:gz") as tar:
        tar.add(imdb_dir / "aclImdb", arcname="aclImdb")
    imdb_reader._imdb_tar_memo.clear()
    assert read_imdb(str(imdb_tar), "test", cache_dir=str(cache))[0] == TextExample("Test worse", "neg")
    now = sorted(f.name for f in cache.iterdir())
    assert len(now) == 3 and not set(now) & set(first)  # one tarball's splits, the new one's


def test_imdb_limit_balanced_deterministic_prefix(tmp_path):
    files = {f"aclImdb/train/pos/{i}_8.txt": f"pos {i}" for i in range(8)}
    files.update({f"aclImdb/train/neg/{i}_2.txt": f"neg {i}" for i in range(3)})
    files.update({f"aclImdb/train/unsup/{i}_0.txt": f"u {i}" for i in range(5)})
    write_tree(tmp_path, files)
    four = read_imdb(str(tmp_path), "train", limit=4)
    assert Counter(e.label for e in four) == {"neg": 2, "pos": 2}
    assert read_imdb(str(tmp_path), "train", limit=4) == four
    eight = read_imdb(str(tmp_path), "train", limit=8)
    assert eight[:4] == four
    assert Counter(e.label for e in eight) == {"neg": 3, "pos": 5}  # neg runs out after 3
    assert len(read_imdb(str(tmp_path), "train", limit=100)) == 11
    assert [e.text for e in read_imdb(str(tmp_path), "unsup", limit=2)] == ["u 0", "u 1"]
    with pytest.raises(UserError, match="limit must be a positive integer"):
        read_imdb(str(tmp_path), "train", limit=0)


def test_imdb_bad_inputs(tmp_path, imdb_dir):
    missing = tmp_path / "nope.tar.gz"
    with pytest.raises(UserError, match=r"^IMDB data not found: .*nope\.tar\.gz") as err:
        read_imdb(str(missing), "train")
    assert "aclImdb/{train,test}/{pos,neg}/<id>_<rating>.txt" in str(err.value)
    assert "ai.stanford.edu/~amaas/data/sentiment" in str(err.value)
    with pytest.raises(UserError, match="split must be one of 'train', 'test', 'unsup'; got 'dev'"):
        read_imdb(str(imdb_dir), "dev")
    write_tree(tmp_path / "labeled_only", {"aclImdb/train/pos/1_9.txt": "ok", "aclImdb/train/neg/1_1.txt": "bad"})
    with pytest.raises(UserError, match=r"missing IMDB folder .*aclImdb/train/unsup for split 'unsup'"):
        read_imdb(str(tmp_path / "labeled_only"), "unsup")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="not an IMDB folder"):
        read_imdb(str(tmp_path / "empty"), "train")


def fake_paddlenlp(monkeypatch, load_dataset):
    pkg, sub = types.ModuleType("paddlenlp"), types.ModuleType("paddlenlp.datasets")
    sub.load_dataset = load_dataset
    pkg.datasets = sub
    monkeypatch.setitem(sys.modules, "paddlenlp", pkg)
    monkeypatch.setitem(sys.modules, "paddlenlp.datasets", sub)


def test_imdb_via_paddlenlp_maps_label_ids(monkeypatch):
    seen = []

    def load_dataset(name, splits=None):
        seen.append((name, splits))
        # PaddleNLP yields pos first and converts the "1"/"0" labels to ids via get_labels().
        return [{"text": "Nice<br /><br />one", "label": 1}, {"text": "Meh", "label": 0}]

    fake_paddlenlp(monkeypatch, load_dataset)
    assert read_imdb(None, "test") == [TextExample("Meh", "neg"), TextExample("Nice one", "pos")]
    assert seen == [("imdb", "test")]


def test_imdb_via_paddlenlp_offline_and_unsup(monkeypatch):
    def load_dataset(name, splits=None):
        raise ConnectionError("no network")

    fake_paddlenlp(monkeypatch, load_dataset)
    with pytest.raises(UserError, match=r"downloading IMDB .*failed \(ConnectionError: no network\)") as err:
        read_imdb(None, "train")
    assert "aclImdb_v1.tar.gz from https://ai.stanford.edu/~amaas/data/sentiment/" in str(err.value)
    with pytest.raises(UserError, match="only the 'train' and 'test' splits, no 'unsup'"):
        read_imdb(None, "unsup")


# --------------------------------------------------------------------------- CoNLL

CONLL = (
    "-DOCSTART- -X- -X- O\n"
    "\n"
    "EU NNP B-NP I-ORG\n"  # 3: IOB1 start -> B-ORG
    "rejects\tVBZ B-VP O\n"  # 4: tab and space mixed
    "German JJ\t B-NP  I-MISC\n"  # 5: -> B-MISC
    "call NN I-NP I-MISC\n"  # 6: continues the MISC entity
    ". . O O\n"
    "\n"
    "Peter NNP B-NP I-PER\n"  # 9: -> B-PER
    "Blackburn NNP I-NP I-PER\n"
    "Smith NNP I-NP B-PER\n"  # 11: IOB1 boundary between adjacent PER chunks: stays B-PER
    "Jones NNP I-NP I-PER\n"
    "in IN B-PP I-LOC\n"  # 13: type change -> B-LOC
    "\n"
    "-DOCSTART- -X- -X- O\n"
    "Bonn NNP B-NP I-LOC\n"  # 16: sentence start -> B-LOC
)


def test_conll_docstart_columns_crlf_bom_and_iob1_conversion(tmp_path, caplog):
    f = tmp_path / "iob1.txt"
    f.write_bytes(b"\xef\xbb\xbf" + CONLL.replace("\n", "\r\n").encode("utf-8"))
    with caplog.at_level(logging.WARNING, logger="ernie_tiny_distill.data.readers"):
        got = read_conll(str(f))
    assert got == [
        TaggedSentence(["EU", "rejects", "German", "call", "."], ["B-ORG", "O", "B-MISC", "I-MISC", "O"]),
        TaggedSentence(["Peter", "Blackburn", "Smith", "Jones", "in"], ["B-PER", "I-PER", "B-PER", "I-PER", "B-LOC"]),
        TaggedSentence(["Bonn"], ["B-LOC"]),
    ]
    assert warnings_of(caplog) == [f"{f}: converted 5 IOB1 tag(s) to IOB2 (an I-X that starts an entity became B-X)"]


def test_conll_iob2_input_unchanged_without_warning(tmp_path, caplog):
    f = tmp_path / "iob2.txt"
    f.write_text("EU B-ORG\nvisits O\nNew B-LOC\nYork I-LOC\n\n\n\nHi O\n", encoding="utf-8")
    with caplog.at_level(logging.WARNING):
        got = read_conll(str(f), iob_repair="reject")
    assert got == [TaggedSentence(["EU", "visits", "New", "York"], ["B-ORG", "O", "B-LOC", "I-LOC"]),
                   TaggedSentence(["Hi"], ["O"])]
    assert warnings_of(caplog) == []


def test_conll_reject_iob1_names_line(tmp_path):
    f = tmp_path / "iob1.txt"
    f.write_text("EU B-ORG\nrejects O\nPeter I-PER\n", encoding="utf-8")
    with pytest.raises(UserError, match=at(f, 3) + r"tag 'I-PER' starts an entity \(after 'O'\) in line 'Peter I-PER'"
                       r": this is IOB1; expected IOB2, where every entity starts with 'B-PER'") as err:
        read_conll(str(f), iob_repair="reject")
    assert "iob_repair='convert'" in str(err.value)


def test_conll_bad_tag_and_one_column(tmp_path):
    f = tmp_path / "bad.txt"
    f.write_text("John NNP B-PER\nSmith NNP X-PER\n", encoding="utf-8")
    with pytest.raises(UserError, match=at(f, 2) + r"bad tag 'X-PER' in the last column of line 'Smith NNP X-PER': "
                       r"expected 'O' or 'B-TYPE' / 'I-TYPE' \(IOB1 or IOB2\)"):
        read_conll(str(f))
    f.write_text("John B-PER\n\nlonely" + "x" * 200 + "\n", encoding="utf-8")
    with pytest.raises(UserError, match=at(f, 3) + r"only one column in line 'lonelyx+\.\.\.': expected at least 2 "
                       r"columns separated by spaces or tabs \(token first, tag last\)"):
        read_conll(str(f))


def test_conll_empty_missing_and_bad_option(tmp_path):
    f = tmp_path / "empty.txt"
    f.write_text("-DOCSTART- -X- -X- O\n\n  \n", encoding="utf-8")
    with pytest.raises(UserError, match=at(f) + r"no sentences: the file is empty"):
        read_conll(str(f))
    with pytest.raises(UserError, match=r"CoNLL file not found: .*missing\.txt") as err:
        read_conll(str(tmp_path / "missing.txt"))
    assert "load_dataset('conll2003')" in str(err.value)
    with pytest.raises(UserError, match="iob_repair must be one of 'convert', 'reject'; got 'fix'"):
        read_conll(str(f), iob_repair="fix")


def test_msra_format(tmp_path):
    f = tmp_path / "train.tsv"
    f.write_text("text_a\tlabel\n海\x02钓\x02比\x02赛\tO\x02O\x02B-LOC\x02I-LOC\n\n中\x02国\tB-LOC\x02I-LOC\n",
                 encoding="utf-8")
    assert read_msra(str(f)) == [
        TaggedSentence(["海", "钓", "比", "赛"], ["O", "O", "B-LOC", "I-LOC"]),
        TaggedSentence(["中", "国"], ["B-LOC", "I-LOC"]),
    ]
    f.write_text("text_a\tlabel\n中\x02国\tB-LOC\x02I-LOC\n中\x02国\x02人\tB-LOC\x02I-LOC\n", encoding="utf-8")
    with pytest.raises(UserError, match=at(f, 3) + r"3 characters but 2 tags in line"):
        read_msra(str(f))


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


# --------------------------------------------------------------------------- decoding


def test_decode_bytes_replace_counts_and_strict_locates(tmp_path, caplog):
    raw = b"ok\nbad \xff\xfe here\n"
    with caplog.at_level(logging.WARNING):
        assert decode_bytes(raw, where="f.txt", encoding_errors="replace") == "ok\nbad \ufffd\ufffd here\n"
    assert warnings_of(caplog) == [
        "f.txt: replaced 2 byte(s) that are not valid UTF-8 with U+FFFD (first at line 2); is the file UTF-8?"]
    with pytest.raises(UserError, match=r"^f\.txt:2: not valid UTF-8: byte 0xff at byte offset 7"):
        decode_bytes(raw, where="f.txt", encoding_errors="strict")
    # The offset counts from the start of the file, BOM included.
    with pytest.raises(UserError, match=r"f\.txt:2: not valid UTF-8: byte 0xe9 at byte offset 6"):
        decode_bytes(b"\xef\xbb\xbfab\n\xe9", where="f.txt", encoding_errors="strict")
    assert decode_bytes(b"\xef\xbb\xbfab", where="f.txt", encoding_errors="strict") == "ab"
    with pytest.raises(UserError, match="encoding_errors must be one of 'replace', 'strict'; got 'ignore'"):
        decode_bytes(b"", where="f.txt", encoding_errors="ignore")


def test_readers_use_decode_bytes(tmp_path):
    f = tmp_path / "latin1.conll"
    f.write_bytes("Bonn B-LOC\n\nMünchen B-LOC\n".encode("latin-1"))
    with pytest.raises(UserError, match=at(f, 3) + "not valid UTF-8"):
        read_conll(str(f), encoding_errors="strict")
    assert read_conll(str(f))[1].tokens == ["M\ufffdnchen"]


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


# --------------------------------------------------------------------------- real data (optional)

needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason=f"shared datasets not found at {SHARED}")


@needs_shared
def test_real_conll2003_valid():
    sents = read_conll(str(SHARED / "conll2003" / "valid.txt"), iob_repair="reject")
    assert len(sents) == 3250
    assert set(label_set(sents)) <= {"O"} | {f"{p}-{t}" for p in "BI" for t in ("PER", "LOC", "ORG", "MISC")}


@pytest.mark.slow  # one pass over the 56 MB tarball: ~5-6 s on a shared 2-core machine
@needs_shared
def test_real_imdb_test_counts():
    test = read_imdb(str(SHARED / "aclImdb_v1.tar.gz"), "test")
    assert Counter(e.label for e in test) == {"neg": 12500, "pos": 12499}
    assert not any("<br" in e.text for e in test[:500])


# ------------------------------------------------------------------ damaged or incomplete IMDB archives


def _imdb_archive(tmp_path, per_dir=60, drop=()):
    """A synthetic aclImdb tar.gz with urls_*.txt lists, `per_dir` reviews (of incompressible text) per directory."""
    import random as _random

    rng = _random.Random(0)
    root = tmp_path / "src"
    files = {}
    for top, label in (("train", "neg"), ("train", "pos"), ("train", "unsup"), ("test", "neg"), ("test", "pos")):
        files[f"aclImdb/{top}/urls_{label}.txt"] = "".join(f"http://x/{i}\n" for i in range(per_dir))
        for i in range(per_dir):
            name = f"aclImdb/{top}/{label}/{i}_{0 if label == 'unsup' else 7}.txt"
            if name not in drop:
                files[name] = " ".join(f"w{rng.randrange(10**6)}" for _ in range(60))
    write_tree(root, files)
    tar_path = tmp_path / "aclImdb_v1.tar.gz"
    with tarfile.open(tar_path, "w:gz") as tar:
        tar.add(root / "aclImdb", arcname="aclImdb")
    imdb_reader._imdb_tar_memo.clear()
    return tar_path


def test_imdb_tar_corrupted_in_the_middle_is_an_error_naming_the_file(tmp_path):
    tar_path = _imdb_archive(tmp_path)
    assert len(read_imdb(str(tar_path), "train")) == 120  # intact: every review
    raw = bytearray(tar_path.read_bytes())
    mid = len(raw) // 2
    raw[mid:mid + 2048] = bytes(b ^ 0x5A for b in raw[mid:mid + 2048])  # flip 2 KB in the middle
    tar_path.write_bytes(bytes(raw))
    imdb_reader._imdb_tar_memo.clear()
    for split in ("train", "unsup", "test"):
        with pytest.raises(UserError, match=r"aclImdb_v1\.tar\.gz: cannot read IMDB tarball, it is damaged"):
            read_imdb(str(tar_path), split)


def test_imdb_tar_truncated_is_an_error_naming_the_file(tmp_path):
    tar_path = _imdb_archive(tmp_path)
    raw = tar_path.read_bytes()
    tar_path.write_bytes(raw[: len(raw) - 4000])
    imdb_reader._imdb_tar_memo.clear()
    with pytest.raises(UserError, match=r"aclImdb_v1\.tar\.gz: cannot read IMDB tarball, it is damaged"):
        read_imdb(str(tar_path), "train")


def test_imdb_missing_reviews_are_an_error_with_counts(tmp_path):
    tar_path = _imdb_archive(tmp_path, drop={"aclImdb/train/pos/3_7.txt", "aclImdb/train/pos/41_7.txt"})
    with pytest.raises(UserError) as err:
        read_imdb(str(tar_path), "train")
    assert str(err.value).startswith(
        f"{tar_path}: incomplete IMDB data: aclImdb/train/pos/ has 58 of the 60 reviews its urls_pos.txt lists "
        "(missing 3_*.txt, 41_*.txt)")
    assert "train/neg 12,500, train/pos 12,500, train/unsup 50,000, test/neg 12,500, test/pos 12,500" in str(err.value)
    # the same check for an extracted folder
    with tarfile.open(tar_path) as tar:
        tar.extractall(tmp_path / "x")
    with pytest.raises(UserError, match=r"aclImdb/train/pos/ has 58 of the 60 reviews"):
        read_imdb(str(tmp_path / "x"), "train")


def test_imdb_known_missing_review_is_accepted_with_a_warning(tmp_path, caplog):
    # the shared copy lacks test/pos/7_9.txt (datasets README): 24,999 test reviews, said in the log
    tar_path = _imdb_archive(tmp_path, drop={"aclImdb/test/pos/7_7.txt"})
    assert len(read_imdb(str(tar_path), "test")) == 119
    assert "aclImdb/test/pos/ lacks review id(s) 7, known to be missing" in caplog.text
    assert "59 reviews instead of 60" in caplog.text


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


def test_imdb_cache_files_have_the_users_umask(imdb_tar, tmp_path):
    # the parsed-IMDB cache is written through mkstemp (0600); it gets 0666 & ~umask
    old = os.umask(0o022)
    try:
        read_imdb(str(imdb_tar), "train", cache_dir=str(tmp_path / "cache"))
    finally:
        os.umask(old)
    modes = {f.name: f.stat().st_mode & 0o777 for f in (tmp_path / "cache").iterdir()}
    assert len(modes) == 3 and set(modes.values()) == {0o644}
