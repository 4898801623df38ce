"""Tests for ernie_tiny_distill.data.readers on IMDB: the folder and tarball layouts, the one-pass read and its
cache, the PaddleNLP download, damaged or incomplete archives (plus an optional real-data check)."""
from __future__ import annotations

import os
import sys
import tarfile
import types
from collections import Counter
from pathlib import Path

import pytest
from helpers import SHARED, needs_shared

from ernie_tiny_distill.data.examples import TextExample
from ernie_tiny_distill.data.readers import read_imdb

# the module whose memo and one-pass read the IMDB tests patch: the attributes read_imdb really uses
from ernie_tiny_distill.data.readers import imdb as imdb_reader
from ernie_tiny_distill.errors import UserError


# --------------------------------------------------------------------------- IMDB

IMDB_FILES = {
    "aclImdb/train/pos/10_9.txt": "Great<br /><br />movie,   truly.",
    "aclImdb/train/pos/2_8.txt": "Fine film<br/>overall",
    "aclImdb/train/pos/1_10.txt": "  Best\tever \n",
    "aclImdb/train/neg/12_2.txt": "Awful<BR>plot",
    "aclImdb/train/neg/3_1.txt": "Boring.",
    "aclImdb/train/unsup/40_0.txt": "unsup forty",
    "aclImdb/train/unsup/5_0.txt": "unsup five",
    "aclImdb/train/unsup/7_0.txt": "unsup<br />seven",
    "aclImdb/imdbEr.txt": "0.0\n",  # a non-review file of the official layout (urls_*.txt: see _imdb_archive)
    "aclImdb/test/pos/0_7.txt": "Test good",
    "aclImdb/test/neg/0_3.txt": "Test bad",
}
TRAIN_EXPECTED = [
    TextExample("Boring.", "neg"),
    TextExample("Awful plot", "neg"),
    TextExample("Best ever", "pos"),
    TextExample("Fine film overall", "pos"),
    TextExample("Great movie, truly.", "pos"),
]


def write_tree(root: Path, files: dict) -> None:
    for name, text in files.items():
        f = root / name
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(text, encoding="utf-8")


@pytest.fixture
def imdb_dir(tmp_path):
    root = tmp_path / "extracted"
    write_tree(root, IMDB_FILES)
    return root


def _tarball(root, tar_path):
    """root/aclImdb packed as the IMDB tarball at tar_path (the reader's tarball memo cleared)."""
    with tarfile.open(tar_path, "w:gz") as tar:
        tar.add(root / "aclImdb", arcname="aclImdb")
    imdb_reader._imdb_tar_memo.clear()
    return tar_path


@pytest.fixture
def imdb_tar(tmp_path, imdb_dir):
    return _tarball(imdb_dir, tmp_path / "aclImdb_v1.tar.gz")


def test_imdb_tar_splits_order_labels_and_html(imdb_tar):
    assert read_imdb(str(imdb_tar), "train") == TRAIN_EXPECTED
    assert read_imdb(str(imdb_tar), "test") == [TextExample("Test bad", "neg"), TextExample("Test good", "pos")]
    assert read_imdb(str(imdb_tar), "unsup") == [
        TextExample("unsup five", None),
        TextExample("unsup seven", None),
        TextExample("unsup forty", None),
    ]


def test_imdb_extracted_folder_both_levels(imdb_dir):
    assert read_imdb(str(imdb_dir), "train") == TRAIN_EXPECTED
    assert read_imdb(str(imdb_dir / "aclImdb"), "train") == TRAIN_EXPECTED
    assert [e.text for e in read_imdb(str(imdb_dir / "aclImdb"), "unsup")] == [
        "unsup five", "unsup seven", "unsup forty"]


def test_imdb_tar_one_pass_memo_and_jsonl_cache(imdb_tar, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    calls = []
    real = imdb_reader._read_imdb_tar_all
    monkeypatch.setattr(imdb_reader, "_read_imdb_tar_all", lambda p: calls.append(p) or real(p))
    read_imdb(str(imdb_tar), "train", cache_dir=str(cache))
    read_imdb(str(imdb_tar), "test", cache_dir=str(cache))
    assert len(calls) == 1  # one pass served both splits
    assert len(imdb_reader._imdb_tar_memo) == 1  # ...and is remembered in the memo read_imdb consults
    assert sorted(f.name.split("-")[2] for f in cache.iterdir()) == ["test", "train", "unsup"]
    assert not [f for f in cache.iterdir() if f.name.endswith(".tmp")]

    # A fresh process (empty memo) reuses the JSONL cache without touching the tarball's contents.
    imdb_reader._imdb_tar_memo.clear()
    monkeypatch.setattr(imdb_reader, "_read_imdb_tar_all", lambda p: pytest.fail("tarball re-read"))
    assert read_imdb(str(imdb_tar), "train", cache_dir=str(cache)) == TRAIN_EXPECTED
    assert read_imdb(str(imdb_tar), "unsup", cache_dir=str(cache), limit=1) == [TextExample("unsup five")]
    assert imdb_reader._imdb_tar_memo == {}  # served by the cache files, not by the memo


def test_imdb_cache_is_keyed_by_content_not_mtime(imdb_tar, imdb_dir, tmp_path, monkeypatch):
    # the shared dataset is re-created each session (same bytes, new mtime): that must not add a new 130 MB
    # set of cache files every time; files of an older cache version or another tarball are pruned on write
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "imdb-v1-train-123-456.jsonl").write_text("{}\n", encoding="utf-8")  # an mtime-keyed file, version 1
    read_imdb(str(imdb_tar), "train", cache_dir=str(cache))
    first = sorted(f.name for f in cache.iterdir())
    assert len(first) == 3 and all(name.startswith("imdb-v2-") for name in first)

    os.utime(imdb_tar, ns=(1_000_000_000, 1_000_000_000))  # same bytes, another mtime
    imdb_reader._imdb_tar_memo.clear()
    imdb_reader._imdb_digest_memo.clear()
    monkeypatch.setattr(imdb_reader, "_read_imdb_tar_all", lambda p: pytest.fail("tarball re-read"))
    assert read_imdb(str(imdb_tar), "train", cache_dir=str(cache)) == TRAIN_EXPECTED
    assert sorted(f.name for f in cache.iterdir()) == first

    monkeypatch.undo()
    (imdb_dir / "aclImdb" / "test" / "neg" / "0_2.txt").write_text("Test worse", encoding="utf-8")  # new content
    with tarfile.open(imdb_tar, "w:gz") as tar:
        tar.add(imdb_dir / "aclImdb", arcname="aclImdb")
    imdb_reader._imdb_tar_memo.clear()
    assert read_imdb(str(imdb_tar), "test", cache_dir=str(cache))[0] == TextExample("Test worse", "neg")
    now = sorted(f.name for f in cache.iterdir())
    assert len(now) == 3 and not set(now) & set(first)  # one tarball's splits, the new one's


def test_imdb_limit_balanced_deterministic_prefix(tmp_path):
    files = {f"aclImdb/train/pos/{i}_8.txt": f"pos {i}" for i in range(8)}
    files.update({f"aclImdb/train/neg/{i}_2.txt": f"neg {i}" for i in range(3)})
    files.update({f"aclImdb/train/unsup/{i}_0.txt": f"u {i}" for i in range(5)})
    write_tree(tmp_path, files)
    four = read_imdb(str(tmp_path), "train", limit=4)
    assert Counter(e.label for e in four) == {"neg": 2, "pos": 2}
    assert read_imdb(str(tmp_path), "train", limit=4) == four
    eight = read_imdb(str(tmp_path), "train", limit=8)
    assert eight[:4] == four
    assert Counter(e.label for e in eight) == {"neg": 3, "pos": 5}  # neg runs out after 3
    assert len(read_imdb(str(tmp_path), "train", limit=100)) == 11
    assert [e.text for e in read_imdb(str(tmp_path), "unsup", limit=2)] == ["u 0", "u 1"]
    with pytest.raises(UserError, match="limit must be a positive integer"):
        read_imdb(str(tmp_path), "train", limit=0)


def test_imdb_bad_inputs(tmp_path, imdb_dir):
    missing = tmp_path / "nope.tar.gz"
    with pytest.raises(UserError, match=r"^IMDB data not found: .*nope\.tar\.gz") as err:
        read_imdb(str(missing), "train")
    assert "aclImdb/{train,test}/{pos,neg}/<id>_<rating>.txt" in str(err.value)
    assert "ai.stanford.edu/~amaas/data/sentiment" in str(err.value)
    with pytest.raises(UserError, match="split must be one of 'train', 'test', 'unsup'; got 'dev'"):
        read_imdb(str(imdb_dir), "dev")
    write_tree(tmp_path / "labeled_only", {"aclImdb/train/pos/1_9.txt": "ok", "aclImdb/train/neg/1_1.txt": "bad"})
    with pytest.raises(UserError, match=r"missing IMDB folder .*aclImdb/train/unsup for split 'unsup'"):
        read_imdb(str(tmp_path / "labeled_only"), "unsup")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="not an IMDB folder"):
        read_imdb(str(tmp_path / "empty"), "train")


def fake_paddlenlp(monkeypatch, load_dataset):
    pkg, sub = types.ModuleType("paddlenlp"), types.ModuleType("paddlenlp.datasets")
    sub.load_dataset = load_dataset
    pkg.datasets = sub
    monkeypatch.setitem(sys.modules, "paddlenlp", pkg)
    monkeypatch.setitem(sys.modules, "paddlenlp.datasets", sub)


def test_imdb_via_paddlenlp_maps_label_ids(monkeypatch):
    seen = []

    def load_dataset(name, splits=None):
        seen.append((name, splits))
        # PaddleNLP yields pos first and converts the "1"/"0" labels to ids via get_labels().
        return [{"text": "Nice<br /><br />one", "label": 1}, {"text": "Meh", "label": 0}]

    fake_paddlenlp(monkeypatch, load_dataset)
    assert read_imdb(None, "test") == [TextExample("Meh", "neg"), TextExample("Nice one", "pos")]
    assert seen == [("imdb", "test")]


def test_imdb_via_paddlenlp_offline_and_unsup(monkeypatch):
    def load_dataset(name, splits=None):
        raise ConnectionError("no network")

    fake_paddlenlp(monkeypatch, load_dataset)
    with pytest.raises(UserError, match=r"downloading IMDB .*failed \(ConnectionError: no network\)") as err:
        read_imdb(None, "train")
    assert "aclImdb_v1.tar.gz from https://ai.stanford.edu/~amaas/data/sentiment/" in str(err.value)
    with pytest.raises(UserError, match="only the 'train' and 'test' splits, no 'unsup'"):
        read_imdb(None, "unsup")


def test_imdb_cache_files_have_the_users_umask(imdb_tar, tmp_path):
    # the parsed-IMDB cache is written through mkstemp (0600); it gets 0666 & ~umask
    old = os.umask(0o022)
    try:
        read_imdb(str(imdb_tar), "train", cache_dir=str(tmp_path / "cache"))
    finally:
        os.umask(old)
    modes = {f.name: f.stat().st_mode & 0o777 for f in (tmp_path / "cache").iterdir()}
    assert len(modes) == 3 and set(modes.values()) == {0o644}


# --------------------------------------------------------------------------- real data (optional)


@pytest.mark.slow  # one pass over the 56 MB tarball: ~5-6 s on a shared 2-core machine
@needs_shared
def test_real_imdb_test_counts():
    test = read_imdb(str(SHARED / "aclImdb_v1.tar.gz"), "test")
    assert Counter(e.label for e in test) == {"neg": 12500, "pos": 12499}
    assert not any("<br" in e.text for e in test[:500])


# ------------------------------------------------------------------ damaged or incomplete IMDB archives


def _imdb_archive(tmp_path, per_dir=60, drop=()):
    """A synthetic aclImdb tar.gz with urls_*.txt lists, `per_dir` reviews (of incompressible text) per directory."""
    import random as _random

    rng = _random.Random(0)
    root = tmp_path / "src"
    files = {}
    for top, label in (("train", "neg"), ("train", "pos"), ("train", "unsup"), ("test", "neg"), ("test", "pos")):
        files[f"aclImdb/{top}/urls_{label}.txt"] = "".join(f"http://x/{i}\n" for i in range(per_dir))
        for i in range(per_dir):
            name = f"aclImdb/{top}/{label}/{i}_{0 if label == 'unsup' else 7}.txt"
            if name not in drop:
                files[name] = " ".join(f"w{rng.randrange(10**6)}" for _ in range(60))
    write_tree(root, files)
    return _tarball(root, tmp_path / "aclImdb_v1.tar.gz")


def test_imdb_tar_corrupted_in_the_middle_is_an_error_naming_the_file(tmp_path):
    tar_path = _imdb_archive(tmp_path)
    assert len(read_imdb(str(tar_path), "train")) == 120  # intact: every review
    raw = bytearray(tar_path.read_bytes())
    mid = len(raw) // 2
    raw[mid:mid + 2048] = bytes(b ^ 0x5A for b in raw[mid:mid + 2048])  # flip 2 KB in the middle
    tar_path.write_bytes(bytes(raw))
    imdb_reader._imdb_tar_memo.clear()
    for split in ("train", "unsup", "test"):
        with pytest.raises(UserError, match=r"aclImdb_v1\.tar\.gz: cannot read IMDB tarball, it is damaged"):
            read_imdb(str(tar_path), split)


def test_imdb_tar_truncated_is_an_error_naming_the_file(tmp_path):
    tar_path = _imdb_archive(tmp_path)
    raw = tar_path.read_bytes()
    tar_path.write_bytes(raw[: len(raw) - 4000])
    imdb_reader._imdb_tar_memo.clear()
    with pytest.raises(UserError, match=r"aclImdb_v1\.tar\.gz: cannot read IMDB tarball, it is damaged"):
        read_imdb(str(tar_path), "train")


def test_imdb_missing_reviews_are_an_error_with_counts(tmp_path):
    tar_path = _imdb_archive(tmp_path, drop={"aclImdb/train/pos/3_7.txt", "aclImdb/train/pos/41_7.txt"})
    with pytest.raises(UserError) as err:
        read_imdb(str(tar_path), "train")
    assert str(err.value).startswith(
        f"{tar_path}: incomplete IMDB data: aclImdb/train/pos/ has 58 of the 60 reviews its urls_pos.txt lists "
        "(missing 3_*.txt, 41_*.txt)")
    assert "train/neg 12,500, train/pos 12,500, train/unsup 50,000, test/neg 12,500, test/pos 12,500" in str(err.value)
    # the same check for an extracted folder
    with tarfile.open(tar_path) as tar:
        tar.extractall(tmp_path / "x")
    with pytest.raises(UserError, match=r"aclImdb/train/pos/ has 58 of the 60 reviews"):
        read_imdb(str(tmp_path / "x"), "train")


def test_imdb_known_missing_review_is_accepted_with_a_warning(tmp_path, caplog):
    # the shared copy lacks test/pos/7_9.txt (datasets README): 24,999 test reviews, said in the log
    tar_path = _imdb_archive(tmp_path, drop={"aclImdb/test/pos/7_7.txt"})
    assert len(read_imdb(str(tar_path), "test")) == 119
    assert "aclImdb/test/pos/ lacks review id(s) 7, known to be missing" in caplog.text
    assert "59 reviews instead of 60" in caplog.text
