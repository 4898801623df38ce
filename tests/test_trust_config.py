"""Config values and files that are not meaningful are one-line errors naming the key/file, never tracebacks."""
import pytest

from ernie_tiny_distill.config import load_config
from ernie_tiny_distill.errors import UserError

BASE = ["stage=teacher", "output_dir=runs/trust-cfg-never-written", "model.teacher=minilm", "data.format=demo"]


@pytest.mark.parametrize("value", ["-1", "4294967296"])
def test_seed_outside_what_numpy_and_paddle_accept_is_refused(value):
    with pytest.raises(UserError, match=rf"^config key 'train\.seed' must be in \[0, 4294967295\] \(numpy's seed range\), got {value}$"):
        load_config(None, BASE + [f"train.seed={value}"])


@pytest.mark.parametrize("key", ["weight_decay", "max_grad_norm"])
def test_negative_weight_decay_and_grad_norm_are_refused(key):
    with pytest.raises(UserError, match=rf"^config key 'train\.{key}' must be >= 0, got -1"):
        load_config(None, BASE + [f"train.{key}=-1"])


def test_edge_values_are_still_accepted():
    cfg = load_config(None, BASE + ["train.seed=0", "train.max_grad_norm=0", "train.weight_decay=0"])
    assert (cfg.train.seed, cfg.train.max_grad_norm, cfg.train.weight_decay) == (0, 0, 0)
    assert load_config(None, BASE + ["train.seed=4294967295"]).train.seed == 4294967295


def test_non_utf8_config_names_the_file_and_byte(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("output_dir: runs/x\n# caf\xe9\n".encode("latin-1"))
    with pytest.raises(UserError, match=rf"^{path}:2: not UTF-8 text \(byte 0xe9\)") as e:
        load_config(str(path))
    assert "\n" not in str(e.value).split("\n  hint:")[0]


def test_duplicate_yaml_key_is_refused_with_both_lines(tmp_path):
    path = tmp_path / "dup.yaml"
    path.write_text("output_dir: runs/x\ntrain:\n  epochs: 1\n  batch_size: 8\n  epochs: 3\n")
    with pytest.raises(UserError, match=rf"^{path}:5: duplicate config key 'epochs' \(first set on line 3\)"):
        load_config(str(path))
