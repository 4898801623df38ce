"""The serving word splitter: words and their offsets in the original text (deploy/words.py)."""
from __future__ import annotations

import pytest

from ernie_tiny_distill.deploy import words as words_mod
from ernie_tiny_distill.deploy.words import split_words, words_and_offsets


@pytest.mark.parametrize("text", [
    "Angela Merkel visited the U.S. on Monday, didn't she? Germany's O'Neill won 6-4 (3.5%) on 1996-08-30.",
    "  leading and trailing  ", "tabs\tand\nnew\r\nlines", "naïve café — “quoted” … ‘single’",
    "北京欢迎你！Tokyo", "zero\u200bwidth and \ufffd replacement \x00 nul", "emoji 😀 ok", "", " \t\n ",
    "a-b-c-d-e-f-g-h", "...!!!???", "e.g. U.K. Mr. Smith's car isn't red",
])
def test_split_words_offsets_index_the_original(text):
    words = split_words(text)
    end = 0
    for word, start, stop in words:
        # the word as written, less the characters the tokenizer deletes (here U+200B and U+0000)
        assert text[start:stop].replace("\u200b", "").replace("\x00", "") == word
        assert start >= end and word.strip() == word and word
        end = stop
    covered = {i for _, s, e in words for i in range(s, e)}
    for i, ch in enumerate(text):  # every visible character the tokenizer keeps is in a word
        if not ch.isspace() and ch not in "\u200b\ufffd\x00":
            assert i in covered, (text, i, ch)


ASCII_TRICKS = ["The U.S. team's coach didn't say, (Reuters) 1-0 O'Neill.", "can't WON'T y'all rock'n'roll 'quoted'",
                "e.g. a.b.c. x_y __init__ 3.5% 1,000,000 me@x.org a/b-c:d&e", "DON'T Isn't it? I'M THEY'RE",
                "tab\there\x1cfile-sep", "ends with n't", "n't alone", "x" * 300]


@pytest.mark.parametrize("text", ASCII_TRICKS)
def test_the_ascii_word_regex_splits_as_the_unicode_one(text):
    """Clean ASCII text takes a faster regex with an explicit word class; the words must not change."""
    assert words_mod._CONLL_ASCII_RE.findall(text) == words_mod._CONLL_RE.findall(text)


@pytest.mark.parametrize("text", ASCII_TRICKS + ["naïve café didn't", "zero\u200bwidth", "bell\x07 here", ""])
def test_words_and_offsets_are_split_words_as_two_lists(text):
    split = split_words(text)
    assert words_and_offsets(text) == ([w for w, _, _ in split], [(a, b) for _, a, b in split])


def test_split_words_conll_style():
    words = [w for w, _, _ in split_words("The U.S. team's coach didn't say, (Reuters) 1-0 O'Neill.")]
    assert words == ["The", "U.S.", "team", "'s", "coach", "did", "n't", "say", ",", "(", "Reuters", ")", "1-0",
                     "O'Neill", "."]
