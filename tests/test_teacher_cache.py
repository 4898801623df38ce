"""Teacher-logit cache: computed once, reused, rebuilt when data/teacher change or the file is damaged."""
from __future__ import annotations

import logging
import os

import numpy as np
import paddle
import pytest

from ernie_tiny_distill.data import batching
from ernie_tiny_distill.data.examples import TaggedSentence, TextExample
from ernie_tiny_distill.distill import teacher_cache
from ernie_tiny_distill.distill.distiller import TeacherRows
from ernie_tiny_distill.tasks.classification import ClassificationTask
from ernie_tiny_distill.tasks.tagging import TaggingTask

LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
SENTENCES = [TaggedSentence(["John", "plays"]), TaggedSentence(["unwatchable", "York", "."]),
             TaggedSentence(["York"]), TaggedSentence(["the", "film", "was", "great", "!"])]


class FakeTeacher:
    """compute_logits stand-in: deterministic [L_i, C] logits per feature, counting its calls."""

    def __init__(self, num_labels=5):
        self.calls = 0
        self.num_labels = num_labels

    def __call__(self, features):
        self.calls += 1
        return [np.stack([np.arange(self.num_labels, dtype=np.float32) * 0.1 + f["index"] * 10 + pos
                          for pos in range(len(f["input_ids"]))]) for f in features]


@pytest.fixture
def task(hand_tokenizer):
    return TaggingTask(hand_tokenizer, LABELS, max_seq_length=32)


def cache_files(cache_dir):
    """The cache files (each has its digest record, teacher_logits-KEY.json, beside it)."""
    names = sorted(os.listdir(cache_dir)) if os.path.isdir(cache_dir) else []
    npz = [n for n in names if n.endswith(".npz")]
    assert sorted(n[:-4] + ".json" for n in npz) == [n for n in names if n.endswith(".json")], names
    assert len(names) == 2 * len(npz), names  # no temporary files left
    return npz


def test_computed_once_then_loaded(task, teacher_dir, tmp_path, caplog):
    features = task.encode(SENTENCES)
    fake = FakeTeacher()
    cache = str(tmp_path / "cache")
    rows, offsets = teacher_cache.load_or_build(cache, teacher_dir, task, features, fake)
    assert fake.calls == 1
    (name,) = cache_files(cache)  # one file, no temp files left
    assert name.startswith("teacher_logits-") and name.endswith(".npz")
    with caplog.at_level(logging.INFO, logger="ernie_tiny_distill.distill.teacher_cache"):
        rows2, offsets2 = teacher_cache.load_or_build(cache, teacher_dir, task, features, fake)
    assert fake.calls == 1  # loaded, not recomputed
    assert "teacher logits from cache" in caplog.text
    np.testing.assert_array_equal(rows2, rows)
    np.testing.assert_array_equal(offsets2, offsets)
    assert rows.dtype == np.float32 and offsets.dtype == np.int64


def test_rows_and_offsets_align_with_kd_rows_numpy(task, teacher_dir, tmp_path):
    features = task.encode(SENTENCES)
    fake = FakeTeacher()
    rows, offsets = teacher_cache.load_or_build(str(tmp_path / "c"), teacher_dir, task, features, fake)
    logits = FakeTeacher()(features)
    assert offsets.tolist() == [0, 2, 5, 6, 11]  # words per sentence: 2, 3, 1, 5
    for i, (lg, f) in enumerate(zip(logits, features)):
        np.testing.assert_array_equal(rows[offsets[i]:offsets[i + 1]], task.kd_rows_numpy(lg, f))
    # sentence 1 = un ##watch ##able | york | . : its words sit at positions 1, 4, 5
    np.testing.assert_array_equal(rows[2:5], logits[1][[1, 4, 5]])


def test_cached_rows_match_student_kd_rows_for_a_shuffled_batch(task, teacher_dir, tmp_path):
    # Trainer: TeacherRows.gather(batch["index"]) must line up with task.kd_rows(student logits, batch)
    features = task.encode(SENTENCES)
    logits = FakeTeacher()(features)
    cached = TeacherRows(*teacher_cache.load_or_build(str(tmp_path / "c"), teacher_dir, task, features,
                                                      FakeTeacher()))
    order = [3, 0, 2]
    batch = batching.collate([features[i] for i in order], pad_token_id=0)
    B, L = batch["input_ids"].shape
    padded = np.zeros((B, L, 5), dtype=np.float32)
    for row, i in enumerate(order):
        padded[row, :len(logits[i])] = logits[i]
    online = task.kd_rows(paddle.to_tensor(padded), {k: paddle.to_tensor(v) for k, v in batch.items()})
    np.testing.assert_array_equal(cached.gather(batch["index"]).numpy(), online.numpy())


def test_classification_rows(hand_tokenizer, teacher_dir, tmp_path):
    task = ClassificationTask(hand_tokenizer, ["neg", "pos"], max_seq_length=16)
    features = task.encode([TextExample("great", "pos"), TextExample("bad film", "neg")])

    def compute(fs):
        return [np.array([f["index"], -f["index"]], dtype=np.float32) for f in fs]

    rows, offsets = teacher_cache.load_or_build(str(tmp_path / "c"), teacher_dir, task, features, compute)
    np.testing.assert_array_equal(rows, [[0, 0], [1, -1]])
    assert offsets.tolist() == [0, 1, 2]


def test_changed_features_change_fingerprint_and_rebuild(task, teacher_dir, tmp_path):
    cache = str(tmp_path / "cache")
    features = task.encode(SENTENCES)
    key = teacher_cache.fingerprint(teacher_dir, task, features)
    fake = FakeTeacher()
    teacher_cache.load_or_build(cache, teacher_dir, task, features, fake)

    fewer = features[:3]
    other_words = task.encode(SENTENCES[:3] + [TaggedSentence(["the", "film", "was", "bad", "!"])])
    shorter = TaggingTask(task.tokenizer, LABELS, max_seq_length=6).encode(SENTENCES)  # truncation differs
    for changed in (fewer, other_words, shorter):
        assert teacher_cache.fingerprint(teacher_dir, task, changed) != key
    assert teacher_cache.fingerprint(teacher_dir, task, task.encode(SENTENCES)) == key  # stable

    rows, offsets = teacher_cache.load_or_build(cache, teacher_dir, task, fewer, fake)
    assert fake.calls == 2 and len(offsets) == 4
    assert len(cache_files(cache)) == 2
    # a different label set (another teacher head) is another cache entry too
    relabeled = TaggingTask(task.tokenizer, LABELS + ["B-ORG", "I-ORG"], max_seq_length=32)
    assert teacher_cache.fingerprint(teacher_dir, relabeled, features) != key


def test_changed_teacher_weights_rebuild(task, teacher_dir, tmp_path):
    cache = str(tmp_path / "cache")
    features = task.encode(SENTENCES)
    fake = FakeTeacher()
    teacher_cache.load_or_build(cache, teacher_dir, task, features, fake)
    with open(os.path.join(teacher_dir, "model.safetensors"), "wb") as f:
        f.write(b"weights v2 (re-trained)")
    teacher_cache.load_or_build(cache, teacher_dir, task, features, fake)
    assert fake.calls == 2


def _build_once(task, teacher_dir, cache):
    features = task.encode(SENTENCES)
    fake = FakeTeacher()
    rows, offsets = teacher_cache.load_or_build(cache, teacher_dir, task, features, fake)
    (name,) = cache_files(cache)
    return features, fake, rows, offsets, os.path.join(cache, name)


def _assert_rebuilt(task, teacher_dir, cache, features, fake, rows, caplog, expect):
    with caplog.at_level(logging.WARNING, logger="ernie_tiny_distill.distill.teacher_cache"):
        rows2, offsets2 = teacher_cache.load_or_build(cache, teacher_dir, task, features, fake)
    assert fake.calls == 2
    np.testing.assert_array_equal(rows2, rows)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and expect in warnings[0]
    # and the rebuilt file is good again
    teacher_cache.load_or_build(cache, teacher_dir, task, features, fake)
    assert fake.calls == 2


def test_garbage_cache_file_is_rebuilt(task, teacher_dir, tmp_path, caplog):
    cache = str(tmp_path / "cache")
    features, fake, rows, _, path = _build_once(task, teacher_dir, cache)
    with open(path, "wb") as f:
        f.write(b"this is not an npz file")
    _assert_rebuilt(task, teacher_dir, cache, features, fake, rows, caplog, "is unreadable")


def test_cache_for_other_data_under_the_same_name_is_rebuilt(task, teacher_dir, tmp_path, caplog):
    cache = str(tmp_path / "cache")
    features, fake, rows, offsets, path = _build_once(task, teacher_dir, cache)
    np.savez(path, rows=rows[:3], offsets=offsets[:2], meta=np.array('{"fingerprint": "something else"}'))
    _assert_rebuilt(task, teacher_dir, cache, features, fake, rows, caplog, "does not match the data")


def test_truncated_cache_file_is_rebuilt(task, teacher_dir, tmp_path, caplog):
    cache = str(tmp_path / "cache")
    features, fake, rows, _, path = _build_once(task, teacher_dir, cache)
    data = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write(data[: len(data) // 2])  # e.g. a copy interrupted half-way, or a full disk at copy time
    _assert_rebuilt(task, teacher_dir, cache, features, fake, rows, caplog, "is unreadable")


def test_sharded_teacher_changed_shard_rebuilds(task, tmp_path):
    # a sharded teacher (model.safetensors.index.json + shards) has no model.safetensors
    sharded = tmp_path / "sharded_teacher"
    sharded.mkdir()
    (sharded / "model.safetensors.index.json").write_text('{"weight_map": {}}', encoding="utf-8")
    for i in (1, 2):
        (sharded / f"model-0000{i}-of-00002.safetensors").write_bytes(b"shard %d v1" % i)
    assert [os.path.basename(f) for f in teacher_cache.weight_files(str(sharded))] == [
        "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", "model.safetensors.index.json"]
    cache = str(tmp_path / "cache")
    features = task.encode(SENTENCES)
    fake = FakeTeacher()
    teacher_cache.load_or_build(cache, str(sharded), task, features, fake)
    teacher_cache.load_or_build(cache, str(sharded), task, features, fake)
    assert fake.calls == 1  # unchanged shards: reused
    (sharded / "model-00002-of-00002.safetensors").write_bytes(b"shard 2 v2, re-trained")
    teacher_cache.load_or_build(cache, str(sharded), task, features, fake)
    assert fake.calls == 2  # one changed shard: rebuilt, never the stale logits


def test_cache_file_has_the_users_umask(task, teacher_dir, tmp_path):
    # mkstemp's 0600 is not the user's choice
    old = os.umask(0o022)
    try:
        teacher_cache.load_or_build(str(tmp_path / "cache"), teacher_dir, task, task.encode(SENTENCES), FakeTeacher())
    finally:
        os.umask(old)
    (name,) = cache_files(str(tmp_path / "cache"))
    assert os.stat(tmp_path / "cache" / name).st_mode & 0o777 == 0o644


def test_pooling_of_windowed_documents_is_part_of_the_key(hand_tokenizer, teacher_dir):
    """Windowed documents are cached as pooled rows: max pooling must not read mean-pooled rows; mean pooling (the
    default) keeps the key that runs made before pooling was keyed."""
    windows = {"stride": 4, "max_windows": None}
    texts = [TextExample("the film was great and the acting was great too", "pos")]
    mean = ClassificationTask(hand_tokenizer, ["neg", "pos"], 8, long_document={**windows, "pooling": "mean"})
    peak = ClassificationTask(hand_tokenizer, ["neg", "pos"], 8, long_document={**windows, "pooling": "max"})
    features = mean.encode(texts)
    assert len(features[0]["windows"]) > 1 and peak.encode(texts)[0]["input_ids"] == features[0]["input_ids"]
    assert teacher_cache.fingerprint(teacher_dir, mean, features) != teacher_cache.fingerprint(teacher_dir, peak,
                                                                                               features)
    # mean pooling adds nothing: the key is what it was before pooling was keyed (as for a task without windows)
    plain = ClassificationTask(hand_tokenizer, ["neg", "pos"], 8)
    assert teacher_cache.fingerprint(teacher_dir, mean, features) == teacher_cache.fingerprint(teacher_dir, plain,
                                                                                               features)
