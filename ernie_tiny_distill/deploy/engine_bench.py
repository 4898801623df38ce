"""Engine call cost per backend: the floor of one short call, and what a stream of new lengths costs against
the same lengths repeated, with exact-length and bucket-padded inputs (round-robin over backends, medians)."""
from __future__ import annotations

import statistics
import time
from typing import Dict, List, Sequence

import numpy as np

from ernie_tiny_distill.deploy.packing import BUCKETS, bucket_length, pack
from ernie_tiny_distill.deploy.predictor import Predictor


def _inputs(lengths: Sequence[int], vocab: int, bucketed: bool, seed: int = 0) -> List[tuple]:
    rng = np.random.default_rng(seed)
    rows = []
    for n in lengths:
        feature = {"input_ids": rng.integers(5, vocab, size=n).tolist(), "token_type_ids": [0] * n}
        rows.append(pack([feature], bucket_length(n, BUCKETS) if bucketed else n, 0))
    return rows


def _new_and_same_ms(engine, rows) -> tuple:
    """Mean ms of each input's first run (its shape new to the engine, unless a bucket made it a known one) and of
    its third run (the shape's kernels built), timed back to back so that machine load drifts out of the ratio."""
    new = same = 0.0
    for ids, types in rows:
        start = time.perf_counter()
        engine.run(ids, types)
        new += time.perf_counter() - start
        engine.run(ids, types)
        start = time.perf_counter()
        engine.run(ids, types)
        same += time.perf_counter() - start
    return 1000 * new / len(rows), 1000 * same / len(rows)


def measure(export_dir: str, backends: Sequence[str] = ("paddle", "onnx"), *, precision: str = "fp32",
            num_threads: int = 1, stream: int = 60, max_length: int = 128, rounds: int = 3,
            seed: int = 0) -> List[Dict]:
    """Per backend: floor_ms (batch 1, 16 tokens), and for a stream of `stream` lengths in 8..max_length each
    met for the first time by a fresh engine (new_shape_ms) vs the same inputs repeated (same_shape_ms),
    exact-length and bucketed. Each round loads fresh engines, backends in turn; medians over rounds."""
    rng = np.random.default_rng(seed)
    lengths = [int(n) for n in rng.permutation(np.arange(8, max_length + 1))[:stream]]
    samples: Dict[str, Dict[str, List[float]]] = {b: {} for b in backends}
    for r in range(rounds):
        for backend in backends:
            got = samples[backend]
            for bucketed in (False, True):
                predictor = Predictor(export_dir, backend=backend, precision=precision, num_threads=num_threads,
                                      buckets=BUCKETS if bucketed else None)
                vocab = int(predictor.meta.get("vocab_size") or 100)
                rows = _inputs(lengths, vocab, bucketed, seed + r)
                tag = "bucketed" if bucketed else "exact"
                new, same = _new_and_same_ms(predictor.engine, rows)
                got.setdefault(f"new_shape_ms_{tag}", []).append(new)
                got.setdefault(f"same_shape_ms_{tag}", []).append(same)
                if not bucketed:
                    short = _inputs([16], vocab, False, seed)[0]
                    for _ in range(20):
                        predictor.engine.run(*short)
                    times = []
                    for _ in range(200):
                        start = time.perf_counter()
                        predictor.engine.run(*short)
                        times.append(time.perf_counter() - start)
                    got.setdefault("floor_ms", []).append(1000 * statistics.median(times))
    rows = []
    for backend in backends:
        row = {"backend": backend, "precision": precision, "threads": num_threads, "stream": stream,
               "max_length": max_length, "rounds": rounds}
        row.update({k: statistics.median(v) for k, v in samples[backend].items()})
        for tag in ("exact", "bucketed"):
            row[f"penalty_{tag}"] = row[f"new_shape_ms_{tag}"] / row[f"same_shape_ms_{tag}"] - 1
        rows.append(row)
    return rows


def table(rows: Sequence[Dict]) -> str:
    lines = ["| backend | precision | threads | 16-token call ms | new lengths ms (exact) | repeated ms (exact) | "
             "penalty (exact) | new lengths ms (bucketed) | repeated ms (bucketed) | penalty (bucketed) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['backend']} | {r['precision']} | {r['threads']} | {r['floor_ms']:.3f} | "
                     f"{r['new_shape_ms_exact']:.3f} | {r['same_shape_ms_exact']:.3f} | "
                     f"{100 * r['penalty_exact']:+.0f}% | {r['new_shape_ms_bucketed']:.3f} | "
                     f"{r['same_shape_ms_bucketed']:.3f} | "
                     f"{100 * r['penalty_bucketed']:+.0f}% |")
    return "\n".join(lines)
