"""End-to-end speed of B' (and A'3) vs the teacher, per request, per engine call and served, with the goals met or
missed.

    python -m benchmarks.speed --task imdb|conll|all --out DIR [--work DIR] [--requests 300] [--record]

It makes the exports it needs when they are absent (under --work, default DIR/exports): a MiniLM teacher
fine-tuned briefly (train.max_steps 20: the metric is irrelevant for timing, the shapes are real), B' born from it
(every_k 3, 4 heads, FFN 512, hidden 128) and A'3 (every_k 2, 4 heads, FFN 384), each exported FP32 + ONNX + INT8
(tools/export.py --onnx --int8). Then, on real test texts (IMDB test reviews, CoNLL-2003 test sentences), one
thread per engine: per request (teacher, B' FP32, B' INT8, A'3 FP32, interleaved), the engine (16-token call,
a stream of new lengths vs the same shapes repeated, B' and teacher) and the HTTP server (concurrency 1/8/32, 2
workers as 2 processes and as 2 threads of one process, B' FP32; the goals read the 2-process rows). Writes
DIR/speed.json and DIR/speed.md (the goals table first); the 1-min load average is recorded at the start and the
end.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Callable, Dict, List, Optional

import numpy as np

from benchmarks import speed_goals

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TASK = {"imdb": ("classification", "configs/imdb_teacher.yaml"), "conll": ("ner", "configs/conll_teacher.yaml")}
# the students' shapes: B' = the 10x recipe (configs/recipes/*_10x.yaml), A'3 = 3 layers x 384
STUDENTS = {
    "bprime": ["model.student.every_k=3", "model.student.num_heads=4", "model.student.intermediate_size=512",
               "model.student.hidden_size=128"],
    "a3": ["model.student.every_k=2", "model.student.num_heads=4", "model.student.intermediate_size=384"],
}
# requests per concurrency of the HTTP server rows: a few seconds each, so that a row is not decided by the
# first few hundred milliseconds of a run (300 requests at concurrency 32 last about half a second)
SERVE_REQUESTS = 2000
# training texts served before the steady-state rows: enough for the word memos to hold the common vocabulary
MEMO_TEXTS = 2000
BRIEF = ["train.max_steps=20", "train.eval_every=20", "train.batch_size=16", "data.max_train_examples=640",
         "data.max_test_examples=0", "train.num_threads=1"]


def _run(cmd: List[str], log: Callable[[str], None]) -> None:
    log("$ " + " ".join(cmd))
    done = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{cmd[1]} failed:\n{done.stderr[-2000:]}")


def make_exports(task: str, work: str, datasets: str, log: Callable[[str], None] = print) -> Dict[str, str]:
    """{teacher, bprime, a3}: export directories under work/task (each made only when absent)."""
    _, config = TASK[task]
    base = os.path.join(work, task)
    data = [f"data.path={os.path.join(datasets, 'aclImdb_v1.tar.gz' if task == 'imdb' else 'conll2003')}",
            f"data.cache_dir={os.path.join(work, 'cache')}",
            "data.dev_size=64" if task == "imdb" else "data.max_dev_examples=64"]
    runs = {"teacher": ["stage=teacher"]}
    teacher_run = os.path.join(base, "teacher_run")
    for name, shape in STUDENTS.items():
        runs[name] = ["stage=task", f"model.teacher={teacher_run}", "model.student.init=teacher_pruned",
                      "data.unlabeled=null", "distill.cache_teacher=false",
                      "distill.allow_weak_teacher=true", *shape]
    exports = {}
    for name, overrides in runs.items():
        run_dir, export_dir = os.path.join(base, f"{name}_run"), os.path.join(base, name)
        if not os.path.isfile(os.path.join(export_dir, "model.int8.onnx")):
            if not os.path.isfile(os.path.join(run_dir, "summary.json")):
                _run([sys.executable, "tools/train.py", "--config", config, f"output_dir={run_dir}", *BRIEF, *data,
                      *overrides], log)
            _run([sys.executable, "tools/export.py", "--model", os.path.join(run_dir, "best"), "--out", export_dir,
                  "--onnx", "--int8", "--threads", "1"], log)
        exports[name] = export_dir
    return exports


def task_texts(task: str, datasets: str, split: str = "test") -> List[str]:
    """Real texts of a split ("train" or "test"): IMDB reviews from the tarball, or CoNLL-2003 sentences (words
    joined by spaces)."""
    from ernie_tiny_distill.data import readers

    if task == "imdb":
        return [ex.text for ex in readers.read_imdb(os.path.join(datasets, "aclImdb_v1.tar.gz"), split)]
    return [" ".join(s.tokens) for s in readers.read_conll(os.path.join(datasets, "conll2003", f"{split}.txt"))]


def test_texts(task: str, datasets: str) -> List[str]:
    """Real test texts (task_texts of the test split)."""
    return task_texts(task, datasets, "test")


def memo_texts(task: str, datasets: str, count: int = MEMO_TEXTS) -> List[str]:
    """`count` training texts (seeded sample) that fill the word memos before the steady-state rows: traffic a
    running server has already served, never the measured test texts."""
    from ernie_tiny_distill.deploy import latency_review

    return latency_review.sample_texts(task_texts(task, datasets, "train"), count)


class TimedEngine:
    """A predictor's engine that counts the seconds of its calls. The per-stage profile (Predictor(profile=True))
    times six blocks of every request, which costs ~10 µs a request on this path; the rows time the engine
    alone, so "outside the engine" is what a request costs as served, not with the profiler's clock reads."""

    def __init__(self, engine):
        self.engine, self.seconds = engine, 0.0

    def run(self, input_ids, token_type_ids):
        start = time.perf_counter()
        try:
            return self.engine.run(input_ids, token_type_ids)
        finally:
            self.seconds += time.perf_counter() - start

    def __getattr__(self, name):
        return getattr(self.engine, name)


def _predictor(target: Dict, served_before: Optional[List[str]], profile: bool):
    from ernie_tiny_distill.deploy.predictor import Predictor, Stats

    predictor = Predictor(target["export_dir"], backend=target["backend"], precision=target["precision"],
                          num_threads=1, profile=profile)
    if served_before is not None:
        for text in served_before:
            predictor.predict([text])
        if profile:
            predictor.stats = Stats()
    return predictor


def stage_profile(target: Dict, texts: List[str], served_before: Optional[List[str]]) -> Dict[str, float]:
    """Milliseconds per request of each stage (tokenize, pack, engine, decode), from a separate profiled pass
    over the same texts with the same memo state (kept out of the timed rows: the profile has a cost)."""
    from ernie_tiny_distill.deploy import latency_review

    predictor = _predictor(target, served_before, profile=True)
    run = latency_review.review_runner(predictor, cold=served_before is None)
    for text in texts:
        run(text)
    return predictor.stats.per_item_ms()


def per_request(targets: List[Dict], texts: List[str], rounds: int = 5, warmup: int = 3,
                served_before: Optional[List[str]] = None) -> Dict[str, Dict]:
    """latency_review.measure_per_review (interleaved, one text per request, the whole request path), plus per
    model the p50 of each request's time outside the engine call (its wall time minus its engine seconds).

    served_before None: cold, every word memo emptied before each request. Else steady state: each predictor
    first serves `served_before` (untimed; it also builds the engine's kernels), its memos then keep what each
    request adds, and every measured text is timed on its first reading."""
    from ernie_tiny_distill.deploy import latency_review

    runners, engine_s, cpu_s, predictors = {}, {}, {}, {}
    for t in targets:
        predictor = _predictor(t, served_before, profile=False)
        predictor.engine = engine = TimedEngine(predictor.engine)
        run = latency_review.review_runner(predictor, cold=served_before is None)
        spent: List[float] = []
        cpu: List[float] = []

        def timed(text, run=run, engine=engine, spent=spent, cpu=cpu):
            before, cpu_before = engine.seconds, time.process_time()
            out = run(text)
            cpu.append(time.process_time() - cpu_before)
            spent.append(engine.seconds - before)
            return out

        runners[t["key"]], engine_s[t["key"]], cpu_s[t["key"]], predictors[t["key"]] = timed, spent, cpu, predictor
    if served_before is not None:
        warmup = 0  # a warm-up text would be read twice: the memos are warm already
    wall = latency_review.interleave_items(runners, list(texts), rounds=rounds, warmup=warmup)
    out = {}
    for t in targets:
        key, predictor = t["key"], predictors[t["key"]]
        times = np.asarray(wall[key])
        outside = times - np.asarray(engine_s[key][warmup:])
        out[key] = {"model": t["name"], "backend": t["backend"], "backend_used": predictor.backend,
                    "precision": t["precision"], "requests": len(times), "rounds": rounds,
                    "memo": "cold" if served_before is None else f"after {len(served_before)} other texts",
                    "p50_ms": 1000 * float(np.percentile(times, 50)), "p95_ms": 1000 * float(np.percentile(times, 95)),
                    "mean_ms": 1000 * float(times.mean()),
                    "outside_engine_p50_ms": 1000 * float(np.percentile(outside, 50)),
                    "engine_mean_ms": 1000 * float(np.mean(engine_s[key][warmup:])),  # interleaved, as the rest
                    # CPU seconds of the process per request: what the request costs, without the waits for a
                    # core that a shared machine adds to wall time
                    "cpu_p50_ms": 1000 * float(np.percentile(cpu_s[key][warmup:], 50)),
                    "stages_ms": stage_profile(t, list(texts), served_before)}
    return out


def measure_task(task: str, exports: Dict[str, str], texts: List[str], requests: int,
                 served_before: List[str], log: Callable[[str], None] = print) -> Dict:
    from ernie_tiny_distill.deploy import engine_bench, latency_review, load_test

    sample = latency_review.sample_texts(texts, requests)
    targets = [{"key": "teacher fp32", "name": "teacher", "backend": "auto", "precision": "fp32"},
               {"key": "student fp32", "name": "bprime", "backend": "auto", "precision": "fp32"},
               {"key": "student int8", "name": "bprime", "backend": "onnx", "precision": "int8"},
               {"key": "A'3 fp32", "name": "a3", "backend": "auto", "precision": "fp32"}]
    for t in targets:
        t["export_dir"] = exports[t["name"]]
    log(f"{task}: per request, {len(sample)} test texts, 4 models interleaved, after {len(served_before)} "
        "training texts (steady state), then with the word memos emptied before each request (cold)")
    result = {"per_request": per_request(targets, sample, served_before=served_before),
              "per_request_cold": per_request(targets, sample)}
    log(f"{task}: engine calls")
    result["engine"] = {role: engine_bench.measure(exports[name], ("paddle", "onnx"), stream=40, rounds=2)
                        for role, name in (("student", "bprime"), ("teacher", "teacher"))}
    log(f"{task}: HTTP server")
    for key, processes, workers in (("serve", 2, 1), ("serve_threads", 1, 2)):
        result[key] = load_test.run(exports["bprime"], sample, concurrencies=(1, 8, 32), requests=SERVE_REQUESTS,
                                    processes=processes, workers=workers, threads=1, backend="auto", log=log)
    return result


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--task", choices=["imdb", "conll", "all"], default="all")
    ap.add_argument("--out", required=True, help="directory for speed.json and speed.md")
    ap.add_argument("--work", help="directory of the exports (made when absent; default OUT/exports)")
    ap.add_argument("--datasets", default=os.path.join(ROOT, "..", "shared", "datasets"))
    ap.add_argument("--requests", type=int, default=300, help="test texts per row (one request each)")
    ap.add_argument("--record", action="store_true", help="also record the result as the committed one "
                    "(benchmarks/speed_results.json, the speed section of docs/benchmarks.md, the README table)")
    args = ap.parse_args(argv)
    from ernie_tiny_distill.cli import quiet_paddlenlp, set_threads
    from ernie_tiny_distill.deploy import latency

    set_threads(1)
    quiet_paddlenlp()
    os.makedirs(args.out, exist_ok=True)
    work = args.work or os.path.join(args.out, "exports")
    say = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    tasks = ["imdb", "conll"] if args.task == "all" else [args.task]
    exports = {t: make_exports(t, work, args.datasets, say) for t in tasks}
    env = latency.environment(1)
    results = {"command": f"python -m benchmarks.speed --task {args.task} --requests {args.requests}",
               "environment": env, "load_average_1min": {"start": round(env["load_average_1min"], 2)},
               "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "tasks": {}}
    for t in tasks:
        results["tasks"][t] = measure_task(t, exports[t], test_texts(t, args.datasets), args.requests,
                                           memo_texts(t, args.datasets), say)
    results["load_average_1min"]["end"] = round(os.getloadavg()[0], 2)
    results["goals"] = speed_goals.goal_rows(results)
    with open(os.path.join(args.out, "speed.json"), "w", encoding="utf-8") as f:
        json.dump(results, f, indent=2)
    text = "\n".join(speed_goals.render_section(results))
    with open(os.path.join(args.out, "speed.md"), "w", encoding="utf-8") as f:
        f.write(text)
    print(text)
    if args.record:
        from benchmarks.speed_record import record

        say(f"recorded: {record(results)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
