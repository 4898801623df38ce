"""Tests for ernie_tiny_distill.data.readers on tag files (CoNLL, MSRA) and on decoding their bytes, on tiny
hand-written fixture files (plus an optional real-data check)."""
from __future__ import annotations

import logging

import pytest
from helpers import SHARED, at, needs_shared, warnings_of

from ernie_tiny_distill.data.examples import TaggedSentence
from ernie_tiny_distill.data.readers import decode_bytes, label_set, read_conll, read_msra
from ernie_tiny_distill.errors import UserError


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


# --------------------------------------------------------------------------- real data (optional)


@needs_shared
def test_real_conll2003_valid():
    sents = read_conll(str(SHARED / "conll2003" / "valid.txt"), iob_repair="reject")
    assert len(sents) == 3250
    assert set(label_set(sents)) <= {"O"} | {f"{p}-{t}" for p in "BI" for t in ("PER", "LOC", "ORG", "MISC")}
