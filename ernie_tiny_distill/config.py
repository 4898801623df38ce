"""Run configuration: typed dataclasses, YAML loading, `a.b=c` overrides, validation before any work starts."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

from ernie_tiny_distill import config_schema, extensions
from ernie_tiny_distill.config_rules import (  # noqa: F401  (re-exported: the names callers import from here)
    DISTILL_STAGES,
    PARSERS,
    STAGES,
    TASKS,
    check_lengths_against_models,
    check_output_dir,
    validate,
)
from ernie_tiny_distill.errors import UserError


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
    # augment: copies per training example (a small training set gets a transfer set many times its size, as
    # in TinyBERT); max_unlabeled_examples, when set, caps their number
    augment_copies: Optional[float] = None
    # augment, classification: replace words by their nearest neighbours in this model's word-embedding table
    # ('minilm', a model or run directory, 'teacher' = model.teacher); null = by words of about the same frequency
    # in the training set.
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
class ModelConfig:
    # A PaddleNLP model name (downloads), a PaddleNLP directory, a Hugging Face BERT directory,
    # "minilm" (the offline all-MiniLM-L6-v2 package) or, for distillation, a fine-tuned teacher run.
    teacher: Optional[str] = None
    student: StudentConfig = field(default_factory=StudentConfig)
    max_seq_length: int = 128
    truncation: str = field(default="head", metadata=_choices("head", "head_tail"))
    long_document: LongDocumentConfig = field(default_factory=LongDocumentConfig)
    dropout: Optional[float] = None  # overrides hidden/attention dropout of the trained model when set
    # stage teacher: > 0 fine-tunes LoRA adapters of this rank (PaddleNLP peft) on the attention and FFN
    # projections plus the task head, instead of all weights; they are merged into the saved teacher.
    lora_rank: int = 0
    # ner: give each word piece its word's letter case (0 lower or none, 1 Title, 2 UPPER, 3 miXed) through the
    # token-type embedding, grown to 4 rows copied from row 0 (untrained, the model is unchanged). For uncased
    # encoders (minilm), whose tokenizer lower-cases "Apple" to "apple"; the export records it for serving.
    # A student must use the setting its teacher was trained with.
    case_ids: bool = False


ModelConfig = extensions.with_sections(ModelConfig, "model")  # plus a section per installed extension


@dataclass
class TrainConfig:
    epochs: float = 3.0
    max_steps: Optional[int] = None
    # at least this many optimisation steps (more epochs on a small training set); max_steps wins when set
    min_steps: Optional[int] = None
    batch_size: int = 32
    eval_batch_size: int = 64
    learning_rate: float = 5e-5
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    max_grad_norm: float = 1.0
    eval_every: Optional[int] = None  # steps; null = once per epoch
    # stop after this many dev evaluations in a row without a new best (null = run every step)
    patience: Optional[int] = None
    log_every: int = 10
    keep_checkpoints: int = 2
    # A finished run (best/ and summary.json written) deletes checkpoints/ (weights + optimizer state) unless true.
    keep_checkpoints_after_finish: bool = False
    num_threads: int = 2
    amp: bool = False
    # evaluate and keep an exponential moving average of the weights (decay per step, e.g. 0.999); null = the weights
    average_decay: Optional[float] = None
    seed: int = 42
    resume: bool = True
    # true: a run that starts over may replace the best/ of a finished run in output_dir (refused otherwise);
    # never recorded in config.yaml (Config.to_dict)
    overwrite: bool = False
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
    # model.teacher's Paddle Inference export (tools/export.py): cached logit KD scores the teacher through it, the
    # same logits in a fraction of the CPU time, when it holds the teacher's weights (checked; else dygraph)
    teacher_export: Optional[str] = None
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
    # The hidden-state and attention terms, when on, still follow model.teacher (the student's origin).
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
        out = dataclasses.asdict(self)
        # train.overwrite lets one invocation replace a finished run; recorded in config.yaml (or in a generated
        # config), a later re-run of that config would replace the run's best/ without being asked to
        out["train"].pop("overwrite", None)
        return out


# ---------------------------------------------------------------- loading


def load_config(path: Optional[str] = None, overrides: Sequence[str] = ()) -> Config:
    """Read a YAML file (if given), apply `a.b=c` overrides, validate; every problem names its key."""
    raw: Dict[str, Any] = config_schema.read_yaml_file(path) if path is not None else {}
    config_schema.apply_overrides(raw, overrides)
    return config_from_dict(raw)



def config_from_dict(raw: Dict[str, Any]) -> Config:
    """A validated Config from nested dicts (e.g. a saved config.yaml or a generated benchmark stage)."""
    _check_stage(raw)
    cfg = config_schema.build(Config, dict(raw), PARSERS, unknown_section=extensions.missing("this section"))
    validate(cfg)
    return cfg


def _check_stage(raw: Dict[str, Any]) -> None:
    """A stage no installed extension provides (and no typo of a known one) says where stages come from."""
    stage = raw.get("stage")
    if isinstance(stage, str) and stage not in STAGES and not config_schema.suggest(stage, STAGES):
        raise UserError(f"config key 'stage' must be one of {', '.join(STAGES)}; got {stage!r}: "
                        f"{extensions.missing(f'stage {stage!r}')}", hint=extensions.INSTALL_HINT)
