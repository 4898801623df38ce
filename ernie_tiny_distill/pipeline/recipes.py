"""Recipes (configs/recipes/*.yaml) and the user's files turned into the stage configs the pipeline runs."""
from __future__ import annotations

import copy
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

import yaml

from ernie_tiny_distill.config import Config, load_config
from ernie_tiny_distill.errors import UserError
from ernie_tiny_distill.tasks.adapters import task_class

RECIPE_DIR = Path(__file__).resolve().parents[2] / "configs" / "recipes"
SPEEDUPS = (5, 10)
RECIPE_SECTIONS = ("teacher", "student", "control", "schedule", "assistant")
# file formats guessed from the file name when the task reads them; otherwise the task's plain-file format
FORMAT_BY_SUFFIX = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "jsonl"}
LINES_FORMAT = "label_text"  # `LABEL text` lines (data/readers/lines.py)
PLAIN_FORMAT = {"classification": LINES_FORMAT, "ner": "conll"}


@dataclass
class Options:
    """What the user asked for: tools/distill.py's flags."""

    task: str
    train: str
    out: str
    dev: Optional[str] = None
    test: Optional[str] = None
    unlabeled: Optional[str] = None
    teacher: str = "minilm"
    speedup: int = 10
    control: bool = False
    assistant: bool = True  # False: skip the recipe's assistant section (--no-assistant)
    encoding: Optional[str] = None
    format: Optional[str] = None
    text_column: Optional[str] = None
    label_column: Optional[str] = None
    recipe: Optional[str] = None
    overrides: Sequence[str] = field(default_factory=tuple)  # key=value, applied to every stage
    allow_weak_teacher: bool = False
    latency_texts: int = 200
    threads: int = 1  # inference threads of the exported models (evaluation, latency)


def recipe_path(task: str, speedup: int) -> Path:
    if speedup not in SPEEDUPS:
        raise UserError(f"--speedup must be one of {', '.join(map(str, SPEEDUPS))}, got {speedup}")
    return RECIPE_DIR / f"{task}_{speedup}x.yaml"


def load_recipe(task: str, speedup: int, path: Optional[str] = None) -> Dict[str, Any]:
    """The recipe's sections (teacher, student, control, schedule, assistant) as dicts; unknown sections are
    refused."""
    file = Path(path) if path else recipe_path(task, speedup)
    raw = _read_recipe(file)
    if raw.get("assistant") is not None:
        raw["assistant"] = _assistant_section(raw["assistant"], str(file))
    return raw


def _read_recipe(file: Path) -> Dict[str, Any]:
    if not file.is_file():
        raise UserError(f"recipe file not found: {file}")
    try:
        raw = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise UserError(f"not valid YAML: {e}", where=str(file)) from None
    if not isinstance(raw, dict) or set(raw) - set(RECIPE_SECTIONS):
        extra = sorted(set(raw) - set(RECIPE_SECTIONS)) if isinstance(raw, dict) else raw
        raise UserError(f"a recipe has the sections {', '.join(RECIPE_SECTIONS)}; got {extra!r}", where=str(file))
    for name in ("teacher", "student"):
        if not isinstance(raw.get(name), dict):
            raise UserError(f"recipe section {name!r} is missing or not a mapping", where=str(file))
    raw.setdefault("control", {})
    raw.setdefault("schedule", {})
    raw["file"] = str(file)
    return raw


def _assistant_section(section: Any, where: str) -> Dict[str, Any]:
    """The recipe's `assistant`: {recipe: the assistant's recipe file, weight: its share of the soft target}.
    A bare file name is one of the built-in recipes (configs/recipes); a path is taken as it is."""
    if not isinstance(section, dict) or set(section) - {"recipe", "weight"} or not section.get("recipe"):
        raise UserError(f"recipe section 'assistant' takes the keys recipe (a recipe file) and weight; got {section!r}",
                        where=where)
    name = str(section["recipe"])
    path = RECIPE_DIR / name if os.path.basename(name) == name else Path(name)
    weight = section.get("weight", 1.0)
    if not isinstance(weight, (int, float)) or not weight > 0:
        raise UserError(f"assistant.weight must be a number above 0, got {weight!r}", where=where)
    assistant = _read_recipe(path)
    if assistant.get("assistant") is not None:
        raise UserError(f"the assistant's recipe {path} has an assistant of its own: one level only", where=where)
    return {"recipe": str(path), "weight": float(weight), "student": assistant["student"]}


def data_section(opts: Options) -> Dict[str, Any]:
    """The config's `data` section for the user's files (format, encoding and columns passed through)."""
    for flag, path in (("--train", opts.train), ("--dev", opts.dev), ("--test", opts.test),
                       ("--unlabeled", opts.unlabeled)):
        if path and not os.path.isfile(path):
            raise UserError(f"{flag} {path}: no such file")
    fmt = opts.format or guess_format(opts.task, opts.train)
    data: Dict[str, Any] = {"format": fmt, "train_file": opts.train, "dev_file": opts.dev,
                            "test_file": opts.test, "split_seed": 0}
    if opts.encoding:
        data["encoding"] = opts.encoding
    if opts.text_column is not None:
        data["text_column"] = opts.text_column
    if opts.label_column is not None:
        data["label_column"] = opts.label_column
    if opts.test is None:
        data["max_test_examples"] = 0  # no test file: dev only
    return data


def guess_format(task: str, path: str) -> str:
    guessed = FORMAT_BY_SUFFIX.get(Path(path).suffix.lower())
    return guessed if guessed in task_class(task).data_formats else PLAIN_FORMAT[task]


def merge(base: Dict, extra: Dict) -> Dict:
    """`extra` merged into a copy of `base`, section by section."""
    out = copy.deepcopy(base)
    for key, value in (extra or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def planned_steps(examples: int, train: Dict[str, Any]) -> int:
    """Optimisation steps of a run over `examples` (max(epochs x batches per epoch, min_steps), as the trainer)."""
    per_epoch = max(1, math.ceil(examples / int(train.get("batch_size", 32))))
    return max(1, math.ceil(float(train.get("epochs", 3)) * per_epoch), int(train.get("min_steps") or 0))


def with_overrides(raw: Dict[str, Any], overrides: Sequence[str]) -> Dict[str, Any]:
    """`raw` with the user's key=value overrides applied (as load_config applies them, which checks them)."""
    from ernie_tiny_distill.config_schema import apply_overrides

    out = copy.deepcopy(raw)
    apply_overrides(out, overrides)  # the same parsing as tools/train.py: a value that is not YAML stays a string
    return out



def with_schedule(raw: Dict[str, Any], examples: int, evaluations: int,
                  overrides: Sequence[str] = ()) -> Dict[str, Any]:
    """Evaluate on dev about `evaluations` times per run, however large the data set (counting the steps with
    the user's overrides, e.g. train.batch_size)."""
    steps = planned_steps(examples, with_overrides(raw, overrides).get("train", {}))
    return merge(raw, {"train": {"eval_every": max(1, steps // max(1, evaluations))}})


def build_config(raw: Dict[str, Any], overrides: Sequence[str], config_file: str) -> Config:
    """A validated Config from `raw` and the user's key=value overrides (unknown keys are errors). `raw` is
    written to config_file first, so the stage can be re-run by hand with tools/train.py --config FILE."""
    os.makedirs(os.path.dirname(os.path.abspath(config_file)), exist_ok=True)
    with open(config_file, "w", encoding="utf-8") as f:
        yaml.safe_dump(raw, f, sort_keys=False)
    return load_config(config_file, list(overrides))
