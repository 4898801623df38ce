"""Procedurally generated demo data (sentiment reviews and CoNLL-style NER) for the quickstart."""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
from importlib import resources
from typing import Dict, List, Optional, Sequence, Set, Tuple

from ernie_tiny_distill.errors import UserError
from ernie_tiny_distill.util import fsutil

# Bump whenever the generators change, so a stale manifest never short-circuits a rewrite.
DEMO_DATA_VERSION = 2

# Relative paths of every file, keyed as in the returned dict.
_FILES: Dict[str, str] = {
    "sentiment_train": "sentiment/train.jsonl",
    "sentiment_dev": "sentiment/dev.jsonl",
    "sentiment_test": "sentiment/test.jsonl",
    "sentiment_unlabeled": "sentiment/unlabeled.txt",
    "ner_train": "ner/train.txt",
    "ner_dev": "ner/dev.txt",
    "ner_test": "ner/test.txt",
    "ner_unlabeled": "ner/unlabeled.txt",
}
_MANIFEST = "manifest.json"
_DEMO_ENTRIES = {_MANIFEST} | {rel.split("/")[0] for rel in _FILES.values()}

# Share of labeled reviews that are deliberately ambiguous or mislabeled, like real crowd labels.
_NOISE_RATE = 0.05


def _held_out(items: Sequence[str], keep: Set[str] = frozenset()) -> Set[str]:
    """Every fifth item never appears in train, so the test set has words a tiny student has not
    seen while a pretrained teacher still knows them; the transfer set (unlabeled) contains them,
    which is exactly where distillation helps. `keep` items stay in train (ambiguous words must be
    seen in both roles to be learnable)."""
    return {w for i, w in enumerate(items) if i % 5 == 4 and w not in keep}


def _pick(rng: random.Random, items: Sequence[str], banned: Set[str]) -> str:
    """Choose from `items`, skipping `banned` (the held-out words when generating train)."""
    pool = [w for w in items if w not in banned] if banned else items
    return rng.choice(pool)


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


# ---------------------------------------------------------------------------------------------
# Word lists and templates: ernie_tiny_distill/data/demo_words.json (package data; written for this project).
# ---------------------------------------------------------------------------------------------

_WORDS = json.loads(resources.files("ernie_tiny_distill.data").joinpath("demo_words.json").read_text(encoding="utf-8"))
_POLARITY = {"pos1": (1, 1), "pos2": (1, 2), "neg1": (-1, 1), "neg2": (-1, 2)}

_S = _WORDS["sentiment"]
_ASPECTS: Dict[str, Dict[str, List[str]]] = _S["aspects"]
_GEN = _S["general"]  # evaluative words usable with any aspect
_DEG = {_POLARITY[k]: v for k, v in _S["degree"].items()}  # degree adverbs by (polarity, strength)
_FILM = _S["films"]
_TAILS = _S["tails"]  # neutral tails that lengthen a sentence without changing its polarity
_SENT_PREFIX = _S["sentence_prefixes"]
_VERDICT = {_POLARITY[k]: v for k, v in _S["verdicts"].items()}  # weight is strength + 1: verdicts summarize
_PROFESSIONS, _PLOT_EVENTS, _SETTINGS = _S["professions"], _S["plot_events"], _S["settings"]
_WHEN, _WHOM, _FILLER_FIXED = _S["when"], _S["whom"], _S["filler"]


def _noun(rng: random.Random, aspect: str) -> Tuple[str, bool]:
    raw = rng.choice(_ASPECTS[aspect]["nouns"])
    return raw.rstrip("*"), raw.endswith("*")


def _be(plural: bool, tense: str) -> str:
    if tense == "past":
        return "were" if plural else "was"
    return "are" if plural else "is"


class _ReviewWriter:
    """Builds one review's sentences; `banned` holds the words held out of train."""

    def __init__(self, rng: random.Random, banned: Set[str]):
        self.rng = rng
        self.banned = banned
        self.tense = rng.choice(["present", "present", "past"])

    def adj(self, aspect: str, pol: int, strength: int) -> str:
        key = ("pos" if pol > 0 else "neg") + str(strength)
        # Mix aspect-specific and general words so adjectives are not tied to one aspect.
        items = _ASPECTS[aspect][key] + _GEN[key]
        word = _pick(self.rng, items, self.banned)
        if " " in word or "-" in word:
            return word  # already a graded phrase; a degree adverb would read badly
        return self.rng.choice(_DEG[(pol, strength)]) + word

    def clause(self, pol: int, strength: int, aspect: Optional[str] = None) -> str:
        """A lowercase evaluative clause such as 'the score is haunting'."""
        rng = self.rng
        aspect = aspect or rng.choice(list(_ASPECTS))
        noun, plural = _noun(rng, aspect)
        be = _be(plural, self.tense)
        if rng.random() < 0.2:
            vps = _ASPECTS[aspect]["pvp" if pol > 0 else "nvp"]
            vp = rng.choice(vps)
            if plural:
                vp = _plural_verb(vp)
            return f"{noun} {vp}"
        if rng.random() < 0.2:
            seem = "seem" if plural else "seems"
            seem = "seemed" if self.tense == "past" else seem
            return f"{noun} {seem} {self.adj(aspect, pol, strength)}"
        return f"{noun} {be} {self.adj(aspect, pol, strength)}"

    def evaluative(self, pol: int) -> Tuple[str, int]:
        rng = self.rng
        strength = rng.choice([1, 1, 2])
        form = rng.random()
        tail = " " + rng.choice(_TAILS) if rng.random() < 0.35 else ""
        if form < 0.35:
            text = _cap(rng.choice(_SENT_PREFIX) + self.clause(pol, strength)) + tail + "."
            return text, pol * strength
        if form < 0.5:
            aspect = rng.choice(list(_ASPECTS))
            noun, _ = _noun(rng, aspect)
            verb = "found" if self.tense == "past" else "find"
            return f"I {verb} {noun} {self.adj(aspect, pol, strength)}{tail}.", pol * strength
        if form < 0.7:
            a1, a2 = rng.sample(list(_ASPECTS), 2)
            s2 = rng.choice([1, 2])
            joiner = rng.choice([", and ", ", and ", " and ", ", while "])
            text = _cap(self.clause(pol, strength, a1) + joiner + self.clause(pol, s2, a2)) + "."
            return text, pol * (strength + s2)
        if form < 0.85:
            aspect = rng.choice(list(_ASPECTS))
            noun, plural = _noun(rng, aspect)
            be = _be(plural, self.tense)
            lead = rng.choice(["What really stands out is", "The highlight for me is",
                               "The thing I remember most is", "What matters most here is"])
            if pol < 0:
                lead = rng.choice(["The biggest problem is", "What lets it down is",
                                   "The weakest link is", "What sinks it is"])
            return f"{lead} {noun}, which {be} {self.adj(aspect, pol, strength)}.", pol * strength
        film = rng.choice(_FILM)
        be = _be(False, self.tense)
        return _cap(f"{film} {be} {self.adj(rng.choice(list(_ASPECTS)), pol, strength)}") + ".", \
            pol * strength

    def negated(self, pol: int) -> Tuple[str, int]:
        """Expresses `pol` by negating a word of the opposite polarity ('not bad', 'hardly great')."""
        rng = self.rng
        aspect = rng.choice(list(_ASPECTS))
        noun, plural = _noun(rng, aspect)
        be = _be(plural, self.tense)
        # The negated word has the opposite polarity; only single words read naturally here.
        prefix = "neg" if pol > 0 else "pos"
        candidates = [w for key in (prefix + "1", prefix + "2")
                      for w in _ASPECTS[aspect][key] + _GEN[key] if " " not in w]
        opp = _pick(rng, candidates, self.banned)
        if pol > 0:
            forms = [
                f"{noun} {be} not bad at all.",
                f"{noun} {be} never boring.",
                f"{noun} {be} far from {opp}.",
                f"there {'was' if self.tense == 'past' else 'is'} nothing {opp} about {noun}.",
                "I was never bored, not even for a minute.",
                f"I cannot say {noun} {be} {opp}.",
                f"{noun} never {'feel' if plural else 'feels'} {opp}.",
                f"not once did I find {noun} {opp}.",
                f"{rng.choice(_FILM)} is not without its charms.",
                "I could not find a single dull moment.",
                f"{noun} {be} not as {opp} as some reviews claim.",
            ]
        else:
            forms = [
                f"{noun} {be} not {opp}.",
                f"{noun} {be} hardly {opp}.",
                f"{noun} {be} not exactly {opp}.",
                f"I would not call {noun} {opp}.",
                f"nothing about {noun} {'feels' if self.tense == 'present' else 'felt'} {opp}.",
                f"{noun} never {'manage' if plural else 'manages'} to be {opp}.",
                "it is hardly worth it.",
                "sadly, it is hardly worth the effort.",
                f"{noun} {be} not nearly as {opp} as the trailer suggests.",
                "I never once cared about what happened next.",
                f"{noun} {be} no longer {opp} after the first ten minutes.",
            ]
        return _cap(rng.choice(forms)), pol

    def contrast(self, pol: int) -> Tuple[str, int]:
        """Two clauses of opposite polarity where the final one decides."""
        rng = self.rng
        s2 = rng.choice([1, 2, 2])
        a1, a2 = rng.sample(list(_ASPECTS), 2)  # two different aspects, never "the plot ... the plot"
        c1 = self.clause(-pol, rng.choice([1, 2]), a1)
        c2 = self.clause(pol, s2, a2)
        form = rng.random()
        if form < 0.15:
            early = rng.choice(["the first half", "the opening act", "the first hour",
                                "the set-up", "the beginning"])
            late = rng.choice(["the ending", "the final act", "the climax",
                               "the last twenty minutes", "the finale"])
            # (present, past) pairs describing the opening, opposite to the final verdict.
            openings = [("drags", "dragged"), ("is slow", "was slow"),
                        ("is a bit of a slog", "was a bit of a slog"),
                        ("takes its time", "took its time")] if pol > 0 else \
                [("is promising", "was promising"), ("is gripping", "was gripping"),
                 ("works well", "worked well"), ("is lots of fun", "was lots of fun")]
            slow = rng.choice(openings)[self.tense == "past"]
            return _cap(f"{early} {slow}, but {late} {_be(late.endswith('minutes'), self.tense)}"
                        f" {self.adj(rng.choice(list(_ASPECTS)), pol, s2)}") + ".", pol * s2
        if form < 0.25:
            w1 = self.adj(rng.choice(list(_ASPECTS)), -pol, 2)
            w2 = self.adj(rng.choice(list(_ASPECTS)), pol, s2)
            who = rng.choice(["Critics", "My friends", "Most reviews", "Everyone I know"])
            return f"{who} called it {w1}, but I found it {w2}.", pol * s2
        if form < 0.35:
            expect = "hate" if pol > 0 else "love"
            return f"I expected to {expect} it, but {c2}.", pol * s2
        if form < 0.55:
            return f"{_cap(c1)}, but {c2}.", pol * s2
        if form < 0.7:
            return f"Although {c1}, {c2}.", pol * s2
        if form < 0.8:
            return f"While {c1}, {c2}.", pol * s2
        if form < 0.9:
            return f"{_cap(c1)}; however, {c2}.", pol * s2
        return f"{_cap(c1)}. Still, {c2}.", pol * s2

    def filler(self) -> str:
        rng = self.rng
        form = rng.random()
        if form < 0.25:
            return f"The story follows a {rng.choice(_PROFESSIONS)} who {rng.choice(_PLOT_EVENTS)}."
        if form < 0.45:
            verb = rng.choice(["watched", "saw", "caught"])
            return f"I {verb} it {rng.choice(_WHEN)} with {rng.choice(_WHOM)}."
        if form < 0.6:
            return f"{_cap(rng.choice(_FILM))} is set in {rng.choice(_SETTINGS)}."
        return rng.choice(_FILLER_FIXED)

    def verdict(self, pol: int) -> Tuple[str, int]:
        strength = self.rng.choice([1, 2])
        return self.rng.choice(_VERDICT[(pol, strength)]), pol * (strength + 1)


def _plural_verb(vp: str) -> str:
    """'falls apart' -> 'fall apart', 'never comes' -> 'never come' (for plural subjects)."""
    words = vp.split()
    i = 1 if words[0] in ("never", "perfectly") else 0
    irregular = {"has": "have", "is": "are", "goes": "go", "flies": "fly", "carries": "carry",
                 "relies": "rely"}
    w = words[i]
    if w in irregular:
        words[i] = irregular[w]
    elif w.endswith("s") and not w.endswith("ss"):
        words[i] = w[:-1]
    return " ".join(words)


# Share of reviews that are one or two plain sentences (the way people write short comments), and the
# share of a long review's evaluative sentences that agree with its label.
_SHORT_RATE = 0.3
_MAJORITY_RATE = 0.85


def _short_review(rng: random.Random, pol: int, banned: Set[str]) -> str:
    """One or two evaluative sentences (6-40 words), all of the label's polarity."""
    for _ in range(500):
        w = _ReviewWriter(rng, banned)
        makers = [w.evaluative, w.evaluative, w.negated, w.verdict]
        parts = [rng.choice(makers)(pol) for _ in range(rng.choice([1, 2, 2]))]
        if len(parts) == 1 and parts[0][0] in (v for vs in _VERDICT.values() for v in vs):
            continue  # a verdict alone ("Seven out of ten.") is too short to be a review
        text = " ".join(t for t, _ in parts)
        if 6 <= len(text.split()) <= 40:
            return text
    raise RuntimeError("demo review generator failed to satisfy its constraints")  # a bug


def _review(rng: random.Random, pol: int, banned: Set[str], mixed: bool = False) -> str:
    """One review of 2-6 sentences and 30-120 words whose overall score has the sign of `pol`
    (or is exactly zero when `mixed`, for the deliberately ambiguous examples)."""
    for _ in range(500):
        w = _ReviewWriter(rng, banned)
        n_sent = rng.randint(2, 6)
        parts: List[Tuple[str, int]] = []
        has_verdict = rng.random() < 0.5 and n_sent >= 3
        n_filler = min(rng.choice([0, 0, 1, 1, 2]), n_sent - 1 - int(has_verdict))
        n_eval = n_sent - n_filler - int(has_verdict)
        for _ in range(n_eval):
            # Minority sentences of the opposite polarity keep bag-of-words shortcuts imperfect.
            p = pol if (mixed and rng.random() < 0.5) or (not mixed and rng.random() < _MAJORITY_RATE) \
                else -pol
            kind = rng.random()
            if kind < 0.5:
                parts.append(w.evaluative(p))
            elif kind < 0.75:
                parts.append(w.negated(p))
            else:
                parts.append(w.contrast(p))
        body = parts + [(w.filler(), 0) for _ in range(n_filler)]
        rng.shuffle(body)
        if n_filler and rng.random() < 0.5:
            # A neutral opener is the most common shape of a real review.
            fillers = [b for b in body if b[1] == 0]
            body.remove(fillers[0])
            body.insert(0, fillers[0])
        if has_verdict:
            body.append(w.verdict(pol if not mixed else rng.choice([1, -1])))
        score = sum(s for _, s in body)
        if mixed:
            if score != 0 or not any(s > 0 for _, s in body) or not any(s < 0 for _, s in body):
                continue
        elif score * pol < 1:
            continue
        text = " ".join(t for t, _ in body)
        if 30 <= len(text.split()) <= 120:
            return text
    raise RuntimeError("demo review generator failed to satisfy its constraints")  # a bug


def _sentiment_split(rng: random.Random, n: int, banned: Set[str], seen: Set[str],
                     labeled: bool) -> List[Tuple[str, Optional[str]]]:
    labels = ["pos" if i % 2 == 0 else "neg" for i in range(n)]
    rng.shuffle(labels)
    # Noisy examples are spread evenly over both classes so the balance stays exact.
    n_noisy = int(round(_NOISE_RATE * n)) if labeled else 0
    noisy: Set[int] = set()
    for lab in ("pos", "neg"):
        idx = [i for i, l in enumerate(labels) if l == lab]
        noisy.update(rng.sample(idx, min(len(idx), n_noisy // 2 + (lab == "pos") * (n_noisy % 2))))
    out: List[Tuple[str, Optional[str]]] = []
    for i, lab in enumerate(labels):
        pol = 1 if lab == "pos" else -1
        while True:
            if i in noisy and rng.random() < 0.5:
                text = _review(rng, -pol, banned)  # a plainly mislabeled review
            elif i in noisy:
                text = _review(rng, pol, banned, mixed=True)  # genuinely ambiguous
            elif rng.random() < _SHORT_RATE:
                text = _short_review(rng, pol, banned)
            else:
                text = _review(rng, pol, banned)
            if text not in seen:  # no duplicates within or across splits (no test leakage)
                seen.add(text)
                break
        out.append((text, lab if labeled else None))
    return out


# ---------------------------------------------------------------------------------------------
# NER: entity lists and templates come from demo_words.json; slots are filled here.
# ---------------------------------------------------------------------------------------------

_N = _WORDS["ner"]
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
        last = _pick(rng, _LAST, banned)
        if slot == "LASTN":
            return [last], "PER"
        r = rng.random()
        if slot == "PER" and r < 0.3:
            return [last], "PER"
        if r > 0.92:
            return [_pick(rng, _FIRST, banned)[0] + ".", last], "PER"
        return [_pick(rng, _FIRST, banned), last], "PER"
    if slot in _ENTITY_SLOTS:
        etype, items = _ENTITY_SLOTS[slot]
        return _pick(rng, items, banned).split(), etype
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


def _ner_split(rng: random.Random, n: int, banned: Set[str], seen: Set[str]
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

def _rng(seed: int, task: str, split: str) -> random.Random:
    # String seeds are hashed with SHA-512 by `random`, so this is stable across runs and
    # independent of PYTHONHASHSEED; each split gets its own stream.
    return random.Random(f"ernie_tiny_distill-demo-v{DEMO_DATA_VERSION}:{seed}:{task}:{split}")


def _sentiment_banned() -> Set[str]:
    words: Set[str] = set()
    for lists in list(_ASPECTS.values()) + [_GEN]:
        for key in ("pos1", "pos2", "neg1", "neg2"):
            words |= _held_out(lists[key])
    return words


def _ner_banned() -> Set[str]:
    words: Set[str] = set()
    for items in (_FIRST, _LAST, _CITIES, _COUNTRIES, _COMPANIES, _CLUBS, _ORGS, _NATIONALITIES,
                  _EVENTS, _LANGUAGES):
        words |= _held_out(items, keep=_AMBIGUOUS)
    return words


def demo_folder_problem(path: str) -> Optional[str]:
    """Why `path` cannot hold the demo data (it is a file, or a folder with other files), or None."""
    if not os.path.exists(path):
        return None
    if not os.path.isdir(path):
        return "is a file"
    others = sorted(name for name in os.listdir(path) if name not in _DEMO_ENTRIES and not name.startswith("."))
    if others:
        shown = ", ".join(others[:3]) + (", ..." if len(others) > 3 else "")
        return f"holds other files ({shown})"
    return None


def write_demo_data(out_dir: str, seed: int = 0, n_train: int = 400, n_dev: int = 100,
                    n_test: int = 200, n_unlabeled: int = 600) -> Dict[str, str]:
    """Write the demo sentiment and NER data under `out_dir` and return the file paths.

    Deterministic for `seed`. If `out_dir/manifest.json` records the same parameters and
    version and every file exists, nothing is rewritten.
    """
    params = {"version": DEMO_DATA_VERSION, "seed": seed, "n_train": n_train, "n_dev": n_dev,
              "n_test": n_test, "n_unlabeled": n_unlabeled}
    for name in ("seed", "n_train", "n_dev", "n_test", "n_unlabeled"):
        value = params[name]
        if isinstance(value, bool) or not isinstance(value, int) or \
                (name != "seed" and value < 0):
            raise UserError(f"{name} must be a non-negative integer, got {value!r}",
                            where="write_demo_data")
    paths = {key: os.path.join(out_dir, rel) for key, rel in _FILES.items()}
    manifest_path = os.path.join(out_dir, _MANIFEST)

    try:
        with open(manifest_path, encoding="utf-8") as f:
            previous = json.load(f)
    except (OSError, ValueError):
        previous = None
    if isinstance(previous, dict) and previous.get("params") == params and \
            all(os.path.isfile(p) for p in paths.values()):
        return paths

    # Remove the old manifest first: if we are interrupted, the next call regenerates
    # instead of trusting a mix of old and new files.
    if os.path.exists(manifest_path):
        os.unlink(manifest_path)

    sizes = {"train": n_train, "dev": n_dev, "test": n_test, "unlabeled": n_unlabeled}
    counts: Dict[str, int] = {}

    s_banned = _sentiment_banned()
    seen_reviews: Set[str] = set()
    for split, n in sizes.items():
        rng = _rng(seed, "sentiment", split)
        labeled = split != "unlabeled"
        rows = _sentiment_split(rng, n, s_banned if split == "train" else set(), seen_reviews,
                                labeled)
        if labeled:
            text = "".join(json.dumps({"text": t, "label": l}, ensure_ascii=False) + "\n"
                           for t, l in rows)
        else:
            text = "".join(t + "\n" for t, _ in rows)
        fsutil.write_text(paths[f"sentiment_{split}"], text)
        counts[f"sentiment_{split}"] = len(rows)

    n_banned = _ner_banned()
    seen_sents: Set[str] = set()
    for split, n in sizes.items():
        rng = _rng(seed, "ner", split)
        sents = _ner_split(rng, n, n_banned if split == "train" else set(), seen_sents)
        if split == "unlabeled":
            text = "".join(" ".join(toks) + "\n" for toks, _ in sents)
        else:
            text = "\n".join("".join(f"{tok} {tag}\n" for tok, tag in zip(toks, tags))
                             for toks, tags in sents)
        fsutil.write_text(paths[f"ner_{split}"], text)
        counts[f"ner_{split}"] = len(sents)

    manifest = {"params": params, "files": _FILES, "counts": counts}
    fsutil.write_text(manifest_path, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return paths


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ernie_tiny_distill.data.demo",
        description="Write the generated demo sentiment and NER data set.")
    parser.add_argument("out_dir", help="directory to write into (created if missing)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-train", type=int, default=400)
    parser.add_argument("--n-dev", type=int, default=100)
    parser.add_argument("--n-test", type=int, default=200)
    parser.add_argument("--n-unlabeled", type=int, default=600)
    args = parser.parse_args(argv)
    try:
        paths = write_demo_data(args.out_dir, seed=args.seed, n_train=args.n_train,
                                n_dev=args.n_dev, n_test=args.n_test,
                                n_unlabeled=args.n_unlabeled)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    with open(os.path.join(args.out_dir, _MANIFEST), encoding="utf-8") as f:
        counts = json.load(f)["counts"]
    unit = {"sentiment": "reviews", "ner": "sentences"}
    for key, path in paths.items():
        print(f"{key:20s} {counts[key]:5d} {unit[key.split('_')[0]]:9s} {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
