"""The end-to-end speed goals: each goal's value from a benchmarks/speed.py result, met or missed, as markdown."""
from __future__ import annotations

import json
import os
from typing import Dict, List, Optional

RESULTS_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "speed_results.json")
TASK_NAMES = {"imdb": "IMDB review (128 tokens, head_tail)", "conll": "CoNLL-2003 sentence"}

# (key, goal in words, {task: target}, "min" = at least the target, "max" = at most)
GOALS = (
    ("e2e_fp32", "end-to-end speed-up vs the teacher's end to end, B' FP32", {"imdb": 9.0, "conll": 9.0}, "min"),
    ("e2e_int8", "end-to-end speed-up vs the teacher's end to end, B' INT8", {"imdb": 25.0, "conll": 30.0}, "min"),
    ("outside_engine_ms", "everything but the engine call, p50 ms per request (B' FP32)",
     {"imdb": 0.3, "conll": 0.1}, "max"),
    ("engine_16_ms", "B' engine call at 16 tokens, FP32, ms (the backend auto chose)", {"imdb": 0.5, "conll": 0.5},
     "max"),
    ("stream_penalty_student", "stream of varying lengths vs the same shapes repeated, B' (as deployed)",
     {"imdb": 0.10, "conll": 0.10}, "max"),
    ("stream_penalty_teacher", "stream of varying lengths vs the same shapes repeated, teacher (as deployed)",
     {"imdb": 0.10, "conll": 0.10}, "max"),
    ("serve_share", "HTTP server at concurrency 32, 2 worker processes: requests/s vs offline batch texts/s (B' FP32)",
     {"imdb": 0.80, "conll": 0.80}, "min"),
    ("serve_tail", "HTTP server at concurrency 32, 2 worker processes: p99 / p50", {"imdb": 3.0, "conll": 3.0}, "max"),
)
PERCENT_KEYS = ("stream_penalty_student", "stream_penalty_teacher", "serve_share")


def _deployed_penalty(engine_rows: List[Dict], backend: str) -> Optional[float]:
    """The stream penalty of `backend` as a Predictor deploys it: bucketed for Paddle, exact lengths for ONNX."""
    row = next((r for r in engine_rows if r["backend"] == backend), None)
    if row is None:
        return None
    return row["penalty_bucketed" if backend == "paddle" else "penalty_exact"]


def goal_values(task_result: Dict) -> Dict[str, Optional[float]]:
    """Each goal's measured value for one task's result (None when that part was not measured)."""
    per = task_result.get("per_request") or {}
    teacher, fp32, int8 = (per.get(k) for k in ("teacher fp32", "student fp32", "student int8"))
    values: Dict[str, Optional[float]] = dict.fromkeys(g[0] for g in GOALS)
    if teacher and fp32:
        values["e2e_fp32"] = teacher["p50_ms"] / fp32["p50_ms"]
        values["outside_engine_ms"] = fp32.get("outside_engine_p50_ms")
    if teacher and int8:
        values["e2e_int8"] = teacher["p50_ms"] / int8["p50_ms"]
    engine = task_result.get("engine") or {}
    student_backend = fp32["backend_used"] if fp32 else None
    if engine.get("student") and student_backend:
        row = next((r for r in engine["student"] if r["backend"] == student_backend), None)
        values["engine_16_ms"] = row["floor_ms"] if row else None
        values["stream_penalty_student"] = _deployed_penalty(engine["student"], student_backend)
    if engine.get("teacher") and teacher:
        values["stream_penalty_teacher"] = _deployed_penalty(engine["teacher"], teacher["backend_used"])
    top = max(task_result.get("serve") or [], key=lambda r: r["concurrency"], default=None)
    if top is not None and top["concurrency"] == 32:
        values["serve_share"] = top["share"]
        values["serve_tail"] = top["p99_ms"] / top["p50_ms"]
    return values


def goal_rows(results: Dict) -> List[Dict]:
    """One row per task and goal: {task, key, goal, target, direction, value, met} (met None: not measured)."""
    rows = []
    for task, task_result in results.get("tasks", {}).items():
        values = goal_values(task_result)
        for key, words, targets, direction in GOALS:
            value = values[key]
            met = None if value is None else (value >= targets[task] if direction == "min" else value <= targets[task])
            rows.append({"task": task, "key": key, "goal": words, "target": targets[task], "direction": direction,
                         "value": value, "met": met})
    return rows


def _fmt(key: str, value: Optional[float]) -> str:
    if value is None:
        return "not measured"
    if key in PERCENT_KEYS:
        return f"{100 * value:+.0f}%" if key.startswith("stream") else f"{100 * value:.0f}%"
    if key.startswith("e2e") or key == "serve_tail":
        return f"{value:.1f}x"
    return f"{value:.3f} ms"


def goals_table(results: Dict) -> List[str]:
    """The goals table: goal, task, target, measured, met/missed."""
    lines = ["| goal | task | target | measured | |", "|---|---|---|---|---|"]
    for r in goal_rows(results):
        sign = "≥" if r["direction"] == "min" else "≤"
        verdict = {True: "met", False: "missed", None: "—"}[r["met"]]
        lines.append(f"| {r['goal']} | {r['task']} | {sign} {_fmt(r['key'], r['target'])} | "
                     f"{_fmt(r['key'], r['value'])} | {verdict} |")
    return lines


def per_request_table(results: Dict) -> List[str]:
    """Per task and model: end-to-end p50/p95 per request (tokenization included), its stages, the model-only
    share, and the speed-ups over the teacher end to end and model only."""
    lines = [("| task | model | backend | end-to-end p50 ms | p95 ms | outside the engine, p50 ms | engine ms (mean) "
              "| end-to-end speed-up | model-only speed-up | CPU ms per request, p50 | speed-up in CPU time "
              "| cold: end-to-end p50 ms | cold: outside the engine | cold: end-to-end speed-up |"),
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for task, task_result in results.get("tasks", {}).items():
        per = task_result.get("per_request") or {}
        cold = task_result.get("per_request_cold") or {}
        teacher = per.get("teacher fp32")
        for key, r in per.items():
            engine = _engine_ms(r)
            e2e = f"{teacher['p50_ms'] / r['p50_ms']:.1f}x" if teacher else "—"
            model = f"{_engine_ms(teacher) / engine:.1f}x" if teacher and engine else "—"
            cpu = r.get("cpu_p50_ms")
            cpu_cells = (f"{cpu:.2f} | " + (f"{teacher['cpu_p50_ms'] / cpu:.1f}x" if teacher and cpu else "—")
                         if cpu else "— | —")
            lines.append(f"| {task} | {key} | {r['backend_used']} | {r['p50_ms']:.2f} | {r['p95_ms']:.2f} | "
                         f"{r['outside_engine_p50_ms']:.3f} | {engine:.2f} | {e2e} | {model} | {cpu_cells} | "
                         f"{_cold_cells(cold, key)} |")
    return lines


def _engine_ms(row: Dict) -> float:
    """Mean engine milliseconds per request: timed in the interleaved rows (older results: the stage profile)."""
    return row.get("engine_mean_ms", row["stages_ms"]["engine"])


def _cold_cells(cold: Dict, key: str) -> str:
    """The same model with its word memos emptied before each request: p50, outside the engine, speed-up."""
    r, teacher = cold.get(key), cold.get("teacher fp32")
    if not r:
        return "— | — | —"
    e2e = f"{teacher['p50_ms'] / r['p50_ms']:.1f}x" if teacher else "—"
    return f"{r['p50_ms']:.2f} | {r['outside_engine_p50_ms']:.3f} | {e2e}"


SERVE_LAYOUTS = (("serve", "2 processes x 1 worker thread"), ("serve_threads", "1 process x 2 worker threads"))


def serve_table(results: Dict) -> List[str]:
    """The HTTP server rows (B' FP32, real test texts) of each measured layout, beside the offline throughput."""
    lines = ["| task | server | concurrency | requests/s | p50 ms | p99 ms | mean batch | offline texts/s | "
             "% of offline |", "|---|---|---|---|---|---|---|---|---|"]
    for task, task_result in results.get("tasks", {}).items():
        for key, layout in SERVE_LAYOUTS:
            for r in task_result.get(key) or []:
                lines.append(f"| {task} | {layout} | {r['concurrency']} | {r['requests_per_s']:.0f} | "
                             f"{r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['mean_batch']:.1f} | "
                             f"{r['offline_per_s']:.0f} | {100 * r['share']:.0f} |")
    return lines if len(lines) > 2 else []


def _memo_size(results: Dict) -> str:
    memos = {r.get("memo") for t in results.get("tasks", {}).values() for r in (t.get("per_request") or {}).values()}
    sizes = sorted(m.split()[1] for m in memos if m and m.startswith("after "))
    return "/".join(sizes) if sizes else "no"


def _serve_requests(results: Dict) -> str:
    counts = {r["requests"] for t in results.get("tasks", {}).values() for key, _ in SERVE_LAYOUTS
              for r in t.get(key) or []}
    return "/".join(str(n) for n in sorted(counts))


def render_section(results: Dict) -> List[str]:
    """The speed section of docs/benchmarks.md: the goals, then per-request figures, end to end first."""
    env = results.get("environment", {})
    load = results.get("load_average_1min", {})
    lines = ["## Speed, end to end", "",
             f"Measured by `{results.get('command', 'python -m benchmarks.speed --task all')}` (recorded here by "
             "`python -m benchmarks.speed_record OUT/speed.json`, or by the same command with `--record`) on "
             f"{env.get('cpu_model', 'an unknown CPU')} ({env.get('logical_cpus')} CPUs), Paddle "
             f"{env.get('paddle_version')}, ONNX Runtime {env.get('onnxruntime_version')}, 1 thread per engine; "
             f"1-min load average {load.get('start')} at the start and {load.get('end')} at the end (the machine "
             "is shared, so ratios are measured interleaved). One real test text per request (IMDB test reviews "
             "read at 128 tokens head_tail, CoNLL-2003 test sentences as raw text): tokenization, packing, "
             "the engine and decoding all count. B' = 2 layers x 128 born from the teacher, A'3 = 3 layers x 384. "
             "The goals and the first columns are the steady state of a running server: each model first serves "
             f"{_memo_size(results)} training texts (untimed), which fill its word memos as earlier traffic "
             "would, then reads each test text once. The cold columns time the same texts with the word memos "
             "emptied before every request, as if each word were new.",
             "", *goals_table(results), "", *per_request_table(results), ""]
    serving = serve_table(results)
    if serving:
        lines += ["The HTTP server (`tools/serve.py`, B' FP32) driven by closed-loop clients on kept-alive "
                  "connections (the clients run on the same 2 cores), each request one real test text, "
                  f"{_serve_requests(results)} requests per row; the offline figure is the same model's batch-32 "
                  "throughput in the same run. A process per core serves more than threads of one process, which "
                  "share one interpreter lock (`--processes`).", "", *serving, ""]
    return lines


def load_results(path: str = RESULTS_FILE) -> Optional[Dict]:
    """The committed speed results, or None when there are none."""
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


# per-request keys of the students as the README names them: ((layers, hidden), kind of README row)
README_KEYS = {"student fp32": ((2, 128), "student"), "student int8": ((2, 128), "int8"),
               "A'3 fp32": ((3, 384), "student")}


def end_to_end_speedups(results: Optional[Dict]) -> Dict[tuple, float]:
    """{(task, (layers, hidden), "student"|"int8"): teacher p50 / model p50 end to end} for the README."""
    out: Dict[tuple, float] = {}
    for task, task_result in (results or {}).get("tasks", {}).items():
        per = task_result.get("per_request") or {}
        teacher = per.get("teacher fp32")
        for key, (shape, kind) in README_KEYS.items():
            if teacher and per.get(key):
                out[(task, shape, kind)] = teacher["p50_ms"] / per[key]["p50_ms"]
    return out
