"""tools/train.py end to end: teacher -> stage 1 -> stage 2 on tiny data, driven by YAML + key=value overrides.

The tool runs in this process (helpers.run_tool): the same main() a shell runs, without re-importing Paddle.
"""
import json
import logging

import pytest
from helpers import ROOT, run_tool

from ernie_tiny_distill.models.random_teacher import write_random_teacher

TINY = [
    "train.batch_size=8", "train.learning_rate=0.003", "train.progress=false", "train.num_threads=1",
    "train.log_every=2",
    "data.max_train_examples=48", "data.max_dev_examples=24", "data.max_test_examples=24",
    "data.max_unlabeled_examples=48", "model.max_seq_length=48",
]


def train(*args, check=True):
    result = run_tool("train.py", *args)
    if check:
        assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def tiny_setup(tmp_path_factory, demo_root):
    root = tmp_path_factory.mktemp("e2e")
    with open(demo_root / "sentiment" / "unlabeled.txt", encoding="utf-8") as f:
        texts = f.read().splitlines()
    teacher = write_random_teacher(str(root / "pretrained"), texts, num_layers=2, hidden_size=32, num_heads=2,
                                   intermediate_size=64)
    return root, teacher


def test_three_stages_through_the_cli(tiny_setup, demo_root):
    root, pretrained = tiny_setup
    common = [f"data.path={demo_root}", *TINY]
    out = train("--config", ROOT / "configs" / "demo_cls_teacher.yaml", *common,
                f"model.teacher={pretrained}", f"output_dir={root / 'teacher'}", "train.epochs=3")
    printed = json.loads(out.stdout)
    written = json.loads((root / "teacher" / "best" / "metrics.json").read_text())
    assert printed["stage"] == "teacher" and printed["test"]["num_examples"] == 24
    # what it prints is what it wrote, and an accuracy on 24 examples is a count of correct ones / 24
    assert printed["test"]["accuracy"] == written["test"]["accuracy"]
    assert printed["test"]["accuracy"] * 24 == pytest.approx(round(printed["test"]["accuracy"] * 24), abs=1e-9)

    train("--config", ROOT / "configs" / "demo_cls_general.yaml", *common, f"model.teacher={pretrained}",
          f"output_dir={root / 'general'}", "model.student.layers=[1]")
    assert (root / "general" / "best" / "model.safetensors").is_file()

    out = train("--config", ROOT / "configs" / "demo_cls_task.yaml", *common,
                f"model.teacher={root / 'teacher'}", f"model.student.path={root / 'general' / 'best'}",
                f"output_dir={root / 'student'}", "distill.allow_weak_teacher=true")
    printed = json.loads(out.stdout)
    assert printed["stage"] == "task"
    metrics = json.loads((root / "student" / "best" / "metrics.json").read_text())
    assert metrics["test"]["num_examples"] == 24
    summary = json.loads((root / "student" / "summary.json").read_text())
    assert summary["layers"] == 1 and summary["transfer_examples"] == 48


def test_config_errors_exit_2_without_traceback(tmp_path):
    result = train("--config", ROOT / "configs" / "demo_cls_teacher.yaml", "train.learnig_rate=0.1",
                   check=False)
    assert result.returncode == 2
    assert "unknown config key 'train.learnig_rate'" in result.stderr
    assert "did you mean 'learning_rate'" in result.stderr
    assert "Traceback" not in result.stderr


def test_train_without_a_config_asks_for_one():
    result = train(check=False)
    assert result.returncode == 2
    assert "error: the following arguments are required: --config" in result.stderr
    assert "output_dir" not in result.stderr


def test_paddlenlp_warnings_are_printed_without_colour_codes():
    from paddlenlp.utils.log import logger as paddlenlp_logger

    from ernie_tiny_distill.cli import quiet_paddlenlp

    quiet_paddlenlp()
    record = logging.LogRecord("paddlenlp", logging.WARNING, __file__, 1, "a warning", None, None)
    line = paddlenlp_logger.handler.format(record)
    assert "\x1b[" not in line
    assert line.endswith(" WARNING paddlenlp: a warning")
    assert paddlenlp_logger.logger.level == logging.WARNING


def test_start_up_noise_is_filtered_but_other_warnings_are_not():
    import warnings

    from ernie_tiny_distill.cli import setup_logging

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        setup_logging()
        warnings.warn("No ccache found. Please be aware that recompiling all source files may be required.")
        warnings.warn("Skip loading for classifier.weight. classifier.weight is not found in the provided dict.")
        warnings.warn("Skip loading for encoder.layers.0.linear1.weight. it is not found in the provided dict.")
    assert [str(w.message) for w in caught] == [
        "Skip loading for encoder.layers.0.linear1.weight. it is not found in the provided dict."]
