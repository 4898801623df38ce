"""Bad input in teachers, students and checkpoints: ones that do not fit the data or each other, pickle-only
weights, and paths that cannot be written; every error names what is wrong and says what was expected.

The command line and the data: test_robustness_data.py. See docs/troubleshooting.md for the full list.
"""
import json
import os
import shutil
from pathlib import Path

import numpy as np
import paddle
import pytest
from helpers import cli
from paddlenlp.transformers import BertTokenizer, ErnieModel

from ernie_tiny_distill.config import config_from_dict
from ernie_tiny_distill.errors import UserError
from ernie_tiny_distill.models import build as models
from ernie_tiny_distill.models import convert_pdparams
from ernie_tiny_distill.models.random_teacher import write_random_teacher
from ernie_tiny_distill.train.stages import run_stage

ROOT = Path(__file__).resolve().parents[1]
CONVERT = str(ROOT / "tools" / "convert_checkpoint.py")


def config(ws, name, task="classification", stage="teacher", **sections):
    raw = {"task": task, "stage": stage, "output_dir": str(ws["root"] / name),
           "data": {"format": "demo", "path": ws["demo"], "max_train_examples": 16, "max_dev_examples": 8,
                    "max_test_examples": 8},
           "model": {"teacher": ws["teacher"], "max_seq_length": 32},
           "train": {"max_steps": 1, "batch_size": 8, "progress": False, "num_threads": 1}}
    for key, value in sections.items():
        raw[key] = {**raw.get(key, {}), **value}
    return config_from_dict(raw)


def teacher_run_like(ws, name, metadata):
    """A copy of the tiny teacher with the task.json a fine-tuned teacher run leaves in best/."""
    path = ws["root"] / name
    shutil.copytree(ws["teacher"], path)
    (path / models.TASK_FILE).write_text(json.dumps(metadata), encoding="utf-8")
    return str(path)


# ---------------------------------------------------------------- teacher / student / checkpoints that do not fit


def test_student_with_another_vocabulary_is_refused(ws):
    other = write_random_teacher(str(ws["root"] / "other_vocab"), ["completely different words here"],
                                 num_layers=1, hidden_size=16, num_heads=2, intermediate_size=32)
    cfg = config(ws, "vocab", stage="task", model={"student": {"init": "pretrained", "path": other}},
                 distill={"allow_weak_teacher": True})
    with pytest.raises(UserError) as err:
        run_stage(cfg)
    message = str(err.value)
    assert message.startswith(f"{other}: the student's vocabulary (")
    assert "tokens) differs from the teacher's (" in message
    assert message.endswith("; distillation needs one tokenizer for both")


def test_teacher_label_count_disagreeing_with_the_data(ws):
    teacher = teacher_run_like(ws, "three_labels", {"task": "classification", "labels": ["neg", "neutral", "pos"]})
    with pytest.raises(UserError) as err:
        run_stage(config(ws, "labels", stage="task", model={"teacher": teacher,
                                                            "student": {"init": "teacher_layers", "layers": [0]}}))
    assert str(err.value) == (f"model.teacher={teacher}: the teacher was trained with 3 labels "
                              "['neg', 'neutral', 'pos'] but the training data has 2: ['neg', 'pos']")


def test_classification_teacher_for_ner_names_both_tasks(ws):
    teacher = teacher_run_like(ws, "cls_teacher", {"task": "classification", "labels": ["neg", "pos"]})
    cfg = config(ws, "ner_from_cls", task="ner", stage="task",
                 model={"teacher": teacher, "student": {"init": "teacher_layers", "layers": [0]}})
    with pytest.raises(UserError) as err:
        run_stage(cfg)
    assert str(err.value) == f"model.teacher={teacher}: the teacher is a 'classification' model but task is 'ner'"


def test_mlm_distillation_from_a_teacher_without_mlm_head(ws):
    cfg = config(ws, "mlm", stage="general", data={"unlabeled": "demo", "max_unlabeled_examples": 16},
                 model={"student": {"init": "teacher_layers", "layers": [0]}}, distill={"mlm_weight": 1.0})
    with pytest.raises(UserError) as err:
        run_stage(cfg)
    assert str(err.value).startswith(
        f"distill.mlm_weight > 0 needs a teacher with a masked-LM head, and {ws['teacher']!r} has none\n"
        "  hint: set distill.mlm_weight=0")


# ---------------------------------------------------------------- pickles


@pytest.fixture(scope="module")
def legacy_dir(ws):
    """A PaddleNLP directory whose weights are pickled: config + tokenizer + paddle.save(state_dict)."""
    path = ws["root"] / "legacy"
    model = ErnieModel.from_pretrained(ws["teacher"])
    path.mkdir()
    model.config.save_pretrained(str(path))
    BertTokenizer.from_pretrained(ws["teacher"]).save_pretrained(str(path))
    paddle.save(model.state_dict(), str(path / "model_state.pdparams"))
    return path


def refuse_unpickling(monkeypatch):
    def no(*args, **kwargs):
        raise AssertionError("paddle.load (pickle) was called")

    monkeypatch.setattr(paddle, "load", no)
    monkeypatch.setattr(paddle.framework.io, "load", no)


def test_pickle_only_teacher_is_refused_with_the_conversion_hint(ws, legacy_dir, monkeypatch, tmp_path):
    refuse_unpickling(monkeypatch)
    with pytest.raises(UserError) as err:
        run_stage(config(ws, "pickle", model={"teacher": str(legacy_dir)}))
    assert str(err.value) == (
        f"{legacy_dir} has no .safetensors weights; only safetensors checkpoints are loaded\n"
        "  hint: convert a trusted .pdparams checkpoint once with "
        "`python tools/convert_checkpoint.py --src DIR --dst NEW_DIR --allow-pickle`")

    # some other *.safetensors file next to the pickle does not make PaddleNLP read safetensors: still refused
    decoy = tmp_path / "decoy"
    shutil.copytree(legacy_dir, decoy)
    (decoy / "adapter.safetensors").write_bytes(b"")
    with pytest.raises(UserError, match="has no .safetensors weights"):
        models.load_model(str(decoy), ErnieModel)


def test_convert_pdparams_needs_allow_pickle_then_gives_identical_weights(ws, legacy_dir, tmp_path):
    with pytest.raises(UserError, match=r"refusing to load pickled \.pdparams weights .*\n  hint: .*--allow-pickle"):
        convert_pdparams.convert_pdparams(str(legacy_dir), str(tmp_path / "refused"))
    assert not (tmp_path / "refused").exists()

    warnings = []
    dst = convert_pdparams.convert_pdparams(str(legacy_dir), str(tmp_path / "converted"), allow_pickle=True,
                                   warn=warnings.append)
    assert len(warnings) == 1 and "unpickling can run arbitrary code" in warnings[0]
    assert not any(f.endswith(".pdparams") for f in os.listdir(dst))
    converted, original = models.load_model(dst, ErnieModel), models.load_model(ws["teacher"], ErnieModel)
    a, b = converted.state_dict(), original.state_dict()
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key].numpy(), b[key].numpy(), err_msg=key)
    assert models.load_tokenizer(dst).get_vocab() == models.load_tokenizer(ws["teacher"]).get_vocab()


def test_convert_checkpoint_cli_allow_pickle(legacy_dir, tmp_path):
    refused = cli(CONVERT, "--src", str(legacy_dir), "--dst", str(tmp_path / "a"))
    assert refused.returncode == 2
    assert refused.stderr.startswith(f"error: {legacy_dir}: refusing to load pickled .pdparams weights")
    assert "--allow-pickle" in refused.stderr and "Traceback" not in refused.stderr

    done = cli(CONVERT, "--src", str(legacy_dir), "--dst", str(tmp_path / "b"), "--allow-pickle")
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"warning: loading pickled weights (.pdparams) from {legacy_dir}: unpickling can run arbitrary code" \
        in done.stderr
    assert done.stdout.startswith(f"wrote {tmp_path / 'b'}: ")
    assert (tmp_path / "b" / "model.safetensors").is_file()


def test_no_unsafe_loading_in_the_package():
    """Pickle only behind --allow-pickle; numpy never unpickles; no shell commands built from paths."""
    offenders = []
    for folder in ("ernie_tiny_distill", "tools"):
        for path in sorted((ROOT / folder).glob("*.py")):
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                code = line.split("#")[0]
                bad = ("shell=True" in code or "os.system(" in code or "os.popen(" in code
                       or "pickle.load" in code or "yaml.load(" in code
                       or ("np.load(" in code and "allow_pickle=False" not in code)
                       or ("paddle.load(" in code and path.name != "convert_pdparams.py"))
                if bad:
                    offenders.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert offenders == []
    source = (ROOT / "ernie_tiny_distill" / "models" / "convert_pdparams.py").read_text(encoding="utf-8")
    body = source[source.index("def convert_pdparams"):]
    assert body.index("if not allow_pickle:") < body.index("paddle.load(")


def test_full_disk_or_unwritable_path_is_a_clean_error(capsys):
    import errno

    from ernie_tiny_distill.cli import main_wrapper

    def full():
        raise OSError(errno.ENOSPC, "No space left on device", "/runs/x/best/model.safetensors")

    assert main_wrapper(full, debug=False) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: /runs/x/best/model.safetensors: No space left on device\n  hint: free some space")
    assert "resumes from the last complete checkpoint" in err and "Traceback" not in err
    assert main_wrapper(full, debug=True) == 2
    assert "Traceback (most recent call last)" in capsys.readouterr().err

    def read_only():
        raise OSError(errno.EROFS, "Read-only file system", "/runs/x")

    assert main_wrapper(read_only, debug=False) == 2
    assert capsys.readouterr().err.startswith("error: /runs/x: Read-only file system\n  hint: the file system is")

    def bug():
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", "/internal")

    with pytest.raises(FileNotFoundError):  # anything else is a bug: it keeps its traceback
        main_wrapper(bug, debug=False)
