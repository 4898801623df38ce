"""tools/train.py end to end: teacher -> stage 1 -> stage 2 on tiny data, driven by YAML + key=value overrides."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ernie_tiny_distill.demo_data import write_demo_data
from ernie_tiny_distill.random_teacher import write_random_teacher

ROOT = Path(__file__).resolve().parents[1]
TRAIN = str(ROOT / "tools" / "train.py")

TINY = [
    "train.batch_size=8", "train.learning_rate=0.003", "train.progress=false", "train.log_every=2",
    "data.max_train_examples=48", "data.max_dev_examples=24", "data.max_test_examples=24",
    "data.max_unlabeled_examples=48", "model.max_seq_length=48",
]


def train(*args, check=True):
    result = subprocess.run([sys.executable, TRAIN, *args], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    if check:
        assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def tiny_setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    paths = write_demo_data(str(root / "demo"))
    with open(paths["sentiment_unlabeled"], encoding="utf-8") as f:
        texts = f.read().splitlines()
    teacher = write_random_teacher(str(root / "pretrained"), texts, num_layers=2, hidden_size=32, num_heads=2,
                                   intermediate_size=64)
    return root, teacher


def test_three_stages_through_the_cli(tiny_setup):
    root, pretrained = tiny_setup
    common = [f"data.path={root / 'demo'}", *TINY]
    out = train("--config", str(ROOT / "configs" / "demo_cls_teacher.yaml"), *common,
                f"model.teacher={pretrained}", f"output_dir={root / 'teacher'}", "train.epochs=3")
    printed = json.loads(out.stdout)
    assert printed["stage"] == "teacher" and 0.0 <= printed["test"]["accuracy"] <= 1.0

    train("--config", str(ROOT / "configs" / "demo_cls_general.yaml"), *common, f"model.teacher={pretrained}",
          f"output_dir={root / 'general'}", "model.student.layers=[1]")
    assert (root / "general" / "best" / "model.safetensors").is_file()

    out = train("--config", str(ROOT / "configs" / "demo_cls_task.yaml"), *common,
                f"model.teacher={root / 'teacher'}", f"model.student.path={root / 'general' / 'best'}",
                f"output_dir={root / 'student'}", "distill.allow_weak_teacher=true")
    printed = json.loads(out.stdout)
    assert printed["stage"] == "task"
    metrics = json.loads((root / "student" / "best" / "metrics.json").read_text())
    assert metrics["test"]["num_examples"] == 24
    summary = json.loads((root / "student" / "summary.json").read_text())
    assert summary["layers"] == 1 and summary["transfer_examples"] == 48


def test_config_errors_exit_2_without_traceback(tmp_path):
    result = train("--config", str(ROOT / "configs" / "demo_cls_teacher.yaml"), "train.learnig_rate=0.1",
                   check=False)
    assert result.returncode == 2
    assert "unknown config key 'train.learnig_rate'" in result.stderr
    assert "did you mean 'learning_rate'" in result.stderr
    assert "Traceback" not in result.stderr
