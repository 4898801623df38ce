"""Shared test helpers: a hand-written WordPiece vocabulary, a tiny ERNIE config, and running a tools/ script
in-process (Paddle is imported once per test session instead of once per command).

Session fixtures built from these (hand_tokenizer, tiny_teacher_dir, ...) live in conftest.py.
"""
from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# ids are the list positions: [PAD]=0 [UNK]=1 [CLS]=2 [SEP]=3 [MASK]=4 john=5 ... play=23
HAND_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "john", "lives", "in", "new", "york", "the", "film",
              "was", "un", "##watch", "##able", "great", "bad", ".", "!", "a", "##s", "##ing", "play"]
ID = {piece: i for i, piece in enumerate(HAND_VOCAB)}
PAD, UNK, CLS, SEP = ID["[PAD]"], ID["[UNK]"], ID["[CLS]"], ID["[SEP]"]

# sentences for the random teacher's vocabulary (characters + frequent words)
TEACHER_TEXTS = ["the cat sat on the mat .", "a dog ran in the park !", "John lives in New York .",
                 "the film was great", "the film was bad , unwatchable"]


def write_vocab(directory, pieces=HAND_VOCAB) -> str:
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(str(directory), "vocab.txt")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(pieces) + "\n")
    return path


def make_tokenizer(directory, pieces=HAND_VOCAB):
    from paddlenlp.transformers import BertTokenizer

    return BertTokenizer(vocab_file=write_vocab(directory, pieces), do_lower_case=True)


def tiny_config(vocab_size: int = len(HAND_VOCAB), hidden: int = 16, layers: int = 2, heads: int = 2,
                intermediate: int = 32, num_labels: int = 2):
    """A tiny ErnieConfig without dropout (so forward passes are deterministic in train mode too)."""
    from paddlenlp.transformers import ErnieConfig

    config = ErnieConfig(vocab_size=vocab_size, hidden_size=hidden, num_hidden_layers=layers,
                         num_attention_heads=heads, intermediate_size=intermediate, max_position_embeddings=64,
                         type_vocab_size=2, pad_token_id=0, hidden_dropout_prob=0.0,
                         attention_probs_dropout_prob=0.0)
    config.num_labels = num_labels
    return config


_TOOLS: dict = {}


def run_tool(script: str, *args) -> subprocess.CompletedProcess:
    """Run tools/<script> in this process (its main(argv)); returns its exit code and what it printed.

    What the tool prints to stdout/stderr is captured, so are tracebacks printed by --debug; log records go to
    pytest's log capture as usual.
    """
    if script not in _TOOLS:
        spec = importlib.util.spec_from_file_location(f"tool_{Path(script).stem}", ROOT / "tools" / script)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _TOOLS[script] = module
    argv = [str(a) for a in args]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = _TOOLS[script].main(argv)
        except SystemExit as e:  # argparse errors
            code = e.code
    return subprocess.CompletedProcess([script, *argv], code, out.getvalue(), err.getvalue())
