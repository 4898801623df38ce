"""Is the fine-tuned teacher worth distilling? Its dev score against TF-IDF + LR and against its own curve."""
from __future__ import annotations

import logging
from typing import Dict, Optional, Sequence

import numpy as np

from ernie_tiny_distill.errors import UserError

logger = logging.getLogger(__name__)

# the last dev evaluation beat the one before it by more than this (metric units): still learning
STILL_IMPROVING = 0.005


def tfidf_baseline(task, train: Sequence, dev: Sequence) -> Optional[Dict]:
    """TF-IDF + logistic regression fit on the same training split, C chosen on dev; None for tasks whose
    examples are not whole texts with one label (the adapter refuses example_text)."""
    from ernie_tiny_distill.distill.tfidf import fit_tfidf_lr

    try:
        train_texts = [task.example_text(ex) for ex in train]
        dev_texts = [task.example_text(ex) for ex in dev]
    except UserError:
        return None
    fitted = fit_tfidf_lr(train_texts, [ex.label for ex in train], dev_texts, [ex.label for ex in dev])
    return {"dev_accuracy": fitted["dev_accuracy"], "C": fitted["C"], "model": "TF-IDF (1-2 grams) + LR"}


def curve(history: Sequence[Dict], metric: str) -> Dict:
    """The dev learning curve's shape: where the best was and whether the last evaluation still gained over the
    one a full evaluation interval before it (the run's final evaluation can come a few steps after the last
    regular one, and a gain over those few steps says nothing)."""
    scores = [float(h[metric]) for h in history]
    if not scores:
        return {"evaluations": 0, "still_improving": False}
    steps = [int(h["step"]) for h in history]
    best = max(range(len(scores)), key=scores.__getitem__)
    interval = float(np.median(np.diff(steps))) if len(steps) > 1 else steps[0]
    earlier = [i for i in range(len(steps) - 1) if steps[i] <= steps[-1] - interval]
    gain = scores[-1] - scores[earlier[-1]] if earlier else scores[-1]
    return {"evaluations": len(scores), "best_at": history[best]["step"], "last_gain": round(gain, 6),
            "still_improving": scores[-1] >= scores[best] and gain > STILL_IMPROVING}


def assess(summary: Dict, baseline: Optional[Dict]) -> Dict:
    """What the teacher run says about itself: its dev score, the baseline's, and its curve."""
    metric = summary["metric_name"]
    dev = float(summary["dev"][metric])
    shape = curve(summary.get("history") or [], metric)
    below = baseline is not None and dev < baseline["dev_accuracy"]
    return {"metric": metric, "teacher_dev": dev, "baseline_dev": baseline and baseline["dev_accuracy"],
            "below_baseline": below, **shape, "stopped_early": summary.get("stopped_early")}


def needs_more_training(check: Dict) -> bool:
    return bool(check["below_baseline"] or check["still_improving"])


def verdict(check: Dict, extended: bool, allow_weak: bool) -> Dict:
    """After the (bounded) extra training: stop when the teacher stays below the baseline, unless allowed."""
    check = dict(check, extended=extended)
    if check["below_baseline"]:
        message = (f"the teacher's dev {check['metric']} is {check['teacher_dev']:.4f}, below TF-IDF + logistic "
                   f"regression on the same split ({check['baseline_dev']:.4f}) even after "
                   f"{'extra training' if extended else 'fine-tuning'}: it is too weak to distill from")
        if not allow_weak:
            raise UserError(message, where="teacher check",
                            hint="use a stronger --teacher, more labeled data, or --allow-weak-teacher to go on")
        logger.warning("%s (continuing: --allow-weak-teacher)", message)
        check["warning"] = message
    elif check["still_improving"]:
        check["warning"] = (f"the teacher's dev {check['metric']} was still rising at its last evaluation "
                            f"(+{check['last_gain']:.4f}); the extra training is bounded, so it is used as it is")
        logger.warning(check["warning"])
    return check
