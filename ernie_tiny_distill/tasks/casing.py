"""Case ids for uncased encoders: the letter case of each word, given to the model as its token type.

An uncased tokenizer lower-cases every word, so "Apple" and "apple" reach the model as the same pieces. With
model.case_ids the token-type embedding (unused by single-text tasks) carries one of four case classes instead.
The class is the word's, given to each of its pieces: pieces come from lower-cased text (their own case is
lost), and a word's case is what marks a name ("McDonald" is mixed, though its piece "##ald" looks lower).
"""
from __future__ import annotations

from typing import List, Optional, Sequence

LOWER, TITLE, UPPER, MIXED = 0, 1, 2, 3  # LOWER also for a word without cased letters (digits, punctuation)
CASE_CLASSES = 4  # rows of the token-type embedding of a model trained with case ids


def case_class(word: str) -> int:
    """The case class of a word from its cased letters: all lower (or none) 0, first upper and the rest lower 1
    (a single capital too: "I", "A."), all upper 2 ("USA", "U.S."), anything else 3 ("McDonald", "iPhone")."""
    upper = [c.isupper() for c in word if c.isupper() or c.islower()]
    if not any(upper):
        return LOWER
    if all(upper):
        return UPPER if len(upper) > 1 else TITLE
    if upper[0] and not any(upper[1:]):
        return TITLE
    return MIXED


def piece_types(pieces: Sequence[List[int]], cases: Optional[Sequence[int]]) -> List[int]:
    """Token type ids of [CLS] pieces [SEP]: each piece its word's case class, or all 0 without case ids."""
    if cases is None:  # the common case, on the serving path: no per-word loop
        return [0] * (sum(map(len, pieces)) + 2)
    types = [0]
    for case, word_pieces in zip(cases, pieces):
        types += [case] * len(word_pieces)
    return types + [0]
