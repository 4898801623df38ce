"""Benchmark profiles: the matrix (tasks, students, variants, sweep, budgets) read from a YAML file.

A profile is `benchmarks/profiles/<name>.yaml` (or any path). Students are any `model.student` config block,
passed to the generated configs untouched, or the student of a recipe file (configs/recipes/*.yaml, the files
tools/distill.py runs); variants are named recipes (KD or not, stage 1 first or not, and distill/train
overrides), so a new benchmark row needs only YAML.
"""
from __future__ import annotations

import copy
import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import yaml

from ernie_tiny_distill.wide.config import WIDE_FITS, WIDE_LEVELS, WIDE_WEIGHTINGS
from ernie_tiny_distill.errors import UserError
from ernie_tiny_distill.pipeline.recipes import RECIPE_DIR, load_recipe

PROFILE_DIR = Path(__file__).resolve().parent / "profiles"


@dataclass
class TaskSpec:
    """One task of the matrix. The teacher config's `data` section is copied into every student config."""

    name: str                               # row-name prefix: imdb | conll | ...
    teacher_config: str                     # YAML of the teacher run (its output_dir is the teacher)
    teacher_overrides: List[str] = field(default_factory=list)
    unlabeled: Optional[str] = None         # data.unlabeled value, or "train_text" (training text, labels dropped)
    max_unlabeled: Optional[int] = None
    transfer: bool = False                  # task KD (and stage 2 of two-stage) reads the transfer set
    no_kd_epochs: float = 3.0
    kd_epochs: float = 3.0
    general_epochs: float = 1.0
    kd_eval_every: Optional[int] = None     # dev evaluations as often as no_kd's (once per labeled epoch)
    tfidf: bool = False                     # TF-IDF + LR reference rows (classification)
    long_seq: Optional[int] = None          # the sweep student reading longer inputs (two-stage recipe, first seed)
    title: str = ""
    sweep_lr: Optional[List[float]] = None  # this task's learning-rate grid (KD and no-KD); None = the profile's
    nokd_sweep_lr: Optional[List[float]] = None   # this task's no-KD learning-rate grid; None = as sweep_lr
    whole_document: Optional[WholeDocument] = None   # whole-document rows (see WholeDocument)


@dataclass
class DocumentStudent:
    """One whole-document student: a row <task>/<name>/ensemble_kd/seed<first seed> (+ export/<name>, int8/<name>)."""

    name: str                               # row-name component, e.g. W
    student: str                            # a profile student: its model block, first seed and hyperparameters
    start_from: Optional[str] = None        # that student's variant whose first-seed checkpoint it starts from
    # an earlier whole-document student (no wide part) whose finished row this one continues training from
    continue_from: Optional[str] = None
    hyperparameters: Dict[str, float] = field(default_factory=dict)  # over the block's and the student's own
    # A wide-and-deep student (stage 'wide', wide.py): the transformer of document student `wide_from` (frozen, its
    # finished row) plus a linear word-piece uni/bigram table with `wide_buckets` hashed bigram slots, fitted on
    # the ensemble's soft labels; `train` holds that fit's epochs, batch_size, learning_rate, weight_decay.
    wide_from: Optional[str] = None
    wide_buckets: int = 1 << 20
    wide_fit: str = "residual"  # model.wide.fit: the table on top of the transformer's logits, or 'separate'
    wide_level: str = "window"  # model.wide.level: a table in the graph per window, or TF-IDF over the document
    wide_weighting: str = "tfidf"  # model.wide.weighting (level document): tfidf or nb (naive-Bayes ratios)
    train: Dict = field(default_factory=dict)
    # over the block's data caps: max_train_examples, max_unlabeled (null = all)
    data: Dict = field(default_factory=dict)
    # over the block's ensemble weights (null = the block's); 0 leaves that teacher out
    teacher_weight: Optional[float] = None
    tfidf_weight: Optional[float] = None

    @property
    def variant(self) -> str:
        return "wide_kd" if self.wide_from else "ensemble_kd"

    def overrides_text(self) -> str:
        """', learning_rate 0.00025' for its own hyperparameters (row names and config headers)."""
        return "".join(f", {k} {v:g}" for k, v in self.hyperparameters.items())


@dataclass
class WholeDocument:
    """Whole-document rows of a classification task: its fine-tuned teacher scoring whole documents as windows (no
    retraining), the ensemble of that teacher and TF-IDF + LR, and students distilled from the ensemble on
    whole documents (every labeled document, a larger transfer set), each exported and quantized. The students
    share the data, windows and ensemble, so the teachers' cached outputs serve them all."""

    students: List[DocumentStudent]
    windows: Dict = field(default_factory=lambda: {"stride": None, "max_windows": None, "pooling": "mean"})
    teacher_weight: float = 1.0             # ensemble weights: the fine-tuned teacher, TF-IDF + LR
    tfidf_weight: float = 1.0
    max_train_examples: Optional[int] = None   # null: every labeled document (the training split minus dev)
    max_unlabeled: Optional[int] = None        # null: the whole unlabeled set as transfer set
    epochs: float = 1.0
    hyperparameters: Dict[str, float] = field(default_factory=dict)  # temperature, ce_weight, learning_rate
    train: Dict = field(default_factory=dict)   # merged last into the student's train section

    def student(self, name: str) -> DocumentStudent:
        return next(s for s in self.students if s.name == name)


@dataclass
class Variant:
    """A named recipe: task KD or CE only, optionally after stage 1, plus distill/train overrides."""

    name: str
    kd: bool = True                         # False: CE only (kd_weight 0), no transfer set, no-KD lr and epochs
    stage1: bool = False                    # run general distillation first and start the task stage from it
    describe: str = "student {model}, {variant}, seed {seed}"   # the generated config's header
    distill: Dict = field(default_factory=dict)   # merged last into the task stage's distill section
    train: Dict = field(default_factory=dict)     # merged last into its train section
    data: Dict[str, Dict] = field(default_factory=dict)   # per task: merged last into its data section
    tasks: Optional[List[str]] = None       # the tasks it runs on (None = every task)
    # logit KD with the teacher's soft labels scored through its benchmark export (a one-teacher distill.teachers,
    # deploy/scoring.py): the same logits at ~3.7x less CPU, so the transfer set can grow; logit KD only
    teacher_export: bool = False


@dataclass
class Student:
    """A student: any `model.student` block, its seeds, its learning-rate factor and the variants it runs."""

    name: str
    model: Dict                             # given, or read from `recipe` (see with_recipe_students)
    seeds: List[int] = field(default_factory=lambda: [1])
    lr_factor: float = 1.0                  # times the sweep student's chosen learning rate
    variants: Optional[List[str]] = None    # None = every variant of the profile
    label: Optional[str] = None             # e.g. 3L-256H (default: from num_layers/layers and hidden_size)
    # per task: temperature, ce_weight, learning_rate, nokd_learning_rate chosen for this student (no sweep
    # dependency; lr_factor is not applied). For students whose recipe differs from the swept one.
    hyperparameters: Dict[str, Dict[str, float]] = field(default_factory=dict)
    deploy_variant: Optional[str] = None   # the recipe exported and quantized (None = the profile's int8_variant)
    # per task: a recipe exported, quantized and timed instead of deploy_variant (which stays the run whose
    # importance scores stage 1 reuses), e.g. {conll: kd_recipe_aug_long} when the best recipe differs by task
    export_variant: Dict[str, str] = field(default_factory=dict)
    # per task: a recipe (configs/recipes/<name>.yaml, or a path) whose student block and hyperparameters this
    # student takes instead of `model` and `hyperparameters`, e.g. {conll: ner_10x, imdb: classification_10x}
    recipe: Dict[str, str] = field(default_factory=dict)

    @property
    def layers(self) -> Optional[int]:
        m = self.model
        return len(m["layers"]) if m.get("layers") else m.get("num_layers")

    @property
    def hidden(self) -> Optional[int]:
        return self.model.get("hidden_size")

    def own_hyperparameters(self, task: str) -> Optional[Dict[str, float]]:
        return self.hyperparameters.get(task)

    def shape_label(self) -> str:
        return self.label or f"{self.layers}L-{self.hidden}H"

    def describe(self) -> str:
        m = self.model
        if all(k in m for k in ("num_layers", "hidden_size", "num_heads", "intermediate_size")):
            return (f"{m['num_layers']} layers, hidden {m['hidden_size']}, {m['num_heads']} heads, "
                    f"FFN {m['intermediate_size']}")
        return ", ".join(f"{k} {v}" for k, v in m.items())


@dataclass
class Profile:
    name: str
    tasks: Dict[str, TaskSpec]
    students: Dict[str, Student]
    variants: Dict[str, Variant]
    sweep: Optional[Dict[str, List[float]]]  # dev sweep for the sweep student, first seed; None = `fixed` as is
    nokd_sweep_lr: Optional[List[float]]
    fixed: Dict[str, float]                 # temperature, ce_weight, learning_rate, nokd_learning_rate
    general: Dict[str, float]               # stage 1: learning_rate (sweep student), hidden/attention weights
    train: Dict[str, object]                # common train.* keys
    runs_dir: str
    sweep_student: str = "B"
    # where the generated stage configs go; null = <runs_dir>/configs (beside the runs that record them)
    config_dir: Optional[str] = None
    out_dir: str = "."                      # report: <out>/benchmarks/results.json, <out>/docs/...
    results_name: str = "results.json"
    int8_variant: str = "task_kd"           # which trained student (first seed) is exported + quantized
    int8_method: str = "dynamic"            # tools/export.py --int8-method
    latency: Dict[str, object] = field(default_factory=lambda: {
        "threads": 1, "seq_len": 128, "batch_size": 32, "iterations": 100, "warmup": 10, "rounds": 5})
    quiet_timeout: float = 4 * 3600.0       # latency waits this long for a quiet machine, then measures anyway
    tfidf_grid: List[float] = field(default_factory=lambda: [1.0, 4.0, 16.0, 64.0, 256.0, 1024.0])
    extra_distill: Dict[str, object] = field(default_factory=dict)   # merged into every task-stage distill section
    source: Optional[str] = None            # the YAML file it was read from

    def configs_dir(self) -> str:
        return self.config_dir or os.path.join(self.runs_dir, "configs")

    def student_variants(self, student: str, task: Optional[str] = None) -> List[str]:
        names = self.students[student].variants or list(self.variants)
        return [v for v in names if task is None or not self.variants[v].tasks or task in self.variants[v].tasks]

    @property
    def seeds(self) -> Dict[str, List[int]]:
        return {k: s.seeds for k, s in self.students.items()}

    @property
    def lr_factor(self) -> Dict[str, float]:
        return {k: s.lr_factor for k, s in self.students.items()}


def _build(cls, raw, where: str, **fixed):
    if not isinstance(raw, dict):
        raise UserError(f"{where}: expected a mapping, got {type(raw).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - names)
    if unknown:
        raise UserError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(names - set(fixed))}")
    try:
        return cls(**fixed, **raw)
    except TypeError as e:
        raise UserError(f"{where}: {e}") from None


def _whole_document(raw, where: str) -> WholeDocument:
    if not isinstance(raw, dict):
        raise UserError(f"{where}: expected a mapping, got {type(raw).__name__}")
    students = raw.get("students")
    if not isinstance(students, list) or not students:
        raise UserError(f"{where}: 'students' must be a non-empty list of {{name, student, start_from}} mappings")
    built = [_build(DocumentStudent, d, f"{where}.students[{i}]") for i, d in enumerate(students)]
    names = [d.name for d in built]
    if len(set(names)) != len(names):
        raise UserError(f"{where}.students: names must be unique, got {names}")
    for i, d in enumerate(built):
        bad = sorted(set(d.data) - {"max_train_examples", "max_unlabeled"})
        if bad:
            raise UserError(f"{where}.students[{i}].data: unknown key(s) {bad} (known: max_train_examples, "
                            "max_unlabeled)")
        if d.wide_from is not None:
            earlier = [e.name for e in built[:i] if e.wide_from is None]
            if d.wide_from not in earlier:
                raise UserError(f"{where}.students[{i}].wide_from: {d.wide_from!r} is not an earlier whole-document "
                                f"student without a wide part (those are {earlier})")
            if d.start_from:
                raise UserError(f"{where}.students[{i}]: a wide student starts from its wide_from student's row, "
                                "not from start_from")
        if d.continue_from is not None:
            earlier = [e.name for e in built[:i] if e.wide_from is None]
            if d.continue_from not in earlier:
                raise UserError(f"{where}.students[{i}].continue_from: {d.continue_from!r} is not an earlier "
                                f"whole-document student without a wide part (those are {earlier})")
            if d.start_from or d.wide_from:
                raise UserError(f"{where}.students[{i}]: continue_from starts from that student's row; it goes "
                                "with neither start_from nor wide_from")
        if d.wide_level not in WIDE_LEVELS or (d.wide_level == "document" and d.wide_fit != "separate"):
            raise UserError(f"{where}.students[{i}].wide_level: must be one of {', '.join(WIDE_LEVELS)} ('document' "
                            f"with wide_fit: separate), got {d.wide_level!r} with wide_fit {d.wide_fit!r}")
        if d.wide_weighting not in WIDE_WEIGHTINGS:
            raise UserError(f"{where}.students[{i}].wide_weighting: must be one of {', '.join(WIDE_WEIGHTINGS)}, got "
                            f"{d.wide_weighting!r}")
        if d.wide_fit not in WIDE_FITS:
            raise UserError(f"{where}.students[{i}].wide_fit: must be one of {', '.join(WIDE_FITS)}, got "
                            f"{d.wide_fit!r}")
        weights = [w for w in (d.teacher_weight, d.tfidf_weight) if w is not None]
        if any(isinstance(w, bool) or not isinstance(w, (int, float)) or w < 0 for w in weights) or \
                (d.teacher_weight == 0 and d.tfidf_weight == 0):
            raise UserError(f"{where}.students[{i}]: teacher_weight and tfidf_weight must be numbers >= 0 (0 leaves "
                            f"that teacher out), not both 0; got {d.teacher_weight!r}, {d.tfidf_weight!r}")
        bad = sorted(set(d.train) - {"epochs", "batch_size", "learning_rate", "weight_decay"})
        if bad:
            raise UserError(f"{where}.students[{i}].train: unknown key(s) {bad} (known: epochs, batch_size, "
                            "learning_rate, weight_decay)")
    return _build(WholeDocument, dict(raw, students=built), where)


def recipe_file(name: str) -> Path:
    """`ner_10x` -> configs/recipes/ner_10x.yaml; anything with a slash or .yaml suffix is a path."""
    return Path(name) if ("/" in name or name.endswith((".yaml", ".yml"))) else RECIPE_DIR / f"{name}.yaml"


def _recipe_value(recipe: Dict, keys: str):
    value = recipe
    for key in keys.split("."):
        if not isinstance(value, dict) or key not in value:
            raise UserError(f"{recipe['file']}: missing key {keys} (the benchmark profile reads it)")
        value = value[key]
    return value


def recipe_student(name: str) -> Tuple[Dict, Dict[str, float]]:
    """(model.student block, hyperparameters) of a recipe's student stage: the benchmark trains that student with
    the recipe's temperature, CE weight and learning rate; its no-KD control uses the same learning rate."""
    recipe = load_recipe("", 0, path=str(recipe_file(name)))
    block = _recipe_value(recipe, "student.model.student")
    if not isinstance(block, dict):
        raise UserError(f"{recipe['file']}: student.model.student must be a mapping, got {block!r}")
    lr = _recipe_value(recipe, "student.train.learning_rate")
    return copy.deepcopy(block), {"temperature": _recipe_value(recipe, "student.distill.temperature"),
                                  "ce_weight": _recipe_value(recipe, "student.distill.ce_weight"),
                                  "learning_rate": lr, "nokd_learning_rate": lr}


def with_recipe_students(raw_students: Dict, tasks: Dict, where: str) -> Dict:
    """The students' YAML with each `recipe` student's model block and hyperparameters read from its recipes (one
    per task of the profile; the tasks' recipes must agree on the block, the student's one shape)."""
    out = {}
    for k, raw in raw_students.items():
        names = raw.get("recipe") if isinstance(raw, dict) else None
        if not names:
            out[k] = raw
            continue
        at = f"{where}: students.{k}"
        if not isinstance(names, dict) or set(names) != set(tasks):
            raise UserError(f"{at}.recipe: expected a recipe name per task {sorted(tasks)}, got {names!r}")
        copied = sorted({"model", "hyperparameters"} & set(raw))
        if copied:
            raise UserError(f"{at}: {copied} come from its recipe files; remove them (or the recipe key)")
        read = {t: recipe_student(n) for t, n in names.items()}
        blocks = {t: block for t, (block, _) in read.items()}
        if any(b != next(iter(blocks.values())) for b in blocks.values()):
            raise UserError(f"{at}.recipe: the recipes' student.model.student blocks differ: {blocks}")
        out[k] = dict(raw, model=next(iter(blocks.values())), hyperparameters={t: hp for t, (_, hp) in read.items()})
    return out


def profile_from_dict(raw: Dict, where: str = "profile") -> Profile:
    """A Profile from its YAML mapping; unknown keys are errors naming the key."""
    raw = copy.deepcopy(raw)
    for key in ("name", "tasks", "students", "variants", "runs_dir"):
        if key not in raw:
            raise UserError(f"{where}: missing required key '{key}'")
    for k, v in raw["tasks"].items():
        if isinstance(v, dict) and v.get("whole_document") is not None:
            v["whole_document"] = _whole_document(v["whole_document"], f"{where}: tasks.{k}.whole_document")
    raw["tasks"] = {k: _build(TaskSpec, v, f"{where}: tasks.{k}", name=k) for k, v in raw["tasks"].items()}
    students = with_recipe_students(raw["students"], raw["tasks"], where)
    raw["students"] = {k: _build(Student, v, f"{where}: students.{k}", name=k) for k, v in students.items()}
    raw["variants"] = {k: _build(Variant, v or {}, f"{where}: variants.{k}", name=k)
                       for k, v in raw["variants"].items()}
    for k, s in raw["students"].items():
        missing = [v for v in s.variants or [] if v not in raw["variants"]]
        if missing:
            raise UserError(f"{where}: students.{k}.variants: unknown variant(s) {missing}")
    profile = _build(Profile, raw, where)
    if profile.sweep_student not in profile.students:
        raise UserError(f"{where}: sweep_student {profile.sweep_student!r} is not one of the students")
    for k, s in profile.students.items():
        for t, v in s.export_variant.items():
            if t not in profile.tasks or v not in profile.student_variants(k, t):
                raise UserError(f"{where}: students.{k}.export_variant.{t}: {v!r} is not a variant student {k} "
                                f"runs on task {t!r}")
    for k, spec in profile.tasks.items():
        wd = spec.whole_document
        if wd is None:
            continue
        for d in wd.students:
            if d.student not in profile.students:
                raise UserError(f"{where}: tasks.{k}.whole_document.students: {d.name}: student {d.student!r} is not "
                                f"one of the students")
            if d.start_from and d.start_from not in profile.student_variants(d.student, k):
                raise UserError(f"{where}: tasks.{k}.whole_document.students: {d.name}: start_from "
                                f"{d.start_from!r} is not a variant student {d.student} runs on {k}")
    return profile


def load_profile(name_or_path: str) -> Profile:
    """`cpu` -> benchmarks/profiles/cpu.yaml; anything with a slash or .yaml suffix is a path."""
    path = name_or_path if ("/" in name_or_path or name_or_path.endswith((".yaml", ".yml"))) \
        else str(PROFILE_DIR / f"{name_or_path}.yaml")
    if not os.path.isfile(path):
        known = sorted(p.stem for p in PROFILE_DIR.glob("*.yaml"))
        raise UserError(f"--profile: no profile {name_or_path!r} ({path} not found); known: {', '.join(known)}")
    with open(path, encoding="utf-8") as f:
        try:
            raw = yaml.safe_load(f)
        except yaml.YAMLError as e:
            raise UserError(f"{path}: not valid YAML: {e}") from None
    profile = profile_from_dict(raw, path)
    profile.source = path
    return profile


def profile_names() -> List[str]:
    return sorted(p.stem for p in PROFILE_DIR.glob("*.yaml"))
