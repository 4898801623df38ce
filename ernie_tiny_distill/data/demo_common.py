"""Word lists and sampling helpers shared by the demo data generators (demo_reviews, demo_ner)."""
from __future__ import annotations

import json
import random
from importlib import resources
from typing import Sequence, Set

# Share of labeled reviews that are deliberately ambiguous or mislabeled, like real crowd labels.
NOISE_RATE = 0.05

WORDS = json.loads(resources.files("ernie_tiny_distill.data").joinpath("demo_words.json").read_text(encoding="utf-8"))


def held_out(items: Sequence[str], keep: Set[str] = frozenset()) -> Set[str]:
    """Every fifth item never appears in train, so the test set has words a tiny student has not
    seen while a pretrained teacher still knows them; the transfer set (unlabeled) contains them,
    which is exactly where distillation helps. `keep` items stay in train (ambiguous words must be
    seen in both roles to be learnable)."""
    return {w for i, w in enumerate(items) if i % 5 == 4 and w not in keep}


def pick(rng: random.Random, items: Sequence[str], banned: Set[str]) -> str:
    """Choose from `items`, skipping `banned` (the held-out words when generating train)."""
    pool = [w for w in items if w not in banned] if banned else items
    return rng.choice(pool)


def cap(text: str) -> str:
    return text[:1].upper() + text[1:]


