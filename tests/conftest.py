"""Shared pytest setup: the `slow` marker (deselect with `-m "not slow"`) and session fixtures built once."""
import contextlib
import fcntl
import os
from pathlib import Path

import pytest
from helpers import HAS_ORT, NER_MAX_LEN, TEACHER_TEXTS, build_task_model, make_tokenizer, random_teacher_workspace


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: takes more than a few seconds (reads a real dataset)")


@pytest.fixture(scope="session")
def hand_tokenizer(tmp_path_factory):
    """A BertTokenizer over helpers.HAND_VOCAB (ids are the list positions)."""
    return make_tokenizer(tmp_path_factory.mktemp("hand_vocab"))


@pytest.fixture(scope="session")
def tiny_teacher_dir(tmp_path_factory) -> Path:
    """A random 4-layer, 32-wide, 2-head ErnieModel directory (safetensors + vocab.txt)."""
    from ernie_tiny_distill.models.random_teacher import write_random_teacher

    path = tmp_path_factory.mktemp("tiny_teacher") / "teacher"
    write_random_teacher(str(path), TEACHER_TEXTS, num_layers=4, hidden_size=32, num_heads=2,
                         intermediate_size=64, seed=0)
    return path


@pytest.fixture
def teacher_dir(tmp_path):
    """A teacher directory whose weights file the teacher-logit cache tests rewrite (content "weights v1")."""
    d = tmp_path / "teacher"
    d.mkdir()
    (d / "model.safetensors").write_bytes(b"weights v1")
    return str(d)


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory) -> Path:
    """The demo data set (ernie_tiny_distill.data.demo, default sizes) written once per session."""
    from ernie_tiny_distill.data.demo import write_demo_data

    root = tmp_path_factory.mktemp("demo_data")
    write_demo_data(str(root))
    return root


@pytest.fixture(scope="module")
def ws(tmp_path_factory, demo_root):
    """The workspace of the robustness tests (test_robustness_*.py): the demo data and a 1-layer random teacher."""
    return random_teacher_workspace(tmp_path_factory, demo_root, "robust", num_layers=1, hidden_size=16,
                                    num_heads=2, intermediate_size=32)


# ---------------------------------------------------------------- deployment (test_export.py, test_predictor.py)


def shared_dir(tmp_path_factory, name: str) -> Path:
    """A directory for session data that the pytest-xdist workers of one run share (the xdist recipe): the run's
    base directory under xdist, this process's otherwise. Build into it under `locked`."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # the run's directory, above the workers' own
    path = base / name
    path.mkdir(exist_ok=True)
    return path


@contextlib.contextmanager
def locked(directory: Path):
    """Holds an exclusive lock on `directory` (a shared_dir): the first worker builds what is missing while the
    others wait, then they reuse it, so every builder checks what is already there."""
    with open(directory.parent / f"{directory.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield directory
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def deploy_root(tmp_path_factory):
    """Small demo data and a random 2-layer, 64-wide teacher whose vocabulary covers it; the xdist workers share one."""
    from ernie_tiny_distill.data.demo import write_demo_data
    from ernie_tiny_distill.data.readers import read_classification_file, read_conll
    from ernie_tiny_distill.models.random_teacher import write_random_teacher

    with locked(shared_dir(tmp_path_factory, "deploy")) as root:
        paths = write_demo_data(str(root / "demo"), n_train=120, n_dev=20, n_test=40, n_unlabeled=0)
        sentiment = read_classification_file(paths["sentiment_train"])
        ner = read_conll(paths["ner_train"])
        if not (root / "teacher" / "model.safetensors").is_file():
            texts = [e.text for e in sentiment] + [" ".join(s.tokens) for s in ner] + [
                "Angela Merkel visited Berlin and met Angela Merkel in Berlin ."]
            write_random_teacher(str(root / "teacher"), texts, num_layers=2, hidden_size=64, num_heads=4,
                                 intermediate_size=128)
    return {"root": root, "paths": paths, "teacher": str(root / "teacher"),
            "ner_labels": sorted({t for s in ner for t in s.tags})}


@pytest.fixture(scope="session")
def cls_model(deploy_root):
    with locked(deploy_root["root"]):
        return build_task_model(deploy_root, "classification", str(deploy_root["root"] / "cls_model"))


@pytest.fixture(scope="session")
def ner_model(deploy_root):
    with locked(deploy_root["root"]):
        return build_task_model(deploy_root, "ner", str(deploy_root["root"] / "ner_model"),
                                max_seq_length=NER_MAX_LEN, rig=True)


def _export(deploy_root, model_dir: str, name: str) -> str:
    from ernie_tiny_distill.deploy import export as ex
    from ernie_tiny_distill.deploy.layout import EXPORT_FILE

    out = str(deploy_root["root"] / name)
    with locked(deploy_root["root"]):
        if not os.path.isfile(os.path.join(out, EXPORT_FILE)):
            ex.export_model(model_dir, out, onnx=HAS_ORT)
    return out


@pytest.fixture(scope="session")
def cls_export(deploy_root, cls_model):
    return _export(deploy_root, cls_model, "cls_export")


@pytest.fixture(scope="session")
def ner_export(deploy_root, ner_model):
    return _export(deploy_root, ner_model, "ner_export")
