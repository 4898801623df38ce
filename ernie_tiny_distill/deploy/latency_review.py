"""Latency per real text (benchmark): the whole request path of each export, one text per request, the
models interleaved round-robin over a seeded sample of real texts (their own length distribution)."""
from __future__ import annotations

import os
import time
from typing import Callable, Dict, List

import numpy as np

from ernie_tiny_distill.deploy.latency import _percentile
from ernie_tiny_distill.errors import UserError


def sample_texts(texts: List[str], count: int, seed: int = 0) -> List[str]:
    """`count` texts drawn without replacement (seeded) from real data: their own length distribution."""
    texts = [t for t in texts if isinstance(t, str) and t.strip()]
    if count < 1 or not texts:
        raise UserError(f"per-review latency needs at least one text and examples >= 1, got {len(texts)} texts and "
                        f"examples={count}")
    picked = np.random.default_rng(seed).choice(len(texts), size=min(count, len(texts)), replace=False)
    return [texts[i] for i in picked]


def interleave_items(runners: Dict[str, Callable[[object], object]], items: List, *, rounds: int, warmup: int,
                     timer: Callable[[], float] = time.perf_counter) -> Dict[str, List[float]]:
    """Every model runs every item once, one call per item: the items are cut into `rounds` consecutive chunks,
    and in round r each model runs chunk r in turn, the order rotating by one model per round (as `interleave`).
    Untimed warm-up first: each model runs the first `warmup` items. Returns seconds per item per model, in item
    order."""
    names = list(runners)
    for name in names:
        for item in items[:warmup]:
            runners[name](item)
    size = max(1, -(-len(items) // max(1, rounds)))
    samples: Dict[str, List[float]] = {name: [] for name in names}
    for r, start in enumerate(range(0, len(items), size)):
        k = r % len(names) if names else 0
        for name in names[k:] + names[:k]:
            for item in items[start:start + size]:
                begin = timer()
                runners[name](item)
                samples[name].append(timer() - begin)
    return samples


def review_runner(predictor, cold: bool = True) -> Callable[[str], object]:
    """One request as served: Predictor.predict on one raw text (tokenization, every window of a windows model
    and their pooling, or the export's truncation; then the model and the decoding). `cold`: the word memos
    are emptied before each request, so every word is tokenized as if never seen; else they keep what earlier
    requests filled in, as in a running server."""
    def run(text: str):
        if cold:
            predictor.encoder.clear_cache()
        return predictor.predict([text])
    return run


def reading(encoder) -> str:
    """How an encoder reads a long text: 'windows (stride s, max m, mean)' or the truncation rule."""
    ld = encoder.task.long_document
    if ld is None:
        return f"{encoder.truncation} {encoder.max_seq_length}"
    stride = ld.get("stride") or max(1, encoder.budget // 2)
    cap = ld.get("max_windows")
    return f"windows of {encoder.max_seq_length} (stride {stride}{f', max {cap}' if cap else ''}, {ld['pooling']})"


def measure_per_review(targets: List[Dict], texts: List[str], *, num_threads: int = 1, rounds: int = 5,
                       warmup: int = 3) -> Dict[str, Dict]:
    """p50/p95 latency per real text (batch 1: one text per request, the whole request path) of several exports,
    interleaved round-robin over the models.

    targets: dicts with key, export_dir, backend, precision and optionally long_document (read a model fine-tuned
    on truncated text as windows, see Predictor). `texts`: e.g. `sample_texts(test texts, n, seed)`; each model
    runs each text once. A windows model runs all windows of a text in one call (up to the Predictor's
    batch_size of windows per engine run), as served. Returns {key: result}.
    """
    from ernie_tiny_distill.deploy.predictor import Predictor

    runners, predictors = {}, {}
    for t in targets:
        predictor = Predictor(t["export_dir"], backend=t["backend"], precision=t["precision"],
                              num_threads=num_threads, long_document=t.get("long_document"), profile=True)
        predictors[t["key"]], runners[t["key"]] = predictor, review_runner(predictor)
    lat = interleave_items(runners, list(texts), rounds=rounds, warmup=warmup)
    out = {}
    for t in targets:
        key, encoder = t["key"], predictors[t["key"]].encoder
        windows = [len(encoder.classification_feature(x).get("windows", [None])) for x in texts] \
            if encoder.task.long_document else None
        out[key] = {"model": os.path.abspath(t["export_dir"]), "backend": t["backend"],
                    "precision": t["precision"], "threads": num_threads, "reviews": len(lat[key]),
                    "reads": reading(encoder), "rounds": rounds, "warmup": warmup, "include_tokenization": True,
                    "p50_ms": 1000 * _percentile(lat[key], 50), "p95_ms": 1000 * _percentile(lat[key], 95),
                    "mean_ms": 1000 * float(np.mean(lat[key])),
                    "windows_mean": float(np.mean(windows)) if windows else None,
                    "backend_used": predictors[key].backend,
                    "stages_ms": predictors[key].stats.per_item_ms(),  # warm-up items included
                    "interleaved_with": [x["key"] for x in targets if x["key"] != key]}
    return out
