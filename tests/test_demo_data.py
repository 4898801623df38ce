"""Tests for the generated demo data set (fast: small sizes, standard library only)."""
from __future__ import annotations

import json
import os
from collections import Counter

import pytest

# The package is not necessarily installed; make the repo root importable.
from ernie_tiny_distill.data.demo import write_demo_data  # noqa: E402
from ernie_tiny_distill.errors import UserError  # noqa: E402

KEYS = ["sentiment_train", "sentiment_dev", "sentiment_test", "sentiment_unlabeled",
        "ner_train", "ner_dev", "ner_test", "ner_unlabeled"]
SMALL = dict(n_train=60, n_dev=20, n_test=30, n_unlabeled=50)


def _bytes(paths):
    out = {}
    for key in KEYS:
        with open(paths[key], "rb") as f:
            out[key] = f.read()
    return out


def _read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def _read_conll(path):
    """Sentences as lists of (token, tag); fails on any line that is not exactly two columns."""
    sentences, current = [], []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line:
                if current:
                    sentences.append(current)
                current = []
                continue
            cols = line.split(" ")
            assert len(cols) == 2 and all(cols), f"{path}:{lineno}: bad line {line!r}"
            current.append((cols[0], cols[1]))
    if current:
        sentences.append(current)
    return sentences


def _iob2_errors(tags):
    """Every I-X must follow B-X or I-X; every tag is O, B-X or I-X with a known type."""
    errors = []
    prev = "O"
    for i, tag in enumerate(tags):
        if tag != "O":
            prefix, _, etype = tag.partition("-")
            if prefix not in ("B", "I") or etype not in ("PER", "LOC", "ORG", "MISC"):
                errors.append(f"{i}: unknown tag {tag}")
            elif prefix == "I" and prev[2:] != etype:
                errors.append(f"{i}: {tag} after {prev}")
        prev = tag
    return errors


def _entities(sentence):
    """(type, n_tokens) for each entity span."""
    spans = []
    for tok, tag in sentence:
        if tag.startswith("B-"):
            spans.append([tag[2:], 1])
        elif tag.startswith("I-"):
            spans[-1][1] += 1
    return spans


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    return write_demo_data(str(out), seed=0, **SMALL)


def test_returns_all_paths(data):
    assert sorted(data) == sorted(KEYS)
    for key in KEYS:
        assert os.path.isfile(data[key]), key
    assert data["sentiment_train"].endswith(os.path.join("sentiment", "train.jsonl"))
    assert data["ner_unlabeled"].endswith(os.path.join("ner", "unlabeled.txt"))


def test_deterministic_for_seed(data, tmp_path):
    again = write_demo_data(str(tmp_path / "same"), seed=0, **SMALL)
    assert _bytes(again) == _bytes(data)
    other = write_demo_data(str(tmp_path / "other"), seed=1, **SMALL)
    other_bytes, base = _bytes(other), _bytes(data)
    for key in KEYS:
        assert other_bytes[key] != base[key], key


def test_sentiment_counts_and_balance(data):
    for split, n in (("train", 60), ("dev", 20), ("test", 30)):
        rows = _read_jsonl(data[f"sentiment_{split}"])
        assert len(rows) == n
        assert all(set(r) == {"text", "label"} for r in rows)
        counts = Counter(r["label"] for r in rows)
        assert set(counts) == {"pos", "neg"}
        assert abs(counts["pos"] - counts["neg"]) <= 1
        for r in rows:
            assert 6 <= len(r["text"].split()) <= 120, r["text"]
            assert "<br" not in r["text"]
        # both one- or two-sentence comments (<= 40 words) and long reviews (>= 30 words)
        lengths = [len(r["text"].split()) for r in rows]
        assert min(lengths) <= 40 and max(lengths) >= 30


def test_sentiment_vocabulary_and_phenomena(tmp_path):
    paths = write_demo_data(str(tmp_path), seed=3)  # default sizes: still well under a second
    texts = [r["text"] for split in ("train", "dev", "test")
             for r in _read_jsonl(paths[f"sentiment_{split}"])]
    words = {w.strip(".,;\"").lower() for t in texts for w in t.split()}
    assert len(words) >= 300
    joined = "\n".join(texts)
    for phrase in ("not bad", "never boring", "hardly worth", ", but ", "breathtakingly"):
        assert phrase in joined, phrase
    # No text is repeated across splits (the test set never leaks into train).
    assert len(set(texts)) == len(texts)


def test_ner_files_are_valid_iob2(data):
    types = Counter()
    multi = Counter()
    no_entity = 0
    for split, n in (("train", 60), ("dev", 20), ("test", 30)):
        sentences = _read_conll(data[f"ner_{split}"])
        assert len(sentences) == n
        for sent in sentences:
            assert 6 <= len(sent) <= 25
            tags = [t for _, t in sent]
            assert _iob2_errors(tags) == [], sent
            spans = _entities(sent)
            no_entity += not spans
            for etype, length in spans:
                types[etype] += 1
                multi[etype] += length > 1
    assert set(types) == {"PER", "LOC", "ORG", "MISC"}
    assert sum(multi.values()) > 0
    assert no_entity > 0


def test_ner_multi_token_and_punctuation(tmp_path):
    paths = write_demo_data(str(tmp_path), seed=0)
    sentences = _read_conll(paths["ner_train"])
    multi_types = {etype for s in sentences for etype, n in _entities(s) if n > 1}
    assert {"PER", "LOC", "ORG"} <= multi_types
    tokens = [tok for s in sentences for tok, _ in s]
    assert "." in tokens and "," in tokens
    # Punctuation is split off like CoNLL, never glued to a word.
    # (the only dotted word tokens are initials such as "J.").
    glued = [tok for tok in tokens if len(tok) > 1 and tok[-1] in ",;:" or
             (len(tok) > 2 and tok.endswith(".") and tok[:-1].isalpha())]
    assert glued == []
    # Ambiguous words appear with more than one entity type across the data.
    seen = {}
    for s in sentences:
        for tok, tag in s:
            if tag != "O":
                seen.setdefault(tok, set()).add(tag[2:])
    assert any(len(v) > 1 for v in seen.values())


def test_unlabeled_line_counts(data):
    for key, n in (("sentiment_unlabeled", 50), ("ner_unlabeled", 50)):
        with open(data[key], encoding="utf-8") as f:
            lines = f.read().split("\n")
        assert lines[-1] == ""
        lines = lines[:-1]
        assert len(lines) == n and all(line.strip() for line in lines)
        assert not any(line.lstrip().startswith("{") for line in lines)  # no JSON labels
    with open(data["ner_unlabeled"], encoding="utf-8") as f:
        for line in f:
            tokens = line.split()
            assert 6 <= len(tokens) <= 25
            assert not any(t.startswith(("B-", "I-")) for t in tokens)


def test_manifest_short_circuits(tmp_path):
    out = str(tmp_path / "d")
    paths = write_demo_data(out, seed=5, **SMALL)
    mtimes = {k: os.stat(p).st_mtime_ns for k, p in paths.items()}
    manifest = os.path.join(out, "manifest.json")
    m_mtime = os.stat(manifest).st_mtime_ns
    with open(manifest, encoding="utf-8") as f:
        assert json.load(f)["params"]["seed"] == 5
    again = write_demo_data(out, seed=5, **SMALL)
    assert again == paths
    assert {k: os.stat(p).st_mtime_ns for k, p in again.items()} == mtimes
    assert os.stat(manifest).st_mtime_ns == m_mtime
    # Different parameters rewrite everything.
    write_demo_data(out, seed=6, **SMALL)
    with open(manifest, encoding="utf-8") as f:
        assert json.load(f)["params"]["seed"] == 6
    with open(paths["ner_unlabeled"], encoding="utf-8") as f:
        assert len(f.read().splitlines()) == SMALL["n_unlabeled"]
    # No temp files are left behind.
    leftovers = [n for _, _, files in os.walk(out) for n in files if n.endswith(".tmp")]
    assert leftovers == []


def test_rejects_negative_sizes(tmp_path):
    with pytest.raises(UserError):
        write_demo_data(str(tmp_path), n_train=-1)


def test_main_prints_paths_and_counts(tmp_path, capsys):
    from ernie_tiny_distill.data.demo import main

    assert main([str(tmp_path), "--n-train", "10", "--n-dev", "4", "--n-test", "4",
                 "--n-unlabeled", "6"]) == 0
    out = capsys.readouterr().out
    for key in KEYS:
        assert key in out
    assert "sentiment_train" in out and " 10 " in out


def test_word_lists_are_package_data():
    """The generator's word lists live in ernie_tiny_distill/demo_words.json, installed with the package."""
    import ast
    from importlib import resources
    from pathlib import Path

    words = json.loads(resources.files("ernie_tiny_distill.data").joinpath("demo_words.json").read_text("utf-8"))
    assert set(words) == {"notes", "sentiment", "ner"}
    assert "Deutsche Bank" in words["ner"]["companies"] and "dull" in words["sentiment"]["general"]["neg1"]
    setup_py = ast.parse((Path(__file__).resolve().parents[1] / "setup.py").read_text(encoding="utf-8"))
    (package_data,) = [ast.literal_eval(k.value) for node in ast.walk(setup_py) if isinstance(node, ast.Call)
                       for k in node.keywords if k.arg == "package_data"]
    assert package_data == {"ernie_tiny_distill.data": ["demo_words.json"]}
