"""Run configuration: typed dataclasses, YAML loading, `a.b=c` overrides, validation before any work starts."""
from __future__ import annotations

import dataclasses
import difflib
import json
import math
import os
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import yaml

from ernie_tiny_distill.errors import UserError

TASKS = ("classification", "ner")
STAGES = ("teacher", "general", "task", "wide")
# stages whose training set is the labeled split plus the transfer set (data.unlabeled), taught by teachers
DISTILL_STAGES = ("task", "wide")
WIDE_FITS = ("residual", "separate")
WIDE_LEVELS = ("window", "document")
WIDE_WEIGHTINGS = ("tfidf", "nb")  # wide_document.WEIGHTINGS


def _choices(*values: str) -> Dict[str, Any]:
    return {"choices": values}


@dataclass
class DataConfig:
    """Where the examples come from. `format` picks the reader; paths are read, never copied."""

    # label_text: one example per line, the label first and the text after the first run of whitespace
    # (TREC's `NUM:dist How far is ...`).
    format: str = field(default="demo", metadata=_choices("demo", "imdb", "conll", "msra", "csv", "tsv", "jsonl",
                                                          "label_text"))
    # imdb: aclImdb_v1.tar.gz or its extracted folder (null = PaddleNLP download);
    # conll/msra: a folder with train.txt, dev.txt|valid.txt, test.txt (or give the files below);
    # demo: an empty or demo-data folder to write the demo data to (default <cache_dir>/demo_data).
    path: Optional[str] = None
    train_file: Optional[str] = None
    dev_file: Optional[str] = None  # null: dev_size of train is held out (stratified by label, seeded)
    test_file: Optional[str] = None
    # The text encoding of every data file (a Python codec name: utf-8, latin-1, cp1252, ...).
    encoding: str = "utf-8"
    # csv/tsv/jsonl: a column name, or (csv/tsv, with or without a header row) a 0-based column position;
    # text_column may list several, joined with a space (e.g. title and description). header: false = the
    # file has no header row (positions only). dev/test_text_column: the dev/test files' own text column
    # (null = text_column).
    text_column: Any = field(default="text", metadata={"parse": "columns"})
    dev_text_column: Any = field(default=None, metadata={"parse": "optional_columns"})
    test_text_column: Any = field(default=None, metadata={"parse": "optional_columns"})
    label_column: Any = field(default="label", metadata={"parse": "column"})
    header: bool = True
    # Keep only the part of each label before this separator: ":" turns TREC's `NUM:dist` into `NUM`.
    label_separator: Optional[str] = None
    # Class names for label ids in the file: a text file with one name per line (the first line names id
    # `first_label_id`), a list of names (the same), or a mapping {id: name}. null = the labels as written.
    label_names: Any = field(default=None, metadata={"parse": "label_names"})
    first_label_id: int = 0
    # Data sets without a dev split (IMDB) get one carved from train: a count (>= 1) or a fraction (< 1).
    dev_size: float = 0.1
    split_seed: int = 0
    # max_*_examples keep a seeded random subset (subset: random) or the first N examples (subset: first).
    max_train_examples: Optional[int] = None
    max_dev_examples: Optional[int] = None
    max_test_examples: Optional[int] = None  # 0 = do not read the test split (dev-only runs)
    subset: str = field(default="random", metadata=_choices("random", "first"))
    # Unlabeled text: the stage-1 corpus, and the transfer set in stage 2. "imdb_unsup" (the 50k train/unsup
    # reviews), "demo" (with format demo only), "augment" (stage task: augmented copies of the training
    # examples), a text file with one document per line, or a .csv/.tsv/.jsonl file whose unlabeled_column
    # holds the text. unlabeled_rows: [first, end) 0-based rows (records) of that file, end null = to the end.
    unlabeled: Optional[str] = None
    unlabeled_column: Any = field(default=None, metadata={"parse": "column"})
    unlabeled_rows: Any = field(default=None, metadata={"parse": "rows"})
    max_unlabeled_examples: Optional[int] = None  # augment: the number of copies (default: one per example)
    # augment, classification: replace words by their nearest neighbours in this model's word-embedding table
    # ('minilm', a model or run directory); null = by words of about the same frequency in the training set.
    augment_embeddings: Optional[str] = None
    iob_repair: str = field(default="convert", metadata=_choices("convert", "reject"))
    unknown_eval_labels: str = field(default="error", metadata=_choices("error", "map_to_o"))
    # strict: bytes that are not valid in `encoding` are an error naming the file and line; replace: U+FFFD.
    encoding_errors: str = field(default="strict", metadata=_choices("replace", "strict"))
    skip_empty: bool = False
    cache_dir: Optional[str] = None


@dataclass
class StudentConfig:
    """How the student is initialised."""

    init: str = field(default="teacher_layers",
                      metadata=_choices("teacher_layers", "teacher_pruned", "pretrained", "config"))
    path: Optional[str] = None  # init=pretrained: a checkpoint directory (e.g. a stage-1 output)
    # init=teacher_layers / teacher_pruned: 0-based teacher layers to keep, or every k-th (layers k-1, 2k-1, ...)
    layers: Optional[List[int]] = None
    every_k: Optional[int] = None
    # init=config: the shape of a randomly initialised ERNIE (vocabulary from the teacher); null = 4, 312, 12, 1248.
    # init=teacher_pruned: what to keep of the fine-tuned teacher (null = everything): attention heads and FFN
    # neurons per layer, chosen by importance on the training data, and the residual width (a projection on the
    # teacher's principal directions when below the teacher's).
    num_layers: Optional[int] = None
    hidden_size: Optional[int] = None
    num_heads: Optional[int] = None
    intermediate_size: Optional[int] = None
    # init=config: "teacher_pca" starts the embedding tables from the teacher's, projected onto their top
    # principal directions (a narrow student then starts with word similarities instead of noise).
    embeddings: str = field(default="teacher_pca", metadata=_choices("teacher_pca", "random"))
    # init=teacher_pruned: "uniform" keeps num_heads / intermediate_size in every layer; "global" keeps the same
    # totals but lets layers whose units matter more keep more of them (per-layer L2-normalised importance).
    allocation: str = field(default="uniform", metadata=_choices("uniform", "global"))
    # init=teacher_pruned: importance is measured on this many training examples (cached per teacher and data),
    # or read from importance_file (e.g. another run's importance.json).
    importance_examples: int = 2048
    importance_file: Optional[str] = None

    def shape_for_config_init(self):
        """(num_layers, hidden_size, num_heads, intermediate_size) of an init=config student."""
        return (self.num_layers or 4, self.hidden_size or 312, self.num_heads or 12, self.intermediate_size or 1248)


@dataclass
class LongDocumentConfig:
    """Classification texts longer than max_seq_length: truncate them (model.truncation), or read them whole as
    overlapping windows of max_seq_length word pieces whose logits are pooled into one prediction."""

    mode: str = field(default="truncate", metadata=_choices("truncate", "windows"))
    stride: Optional[int] = None  # word pieces from one window's start to the next; null = half a window
    max_windows: Optional[int] = None  # at most this many windows (the first ones and the last); null = no cap
    pooling: str = field(default="mean", metadata=_choices("mean", "max"))  # of the window logits

    def task_option(self) -> Optional[Dict[str, Any]]:
        """What the Task needs (None = truncation, today's encoding)."""
        if self.mode == "truncate":
            return None
        return {"stride": self.stride, "max_windows": self.max_windows, "pooling": self.pooling}


@dataclass
class WideConfig:
    """Stage 'wide': a linear n-gram part (wide.py) fitted beside the task student in model.student.path, whose
    transformer stays frozen, on the teachers' soft labels (distill.*) and gold labels."""

    buckets: int = 1 << 20  # hashed word-piece bigram slots (0: unigrams only)
    # a tools/export.py directory of model.student.path: its windows are scored through Paddle Inference (faster,
    # same logits; checked to hold the same weights, else dygraph)
    deep_export: Optional[str] = None
    # residual: the table is fitted on top of the frozen transformer's logits (z = deep + table -> the soft labels);
    # separate: the table alone learns the soft labels, then joins the transformer at the scale (WIDE_SCALES) and
    # epoch best on dev, z = deep + scale * table -- a product of the two experts, so what the transformer knows
    # is kept rather than fitted away (and its logits on documents it was trained on never enter the fit)
    fit: str = "residual"
    # window: a table inside the exported graph, averaged over each window (wide.py); document: sublinear TF-IDF
    # weights over the whole document's word-piece n-grams and a linear layer (wide_document.py), added after
    # pooling, fitted alone by logistic regression on the soft labels (needs fit 'separate')
    level: str = "window"
    # level 'document': how each n-gram is weighted -- tfidf (sublinear count x idf) or nb (presence x the
    # naive-Bayes log-count ratio of the labeled training documents, NBSVM's features; two labels)
    weighting: str = "tfidf"


@dataclass
class ModelConfig:
    # A PaddleNLP model name (downloads), a PaddleNLP directory, a Hugging Face BERT directory,
    # "minilm" (the offline all-MiniLM-L6-v2 package) or, for distillation, a fine-tuned teacher run.
    teacher: Optional[str] = None
    student: StudentConfig = field(default_factory=StudentConfig)
    max_seq_length: int = 128
    truncation: str = field(default="head", metadata=_choices("head", "head_tail"))
    long_document: LongDocumentConfig = field(default_factory=LongDocumentConfig)
    wide: WideConfig = field(default_factory=WideConfig)
    dropout: Optional[float] = None  # overrides hidden/attention dropout of the trained model when set
    # stage teacher: > 0 fine-tunes LoRA adapters of this rank (PaddleNLP peft) on the attention and FFN
    # projections plus the task head, instead of all weights; they are merged into the saved teacher.
    lora_rank: int = 0


@dataclass
class TrainConfig:
    epochs: float = 3.0
    max_steps: Optional[int] = None
    batch_size: int = 32
    eval_batch_size: int = 64
    learning_rate: float = 5e-5
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    max_grad_norm: float = 1.0
    eval_every: Optional[int] = None  # steps; null = once per epoch
    log_every: int = 10
    keep_checkpoints: int = 2
    # A finished run (best/ and summary.json written) deletes checkpoints/ (weights + optimizer state) unless true.
    keep_checkpoints_after_finish: bool = False
    num_threads: int = 2
    amp: bool = False
    seed: int = 42
    resume: bool = True
    on_nan: str = field(default="stop", metadata=_choices("stop", "skip"))
    progress: bool = True


@dataclass
class DistillConfig:
    """Loss weights: L = kd_weight·T²·KL + ce_weight·CE + hidden_weight·MSE + attention_weight·Att + mlm_weight·KL_mlm."""

    temperature: float = 1.0
    kd_weight: float = 1.0
    ce_weight: float = 1.0
    hidden_weight: float = 0.0
    attention_weight: float = 0.0
    attention_loss: str = field(default="kl", metadata=_choices("kl", "mse"))
    # mse: TinyBERT's MSE(W·h_S, h_T); relative_mse: the same divided by the teacher's variance per layer
    # (losses.relative_hidden_mse), so the mean state alone earns nothing and every matched layer counts the same.
    hidden_loss: str = field(default="mse", metadata=_choices("mse", "relative_mse"))
    mlm_weight: float = 0.0
    mask_prob: float = 0.15
    # Student layer i (1-based; 0 = embeddings) is matched to teacher layer layer_map[i]; null = uniform.
    layer_map: Optional[List[int]] = None
    cache_teacher: bool = True
    # Task stage with hidden/attention terms and more than one epoch: keep the teacher's outputs those terms read
    # (mapped layers' hidden states, used attention maps, logit rows; float32, in RAM) from epoch 1 and reuse them,
    # so the teacher runs once per example. Above teacher_state_cache_gb (estimated up front) it stays online.
    cache_teacher_states: bool = True
    teacher_state_cache_gb: float = 4.0
    allow_weak_teacher: bool = False
    # The teacher reads its inputs at this length (null = model.max_seq_length): e.g. a student reading 512
    # tokens taught by a teacher that was fine-tuned, and is cheap to run, at 128. Task stage, logit KD only.
    teacher_max_seq_length: Optional[int] = None
    # Teacher ensemble (task stage, cached logit KD): a list of {path: <fine-tuned run directory>, weight: w} or
    # {tfidf: true, weight: w} (TF-IDF + logistic regression fit on the training split; cross_fit: K scores each labeled
    # training text with the model fit on the other K-1 folds, so its soft labels there are not in-sample). The soft target is the
    # weighted mean of the teachers' softmax(logits / temperature). null = model.teacher alone. A path entry may
    # name `export: <its tools/export.py directory>`: the teacher is then scored through Paddle Inference (faster
    # than dygraph) if that export holds the same weights (checked, see deploy/scoring.py), else in dygraph.
    teachers: Any = field(default=None, metadata={"parse": "teachers"})


@dataclass
class Config:
    task: str = field(default="classification", metadata=_choices(*TASKS))
    stage: str = field(default="task", metadata=_choices(*STAGES))
    output_dir: Optional[str] = field(default=None, metadata={"required": True})
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)


# ---------------------------------------------------------------- loading


def load_config(path: Optional[str] = None, overrides: Sequence[str] = ()) -> Config:
    """Read a YAML file (if given), apply `a.b=c` overrides, validate; every problem names its key."""
    raw: Dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise UserError(f"config file not found: {path}")
        try:
            raw = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as e:
            raise UserError(f"not valid YAML: {e}", where=str(path)) from None
        if not isinstance(raw, dict):
            raise UserError("expected a mapping of config keys at the top level", where=str(path))
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"override {item!r} is not of the form key=value (e.g. train.epochs=2)")
        _set_dotted(raw, key.strip(), _parse_value(value))
    cfg = _build(Config, raw, prefix="")
    validate(cfg)
    return cfg


def config_from_dict(raw: Dict[str, Any]) -> Config:
    cfg = _build(Config, dict(raw), prefix="")
    validate(cfg)
    return cfg


def _parse_value(text: str) -> Any:
    try:
        return yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError:
        return text


def _set_dotted(raw: Dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node = raw
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise UserError(f"cannot set {key!r}: {part!r} is not a section")
        node = child
    node[parts[-1]] = value


def _suggest(key: str, allowed: Sequence[str]) -> str:
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.5)
    return f"did you mean {close[0]!r}? " if close else ""


def _build(cls, raw: Any, prefix: str):
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise UserError(f"config key {prefix.rstrip('.') or '<top>'!r} must be a section (mapping), got {raw!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in raw:
        if key not in fields:
            raise UserError(
                f"unknown config key {prefix + str(key)!r}; {_suggest(str(key), list(fields))}"
                f"allowed keys here: {', '.join(fields)}"
            )
    values = {}
    for name, f in fields.items():
        full = prefix + name
        if name not in raw or (f.metadata.get("required") and raw[name] in (None, "")):
            if f.metadata.get("required"):
                raise UserError(f"missing required config key {full!r}")
            continue
        hint = hints[name]
        if "parse" in f.metadata:
            values[name] = _PARSERS[f.metadata["parse"]](raw[name], full)
        elif dataclasses.is_dataclass(hint):
            values[name] = _build(hint, raw[name], prefix=full + ".")
        else:
            values[name] = _coerce(raw[name], hint, full, f.metadata.get("choices"))
    return cls(**values)


def _column(value: Any, key: str) -> Any:
    if isinstance(value, str) and value.strip():
        return value
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise UserError(f"config key {key!r} must be a column name or a 0-based column position (integer >= 0), "
                    f"got {value!r}")


def _columns(value: Any, key: str) -> Any:
    if isinstance(value, list):
        if not value:
            raise UserError(f"config key {key!r} must name at least one column, got []")
        return [_column(v, f"{key}[{i}]") for i, v in enumerate(value)]
    return _column(value, key)


def _label_names(value: Any, key: str) -> Any:
    if value is None or (isinstance(value, str) and value.strip()):
        return value
    if isinstance(value, list) and value and all(isinstance(v, str) and v.strip() for v in value):
        return value
    if isinstance(value, dict) and value and all(
            isinstance(k, (int, str)) and not isinstance(k, bool) and isinstance(v, str) and v.strip()
            for k, v in value.items()):
        return {str(k): v for k, v in value.items()}
    raise UserError(f"config key {key!r} must be a file of class names (one per line), a list of names or a "
                    f"mapping {{label id: name}}, got {value!r}")


def _teachers(value: Any, key: str) -> Any:
    """distill.teachers: null, or a non-empty list of {path [, export] | tfidf, weight} entries (weights > 0)."""
    if value is None:
        return None
    if not isinstance(value, list) or not value:
        raise UserError(f"config key {key!r} must be a list of {{path: DIR, weight: W}} or {{tfidf: true, "
                        f"weight: W}} entries, got {value!r}")
    out = []
    for i, entry in enumerate(value):
        where = f"{key}[{i}]"
        if not isinstance(entry, dict) or set(entry) - {"path", "export", "tfidf", "weight", "cross_fit"}:
            raise UserError(f"config key {where!r} must be a mapping with keys path (and export) or tfidf (and "
                            f"cross_fit), and weight; got {entry!r}")
        path, tfidf = entry.get("path"), entry.get("tfidf", False)
        if not isinstance(tfidf, bool):
            raise UserError(f"config key '{where}.tfidf' must be true or false, got {tfidf!r}")
        if (path is None) == (not tfidf):
            raise UserError(f"config key {where!r} must set exactly one of path (a fine-tuned teacher) and "
                            f"tfidf: true, got {entry!r}")
        if path is not None and (not isinstance(path, str) or not path.strip()):
            raise UserError(f"config key '{where}.path' must be a directory path, got {path!r}")
        export = entry.get("export")
        if export is not None and (path is None or not isinstance(export, str) or not export.strip()):
            raise UserError(f"config key '{where}.export' must be the export directory of the teacher in "
                            f"'{where}.path', got {export!r}")
        weight = entry.get("weight", 1.0)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight) \
                or weight <= 0:
            raise UserError(f"config key '{where}.weight' must be a number > 0, got {weight!r}")
        cross_fit = entry.get("cross_fit")
        if cross_fit is not None and (not tfidf or isinstance(cross_fit, bool) or not isinstance(cross_fit, int)
                                      or cross_fit < 2):
            raise UserError(f"config key '{where}.cross_fit' must be an integer >= 2 (folds) on a tfidf entry, got "
                            f"{cross_fit!r}")
        out.append({"path": path, "tfidf": tfidf, "weight": float(weight), **({"export": export} if export else {}),
                    **({"cross_fit": cross_fit} if cross_fit else {})})
    return out


def _rows(value: Any, key: str) -> Any:
    """data.unlabeled_rows: null or [first, end) with 0 <= first < end (end null = to the end of the file)."""
    if value is None:
        return None
    ok = isinstance(value, list) and len(value) == 2 and all(
        v is None or (isinstance(v, int) and not isinstance(v, bool) and v >= 0) for v in value) \
        and value[0] is not None and (value[1] is None or value[1] > value[0])
    if not ok:
        raise UserError(f"config key {key!r} must be [first, end]: 0-based rows, first included, end excluded "
                        f"(end > first, or null = to the end of the file), got {value!r}")
    return list(value)


_PARSERS = {"column": lambda v, key: None if v is None else _column(v, key), "columns": _columns,
            "optional_columns": lambda v, key: None if v is None else _columns(v, key), "rows": _rows,
            "label_names": _label_names, "teachers": _teachers}


def _type_name(hint) -> str:
    origin = typing.get_origin(hint)
    if origin is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return " or ".join(_type_name(a) for a in args) + " or null"
    if origin in (list, List):
        return f"list of {_type_name(typing.get_args(hint)[0])}"
    return getattr(hint, "__name__", str(hint))


_SCIENTIFIC = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def _coerce(value: Any, hint, key: str, choices: Optional[Sequence[str]]):
    origin = typing.get_origin(hint)
    if hint in (int, float) and isinstance(value, str) and _SCIENTIFIC.fullmatch(value.strip()):
        value = float(value)  # YAML 1.1 (PyYAML) reads 1e-5 as a string; users mean a number
        if hint is int and value.is_integer():
            value = int(value)
    if origin is typing.Union:
        if value is None:
            return None
        (inner,) = [a for a in typing.get_args(hint) if a is not type(None)]
        return _coerce(value, inner, key, choices)
    expected = _type_name(hint)
    if origin in (list, List):
        if not isinstance(value, list):
            raise UserError(f"config key {key!r} must be a {expected}, got {value!r}")
        (inner,) = typing.get_args(hint)
        return [_coerce(v, inner, f"{key}[{i}]", None) for i, v in enumerate(value)]
    if hint is bool:
        if not isinstance(value, bool):
            raise UserError(f"config key {key!r} must be true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise UserError(f"config key {key!r} must be an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise UserError(f"config key {key!r} must be a number, got {value!r}")
        if not math.isfinite(value):
            raise UserError(f"config key {key!r} must be a finite number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise UserError(f"config key {key!r} must be a string, got {value!r}")
        if choices and value not in choices:
            raise UserError(
                f"config key {key!r} must be one of {', '.join(choices)}; got {value!r}. "
                f"{_suggest(value, choices)}".rstrip()
            )
        return value
    raise TypeError(f"unsupported config type {hint} for {key}")  # a bug in this file, not user input


# ---------------------------------------------------------------- semantic checks


def validate(cfg: Config) -> None:
    """Range and consistency checks that types alone cannot express."""
    d, t, m = cfg.distill, cfg.train, cfg.model
    from ernie_tiny_distill.data.checks import validate_data  # the data layer's own rules

    validate_data(cfg.data, cfg.stage)
    if d.temperature <= 0:
        raise UserError(f"config key 'distill.temperature' must be > 0, got {d.temperature}")
    if d.teacher_max_seq_length is not None and d.teacher_max_seq_length < 3:
        raise UserError(f"config key 'distill.teacher_max_seq_length' must be >= 3 (room for [CLS], one token "
                        f"and [SEP]) or null, got {d.teacher_max_seq_length}")
    for name in ("kd_weight", "ce_weight", "hidden_weight", "attention_weight", "mlm_weight", "teacher_state_cache_gb"):
        if getattr(d, name) < 0:
            raise UserError(f"config key 'distill.{name}' must be >= 0, got {getattr(d, name)}")
    if not 0.0 < d.mask_prob < 1.0:
        raise UserError(f"config key 'distill.mask_prob' must be in (0, 1), got {d.mask_prob}")
    positive = {
        "train.batch_size": t.batch_size,
        "train.eval_batch_size": t.eval_batch_size,
        "train.learning_rate": t.learning_rate,
        "train.epochs": t.epochs,
        "train.num_threads": t.num_threads,
        "train.log_every": t.log_every,
        "train.keep_checkpoints": t.keep_checkpoints,
        "model.max_seq_length": m.max_seq_length,
    }
    for key, value in positive.items():
        if value <= 0:
            raise UserError(f"config key {key!r} must be > 0, got {value}")
    positive_or_null = {
        "train.max_steps": t.max_steps,
        "train.eval_every": t.eval_every,
        "data.max_train_examples": cfg.data.max_train_examples,
        "data.max_dev_examples": cfg.data.max_dev_examples,
        "data.max_unlabeled_examples": cfg.data.max_unlabeled_examples,
    }
    for key, value in positive_or_null.items():
        if value is not None and value <= 0:
            raise UserError(f"config key {key!r} must be > 0 or null (no limit / the default), got {value}")
    # 0 test examples is meaningful: a dev-only run (a hyper-parameter sweep never reads the test split)
    if cfg.data.max_test_examples is not None and cfg.data.max_test_examples < 0:
        raise UserError(f"config key 'data.max_test_examples' must be >= 0 (0 = do not read the test split) or null, "
                        f"got {cfg.data.max_test_examples}")
    check_output_dir(cfg.output_dir)
    if m.max_seq_length < 8:
        raise UserError(f"config key 'model.max_seq_length' must be >= 8, got {m.max_seq_length}")
    if not 0.0 <= t.warmup_ratio < 1.0:
        raise UserError(f"config key 'train.warmup_ratio' must be in [0, 1), got {t.warmup_ratio}")
    ld = m.long_document
    if ld.stride is not None and not 1 <= ld.stride <= m.max_seq_length - 2:
        raise UserError(f"config key 'model.long_document.stride' must be in 1..{m.max_seq_length - 2} "
                        f"(model.max_seq_length - 2, so consecutive windows leave no piece out) or null, "
                        f"got {ld.stride}")
    if ld.max_windows is not None and ld.max_windows < 1:
        raise UserError(f"config key 'model.long_document.max_windows' must be >= 1 or null, got {ld.max_windows}")
    if ld.mode == "windows" and cfg.stage == "task" and m.student.init == "teacher_pruned":
        raise UserError("windows do not work with model.student.init=teacher_pruned "
                        "(pruning measures importance per window, not per document)",
                        where="config key 'model.long_document.mode'",
                        hint="prune with mode=truncate, then distill the pruned student (init=pretrained) "
                             "with windows")
    if d.teachers is not None:
        if cfg.stage not in DISTILL_STAGES:
            raise UserError("config key 'distill.teachers' applies to stages 'task' and 'wide' only")
        if not d.cache_teacher or d.kd_weight <= 0 or d.hidden_weight > 0 or d.attention_weight > 0 \
                or d.mlm_weight > 0:
            raise UserError("distill.teachers (an ensemble) works with cached logit KD only",
                            where="config key 'distill.teachers'",
                            hint="set distill.cache_teacher=true, distill.kd_weight > 0 and "
                                 "distill.hidden_weight/attention_weight/mlm_weight to 0")
    if m.lora_rank < 0:
        raise UserError(f"config key 'model.lora_rank' must be >= 0, got {m.lora_rank}")
    if m.lora_rank and cfg.stage != "teacher":
        raise UserError("config key 'model.lora_rank' applies to stage 'teacher' only (students train fully)")
    if m.dropout is not None and not 0.0 <= m.dropout < 1.0:
        raise UserError(f"config key 'model.dropout' must be in [0, 1), got {m.dropout}")
    if cfg.data.dev_size <= 0:
        raise UserError(f"config key 'data.dev_size' must be > 0, got {cfg.data.dev_size}")
    if not m.teacher:
        role = "the model to fine-tune" if cfg.stage == "teacher" else "the teacher to distill from"
        raise UserError(
            f"stage {cfg.stage!r} needs 'model.teacher' ({role}); it is not set",
            hint="e.g. model.teacher=minilm, a PaddleNLP name such as ernie-3.0-medium-zh, or a run directory",
        )
    s = m.student
    if cfg.stage != "teacher":
        if s.init == "pretrained" and not s.path:
            raise UserError("config key 'model.student.path' is required when model.student.init is 'pretrained'")
        if s.init in ("teacher_layers", "teacher_pruned") and not s.layers and s.every_k is None:
            raise UserError(
                f"model.student.init is {s.init!r} but neither 'model.student.layers' nor "
                "'model.student.every_k' is set"
            )
        if s.every_k is not None and s.every_k <= 0:
            raise UserError(f"config key 'model.student.every_k' must be > 0, got {s.every_k}")
        for key in ("num_layers", "hidden_size", "num_heads", "intermediate_size"):
            if getattr(s, key) is not None and getattr(s, key) <= 0:
                raise UserError(f"config key 'model.student.{key}' must be > 0 (or null), got {getattr(s, key)}")
        if s.importance_examples <= 0:
            raise UserError(f"config key 'model.student.importance_examples' must be > 0, got {s.importance_examples}")
        _, hidden, heads, _ = s.shape_for_config_init()
        if s.init == "config" and hidden % heads:
            raise UserError(
                f"model.student.hidden_size ({hidden}) must be divisible by "
                f"model.student.num_heads ({heads})"
            )
    if cfg.stage == "general":
        if d.hidden_weight + d.attention_weight + d.mlm_weight <= 0:
            raise UserError(
                "stage 'general' needs at least one of distill.hidden_weight, distill.attention_weight, "
                "distill.mlm_weight to be > 0"
            )
        if not cfg.data.unlabeled:
            raise UserError("stage 'general' needs 'data.unlabeled' (the unlabeled corpus), which is not set")
    if cfg.stage == "task" and d.kd_weight + d.ce_weight + d.hidden_weight + d.attention_weight <= 0:
        raise UserError("stage 'task' has every loss weight at 0: nothing to train")
    if m.wide.fit not in WIDE_FITS:
        raise UserError(f"config key 'model.wide.fit' must be one of {', '.join(WIDE_FITS)}; got {m.wide.fit!r}")
    if m.wide.level not in WIDE_LEVELS:
        raise UserError(f"config key 'model.wide.level' must be one of {', '.join(WIDE_LEVELS)}; got {m.wide.level!r}")
    if m.wide.weighting not in WIDE_WEIGHTINGS:
        raise UserError(f"config key 'model.wide.weighting' must be one of {', '.join(WIDE_WEIGHTINGS)}; got "
                        f"{m.wide.weighting!r}")
    if m.wide.level == "document" and m.wide.fit != "separate":
        raise UserError("config key 'model.wide.level' 'document' is fitted alone and then scaled on dev: set "
                        f"model.wide.fit to 'separate' (got {m.wide.fit!r})")
    if cfg.stage == "wide":
        if s.init != "pretrained":
            raise UserError("stage 'wide' fits a wide part beside a trained task student: set model.student.init "
                            f"to 'pretrained' and model.student.path to its best/ directory (got init {s.init!r})")
        if d.kd_weight + d.ce_weight <= 0:
            raise UserError("stage 'wide' has distill.kd_weight and distill.ce_weight at 0: nothing to fit")
        if d.hidden_weight > 0 or d.attention_weight > 0 or d.mlm_weight > 0:
            raise UserError("stage 'wide' fits logits only: set distill.hidden_weight, attention_weight and "
                            "mlm_weight to 0")
        if m.wide.buckets < 0:
            raise UserError(f"config key 'model.wide.buckets' must be >= 0 (0: unigrams only), got {m.wide.buckets}")
    check_lengths_against_models(cfg)


def _position_table(spec: Optional[str]) -> Optional[tuple]:
    """(config.json path, max_position_embeddings) of a local model (directory, run directory, 'minilm'), else None.

    A PaddleNLP model name is not looked up here (that would download it); its limit is checked by the model.
    """
    if not spec or not (spec == "minilm" or os.path.isdir(spec)):
        return None
    from ernie_tiny_distill.models.locate import resolve

    file = os.path.join(resolve(spec), "config.json")
    try:
        with open(file, encoding="utf-8") as f:
            positions = json.load(f).get("max_position_embeddings")
    except (OSError, ValueError):
        return None  # the model loader reports a missing or broken config.json with its own message
    return (file, positions) if isinstance(positions, int) else None


def check_lengths_against_models(cfg: Config) -> None:
    """model.max_seq_length (and distill.teacher_max_seq_length) must fit the position table of the models that
    read them; otherwise the embedding lookup fails mid-epoch, after data and teacher logits were prepared."""
    m, d = cfg.model, cfg.distill
    checks = [("model.max_seq_length", m.max_seq_length, "model.teacher", m.teacher)]
    if cfg.stage != "teacher" and m.student.init == "pretrained":
        checks.append(("model.max_seq_length", m.max_seq_length, "model.student.path", m.student.path))
    if d.teacher_max_seq_length is not None:
        checks[0] = ("distill.teacher_max_seq_length", d.teacher_max_seq_length, "model.teacher", m.teacher)
        checks.append(("model.max_seq_length", m.max_seq_length, "model.teacher", m.teacher))
    for key, length, model_key, spec in checks:
        table = _position_table(spec)
        if table is not None and length > table[1]:
            raise UserError(
                f"config key {key!r} is {length}, but {model_key}={spec} has {table[1]} positions "
                f"(max_position_embeddings in {table[0]})",
                hint=f"set {key} <= {table[1]} (a student built from this model has the same position table)")


# Kernel file systems: a directory there cannot hold a run (writes fail or vanish at reboot).
_VIRTUAL_ROOTS = ("/proc", "/sys", "/dev")


def check_output_dir(output_dir: str) -> None:
    """output_dir must be a directory or creatable as one: not a file, not below a file, not in /proc, /sys, /dev."""
    where = f"output_dir={output_dir}"
    path = os.path.abspath(os.path.expanduser(output_dir))
    real = os.path.realpath(path)
    for root in _VIRTUAL_ROOTS:
        if real == root or real.startswith(root + os.sep):
            raise UserError(f"{real} is in {root}, a kernel file system, not a place for a run directory",
                            where=where, hint="choose a directory on a disk, e.g. runs/NAME")
    if os.path.exists(path) and not os.path.isdir(path):
        raise UserError("is an existing file, expected a directory (or a path that does not exist yet)",
                        where=where, hint="choose another output_dir; this file is left untouched")
    parent = os.path.dirname(path)
    while parent and not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if parent and not os.path.isdir(parent):
        raise UserError(f"is below {parent}, which is a file, not a directory", where=where,
                        hint="choose another output_dir")
