"""Conversion never deletes its own source: a destination that is, contains or is inside --src is refused."""
from __future__ import annotations

import os

import pytest
from helpers import run_tool
from test_convert import TINY_CFG, tiny_hf_state, write_hf_dir


@pytest.fixture()
def src(tmp_path):
    return write_hf_dir(tmp_path / "parent" / "bert", tiny_hf_state(TINY_CFG))


@pytest.mark.parametrize("where", ["parent", "same", "inside"])
def test_overwrite_of_a_folder_holding_the_source_is_refused(src, where):
    dst = {"parent": src.parent, "same": src, "inside": src / "converted"}[where]
    if where == "inside":
        dst.mkdir()
        (dst / "old.txt").write_text("x")
    before = sorted(os.listdir(src))
    run = run_tool("convert_checkpoint.py", "--src", src, "--dst", dst, "--overwrite")
    assert run.returncode == 2
    relation = {"parent": "contains", "same": "is", "inside": "is inside"}[where]
    assert f"--dst {dst} {relation} the source {src}" in run.stderr
    assert "Traceback" not in run.stderr
    assert sorted(os.listdir(src)) == before  # the source is untouched


def test_sibling_destination_is_still_converted(src):
    run = run_tool("convert_checkpoint.py", "--src", src, "--dst", src.parent / "ernie", "--overwrite")
    assert run.returncode == 0, run.stderr
    assert (src.parent / "ernie" / "model.safetensors").is_file() and (src / "model.safetensors").is_file()
