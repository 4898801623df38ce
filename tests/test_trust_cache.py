"""The teacher-logit cache is keyed by content (not path, size, mtime), detects an edited cache file, says which file
a full disk stopped, and removes caches of weights the teacher no longer has."""
import errno
import logging
import os

import numpy as np
import pytest
from test_teacher_cache import LABELS, SENTENCES, FakeTeacher, cache_files

from ernie_tiny_distill.distill import teacher_cache
from ernie_tiny_distill.errors import UserError
from ernie_tiny_distill.tasks.tagging import TaggingTask


@pytest.fixture
def task(hand_tokenizer):
    return TaggingTask(hand_tokenizer, LABELS, max_seq_length=32)


def test_same_size_and_mtime_new_content_is_a_new_key(task, teacher_dir, tmp_path):
    weights = os.path.join(teacher_dir, "model.safetensors")
    features = task.encode(SENTENCES)
    fake = FakeTeacher()
    teacher_cache.load_or_build(str(tmp_path / "cache"), teacher_dir, task, features, fake)
    st = os.stat(weights)
    with open(weights, "wb") as f:
        f.write(b"weights v2")  # re-trained: same size, and the copy keeps the old times
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns))
    teacher_cache._DIGESTS.clear()  # a new process
    teacher_cache.load_or_build(str(tmp_path / "cache"), teacher_dir, task, features, fake)
    assert fake.calls == 2
    # and the same content under another path (a copied teacher) hits the same cache
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "model.safetensors").write_bytes(b"weights v2")
    teacher_cache.load_or_build(str(tmp_path / "cache"), str(copy), task, features, fake)
    assert fake.calls == 2


def test_an_edited_cache_file_is_detected_and_rebuilt(task, teacher_dir, tmp_path, caplog):
    cache = str(tmp_path / "cache")
    features = task.encode(SENTENCES)
    fake = FakeTeacher()
    rows, offsets = teacher_cache.load_or_build(cache, teacher_dir, task, features, fake)
    (name,) = cache_files(cache)
    path = os.path.join(cache, name)
    with np.load(path) as z:
        meta = z["meta"]
    np.savez(path, rows=rows + 1.0, offsets=offsets, meta=meta)  # same shapes and key, other logits
    with caplog.at_level(logging.WARNING, logger="ernie_tiny_distill.distill.teacher_cache"):
        again, _ = teacher_cache.load_or_build(cache, teacher_dir, task, features, fake)
    assert fake.calls == 2
    np.testing.assert_array_equal(again, rows)
    assert f"teacher-logit cache {path} was changed after it was written (its blake2b differs from " \
           f"{name[:-4]}.json); rebuilding" in caplog.text


def test_full_disk_names_the_cache_file(task, teacher_dir, tmp_path, monkeypatch):
    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "savez", no_space)
    cache = tmp_path / "cache"
    features = task.encode(SENTENCES)
    key = teacher_cache.fingerprint(teacher_dir, task, features)
    with pytest.raises(UserError, match=rf"^{cache}/teacher_logits-{key}\.npz: could not write the teacher-logit "
                                        r"cache: no space left on device\n  hint: free some space"):
        teacher_cache.load_or_build(str(cache), teacher_dir, task, features, FakeTeacher())
    assert os.listdir(cache) == []  # no temporary file left


def test_caches_of_replaced_weights_are_pruned_others_kept(task, teacher_dir, tmp_path):
    cache = str(tmp_path / "cache")
    features = task.encode(SENTENCES)
    other = tmp_path / "other_teacher"
    other.mkdir()
    (other / "model.safetensors").write_bytes(b"another teacher")
    teacher_cache.load_or_build(cache, teacher_dir, task, features, FakeTeacher())
    teacher_cache.load_or_build(cache, teacher_dir, task, features[:2], FakeTeacher())  # other data: kept
    teacher_cache.load_or_build(cache, str(other), task, features, FakeTeacher())
    assert len(cache_files(cache)) == 3
    with open(os.path.join(teacher_dir, "model.safetensors"), "wb") as f:
        f.write(b"weights v2, re-trained")
    teacher_cache.load_or_build(cache, teacher_dir, task, features, FakeTeacher())
    keys = {teacher_cache.fingerprint(teacher_dir, task, features), teacher_cache.fingerprint(str(other), task,
                                                                                             features)}
    assert cache_files(cache) == sorted(f"teacher_logits-{k}.npz" for k in keys)
