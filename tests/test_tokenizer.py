"""tasks/tokenizer.py gives the PaddleNLP tokenizer's ids: tricky strings, casing variants, NER words, the kept
ends of truncated text, the fallback for other tokenizers, and (when present) real IMDB and CoNLL text."""
import logging
import os
import tarfile

import pytest
from helpers import ROOT, UNK, write_vocab

from ernie_tiny_distill.data.examples import TaggedSentence, TextExample
from ernie_tiny_distill.models import build
from ernie_tiny_distill.tasks import tokenizer as wordpiece
from ernie_tiny_distill.tasks.classification import ClassificationTask
from ernie_tiny_distill.tasks.tagging import TaggingTask

DATASETS = ROOT / ".." / "shared" / "datasets"
needs_minilm = pytest.mark.skipif(not build.minilm_available(), reason="the offline MiniLM teacher is not installed")

TRICKY = [
    "Café naïve résumé ÉCOLE Ångström façade",  # accents: stripped when lower-casing
    "東京は日本の首都です。中文测试 한국어 текст ελληνικά",  # CJK ideographs split one by one; other scripts not
    "a\x00b\x07c\u200bd\ufeffe\u00adf\x0cg\x7fh\ufffdi",  # control, zero-width, format chars, U+FFFD: deleted
    "tab\tnew\nline\rcr\u2028ls\u2029ps\u00a0nbsp\u3000ideographic space",  # all whitespace
    "x" * 101 + " " + "y" * 100 + " " + "é" * 100,  # over max_input_chars_per_word: [UNK]; at it: pieces
    "!!!???...,,,;;;--- (([[{{}}]])) '\"` ~@#$%^&*_+=|\\/<>",  # punctuation runs: one piece per character
    "5€ 10$ 3° ±2 ©2020 ™ ½ ² º µ Ø ŋ Ʊ 〇 ¬ ¦ ´",  # symbols PaddleNLP also splits off (its _is_symbol)
    "emoji 😀🥰🫠 done 👍🏽 ❤️",  # symbols and a variation selector
    "İstanbul ΟΔΟΣ STRASSE straße ǅ ﬁ",  # case mappings that change length, a ligature
    "e\u0301 n\u0303o \u0301leading combining",  # decomposed accents, a combining mark after a space
    "[CLS] hello [SEP] x[CLS]y [cls] [UNK][MASK]",  # special tokens' literals: PaddleNLP handles them
    "\u0378 \U0002B81F \U000E0001 \U0010FFFF",  # unassigned and tag code points: PaddleNLP deletes them
    "\u0890 \u08e2 \U00030000 \U0002B820",  # characters newer than some Unicode tables
    "don't U.S.A. e.g. 1,000.50 3.5x O'Neill co-operate http://x.org/a?b=c",
    "",
    "   \t\n ",
]


def reference(tok, text):
    return tok.convert_tokens_to_ids(tok.tokenize(text))


@pytest.fixture(scope="module")
def minilm():
    return build.load_tokenizer("minilm")


@pytest.fixture(scope="module")
def variants(minilm, tmp_path_factory):
    """The MiniLM vocabulary under other casing settings (cased, accents kept, CJK not split)."""
    from paddlenlp.transformers import BertTokenizer

    vocab = os.path.join(build.minilm_path(), "vocab.txt")
    return [BertTokenizer(vocab_file=vocab, do_lower_case=False),
            BertTokenizer(vocab_file=vocab, do_lower_case=True, strip_accents=False),
            BertTokenizer(vocab_file=vocab, do_lower_case=False, strip_accents=True),
            BertTokenizer(vocab_file=vocab, tokenize_chinese_chars=False)]


@needs_minilm
def test_tricky_strings_give_paddlenlp_ids(minilm, variants):
    for tok in [minilm] + variants:
        pieces = wordpiece.WordPieces(tok)
        assert pieces.is_fast
        for text in TRICKY:
            assert pieces.ids(text) == reference(tok, text), (text, tok.do_lower_case)
        assert pieces.many(TRICKY) == [reference(tok, t) for t in TRICKY]


@needs_minilm
def test_only_special_literals_and_odd_characters_leave_the_fast_path(minilm):
    pieces = wordpiece.WordPieces(minilm)
    assert not pieces._odd(TRICKY[0]) and not pieces._odd(TRICKY[6]) and not pieces._odd("plain ascii\x00")
    assert pieces._odd("x[CLS]y") and pieces._odd("\u0378")  # a literal; an unassigned code point


@needs_minilm
def test_words_give_paddlenlp_ids_and_task_alignment(minilm):
    words = [w for text in TRICKY for w in text.split(" ")] + ["", "\u200b", "[SEP]", "unwatchable"]
    assert wordpiece.WordPieces(minilm).words(words) == [reference(minilm, w) for w in words]
    task = TaggingTask(minilm, ["O", "B-PER"], 32)
    sentence = TaggedSentence(words[:40], ["O"] * 40)
    fast, = task.encode([sentence])
    ref = TaggingTask(minilm, ["O", "B-PER"], 32)
    ref._pieces = wordpiece.WordPieces(minilm, fast=False)  # PaddleNLP only
    assert not ref.wordpieces.is_fast
    assert fast == ref.encode([sentence])[0]
    # a word the tokenizer deletes keeps a position, as [UNK]
    assert task.word_pieces(["\u200b"]) == [[minilm.unk_token_id]]


@needs_minilm
def test_ascii_word_memo_is_bounded_and_exact(minilm, monkeypatch):
    monkeypatch.setattr(wordpiece, "WORD_MEMO_SIZE", 8)
    pieces = wordpiece.WordPieces(minilm)
    texts = ["The film was GREAT, unwatchable... plays!", "a\x0cb\x7fc\td e-mail U.S. 3.5x", "x" * 101 + " ok"]
    for text in texts * 2:  # the second round reads the memo (and clears it when full)
        assert pieces.ids(text) == reference(minilm, text)
        # cleared when a text's new words would overflow it: then it holds that text's words only
        assert len(pieces._word_ids) <= max(8, len(set(wordpiece._ASCII_WORD.findall(text.lower()))))


def long_texts():
    """Texts around and far beyond 126 pieces, with unusual separators and no whitespace at all."""
    words = "the film was great unwatchable , plays ! Café 東京 [CLS] \u0378 x\x00y".split(" ")
    texts = []
    for n in (0, 1, 30, 120, 125, 126, 127, 128, 500, 3000):
        texts.append(" ".join(words[i % len(words)] for i in range(n)))
        texts.append("\n\t".join(words[i % len(words)] for i in range(n)))
    texts += ["a" * 5000, "word." * 2000, ("x" * 90 + " ") * 300, "z " * 126 + "a" * 3000, "a" * 3000 + " z" * 200]
    return texts


@needs_minilm
@pytest.mark.parametrize("truncation", ["head", "head_tail"])
def test_kept_ends_equal_truncated_whole_text(minilm, truncation):
    task = ClassificationTask(minilm, ["neg", "pos"], 128, truncation)
    for text in long_texts():
        whole = reference(minilm, text)
        kept, truncated = task.wordpieces.ends(text, *task.kept_ends())
        assert (kept, truncated) == (task.truncate(whole), len(whole) > 126), text[:60]
        feature, = task.encode([TextExample(text, "pos")])
        assert feature["input_ids"] == task.wrap(task.truncate(whole))[0]


@needs_minilm
def test_kept_ends_tokenize_only_the_ends(minilm, monkeypatch):
    pieces = wordpiece.WordPieces(minilm)
    text = " ".join(["unwatchable film"] * 20000)
    seen = []
    many = pieces.many
    monkeypatch.setattr(pieces, "many", lambda texts: (seen.extend(map(len, texts)), many(texts))[1])
    kept, truncated = pieces.ends(text, 31, 95)
    assert truncated and len(kept) == 126
    assert 0 < sum(seen) < len(text) // 50  # a few thousand characters of 340,000


def test_other_tokenizers_use_paddlenlp_with_one_log_line(tmp_path, caplog):
    from paddlenlp.transformers import ErnieTokenizer

    tok = ErnieTokenizer(vocab_file=write_vocab(tmp_path))
    wordpiece._REPORTED.clear()
    with caplog.at_level(logging.INFO, logger=wordpiece.__name__):
        first, second = wordpiece.WordPieces(tok), wordpiece.WordPieces(tok)
    assert not first.is_fast and not second.is_fast
    assert [r.getMessage() for r in caplog.records] == [
        "fast tokenization is not available for tokenizer class ErnieTokenizer: using the PaddleNLP tokenizer"]
    text = "John lives in New York . unwatchable xyz"
    assert first.ids(text) == reference(tok, text) and UNK in first.ids(text)
    assert first.words(text.split()) == [reference(tok, w) for w in text.split()]


def test_hand_vocabulary(hand_tokenizer):
    pieces = wordpiece.word_pieces(hand_tokenizer)
    assert pieces.is_fast and wordpiece.word_pieces(hand_tokenizer) is pieces  # built once per tokenizer
    assert pieces.ids("John plays the unwatchable film!") == [5, 23, 21, 10, 13, 14, 15, 11, 19]


# ---------------------------------------------------------------- real data (skipped without ../shared/datasets)


def imdb_reviews(n):
    """The first `n` labeled training reviews of the tarball (in its order), cleaned as the reader cleans them."""
    from ernie_tiny_distill.data.readers import imdb

    reviews = []
    with tarfile.open(DATASETS / "aclImdb_v1.tar.gz", "r|gz") as tf:
        for member in tf:
            parts = member.name.split("/")
            if member.isfile() and len(parts) == 4 and parts[1] == "train" and parts[2] in ("neg", "pos"):
                reviews.append(imdb._clean_review(tf.extractfile(member).read().decode("utf-8")))
                if len(reviews) == n:
                    return reviews
    return reviews


@pytest.mark.slow  # reads the start of the 56 MB tarball and tokenizes 200 reviews twice: ~5 s
@needs_minilm
@pytest.mark.skipif(not (DATASETS / "aclImdb_v1.tar.gz").is_file(), reason="shared IMDB tarball not found")
def test_imdb_reviews(minilm):
    pieces = wordpiece.WordPieces(minilm)
    task = ClassificationTask(minilm, ["neg", "pos"], 128, "head_tail")
    for text in imdb_reviews(200):
        whole = reference(minilm, text)
        assert pieces.ids(text) == whole
        assert pieces.ends(text, *task.kept_ends()) == (task.truncate(whole), len(whole) > 126)


@needs_minilm
@pytest.mark.skipif(not (DATASETS / "conll2003" / "valid.txt").is_file(), reason="shared CoNLL-2003 not found")
def test_conll_sentences(minilm):
    from ernie_tiny_distill.data.readers import read_conll

    sentences = read_conll(DATASETS / "conll2003" / "valid.txt")[:200]
    pieces = wordpiece.WordPieces(minilm)
    for s in sentences:
        assert pieces.words(s.tokens) == [reference(minilm, w) for w in s.tokens]
        assert pieces.ids(" ".join(s.tokens)) == reference(minilm, " ".join(s.tokens))


def test_serving_word_memo_is_bounded_and_exact(ner_export, monkeypatch):
    from ernie_tiny_distill.deploy import encoding

    monkeypatch.setattr(encoding, "WORD_CACHE_SIZE", 4)
    encoder = encoding.TextEncoder(ner_export)
    sentences = [["Angela", "Merkel", "visited", "Berlin", "."], ["Merkel", "met", "Angela", "in", "Berlin", "!"]]
    for words in sentences * 2:  # the second round reads the memo (and clears it when full)
        assert encoder.word_pieces(words) == [p[:encoder.budget] for p in encoder.task.word_pieces(words)]
        assert len(encoder._word_cache) <= max(4, len(set(words)))
