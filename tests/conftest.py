"""Shared pytest setup: the `slow` marker (deselect with `-m "not slow"`) and session fixtures built once."""
from pathlib import Path

import pytest
from helpers import TEACHER_TEXTS, make_tokenizer


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: takes more than a few seconds (reads a real dataset)")


@pytest.fixture(scope="session")
def hand_tokenizer(tmp_path_factory):
    """A BertTokenizer over helpers.HAND_VOCAB (ids are the list positions)."""
    return make_tokenizer(tmp_path_factory.mktemp("hand_vocab"))


@pytest.fixture(scope="session")
def tiny_teacher_dir(tmp_path_factory) -> Path:
    """A random 4-layer, 32-wide, 2-head ErnieModel directory (safetensors + vocab.txt)."""
    from ernie_tiny_distill.random_teacher import write_random_teacher

    path = tmp_path_factory.mktemp("tiny_teacher") / "teacher"
    write_random_teacher(str(path), TEACHER_TEXTS, num_layers=4, hidden_size=32, num_heads=2,
                         intermediate_size=64, seed=0)
    return path


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory) -> Path:
    """The demo data set (ernie_tiny_distill.demo_data, default sizes) written once per session."""
    from ernie_tiny_distill.demo_data import write_demo_data

    root = tmp_path_factory.mktemp("demo_data")
    write_demo_data(str(root))
    return root
