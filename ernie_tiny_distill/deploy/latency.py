"""Latency and throughput of an export directory as deployed (Predictor), plus a dygraph reference.

FLOPs per sequence (multiply-add = 2 FLOPs; embeddings, LayerNorm, softmax and GELU are left out, they
are memory-bound and < 2% of the total at these sizes):

    per layer:  2 * S * (4 * H^2 + 2 * H * I)      the Q, K, V, output and two FFN matmuls
              + 4 * S^2 * H                        Q @ K^T and softmax(.) @ V over all heads
    total:      L * (per layer) + head, head = 2*H*H + 2*H*C (pooler + classifier) for classification,
                2 * S * H * C for NER

with S the sequence length, L layers, H hidden size, I intermediate size, C labels. Achieved GFLOP/s =
FLOPs per sequence x sequences per second. (No "% of peak" is given: /proc/cpuinfo's clock is a base or current
clock, not the turbo clock the cores run at, so such a ratio went above 100% on this machine.)

`measure_interleaved` times several exports in one run, round-robin, so that a ratio between two models (the
teacher's p50 over a student's) is not skewed by the machine getting slower or faster between their runs.
"""
from __future__ import annotations

import os
import platform
import statistics
import time
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from ernie_tiny_distill.deploy import layout
from ernie_tiny_distill.deploy.synthetic import synthetic_features, synthetic_texts
from ernie_tiny_distill.errors import UserError
from ernie_tiny_distill.tasks.adapters import TASKS

# ---------------------------------------------------------------- FLOPs and environment


def flops_per_sequence(meta: Dict, seq_len: int) -> int:
    """FLOPs of one sequence (see the module docstring); a student pruned from its teacher has per-layer head
    counts and FFN widths (export.json `layer_heads`, `layer_intermediate`, `attention_head_size`), so each
    layer's attention width A = heads x head size replaces H in its Q, K, V, output and attention products."""
    from ernie_tiny_distill.tasks.adapters import task_class

    L, H, S = int(meta["layers"]), int(meta["hidden"]), int(seq_len)
    I = int(meta.get("intermediate") or 4 * H)  # noqa: E741 - the usual name for the FFN width
    C = len(meta.get("labels") or [2])
    heads = meta.get("layer_heads") or [None] * L
    widths = meta.get("layer_intermediate") or [I] * L
    total = 0
    for n_heads, ffn in zip(heads, widths):
        A = H if n_heads is None else int(n_heads) * int(meta["attention_head_size"])
        total += 2 * S * (4 * H * A + 2 * H * int(ffn)) + 4 * S * S * A
    return total + task_class(meta.get("task") or "classification").head_flops(S, H, C)


def _cpuinfo() -> Dict[str, str]:
    info: Dict[str, str] = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key and key not in info:
                    info[key] = value.strip()
    except OSError:
        pass
    return info


def environment(num_threads: Optional[int] = None) -> Dict:
    info = _cpuinfo()
    flags = set(info.get("flags", "").split())
    env = {
        "cpu_model": info.get("model name") or platform.processor() or "unknown",
        "cpu_vendor": info.get("vendor_id", "unknown"),
        "cpu_mhz": float(info["cpu MHz"]) if "cpu MHz" in info else None,
        "logical_cpus": os.cpu_count(),
        "isa": [f for f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16")
                if f in flags],
        "threads": num_threads,
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "python": platform.python_version(),
    }
    try:
        import paddle

        env["paddle_version"] = paddle.__version__
    except ImportError:
        pass
    try:
        import onnxruntime

        env["onnxruntime_version"] = onnxruntime.__version__
    except ImportError:
        pass
    return env


# ---------------------------------------------------------------- timing


def _timed(fn, iterations: int, warmup: int) -> List[float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iterations):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def _percentile(values: List[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def _summary(meta: Dict, seq_len: int, batch_size: int, lat: List[float], thr: List[float], threads: int) -> Dict:
    flops = flops_per_sequence(meta, seq_len)
    seqs_per_s = batch_size / statistics.median(thr)
    env = environment(threads)
    achieved = flops * seqs_per_s / 1e9
    return {
        "p50_ms": 1000 * _percentile(lat, 50),
        "p95_ms": 1000 * _percentile(lat, 95),
        "throughput_seq_per_s": seqs_per_s,
        "gflop_per_seq": flops / 1e9,
        "achieved_gflops": achieved,
        "achieved_gflops_batch1": flops / statistics.median(lat) / 1e9,
        "environment": env,
    }


def measure(export_dir: str, *, backend: str = "paddle", precision: str = "fp32", num_threads: int = 1,
            seq_len: int = 128, batch_size: int = 32, iterations: int = 20, warmup: int = 3,
            include_tokenization: bool = False, batch_iterations: Optional[int] = None) -> Dict:
    """p50/p95 latency of one sequence (batch 1) and throughput at `batch_size`, both at exactly seq_len tokens.

    Without tokenization the timed call is Predictor.logits on pre-encoded features (the model alone);
    with it, Predictor.predict on raw texts of ~seq_len pieces (tokenize + run + decode), with the NER
    word-piece cache emptied before every call (the cost for text never seen before).
    """
    from ernie_tiny_distill.deploy.predictor import Predictor

    meta = layout.read_export_metadata(export_dir)
    limit = int(meta.get("max_position_embeddings") or 512)
    if not 3 <= seq_len <= limit:
        raise UserError(f"seq_len must be between 3 and {limit}, got {seq_len}")
    predictor = Predictor(export_dir, backend=backend, precision=precision, num_threads=num_threads, buckets=None,
                          batch_size=batch_size, max_seq_length=seq_len)
    batch_iterations = batch_iterations or max(3, iterations // 4)
    if include_tokenization:
        texts = synthetic_texts(predictor.encoder, seq_len, batch_size)

        def cold(batch):  # word pieces are memoized; time the cold cost, as for text never seen before
            predictor.encoder.clear_cache()
            return predictor.predict(batch)

        lat = _timed(lambda: cold(texts[:1]), iterations, warmup)
        thr = _timed(lambda: cold(texts), batch_iterations, 1)
    else:
        features = synthetic_features(predictor.encoder, seq_len, batch_size)
        lat = _timed(lambda: predictor.logits(features[:1]), iterations, warmup)
        thr = _timed(lambda: predictor.logits(features), batch_iterations, 1)
    result = {"model": os.path.abspath(export_dir), "backend": backend, "precision": precision,
              "threads": num_threads, "seq_len": seq_len, "batch_size": batch_size, "iterations": iterations,
              "warmup": warmup, "include_tokenization": include_tokenization}
    result.update(_summary(meta, seq_len, batch_size, lat, thr, num_threads))
    return result


def measure_dygraph(model_dir: str, *, num_threads: int = 1, seq_len: int = 128, batch_size: int = 32,
                    iterations: int = 20, warmup: int = 3, batch_iterations: Optional[int] = None) -> Dict:
    """The same timings for the training-time checkpoint in Paddle dygraph (eager, no_grad): the reference."""
    import paddle
    from paddle.base import core

    from ernie_tiny_distill.deploy.export import LogitsOnly, model_class_for
    from ernie_tiny_distill.models import build as models

    path = models.resolve(model_dir)
    task_meta = models.read_task_metadata(path)
    if task_meta is None or task_meta.get("task") not in TASKS:
        raise UserError(f"{model_dir} is not a task model (no classification/NER task.json)")
    model = models.load_model(path, model_class_for(task_meta), num_labels=len(task_meta["labels"]))
    model.eval()
    wrapped = LogitsOnly(model)
    core.set_num_threads(int(num_threads))
    config = models.encoder_of(model).config
    meta = {"task": task_meta["task"], "labels": task_meta["labels"], "layers": config.num_hidden_layers,
            "hidden": config.hidden_size, "intermediate": config.intermediate_size}
    rng = np.random.default_rng(0)
    ids = paddle.to_tensor(rng.integers(5, config.vocab_size, size=(batch_size, seq_len)).astype("int64"))
    types = paddle.zeros_like(ids)
    one, one_types = ids[:1], types[:1]

    def run(a, b):
        with paddle.no_grad():
            wrapped(a, b).numpy()

    batch_iterations = batch_iterations or max(3, iterations // 4)
    lat = _timed(lambda: run(one, one_types), iterations, warmup)
    thr = _timed(lambda: run(ids, types), batch_iterations, 1)
    result = {"model": os.path.abspath(path), "backend": "dygraph", "precision": "fp32", "threads": num_threads,
              "seq_len": seq_len, "batch_size": batch_size, "iterations": iterations, "warmup": warmup,
              "include_tokenization": False}
    result.update(_summary(meta, seq_len, batch_size, lat, thr, num_threads))
    return result


# ---------------------------------------------------------------- tables


TABLE_COLUMNS = ("backend", "precision", "threads", "seq_len", "tok", "p50 ms", "p95 ms", "seq/s @batch",
                 "GFLOP/seq", "GFLOP/s @batch")


def table_header(with_model: bool = False) -> str:
    cols = (("model",) if with_model else ()) + TABLE_COLUMNS
    return "| " + " | ".join(cols) + " |\n" + "|" + "---|" * len(cols)


def table_row(r: Dict, with_model: bool = False) -> str:
    head = [r.get("label", "?")] if with_model else []
    if "error" in r:
        cells = [r.get("backend", "?"), r.get("precision", "?"), str(r.get("threads", "?")),
                 str(r.get("seq_len", "?")), "", "error: " + r["error"].splitlines()[0]] + [""] * 4
    else:
        cells = [r["backend"], r["precision"], str(r["threads"]), str(r["seq_len"]),
                 "yes" if r.get("include_tokenization") else "no", f"{r['p50_ms']:.2f}", f"{r['p95_ms']:.2f}",
                 f"{r['throughput_seq_per_s']:.1f}", f"{r['gflop_per_seq']:.3f}", f"{r['achieved_gflops']:.1f}"]
    return "| " + " | ".join(head + cells) + " |"


def markdown_table(results: List[Dict]) -> str:
    with_model = any("label" in r for r in results)
    return "\n".join([table_header(with_model)] + [table_row(r, with_model) for r in results])


# ---------------------------------------------------------------- which backends an export can run


SUPPORTED = {("paddle", "fp32"), ("paddle", "bf16"), ("onnx", "fp32"), ("onnx", "int8"), ("dygraph", "fp32")}
NEEDS = {("onnx", "fp32"): "model.onnx", ("onnx", "int8"): "model.int8.onnx"}
HOW = {"model.onnx": "tools/export.py --onnx", "model.int8.onnx": "tools/export.py --int8"}


def runnable_pairs(export_dir: str, backends, precisions) -> Tuple[List[Tuple[str, str]], List[str]]:
    """The supported (backend, precision) pairs whose files the export has, and one line per backend skipped for
    a missing file (unsupported pairs, e.g. Paddle INT8 or ONNX bf16, are left out silently)."""
    pairs, missing = [], {}
    for backend in backends:
        for precision in precisions:
            if (backend, precision) not in SUPPORTED:
                continue
            need = NEEDS.get((backend, precision))
            if need and not os.path.isfile(os.path.join(export_dir, need)):
                missing.setdefault(backend, []).append((precision, need))
                continue
            pairs.append((backend, precision))
    skipped = [f"skipped {backend} {'/'.join(p for p, _ in items)}: {export_dir} has no "
               f"{' or '.join(n for _, n in items)} (add {'it' if len(items) == 1 else 'them'} with "
               f"{' / '.join(HOW[n] for _, n in items)})" for backend, items in missing.items()]
    return pairs, skipped


def pairs_or_error(export_dir: str, backends, precisions, say=print) -> List[Tuple[str, str]]:
    """runnable_pairs, saying each skipped backend in one line; an error (one line) when nothing is left."""
    pairs, skipped = runnable_pairs(export_dir, backends, precisions)
    if not pairs:
        why = "; ".join(skipped) or f"no supported pair among {list(backends)} x {list(precisions)}"
        raise UserError(f"--backends/--precisions: nothing to time: {why}")
    for line in skipped:
        say(line)
    return pairs


# ---------------------------------------------------------------- grids (tools/benchmark.py latency)


def run_grid(export_dir: str, *, seq_lens=(64, 128, 256), threads=(1, 2), backends=("paddle", "onnx"),
             precisions=("fp32", "int8"), pairs=None, tokenization=(False,), batch_size: int = 32,
             iterations: int = 20, warmup: int = 3, dygraph_model: Optional[str] = None, log=None) -> List[Dict]:
    """Every (backend, precision) pair x threads x seq_len x tokenization; a failure is an error row.

    `pairs` defaults to `runnable_pairs(export_dir, backends, precisions)` (a pair whose file the export lacks is
    left out). backend "dygraph" times the checkpoint the export came from (export.json "source", or
    `dygraph_model`), FP32 without tokenization.
    """
    if pairs is None:
        pairs = runnable_pairs(export_dir, backends, precisions)[0]
    results = []
    for backend, precision in pairs:
        for n in threads:
            for seq_len in seq_lens:
                for tok in (tokenization if backend != "dygraph" else (False,)):
                    row = {"backend": backend, "precision": precision, "threads": n, "seq_len": seq_len,
                           "include_tokenization": tok}
                    try:
                        if backend == "dygraph":
                            source = dygraph_model or layout.read_export_metadata(export_dir).get("source")
                            row = measure_dygraph(source, num_threads=n, seq_len=seq_len,
                                                  batch_size=batch_size, iterations=iterations, warmup=warmup)
                        else:
                            row = measure(export_dir, backend=backend, precision=precision, num_threads=n,
                                          seq_len=seq_len, batch_size=batch_size, iterations=iterations,
                                          warmup=warmup, include_tokenization=tok)
                    except UserError as e:
                        row["error"] = str(e)
                    results.append(row)
                    if log:
                        log(row)
    return results


# ---------------------------------------------------------------- interleaved (teacher and students, one run)


def interleave(runners: Dict[str, Callable[[], object]], *, rounds: int, per_round: int, warmup: int,
               timer: Callable[[], float] = time.perf_counter) -> Dict[str, List[float]]:
    """Time every runner round-robin: each round runs `per_round` timed calls of each model in turn, the order
    rotating by one model per round; returns every sample (seconds) per model. Warm-up calls come first."""
    names = list(runners)
    for name in names:
        for _ in range(warmup):
            runners[name]()
    samples: Dict[str, List[float]] = {name: [] for name in names}
    for r in range(rounds):
        k = r % len(names) if names else 0
        for name in names[k:] + names[:k]:
            for _ in range(per_round):
                start = timer()
                runners[name]()
                samples[name].append(timer() - start)
    return samples


def measure_interleaved(targets: List[Dict], *, num_threads: int = 1, batch_size: int = 32, iterations: int = 100,
                        warmup: int = 10, rounds: int = 5, batch_iterations: Optional[int] = None) -> Dict[str, Dict]:
    """Batch-1 p50/p95 and batch throughput of several exports measured in one interleaved run.

    targets: dicts with key, export_dir, backend, precision, seq_len. `iterations` batch-1 samples per model
    (spread over `rounds` rounds), p50/p95 over all of them; throughput likewise. Returns {key: result}.
    """
    from ernie_tiny_distill.deploy.predictor import Predictor

    batch_iterations = batch_iterations or max(3, iterations // 4)
    one, full, metas = {}, {}, {}
    for t in targets:
        predictor = Predictor(t["export_dir"], backend=t["backend"], precision=t["precision"], buckets=None,
                              num_threads=num_threads, batch_size=batch_size, max_seq_length=t["seq_len"])
        features = synthetic_features(predictor.encoder, t["seq_len"], batch_size)
        one[t["key"]] = (lambda p, f: lambda: p.logits(f[:1]))(predictor, features)
        full[t["key"]] = (lambda p, f: lambda: p.logits(f))(predictor, features)
        metas[t["key"]] = layout.read_export_metadata(t["export_dir"])
    per_round = max(1, -(-iterations // rounds))
    lat = interleave(one, rounds=rounds, per_round=per_round, warmup=warmup)
    thr = interleave(full, rounds=rounds, per_round=max(1, -(-batch_iterations // rounds)), warmup=1)
    out = {}
    for t in targets:
        key = t["key"]
        result = {"model": os.path.abspath(t["export_dir"]), "backend": t["backend"], "precision": t["precision"],
                  "threads": num_threads, "seq_len": t["seq_len"], "batch_size": batch_size,
                  "iterations": len(lat[key]), "warmup": warmup, "rounds": rounds, "include_tokenization": False,
                  "samples": len(lat[key]), "interleaved_with": [x["key"] for x in targets if x["key"] != key]}
        result.update(_summary(metas[key], t["seq_len"], batch_size, lat[key], thr[key], num_threads))
        out[key] = result
    return out


def interleaved_grid(pairs: Dict[str, List[Tuple[str, str]]], *, seq_lens, threads, rounds: int = 5,
                     batch_size: int = 32, iterations: int = 20, warmup: int = 3) -> List[Dict]:
    """One interleaved run per (threads, seq_len) over every export x its (backend, precision) pairs; rows are
    labelled with the export directory's name."""
    rows = []
    for n in threads:
        for seq in seq_lens:
            targets = [{"key": f"{os.path.basename(os.path.normpath(m))} {b} {p}", "export_dir": m, "backend": b,
                        "precision": p, "seq_len": seq} for m, ps in pairs.items() for b, p in ps]
            results = measure_interleaved(targets, num_threads=n, batch_size=batch_size, iterations=iterations,
                                          warmup=warmup, rounds=rounds)
            rows += [dict(r, label=key.rsplit(" ", 2)[0]) for key, r in results.items()]
    return rows
