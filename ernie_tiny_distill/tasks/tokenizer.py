"""Text -> WordPiece ids through the Rust `tokenizers` library, giving exactly the ids of the PaddleNLP tokenizer
it is built from (same vocab.txt, casing, accents, CJK and punctuation rules), which remains the reference."""
from __future__ import annotations

import logging
import re
import weakref
from typing import Dict, List, Optional, Sequence, Tuple

logger = logging.getLogger(__name__)

# PaddleNLP's BasicTokenizer splits off Unicode symbols (its _is_symbol: category S* and these code points) as
# well as punctuation; BertPreTokenizer splits punctuation only. Applied to normalized (lower-cased) text, as
# PaddleNLP applies it to lower-cased words.
SYMBOLS = r"[\p{S}\x{00B2}\x{00BA}\x{3007}\x{00B5}\x{00D8}\x{014B}\x{01B1}]"
# characters per piece assumed when cutting the ends of a long text (English averages ~4.5): a cut too long
# costs little, one too short a second try
CHARS_PER_PIECE = 8
_BREAKS = (" ", "\t", "\n", "\r")  # whitespace both tokenizers treat as a hard word boundary
_ASCII_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # deleted by both (tab, CR, LF are spaces)
# the words of ASCII text: every printable ASCII character other than a letter or digit is punctuation to BERT
_ASCII_WORD = re.compile(r"[A-Za-z0-9]+|[^A-Za-z0-9\s]")
WORD_MEMO_SIZE = 200_000  # memoized ASCII word -> ids entries per tokenizer (cleared when full)


def _probe(char: str) -> str:
    """A string that shows how a tokenizer treats `char` inside a word, alone and repeated."""
    return f"a{char}b {char} {char}{char}x"


class WordPieces:
    """WordPiece ids (no special tokens) of text, as `tokenizer.convert_tokens_to_ids(tokenizer.tokenize(text))`.

    The fast path is used when it reproduces the tokenizer exactly: a PaddleNLP BertTokenizer, whose
    BasicTokenizer + WordpieceTokenizer map onto BertNormalizer + BertPreTokenizer (+ the symbol split) +
    WordPiece. A text holding a special token's literal ("[CLS]") or a character whose handling the two
    disagree on goes through PaddleNLP; see `_odd`.
    """

    def __init__(self, tokenizer, fast: bool = True):
        self.tokenizer = tokenizer
        self.fast = _fast_tokenizer(tokenizer) if fast else None  # fast=False: PaddleNLP only (the reference)
        # ASCII words need no Unicode normalization (see _ascii_ids): they go to a copy without the normalizer
        self._ascii = _without_normalizer(self.fast) if self.fast is not None else None
        self._lower = bool(getattr(tokenizer, "do_lower_case", False))
        self._word_ids: Dict[str, List[int]] = {}  # ASCII word -> its ids
        # PaddleNLP matches these in raw text before anything else; how depends on how it was loaded
        self._literals = sorted({str(t) for t in (*tokenizer.all_special_tokens,
                                                 *getattr(tokenizer, "unique_no_split_tokens", ()),
                                                 *getattr(tokenizer, "added_tokens_encoder", {})) if str(t)})
        self._char_ok: Dict[str, bool] = {}  # non-ASCII character -> the fast path treats it as PaddleNLP does

    @property
    def is_fast(self) -> bool:
        return self.fast is not None

    def clear(self) -> None:
        """Forget memoized words and character checks (for timing tokenization from cold)."""
        self._word_ids.clear()
        self._char_ok.clear()

    # -- whole texts
    def ids(self, text: str) -> List[int]:
        return self.many([text])[0]

    def many(self, texts: Sequence[str]) -> List[List[int]]:
        """ids() of each text (the NER words of a sentence, a batch of documents); the non-ASCII ones in one
        call into the library."""
        if self.fast is None:
            return [self._reference(t) for t in texts]
        out: List[Optional[List[int]]] = [None] * len(texts)
        ascii_at, other_at = [], []
        for i, text in enumerate(texts):
            if self._odd(text):
                out[i] = self._reference(text)
            else:
                (ascii_at if text.isascii() else other_at).append(i)
        if ascii_at:
            for i, ids in zip(ascii_at, self._ascii_ids([texts[i] for i in ascii_at])):
                out[i] = ids
        if other_at:  # encode_batch_fast: ids without character offsets, which nothing here reads
            batch = self.fast.encode_batch_fast([texts[i] for i in other_at], add_special_tokens=False)
            for i, enc in zip(other_at, batch):
                out[i] = enc.ids
        return out

    def words(self, words: Sequence[str]) -> List[List[int]]:
        """ids() of each word (a word may give no ids: control or zero-width characters only)."""
        return self.many(words)

    def _ascii_ids(self, texts: Sequence[str]) -> List[List[int]]:
        """ids of ASCII texts. BertNormalizer's work on them is deleting control characters and lower-casing,
        which Python does at a fraction of its cost (it tracks offsets character by character); their words are
        runs of letters and digits and single other characters. New words go to the library's WordPiece model."""
        split = []
        for text in texts:
            if _ASCII_CONTROL.search(text):
                text = _ASCII_CONTROL.sub("", text)
            split.append(_ASCII_WORD.findall(text.lower() if self._lower else text))
        memo = self._word_ids
        known = {w: memo.get(w) for words in split for w in words}  # a local view: a thread may clear the memo
        new = [w for w, ids in known.items() if ids is None]
        if new:
            if len(memo) + len(new) > WORD_MEMO_SIZE:
                memo.clear()
            # each word is one pre-token already (a run of letters and digits, or one other character), so the
            # WordPiece model alone gives its ids: ~5x faster per new word than encode_batch_fast, which builds
            # an Encoding per word (same ids on all 73,663 distinct words of the IMDB test reviews)
            tokenize = self._ascii.model.tokenize
            for word in new:
                known[word] = memo[word] = [token.id for token in tokenize(word)]
        return [[i for w in words for i in known[w]] for words in split]

    def ends(self, text: str, head: int, tail: int) -> Tuple[List[int], bool]:
        """The ids that truncation to `head + tail` keeps (all if there are no more, else the first `head` and
        the last `tail`) and whether any were dropped, tokenizing only the two ends of a long text.

        Whitespace is a hard word boundary for the tokenizer, so a prefix cut at whitespace gives exactly the
        first ids of the whole text, and a suffix its last ids; when the prefix has at least `head` + 1 ids,
        the suffix at least `tail`, and they do not overlap, the text has more than `head + tail` ids.
        """
        budget = head + tail
        if len(text) <= (budget + 2) * CHARS_PER_PIECE:  # the two ends would be about the whole text
            prefix = None
        else:
            prefix = self._end(text, head + 1, from_start=True)
        suffix = self._end(text, tail, from_start=False) if prefix is not None and tail else ([], len(text))
        if prefix is None or suffix is None or prefix[1] >= suffix[1]:
            ids = self.ids(text)
            if len(ids) <= budget:
                return ids, False
            return ids[:head] + ids[len(ids) - tail:], True
        return prefix[0][:head] + suffix[0][len(suffix[0]) - tail:], True

    def _end(self, text: str, need: int, from_start: bool) -> Optional[Tuple[List[int], int]]:
        """(ids, cut) of the shortest tried prefix text[:cut] (or suffix text[cut:]) ending at whitespace that
        has at least `need` ids; None when only the whole text has enough (or may)."""
        size = (need + 1) * CHARS_PER_PIECE
        while size < len(text):
            if from_start:
                cut = max(text.rfind(c, 0, size) for c in _BREAKS)
                part = text[:cut] if cut > 0 else None
            else:
                found = [i for i in (text.find(c, len(text) - size) for c in _BREAKS) if i >= 0]
                cut = min(found) + 1 if found else -1
                part = text[cut:] if found else None
            if part is not None:
                ids = self.ids(part)
                if len(ids) >= need:
                    return ids, cut
            size *= 2
        return None

    # -- the reference and where the fast path would differ
    def _reference(self, text: str) -> List[int]:
        return self.tokenizer.convert_tokens_to_ids(self.tokenizer.tokenize(text))

    def _odd(self, text: str) -> bool:
        """Whether `text` must go through PaddleNLP: it holds a special token's literal, or a character the two
        tokenizers treat differently (unassigned code points: PaddleNLP deletes them, the library keeps them;
        characters newer than the library's Unicode tables). Each non-ASCII character is checked once, by
        tokenizing a probe string both ways."""
        if any(lit in text for lit in self._literals):
            return True
        if text.isascii():
            return False
        known = self._char_ok
        for char in set(text):
            ok = known.get(char)
            if ok is None:
                if char.isascii():
                    continue
                probe = _probe(char)
                ok = known[char] = self.fast.encode(probe, add_special_tokens=False).ids == self._reference(probe)
            if not ok:
                return True
        return False


_CACHE: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_REPORTED: set = set()  # why the fast path was unavailable, as logged


def word_pieces(tokenizer) -> WordPieces:
    """The WordPieces of a PaddleNLP tokenizer, built once per tokenizer object."""
    try:
        found = _CACHE.get(tokenizer)
    except TypeError:  # an unhashable tokenizer: build each time
        return WordPieces(tokenizer)
    if found is None:
        found = _CACHE[tokenizer] = WordPieces(tokenizer)
    return found


def _fast_tokenizer(tokenizer):
    """A `tokenizers.Tokenizer` equivalent to a PaddleNLP BertTokenizer, or None (with one log line) for any
    other tokenizer: their rules (Chinese ERNIE, sentencepiece) have no exact counterpart here."""
    from paddlenlp.transformers import BertTokenizer
    from paddlenlp.transformers.bert.tokenizer import BasicTokenizer, WordpieceTokenizer

    name = type(tokenizer).__name__
    basic = getattr(tokenizer, "basic_tokenizer", None)
    wordpiece = getattr(tokenizer, "wordpiece_tokenizer", None)
    vocab = getattr(getattr(tokenizer, "vocab", None), "token_to_idx", None)
    why = None
    if type(tokenizer) is not BertTokenizer:
        why = f"tokenizer class {name}"
    elif not getattr(tokenizer, "do_basic_tokenize", True) or type(basic) is not BasicTokenizer \
            or type(wordpiece) is not WordpieceTokenizer or basic.never_split \
            or bool(basic.do_lower_case) != bool(tokenizer.do_lower_case):
        why = "a BertTokenizer without the standard basic tokenization"
    elif not isinstance(vocab, dict) or wordpiece.unk_token not in vocab:
        why = "a vocabulary without its unknown token"
    if why is not None:
        if why not in _REPORTED:  # one line per kind of tokenizer, not per task built on it
            _REPORTED.add(why)
            logger.info("fast tokenization is not available for %s: using the PaddleNLP tokenizer", why)
        return None
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers

    fast = Tokenizer(models.WordPiece(dict(vocab), unk_token=wordpiece.unk_token,
                                      max_input_chars_per_word=wordpiece.max_input_chars_per_word))
    # PaddleNLP lower-cases when the tokenizer's do_lower_case is set (it does so before BasicTokenizer too)
    fast.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=basic.tokenize_chinese_chars,
                                                 strip_accents=basic.strip_accents,
                                                 lowercase=bool(tokenizer.do_lower_case))
    fast.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.BertPreTokenizer(),
                                                  pre_tokenizers.Split(Regex(SYMBOLS), "isolated")])
    return fast


def _without_normalizer(fast):
    """A copy of `fast` with no normalizer, for text normalized beforehand."""
    from tokenizers import Tokenizer

    plain = Tokenizer.from_str(fast.to_str())
    plain.normalizer = None
    return plain
