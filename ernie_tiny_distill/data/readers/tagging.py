"""Tagging files: CoNLL (token first, IOB tag last; IOB1 converted to IOB2) and PaddleNLP's MSRA TSV."""
from __future__ import annotations

import logging
import re
from typing import List

from ernie_tiny_distill.data.examples import TaggedSentence
from ernie_tiny_distill.data.readers.text import check_choice, decode_bytes, lines, read_bytes, show
from ernie_tiny_distill.errors import UserError, location

logger = logging.getLogger(__name__)

IOB_REPAIR = ("convert", "reject")
CONLL_HINT = (
    "expected a CoNLL file: one token per line, token first and IOB tag last (e.g. `word POS chunk NER`), "
    "a blank line between sentences; CoNLL-2003 train.txt/valid.txt/test.txt can be fetched when online "
    "with paddlenlp.datasets.load_dataset('conll2003') (Hugging Face hub) and saved in that layout"
)

_TAG = re.compile(r"^(O|[BI]-\S+)$")
_COLUMNS = re.compile(r"[ \t]+")
_TAG_EXPECTED = "expected 'O' or 'B-TYPE' / 'I-TYPE' (IOB1 or IOB2)"


def _check_tag(tag: str, where: str, line: str, what: str = "the last column") -> None:
    if not _TAG.match(tag):
        raise UserError(f"bad tag {tag!r} in {what} of line {show(line)}: {_TAG_EXPECTED}", where=where)


def _iob1_starts(tags: List[str]) -> List[int]:
    """Positions of I-X tags that start an entity (allowed in IOB1, not in IOB2)."""
    starts = []
    prev = "O"  # a sentence start behaves like a preceding O
    for i, tag in enumerate(tags):
        if tag.startswith("I-") and (prev == "O" or prev[2:] != tag[2:]):
            starts.append(i)
        prev = tag
    return starts


def read_conll(path, *, iob_repair: str = "convert", encoding_errors: str = "replace",
               encoding: str = "utf-8") -> List[TaggedSentence]:
    """CoNLL sentences: token = first column, tag = last column (`word TAG` files too); IOB1 converted to IOB2
    (or rejected)."""
    check_choice("iob_repair", iob_repair, IOB_REPAIR)
    raw = read_bytes(path, what="CoNLL file", hint=CONLL_HINT)
    text = decode_bytes(raw, where=str(path), encoding_errors=encoding_errors, encoding=encoding)

    sentences: List[TaggedSentence] = []
    tokens: List[str] = []
    tags: List[str] = []
    line_nos: List[int] = []
    lines_text: List[str] = []
    converted = 0

    def flush() -> None:
        nonlocal converted
        if not tokens:
            return
        for i in _iob1_starts(tags):
            if iob_repair == "reject":
                before = "the sentence start" if i == 0 else repr(tags[i - 1])
                raise UserError(
                    f"tag {tags[i]!r} starts an entity (after {before}) in line {show(lines_text[i])}: "
                    f"this is IOB1; expected IOB2, where every entity starts with 'B-{tags[i][2:]}'",
                    where=location(str(path), line_nos[i]),
                    hint="pass iob_repair='convert' to convert IOB1 to IOB2",
                )
            tags[i] = "B-" + tags[i][2:]
            converted += 1
        sentences.append(TaggedSentence(list(tokens), list(tags)))
        for buf in (tokens, tags, line_nos, lines_text):
            buf.clear()

    for line_no, line in lines(text):
        stripped = line.strip(" \t")
        if not stripped:
            flush()
            continue
        cols = _COLUMNS.split(stripped)
        if cols[0] == "-DOCSTART-":
            flush()  # document boundaries also end a sentence
            continue
        where = location(str(path), line_no)
        if len(cols) < 2:
            raise UserError(
                f"only one column in line {show(line)}: expected at least 2 columns separated by spaces or tabs "
                "(token first, tag last)",
                where=where,
                hint=CONLL_HINT,
            )
        _check_tag(cols[-1], where, line)
        tokens.append(cols[0])
        tags.append(cols[-1])
        line_nos.append(line_no)
        lines_text.append(line)
    flush()

    if not sentences:
        raise UserError("no sentences: the file is empty (or has only -DOCSTART- and blank lines)",
                        where=str(path), hint=CONLL_HINT)
    if converted:
        logger.warning("%s: converted %d IOB1 tag(s) to IOB2 (an I-X that starts an entity became B-X)",
                       path, converted)
    return sentences


_MSRA_HEADER = "text_a\tlabel"
_MSRA_SEP = "\002"


def read_msra(path, *, encoding_errors: str = "replace", encoding: str = "utf-8") -> List[TaggedSentence]:
    """PaddleNLP msra_ner/peoples_daily_ner TSV: chars joined by U+0002, a tab, tags joined by U+0002."""
    text = decode_bytes(read_bytes(path, what="MSRA-format file"), where=str(path), encoding_errors=encoding_errors,
                        encoding=encoding)
    expected = "expected `chars<TAB>tags` with the characters and the tags each joined by U+0002"
    sentences = []
    for line_no, line in lines(text):
        if line_no == 1 and line.strip() == _MSRA_HEADER:
            continue
        if not line.strip():
            continue
        where = location(str(path), line_no)
        fields = line.split("\t")
        if len(fields) != 2:
            raise UserError(f"{len(fields)} tab-separated field(s) in line {show(line)}: {expected}", where=where)
        chars, tags = fields[0].split(_MSRA_SEP), fields[1].split(_MSRA_SEP)
        if len(chars) != len(tags):
            raise UserError(
                f"{len(chars)} characters but {len(tags)} tags in line {show(line)}: "
                f"{expected}, one tag per character",
                where=where,
            )
        for tag in tags:
            _check_tag(tag, where, line, what="the tags")
        sentences.append(TaggedSentence(chars, tags))
    if not sentences:
        raise UserError("no sentences: the file is empty", where=str(path), hint=expected)
    return sentences
