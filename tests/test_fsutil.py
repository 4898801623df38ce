"""fsutil: the one atomic-write helper; files and directories appear complete under their name or not at all."""
from __future__ import annotations

import json
import os
import stat

import pytest

from ernie_tiny_distill.util import fsutil


@pytest.fixture
def umask_027():
    old = os.umask(0o027)
    yield
    os.umask(old)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_write_text_and_json_replace_the_file_with_the_users_umask(tmp_path, umask_027):
    path = tmp_path / "sub" / "a.json"  # the parent is created
    fsutil.write_text(str(path), "old\n")
    fsutil.write_json(str(path), {"b": [1, 2], "é": float("inf")}, ensure_ascii=False)
    assert path.read_text(encoding="utf-8") == '{\n  "b": [\n    1,\n    2\n  ],\n  "é": Infinity\n}\n'
    assert mode(path) == 0o640  # 0666 & ~027, not mkstemp's 0600
    assert os.listdir(path.parent) == ["a.json"]
    with pytest.raises(ValueError):  # refused before anything is written: the old file stays
        fsutil.write_json(str(path), {"x": float("nan")}, allow_nan=False)
    assert json.loads(path.read_text(encoding="utf-8").replace("Infinity", "1")) == {"b": [1, 2], "é": 1}
    assert os.listdir(path.parent) == ["a.json"]


def test_atomic_path_failure_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "cache.npz"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="half-way"):
        with fsutil.atomic_path(str(path)) as tmp:
            assert os.path.dirname(tmp) == str(tmp_path) and tmp.endswith(".tmp")
            with open(tmp, "wb") as f:
                f.write(b"ne")
            raise RuntimeError("crash half-way")
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["cache.npz"]


def test_atomic_dir_replaces_a_directory_with_the_users_umask(tmp_path, umask_027):
    out = tmp_path / "model"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with fsutil.atomic_dir(str(out)) as tmp:
        with open(os.path.join(tmp, "new.txt"), "w") as f:
            f.write("new")
    assert sorted(os.listdir(out)) == ["new.txt"] and mode(out) == 0o750  # 0777 & ~027, not mkdtemp's 0700
    assert os.listdir(tmp_path) == ["model"]  # no .model.tmp-* or .model.old-* left


def test_atomic_dir_puts_the_old_directory_back_when_the_final_rename_fails(tmp_path, monkeypatch):
    out = tmp_path / "model"
    out.mkdir()
    (out / "old.txt").write_text("old")
    real_replace = os.replace

    def failing_replace(src, dst):
        if os.path.basename(str(src)).startswith(".model.tmp-"):
            raise OSError(28, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="No space left"):
        with fsutil.atomic_dir(str(out)) as tmp:
            with open(os.path.join(tmp, "new.txt"), "w") as f:
                f.write("new")
    monkeypatch.undo()
    assert os.listdir(out) == ["old.txt"] and (out / "old.txt").read_text() == "old"
    assert os.listdir(tmp_path) == ["model"]
