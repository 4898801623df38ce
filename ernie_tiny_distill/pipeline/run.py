"""The one-command pipeline: the user's files -> teacher -> born student + KD -> exports -> scores -> report."""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from typing import Dict, List, Optional

from ernie_tiny_distill.config import Config, DataConfig, config_from_dict
from ernie_tiny_distill.data import load as data_lib
from ernie_tiny_distill.data.augment_text import TEACHER_EMBEDDINGS, teacher_word_table
from ernie_tiny_distill.distill.distiller import kd_from_logits_only
from ernie_tiny_distill.errors import UserError
from ernie_tiny_distill.models import build as models
from ernie_tiny_distill.pipeline import measure, report, teacher_check
from ernie_tiny_distill.pipeline.recipes import (
    Options,
    build_config,
    data_section,
    load_recipe,
    merge,
    planned_steps,
    with_overrides,
    with_schedule,
)
from ernie_tiny_distill.pipeline.steps import Steps
from ernie_tiny_distill.tasks.adapters import make_task
from ernie_tiny_distill.train.stages import run_stage

logger = logging.getLogger(__name__)

STEP_NAMES = ["estimate", "teacher", "assistant", "student", "control", "export", "evaluate", "latency"]
# data keys of the student's transfer set: the teacher never reads it, so they stay out of the teacher's config
# (a new transfer set in a recipe does not make a finished teacher look changed and train again)
TRANSFER_SET_KEYS = ("unlabeled", "unlabeled_column", "unlabeled_rows", "max_unlabeled_examples", "augment_embeddings",
                    "augment_copies")


@dataclass
class UserData:
    splits: data_lib.DataSplits
    data: Dict  # the data section the stages read (data.unlabeled settled)
    dev_source: str
    transfer_source: str
    threads: int  # train.num_threads after the user's overrides: inference uses as many


def run_pipeline(opts: Options) -> Dict:
    """Run every step not yet done under opts.out and write OUT/report.json and OUT/report.md."""
    started = time.time()
    recipe = run_recipe(opts)
    os.makedirs(opts.out, exist_ok=True)
    left_out = ({"control"} if not opts.control else set()) | ({"assistant"} if not recipe.get("assistant") else set())
    steps = Steps(opts.out, [n for n in STEP_NAMES if n not in left_out])
    user = read_user_data(opts, recipe)
    reused = reusable_teacher(opts.teacher, opts.task, user.splits.labels)
    plans = plan_stages(opts, recipe, user, reused)
    check_plans(opts, plans, recipe)

    estimate = steps.run("estimate", "estimating the total time",
                         lambda: _estimate(opts, recipe, user, plans, reused), inputs=[plans, opts.control])
    logger.info("estimated total time, at most: %s (%s); parts: %s", _clock(estimate["seconds"]), estimate["method"],
                ", ".join(f"{k} {_clock(v)}" for k, v in estimate["parts"].items()))
    teacher = steps.run("teacher", "teacher: fine-tuning and checking it",
                        lambda: _teacher(opts, recipe, user, plans, reused),
                        inputs=[plans["teacher"], reused, recipe["schedule"], opts.allow_weak_teacher, opts.overrides])
    assistant = steps.run("assistant", "assistant: a larger born student, distilled first",
                          lambda: _assistant(opts, plans["assistant"], teacher["dir"]),
                          inputs=[plans["assistant"], teacher, opts.overrides]) if "assistant" in plans else None
    student = steps.run("student", "student: born from the teacher, distilled",
                        lambda: _student(opts, plans["student"], teacher["dir"], assistant, recipe),
                        inputs=[plans["student"], teacher, opts.overrides] + ([assistant] if assistant else []))
    control = steps.run("control", "control: the same born student without KD",
                        lambda: _train(opts, plans["control"], teacher["dir"], "control"),
                        inputs=[plans["control"], teacher, opts.overrides]) if opts.control else None
    exports = steps.run("export", "exporting the teacher (FP32) and the student (FP32 + INT8)",
                        lambda: _export(opts.out, teacher["dir"], student["best_dir"]), inputs=[teacher, student])
    split, examples = ("test", user.splits.test) if user.splits.test else ("dev", user.splits.dev)
    scores = steps.run("evaluate", f"scoring the exports on the {split} split",
                       lambda: _scores(exports, examples, split, user.threads), inputs=[exports, split, len(examples)])
    task = make_task(opts.task, models.load_tokenizer(teacher["dir"]), user.splits.labels, 8)
    texts = [task.request_text(ex) for ex in examples]
    targets = _latency_targets(exports)
    timing = steps.run("latency", f"latency per request on {min(len(texts), opts.latency_texts)} {split} texts",
                       lambda: measure.latency(targets, texts, opts.latency_texts, user.threads),
                       inputs=[exports, opts.latency_texts, user.threads, targets])
    result = report.build(opts=opts, recipe=recipe, user=user, estimate=estimate, teacher=teacher, student=student,
                          assistant=assistant, control=control, exports=exports, scores=scores, split=split,
                          latency=timing,
                          step_seconds=steps.seconds(), wall_seconds=time.time() - started,
                          skipped=steps.skipped)
    report.write(opts.out, result)
    return result


def run_recipe(opts: Options) -> Dict:
    """The recipe the run follows: --recipe or the built-in one for the task and speed-up, without its assistant
    when --no-assistant says so."""
    recipe = load_recipe(opts.task, opts.speedup, opts.recipe)
    if not opts.assistant and recipe.get("assistant"):
        logger.info("the recipe's assistant (%s) is skipped (--no-assistant)", recipe["assistant"]["recipe"])
        recipe = {k: v for k, v in recipe.items() if k != "assistant"}
    return recipe


def read_user_data(opts: Options, recipe: Dict) -> UserData:
    """The user's splits (and transfer set) as the stages will read them; the transfer set falls back to none
    when augmentation is not available for the task here (said in the log and the report)."""
    data = _stage_data(opts, recipe["student"].get("data"))
    transfer_source = f"--unlabeled {opts.unlabeled}" if opts.unlabeled else (
        f"data.unlabeled: {data['unlabeled']} (recipe)" if data["unlabeled"] else "none")
    cfg = _config(opts, {"task": opts.task, "stage": "teacher", "output_dir": os.path.join(opts.out, "teacher"),
                         "data": data, "model": {"teacher": opts.teacher}}, "data")
    augment = not opts.unlabeled and cfg.data.unlabeled == data_lib.AUGMENT
    # the labeled files first: an error in them is the user's to fix, never a reason to drop the transfer set
    splits = data_lib.load_splits(cfg.data, opts.task, need_unlabeled=bool(cfg.data.unlabeled) and not augment)
    if augment:
        try:
            splits.unlabeled = data_lib.augmented_copies(cfg.data, opts.task, splits.train)
        except UserError as e:
            logger.warning("no transfer set: data.unlabeled=augment is refused for %s here (%s)", opts.task, e)
            data["unlabeled"], transfer_source = None, "none (augmentation not available for this task)"
    if opts.dev:
        dev_source = f"--dev {opts.dev}"
    else:
        size = cfg.data.dev_size
        share = f"{size:.0%}" if size < 1 else f"{int(size)} examples"
        dev_source = f"held out from --train: {share}, seeded (data.split_seed {cfg.data.split_seed})"
    return UserData(splits=splits, data=data, dev_source=dev_source, transfer_source=transfer_source,
                    threads=cfg.train.num_threads)


def _stage_data(opts: Options, recipe_data: Optional[Dict]) -> Dict:
    """The data section of a distillation stage: the user's files, the recipe's transfer set (or --unlabeled)."""
    data = merge(data_section(opts), recipe_data or {})
    data["unlabeled"] = opts.unlabeled or data.get("unlabeled")
    if data.get("augment_embeddings") == TEACHER_EMBEDDINGS:
        data["augment_embeddings"] = teacher_word_table(opts.teacher)  # known before the teacher is fine-tuned
    return data


def _transfer_count(data: Dict, n_train: int, n_user_transfer: int) -> int:
    """Transfer-set examples of a stage's data section (augmented copies, or the user's --unlabeled file)."""
    if not data.get("unlabeled"):
        return 0
    if data["unlabeled"] != data_lib.AUGMENT:
        return n_user_transfer
    return data_lib.augment_count(DataConfig(augment_copies=data.get("augment_copies"),
                                             max_unlabeled_examples=data.get("max_unlabeled_examples")), n_train)


def reusable_teacher(spec: str, task: str, labels: List[str]) -> Optional[str]:
    """A fine-tuned run directory (best/task.json) for this task and exactly these labels: no fine-tuning."""
    if not os.path.isdir(spec):
        return None
    meta = models.read_task_metadata(models.resolve(spec))
    if meta is None:
        return None
    if meta.get("task") == task and sorted(meta.get("labels") or []) == sorted(labels):
        logger.info("--teacher %s is already fine-tuned on these %d labels: no teacher fine-tuning", spec,
                    len(labels))
        return spec
    logger.info("--teacher %s was fine-tuned on other labels (%s): it is fine-tuned again on these", spec,
                (meta.get("labels") or [])[:6])
    return None


def plan_stages(opts: Options, recipe: Dict, user: UserData, reused: Optional[str]) -> Dict[str, Dict]:
    """The raw configs of the teacher, student and control runs, schedules fitted to the data sizes."""
    evaluations = int(recipe["schedule"].get("evaluations", 10))
    n_train, n_transfer = len(user.splits.train), len(user.splits.unlabeled)
    teacher_data = {k: v for k, v in user.data.items() if k not in TRANSFER_SET_KEYS}
    teacher = merge({"task": opts.task, "data": teacher_data}, recipe["teacher"])
    teacher = merge(teacher, {"stage": "teacher", "output_dir": os.path.join(opts.out, "teacher"),
                              "model": {"teacher": opts.teacher}})
    student = _distill_plan(opts, user.data, recipe["student"], "student")
    control = merge(student, recipe["control"])
    control = merge(control, {"output_dir": os.path.join(opts.out, "control")})
    n_control = n_train + (n_transfer if control["data"].get("unlabeled") else 0)
    plans = {"teacher": with_schedule(teacher, n_train, evaluations, opts.overrides),
             "student": with_schedule(student, n_train + n_transfer, evaluations, opts.overrides),
             "control": with_schedule(control, n_control, evaluations, opts.overrides),
             "reused_teacher": reused}
    if recipe.get("assistant"):
        section = recipe["assistant"]["student"]
        data = _stage_data(opts, section.get("data"))
        if not user.data.get("unlabeled"):
            # the student has no transfer set (none given, or augmentation refused here, as logged): neither has
            # the assistant, so one refusal is not met again half-way through the run
            data["unlabeled"] = None
        assistant = _distill_plan(opts, data, section, "assistant")
        plans["assistant_examples"] = n_train + _transfer_count(data, n_train, n_transfer)
        plans["assistant"] = with_schedule(assistant, plans["assistant_examples"], evaluations, opts.overrides)
    return plans


def check_plans(opts: Options, plans: Dict[str, Dict], recipe: Dict) -> None:
    """Every distillation step's config, with the user's overrides, is checked before the first step runs: a
    mistake in the student's section is not met after the teacher and the assistant have trained."""
    assistant = {"output_dir": os.path.join(opts.out, "assistant"), "export": None}
    for name in ("assistant", "student", "control"):
        if name not in plans:
            continue
        raw = _taught_by(plans[name], "teacher", assistant if "assistant" in plans else None, recipe) \
            if name == "student" else plans[name]
        try:
            _plan_config(opts, raw, opts.teacher or "minilm")
        except UserError as e:
            raise UserError(f"the {name} step's config, from the recipe's {name} section and your key=value "
                            f"settings, is refused: {e}", where=recipe["file"]) from None


def _plan_config(opts: Options, raw: Dict, teacher: str) -> Config:
    """The Config a step's plan gives with this teacher and the user's overrides, checked, without writing it."""
    return config_from_dict(with_overrides(merge(raw, {"model": {"teacher": teacher}}), opts.overrides))


def _distill_plan(opts: Options, data: Dict, section: Dict, name: str) -> Dict:
    """The raw config of a distillation run (stage 'task') into OUT/<name>: the recipe section on `data`."""
    raw = merge({"task": opts.task, "data": data}, {k: v for k, v in section.items() if k != "data"})
    raw = merge(raw, {"stage": "task", "output_dir": os.path.join(opts.out, name)})
    return merge(raw, {"distill": {"allow_weak_teacher": True}}) if opts.allow_weak_teacher else raw


def _config(opts: Options, raw: Dict, name: str) -> Config:
    return build_config(raw, opts.overrides, os.path.join(opts.out, "configs", f"{name}.yaml"))


def _steps_of(raw: Dict, examples: int, overrides) -> int:
    return planned_steps(examples, with_overrides(raw, overrides).get("train", {}))


def _estimate(opts: Options, recipe: Dict, user: UserData, plans: Dict, reused: Optional[str]) -> Dict:
    cfg = _config(opts, plans["teacher"], "teacher")
    task = make_task(opts.task, models.load_tokenizer(reused or opts.teacher), user.splits.labels,
                     cfg.model.max_seq_length, cfg.model.truncation)
    per_example = measure.seconds_per_example(reused or opts.teacher, task, user.splits.train, cfg.train.batch_size)
    n_train, n_transfer = len(user.splits.train), len(user.splits.unlabeled)
    evaluations = int(recipe["schedule"].get("evaluations", 10))
    student_train = plans["student"].get("train", {})
    importance = int(plans["student"].get("model", {}).get("student", {}).get("importance_examples", 2048))
    return measure.estimate(
        per_example, teacher_steps=0 if reused else _steps_of(plans["teacher"], n_train, opts.overrides),
        student_steps=_steps_of(plans["student"], n_train + n_transfer, opts.overrides),
        control_steps=_steps_of(plans["control"], n_train, opts.overrides) if opts.control else 0,
        assistant_steps=(_steps_of(plans["assistant"], plans["assistant_examples"], opts.overrides)
                         if "assistant" in plans else 0),
        assistant_epochs=float(plans.get("assistant", {}).get("train", {}).get("epochs", 1)),
        batch=cfg.train.batch_size, speedup=opts.speedup, student_epochs=float(student_train.get("epochs", 3)),
        evals={"teacher": 0 if reused else evaluations, "student": evaluations,
               "assistant": evaluations if "assistant" in plans else 0,
               "control": evaluations if opts.control else 0},
        dev=len(user.splits.dev), test=len(user.splits.test), importance_examples=min(importance, n_train))


def _teacher(opts: Options, recipe: Dict, user: UserData, plans: Dict, reused: Optional[str]) -> Dict:
    """Fine-tune (unless reused), check against TF-IDF + LR and the dev curve, train longer once if needed."""
    if reused:
        return {"dir": reused, "reused": True, "summary": None, "check": None}
    summary = _run_owned(_config(opts, plans["teacher"], "teacher"))
    task = make_task(opts.task, models.load_tokenizer(opts.teacher), user.splits.labels, 8)
    baseline = teacher_check.tfidf_baseline(task, user.splits.train, user.splits.dev)
    check = teacher_check.assess(summary, baseline)
    chosen, extended = summary, False
    if teacher_check.needs_more_training(check):
        extra = max(1, round(float(recipe["schedule"].get("teacher_extension", 1.0)) * summary["total_steps"]))
        logger.info("the teacher %s: training it %d more steps from its best checkpoint (once)",
                    "is below the TF-IDF + LR baseline" if check["below_baseline"] else "was still improving", extra)
        evaluations = int(recipe["schedule"].get("evaluations", 10))
        more = merge(plans["teacher"], {"output_dir": os.path.join(opts.out, "teacher_more"),
                                        "model": {"teacher": summary["output_dir"]},
                                        "train": {"max_steps": extra, "eval_every": max(1, extra // evaluations)}})
        longer = _run_owned(_config(opts, more, "teacher_more"))
        extended = True
        metric = summary["metric_name"]
        if float(longer["dev"][metric]) > float(summary["dev"][metric]):
            chosen = longer
        check = teacher_check.assess(longer, baseline)
        check["teacher_dev"] = float(chosen["dev"][metric])
        check["below_baseline"] = baseline is not None and check["teacher_dev"] < baseline["dev_accuracy"]
    check = teacher_check.verdict(check, extended, opts.allow_weak_teacher)
    return {"dir": chosen["output_dir"], "reused": False, "summary": _brief(chosen), "check": check,
            "baseline": baseline}


def _train(opts: Options, raw: Dict, teacher_dir: str, name: str) -> Dict:
    raw = merge(raw, {"model": {"teacher": teacher_dir}})
    return _brief(_run_owned(_config(opts, raw, name)))


def _assistant(opts: Options, raw: Dict, teacher_dir: str) -> Dict:
    """The assistant trained like any student, then exported (FP32) to score the transfer set fast."""
    brief = _train(opts, raw, teacher_dir, "assistant")
    exported = measure.export(brief["best_dir"], os.path.join(opts.out, "export", "assistant"), int8=False)
    return {**brief, "export": exported["dir"]}


def _student(opts: Options, raw: Dict, teacher_dir: str, assistant: Optional[Dict], recipe: Dict) -> Dict:
    """The student distilled. When the teacher's soft labels are cached (always with an assistant, and for logit
    KD alone), the teacher is exported first and scored through Paddle Inference: the same logits, spot-checked
    against dygraph, in a fraction of the CPU time. The export step writes the same export again later."""
    plan = _plan_config(opts, raw, teacher_dir)
    cached = plan.distill.cache_teacher and kd_from_logits_only(plan)
    if assistant is None and not cached:
        return _train(opts, raw, teacher_dir, "student")
    export = measure.export(teacher_dir, os.path.join(opts.out, "export", "teacher"), int8=False)["dir"]
    if assistant is None:
        raw = merge(raw, {"distill": {"teacher_export": export}})
    return _train(opts, _taught_by(raw, teacher_dir, assistant, recipe, export), teacher_dir, "student")


def _taught_by(raw: Dict, teacher_dir: str, assistant: Optional[Dict], recipe: Dict,
               teacher_export: Optional[str] = None) -> Dict:
    """The student's plan, its soft target the weighted mean of the teacher's and the assistant's when there is
    one (distill.teachers; model.teacher still gives the student its birth)."""
    if assistant is None:
        return raw
    members = [{"path": teacher_dir, "weight": 1.0, **({"export": teacher_export} if teacher_export else {})},
               {"path": assistant["output_dir"], "weight": recipe["assistant"]["weight"],
                "export": assistant["export"]}]
    return merge(raw, {"distill": {"teachers": members}})


def _run_owned(cfg: Config) -> Dict:
    """A training run in a directory the pipeline owns (OUT/teacher, OUT/student, ...): finished with the same
    config, it is reused; finished with another (a recipe or override changed since), it is replaced, as the step
    announced ("its inputs changed ... running it again"); unfinished, it resumes."""
    cfg.train.overwrite = True
    return run_stage(cfg, skip_if_done=True)


def _brief(summary: Dict) -> Dict:
    """What the report reads from a stage summary (history and per-class tables left out)."""
    keep = ("metric_name", "output_dir", "best_dir", "best_step", "train_examples", "transfer_examples", "params",
            "nonembedding_params", "layers", "hidden", "train_seconds", "seconds", "total_steps", "stopped_early")
    out = {k: summary.get(k) for k in keep}
    out["steps_run"] = summary["history"][-1]["step"] if summary.get("history") else None
    for split in ("dev", "test", "teacher_dev"):
        metrics = summary.get(split)
        out[split] = {k: v for k, v in metrics.items() if k != "per_class"} if metrics else None
    return out


def _export(out: str, teacher_dir: str, student_best: str) -> Dict:
    return {"teacher": measure.export(teacher_dir, os.path.join(out, "export", "teacher"), int8=False),
            "student": measure.export(student_best, os.path.join(out, "export", "student"), int8=True)}


def _scores(exports: Dict, examples, split: str, threads: int) -> Dict:
    return {"teacher_fp32": measure.score_export(exports["teacher"]["dir"], examples, split, "fp32", threads),
            "student_fp32": measure.score_export(exports["student"]["dir"], examples, split, "fp32", threads),
            "student_int8": measure.score_export(exports["student"]["dir"], examples, split, "int8", threads)}


def _latency_targets(exports: Dict) -> List[Dict]:
    """FP32 on the engine that serve/predict pick by default (backend auto: the faster of the two at load)."""
    return [{"key": "teacher_fp32", "export_dir": exports["teacher"]["dir"], "backend": "auto", "precision": "fp32"},
            {"key": "student_fp32", "export_dir": exports["student"]["dir"], "backend": "auto", "precision": "fp32"},
            {"key": "student_int8", "export_dir": exports["student"]["dir"], "backend": "onnx", "precision": "int8"}]


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"
