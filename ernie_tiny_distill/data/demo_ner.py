"""Demo NER sentences: CoNLL-style tokens and IOB2 tags filled into templates from word lists."""
from __future__ import annotations

import random
from typing import Dict, List, Optional, Set, Tuple

from ernie_tiny_distill.data.demo_common import WORDS, held_out, pick

_N = WORDS["ner"]
_AMBIGUOUS = set(_N["ambiguous"])  # both a person and a place/organisation: context must decide
_FIRST, _LAST = _N["first_names"], _N["last_names"]
_CITIES, _COUNTRIES, _COMPANIES, _CLUBS = _N["cities"], _N["countries"], _N["companies"], _N["clubs"]
_ORGS, _NATIONALITIES, _EVENTS, _LANGUAGES = _N["organisations"], _N["nationalities"], _N["events"], _N["languages"]
_DAYS, _MONTHS = _N["days"], _N["months"]

# slot -> (entity type, list); number-like slots are handled in _fill_slot.
_ENTITY_SLOTS: Dict[str, Tuple[str, List[str]]] = {
    "CITY": ("LOC", _CITIES),
    "COUNTRY": ("LOC", _COUNTRIES),
    "COMPANY": ("ORG", _COMPANIES),
    "CLUB": ("ORG", _CLUBS),
    "ORGN": ("ORG", _ORGS),
    "NAT": ("MISC", _NATIONALITIES),
    "EVENT": ("MISC", _EVENTS),
    "LANG": ("MISC", _LANGUAGES),
}

_NER_TEMPLATES = _N["templates"]  # pre-tokenized CoNLL style: punctuation and 's are separate tokens


def _fill_slot(rng: random.Random, slot: str, banned: Set[str]) -> Tuple[List[str], Optional[str]]:
    """Tokens for one template slot and their entity type (None for non-entities)."""
    if slot == "PER" or slot == "PERF" or slot == "LASTN":
        last = pick(rng, _LAST, banned)
        if slot == "LASTN":
            return [last], "PER"
        r = rng.random()
        if slot == "PER" and r < 0.3:
            return [last], "PER"
        if r > 0.92:
            return [pick(rng, _FIRST, banned)[0] + ".", last], "PER"
        return [pick(rng, _FIRST, banned), last], "PER"
    if slot in _ENTITY_SLOTS:
        etype, items = _ENTITY_SLOTS[slot]
        return pick(rng, items, banned).split(), etype
    if slot == "NUM":
        return [str(rng.choice([rng.randint(2, 30), rng.randint(30, 900)]))], None
    if slot == "PCT":
        return [rng.choice([str(rng.randint(1, 15)), f"{rng.randint(0, 9)}.{rng.randint(1, 9)}"])], \
            None
    if slot == "MONEY":
        return [f"{rng.randint(1, 950)}.{rng.randint(1, 9)}", rng.choice(["million", "billion"])], \
            None
    if slot == "SCORE":
        return [f"{rng.randint(0, 5)}-{rng.randint(0, 4)}"], None
    if slot == "SET":
        return [rng.choice(["6-3", "6-4", "7-5", "6-2", "7-6", "3-6", "4-6", "6-1"])], None
    if slot == "DAY":
        return [rng.choice(_DAYS)], None
    if slot == "MONTH":
        return [rng.choice(_MONTHS)], None
    if slot == "YEAR":
        return [str(rng.randint(1990, 2024))], None
    if slot == "MM":
        return [f"{rng.randint(1, 12):02d}"], None
    if slot == "DD":
        return [f"{rng.randint(1, 28):02d}"], None
    raise KeyError(slot)


def _ner_sentence(rng: random.Random, banned: Set[str]) -> Tuple[List[str], List[str]]:
    for _ in range(200):
        template = rng.choice(_NER_TEMPLATES)
        tokens: List[str] = []
        tags: List[str] = []
        for piece in template.split(" "):
            if piece.startswith("{") and piece.endswith("}") and piece.count("{") == 1:
                words, etype = _fill_slot(rng, piece[1:-1], banned)
                for j, word in enumerate(words):
                    tokens.append(word)
                    tags.append("O" if etype is None else ("B-" if j == 0 else "I-") + etype)
            elif "{" in piece:
                # A single token built from several slots (a date like 2004-03-17): never an entity.
                text = piece
                while "{" in text:
                    start = text.index("{")
                    end = text.index("}", start)
                    words, _ = _fill_slot(rng, text[start + 1:end], banned)
                    text = text[:start] + "".join(words) + text[end + 1:]
                tokens.append(text)
                tags.append("O")
            else:
                tokens.append(piece)
                tags.append("O")
        if 6 <= len(tokens) <= 25:
            return tokens, tags
    raise RuntimeError("demo NER generator failed to satisfy its constraints")  # a bug


def ner_split(rng: random.Random, n: int, banned: Set[str], seen: Set[str]
               ) -> List[Tuple[List[str], List[str]]]:
    out = []
    while len(out) < n:
        tokens, tags = _ner_sentence(rng, banned)
        key = " ".join(tokens)
        if key in seen:  # short templates can repeat; keep splits disjoint
            continue
        seen.add(key)
        out.append((tokens, tags))
    return out


# ---------------------------------------------------------------------------------------------
# Writing.
# ---------------------------------------------------------------------------------------------


def ner_banned() -> Set[str]:
    words: Set[str] = set()
    for items in (_FIRST, _LAST, _CITIES, _COUNTRIES, _COMPANIES, _CLUBS, _ORGS, _NATIONALITIES,
                  _EVENTS, _LANGUAGES):
        words |= held_out(items, keep=_AMBIGUOUS)
    return words
