"""The benchmark matrix (issue 4): teacher vs students A/B trained three ways, reference rows, deployment numbers.

Every training stage is one `python tools/train.py --config configs/bench/<stage>.yaml` (a complete YAML file
generated here, with the command in its header), run as a subprocess so the recorded command is exactly what
produced the numbers. A job writes <runs_dir>/results/<job>.json when it finishes; a re-run skips finished
jobs (and `stages.run_stage` skips finished stages / resumes interrupted ones from their checkpoints).

Job names: `imdb/teacher`, `imdb/B/sweep/kd_T2_ce0.5_lr1e-3`, `imdb/B/sweep/select`, `imdb/B/task_kd/seed2`,
`imdb/B/two_stage_kd/seed1` (stage 1 + stage 2), `imdb/tfidf_lr/subset`, `imdb/B/len512/seed1`,
`imdb/export/B`, `imdb/int8/B`, `imdb/latency`. `--only` / `--skip` take names or any run of whole name
components (`imdb/B`, `B/task_kd`, `export`, `latency`, `sweep`, `seed2`) or globs (`*/A/*`); the dependencies of selected
jobs (teacher, sweep, stage 1) are pulled in unless skipped explicitly.

The report (`report()`): benchmarks/results.json, docs/benchmarks.md, docs/pareto.png, from the result files
and the run directories' summary.json only.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import fnmatch
import hashlib
import json
import logging
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import yaml

from .config import Config, config_from_dict, load_config
from .errors import UserError

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
TRAIN_SCRIPT = "tools/train.py"
VARIANTS = ("no_kd", "task_kd", "two_stage_kd")
METRIC_LABEL = {"accuracy": "accuracy", "f1": "entity F1"}


# ---------------------------------------------------------------- profiles


@dataclass
class Shape:
    layers: int
    hidden: int
    heads: int
    intermediate: int

    @property
    def label(self) -> str:
        return f"{self.layers}L-{self.hidden}H"


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
    long_seq: Optional[int] = None          # student B reading longer inputs (two-stage recipe, first seed)
    title: str = ""
    sweep_lr: Optional[List[float]] = None  # this task's learning-rate grid (KD and no-KD); None = the profile's
    nokd_sweep_lr: Optional[List[float]] = None   # this task's no-KD learning-rate grid; None = as sweep_lr


@dataclass
class Profile:
    name: str
    tasks: Dict[str, TaskSpec]
    students: Dict[str, Shape]
    seeds: Dict[str, List[int]]
    # dev sweep for student B, first seed; None = use `fixed` as is
    sweep: Optional[Dict[str, List[float]]]
    nokd_sweep_lr: Optional[List[float]]
    fixed: Dict[str, float]                 # temperature, ce_weight, learning_rate, nokd_learning_rate
    general: Dict[str, float]               # stage 1: learning_rate (student B), hidden/attention weights
    lr_factor: Dict[str, float]             # per student, times B's chosen learning rate
    train: Dict[str, object]                # common train.* keys
    runs_dir: str
    config_dir: str
    out_dir: str = "."                      # report: <out>/benchmarks/results.json, <out>/docs/...
    results_name: str = "results.json"
    # which trained student (first seed) gets exported + quantized: task KD, the recipe every student row has
    int8_variant: str = "task_kd"
    int8_method: str = "dynamic"            # tools/export.py --int8-method (its default; see export.quantize_int8)
    latency: Dict[str, object] = field(default_factory=lambda: {"threads": 1, "seq_len": 128, "batch_size": 32,
                                                                  "iterations": 100, "warmup": 10})
    quiet_timeout: float = 4 * 3600.0       # latency waits this long for a quiet machine, then measures anyway
    run_tfidf_grid: Tuple[float, ...] = (1.0, 4.0, 16.0, 64.0, 256.0, 1024.0)
    extra_distill: Dict[str, object] = field(default_factory=dict)   # merged into every task-stage distill section


STUDENTS = {"A": Shape(3, 256, 4, 1024), "B": Shape(2, 128, 2, 512)}
COMMON_TRAIN = {"batch_size": 32, "eval_batch_size": 64, "warmup_ratio": 0.1, "weight_decay": 0.01,
                "log_every": 20, "num_threads": 1, "progress": False}
SWEEP = {"temperature": [1.0, 2.0, 4.0], "ce_weight": [0.5], "learning_rate": [5e-4, 1e-3]}


def cpu_profile() -> Profile:
    """Runs on the 2-core CPU: IMDB on a 4k-review subset + 8k-review transfer set, CoNLL-2003 on all of train."""
    return Profile(
        name="cpu",
        tasks={
            "conll": TaskSpec("conll", "configs/conll_teacher.yaml", unlabeled="train_text", transfer=False,
                              no_kd_epochs=3, kd_epochs=3, general_epochs=3, title="CoNLL-2003 NER",
                              # 1e-3 beat 5e-4 on dev at T=1 and CoNLL runs are cheap: the grid gets 2e-3 too
                              sweep_lr=[5e-4, 1e-3, 2e-3]),
            "imdb": TaskSpec("imdb", "configs/imdb_teacher.yaml", unlabeled="imdb_unsup", max_unlabeled=8000,
                             transfer=True, no_kd_epochs=3, kd_epochs=1, general_epochs=1, kd_eval_every=125,
                             tfidf=True, long_seq=512, title="IMDB sentiment",
                             # an IMDB sweep point costs ~7 min here: T is swept at one learning rate (1e-3 beat
                             # 5e-4 at T=1 on dev, 0.841 vs 0.838), no-KD keeps two learning rates
                             sweep_lr=[1e-3], nokd_sweep_lr=[5e-4, 1e-3]),
        },
        students=dict(STUDENTS), seeds={"B": [1, 2, 3], "A": [1]},
        sweep=dict(SWEEP), nokd_sweep_lr=[5e-4, 1e-3],
        fixed={"temperature": 2.0, "ce_weight": 0.5, "learning_rate": 1e-3, "nokd_learning_rate": 1e-3},
        general={"learning_rate": 1e-3, "hidden_weight": 1.0, "attention_weight": 1.0},
        lr_factor={"B": 1.0, "A": 0.5}, train=dict(COMMON_TRAIN),
        runs_dir="runs/bench", config_dir="configs/bench",
    )


def full_profile() -> Profile:
    """For GPU users (not run here): all 24k IMDB training reviews + the 50k unsup reviews, more epochs, 3 seeds
    for both students. no_kd gets the same number of examples seen as task KD: 2 x (24k + 50k) / 24k epochs."""
    imdb_teacher = ["output_dir=runs/bench_full/imdb/teacher", "data.max_train_examples=null", "train.epochs=3",
                    "train.num_threads=2"]
    conll_teacher = ["output_dir=runs/bench_full/conll/teacher", "train.epochs=3", "train.num_threads=2"]
    train = dict(COMMON_TRAIN, num_threads=2)
    return Profile(
        name="full",
        tasks={
            "conll": TaskSpec("conll", "configs/conll_teacher.yaml", conll_teacher, unlabeled="train_text",
                              no_kd_epochs=10, kd_epochs=10, general_epochs=10, title="CoNLL-2003 NER"),
            "imdb": TaskSpec("imdb", "configs/imdb_teacher.yaml", imdb_teacher, unlabeled="imdb_unsup",
                             max_unlabeled=50000, transfer=True, no_kd_epochs=round(2 * 74000 / 24000, 3),
                             kd_epochs=2, general_epochs=3, kd_eval_every=750, tfidf=True, long_seq=512,
                             title="IMDB sentiment"),
        },
        students=dict(STUDENTS), seeds={"B": [1, 2, 3], "A": [1, 2, 3]},
        sweep=dict(SWEEP), nokd_sweep_lr=[5e-4, 1e-3],
        fixed={"temperature": 2.0, "ce_weight": 0.5, "learning_rate": 1e-3, "nokd_learning_rate": 1e-3},
        general={"learning_rate": 5e-4, "hidden_weight": 1.0, "attention_weight": 1.0},
        lr_factor={"B": 1.0, "A": 0.5}, train=train,
        runs_dir="runs/bench_full", config_dir="configs/bench/full", results_name="results_full.json",
    )


PROFILES: Dict[str, Callable[[], Profile]] = {"cpu": cpu_profile, "full": full_profile}


# ---------------------------------------------------------------- jobs


@dataclass
class Job:
    name: str
    kind: str          # teacher | train | sweep_select | tfidf | export | int8 | latency
    task: str
    deps: List[str] = field(default_factory=list)
    model: Optional[str] = None
    variant: Optional[str] = None
    seed: Optional[int] = None
    extra: Dict = field(default_factory=dict)


@dataclass
class Stage:
    name: str          # e.g. imdb/B/general/seed1
    cfg: Dict
    yaml_path: str

    @property
    def command(self) -> str:
        return f"python {TRAIN_SCRIPT} --config {self.yaml_path}"


class NotReady(Exception):
    """A job's inputs (sweep choice, teacher) are not available yet."""


def _fmt(x: float) -> str:
    return f"{x:g}".replace("e-0", "e-")


def _matches(name: str, selectors: Sequence[str]) -> bool:
    for s in _split_list(selectors):
        s = s.strip().strip("/")
        # a run of whole name components (imdb/B, task_kd, B/task_kd/seed2, export) or a glob (*/A/*)
        if s and (f"/{s}/" in f"/{name}/" or fnmatch.fnmatchcase(name, s)):
            return True
    return False


def _split_list(values: Optional[Sequence[str]]) -> List[str]:
    out: List[str] = []
    for v in values or []:
        out += [x for x in v.split(",") if x.strip()]
    return out


def _sha(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _write_text(path: str, text: str) -> None:
    """Write through a temporary file and rename, so a reader never sees half a file."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def _write_json(path: str, data) -> None:
    _write_text(path, json.dumps(data, indent=2, default=str) + "\n")


def _read_json(path: str):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _headline(metrics: Optional[Dict]) -> Optional[Dict]:
    if not metrics:
        return metrics
    return {k: v for k, v in metrics.items() if k != "per_class"}


class Matrix:
    def __init__(self, profile: Profile, tasks: Sequence[str]):
        unknown = [t for t in tasks if t not in profile.tasks]
        if unknown:
            raise UserError(f"unknown task(s) {unknown}; profile {profile.name!r} has {list(profile.tasks)}")
        self.p = profile
        self.tasks = list(tasks)
        self.ran: List[str] = []          # stages launched as subprocesses in this invocation
        self.done: List[str] = []         # jobs completed (or found complete) in this invocation
        self.failed: Dict[str, str] = {}
        self._teacher_cfgs: Dict[str, Config] = {}

    # ------------------------------------------------------------ paths and teacher configs

    def result_path(self, name: str) -> str:
        return os.path.join(self.p.runs_dir, "results", name + ".json")

    def result(self, name: str) -> Optional[Dict]:
        return _read_json(self.result_path(name))

    def teacher_cfg(self, task: str) -> Config:
        if task not in self._teacher_cfgs:
            spec = self.p.tasks[task]
            self._teacher_cfgs[task] = load_config(spec.teacher_config, spec.teacher_overrides)
        return self._teacher_cfgs[task]

    def teacher_command(self, task: str) -> str:
        spec = self.p.tasks[task]
        return " ".join([f"python {TRAIN_SCRIPT} --config {spec.teacher_config}", *spec.teacher_overrides])

    def out(self, *parts) -> str:
        return os.path.join(self.p.runs_dir, *[str(p) for p in parts])

    # ------------------------------------------------------------ the plan

    def jobs(self) -> List[Job]:
        """Every job, in run order: cheap informative rows first (B on CoNLL, TF-IDF, B on IMDB), A rows,
        the long-input row, then exports, INT8 and latency (measured last)."""
        order = sorted(self.tasks, key=lambda t: 0 if t == "conll" else 1)
        jobs: List[Job] = []
        for t in order:
            spec = self.p.tasks[t]
            if spec.tfidf:
                jobs += [Job(f"{t}/tfidf_lr/{s}", "tfidf", t, extra={"train": s}) for s in ("subset", "all")]
            jobs.append(Job(f"{t}/teacher", "teacher", t))
            jobs += self._sweep_jobs(t)
            jobs += self._student_jobs(t, "B")
        for t in order:
            jobs += self._student_jobs(t, "A")
        for t in order:
            spec = self.p.tasks[t]
            if spec.long_seq and "B" in self.p.students:
                seed = self.p.seeds["B"][0]
                jobs.append(Job(f"{t}/B/len{spec.long_seq}/seed{seed}", "train", t,
                                [f"{t}/teacher", f"{t}/B/sweep/select"], "B", f"len{spec.long_seq}", seed))
        for t in order:
            jobs += self._deploy_jobs(t)
        return jobs

    def _sweep_jobs(self, t: str) -> List[Job]:
        if "B" not in self.p.students:
            return []
        seed = self.p.seeds["B"][0]
        deps = [f"{t}/teacher"]
        jobs = []
        lrs = self.p.tasks[t].sweep_lr
        if self.p.sweep:
            s = self.p.sweep
            for temp in s["temperature"]:
                for ce in s["ce_weight"]:
                    for lr in lrs or s["learning_rate"]:
                        jobs.append(Job(f"{t}/B/sweep/kd_T{_fmt(temp)}_ce{_fmt(ce)}_lr{_fmt(lr)}", "train", t, deps,
                                        "B", "sweep_kd", seed, {"temperature": temp, "ce_weight": ce,
                                                                "learning_rate": lr}))
        nokd_lrs = self.p.tasks[t].nokd_sweep_lr or lrs or self.p.nokd_sweep_lr
        for lr in nokd_lrs if self.p.nokd_sweep_lr else []:
            jobs.append(Job(f"{t}/B/sweep/nokd_lr{_fmt(lr)}", "train", t, deps, "B", "sweep_nokd", seed,
                            {"learning_rate": lr}))
        jobs.append(Job(f"{t}/B/sweep/select", "sweep_select", t, [j.name for j in jobs]))
        return jobs

    def _student_jobs(self, t: str, model: str) -> List[Job]:
        if model not in self.p.students:
            return []
        jobs = []
        for seed in self.p.seeds[model]:
            for variant in VARIANTS:
                jobs.append(Job(f"{t}/{model}/{variant}/seed{seed}", "train", t,
                                [f"{t}/teacher", f"{t}/B/sweep/select"], model, variant, seed))
        return jobs

    def _deploy_jobs(self, t: str) -> List[Job]:
        jobs = [Job(f"{t}/export/teacher", "export", t, [f"{t}/teacher"], "teacher")]
        for model in sorted(self.p.students, reverse=True):   # B first
            row = f"{t}/{model}/{self.p.int8_variant}/seed{self.p.seeds[model][0]}"
            jobs.append(Job(f"{t}/export/{model}", "export", t, [row], model, extra={"row": row}))
            jobs.append(Job(f"{t}/int8/{model}", "int8", t, [row], model, extra={"row": row}))
        spec = self.p.tasks[t]
        if spec.long_seq and "B" in self.p.students:
            row = f"{t}/B/len{spec.long_seq}/seed{self.p.seeds['B'][0]}"
            jobs.append(Job(f"{t}/export/B-len{spec.long_seq}", "export", t, [row], "B", extra={"row": row}))
        exports = [j.name for j in jobs if j.kind in ("export", "int8")]
        # latency needs the teacher's export; it measures whichever other exports exist by then
        jobs.append(Job(f"{t}/latency", "latency", t, exports, extra={"hard_deps": [f"{t}/export/teacher"]}))
        return jobs

    # ------------------------------------------------------------ configs

    def chosen(self, t: str) -> Dict[str, float]:
        """The hyper-parameters picked on dev by the sweep (or the profile's fixed ones)."""
        if not self.p.sweep and not self.p.nokd_sweep_lr:
            return dict(self.p.fixed)
        res = self.result(f"{t}/B/sweep/select")
        if not res or res.get("status") != "done":
            raise NotReady(f"the dev sweep {t}/B/sweep has not finished")
        return res["chosen"]

    def _base(self, t: str, output_dir: str, stage: str, seed: int) -> Dict:
        teacher = self.teacher_cfg(t).to_dict()
        cfg = {"task": teacher["task"], "stage": stage, "output_dir": output_dir,
               "data": copy.deepcopy(teacher["data"]),
               "model": {"teacher": teacher["output_dir"], "max_seq_length": teacher["model"]["max_seq_length"],
                         "truncation": teacher["model"]["truncation"]},
               "distill": {}, "train": dict(self.p.train, seed=seed)}
        return cfg

    def _student_section(self, model: str) -> Dict:
        s = self.p.students[model]
        return {"init": "config", "num_layers": s.layers, "hidden_size": s.hidden, "num_heads": s.heads,
                "intermediate_size": s.intermediate, "embeddings": "teacher_pca"}

    def _unlabeled(self, t: str, cfg: Dict) -> None:
        spec = self.p.tasks[t]
        value = spec.unlabeled
        if value == "train_text":
            value = self.write_train_text(t)
        cfg["data"]["unlabeled"] = value
        cfg["data"]["max_unlabeled_examples"] = spec.max_unlabeled

    def write_train_text(self, t: str) -> str:
        """The training sentences without labels, one per line (tokens joined by spaces), written once."""
        path = self.out(t, "unlabeled.txt")
        if os.path.isfile(path):
            return path
        from . import data as data_lib

        cfg = self.teacher_cfg(t)
        train = data_lib.load_splits(cfg.data, cfg.task).train
        lines = [" ".join(ex.tokens) if hasattr(ex, "tokens") else " ".join(ex.text.split()) for ex in train]
        _write_text(path, "\n".join(line for line in lines if line.strip()) + "\n")
        logger.info("wrote %d unlabeled training sentences to %s", len(lines), path)
        return path

    def general_stage(self, t: str, model: str, seed: int) -> Stage:
        name = f"{t}/{model}/general/seed{seed}"
        cfg = self._base(t, self.out(t, model, "general", f"seed{seed}"), "general", seed)
        cfg["model"]["teacher"] = self.teacher_cfg(t).model.teacher   # the pretrained (not fine-tuned) encoder
        cfg["model"]["student"] = self._student_section(model)
        self._unlabeled(t, cfg)
        cfg["distill"] = {"hidden_weight": self.p.general["hidden_weight"],
                          "attention_weight": self.p.general["attention_weight"], "attention_loss": "kl"}
        cfg["train"].update(epochs=self.p.tasks[t].general_epochs,
                            learning_rate=self.p.general["learning_rate"] * self.p.lr_factor[model])
        return self._stage(name, cfg, f"stage 1 (general distillation from the pretrained teacher on unlabeled "
                                      f"in-domain text) for student {model}, seed {seed}")

    def _task_stage(self, job: Job, name: str, output_dir: str, *, kd: bool, temperature: float, ce_weight: float,
                    lr: float, transfer: bool, student: Dict, epochs: float, test: bool = True,
                    max_seq_length: Optional[int] = None, what: str = "") -> Stage:
        cfg = self._base(job.task, output_dir, "task", job.seed)
        cfg["model"]["student"] = student
        teacher_length = cfg["model"]["max_seq_length"]
        if max_seq_length:
            cfg["model"]["max_seq_length"] = max_seq_length
        if transfer:
            self._unlabeled(job.task, cfg)
        if not test:
            cfg["data"]["max_test_examples"] = 0    # dev-only: the sweep never sees the test split
        if kd:
            cfg["distill"] = {"kd_weight": 1.0, "ce_weight": ce_weight, "temperature": temperature}
        else:
            cfg["distill"] = {"kd_weight": 0.0, "ce_weight": 1.0}
        if kd and max_seq_length and max_seq_length != teacher_length:
            # the teacher keeps reading the length it was fine-tuned at (and stays as cheap to run)
            cfg["distill"]["teacher_max_seq_length"] = teacher_length
        cfg["distill"].update(self.p.extra_distill)
        cfg["train"].update(epochs=epochs, learning_rate=lr)
        spec = self.p.tasks[job.task]
        if kd and transfer and spec.kd_eval_every:
            cfg["train"]["eval_every"] = spec.kd_eval_every
        return self._stage(name, cfg, what)

    def stages(self, job: Job) -> List[Stage]:
        t, model, seed, spec = job.task, job.model, job.seed, self.p.tasks[job.task]
        out = self.out(*job.name.split("/"))
        if job.variant == "sweep_kd":
            e = job.extra
            return [self._task_stage(job, job.name, out, kd=True, temperature=e["temperature"],
                                     ce_weight=e["ce_weight"], lr=e["learning_rate"], transfer=spec.transfer,
                                     student=self._student_section(model), epochs=spec.kd_epochs, test=False,
                                     what="dev sweep point for student B task KD (test split not read)")]
        if job.variant == "sweep_nokd":
            return [self._task_stage(job, job.name, out, kd=False, temperature=1.0, ce_weight=1.0,
                                     lr=job.extra["learning_rate"], transfer=False,
                                     student=self._student_section(model), epochs=spec.no_kd_epochs, test=False,
                                     what="dev sweep point for student B without KD (test split not read)")]
        hp = self.chosen(t)
        factor = self.p.lr_factor[model]
        if job.variant == "no_kd":
            return [self._task_stage(job, job.name, out, kd=False, temperature=1.0, ce_weight=1.0,
                                     lr=hp["nokd_learning_rate"] * factor, transfer=False,
                                     student=self._student_section(model), epochs=spec.no_kd_epochs,
                                     what=f"student {model} fine-tuned without KD (CE only), seed {seed}")]
        kd_args = dict(kd=True, temperature=hp["temperature"], ce_weight=hp["ce_weight"],
                       lr=hp["learning_rate"] * factor, transfer=spec.transfer, epochs=spec.kd_epochs)
        if job.variant == "task_kd":
            return [self._task_stage(job, job.name, out, student=self._student_section(model), **kd_args,
                                     what=f"student {model}, task KD only, seed {seed}")]
        general = self.general_stage(t, model, seed)
        pretrained = dict(self._student_section(model), init="pretrained",
                          path=os.path.join(general.cfg["output_dir"], "best"))
        if job.variant == "two_stage_kd":
            return [general, self._task_stage(job, job.name, out, student=pretrained, **kd_args,
                                              what=f"student {model}, stage 2 (task KD) after stage 1, seed {seed}")]
        if job.variant == f"len{spec.long_seq}":
            return [general, self._task_stage(job, job.name, out, student=pretrained, **kd_args,
                                              max_seq_length=spec.long_seq,
                                              what=f"student B reading {spec.long_seq} tokens (two-stage recipe; "
                                                   f"stage 1 shared with {t}/B/two_stage_kd/seed{seed})")]
        raise ValueError(f"unknown variant {job.variant}")

    def _stage(self, name: str, cfg: Dict, what: str) -> Stage:
        full = config_from_dict(cfg).to_dict()   # validated, every key written out
        path = os.path.join(self.p.config_dir, name.replace("/", "_") + ".yaml")
        header = (f"# Benchmark (profile {self.p.name}), {name}: {what}.\n"
                  f"# Generated by tools/reproduce.py (edit ernie_tiny_distill/reproduce.py, not this file).\n"
                  f"# Run: python {TRAIN_SCRIPT} --config {path}\n")
        text = header + yaml.safe_dump(full, sort_keys=False)
        os.makedirs(self.p.config_dir, exist_ok=True)
        old = None
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as f:
                old = f.read()
        if old != text:
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
        return Stage(name, full, path)

    # ------------------------------------------------------------ running

    def select(self, only: Sequence[str] = (), skip: Sequence[str] = ()) -> List[Job]:
        jobs = self.jobs()
        by_name = {j.name: j for j in jobs}
        chosen = {j.name for j in jobs if (not only or _matches(j.name, only)) and not _matches(j.name, skip)}
        frontier = list(chosen)
        while frontier:   # dependencies come along unless skipped explicitly
            job = by_name[frontier.pop()]
            # latency measures the exports that exist; only its hard dependencies (the teacher's export) come along
            for dep in job.extra.get("hard_deps", job.deps):
                if dep in by_name and dep not in chosen and not _matches(dep, skip):
                    chosen.add(dep)
                    frontier.append(dep)
        return [j for j in jobs if j.name in chosen]

    def run(self, only: Sequence[str] = (), skip: Sequence[str] = ()) -> Dict:
        jobs = self.select(only, skip)
        logger.info("%d jobs selected: %s", len(jobs), ", ".join(j.name for j in jobs))
        for job in jobs:
            blocked = [d for d in job.extra.get("hard_deps", job.deps) if not self.is_done(d)]
            if blocked:
                logger.warning("%s: skipped, waiting for %s", job.name, ", ".join(blocked))
                self.failed[job.name] = f"blocked by {', '.join(blocked)}"
                continue
            started = time.time()
            try:
                with _Lock(self.out("locks", job.name.replace("/", "_") + ".lock")):
                    getattr(self, f"_run_{job.kind}")(job)
                self.done.append(job.name)
                logger.info("%s: done (%.0f s)", job.name, time.time() - started)
            except NotReady as e:
                logger.warning("%s: not ready: %s", job.name, e)
                self.failed[job.name] = str(e)
            except Exception as e:  # one failed row must not stop the rest of a long run
                logger.exception("%s: FAILED: %s", job.name, e)
                self.failed[job.name] = f"{type(e).__name__}: {e}"
        return {"done": self.done, "ran": self.ran, "failed": self.failed}

    def is_done(self, name: str) -> bool:
        res = self.result(name)
        return bool(res) and res.get("status") in ("done", "ready")

    def _record(self, job: Job, **data) -> Dict:
        res = {"name": job.name, "kind": job.kind, "task": job.task, "model": job.model, "variant": job.variant,
               "seed": job.seed, "status": "done", "finished": time.strftime("%Y-%m-%d %H:%M:%S"), **data}
        _write_json(self.result_path(job.name), res)
        return res

    # -- training
    def _run_train(self, job: Job) -> None:
        stages = self.stages(job)
        fingerprint = _sha([s.cfg for s in stages])
        previous = self.result(job.name)
        if previous and previous.get("status") == "done" and previous.get("fingerprint") == fingerprint \
                and all(_finished(s.cfg) for s in stages):
            logger.info("%s: finished earlier; skipping", job.name)
            return
        summaries = []
        for stage in stages:
            summaries.append(self._run_stage(stage))
        last = summaries[-1]
        self._record(job, fingerprint=fingerprint, commands=[s.command for s in stages],
                     configs=[s.yaml_path for s in stages], output_dirs=[s.cfg["output_dir"] for s in stages],
                     seconds=round(sum(s.get("seconds") or 0 for s in summaries), 1),
                     summary=_summary_digest(last), stage_summaries=[_summary_digest(s) for s in summaries[:-1]])

    def _run_stage(self, stage: Stage) -> Dict:
        done = _finished(stage.cfg)
        if done is not None:
            logger.info("  %s: finished earlier with this config; skipping", stage.name)
            return done
        out = stage.cfg["output_dir"]
        old_cfg = _read_yaml(os.path.join(out, "config.yaml"))
        if old_cfg is not None and not _same_config(old_cfg, stage.cfg):
            stale = f"{out}.stale-{time.strftime('%Y%m%d-%H%M%S')}"
            logger.warning("  %s: %s holds a run of a different config; moved to %s", stage.name, out, stale)
            os.replace(out, stale)
        log_file = self.out("logs", stage.name.replace("/", "_") + ".log")
        os.makedirs(os.path.dirname(log_file), exist_ok=True)
        logger.info("  %s: %s  (log: %s)", stage.name, stage.command, log_file)
        self.ran.append(stage.name)
        env = {**os.environ, "OMP_NUM_THREADS": str(stage.cfg["train"]["num_threads"])}
        with open(log_file, "a", encoding="utf-8") as log:
            log.write(f"\n===== {time.strftime('%Y-%m-%d %H:%M:%S')} {stage.command}\n")
            log.flush()
            rc = subprocess.call([sys.executable, str(REPO / TRAIN_SCRIPT), "--config", stage.yaml_path],
                                 stdout=log, stderr=subprocess.STDOUT, env=env)
        summary = _finished(stage.cfg)
        if rc != 0 or summary is None:
            raise RuntimeError(f"{stage.command} exited with status {rc}; last lines of {log_file}:\n"
                               + _tail(log_file))
        return summary

    # -- teacher
    def _run_teacher(self, job: Job) -> None:
        cfg = self.teacher_cfg(job.task)
        full = cfg.to_dict()
        command = self.teacher_command(job.task)
        base = dict(fingerprint=_sha(full), commands=[command], configs=[self.p.tasks[job.task].teacher_config],
                    output_dirs=[cfg.output_dir])
        summary = _finished(full)
        if summary is None:
            old_cfg = _read_yaml(os.path.join(cfg.output_dir, "config.yaml"))
            if old_cfg is not None and not _same_config(old_cfg, full):
                raise UserError(f"{cfg.output_dir} holds a teacher run of a different config; "
                                "not touching it (move it away or fix the teacher YAML)")
            others = _processes_running(self.p.tasks[job.task].teacher_config, cfg.output_dir)
            if others:
                logger.info("%s: being trained by another process (pid %s); waiting for its training to finish",
                            job.name, ", ".join(map(str, others)))
                while not _training_finished(cfg.output_dir, cfg.train.epochs):
                    if _finished(full) is not None or not _processes_running(
                            self.p.tasks[job.task].teacher_config, cfg.output_dir):
                        break
                    time.sleep(60)
                summary = _finished(full)
                if summary is None:
                    if not _training_finished(cfg.output_dir, cfg.train.epochs):
                        raise RuntimeError(f"the teacher run in {cfg.output_dir} stopped before finishing")
                    # its final dev/test evaluation is still running: students only need best/
                    self._record(job, status="ready", **base)
                    return
            else:
                stage = Stage(job.name, full, self.p.tasks[job.task].teacher_config)
                log_file = self.out("logs", job.name.replace("/", "_") + ".log")
                os.makedirs(os.path.dirname(log_file), exist_ok=True)
                logger.info("  %s: %s  (log: %s)", job.name, command, log_file)
                self.ran.append(job.name)
                env = {**os.environ, "OMP_NUM_THREADS": str(cfg.train.num_threads)}
                with open(log_file, "a", encoding="utf-8") as log:
                    rc = subprocess.call([sys.executable, str(REPO / TRAIN_SCRIPT), "--config",
                                          stage.yaml_path, *self.p.tasks[job.task].teacher_overrides],
                                         stdout=log, stderr=subprocess.STDOUT, env=env)
                summary = _finished(full)
                if rc != 0 or summary is None:
                    raise RuntimeError(f"{command} exited with status {rc}:\n{_tail(log_file)}")
        self._record(job, summary=_summary_digest(summary), seconds=summary.get("seconds"), **base)

    # -- sweep selection
    def _run_sweep_select(self, job: Job) -> None:
        grid = []
        for dep in job.deps:
            res = self.result(dep)
            s = res["summary"]
            grid.append({"name": dep, "variant": res["variant"], "dev": s["dev"][s["metric_name"]],
                         "metric_name": s["metric_name"], **_sweep_params(dep)})
        kd = [g for g in grid if g["variant"] == "sweep_kd"]
        nokd = [g for g in grid if g["variant"] == "sweep_nokd"]
        chosen = dict(self.p.fixed)
        if kd:
            best = max(kd, key=lambda g: g["dev"])   # first of equals (grid order) wins a tie
            chosen.update(temperature=best["temperature"], ce_weight=best["ce_weight"],
                          learning_rate=best["learning_rate"])
        if nokd:
            chosen["nokd_learning_rate"] = max(nokd, key=lambda g: g["dev"])["learning_rate"]
        self._record(job, fingerprint=_sha(grid), grid=grid, chosen=chosen)

    # -- TF-IDF
    def _run_tfidf(self, job: Job) -> None:
        spec = self.p.tasks[job.task]
        out = self.out(job.task, "tfidf_lr", job.extra["train"] + ".json")
        grid = ",".join(f"{c:g}" for c in self.p.run_tfidf_grid)
        args = ["--config", spec.teacher_config, *spec.teacher_overrides, "--train", job.extra["train"],
                "--c-grid", grid, "--out", out]
        command = " ".join(["python -m ernie_tiny_distill.baselines", *args])
        fingerprint = _sha([self.teacher_cfg(job.task).to_dict()["data"], job.extra, list(self.p.run_tfidf_grid)])
        previous = self.result(job.name)
        if previous and previous.get("fingerprint") == fingerprint and os.path.isfile(out):
            logger.info("%s: finished earlier; skipping", job.name)
            return
        log_file = self.out("logs", job.name.replace("/", "_") + ".log")
        os.makedirs(os.path.dirname(log_file), exist_ok=True)
        logger.info("  %s: %s", job.name, command)
        self.ran.append(job.name)
        with open(log_file, "a", encoding="utf-8") as log:
            rc = subprocess.call([sys.executable, "-m", "ernie_tiny_distill.baselines", *args],
                                 stdout=log, stderr=subprocess.STDOUT, cwd=os.getcwd())
        result = _read_json(out)
        if rc != 0 or result is None:
            raise RuntimeError(f"{command} exited with status {rc}:\n{_tail(log_file)}")
        self._record(job, fingerprint=fingerprint, commands=[command], output=out,
                     summary={"metric_name": "accuracy", "test": result["test"],
                              "dev": {"accuracy": result["dev_accuracy"]}, "C": result["C"],
                              "train_examples": result["train_examples"], "seconds": result["seconds"]})

    # -- deployment
    def _model_dir(self, job: Job) -> str:
        if job.model == "teacher":
            return os.path.join(self.teacher_cfg(job.task).output_dir, "best")
        res = self.result(job.extra["row"])
        return res["summary"]["best_dir"]

    def _export_dir(self, job: Job) -> str:
        return self.out(job.task, "export", job.name.split("/")[-1])

    def _export_subprocess(self, job: Job, args: List[str]) -> str:
        command = " ".join(["python tools/export.py", *args])
        log_file = self.out("logs", job.name.replace("/", "_") + ".log")
        os.makedirs(os.path.dirname(log_file), exist_ok=True)
        logger.info("  %s: %s", job.name, command)
        self.ran.append(job.name)
        with open(log_file, "a", encoding="utf-8") as log:
            log.write(f"\n===== {time.strftime('%Y-%m-%d %H:%M:%S')} {command}\n")
            log.flush()
            rc = subprocess.call([sys.executable, str(REPO / "tools" / "export.py"), *args], stdout=log,
                                 stderr=subprocess.STDOUT, env={**os.environ, "OMP_NUM_THREADS": "1"})
        if rc != 0:
            raise RuntimeError(f"{command} exited with status {rc}:\n{_tail(log_file)}")
        return command

    def _run_export(self, job: Job) -> None:
        model_dir, out = self._model_dir(job), self._export_dir(job)
        fingerprint = _sha([os.path.abspath(model_dir), os.stat(os.path.join(model_dir, "model.safetensors")).st_mtime_ns])
        previous = self.result(job.name)
        if previous and previous.get("fingerprint") == fingerprint and os.path.isfile(os.path.join(out, "export.json")):
            logger.info("%s: exported earlier; skipping", job.name)
            return
        command = self._export_subprocess(job, ["--model", model_dir, "--out", out, "--threads", "1"])
        meta = _read_json(os.path.join(out, "export.json")) or {}
        files = meta.get("files") or {}
        size = sum(v for k, v in files.items() if k.startswith("inference."))
        self._record(job, fingerprint=fingerprint, model_dir=model_dir, export_dir=out, size_mb=size / 2**20,
                     check=meta.get("check"), commands=[command])

    def calibration_file(self, t: str) -> str:
        """Training texts for INT8 (one per line; CoNLL: the training file itself, which export reads)."""
        cfg = self.teacher_cfg(t)
        if cfg.task == "ner" and cfg.data.path:
            for name in ("train.txt", "train.tsv"):
                if os.path.isfile(os.path.join(cfg.data.path, name)):
                    return os.path.join(cfg.data.path, name)
        path = self.out(t, "calibration.txt")
        if not os.path.isfile(path):
            from . import data as data_lib

            train = data_lib.load_splits(cfg.data, cfg.task).train[:300]
            lines = [" ".join((e.text if hasattr(e, "text") else " ".join(e.tokens)).split()) for e in train]
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w", encoding="utf-8") as f:
                f.write("\n".join(lines) + "\n")
        return path

    def _run_int8(self, job: Job) -> None:
        from . import data as data_lib
        from . import metrics

        model_dir = self._model_dir(job)
        out = self.out(job.task, "export", f"{job.model}-int8")
        fingerprint = _sha([os.path.abspath(model_dir), os.stat(os.path.join(model_dir, "model.safetensors")).st_mtime_ns,
                            self.p.int8_method])
        previous = self.result(job.name)
        if previous and previous.get("fingerprint") == fingerprint and os.path.isfile(os.path.join(out, "model.int8.onnx")):
            logger.info("%s: quantized earlier; skipping", job.name)
            return
        command = self._export_subprocess(job, ["--model", model_dir, "--out", out, "--int8", "--calibration-file",
                                                self.calibration_file(job.task), "--int8-method", self.p.int8_method,
                                                "--threads", "1"])
        meta = _read_json(os.path.join(out, "export.json")) or {}
        from .predictor import Predictor

        cfg = self.teacher_cfg(job.task)
        splits = data_lib.load_splits(cfg.data, cfg.task)
        predictor = Predictor(out, backend="onnx", precision="int8", num_threads=1)
        started = time.time()
        if cfg.task == "classification":
            pred = predictor.classify([e.text for e in splits.test])
            test = metrics.classification_metrics([e.label for e in splits.test], [o["label"] for o in pred],
                                                  predictor.labels)
        else:
            tags = predictor.predict_tokens([e.tokens for e in splits.test])
            test = metrics.tagging_metrics([e.tags for e in splits.test], tags)
        source = self.result(job.extra["row"])["summary"]
        self._record(job, fingerprint=fingerprint, export_dir=out, int8=meta.get("int8"),
                     size_mb=os.path.getsize(os.path.join(out, "model.int8.onnx")) / 2**20,
                     summary={**source, "test": _headline(test), "source_test": source["test"]},
                     eval_seconds=round(time.time() - started, 1), commands=[command])

    def _run_latency(self, job: Job) -> None:
        from . import latency

        lat = self.p.latency
        wait = _wait_quiet(self.p.quiet_timeout)
        targets = []
        for dep in job.deps:
            res = self.result(dep)
            if not res or res.get("status") != "done":
                continue
            kind, key = dep.split("/")[1], dep.split("/")[-1]
            if kind == "export":
                seq = int(key.split("-len")[1]) if "-len" in key else lat["seq_len"]
                targets.append((key, res["export_dir"], "paddle", "fp32", seq))
            elif kind == "int8":
                targets.append((f"{key}-int8", res["export_dir"], "onnx", "int8", lat["seq_len"]))
        measured = {}
        for key, export_dir, backend, precision, seq in targets:
            logger.info("  latency %s (%s %s, seq %d, %d thread)", key, backend, precision, seq, lat["threads"])
            r = latency.measure(export_dir, backend=backend, precision=precision, num_threads=lat["threads"],
                                seq_len=seq, batch_size=lat["batch_size"], iterations=lat["iterations"],
                                warmup=lat["warmup"], batch_iterations=max(5, lat["iterations"] // 10))
            measured[key] = {k: r.get(k) for k in ("backend", "precision", "threads", "seq_len", "batch_size",
                                                    "p50_ms", "p95_ms", "throughput_seq_per_s", "gflop_per_seq",
                                                    "achieved_gflops", "iterations", "warmup")}
            env = r.get("environment")
        tfidf = {}
        if self.p.tasks[job.task].tfidf:
            tfidf = self._tfidf_latency(job.task)
        after = _busy()
        self._record(job, measured=measured, tfidf=tfidf, environment=env if targets else None,
                     quiet={"waited_s": wait["waited_s"], "quiet": wait["quiet"], "before": wait["busy"],
                            "after": after},
                     commands=[f"python tools/reproduce.py --task {job.task} --only {job.name}"])

    def _tfidf_latency(self, t: str) -> Dict:
        from . import baselines
        from . import data as data_lib

        out = {}
        for sub in ("subset", "all"):
            res = self.result(f"{t}/tfidf_lr/{sub}")
            if not res:
                continue
            cfg = self.teacher_cfg(t) if sub == "subset" else load_config(
                self.p.tasks[t].teacher_config, self.p.tasks[t].teacher_overrides + ["data.max_train_examples=null"])
            splits = data_lib.load_splits(cfg.data, cfg.task)
            texts = [e.text for e in splits.train] + ([e.text for e in splits.dev] if sub == "all" else [])
            labels = [e.label for e in splits.train] + ([e.label for e in splits.dev] if sub == "all" else [])
            model = baselines.make_model(res["summary"]["C"]).fit(texts, labels)
            out[sub] = baselines.time_model(model, [e.text for e in splits.test[:500]],
                                            batch_size=self.p.latency["batch_size"])
        return out


# ---------------------------------------------------------------- helpers


class _Lock:
    """An exclusive lock per job (two reproduce processes never run the same job at once)."""

    def __init__(self, path: str):
        self.path = path

    def __enter__(self):
        import fcntl

        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        self.f = open(self.path, "w")
        try:
            fcntl.flock(self.f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            logger.info("waiting for another process that holds %s", self.path)
            fcntl.flock(self.f, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        import fcntl

        fcntl.flock(self.f, fcntl.LOCK_UN)
        self.f.close()


def _read_yaml(path: str):
    try:
        with open(path, encoding="utf-8") as f:
            return yaml.safe_load(f)
    except (OSError, yaml.YAMLError):
        return None


def _same_config(old: Optional[Dict], new: Dict) -> bool:
    """Equal after filling the current schema's defaults: a config key added to the package later (with a
    default) does not make a finished run look different; a changed value or a removed key does."""
    if old is None:
        return False
    if old == new:
        return True
    try:
        return config_from_dict(old).to_dict() == new
    except (UserError, TypeError, ValueError):
        return False


def _finished(cfg: Dict) -> Optional[Dict]:
    """summary.json of a finished run of this config (what stages.run_stage(skip_if_done) checks)."""
    out = cfg["output_dir"]
    if not _same_config(_read_yaml(os.path.join(out, "config.yaml")), cfg):
        return None
    return _read_json(os.path.join(out, "summary.json"))


def _summary_digest(s: Dict) -> Dict:
    keep = ("stage", "metric_name", "train_examples", "transfer_examples", "params", "nonembedding_params",
            "layers", "hidden", "best_dir", "best_step", "seconds", "train_seconds", "output_dir")
    out = {k: s.get(k) for k in keep if k in s}
    for split in ("dev", "test", "teacher_dev"):
        if split in s:
            out[split] = _headline(s[split])
    return out


def _sweep_params(name: str) -> Dict[str, float]:
    out = {}
    for part in name.split("/")[-1].split("_")[1:]:
        for key, prefix in (("temperature", "T"), ("ce_weight", "ce"), ("learning_rate", "lr")):
            if part.startswith(prefix):
                out[key] = float(part[len(prefix):])
    return out


def _tail(path: str, n: int = 25) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return ""


def _processes() -> List[Tuple[int, List[str], str]]:
    """(pid, argv, cwd) of the other processes visible in /proc."""
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            continue
        out.append((int(pid), argv, cwd))
    return out


def _processes_running(config_path: str, output_dir: str) -> List[int]:
    """Other processes running tools/train.py on this config file or into this output_dir."""
    targets = {os.path.realpath(config_path), os.path.realpath(output_dir)}
    found = []
    for pid, argv, cwd in _processes():
        if not any(a.endswith("train.py") for a in argv):
            continue
        paths = [a.split("=", 1)[1] if a.startswith("output_dir=") else a for a in argv]
        if any(os.path.realpath(os.path.join(cwd, a)) in targets for a in paths):
            found.append(pid)
    return found


def _training_finished(output_dir: str, epochs: float) -> bool:
    """The last training step's checkpoint exists (so best/ is final), even if the final evaluation runs."""
    try:
        with open(os.path.join(output_dir, "train_log.jsonl"), encoding="utf-8") as f:
            records = [json.loads(line) for line in f if line.strip()]
    except (OSError, ValueError):
        return False
    ckpt_dir = os.path.join(output_dir, "checkpoints")
    steps = []
    if os.path.isdir(ckpt_dir):   # complete checkpoints only: they get their step-N name by the final rename
        steps = [int(n.split("-")[1]) for n in os.listdir(ckpt_dir) if n.startswith("step-") and
                 n.split("-")[1].isdigit() and os.path.isfile(os.path.join(ckpt_dir, n, "trainer_state.json"))]
    if not records or not steps or not records[-1].get("epoch"):
        return False
    per_epoch = records[-1]["step"] / records[-1]["epoch"]
    return max(steps) >= max(1, math.ceil(epochs * round(per_epoch)))


def _busy() -> Dict:
    procs = [" ".join(argv)[:160] for _, argv, _ in _processes()
             if any(a.endswith(("train.py", "pytest", "baselines")) or a == "pytest" for a in argv)]
    return {"loadavg_1min": round(os.getloadavg()[0], 2), "training_processes": procs}


def _wait_quiet(timeout: float, poll: float = 60.0, max_load: float = 0.8) -> Dict:
    """Latency is measured last, with no training job running (checked in /proc) and a low load average."""
    started = time.time()
    while True:
        busy = _busy()
        quiet = not busy["training_processes"] and busy["loadavg_1min"] < max_load
        if quiet or time.time() - started > timeout:
            if not quiet:
                logger.warning("no quiet window after %.0f s; measuring anyway (recorded as contended): %s",
                               time.time() - started, busy)
            return {"quiet": quiet, "busy": busy, "waited_s": round(time.time() - started)}
        logger.info("latency: waiting for a quiet machine (load %.2f, %d training processes)",
                    busy["loadavg_1min"], len(busy["training_processes"]))
        time.sleep(poll)


# ---------------------------------------------------------------- report


def _row_base(task: str, spec: TaskSpec, metric_name: str) -> Dict:
    return {"task": task, "dataset": spec.title, "metric_name": metric_name, "model": None, "variant": None,
            "layers": None, "hidden": None, "params": None, "nonembedding_params": None, "size_mb": None,
            "size_mb_int8": None, "metric": None, "metric_std": None, "seeds": None, "per_seed": None,
            "dev_metric": None, "pct_of_teacher": None, "latency_ms_p50": None, "latency_ms_p95": None,
            "throughput_per_s": None, "speedup_vs_teacher": None, "latency_seq_len": None,
            "latency_backend": None, "command": None, "train_commands": None}


def collect_rows(m: Matrix) -> Tuple[List[Dict], Dict]:
    """Table rows for every task from the result files (+ the teacher's summary.json)."""
    rows, extra = [], {}
    for t in m.tasks:
        spec = m.p.tasks[t]
        tcfg = m.teacher_cfg(t)
        tsum = _read_json(os.path.join(tcfg.output_dir, "summary.json"))
        metric = (tsum or {}).get("metric_name") or ("accuracy" if tcfg.task == "classification" else "f1")
        lat = m.result(f"{t}/latency") or {}
        measured = lat.get("measured", {})
        exports = {k: m.result(f"{t}/export/{k}") for k in ["teacher", *m.p.students]}
        teacher_metric = tsum["test"][metric] if tsum and tsum.get("test") else None
        teacher_p50 = (measured.get("teacher") or {}).get("p50_ms")
        task_rows = []

        def add_latency(row: Dict, key: str) -> None:
            r = measured.get(key)
            if r:
                row.update(latency_ms_p50=r["p50_ms"], latency_ms_p95=r["p95_ms"],
                           throughput_per_s=r["throughput_seq_per_s"], latency_seq_len=r["seq_len"],
                           latency_backend=f"{r['backend']} {r['precision']}, {r['threads']} thread(s)")
                if teacher_p50:
                    row["speedup_vs_teacher"] = teacher_p50 / r["p50_ms"]

        def add_size(row: Dict, key: str) -> None:
            e = exports.get(key)
            if e:
                row["size_mb"] = e["size_mb"]
            q = m.result(f"{t}/int8/{key}")
            if q:
                row["size_mb_int8"] = q["size_mb"]

        # teacher
        row = _row_base(t, spec, metric)
        row.update(model="teacher MiniLM-L6-H384" if "minilm" in str(tcfg.model.teacher) else "teacher",
                   variant="teacher", command=m.teacher_command(t), train_commands=[m.teacher_command(t)])
        if tsum:
            row.update(layers=tsum.get("layers"), hidden=tsum.get("hidden"), params=tsum.get("params"),
                       nonembedding_params=tsum.get("nonembedding_params"), metric=teacher_metric,
                       dev_metric=(tsum.get("dev") or {}).get(metric), pct_of_teacher=100.0 if teacher_metric else None)
        add_size(row, "teacher")
        add_latency(row, "teacher")
        task_rows.append(row)

        # students, aggregated over seeds
        for model in sorted(m.p.students, reverse=True):
            shape = m.p.students[model]
            for variant in VARIANTS:
                runs = [(s, m.result(f"{t}/{model}/{variant}/seed{s}")) for s in m.p.seeds[model]]
                runs = [(s, r) for s, r in runs if r and r.get("status") == "done"]
                if not runs:
                    continue
                row = _student_row(t, spec, metric, model, shape, variant, runs, teacher_metric)
                row["command"] = f"python tools/reproduce.py --task {t} --only {t}/{model}/{variant}"
                add_size(row, model)
                add_latency(row, model)
                task_rows.append(row)
        # long inputs
        if spec.long_seq:
            s = m.p.seeds["B"][0]
            r = m.result(f"{t}/B/len{spec.long_seq}/seed{s}")
            if r and r.get("status") == "done":
                row = _student_row(t, spec, metric, "B", m.p.students["B"], f"len{spec.long_seq}", [(s, r)],
                                   teacher_metric)
                row["model"] += f", {spec.long_seq} tokens"
                row["command"] = f"python tools/reproduce.py --task {t} --only {r['name']}"
                add_size(row, "B")
                add_latency(row, f"B-len{spec.long_seq}")
                task_rows.append(row)
        # INT8
        for model in sorted(m.p.students, reverse=True):
            q = m.result(f"{t}/int8/{model}")
            if q:
                shape = m.p.students[model]
                row = _student_row(t, spec, metric, model, shape, "int8", [(m.p.seeds[model][0], q)], teacher_metric)
                row["model"] += f" ({m.p.int8_variant} seed {m.p.seeds[model][0]}, ONNX Runtime INT8)"
                row["source_metric"] = q["summary"]["source_test"][metric]
                row["size_mb"] = q["size_mb"]
                row["size_mb_int8"] = q["size_mb"]
                row["command"] = f"python tools/reproduce.py --task {t} --only {q['name']}"
                row["train_commands"] = q.get("commands")
                add_latency(row, f"{model}-int8")
                task_rows.append(row)
        # TF-IDF
        for sub in ("subset", "all"):
            r = m.result(f"{t}/tfidf_lr/{sub}")
            if not r:
                continue
            row = _row_base(t, spec, metric)
            acc = r["summary"]["test"]["accuracy"]
            row.update(model=f"TF-IDF + LR ({r['summary']['train_examples']} reviews)", variant="tfidf_lr",
                       metric=acc, dev_metric=r["summary"]["dev"]["accuracy"], command=r["commands"][0],
                       train_commands=r["commands"], hyperparameters={"C": r["summary"]["C"]},
                       pct_of_teacher=100 * acc / teacher_metric if teacher_metric else None)
            tl = (lat.get("tfidf") or {}).get(sub)
            if tl:
                row.update(latency_ms_p50=tl["p50_ms"], latency_ms_p95=tl["p95_ms"],
                           throughput_per_s=tl["throughput_seq_per_s"], latency_backend=tl["note"],
                           speedup_vs_teacher=teacher_p50 / tl["p50_ms"] if teacher_p50 else None)
            task_rows.append(row)
        rows += task_rows
        extra[t] = {"sweep": m.result(f"{t}/B/sweep/select"), "latency": lat, "teacher_summary": tsum}
    return rows, extra


def _student_row(t, spec, metric, model, shape, variant, runs, teacher_metric) -> Dict:
    row = _row_base(t, spec, metric)
    scores = [r["summary"]["test"][metric] for _, r in runs if r["summary"].get("test")]
    devs = [r["summary"]["dev"][metric] for _, r in runs]
    first = runs[0][1]["summary"]
    mean = statistics.mean(scores) if scores else None
    row.update(model=f"student {model} {shape.label}", variant=variant, layers=first.get("layers", shape.layers),
               hidden=first.get("hidden", shape.hidden), params=first.get("params"),
               nonembedding_params=first.get("nonembedding_params"), metric=mean,
               metric_std=statistics.stdev(scores) if len(scores) > 1 else None,
               seeds=[s for s, _ in runs], per_seed={str(s): r["summary"]["test"][metric] for s, r in runs
                                                     if r["summary"].get("test")},
               dev_metric=statistics.mean(devs), train_examples=first.get("train_examples"),
               transfer_examples=first.get("transfer_examples"),
               pct_of_teacher=100 * mean / teacher_metric if (mean is not None and teacher_metric) else None,
               teacher_dev_metric=(first.get("teacher_dev") or {}).get(metric),
               train_commands=[" && ".join(r.get("commands") or []) for _, r in runs],
               train_seconds=sum(r.get("seconds") or 0 for _, r in runs))
    return row


def _f(x, fmt="{:.2f}", none="–"):
    return none if x is None else fmt.format(x)


def _metric_cell(row: Dict) -> str:
    if row["metric"] is None:
        return "–"
    scale = 100.0
    cell = f"{scale * row['metric']:.2f}"
    if row.get("metric_std") is not None:
        cell += f" ± {scale * row['metric_std']:.2f}"
    return cell


def markdown_table(rows: List[Dict]) -> str:
    head = ["model", "variant", "L×H", "params (non-emb.)", "FP32 MB", "INT8 MB", "test metric (%)", "% of teacher",
            "p50 ms", "p95 ms", "seq/s @32", "speed-up"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        lh = f"{r['layers']}×{r['hidden']}" if r["layers"] else "–"
        params = f"{r['params'] / 1e6:.2f}M ({r['nonembedding_params'] / 1e6:.2f}M)" if r["params"] else "–"
        seeds = f" (seeds {','.join(map(str, r['seeds']))})" if r.get("seeds") and len(r["seeds"]) > 1 else ""
        lat = _f(r["latency_ms_p50"])
        if r.get("latency_seq_len") and r["latency_seq_len"] != 128:
            lat += f" @{r['latency_seq_len']}"
        lines.append("| " + " | ".join([
            r["model"], r["variant"], lh, params, _f(r["size_mb"], "{:.1f}"), _f(r["size_mb_int8"], "{:.1f}"),
            _metric_cell(r) + seeds, _f(r["pct_of_teacher"], "{:.1f}"), lat, _f(r["latency_ms_p95"]),
            _f(r["throughput_per_s"], "{:.0f}"), _f(r["speedup_vs_teacher"], "{:.1f}×")]) + " |")
    return "\n".join(lines)


def _get(rows, task, model_key, variant):
    for r in rows:
        if r["task"] == task and r["variant"] == variant and (model_key is None or f"student {model_key} " in
                                                              r["model"] + " ") and "tokens" not in r["model"]:
            return r
    return None


GOALS = {  # task -> (min % of teacher for A, for B, min KD gain in points for B)
    "imdb": (99.0, 97.0, 1.5),
    "conll": (97.0, 93.0, 2.0),
}


def _paired(a: Dict, b: Dict) -> Tuple[List[str], float, float]:
    """Seeds both rows ran, and each row's mean test metric over exactly those seeds (rows with different seed
    sets, e.g. 3 seeds vs 1, are compared like for like)."""
    pa, pb = a.get("per_seed") or {}, b.get("per_seed") or {}
    common = sorted(set(pa) & set(pb), key=int)
    if not common:
        return [], a["metric"], b["metric"]
    return common, statistics.mean(pa[k] for k in common), statistics.mean(pb[k] for k in common)


def _seeds_note(common: List[str], a: Dict, b: Dict) -> str:
    if len(common) == len(a.get("per_seed") or {}) == len(b.get("per_seed") or {}):
        return f"mean of {len(common)} seed{'s' if len(common) != 1 else ''}"
    return f"on the seed{'s' if len(common) != 1 else ''} both ran: {', '.join(common)}"


def goals(rows: List[Dict], tasks: Sequence[str]) -> List[str]:
    out = []
    for t in tasks:
        if t not in GOALS:
            continue
        a_goal, b_goal, gain_goal = GOALS[t]
        name = "accuracy" if t == "imdb" else "F1"
        for model, goal in (("A", a_goal), ("B", b_goal)):
            cands = [r for r in (_get(rows, t, model, v) for v in ("task_kd", "two_stage_kd")) if r and r["metric"]]
            if not cands:
                out.append(f"- {t}: student {model} ≥ {goal:g}% of the teacher's {name}: not measured yet.")
                continue
            best = max(cands, key=lambda r: r["metric"])
            met = best["pct_of_teacher"] >= goal
            parts = ", ".join(f"{r['variant']} {r['pct_of_teacher']:.1f}%" for r in cands)
            out.append(f"- {t}: student {model} ≥ {goal:g}% of the teacher's {name} — **{'met' if met else 'not met'}**"
                       f" ({parts}).")
        for model in ("B", "A"):
            nokd = _get(rows, t, model, "no_kd")
            for v in ("task_kd", "two_stage_kd"):
                kd = _get(rows, t, model, v)
                if not (nokd and kd and nokd["metric"] is not None and kd["metric"] is not None):
                    continue
                common, kd_mean, nokd_mean = _paired(kd, nokd)
                gain = 100 * (kd_mean - nokd_mean)
                if model == "B":
                    out.append(f"- {t}: B with KD ({v}) beats B without KD by ≥ {gain_goal:g} points "
                               f"({_seeds_note(common, kd, nokd)}) — **{'met' if gain >= gain_goal else 'not met'}**: "
                               f"{gain:+.2f} points ({100 * kd_mean:.2f} vs {100 * nokd_mean:.2f}).")
                else:
                    out.append(f"- {t}: A, {v} vs no_kd (one seed, for reference): {gain:+.2f} points.")
        teacher = _get(rows, t, None, "teacher")
        for model, goal in (("A", 4.0), ("B", 10.0)):
            r = _get(rows, t, model, "no_kd") or _get(rows, t, model, "task_kd") or _get(rows, t, model, "two_stage_kd")
            if r and r.get("speedup_vs_teacher") and teacher and teacher.get("latency_ms_p50"):
                met = r["speedup_vs_teacher"] >= goal
                out.append(f"- {t}: latency, student {model} ≥ {goal:g}× faster than the exported teacher (batch 1, "
                           f"seq 128, Paddle Inference FP32) — **{'met' if met else 'not met'}**: "
                           f"{r['latency_ms_p50']:.2f} ms vs {teacher['latency_ms_p50']:.2f} ms p50 = "
                           f"{r['speedup_vs_teacher']:.1f}×.")
            else:
                out.append(f"- {t}: latency goal for student {model} (≥ {goal:g}×): not measured yet.")
    return out


def summary_lines(rows: List[Dict], tasks: Sequence[str]) -> List[str]:
    """One line per task: the teacher, and each student's best variant (by test mean) with its speed-up."""
    out = []
    for t in tasks:
        teacher = _get(rows, t, None, "teacher")
        if not teacher or teacher["metric"] is None:
            out.append(f"- {t}: teacher not finished yet.")
            continue
        name = METRIC_LABEL.get(teacher["metric_name"], teacher["metric_name"])
        bits = [f"teacher {100 * teacher['metric']:.2f} {name}"]
        for model in ("A", "B"):
            cands = [r for r in (_get(rows, t, model, v) for v in VARIANTS) if r and r["metric"] is not None]
            if not cands:
                continue
            best = max(cands, key=lambda r: r["metric"])
            nokd = _get(rows, t, model, "no_kd")
            speed = f", {best['speedup_vs_teacher']:.1f}× faster" if best.get("speedup_vs_teacher") else ""
            gain = (f", {100 * (best['metric'] - nokd['metric']):+.2f} vs no_kd"
                    if nokd and nokd is not best and nokd["metric"] is not None else "")
            bits.append(f"student {model} best = {best['variant']} {_metric_cell(best)} "
                        f"({best['pct_of_teacher']:.1f}% of teacher{gain}{speed})")
        for r in rows:
            if r["task"] == t and r["variant"] == "tfidf_lr" and r["metric"] is not None:
                bits.append(f"{r['model']} {100 * r['metric']:.2f}")
        out.append(f"- **{t}**: " + "; ".join(bits) + ".")
    return out


def stage1_effect(rows: List[Dict], tasks: Sequence[str]) -> List[str]:
    out = []
    for t in tasks:
        for model in ("B", "A"):
            kd, two = _get(rows, t, model, "task_kd"), _get(rows, t, model, "two_stage_kd")
            if not (kd and two and kd["metric"] is not None and two["metric"] is not None):
                continue
            common, two_mean, kd_mean = _paired(two, kd)
            diff = 100 * (two_mean - kd_mean)
            paired = ""
            if len(common) > 1:
                d = [100 * (two["per_seed"][s] - kd["per_seed"][s]) for s in common]
                wins = sum(x > 0 for x in d)
                paired = f"; per seed {', '.join(f'{x:+.2f}' for x in d)} (stage 1 better in {wins} of {len(d)})"
            verdict = "helps" if diff > 0 else ("makes no difference" if diff == 0 else "does not help")
            noise = kd.get("metric_std")
            if noise is not None and abs(diff) < 100 * noise:
                verdict += " (within one seed standard deviation of task_kd)"
            out.append(f"- {t}, student {model}: two_stage_kd {100 * two_mean:.2f} vs task_kd {100 * kd_mean:.2f} "
                       f"({_seeds_note(common, two, kd)}) = {diff:+.2f} points: stage 1 {verdict}{paired}.")
    return out or ["- not measured yet."]


def long_input_effect(rows: List[Dict], m: "Matrix") -> List[str]:
    """Student B reading `long_seq` tokens vs the same recipe (two-stage) at the profile's length, same seeds,
    and what its latency costs against the teacher at 128."""
    out = []
    for t in m.tasks:
        spec = m.p.tasks[t]
        if not spec.long_seq:
            continue
        long_row = next((r for r in rows if r["task"] == t and r["variant"] == f"len{spec.long_seq}"), None)
        short = _get(rows, t, "B", "two_stage_kd")
        if not (long_row and short and long_row["metric"] is not None and short["metric"] is not None):
            out.append(f"- {t}: not measured yet.")
            continue
        common, long_mean, short_mean = _paired(long_row, short)
        short_len = m.teacher_cfg(t).model.max_seq_length  # the students' length and the teacher's
        line = (f"- {t}, student B, two-stage recipe: {spec.long_seq} tokens {100 * long_mean:.2f} vs "
                f"{short_len} tokens {100 * short_mean:.2f} "
                f"({_seeds_note(common, long_row, short)}) = {100 * (long_mean - short_mean):+.2f} points")
        if long_row.get("latency_ms_p50"):
            line += (f"; p50 latency at {spec.long_seq} tokens {long_row['latency_ms_p50']:.2f} ms "
                     f"({long_row['speedup_vs_teacher']:.1f}× faster than the teacher at {m.p.latency['seq_len']})")
        out.append(line + f". The teacher gives its soft labels at {short_len} tokens "
                   "(`distill.teacher_max_seq_length`); the student starts from the same stage-1 run as two_stage_kd.")
    return out


def environment() -> Dict:
    from importlib import metadata

    info = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                k, _, v = line.partition(":")
                info.setdefault(k.strip(), v.strip())
    except OSError:
        pass
    flags = set(info.get("flags", "").split())
    env = {"cpu_model": info.get("model name", platform.processor()), "logical_cpus": os.cpu_count(),
           "isa": [f for f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_int8") if f in flags],
           "python": platform.python_version()}
    for pkg in ("paddlepaddle", "paddlenlp", "onnxruntime", "scikit-learn"):
        try:
            env[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return env


def _configs_table(m: Matrix, t: str) -> List[str]:
    spec = m.p.tasks[t]
    lines = []
    tsum = _read_json(os.path.join(m.teacher_cfg(t).output_dir, "summary.json")) or {}
    tcfg = m.teacher_cfg(t)
    d = tcfg.data
    lines.append(f"- Teacher: `{tcfg.model.teacher}` fine-tuned by `{m.teacher_command(t)}` "
                 f"({tcfg.train.epochs:g} epoch(s), lr {tcfg.train.learning_rate:g}, batch {tcfg.train.batch_size}, "
                 f"max_seq_length {tcfg.model.max_seq_length}, truncation {tcfg.model.truncation}).")
    data_bits = [f"format {d.format}, path `{d.path}`"]
    if d.max_train_examples:
        data_bits.append(f"training subset {d.max_train_examples} (seeded, split_seed {d.split_seed})")
    if tsum.get("train_examples"):
        data_bits.append(f"{tsum['train_examples']} labeled training examples")
    if tsum.get("dev"):
        n = tsum["dev"].get("num_examples") or tsum["dev"].get("num_sentences")
        data_bits.append(f"dev {n}")
    if tsum.get("test"):
        n = tsum["test"].get("num_examples") or tsum["test"].get("num_sentences")
        data_bits.append(f"test {n} (full test split)")
    lines.append("- Data: " + "; ".join(data_bits) + ".")
    unl = spec.unlabeled if spec.unlabeled != "train_text" else f"{m.out(t, 'unlabeled.txt')} (training sentences, labels dropped)"
    lines.append(f"- Unlabeled text: `{unl}`" + (f", first {spec.max_unlabeled}" if spec.max_unlabeled else "")
                 + f"; stage 1 on it for {spec.general_epochs:g} epoch(s)"
                 + ("; also the transfer set of task KD (teacher soft labels, KD term only)." if spec.transfer
                    else "; no transfer set in task KD (it would repeat the labeled set)."))
    lines.append(f"- Budget: no_kd {spec.no_kd_epochs:g} epochs over the labeled set; task_kd and stage 2 of "
                 f"two_stage_kd {spec.kd_epochs:g} epoch(s) over labeled" + (" + transfer set" if spec.transfer else "")
                 + (f" (dev evaluated every {spec.kd_eval_every} steps, like no_kd's once per labeled epoch)"
                    if spec.kd_eval_every else "") + ".")
    return lines


def render_markdown(m: Matrix, rows: List[Dict], extra: Dict, command: str) -> str:
    p = m.p
    env = environment()
    lat_env = next((e["latency"].get("environment") for e in extra.values() if e.get("latency")), None)
    L = [f"# Benchmarks: teacher vs distilled students on IMDB and CoNLL-2003 (profile `{p.name}`)", "",
         f"Generated by `{command}` from the run directories under `{p.runs_dir}/` "
         f"({time.strftime('%Y-%m-%d %H:%M')}). Every number below comes from those runs; "
         "raw rows: `benchmarks/" + p.results_name + "`, figure: `docs/pareto.png`.", ""]
    L += ["## Summary", ""] + summary_lines(rows, m.tasks) + ["", "## Setup", ""]
    L.append("- Students: " + "; ".join(f"**{k}** = {s.layers} layers, hidden {s.hidden}, {s.heads} heads, "
                                        f"FFN {s.intermediate}" for k, s in sorted(p.students.items())) +
             ". `no_kd` and `task_kd` start from `init: config` (random encoder, embeddings = the teacher's "
             "PCA-projected); `two_stage_kd` starts from its own stage-1 run (`init: pretrained`).")
    L.append(f"- Seeds: " + ", ".join(f"{k}: {v}" for k, v in sorted(p.seeds.items())) +
             " (train.seed: initialisation, batch order, dropout). Mean ± sample std over seeds.")
    L.append(f"- Stage 1: hidden-state MSE (learned projection) × {p.general['hidden_weight']:g} + attention KL × "
             f"{p.general['attention_weight']:g}, uniform layer map, from the *pretrained* MiniLM (no MLM head), "
             f"lr {p.general['learning_rate']:g} for B ({p.lr_factor.get('A', 1):g}× for A); not tuned.")
    L.append(f"- Training: batch {p.train['batch_size']}, AdamW, linear warm-up {p.train['warmup_ratio']:g} + decay, "
             f"weight decay {p.train['weight_decay']:g}, best checkpoint by dev metric, "
             f"{p.train['num_threads']} thread per job.")
    for t in m.tasks:
        L += ["", f"### {p.tasks[t].title} (`{t}`)", ""] + _configs_table(m, t)
    L += ["", "## Hyper-parameters chosen on dev", ""]
    for t in m.tasks:
        sw = extra[t]["sweep"]
        if not sw:
            L.append(f"- {t}: sweep not finished.")
            continue
        ch = sw["chosen"]
        L.append(f"- **{t}**: task KD T = {ch['temperature']:g}, λ (ce_weight) = {ch['ce_weight']:g}, "
                 f"lr = {ch['learning_rate']:g} for B and {ch['learning_rate'] * p.lr_factor.get('A', 1):g} for A "
                 f"({p.lr_factor.get('A', 1):g}× B's, not swept); no-KD lr = {ch['nokd_learning_rate']:g} for B, "
                 f"{ch['nokd_learning_rate'] * p.lr_factor.get('A', 1):g} for A. Two-stage rows use the task-KD values.")
        if not sw["grid"]:
            L.append("  (fixed in the profile: no dev sweep)")
            continue
        L += ["", "| sweep point (student B, seed %d) | dev %s |" % (p.seeds["B"][0], sw["grid"][0]["metric_name"]),
              "|---|---|"]
        for g in sw["grid"]:
            mark = " **(chosen)**" if (g["variant"] == "sweep_kd" and g.get("temperature") == ch["temperature"]
                                       and g.get("ce_weight") == ch["ce_weight"]
                                       and g.get("learning_rate") == ch["learning_rate"]) or \
                                      (g["variant"] == "sweep_nokd" and g["learning_rate"] == ch["nokd_learning_rate"]) \
                else ""
            L.append(f"| `{g['name'].split('/')[-1]}` | {100 * g['dev']:.2f}{mark} |")
        L.append("")
        L.append("Sweep runs read no test data (`data.max_test_examples: 0`).")
    L += ["", "## Environment", ""]
    L.append(f"- CPU: {env.get('cpu_model')} ({env.get('logical_cpus')} logical CPUs; ISA {', '.join(env['isa'])}); "
             f"Python {env['python']}, paddlepaddle {env.get('paddlepaddle')}, paddlenlp {env.get('paddlenlp')}, "
             f"onnxruntime {env.get('onnxruntime')}, scikit-learn {env.get('scikit-learn')}.")
    L.append("- Training ran on a machine shared with other jobs (two training jobs at a time, one thread each), "
             "so training times are not benchmarks; latency was measured separately, last (below).")
    lat_cfg = p.latency
    L.append(f"- Latency: exported models (`export.export_model`, static graph) timed with `latency.measure`: "
             f"Paddle Inference FP32 with oneDNN, **{lat_cfg['threads']} thread**, batch 1 at seq "
             f"{lat_cfg['seq_len']} (synthetic token ids, tokenization excluded; {lat_cfg['iterations']} timed runs "
             f"after {lat_cfg['warmup']} warm-up) for p50/p95, and sequences/s at batch {lat_cfg['batch_size']}. "
             "Teacher and students of a task are measured in the same run; speed-up = teacher p50 / row p50. "
             "Every variant of a student shares its architecture, so they share its latency. INT8 rows run the "
             "quantized ONNX model in ONNX Runtime (Paddle Inference 3.3 has no CPU INT8 path for PIR models, "
             "see export.py). TF-IDF latency is scikit-learn on one raw review (featurization included).")
    for t in m.tasks:
        q = (extra[t]["latency"] or {}).get("quiet")
        if q:
            L.append(f"- {t} latency run: quiet window {'yes' if q['quiet'] else 'NO (contended)'} "
                     f"(waited {q['waited_s']} s; load {q['before']['loadavg_1min']} before, "
                     f"{q['after']['loadavg_1min']} after; training processes seen: "
                     f"{len(q['before']['training_processes'])}).")
    if lat_env:
        L.append(f"- Latency environment: {lat_env.get('cpu_model')}, OMP_NUM_THREADS={lat_env.get('OMP_NUM_THREADS')}, "
                 f"paddle {lat_env.get('paddle_version')}.")
    L += ["", "## Results", ""]
    for t in m.tasks:
        trows = [r for r in rows if r["task"] == t]
        metric = METRIC_LABEL.get(trows[0]["metric_name"], trows[0]["metric_name"]) if trows else "metric"
        L += [f"### {p.tasks[t].title} — test {metric} on the full test split", "", markdown_table(trows), ""]
        L.append("Per-seed test scores and dev scores: `benchmarks/" + p.results_name + "` (`per_seed`, `dev_metric`).")
        L.append("")
    pending = [j.name for j in m.jobs() if not m.is_done(j.name)]
    L += ["## Rows not run (yet)", ""]
    L += ([f"The matrix has {len(pending)} unfinished job(s); each resumes with its command (finished stages "
           "are skipped):", ""] + [f"- `python tools/reproduce.py --task {n.split('/')[0]} --only {n}`" for n in pending]
          if pending else ["None: every job of the matrix has finished."])
    L.append("")
    L += ["## Goals of issue 4", ""] + goals(rows, m.tasks)
    L += ["", "## Does stage 1 (general distillation) help over task KD alone?", ""] + stage1_effect(rows, m.tasks)
    L += ["", "What the stage-1 students of the CPU profile learned, measured with `tools/probe_spread.py`, and a "
          "loss variant tried: [stage1_imdb.md](stage1_imdb.md)."]
    long_lines = long_input_effect(rows, m)
    if long_lines:
        L += ["", "## Does student B gain from reading longer inputs?", ""] + long_lines
    L += ["", "## Commands", "",
          f"Whole matrix (resumable; finished stages are skipped): `python tools/reproduce.py --task all "
          f"--profile {p.name}`; report only: `python tools/reproduce.py --task all --profile {p.name} --report-only`.",
          "Each row below was produced by the listed `tools/train.py` commands (generated configs in "
          f"`{p.config_dir}/`), or equivalently by its `tools/reproduce.py --only` command.", ""]
    for r in rows:
        L.append(f"- {r['task']} / {r['model']} / {r['variant']}: `{r['command']}`")
        for c in (r.get("train_commands") or [])[:3]:
            if c and c != r["command"]:
                L.append(f"  - `{c}`")
    return "\n".join(L) + "\n"


def plot_pareto(rows: List[Dict], tasks: Sequence[str], path: str, p: Profile) -> bool:
    """Metric vs p50 latency, one panel per task, one point per row (colour = variant, label = model)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import NullFormatter, ScalarFormatter
    except ImportError:
        return False
    fig, axes = plt.subplots(1, len(tasks), figsize=(7 * len(tasks), 5.5), squeeze=False)
    colors = {"teacher": "black", "no_kd": "tab:gray", "task_kd": "tab:blue", "two_stage_kd": "tab:green",
              "int8": "tab:purple", "tfidf_lr": "tab:orange"}
    for ax, t in zip(axes[0], tasks):
        pts = [r for r in rows if r["task"] == t and r["metric"] is not None and r["latency_ms_p50"]]
        missing = [r for r in rows if r["task"] == t and r["metric"] is not None and not r["latency_ms_p50"]]
        labelled, in_legend = {}, set()
        for r in pts:
            c = colors.get(r["variant"], "tab:red")
            y = 100 * r["metric"]
            err = 100 * r["metric_std"] if r.get("metric_std") else None
            ax.errorbar(r["latency_ms_p50"], y, yerr=err, fmt="o", color=c, capsize=3, markersize=6,
                        label=r["variant"] if r["variant"] not in in_legend else None)
            in_legend.add(r["variant"])
            short = r["model"] if r["variant"] == "tfidf_lr" else r["model"].replace("student ", "").split(" (")[0]
            short = short.replace("teacher MiniLM-L6-H384", "teacher")
            short = short.split(",")[0]
            if r["variant"] == "int8":
                short += " INT8"
            if r.get("latency_seq_len") and r["latency_seq_len"] != 128:
                short += f" @{r['latency_seq_len']} tok"
            key = (short, round(r["latency_ms_p50"], 3))
            if key not in labelled:   # one label per point group (variants of a model share the latency)
                top = max(100 * q["metric"] for q in pts if round(q["latency_ms_p50"], 3) == key[1])
                labelled[key] = (r["latency_ms_p50"], top)
        for short, (x, y) in ((k[0], xy) for k, xy in labelled.items()):
            # a label runs to the right of its point; if another labelled point sits just to the right at about
            # the same height, the text would cross it, so put this label on the left instead
            crowded = any(x < x2 < 1.6 * x and abs(y2 - y) < 3 for x2, y2 in labelled.values())
            ax.annotate(short, (x, y), textcoords="offset points", xytext=(-5, 6) if crowded else (5, 6),
                        ha="right" if crowded else "left", fontsize=8)
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("p50 latency at batch 1 (ms, log scale; seq 128 unless marked)")
        metric = METRIC_LABEL.get(pts[0]["metric_name"] if pts else "", "metric")
        ax.set_ylabel(f"test {metric} (%)")
        title = p.tasks[t].title
        if missing:
            title += f"  ({len(missing)} rows without latency not shown)"
        ax.set_title(title, fontsize=10)
        ax.grid(True, alpha=0.3, which="both")
        handles, labels = ax.get_legend_handles_labels()
        if handles:
            ax.legend(handles, labels, fontsize=8, loc="best")
    fig.suptitle("Test metric vs CPU latency (1 thread; upper left is better; error bars = std over seeds)",
                 fontsize=11)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


README_BEGIN = "<!-- benchmarks:begin (generated by tools/reproduce.py --report-only; do not edit) -->"
README_END = "<!-- benchmarks:end -->"


def readme_table(rows: List[Dict], tasks: Sequence[str], command: str) -> str:
    """The README's summary: per task the teacher, the reference rows and each student variant's test metric,
    % of teacher, p50 latency and speed-up; the full table lives in docs/benchmarks.md."""
    head = ["task", "model", "variant", "test metric (%)", "% of teacher", "p50 ms", "speed-up"]
    lines = [f"Generated by `{command}` from the runs under the profile's runs directory.", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        if r["task"] not in tasks or r["metric"] is None:
            continue
        seeds = f" ({len(r['seeds'])} seeds)" if r.get("seeds") and len(r["seeds"]) > 1 else ""
        lat = _f(r["latency_ms_p50"])
        if r.get("latency_seq_len") and r["latency_seq_len"] != 128:
            lat += f" @{r['latency_seq_len']}"
        lines.append("| " + " | ".join([
            r["task"], r["model"], r["variant"], _metric_cell(r) + seeds, _f(r["pct_of_teacher"], "{:.1f}"), lat,
            _f(r["speedup_vs_teacher"], "{:.1f}×")]) + " |")
    return "\n".join(lines)


def update_readme(path: str, table: str) -> bool:
    """Replace the text between README_BEGIN and README_END in `path`; False when the markers are absent."""
    if not os.path.isfile(path):
        return False
    with open(path, encoding="utf-8") as f:
        text = f.read()
    start, end = text.find(README_BEGIN), text.find(README_END)
    if start < 0 or end < start:
        return False
    new = text[:start + len(README_BEGIN)] + "\n" + table + "\n" + text[end:]
    if new != text:
        _write_text(path, new)
    return True


def report(m: Matrix, command: str) -> Dict[str, str]:
    rows, extra = collect_rows(m)
    out = m.p.out_dir
    results = os.path.join(out, "benchmarks", m.p.results_name)
    md = os.path.join(out, "docs", "benchmarks.md" if m.p.name == "cpu" else f"benchmarks_{m.p.name}.md")
    png = os.path.join(out, "docs", "pareto.png" if m.p.name == "cpu" else f"pareto_{m.p.name}.png")
    _write_json(results, rows)
    _write_text(md, render_markdown(m, rows, extra, command))
    written = {"results": results, "markdown": md}
    # the README summary only shows the whole matrix (a single-task run must not drop the other task's rows)
    if set(m.tasks) == set(m.p.tasks):
        readme = os.path.join(out, "README.md")
        if update_readme(readme, readme_table(rows, m.tasks, command)):
            written["readme"] = readme
    if plot_pareto(rows, m.tasks, png, m.p):
        written["figure"] = png
    return written


# ---------------------------------------------------------------- command line


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tools/reproduce.py",
        description="Run (or resume) the benchmark matrix of issue 4 and write docs/benchmarks.md, "
                    "docs/pareto.png and benchmarks/results.json. Run it from the repository root.")
    parser.add_argument("--task", default="all", help="imdb, conll or all (default)")
    parser.add_argument("--profile", default="cpu", help="cpu (runs here) or full (larger, for GPUs)")
    parser.add_argument("--only", action="append", help="jobs to run: names, prefixes, components or globs "
                                                         "(comma-separated, repeatable), e.g. imdb/B/task_kd/seed2")
    parser.add_argument("--skip", action="append", help="jobs not to run, same syntax, e.g. export,latency")
    parser.add_argument("--runs-dir", help="where runs and results go (default: the profile's, runs/bench)")
    parser.add_argument("--config-dir", help="where generated configs go (default: the profile's, configs/bench)")
    parser.add_argument("--out-dir", help="report root: <out>/benchmarks/, <out>/docs/ (default: .)")
    parser.add_argument("--report-only", action="store_true", help="write the report from finished runs only")
    parser.add_argument("--no-report", action="store_true", help="do not write the report at the end")
    parser.add_argument("--plan", action="store_true", help="list the selected jobs and their commands; run nothing")
    parser.add_argument("--quiet-timeout", type=float, help="seconds latency waits for a quiet machine")
    return parser


def main(argv: Optional[Sequence[str]] = None, profiles: Optional[Dict[str, Callable[[], Profile]]] = None) -> Dict:
    args = build_parser().parse_args(argv)
    profiles = profiles or PROFILES
    if args.profile not in profiles:
        raise UserError(f"--profile must be one of {', '.join(profiles)}, got {args.profile!r}")
    p = profiles[args.profile]()
    if args.runs_dir:
        p.runs_dir = args.runs_dir
    if args.config_dir:
        p.config_dir = args.config_dir
    if args.out_dir:
        p.out_dir = args.out_dir
    if args.quiet_timeout is not None:
        p.quiet_timeout = args.quiet_timeout
    tasks = list(p.tasks) if args.task == "all" else _split_list([args.task])
    m = Matrix(p, tasks)
    only, skip = _split_list(args.only), _split_list(args.skip)
    command = "python tools/reproduce.py " + " ".join(argv if argv is not None else sys.argv[1:])
    if args.plan:
        for job in m.select(only, skip):
            try:
                cmds = [s.command for s in m.stages(job)] if job.kind == "train" else []
            except NotReady as e:
                cmds = [f"(after the sweep: {e})"]
            print(job.name + ("" if not cmds else "\n    " + "\n    ".join(cmds)))
        return {"done": [], "ran": [], "failed": {}}
    outcome = {"done": [], "ran": [], "failed": {}}
    if not args.report_only:
        outcome = m.run(only, skip)
    if not args.no_report:
        report_cmd = f"python tools/reproduce.py --task {args.task} --profile {p.name} --report-only"
        outcome["report"] = report(m, report_cmd)
        logger.info("report: %s", outcome["report"])
    if outcome["failed"]:
        logger.warning("not finished: %s", json.dumps(outcome["failed"], indent=1))
    return outcome
