"""Files of a saved model follow the user's umask (safetensors writes 0600), and a full disk while writing best/
is one line naming the directory."""
import os

import pytest
import safetensors.numpy
from helpers import tiny_config
from safetensors import SafetensorError

from ernie_tiny_distill.errors import UserError
from ernie_tiny_distill.models import build as models
from ernie_tiny_distill.util import fsutil

FULL = 'Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "No space left on device" })'


@pytest.fixture
def model():
    from paddlenlp.transformers import ErnieForSequenceClassification

    return ErnieForSequenceClassification(tiny_config())


def test_saved_model_files_get_the_umask(model, hand_tokenizer, tmp_path):
    old = os.umask(0o027)
    try:
        models.save_model_dir(model, hand_tokenizer, str(tmp_path / "best"), {"task": "classification"})
    finally:
        os.umask(old)
    modes = {name: os.stat(tmp_path / "best" / name).st_mode & 0o777 for name in os.listdir(tmp_path / "best")}
    assert modes["model.safetensors"] == 0o640
    assert set(modes.values()) == {0o640}, modes


def test_atomic_dir_files_get_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        with fsutil.atomic_dir(str(tmp_path / "d")) as tmp:
            fd = os.open(os.path.join(tmp, "private"), os.O_CREAT | os.O_WRONLY, 0o600)
            os.close(fd)
            os.makedirs(os.path.join(tmp, "sub"))
            os.chmod(os.path.join(tmp, "sub"), 0o700)
    finally:
        os.umask(old)
    assert os.stat(tmp_path / "d" / "private").st_mode & 0o777 == 0o644
    assert os.stat(tmp_path / "d" / "sub").st_mode & 0o777 == 0o755


def test_full_disk_while_writing_best_is_one_line(model, hand_tokenizer, tmp_path, monkeypatch):
    def full(*args, **kwargs):
        raise SafetensorError(FULL)

    from paddlenlp.transformers import model_utils

    monkeypatch.setattr(safetensors.numpy, "save_file", full)
    monkeypatch.setattr(model_utils, "safe_save_file", full)  # PaddleNLP's save_pretrained imports it by name
    best = tmp_path / "run" / "best"
    with pytest.raises(UserError, match=rf"^{best}: could not write the model: no space left on device\n"
                                        r"  hint: free some space"):
        models.save_model_dir(model, hand_tokenizer, str(best), {"task": "classification"})
    assert os.listdir(tmp_path / "run") == []  # the temporary directory is gone


def test_stale_temporary_folders_of_the_same_destination_are_removed(tmp_path):
    dead = tmp_path / ".exp.tmp-999999999-abcd"   # left by a process killed with -9 (no such pid)
    legacy = tmp_path / ".exp.tmp-k2j4h5g6"       # an earlier version's name (no pid)
    alive = tmp_path / f".exp.tmp-{os.getpid()}-efgh"  # a running export of the same destination
    other = tmp_path / ".other.tmp-999999999-abcd"   # another destination's
    for d in (dead, legacy, alive, other):
        d.mkdir()
    with fsutil.atomic_dir(str(tmp_path / "exp")) as tmp:
        assert os.path.basename(tmp).startswith(f".exp.tmp-{os.getpid()}-")
    assert sorted(os.listdir(tmp_path)) == sorted(["exp", alive.name, other.name])


def test_export_removes_what_a_killed_export_left(cls_model, tmp_path):
    from ernie_tiny_distill.deploy import export as ex

    (tmp_path / ".exp.tmp-999999999-abcd").mkdir()
    ex.export_model(cls_model, str(tmp_path / "exp"), verify=False)
    assert os.listdir(tmp_path) == ["exp"]
