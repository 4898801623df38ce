"""The job graph of a profile and the complete tools/train.py config each training job runs.

Job names: `imdb/teacher`, `imdb/B/sweep/kd_T2_ce0.5_lr0.001`, `imdb/B/sweep/select`, `imdb/B/task_kd/seed2`,
`imdb/B/two_stage_kd/seed1` (stage 1 + stage 2), `imdb/tfidf_lr/subset`, `imdb/B/len512/seed1`,
`conll/decoding` (tagging tasks: finished runs re-scored under each tag decoding), `imdb/export/B`, `imdb/int8/B`,
`imdb/latency`; whole documents (tasks.<t>.whole_document): `imdb/teacher/windows`,
`imdb/ensemble` (teachers scored alone), `imdb/W/ensemble_kd/seed1`, `imdb/export/W`, `imdb/int8/W`. Selectors (`--only` / `--skip`) take names, runs of whole name
components (`imdb/B`, `B/task_kd`, `export`, `seed2`) or globs (`*/A/*`); dependencies come along unless skipped.
"""
from __future__ import annotations

import copy
import logging
import os
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import yaml

from benchmarks.job_types import TRAIN_SCRIPT, Job, Stage  # noqa: F401 (Job, Stage: this module's API)
from benchmarks.jobs_documents import DocumentJobs
from benchmarks.profile import Profile
from benchmarks.util import fmt, matches, read_json, write_text
from ernie_tiny_distill.config import Config, config_from_dict, load_config
from ernie_tiny_distill.errors import UserError

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]


class NotReady(Exception):
    """A job's inputs (sweep choice, teacher) are not available yet."""


class Matrix(DocumentJobs):
    """A profile's jobs for some of its tasks, the configs they run, and what this invocation did."""

    def __init__(self, profile: Profile, tasks: Sequence[str]):
        unknown = [t for t in tasks if t not in profile.tasks]
        if unknown:
            raise UserError(f"--task: unknown task(s) {unknown}; profile {profile.name!r} has {list(profile.tasks)}")
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
        return read_json(self.result_path(name))

    def is_done(self, name: str) -> bool:
        res = self.result(name)
        return bool(res) and res.get("status") in ("done", "ready")

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

    def log_file(self, name: str) -> str:
        return self.out("logs", name.replace("/", "_") + ".log")

    @property
    def sweeper(self) -> str:
        return self.p.sweep_student

    def students_b_first(self) -> List[str]:
        return sorted(self.p.students, reverse=True)

    # ------------------------------------------------------------ the plan

    def jobs(self) -> List[Job]:
        """Every job, in run order: cheap informative rows first (the sweep student on CoNLL, TF-IDF, then on IMDB),
        the other students, the long-input row, then exports, INT8 and latency (measured last)."""
        order = sorted(self.tasks, key=lambda t: 0 if t == "conll" else 1)
        others = [s for s in self.p.students if s != self.sweeper]
        jobs: List[Job] = []
        for t in order:
            if self.p.tasks[t].tfidf:
                jobs += [Job(f"{t}/tfidf_lr/{s}", "tfidf", t, extra={"train": s}) for s in ("subset", "all")]
            jobs.append(Job(f"{t}/teacher", "teacher", t))
            jobs += self._sweep_jobs(t)
            jobs += self._student_jobs(t, self.sweeper)
        for t in order:
            for model in others:
                jobs += self._student_jobs(t, model)
        for t in order:
            spec = self.p.tasks[t]
            if spec.long_seq:
                seed = self.p.seeds[self.sweeper][0]
                jobs.append(Job(f"{t}/{self.sweeper}/len{spec.long_seq}/seed{seed}", "train", t,
                                [f"{t}/teacher", f"{t}/{self.sweeper}/sweep/select"], self.sweeper,
                                f"len{spec.long_seq}", seed))
        for t in order:
            jobs += self._decoding_job(t, jobs)
            jobs += self._whole_document_jobs(t)
        for t in order:
            jobs += self._deploy_jobs(t)
        return jobs

    def _decoding_job(self, t: str, earlier: List[Job]) -> List[Job]:
        """Tagging tasks: `<task>/decoding` re-scores the finished teacher and row runs under each tag decoding
        (bench/decoding.py). It takes the runs that exist: selecting it brings no training job along."""
        from ernie_tiny_distill.tasks.adapters import task_class

        if not task_class(self.teacher_cfg(t).task).decodings:
            return []
        rows = [j.name for j in earlier
                if j.task == t and j.kind == "train" and not str(j.variant).startswith("sweep_")]
        return [Job(f"{t}/decoding", "decoding", t, [f"{t}/teacher", *rows], extra={"hard_deps": []})]

    def _sweep_jobs(self, t: str) -> List[Job]:
        b = self.sweeper
        seed = self.p.seeds[b][0]
        deps = [f"{t}/teacher"]
        jobs = []
        lrs = self.p.tasks[t].sweep_lr
        if self.p.sweep:
            s = self.p.sweep
            for temp in s["temperature"]:
                for ce in s["ce_weight"]:
                    for lr in lrs or s["learning_rate"]:
                        jobs.append(Job(f"{t}/{b}/sweep/kd_T{fmt(temp)}_ce{fmt(ce)}_lr{fmt(lr)}", "train", t, deps,
                                        b, "sweep_kd", seed, {"temperature": temp, "ce_weight": ce,
                                                              "learning_rate": lr}))
        nokd_lrs = self.p.tasks[t].nokd_sweep_lr or lrs or self.p.nokd_sweep_lr
        for lr in nokd_lrs if self.p.nokd_sweep_lr else []:
            jobs.append(Job(f"{t}/{b}/sweep/nokd_lr{fmt(lr)}", "train", t, deps, b, "sweep_nokd", seed,
                            {"learning_rate": lr}))
        jobs.append(Job(f"{t}/{b}/sweep/select", "sweep_select", t, [j.name for j in jobs]))
        return jobs

    def _student_jobs(self, t: str, model: str) -> List[Job]:
        own = self.p.students[model].own_hyperparameters(t) is not None
        deps = [f"{t}/teacher"] + ([] if own else [f"{t}/{self.sweeper}/sweep/select"])
        jobs = []
        for seed in self.p.seeds[model]:
            for variant in self.p.student_variants(model, t):
                extra_deps = []
                if self.p.variants[variant].stage1 and self._pruned(model) and variant != self.deploy_variant(model, t):
                    # stage 1 prunes with the importance the task-stage run of the same seed measured
                    extra_deps = [f"{t}/{model}/{self.deploy_variant(model, t)}/seed{seed}"]
                if self.p.variants[variant].teacher_export:
                    extra_deps.append(f"{t}/export/teacher")
                jobs.append(Job(f"{t}/{model}/{variant}/seed{seed}", "train", t, deps + extra_deps, model, variant,
                                seed))
        return jobs

    def _pruned(self, model: str) -> bool:
        return self.p.students[model].model.get("init") == "teacher_pruned"

    def deploy_variant(self, model: str, t: str) -> str:
        """The recipe whose first-seed student is exported and quantized: the student's own, else the profile's
        INT8 recipe, else the student's last."""
        variants = self.p.student_variants(model, t)
        return self.p.students[model].deploy_variant or (
            self.p.int8_variant if self.p.int8_variant in variants else variants[-1])

    def export_variant(self, model: str, t: str) -> str:
        """The recipe whose first-seed student is exported, quantized and timed on task t."""
        return self.p.students[model].export_variant.get(t) or self.deploy_variant(model, t)

    def _deploy_jobs(self, t: str) -> List[Job]:
        jobs = [Job(f"{t}/export/teacher", "export", t, [f"{t}/teacher"], "teacher")]
        for model in self.students_b_first():
            variant = self.export_variant(model, t)
            row = f"{t}/{model}/{variant}/seed{self.p.seeds[model][0]}"
            jobs.append(Job(f"{t}/export/{model}", "export", t, [row], model, extra={"row": row}))
            jobs.append(Job(f"{t}/int8/{model}", "int8", t, [row], model, extra={"row": row}))
        spec = self.p.tasks[t]
        if spec.long_seq:
            b = self.sweeper
            row = f"{t}/{b}/len{spec.long_seq}/seed{self.p.seeds[b][0]}"
            jobs.append(Job(f"{t}/export/{b}-len{spec.long_seq}", "export", t, [row], b, extra={"row": row}))
        jobs += self._whole_document_deploy_jobs(t)
        exports = [j.name for j in jobs if j.kind in ("export", "int8")]
        # latency needs the teacher's export; it measures whichever other exports exist by then
        jobs.append(Job(f"{t}/latency", "latency", t, exports, extra={"hard_deps": [f"{t}/export/teacher"]}))
        return jobs

    def select(self, only: Sequence[str] = (), skip: Sequence[str] = ()) -> List[Job]:
        jobs = self.jobs()
        by_name = {j.name: j for j in jobs}
        chosen = {j.name for j in jobs if (not only or matches(j.name, only)) and not matches(j.name, skip)}
        frontier = list(chosen)
        while frontier:   # dependencies come along unless skipped explicitly
            job = by_name[frontier.pop()]
            # latency measures the exports that exist; only its hard dependencies (the teacher's export) come along
            for dep in job.extra.get("hard_deps", job.deps):
                if dep in by_name and dep not in chosen and not matches(dep, skip):
                    chosen.add(dep)
                    frontier.append(dep)
        return [j for j in jobs if j.name in chosen]

    # ------------------------------------------------------------ configs

    def chosen(self, t: str) -> Dict[str, float]:
        """The hyper-parameters picked on dev by the sweep (or the profile's fixed ones)."""
        if not self.p.sweep and not self.p.nokd_sweep_lr:
            return dict(self.p.fixed)
        res = self.result(f"{t}/{self.sweeper}/sweep/select")
        if not res or res.get("status") != "done":
            raise NotReady(f"the dev sweep {t}/{self.sweeper}/sweep has not finished")
        return res["chosen"]

    def _base(self, t: str, output_dir: str, stage: str, seed: int) -> Dict:
        teacher = self.teacher_cfg(t).to_dict()
        return {"task": teacher["task"], "stage": stage, "output_dir": output_dir,
                "data": copy.deepcopy(teacher["data"]),
                "model": {"teacher": teacher["output_dir"], "max_seq_length": teacher["model"]["max_seq_length"],
                          "truncation": teacher["model"]["truncation"]},
                "distill": {}, "train": dict(self.p.train, seed=seed)}

    def student_block(self, model: str) -> Dict:
        """The profile's model.student block for this student, untouched."""
        return copy.deepcopy(self.p.students[model].model)

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
        from ernie_tiny_distill.data import load as data_lib

        cfg = self.teacher_cfg(t)
        train = data_lib.load_splits(cfg.data, cfg.task).train
        lines = [" ".join(ex.tokens) if hasattr(ex, "tokens") else " ".join(ex.text.split()) for ex in train]
        write_text(path, "\n".join(line for line in lines if line.strip()) + "\n")
        logger.info("wrote %d unlabeled training sentences to %s", len(lines), path)
        return path

    def general_stage(self, t: str, model: str, seed: int) -> Stage:
        name = f"{t}/{model}/general/seed{seed}"
        cfg = self._base(t, self.out(t, model, "general", f"seed{seed}"), "general", seed)
        cfg["model"]["teacher"] = self.teacher_cfg(t).model.teacher   # the pretrained (not fine-tuned) encoder
        cfg["model"]["student"] = self.student_block(model)
        if self._pruned(model) and not cfg["model"]["student"].get("importance_file"):
            # stage 1 has no labels: a student pruned from the pretrained teacher keeps the heads and neurons the
            # task-stage run of the same seed found important in the fine-tuned teacher
            cfg["model"]["student"]["importance_file"] = self.out(t, model, self.deploy_variant(model, t),
                                                                  f"seed{seed}", "importance.json")
        self._unlabeled(t, cfg)
        cfg["distill"] = {"hidden_weight": self.p.general["hidden_weight"],
                          "attention_weight": self.p.general["attention_weight"], "attention_loss": "kl"}
        cfg["train"].update(epochs=self.p.tasks[t].general_epochs,
                            learning_rate=self.p.general["learning_rate"] * self.p.lr_factor[model])
        return self._stage(name, cfg, f"stage 1 (general distillation from the pretrained teacher on unlabeled "
                                      f"in-domain text) for student {model}, seed {seed}")

    def _task_stage(self, job: Job, name: str, output_dir: str, *, kd: bool, temperature: float, ce_weight: float,
                    lr: float, transfer: bool, student: Dict, epochs: float, test: bool = True,
                    max_seq_length: Optional[int] = None, what: str = "", distill: Optional[Dict] = None,
                    train: Optional[Dict] = None, data: Optional[Dict] = None, model: Optional[Dict] = None,
                    stage: str = "task") -> Stage:
        cfg = self._base(job.task, output_dir, stage, job.seed)
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
        cfg["distill"].update(distill or {})
        cfg["train"].update(epochs=epochs, learning_rate=lr)
        spec = self.p.tasks[job.task]
        if kd and transfer and spec.kd_eval_every:
            cfg["train"]["eval_every"] = spec.kd_eval_every
        cfg["train"].update(train or {})
        cfg["data"].update((data or {}).get(job.task, {}))
        cfg["model"].update(model or {})
        return self._stage(name, cfg, what)

    def stages(self, job: Job) -> List[Stage]:
        """The stages (generated configs) a training job runs, in order."""
        t, model, seed, spec = job.task, job.model, job.seed, self.p.tasks[job.task]
        out = self.out(*job.name.split("/"))
        if job.variant in ("ensemble_kd", "wide_kd"):
            return [self.whole_document_stage(job)]
        if job.variant == "sweep_kd":
            e = job.extra
            return [self._task_stage(job, job.name, out, kd=True, temperature=e["temperature"],
                                     ce_weight=e["ce_weight"], lr=e["learning_rate"], transfer=spec.transfer,
                                     student=self.student_block(model), epochs=spec.kd_epochs, test=False,
                                     what=f"dev sweep point for student {model} task KD (test split not read)")]
        if job.variant == "sweep_nokd":
            return [self._task_stage(job, job.name, out, kd=False, temperature=1.0, ce_weight=1.0,
                                     lr=job.extra["learning_rate"], transfer=False,
                                     student=self.student_block(model), epochs=spec.no_kd_epochs, test=False,
                                     what=f"dev sweep point for student {model} without KD (test split not read)")]
        own = self.p.students[model].own_hyperparameters(t)
        hp = own if own is not None else self.chosen(t)
        factor = 1.0 if own is not None else self.p.lr_factor[model]
        kd_args = dict(kd=True, temperature=hp["temperature"], ce_weight=hp["ce_weight"],
                       lr=hp["learning_rate"] * factor, transfer=spec.transfer, epochs=spec.kd_epochs)
        if job.variant == f"len{spec.long_seq}":
            general = self.general_stage(t, model, seed)
            return [general, self._task_stage(
                job, job.name, out, student=self._from_stage1(model, general), **kd_args,
                max_seq_length=spec.long_seq,
                what=f"student {model} reading {spec.long_seq} tokens (two-stage recipe; "
                     f"stage 1 shared with {t}/{model}/two_stage_kd/seed{seed})")]
        if job.variant not in self.p.variants:
            raise ValueError(f"unknown variant {job.variant}")
        v = self.p.variants[job.variant]
        what = v.describe.format(model=model, seed=seed, variant=v.name)
        distill = v.distill
        if v.teacher_export:
            distill = {"teachers": [self._exported_teacher(t, 1.0)], **v.distill}
        overrides = dict(distill=distill, train=v.train, data=v.data, what=what)
        if not v.kd:
            return [self._task_stage(job, job.name, out, kd=False, temperature=1.0, ce_weight=1.0,
                                     lr=hp["nokd_learning_rate"] * factor, transfer=False,
                                     student=self.student_block(model), epochs=spec.no_kd_epochs, **overrides)]
        if not v.stage1:
            return [self._task_stage(job, job.name, out, student=self.student_block(model), **kd_args, **overrides)]
        general = self.general_stage(t, model, seed)
        return [general, self._task_stage(job, job.name, out, student=self._from_stage1(model, general), **kd_args,
                                          **overrides)]

    def _exported_teacher(self, t: str, weight: float) -> Dict:
        """A distill.teachers entry for the task's fine-tuned teacher, scored through its benchmark export when that
        holds its weights (deploy/scoring.py)."""
        return {"path": self.teacher_cfg(t).output_dir, "weight": weight, "export": self.out(t, "export", "teacher")}

    def _from_stage1(self, model: str, general: Stage) -> Dict:
        return dict(self.student_block(model), init="pretrained", path=os.path.join(general.cfg["output_dir"], "best"))

    def _stage(self, name: str, cfg: Dict, what: str) -> Stage:
        full = config_from_dict(cfg).to_dict()   # validated, every key written out
        path = os.path.join(self.p.configs_dir(), name.replace("/", "_") + ".yaml")
        header = (f"# Benchmark (profile {self.p.name}), {name}: {what}.\n"
                  f"# Generated by tools/reproduce.py (edit {self.profile_file()}, not this file).\n"
                  f"# Run: python {TRAIN_SCRIPT} --config {path}\n")
        text = header + yaml.safe_dump(full, sort_keys=False)
        old = None
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as f:
                old = f.read()
        if old != text:
            write_text(path, text)
        return Stage(name, full, path)

    def profile_file(self) -> str:
        src = self.p.source
        if not src:
            return "the benchmark profile"
        try:
            return str(Path(src).resolve().relative_to(REPO))
        except ValueError:
            return src
