"""The two in-memory example types every reader returns and every task consumes."""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional


@dataclass
class TextExample:
    """One document for classification; `label` is None for unlabeled text (stage 1, transfer set)."""

    text: str
    label: Optional[str] = None


@dataclass
class TaggedSentence:
    """One sentence for tagging: words and their IOB2 tags (`tags` is None for unlabeled sentences)."""

    tokens: List[str]
    tags: Optional[List[str]] = None
