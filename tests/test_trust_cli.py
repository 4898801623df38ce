"""Command-line values that are not meaningful are refused, not reinterpreted."""
import os
import subprocess
import sys

import pytest

# cls_export: a session fixture of conftest.py (a tiny exported classifier)
from ernie_tiny_distill.deploy import predictor as pr
from ernie_tiny_distill.errors import UserError

PREDICT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools", "predict.py")


def test_predictor_max_seq_length_zero_is_refused(cls_export):
    with pytest.raises(UserError, match=r"max_seq_length must be between 3 and the model's \d+ positions, got 0"):
        pr.Predictor(cls_export, max_seq_length=0)


@pytest.mark.parametrize("flag", ["--max-seq-length", "--batch-size", "--threads"])
def test_predict_cli_zero_is_refused(flag, tmp_path):
    run = subprocess.run([sys.executable, PREDICT, "--model", str(tmp_path), flag, "0", "some text"],
                         capture_output=True, text=True, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert run.returncode == 2
    assert f"error: argument {flag}: must be a positive integer, got '0'" in run.stderr
    assert "Traceback" not in run.stderr


EXIT = ("import atexit; from ernie_tiny_distill.cli import exit_process; atexit.register(print, 'teardown'); "
        "print('summary', end=''); exit_process(3)")


@pytest.mark.parametrize("world, expected", [("2", "summary"), ("1", "summaryteardown")])
def test_distributed_worker_exits_without_interpreter_teardown(world, expected):
    # a launch worker leaves via os._exit after flushing (no C++ static destructors racing with the
    # TCP store / gloo threads); a single process exits normally. Output and exit status are kept either way.
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    run = subprocess.run([sys.executable, "-c", EXIT], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PADDLE_TRAINERS_NUM": world, "PYTHONPATH": root})
    assert (run.returncode, run.stdout.strip()) == (3, expected)
