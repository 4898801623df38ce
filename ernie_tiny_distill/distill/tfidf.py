"""Reference classifier for the benchmark: TF-IDF (word 1-2 grams) + logistic regression on the full text.

The splits come from a run config's `data` section (the same reader, dev split and training subset as the
teacher and the students), so the baseline sees exactly the examples the neural models see:

    python -m ernie_tiny_distill.distill.tfidf --config configs/imdb_teacher.yaml --train subset --out R.json
    python -m ernie_tiny_distill.distill.tfidf --config configs/imdb_teacher.yaml --train all --out R.json

`--train subset`: fit on the config's training subset (data.max_train_examples), C chosen on the dev split.
`--train all`: C chosen on dev with the model fit on every non-dev training example, then refit on
training + dev (all 25k labeled IMDB reviews). Never looks at the test split until the final evaluation.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from typing import Dict, List, Optional, Sequence

import numpy as np

from ernie_tiny_distill.errors import UserError
from ernie_tiny_distill.util import fsutil

logger = logging.getLogger(__name__)

C_GRID = (1.0, 4.0, 16.0, 64.0, 256.0, 1024.0)


def solver_for(num_classes: int) -> str:
    """liblinear for two classes (what the committed IMDB rows used); lbfgs, which is multinomial, for more
    (liblinear is one-vs-rest only and scikit-learn >= 1.8 refuses it for multiclass)."""
    return "liblinear" if num_classes <= 2 else "lbfgs"


def make_model(C: float, num_classes: int = 2):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    return make_pipeline(TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True, dtype=np.float32),
                         LogisticRegression(C=C, solver=solver_for(num_classes), max_iter=1000))


def _accuracy(model, texts: Sequence[str], labels: Sequence[str]) -> float:
    predicted = model.predict(list(texts))
    return float(np.mean([p == g for p, g in zip(predicted, labels)]))


def fit_tfidf_lr(train_texts, train_labels, dev_texts, dev_labels, grid: Sequence[float] = C_GRID,
                 refit_with_dev: bool = False) -> Dict:
    """Pick C on dev; returns {"model", "C", "dev_by_C", "dev_accuracy"} (model refit on train+dev if asked)."""
    dev_by_c = {}
    num_classes = len(set(train_labels))
    best_c, best_acc, best_model = None, -1.0, None
    for c in grid:
        model = make_model(c, num_classes).fit(list(train_texts), list(train_labels))
        acc = _accuracy(model, dev_texts, dev_labels)
        dev_by_c[str(c)] = acc
        logger.info("C=%g dev accuracy %.4f", c, acc)
        if acc > best_acc:
            best_c, best_acc, best_model = c, acc, model
    if refit_with_dev:
        best_model = make_model(best_c, num_classes).fit(list(train_texts) + list(dev_texts), list(train_labels) + list(dev_labels))
    return {"model": best_model, "C": best_c, "dev_by_C": dev_by_c, "dev_accuracy": best_acc}


def time_model(model, texts: Sequence[str], iterations: int = 200, batch_size: int = 32) -> Dict:
    """p50/p95 latency of one raw text (featurization included) and throughput at batch_size, 1 process."""
    texts = list(texts)
    lat = []
    for i in range(iterations):
        t = texts[i % len(texts)]
        start = time.perf_counter()
        model.predict_proba([t])
        lat.append(time.perf_counter() - start)
    batches = [texts[i:i + batch_size] for i in range(0, min(len(texts), 10 * batch_size), batch_size)]
    start = time.perf_counter()
    n = 0
    for b in batches:
        model.predict_proba(b)
        n += len(b)
    seconds = time.perf_counter() - start
    return {"p50_ms": 1000 * float(np.percentile(lat, 50)), "p95_ms": 1000 * float(np.percentile(lat, 95)),
            "throughput_seq_per_s": n / seconds, "batch_size": batch_size, "iterations": iterations,
            "note": "scikit-learn, one process; includes TF-IDF featurization of the full text"}


def run(config_path: str, overrides: Sequence[str], train: str, out: Optional[str] = None,
        grid: Sequence[float] = C_GRID, timing: bool = False) -> Dict:
    from ernie_tiny_distill.config import load_config
    from ernie_tiny_distill.data import load as data_lib
    from ernie_tiny_distill.tasks.adapters import task_class

    if train not in ("subset", "all"):
        raise ValueError(f"train must be 'subset' or 'all', got {train!r}")
    extra = ["data.max_train_examples=null"] if train == "all" else []
    cfg = load_config(config_path, list(overrides) + extra)
    if not task_class(cfg.task).whole_text_labels:
        raise UserError(f"the TF-IDF baseline scores whole texts: it is for classification configs, not task "
                        f"{cfg.task!r}", where=config_path)
    started = time.time()
    splits = data_lib.load_splits(cfg.data, cfg.task)
    fit = fit_tfidf_lr([e.text for e in splits.train], [e.label for e in splits.train],
                       [e.text for e in splits.dev], [e.label for e in splits.dev], grid,
                       refit_with_dev=(train == "all"))
    model = fit.pop("model")
    test_acc = _accuracy(model, [e.text for e in splits.test], [e.label for e in splits.test]) if splits.test else None
    result = {
        "model": "TF-IDF (1-2 grams, min_df 2, sublinear tf) + logistic regression "
                 f"({solver_for(len(set(e.label for e in splits.train)))})",
        "train": train, "train_examples": len(splits.train) + (len(splits.dev) if train == "all" else 0),
        "dev_examples": len(splits.dev), "test_examples": len(splits.test),
        "C_grid": list(grid), **fit, "test": {"accuracy": test_acc},
        "vocabulary": len(model.steps[0][1].vocabulary_), "seconds": round(time.time() - started, 1),
        "config": config_path, "overrides": list(overrides),
    }
    if timing and splits.test:
        result["latency"] = time_model(model, [e.text for e in splits.test[:500]])
    if out:
        fsutil.write_json(out, result)
    return result


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="TF-IDF + logistic regression baseline on a config's splits")
    parser.add_argument("--config", required=True, help="run config whose data section defines the splits")
    parser.add_argument("overrides", nargs="*", help="key=value config overrides")
    parser.add_argument("--train", choices=("subset", "all"), default="subset")
    parser.add_argument("--out", help="write the result JSON here")
    parser.add_argument("--c-grid", default=",".join(f"{c:g}" for c in C_GRID),
                        help="comma-separated values of the inverse regularisation C, picked on dev")
    parser.add_argument("--timing", action="store_true", help="also time batch-1 latency and batch-32 throughput")
    args = parser.parse_args(argv)
    grid = [float(c) for c in args.c_grid.split(",") if c.strip()]
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    result = run(args.config, args.overrides, args.train, args.out, grid=grid, timing=args.timing)
    print(json.dumps({k: result[k] for k in ("train", "train_examples", "C", "dev_accuracy", "test")}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
