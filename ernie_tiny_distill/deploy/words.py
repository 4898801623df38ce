"""Serving word splitters: raw text -> (word, start, end) with offsets into the original string.

Text is cleaned and NFC-normalised before splitting: characters the tokenizer deletes (control and format
characters such as U+200B, U+0000) are dropped, so "Ber\u200blin" is one word; a decomposed "Ge\u0301rard"
is one word, as its composed form is; combining marks NFC cannot compose ("O\u0323\u0300s\u0323un") stay in
their word, and marks after punctuation join it (a run of marks is never a run of words). Offsets still index
the original string, so original[start:end] is the word before normalisation, and no two words overlap.
Splitters (recorded in export.json as "word_splitter", chosen with tools/export.py --word-splitter):
- "conll" (default): CoNLL-2003 tokens: whitespace separates words; punctuation stands alone except
  inside words (U.S., 1996-08-30, O'Neill, 3.5); clitics 's n't 're 've 'll 'd 'm are split off; CJK
  characters are single words.
- "tweet": as "conll", but URLs, @mentions, #hashtags, HTML entities (&amp;) and emoticons stay whole.
- "whitespace": words are what whitespace separates (for data that was tokenized that way).
"""
from __future__ import annotations

import re
import unicodedata
from typing import Callable, Dict, List, Tuple

Word = Tuple[str, int, int]

_CJK = ("\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3040-\u30ff\uac00-\ud7af"
        "\U00020000-\U0002a6df\U0002a700-\U0002ebef\U00030000-\U0003134f")
_W = rf"[^\W{_CJK}]"  # a word character that is not CJK
_CLITIC = r"(?:'|\u2019)(?:s|re|ve|ll|d|m)(?![^\W_])"


def _conll_pattern(w: str) -> str:
    """The conll splitter's regex, `w` being one word character (CJK characters are words of their own)."""
    return rf"""
    (?:[A-Za-z]\.){{2,}}(?![^\W_])                     # abbreviations: U.S. U.K. e.g.
    | {w}+(?=n(?:'|\u2019)t(?![^\W_]))                 # do|n't
    | n(?:'|\u2019)t(?![^\W_])                         # n't
    | {_CLITIC}                                        # 's 're 've 'll 'd 'm
    | {w}+(?:(?:[-.,/:&@]|(?:'|\u2019)(?!(?:s|re|ve|ll|d|m|t)(?![^\W_]))){w}+)*   # words, numbers
    | [{_CJK}]                                         # one CJK character
    | \S                                               # any other visible character (punctuation)
    """


_CONLL_RE = re.compile(_conll_pattern(_W), re.VERBOSE | re.IGNORECASE)
# the same words for ASCII text, faster (about 1.5x on CoNLL sentences): an explicit class is a bitmap test,
# [^\W...] a Unicode lookup; without re.ASCII, as \S must keep Python's meaning (\x1c-\x1f are whitespace)
_CONLL_ASCII_RE = re.compile(_conll_pattern("[A-Za-z0-9_]"), re.VERBOSE | re.IGNORECASE)
# ASCII characters the tokenizer deletes that Python does not count as whitespace (\x1c-\x1f are whitespace)
_ASCII_INVISIBLE = re.compile(r"[\x00-\x08\x0e-\x1b\x7f]")


def _clean_ascii(text: str) -> bool:
    """ASCII without a character the tokenizer deletes: nothing to drop or normalise (most requests)."""
    return text.isascii() and not _ASCII_INVISIBLE.search(text)

_TWEET_RE = re.compile(
    r"""
    (?:https?://|www\.)\S+                             # URLs
    | [@#]\w+                                          # @mentions, #hashtags
    | &(?:[A-Za-z]+|\#\d+);                            # HTML entities
    | (?<!\S)[:;=8][-'^]?[)(\]\[dDpP/\\|*oO3]+(?!\S)   # emoticons standing alone
    """,
    re.VERBOSE,
)


def _dropped(word: str) -> bool:
    """Characters the WordPiece tokenizer deletes (control/format characters, U+FFFD) never form a word."""
    return len(word) == 1 and (word == "\ufffd" or unicodedata.category(word).startswith("C"))


def _conll(text: str, base: int = 0) -> List[Word]:
    if _clean_ascii(text):  # no character here can be a dropped one
        return [(m.group(), base + m.start(), base + m.end()) for m in _CONLL_ASCII_RE.finditer(text)]
    return [(m.group(), base + m.start(), base + m.end()) for m in _CONLL_RE.finditer(text) if not _dropped(m.group())]


def _tweet(text: str) -> List[Word]:
    words, at = [], 0
    for m in _TWEET_RE.finditer(text):
        words += _conll(text[at:m.start()], at)
        words.append((m.group(), m.start(), m.end()))
        at = m.end()
    return words + _conll(text[at:], at)


def _whitespace(text: str) -> List[Word]:
    return [(m.group(), m.start(), m.end()) for m in re.finditer(r"\S+", text)]


SPLITTERS: Dict[str, Callable[[str], List[Word]]] = {"conll": _conll, "tweet": _tweet, "whitespace": _whitespace}
DEFAULT_SPLITTER = "conll"


def invisible(ch: str) -> bool:
    """A character the WordPiece tokenizer deletes: control/format (U+0000, U+200B, ...), not whitespace."""
    return unicodedata.category(ch) in ("Cc", "Cf") and not ch.isspace()


def is_blank(text: str) -> bool:
    """True when `text` has nothing a model can read: only whitespace, control/format characters and U+FFFD."""
    if text.isascii():
        if text.isprintable():  # the usual word: no control character to delete first
            return not text.strip()
        return not _ASCII_INVISIBLE.sub("", text).strip()
    return all(ch.isspace() or ch == "\ufffd" or invisible(ch) for ch in text)


def nfc_with_offsets(text: str) -> Tuple[str, List[int], List[int]]:
    """Invisible characters dropped, then NFC; per character of the result, the [start, end) of the original
    characters it came from."""
    if _clean_ascii(text):
        return text, list(range(len(text))), list(range(1, len(text) + 1))
    norm, starts, ends = [], [], []
    i = 0
    while i < len(text):
        if invisible(text[i]):
            i += 1
            continue
        j = i + 1
        while j < len(text) and unicodedata.combining(text[j]):
            j += 1  # a base character and the combining marks after it are normalised together
        group = unicodedata.normalize("NFC", text[i:j])
        if len(group) == j - i:  # nothing composed: each character keeps its own offset
            starts += range(i, j)
            ends += range(i + 1, j + 1)
        else:
            starts += [i] * len(group)
            ends += [j] * len(group)
        norm.append(group)
        i = j
    return "".join(norm), starts, ends


_WORD_CHAR = re.compile(_W)


def _shadow(norm: str) -> str:
    """`norm` with each combining mark after a word character replaced by a letter, so the splitters' word
    patterns (which do not count marks as word characters) keep the mark inside its word."""
    if norm.isascii():
        return norm
    out = list(norm)
    for k in range(1, len(out)):
        if unicodedata.category(out[k]).startswith("M") and _WORD_CHAR.match(out[k - 1]):
            out[k] = "a"
    return "".join(out)


def _glue_marks(norm: str, spans: List[Tuple[int, int]]) -> List[Tuple[int, int]]:
    """Spans with every span of combining marks only merged into the span it touches on its left."""
    out: List[Tuple[int, int]] = []
    for a, b in spans:
        if out and out[-1][1] == a and all(unicodedata.category(c).startswith("M") for c in norm[a:b]):
            out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return out


def words_and_offsets(text: str, splitter: str = DEFAULT_SPLITTER) -> Tuple[List[str], List[Tuple[int, int]]]:
    """split_words as two lists: the words, and per word its (start, end) in `text`."""
    if splitter == "conll" and _clean_ascii(text):
        # findall runs in C; as every visible character belongs to a word and no word holds whitespace, each
        # word starts at its first occurrence after the previous word
        words, offsets, at = _CONLL_ASCII_RE.findall(text), [], 0
        for w in words:
            at = text.find(w, at)
            offsets.append((at, at + len(w)))
            at += len(w)
        return words, offsets
    split = split_words(text, splitter)
    return [w for w, _, _ in split], [(a, b) for _, a, b in split]


def split_words(text: str, splitter: str = DEFAULT_SPLITTER) -> List[Word]:
    """Words of `text` as (NFC word, start, end); text[start:end] is the word as written (see module doc)."""
    try:
        split = SPLITTERS[splitter]
    except KeyError:
        from ernie_tiny_distill.errors import UserError

        raise UserError(f"unknown word splitter {splitter!r}; expected one of {', '.join(SPLITTERS)}") from None
    norm, starts, ends = nfc_with_offsets(text)
    if norm is text:
        return split(text)
    spans = _glue_marks(norm, [(a, b) for _, a, b in split(_shadow(norm))])
    return [(norm[a:b], starts[a], ends[b - 1]) for a, b in spans]
