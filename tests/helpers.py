"""Shared test helpers: a hand-written WordPiece vocabulary, a tiny ERNIE config, running a tools/ script
in-process (Paddle is imported once per test session instead of once per command), and what the reader tests
(test_readers_*.py) share.

Session fixtures built from these (hand_tokenizer, tiny_teacher_dir, the deployment models, ...) live in
conftest.py.
"""
from __future__ import annotations

import contextlib
import importlib.util
import io
import logging
import os
import re
import runpy
import subprocess
import sys
import traceback
import warnings
from pathlib import Path

import numpy as np
import pytest

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


def call_in_process(argv, stdout=None, stderr=None, env=None) -> int:
    """subprocess.call([sys.executable, SCRIPT | -m MODULE, *args], ...) run in this process: the program runs as
    __main__ with that argv and `env`, its output goes to stdout/stderr (subprocess.STDOUT: to stdout), an
    exception is printed there and gives status 1, as in a child process."""
    if argv[0] != sys.executable:
        raise ValueError(f"call_in_process runs Python programs only, got {argv[0]!r}")
    module = argv[1] == "-m"
    target, args = (argv[2], argv[3:]) if module else (argv[1], argv[2:])
    out = stdout or sys.stdout
    err = out if stderr == subprocess.STDOUT else (stderr or sys.stderr)
    saved_env, saved_argv = dict(os.environ), sys.argv
    os.environ.clear()
    os.environ.update(env or saved_env)
    sys.argv = [target, *args]
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings():
            # the module is already imported here; its __main__ run is a fresh namespace, as in a child process
            warnings.filterwarnings("ignore", message=".*found in sys.modules after import of package",
                                    category=RuntimeWarning)
            try:
                if module:
                    runpy.run_module(target, run_name="__main__", alter_sys=True)
                else:
                    runpy.run_path(target, run_name="__main__")
            except SystemExit as e:
                return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            except Exception:  # noqa: BLE001 - a child process prints its traceback and exits with 1
                traceback.print_exc()
                return 1
        return 0
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        sys.argv = saved_argv


# ---------------------------------------------------------------- deployment: tiny task models (conftest.py)


def _has(module: str) -> bool:
    try:
        __import__(module)
        return True
    except ImportError:
        return False


HAS_ORT = _has("onnxruntime") and _has("paddle2onnx")
HAS_ORT_QUANT = HAS_ORT and _has("onnxruntime.quantization")  # needs ml_dtypes too
RIGGED_WORDS = ["angela", "merkel", "berlin"]  # always in the random teacher's vocabulary (see rig_ner_model)
NER_MAX_LEN = 24  # short, so the window tests need few words


def build_task_model(deploy_root, task: str, out: str, *, max_seq_length: int = 64, rig: bool = False,
                     truncation: str = "head"):
    """A trained-format model dir (config, safetensors, tokenizer, task.json) from the random teacher."""
    if os.path.isfile(os.path.join(out, "task.json")):
        return out
    from paddlenlp.transformers import ErnieForSequenceClassification, ErnieForTokenClassification

    from ernie_tiny_distill.models import build as models
    from ernie_tiny_distill.tasks import adapters as tasks

    tokenizer = models.load_tokenizer(deploy_root["teacher"])
    labels = ["neg", "pos"] if task == "classification" else deploy_root["ner_labels"]
    cls = ErnieForSequenceClassification if task == "classification" else ErnieForTokenClassification
    model = models.load_model(deploy_root["teacher"], cls, num_labels=len(labels))
    if task == "classification":
        _sharpen_head(model)
    if rig:
        rig_ner_model(model, tokenizer, labels)
    meta = tasks.make_task(task, tokenizer, labels, max_seq_length, truncation).metadata()
    meta.update(stage="teacher", dev=None)
    models.save_model_dir(model, tokenizer, out, meta)
    return out


def _sharpen_head(model):
    """Scale the random classifier up so predictions have margins (INT8 agreement means something)."""
    import paddle

    with paddle.no_grad():
        model.classifier.weight.set_value(model.classifier.weight * 40.0)


def rig_ner_model(model, tokenizer, labels):
    """Deterministic tagger: every layer is the identity (zeroed output projections), and the words
    'angela'/'merkel'/'berlin' get embeddings along directions the classifier maps to B-PER/I-PER/B-LOC;
    everything else is 'O'. The tags then do not depend on context, padding or windows."""
    import paddle

    hidden = model.ernie.config.hidden_size
    rng = np.random.default_rng(0)
    directions = np.linalg.qr(rng.normal(size=(hidden, 3)))[0].T.astype("float32")  # 3 orthonormal rows
    with paddle.no_grad():
        for layer in model.ernie.encoder.layers:
            for lin in (layer.self_attn.out_proj, layer.linear2):
                lin.weight.set_value(paddle.zeros_like(lin.weight))
                lin.bias.set_value(paddle.zeros_like(lin.bias))
        emb = model.ernie.embeddings.word_embeddings.weight.numpy()
        for word, d in zip(RIGGED_WORDS, directions):
            emb[tokenizer.convert_tokens_to_ids(word)] = 10.0 * d
        model.ernie.embeddings.word_embeddings.weight.set_value(emb)
        weight = np.zeros((hidden, len(labels)), dtype="float32")
        bias = np.full(len(labels), -20.0, dtype="float32")
        bias[labels.index("O")] = 4.0
        for tag, d in zip(["B-PER", "I-PER", "B-LOC"], directions):
            weight[:, labels.index(tag)] = d
            bias[labels.index(tag)] = 0.0
        model.classifier.weight.set_value(weight)
        model.classifier.bias.set_value(bias)


def demo_ner_teacher(root, name: str = "random_teacher", **shape) -> str:
    """Write the demo data to root/demo and a random teacher (vocabulary from the demo NER text) to root/name."""
    from ernie_tiny_distill.data.demo import write_demo_data
    from ernie_tiny_distill.models.random_teacher import write_random_teacher

    paths = write_demo_data(str(root / "demo"))
    with open(paths["ner_unlabeled"], encoding="utf-8") as f:
        texts = f.read().splitlines()
    return write_random_teacher(str(root / name), texts, **shape)


# ---------------------------------------------------------------- data readers (test_readers_*.py)

SHARED = ROOT / ".." / "shared" / "datasets"  # the real data sets, on machines that have them
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason=f"shared datasets not found at {SHARED}")


def at(path, line=None):
    """Regex for the 'file:line: ' prefix of a UserError message."""
    return re.escape(f"{path}:{line}: " if line is not None else f"{path}: ")


def warnings_of(caplog):
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


# ---------------------------------------------------------------- config (test_config_*.py)

# the smallest valid stage-2 config
BASE = ["output_dir=out", "model.teacher=teacher_dir", "model.student.every_k=2"]


def write(tmp_path, text: str, name: str = "run.yaml") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def load(*overrides, path=None):
    from ernie_tiny_distill.config import load_config

    return load_config(path, list(BASE) + list(overrides))


def fails(match: str, *overrides, path=None, base=True):
    from ernie_tiny_distill.config import load_config
    from ernie_tiny_distill.errors import UserError

    with pytest.raises(UserError, match=match) as info:
        load_config(path, (list(BASE) if base else []) + list(overrides))
    return str(info.value)


# ---------------------------------------------------------------- robustness (test_robustness_*.py)


def cli(script, *args):
    """Run a tools/ script in this process (run_tool): exit code, stdout and stderr as a shell sees them."""
    return run_tool(os.path.basename(script), *args)


def random_teacher_workspace(tmp_path_factory, demo_root, name: str, **shape) -> dict:
    """A workspace of the session's demo data and a random teacher of `shape` whose vocabulary covers it."""
    from ernie_tiny_distill.data.demo import write_demo_data
    from ernie_tiny_distill.models.random_teacher import write_random_teacher

    root = tmp_path_factory.mktemp(name)
    paths = write_demo_data(str(demo_root))  # the session's demo data (already written: returns its paths)
    with open(paths["sentiment_unlabeled"], encoding="utf-8") as f:
        texts = f.read().splitlines()
    teacher = write_random_teacher(str(root / "pretrained"), texts, **shape)
    return {"root": root, "demo": str(demo_root), "teacher": teacher}


def committed_report_without(drop) -> tuple:
    """The committed benchmarks/results.json rows and docs/benchmarks.md as they would be without the recorded rows
    for which `drop(row)` is true (their table and the ablation re-rendered, their command entries removed)."""
    import json

    from benchmarks.full_teacher import command_entry, table_block
    from benchmarks.full_teacher_students import with_ablation

    rows = json.loads((ROOT / "benchmarks" / "results.json").read_text(encoding="utf-8"))
    markdown = (ROOT / "docs" / "benchmarks.md").read_text(encoding="utf-8")
    for row in [r for r in rows if drop(r)]:
        kept = [r for r in rows if r is not row]
        markdown = markdown.replace(table_block(rows, row["task"]), table_block(kept, row["task"]))
        markdown = markdown.replace(command_entry(row), "")
        rows = kept
    return rows, with_ablation(markdown, rows, "docs/benchmarks.md")
