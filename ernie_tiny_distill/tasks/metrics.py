"""Evaluation metrics: accuracy with per-class report; entity-level seqeval (strict IOB2) for tagging."""
from __future__ import annotations

from typing import Dict, List, Sequence


def classification_metrics(gold: Sequence[str], predicted: Sequence[str], labels: Sequence[str]) -> Dict[str, object]:
    """Accuracy plus per-class precision/recall/F1/support."""
    if len(gold) != len(predicted):
        raise ValueError(f"{len(gold)} gold labels but {len(predicted)} predictions")
    correct = sum(g == p for g, p in zip(gold, predicted))
    per_class = {}
    for label in labels:
        tp = sum(g == label and p == label for g, p in zip(gold, predicted))
        n_pred = sum(p == label for p in predicted)
        n_gold = sum(g == label for g in gold)
        precision = tp / n_pred if n_pred else 0.0
        recall = tp / n_gold if n_gold else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[label] = {"precision": precision, "recall": recall, "f1": f1, "support": n_gold}
    return {"accuracy": correct / len(gold) if gold else 0.0, "num_examples": len(gold), "per_class": per_class}


def tagging_metrics(gold: Sequence[List[str]], predicted: Sequence[List[str]]) -> Dict[str, object]:
    """Entity-level micro precision/recall/F1 with seqeval in strict IOB2 mode, and a per-type report."""
    from seqeval.metrics import classification_report, f1_score, precision_score, recall_score
    from seqeval.scheme import IOB2

    gold, predicted = [list(g) for g in gold], [list(p) for p in predicted]
    for i, (g, p) in enumerate(zip(gold, predicted)):
        if len(g) != len(p):
            raise ValueError(f"sentence {i}: {len(g)} gold tags but {len(p)} predicted")
    kwargs = {"mode": "strict", "scheme": IOB2, "zero_division": 0}
    report = classification_report(gold, predicted, output_dict=True, **kwargs)
    per_class = {
        name: {("f1" if k == "f1-score" else k): float(v) if k != "support" else int(v) for k, v in row.items()}
        for name, row in report.items()
        if not name.endswith("avg")
    }
    return {
        "f1": float(f1_score(gold, predicted, **kwargs)),
        "precision": float(precision_score(gold, predicted, **kwargs)),
        "recall": float(recall_score(gold, predicted, **kwargs)),
        "num_sentences": len(gold),
        "per_class": per_class,
    }
