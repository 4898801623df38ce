"""One table row: the empty row (every key the report reads) and a student row aggregated over seeds."""
from __future__ import annotations

import statistics
from typing import Dict

from benchmarks import decoding as dec
from benchmarks.profile import TaskSpec


def _row_base(task: str, spec: TaskSpec, metric_name: str) -> Dict:
    return {"task": task, "dataset": spec.title, "metric_name": metric_name, "model": None, "variant": None,
            "layers": None, "hidden": None, "params": None, "nonembedding_params": None, "size_mb": None,
            "size_mb_int8": None, "metric": None, "metric_std": None, "seeds": None, "per_seed": None,
            "dev_metric": None, "pct_of_teacher": None, "latency_ms_p50": None, "latency_ms_p95": None,
            "throughput_per_s": None, "speedup_vs_teacher": None, "latency_seq_len": None,
            "latency_backend": None, "command": None, "train_commands": None}


def _student_row(t, spec, metric, model, shape, variant, runs, teacher_metric, decoding=None,
                 teacher_dev=None) -> Dict:
    row = _row_base(t, spec, metric)
    scores = [r["summary"]["test"][metric] for _, r in runs if r["summary"].get("test")]
    devs = [r["summary"]["dev"][metric] for _, r in runs]
    first = runs[0][1]["summary"]
    mean = statistics.mean(scores) if scores else None
    row.update(model=f"student {model} {shape.shape_label()}", variant=variant, layers=first.get("layers", shape.layers),
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
    if decoding:  # tagging: the decoding of these scores; the teacher's dev under the same decoding
        row.update(decoding)
        if teacher_dev is not None and first.get("decoding", dec.UNRECORDED) != decoding["decoding"]:
            row["teacher_dev_metric"] = teacher_dev
    return row
