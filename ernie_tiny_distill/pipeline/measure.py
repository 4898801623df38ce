"""The pipeline's measurements: the time estimate up front, export scores, end-to-end latency per request."""
from __future__ import annotations

import logging
import time
from typing import Dict, List, Sequence

import numpy as np

from ernie_tiny_distill.deploy import layout

logger = logging.getLogger(__name__)

# Share of a teacher training step (forward + backward) that its forward pass alone takes: the KD stage runs
# the teacher forward once per example (its outputs are cached after the first epoch).
FORWARD_SHARE = 1 / 3
# A student training step costs about this many teacher steps per unit of speed-up (backward through the
# projection and attention terms included); a rough constant, checked against the report's wall time per step.
STUDENT_STEP_SHARE = 1.5
# An assistant (a recipe's larger student, distilled first) is costed as a student of this speed-up.
ASSISTANT_SPEEDUP = 5
EXPORT_SECONDS = 60  # export, INT8 quantization and parity checks of both models (measured order of magnitude)
TIMED_STEPS = 3
LENGTH_SAMPLE = 2000  # examples encoded to measure the data's mean length in word pieces


def seconds_per_example(teacher: str, task, examples: Sequence, batch_size: int) -> float:
    """Wall seconds per training example of the teacher at the data's mean length: forward + backward on one
    batch of the user's data drawn at random (seeded), run once untimed, then the median of TIMED_STEPS timed
    runs of the same batch, per word piece of the padded batch, times the mean pieces per example.

    The same batch each time: the first run of a new input shape builds its CPU kernels, which training pays
    once per shape and then reuses. Per piece: training batches group examples of similar length, so they
    carry little padding, while a random batch is padded to its longest example."""
    from ernie_tiny_distill.data import batching
    from ernie_tiny_distill.models import build as models
    from ernie_tiny_distill.train.trainer import _to_tensors

    model = models.load_model(teacher, task.model_class, task.num_labels)
    model.train()
    picked = np.random.default_rng(0).choice(len(examples), size=min(batch_size, len(examples)), replace=False)
    features = task.encode([examples[i] for i in sorted(picked)])
    batch = _to_tensors(batching.collate(features, task.tokenizer.pad_token_id))
    per_example = []
    for k in range(TIMED_STEPS + 1):
        started = time.perf_counter()
        logits = model(input_ids=batch["input_ids"], token_type_ids=batch["token_type_ids"],
                       attention_mask=batch["attention_mask"], return_dict=True).logits
        (logits.astype("float32") ** 2).mean().backward()
        model.clear_gradients()
        if k:  # the first run builds the kernels for this shape
            per_example.append((time.perf_counter() - started) / len(features))
    sample = np.random.default_rng(1).choice(len(examples), size=min(LENGTH_SAMPLE, len(examples)), replace=False)
    mean_pieces = float(np.mean([len(f["input_ids"]) for f in task.encode([examples[i] for i in sample])]))
    # the median run: one run slowed down by another job on a shared machine does not set the estimate
    return float(np.median(per_example)) / int(batch["input_ids"].shape[1]) * mean_pieces


def estimate(per_example: float, *, teacher_steps: int, student_steps: int, control_steps: int, batch: int,
             speedup: int, student_epochs: float, evals: Dict[str, int], dev: int, test: int,
             importance_examples: int, assistant_steps: int = 0, assistant_epochs: float = 1.0) -> Dict:
    """Seconds per part from the measured teacher cost per example (a per-example model; see the constants)."""
    student_cost = STUDENT_STEP_SHARE / speedup

    def kd_seconds(steps: int, epochs: float, student_speedup: int) -> float:
        # the teacher forward once per epoch of cached outputs, the student's forward + backward every step
        return steps * batch * per_example * (FORWARD_SHARE / max(1.0, epochs) + STUDENT_STEP_SHARE / student_speedup)

    parts = {
        "teacher fine-tuning": teacher_steps * batch * per_example,
        "teacher dev evaluations": evals.get("teacher", 0) * dev * per_example * FORWARD_SHARE,
        "importance (pruning)": importance_examples * per_example,
        "distillation": kd_seconds(student_steps, student_epochs, speedup),
        "assistant": kd_seconds(assistant_steps, assistant_epochs, ASSISTANT_SPEEDUP)
        + evals.get("assistant", 0) * dev * per_example * FORWARD_SHARE / ASSISTANT_SPEEDUP,
        "control (no KD)": control_steps * batch * per_example * student_cost,
        "student dev evaluations": (evals.get("student", 0) + evals.get("control", 0)) * dev * per_example
        * FORWARD_SHARE / speedup,
        "export, test scores, latency": EXPORT_SECONDS + 3 * test * per_example * FORWARD_SHARE,
    }
    parts = {k: round(v, 1) for k, v in parts.items() if v > 0}
    return {"seconds": round(sum(parts.values()), 1), "parts": parts, "teacher_seconds_per_example": per_example,
            "method": f"the teacher's training step (median of {TIMED_STEPS} runs of a random training batch, per "
                      f"word piece, at the data's mean length) times the planned steps; a KD step counted as "
                      f"{FORWARD_SHARE:.2f} of a teacher step per epoch of cached teacher outputs + "
                      f"{STUDENT_STEP_SHARE}/{speedup} for the student (a rough model); every planned step counts, "
                      f"and training that stops on a dev plateau runs fewer, so it is an upper bound"}


def export(best_dir: str, out_dir: str, int8: bool) -> Dict:
    """Paddle Inference FP32 (+ ONNX and dynamic INT8 when asked), as tools/export.py writes them."""
    from ernie_tiny_distill.deploy.export import export_model

    meta = export_model(best_dir, out_dir, precision="int8" if int8 else "fp32")
    files = meta.get("files") or layout.file_sizes(out_dir)
    return {"dir": out_dir, "params": meta.get("params"), "layers": meta.get("layers"), "hidden": meta.get("hidden"),
            "fp32_mb": round(files.get(layout.PARAMS_FILE, 0) / 2**20, 2),
            "int8_mb": round(files[layout.INT8_ONNX_FILE] / 2**20, 2) if layout.INT8_ONNX_FILE in files else None,
            "check": meta.get("check")}


def score_export(export_dir: str, examples: Sequence, split: str, precision: str, threads: int) -> Dict:
    """The metric of what the export serves on labeled examples (tools/evaluate.py's path)."""
    from ernie_tiny_distill.deploy.predictor import Predictor, evaluate_export

    backend = "onnx" if precision == "int8" else "paddle"
    predictor = Predictor(export_dir, backend=backend, precision=precision, num_threads=threads)
    result = evaluate_export(predictor, examples, where=f"{split} split")
    return {k: v for k, v in result.items() if k != "per_class"}


def latency(targets: List[Dict], texts: List[str], count: int, threads: int) -> Dict[str, Dict]:
    """p50/p95 per request (one raw text each, tokenization to decoded answer), the exports interleaved
    round-robin over a seeded sample of the user's texts (deploy/latency_review)."""
    from ernie_tiny_distill.deploy.latency_review import measure_per_review, sample_texts

    picked = sample_texts(texts, count, seed=0)
    results = measure_per_review(targets, picked, num_threads=threads, rounds=5, warmup=3)
    kept = ("p50_ms", "p95_ms", "mean_ms", "backend", "backend_used", "precision", "threads", "reviews")
    return {key: {k: r[k] for k in kept} for key, r in results.items()}

