"""Procedurally generated demo data (sentiment reviews and CoNLL-style NER) for the quickstart."""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
from typing import Dict, List, Optional, Sequence, Set, Tuple

from ernie_tiny_distill import fsutil
from ernie_tiny_distill.errors import UserError

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
# Sentiment: word lists (written for this project; nothing is copied from any review corpus).
# ---------------------------------------------------------------------------------------------

# A trailing "*" marks plural nouns (they take "are"/"were").
_ASPECTS: Dict[str, Dict[str, List[str]]] = {
    "plot": {
        "nouns": ["the plot", "the story", "the storyline", "the script", "the screenplay",
                  "the premise", "the twists*", "the central mystery"],
        "pos1": ["engaging", "clever", "intriguing", "well constructed", "coherent"],
        "pos2": ["gripping", "ingenious", "riveting", "masterfully plotted", "unpredictable"],
        "neg1": ["predictable", "thin", "muddled", "contrived", "formulaic"],
        "neg2": ["nonsensical", "incoherent", "ludicrous", "hopelessly convoluted", "insulting"],
        "pvp": ["kept me guessing until the very end", "holds together beautifully",
                "builds to a satisfying payoff", "rewards close attention"],
        "nvp": ["falls apart in the second act", "never comes together",
                "relies on one coincidence after another", "goes nowhere"],
    },
    "acting": {
        "nouns": ["the acting", "the performances*", "the cast", "the lead actor",
                  "the lead actress", "the supporting cast", "the young newcomer",
                  "the villain"],
        "pos1": ["convincing", "likeable", "natural", "committed", "believable"],
        "pos2": ["mesmerizing", "nuanced", "magnetic", "phenomenal", "heartbreakingly honest"],
        "neg1": ["stiff", "uneven", "wooden", "unconvincing", "flat"],
        "neg2": ["overacted", "embarrassing", "cringeworthy", "laughably bad", "grating"],
        "pvp": ["carries the whole film", "disappears completely into the role",
                "steals every scene", "brings real warmth to a difficult part"],
        "nvp": ["seems to be reading off cue cards", "chews the scenery relentlessly",
                "never finds the character", "mumbles through every scene"],
    },
    "music": {
        "nouns": ["the music", "the score", "the soundtrack", "the songs*", "the theme tune",
                  "the sound design"],
        "pos1": ["lovely", "pleasant", "catchy", "fitting", "tasteful"],
        "pos2": ["haunting", "glorious", "soaring", "unforgettable", "exquisite"],
        "neg1": ["forgettable", "generic", "repetitive", "intrusive", "bland"],
        "neg2": ["deafening", "insufferable", "obnoxious", "ear-splitting", "unbearable"],
        "pvp": ["lingers long after the credits", "lifts every key scene",
                "perfectly matches the mood"],
        "nvp": ["drowns out the dialogue", "tells you exactly what to feel",
                "never lets a quiet moment breathe"],
    },
    "direction": {
        "nouns": ["the direction", "the director", "the filmmaking", "the editing",
                  "the staging", "the camera work"],
        "pos1": ["assured", "confident", "competent", "careful", "thoughtful"],
        "pos2": ["masterful", "visionary", "bold", "inventive", "dazzling"],
        "neg1": ["clumsy", "sloppy", "unfocused", "heavy-handed", "timid"],
        "neg2": ["incompetent", "amateurish", "disastrous", "shambolic", "inept"],
        "pvp": ["never puts a foot wrong", "handles the tone shifts with real skill",
                "trusts the audience"],
        "nvp": ["has no idea where the story is going", "cuts away at all the wrong moments",
                "smothers every scene in gimmicks"],
    },
    "pacing": {
        "nouns": ["the pacing", "the rhythm", "the middle section", "the running time",
                  "the second act", "the final hour"],
        "pos1": ["brisk", "steady", "well judged", "tight", "lively"],
        "pos2": ["relentless", "electrifying", "breathless", "perfectly controlled",
                 "exhilarating"],
        "neg1": ["sluggish", "uneven", "slow", "padded", "saggy"],
        "neg2": ["glacial", "interminable", "excruciating", "mind-numbing", "agonizing"],
        "pvp": ["flies by", "never lets up", "moves like a freight train"],
        "nvp": ["drags", "crawls along", "feels twice as long as it is",
                "left me checking my watch"],
    },
    "visuals": {
        "nouns": ["the cinematography", "the visuals*", "the special effects*",
                  "the set design", "the photography", "the costumes*", "the lighting"],
        "pos1": ["handsome", "attractive", "polished", "colourful", "elegant"],
        "pos2": ["stunning", "gorgeous", "breathtakingly beautiful", "spectacular",
                 "ravishing"],
        "neg1": ["murky", "drab", "cheap-looking", "dated", "flat"],
        "neg2": ["hideous", "ugly", "amateurish", "eye-straining", "unwatchable"],
        "pvp": ["makes every frame look like a painting", "turns the city into a character"],
        "nvp": ["is so dark you can barely see anything", "looks like a screensaver"],
    },
    "dialogue": {
        "nouns": ["the dialogue", "the writing", "the jokes*", "the humour", "the characters*"],
        "pos1": ["witty", "sharp", "warm", "funny", "smart"],
        "pos2": ["hilarious", "razor-sharp", "sparkling", "deeply moving", "uproarious"],
        "neg1": ["clunky", "stale", "awkward", "corny", "shallow"],
        "neg2": ["painful", "excruciatingly unfunny", "insipid", "dreadful", "abysmal"],
        "pvp": ["had the whole audience laughing", "feels true to life",
                "crackles with energy"],
        "nvp": ["falls completely flat", "sounds like a first draft",
                "explains everything twice"],
    },
}

# General-purpose evaluative words usable with any aspect.
_GEN = {
    "pos1": ["good", "nice", "decent", "solid", "enjoyable", "charming", "fine", "likeable",
             "satisfying", "appealing"],
    "pos2": ["superb", "excellent", "wonderful", "brilliant", "outstanding", "terrific",
             "magnificent", "extraordinary", "sublime", "flawless", "marvellous"],
    "neg1": ["weak", "disappointing", "dull", "mediocre", "tedious", "underwhelming",
             "lacklustre", "tiresome", "lazy", "messy"],
    "neg2": ["awful", "terrible", "horrible", "atrocious", "dismal", "pathetic", "appalling",
             "woeful", "disgraceful", "abominable", "unwatchable"],
}

# Degree adverbs by polarity and strength.
_DEG = {
    (1, 1): ["", "", "fairly ", "reasonably ", "quite ", "mostly ", "pretty "],
    (1, 2): ["", "", "truly ", "absolutely ", "wonderfully ", "remarkably ", "simply ",
             "genuinely ", "breathtakingly "],
    (-1, 1): ["", "", "a little ", "somewhat ", "rather ", "slightly ", "often "],
    (-1, 2): ["", "", "utterly ", "painfully ", "embarrassingly ", "hopelessly ",
              "thoroughly ", "simply "],
}

_FILM = ["this film", "this movie", "the film", "the movie", "this picture", "this one",
         "this thriller", "this comedy", "this drama", "this romance", "this western",
         "this musical", "this horror film", "this sequel", "this remake", "this adaptation"]

# Neutral tails that lengthen evaluative sentences without changing their polarity.
_TAILS = ["from the opening credits to the final shot", "especially in the scenes at the lake",
          "in almost every scene", "for most of the running time",
          "during the long dinner party sequence", "compared with the director's earlier work",
          "given the modest budget", "by the standards of the genre",
          "in the flashback sequences", "once the story moves to the city",
          "at least in the version I saw", "throughout the second half",
          "whenever the two leads share the screen", "in the quieter moments"]

_SENT_PREFIX = ["", "", "", "", "Honestly, ", "To be fair, ", "In my opinion, ", "For me, ",
                "Frankly, ", "On the whole, ", "Without a doubt, ", "I have to say that ",
                "If I am honest, "]

# Positive and negative verdicts; weight is strength + 1 because verdicts summarize the review.
_VERDICT = {
    (1, 1): ["Worth a look.", "A pleasant way to spend an evening.", "Seven out of ten.",
             "I would recommend it to fans of the genre.", "Not perfect, but worth watching.",
             "A solid night at the movies.", "Give it a chance."],
    (1, 2): ["Highly recommended.", "A must-see.", "I will happily watch it again.",
             "Ten out of ten.", "One of the best films of the year.",
             "Go and see it on the biggest screen you can find.",
             "An instant classic.", "I cannot recommend it enough."],
    (-1, 1): ["Not worth the ticket price.", "Wait until it turns up on television.",
              "Hardly worth it.", "Four out of ten.", "I would not bother.",
              "A missed opportunity.", "Only for the most devoted fans."],
    (-1, 2): ["Avoid at all costs.", "A complete waste of time.", "One out of ten.",
              "One of the worst films I have ever sat through.", "I want my two hours back.",
              "Save your money.", "I walked out before the end."],
}

# Neutral filler: vocabulary with no bearing on the label (some look evaluative on purpose).
_PROFESSIONS = ["retired detective", "young nurse", "struggling painter", "small-town lawyer",
                "lonely astronaut", "former boxer", "schoolteacher", "fishing captain",
                "ambitious journalist", "widowed farmer", "teenage hacker", "jazz pianist",
                "war photographer", "chef", "taxi driver", "marine biologist"]
_PLOT_EVENTS = ["uncovers a brutal conspiracy", "returns home after twenty years",
                "falls for a stranger on a night train", "inherits a crumbling hotel",
                "tries to win back an estranged daughter", "hunts a ruthless killer",
                "joins a travelling circus", "must survive a bitter winter in the mountains",
                "discovers a letter hidden in an old piano", "plans one last robbery",
                "is haunted by a mistake from the past", "competes in a dance contest"]
_SETTINGS = ["a sleepy fishing village", "nineteen fifties Paris", "a space station",
             "the American desert", "a boarding school in Scotland", "a crowded hospital",
             "a remote island", "a dystopian future city", "the Arctic", "a small bakery",
             "a sprawling country estate", "the Roman empire"]
_WHEN = ["last weekend", "on a rainy Sunday afternoon", "on a long flight",
         "at a small cinema downtown", "at a festival screening", "on streaming last night",
         "during the holidays", "at a late show"]
_WHOM = ["my sister", "my parents", "a couple of friends", "my partner", "my kids",
         "my flatmate", "a colleague", "my grandfather"]
_FILLER_FIXED = [
    "The film runs just under two hours.",
    "It is based on a novel from the nineteen seventies.",
    "My brother recommended it to me months ago.",
    "There is a short scene after the credits.",
    "The title refers to a song the heroine hums throughout.",
    "It was released in cinemas and online on the same day.",
    "The director also wrote the screenplay.",
    "Most of the cast are unknown actors.",
    "It is the second part of a planned trilogy.",
    "The story takes place over a single night.",
    "Parts of it are in French with subtitles.",
    "I knew nothing about it going in.",
    "The original version was made about thirty years ago.",
    "Some viewers may find a few scenes violent.",
    "It is rated for ages twelve and up.",
    "The villain is a cold and calculating banker.",
]


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
# NER: entity lists (common names or invented) and CoNLL-like templates.
# ---------------------------------------------------------------------------------------------

# Words that are deliberately both a person and a place/organisation, so context must decide.
_AMBIGUOUS = {"Jordan", "Washington", "Lincoln", "Jackson", "Victoria", "Sydney", "Georgia",
              "Florence", "Madison", "Austin", "Chelsea", "Santos", "Paris"}

_FIRST = ["John", "Maria", "Ahmed", "Wei", "Olga", "Peter", "Fatima", "Carlos", "Anna", "David",
          "Yuki", "Pierre", "Sofia", "James", "Ingrid", "Rahul", "Elena", "Thomas", "Amara",
          "Lars", "Grace", "Mikhail", "Chloe", "Kwame", "Hannah", "Diego", "Aisha", "Stefan",
          "Laura", "Tomasz", "Victoria", "Sydney", "Georgia", "Florence", "Madison", "Austin",
          "Chelsea", "Jordan", "Nadia", "Oscar"]
_LAST = ["Smith", "Garcia", "Mueller", "Okafor", "Tanaka", "Johansson", "Rossi", "Novak",
         "Kowalski", "Dubois", "Haddad", "Chen", "Petrov", "Fernandes", "Lindqvist", "Brennan",
         "Mensah", "Ivanova", "Schneider", "Moreau", "Jordan", "Washington", "Lincoln",
         "Jackson", "Santos", "Hartley", "Nakamura", "Kovacs", "Andersen", "Abadi", "Whitfield",
         "Castellano", "Osei", "Varga", "Delacroix", "Paris"]
_CITIES = ["London", "Paris", "Berlin", "New York", "Los Angeles", "Tokyo", "Madrid", "Rome",
           "Moscow", "Cairo", "Nairobi", "Sydney", "Toronto", "Mumbai", "Hong Kong",
           "Buenos Aires", "Rio de Janeiro", "Washington", "Lincoln", "Jackson", "Florence",
           "Madison", "Austin", "Victoria", "Frankfurt", "Lagos", "Oslo", "Warsaw", "Lisbon",
           "San Francisco", "Kuala Lumpur", "Cape Town", "Geneva", "Istanbul", "Santiago",
           "Marseille", "Glasgow", "Osaka", "Tel Aviv", "Vienna"]
_COUNTRIES = ["France", "Germany", "Jordan", "Georgia", "Brazil", "Japan", "Kenya", "Canada",
              "Australia", "India", "China", "Russia", "Egypt", "Mexico", "Norway", "Poland",
              "South Africa", "United States", "New Zealand", "Saudi Arabia", "Argentina",
              "Italy", "Spain", "Sweden", "Nigeria", "Turkey", "Chile", "Portugal",
              "South Korea", "Sri Lanka"]
_COMPANIES = ["Bank of Scotland", "General Motors", "Norvik Systems", "Altamira Holdings",
              "Brightwater Energy", "Quellton Pharma", "Deutsche Bank", "Sony", "Siemens",
              "Kestrel Airlines", "Orbis Telecom", "Harrow and Finch", "Volvo", "Nestle",
              "Pinecrest Capital", "Marlowe Steel", "Royal Dutch Shell", "Toyota",
              "Bluefjord Shipping", "Ardent Motors", "Citadel Insurance Group",
              "Lumen Robotics", "Boeing", "Halvorsen Foods"]
_CLUBS = ["Chelsea", "Santos", "Ajax", "Real Madrid", "Bayern Munich", "Celtic", "Juventus",
          "Porto", "Galatasaray", "Benfica", "Manchester United", "Boca Juniors", "Feyenoord",
          "River Plate", "Olympique Lyon"]
_ORGS = ["United Nations", "European Union", "World Health Organisation", "Red Cross",
         "NATO", "Reuters", "International Monetary Fund", "World Bank", "Labour Party",
         "Supreme Court", "FIFA", "Interpol", "Central Bank of Kenya", "Amnesty International",
         "African Union", "Securities and Exchange Commission"]
_NATIONALITIES = ["German", "French", "Brazilian", "Japanese", "Kenyan", "Canadian",
                  "Australian", "Indian", "Chinese", "Russian", "Egyptian", "Mexican",
                  "Norwegian", "Polish", "British", "American", "Italian", "Spanish", "Swedish",
                  "Nigerian", "Turkish", "Chilean", "Dutch", "Irish", "European", "Asian"]
_EVENTS = ["World Cup", "Olympic Games", "Tour de France", "Davis Cup", "Nobel Prize",
           "Champions League", "Wimbledon", "Super Bowl", "Monaco Grand Prix", "Cold War",
           "Cannes Film Festival", "Australian Open", "Ryder Cup", "Euro 2024"]
_LANGUAGES = ["English", "French", "Spanish", "Arabic", "Mandarin", "Swahili", "Portuguese"]

_DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December"]

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

# Templates are pre-tokenized CoNLL style: punctuation and the possessive 's are separate tokens.
_NER_TEMPLATES = [
    "{PER} met {PER} in {CITY} on {DAY} .",
    "{PERF} met {COUNTRY} 's prime minister in {CITY} on {DAY} .",
    "Shares of {COMPANY} rose {PCT} percent in {CITY} on {DAY} .",
    "Shares in {COMPANY} fell {PCT} percent to {NUM} pence after the results .",
    "The {NAT} delegation arrived in {CITY} on {DAY} for talks with {ORGN} officials .",
    "{PERF} , a spokesman for {ORGN} , said the deal would close in {MONTH} .",
    "{COMPANY} said on {DAY} it had agreed to buy {COMPANY} for {MONEY} dollars .",
    "{PER} scored twice as {CLUB} beat {CLUB} {SCORE} in {CITY} .",
    "{CLUB} drew {SCORE} with {CLUB} on {DAY} .",
    "{COUNTRY} 's foreign minister , {PERF} , will visit {COUNTRY} next week .",
    "{PERF} won the {EVENT} in {YEAR} .",
    "Police in {CITY} said {NUM} people were injured in the blast .",
    "{PERF} ( {COUNTRY} ) beat {PERF} ( {COUNTRY} ) {SET} {SET} .",
    "The {EVENT} will be held in {CITY} in {MONTH} {YEAR} .",
    "{ORGN} officials met {NAT} and {NAT} diplomats in {CITY} on {DAY} .",
    "Talks between {COUNTRY} and {COUNTRY} resumed in {CITY} on {DAY} .",
    "{PERF} told {ORGN} that prices would rise later this year .",
    "{PER} , who joined {COMPANY} in {YEAR} , will take over as chief executive .",
    "The {NAT} government said it would send {NUM} troops to {COUNTRY} .",
    "{COMPANY} , based in {CITY} , reported a net profit of {MONEY} dollars .",
    "\" We are very happy with the result , \" {PER} said .",
    "\" It was a difficult match , \" said {PERF} , the {CLUB} captain .",
    "{PERF} , {NUM} , has been named {NAT} coach ahead of the {EVENT} .",
    "The {ORGN} called on {COUNTRY} to release the {NAT} journalist .",
    "{PER} arrived in {CITY} from {COUNTRY} late on {DAY} .",
    "Flights between {CITY} and {CITY} were cancelled because of fog .",
    "{COMPANY} will cut {NUM} jobs in {COUNTRY} , the company said .",
    "The {LANG} edition of the book sold {NUM} copies in {MONTH} .",
    "{PERF} spoke in {LANG} at the {ORGN} meeting in {CITY} .",
    "President {LASTN} of {COUNTRY} flew to {CITY} on {DAY} .",
    "{PERF} , the {NAT} champion , withdrew from the {EVENT} with an injury .",
    "The {ORGN} report , dated {YEAR}-{MM}-{DD} , was published in {CITY} .",
    "{COUNTRY} beat {COUNTRY} {SCORE} in the {EVENT} final in {CITY} .",
    "{PERF} finished third behind {PER} and {PER} .",
    "The {ORGN} said {COUNTRY} had met all the conditions of the loan .",
    "{PER} joined {CLUB} from {CLUB} for a fee of {MONEY} pounds .",
    "Protesters gathered outside the {NAT} embassy in {CITY} on {DAY} .",
    "{COMPANY} shares closed at {NUM} yen in {CITY} .",
    "{LASTN} said the {ORGN} would not comment on the report .",
    "Heavy rain hit {CITY} and parts of {COUNTRY} over the weekend .",
    "{PERF} , a former {COMPANY} executive , was appointed to the board of {COMPANY} .",
    "Mr {LASTN} left {CITY} for {COUNTRY} on {DAY} morning .",
    "Ms {LASTN} , who was born in {CITY} , studied law in {COUNTRY} .",
    "The {EVENT} was watched by {NUM} million people around the world .",
    "{NAT} and {NAT} ministers agreed to meet again in {MONTH} .",
    # Sentences with no entities at all, as in real newswire.
    "The market closed {NUM} points lower on {DAY} after a quiet session .",
    "Prices were little changed in thin trade .",
    "Officials said the talks would continue next week .",
    "Rain delayed the start of play by two hours on {DAY} .",
    "It was not immediately clear who was behind the attack .",
    "The company did not give further details .",
    "Analysts expect profits to rise {PCT} percent this year .",
    "The results are due on {DAY} , a spokeswoman said .",
    "Inflation rose to {PCT} percent in {MONTH} from {PCT} percent a month earlier .",
    "The vote is expected to take place in {MONTH} .",
]


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
        prog="python -m ernie_tiny_distill.demo_data",
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
