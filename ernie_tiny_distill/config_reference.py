"""The configuration reference (docs/configuration.md): every key with its type, default and the comment beside it.

    python -m ernie_tiny_distill.config_reference > docs/configuration.md
"""
from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import io
import sys
import tokenize
import typing
from typing import Dict, List, Tuple

from ernie_tiny_distill import config, extensions
from ernie_tiny_distill.config_schema import type_name

# Keys whose field has no comment in config.py; a key with neither is reported by tests/test_config_loading.py.
MEANINGS = {
    "data.dev_text_column": "the dev file's own text column (null = data.text_column)",
    "data.test_text_column": "the test file's own text column (null = data.text_column)",
    "data.subset": "which examples max_*_examples keeps: a seeded random subset (random) or the first N (first)",
    "data.unlabeled_column": "the column of a .csv/.tsv/.jsonl data.unlabeled file that holds the text",
    "data.unlabeled_rows": "[first, end): 0-based rows of the data.unlabeled file to read (end null = to its end)",
    "task": "what the model predicts: one label per text, or one tag per word (named entities)",
    "stage": "what this run trains: the teacher, a stage-1 (general) student, a stage-2 (task) student, or a "
             "stage an installed extension adds",
    "output_dir": "the run directory: checkpoints, best/, summary.json, config.yaml, train_log.jsonl",
    "data.format": "which reader reads data.path / the *_file keys",
    "data.train_file": "csv/tsv/jsonl: the training file",
    "data.dev_file": "csv/tsv/jsonl: the dev file (null = carved from train, see dev_size)",
    "data.test_file": "csv/tsv/jsonl: the test file (null = no test split)",
    "data.label_column": "csv/tsv/jsonl: the label column, a name or (csv/tsv) a 0-based position",
    "data.header": "csv/tsv: false = the file has no header row (columns are positions)",
    "data.first_label_id": "the label id the first line of a label_names file names",
    "data.split_seed": "seed of the train/dev split carved by dev_size",
    "data.max_train_examples": "read at most this many training examples (null = all)",
    "data.max_dev_examples": "read at most this many dev examples (null = all)",
    "data.max_unlabeled_examples": "read at most this many unlabeled documents (null = all)",
    "data.iob_repair": "conll/msra tags in IOB1 (an I- that starts an entity): convert to IOB2, or reject the file",
    "data.unknown_eval_labels": "a dev/test label never seen in training: an error, or (tagging) read as O",
    "data.encoding_errors": "bytes that are not UTF-8: replace with U+FFFD, or refuse the file",
    "data.skip_empty": "csv/tsv/jsonl: skip records with an empty text instead of refusing the file",
    "data.cache_dir": "where teacher caches go (null = beside the teacher, else in the run directory)",
    "model.max_seq_length": "word pieces per input, [CLS] and [SEP] included",
    "model.truncation": "longer inputs keep their head, or their head and tail",
    "model.student.init": "how the student starts: teacher layers, a pruned teacher, a checkpoint, or random "
                          "weights of a given shape",
    "model.student.every_k": "keep every k-th teacher layer (layers k-1, 2k-1, ...)",
    "model.student.hidden_size": "see num_layers",
    "model.student.num_heads": "see num_layers",
    "model.student.intermediate_size": "see num_layers",
    "model.student.importance_file": "see importance_examples",
    "model.long_document.mode": "inputs longer than max_seq_length: truncate, or read as overlapping windows",
    "train.epochs": "passes over the training set (fractions allowed)",
    "train.max_steps": "stop after this many optimizer steps (null = after epochs)",
    "train.batch_size": "examples per optimizer step",
    "train.eval_batch_size": "examples per forward pass in evaluation",
    "train.learning_rate": "peak learning rate (AdamW, linear warm-up then linear decay)",
    "train.weight_decay": "AdamW weight decay (not on biases and LayerNorm)",
    "train.warmup_ratio": "fraction of the steps spent warming the learning rate up",
    "train.max_grad_norm": "clip the global gradient norm to this (0 = no clipping)",
    "train.log_every": "steps between log lines",
    "train.keep_checkpoints": "how many of the latest checkpoints to keep while training",
    "train.num_threads": "CPU threads for Paddle and the BLAS/OpenMP runtimes",
    "train.amp": "mixed precision (GPU)",
    "train.seed": "seed of initialisation, shuffling and dropout",
    "train.resume": "continue from the run directory's last checkpoint",
    "train.on_nan": "a non-finite loss or gradient: stop the run, or skip that batch",
    "train.progress": "show progress bars",
    "distill.temperature": "softmax temperature of the logit KD term",
    "distill.kd_weight": "weight of the soft-label KL term (times temperature squared)",
    "distill.ce_weight": "weight of the cross-entropy on gold labels",
    "distill.hidden_weight": "weight of the hidden-state term (see hidden_loss)",
    "distill.attention_weight": "weight of the attention-map term (see attention_loss)",
    "distill.attention_loss": "attention maps compared by KL divergence or MSE",
    "distill.mlm_weight": "weight of the masked-LM distribution KL (teachers with an MLM head)",
    "distill.mask_prob": "fraction of word pieces masked for the MLM term",
    "distill.cache_teacher": "compute the teacher's logits once and reuse them every epoch",
    "distill.teacher_state_cache_gb": "see cache_teacher_states",
    "distill.allow_weak_teacher": "distill even from a teacher at chance level on dev (refused otherwise)",
}


def field_comments(source: str) -> Dict[Tuple[str, str], str]:
    """(class name, field name) -> the comment block right above the field plus its end-of-line comment."""
    comments: Dict[int, str] = {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            comments[tok.start[0]] = tok.string.lstrip("#").strip()
    lines = source.splitlines()
    found = {}
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.ClassDef):
            continue
        for stmt in node.body:
            if not (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)):
                continue
            above, line = [], stmt.lineno - 1
            while line >= 1 and lines[line - 1].lstrip().startswith("#"):
                above.insert(0, comments[line])
                line -= 1
            trailing = [comments[n] for n in range(stmt.lineno, stmt.end_lineno + 1) if n in comments
                        and not lines[n - 1].lstrip().startswith("#")]
            found[(node.name, stmt.target.id)] = " ".join(above + trailing)
    return found


def _default(f: dataclasses.Field) -> str:
    if f.default is not dataclasses.MISSING:
        value = f.default
    elif f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
    else:
        return "(required)"
    if f.metadata.get("required"):
        return "(required)"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return f"`{value!r}`" if not isinstance(value, str) else f"`{value}`"


@functools.cache
def _comments_of(module_name: str) -> Dict[Tuple[str, str], str]:
    return field_comments(inspect.getsource(sys.modules[module_name]))


def rows(cls=config.Config, prefix: str = "") -> List[Tuple[str, str, str, str]]:
    """(key, type, default, meaning) for every leaf key below cls, in declaration order; the comments are read
    from the module that defines each section (config.py, or an extension's)."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        key, hint = prefix + f.name, hints[f.name]
        if dataclasses.is_dataclass(hint):
            out += rows(hint, key + ".")
            continue
        owner = next(c for c in cls.__mro__ if f.name in getattr(c, "__annotations__", {}))
        meaning = _comments_of(owner.__module__).get((owner.__name__, f.name)) or MEANINGS.get(key, "")
        kind = "any (see meaning)" if "parse" in f.metadata else type_name(hint)
        if f.metadata.get("choices"):
            kind = "one of " + ", ".join(f"`{c}`" for c in f.metadata["choices"])
        out.append((key, kind, _default(f), meaning))
    return out


def _sections(cls=config.Config, prefix: str = "") -> List[Tuple[str, str, str]]:
    """(section, its description, the extension that adds it or "") in declaration order."""
    doc = inspect.cleandoc(cls.__doc__ or "").replace("\n", " ")
    generated = doc.startswith(cls.__name__ + "(")  # dataclass's own signature, not a description
    added_by = next((e.name for e in extensions.installed() if cls in e.sections.values()), "")
    out = [(prefix.rstrip(".") or "(top level)", "" if generated else doc, added_by)]
    for f in dataclasses.fields(cls):
        hint = typing.get_type_hints(cls)[f.name]
        if dataclasses.is_dataclass(hint):
            out += _sections(hint, prefix + f.name + ".")
    return out


def reference() -> str:
    lines = ["# Configuration reference", "",
             "Generated by `python -m ernie_tiny_distill.config_reference > docs/configuration.md` from the "
             "dataclasses in `ernie_tiny_distill/config.py` and in installed extensions (the comment beside each "
             "field); do not edit by hand. "
             "Set keys in a YAML file or as `section.key=value` overrides; an unknown key, a wrong type or a value "
             "out of range is refused before any work starts.", ""]
    by_section: Dict[str, List[Tuple[str, str, str, str]]] = {}
    for row in rows():
        by_section.setdefault(row[0].rpartition(".")[0] or "(top level)", []).append(row)
    for section, doc, added_by in _sections():
        if section not in by_section:
            continue
        heading = f"## `{section}`" if section != "(top level)" else "## Top level"
        lines += [heading + (f" (extension `{added_by}`, when installed)" if added_by else ""), ""]
        if doc:
            lines += [doc, ""]
        lines += ["| key | type | default | meaning |", "|---|---|---|---|"]
        lines += [f"| `{key}` | {kind} | {default} | {meaning.replace('|', '&#124;')} |"
                  for key, kind, default, meaning in by_section[section]]
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.stdout.write(reference())
