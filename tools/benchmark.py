"""Time an export as deployed: p50/p95 ms at batch 1, sequences/s and GFLOP/s at a batch, one markdown table.

    python tools/benchmark.py latency --model EXPORT_DIR --seq-lens 64 128 256 --threads 1 2 \\
        --backends paddle onnx dygraph --precisions fp32 bf16 int8 [--json out.json]
    python tools/benchmark.py latency --interleave --model TEACHER_EXPORT --model STUDENT_EXPORT ... \\
        --backends paddle --precisions fp32 --seq-lens 128 --threads 1 --rounds 5

    python tools/benchmark.py per-request --teacher TEACHER_EXPORT --student STUDENT_EXPORT \
        --conll ../shared/datasets/conll2003/test.txt [--texts FILE] [--count 200]
    python tools/benchmark.py engine --model EXPORT_DIR [--backends paddle onnx] [--threads 1]
    python tools/benchmark.py serve --model EXPORT_DIR --conll ../shared/datasets/conll2003/test.txt \
        [--texts FILE] [--concurrency 1 8 32] [--requests 300] [--workers 2]

`per-request`: one text per call through the whole Predictor (tokenize, pack, engine, decode; per-stage ms),
teacher and student interleaved, the student in FP32 and (with model.int8.onnx) INT8; speed-up vs the teacher.
`engine`: the engine's per-call floor (16 tokens) and the cost of new input lengths vs repeated ones, exact and
bucket-padded, per backend. `serve`: starts tools/serve.py on 127.0.0.1 and drives it with real texts (one per
request) at each concurrency; rows give requests/s, p50/p95/p99 and the same model's offline batch-32 texts/s.
--interleave times several exports in one run, round-robin over the models for --rounds rounds (p50 over all
samples of a model), so speed-up ratios between them do not depend on the machine's drift. A backend whose file
the export lacks (model.onnx, model.int8.onnx) is skipped with one line; nothing left to time is an error.
"""
import argparse
import json
import sys

from ernie_tiny_distill.cli import main_wrapper, quiet_paddlenlp, set_threads, setup_logging
from ernie_tiny_distill.errors import UserError


def add_latency(subparsers) -> None:
    p = subparsers.add_parser("latency", help="latency/throughput of one or more export directories")
    p.add_argument("--model", required=True, action="append", help="export directory (repeat with --interleave)")
    p.add_argument("--interleave", action="store_true", help="time every --model in one round-robin run")
    p.add_argument("--rounds", type=int, default=5, help="--interleave: round-robin rounds")
    p.add_argument("--seq-lens", type=int, nargs="+", default=[64, 128, 256])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--backends", nargs="+", default=["paddle", "onnx"], choices=["paddle", "onnx", "dygraph"])
    p.add_argument("--precisions", nargs="+", default=["fp32", "int8"], choices=["fp32", "bf16", "int8"])
    p.add_argument("--tokenization", choices=["no", "yes", "both"], default="no",
                   help="time the model alone, raw text -> result, or both")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--iterations", type=int, default=20, help="timed batch-1 runs (batch runs: a quarter)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--dygraph-model", help="checkpoint for the dygraph rows (default: export.json source)")
    p.add_argument("--json", help="write the results (with the environment) to this file")
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")


def run_latency(args) -> int:
    from ernie_tiny_distill.deploy import latency, layout

    if len(args.model) > 1 and not args.interleave:
        raise UserError("--model: several export directories are timed together with --interleave only")
    say = lambda line: print(line, file=sys.stderr)  # noqa: E731
    pairs = {}
    for model in args.model:
        layout.read_export_metadata(model)  # a missing/incomplete directory is an error, not a table of them
        pairs[model] = latency.pairs_or_error(model, args.backends, args.precisions, say)
    env = latency.environment(max(args.threads))
    print(f"{env['cpu_model']} ({env['logical_cpus']} CPUs, {', '.join(env['isa'])}), Paddle "
          f"{env.get('paddle_version')}, ONNX Runtime {env.get('onnxruntime_version')}, 1-min load average "
          f"{env.get('load_average_1min')}; batch-size columns at batch {args.batch_size}\n")
    if args.interleave:
        if args.tokenization != "no" or "dygraph" in args.backends:
            raise UserError("--interleave: times exports without tokenization (--tokenization no, no dygraph)")
        rows = latency.interleaved_grid(pairs, seq_lens=args.seq_lens, threads=args.threads, rounds=args.rounds,
                                        batch_size=args.batch_size, iterations=args.iterations, warmup=args.warmup)
        print(latency.markdown_table(rows))
    else:
        tok = {"no": (False,), "yes": (True,), "both": (False, True)}[args.tokenization]
        print(latency.table_header())
        rows = latency.run_grid(args.model[0], seq_lens=args.seq_lens, threads=args.threads, pairs=pairs[args.model[0]],
                                tokenization=tok, batch_size=args.batch_size, iterations=args.iterations,
                                warmup=args.warmup, dygraph_model=args.dygraph_model,
                                log=lambda r: print(latency.table_row(r), flush=True))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"environment": env, "results": rows}, f, indent=2)
    return 0


def add_engine(subparsers) -> None:
    p = subparsers.add_parser("engine", help="engine per-call floor and new-shape penalty per backend")
    p.add_argument("--model", required=True, help="export directory")
    p.add_argument("--backends", nargs="+", default=["paddle", "onnx"], choices=["paddle", "onnx"])
    p.add_argument("--precision", choices=["fp32", "bf16", "int8"], default="fp32")
    p.add_argument("--threads", type=int, nargs="+", default=[1])
    p.add_argument("--stream", type=int, default=60, help="new lengths in the stream")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")


def run_engine(args) -> int:
    from ernie_tiny_distill.deploy import engine_bench, latency

    env = latency.environment(max(args.threads))
    print(f"{env['cpu_model']}, 1-min load average {env.get('load_average_1min')}")
    rows = engine_bench.measure(args.model, args.backends, precision=args.precision, num_threads=args.threads[0],
                                stream=args.stream, rounds=args.rounds)
    print(engine_bench.table(rows))
    return 0


def read_texts(args):
    if args.texts:
        from ernie_tiny_distill.deploy.inputs import read_texts_file

        return read_texts_file(args.texts)[: args.limit]
    from ernie_tiny_distill.data.readers import read_conll

    return [" ".join(s.tokens) for s in read_conll(args.conll)[: args.limit]]


def add_text_source(p) -> None:
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--texts", help="a file of texts, one per line")
    source.add_argument("--conll", help="a CoNLL file: its sentences, words joined by spaces")
    p.add_argument("--limit", type=int, default=2000, help="texts read from the file")


def add_per_request(subparsers) -> None:
    p = subparsers.add_parser("per-request", help="end-to-end ms per text of a student vs its teacher")
    p.add_argument("--teacher", required=True, help="teacher export directory")
    p.add_argument("--student", required=True, help="student export directory")
    add_text_source(p)
    p.add_argument("--count", type=int, default=200, help="texts sampled (seeded) from the file")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")


def run_per_request(args) -> int:
    import os

    from ernie_tiny_distill.deploy import latency, latency_review, layout

    texts = latency_review.sample_texts(read_texts(args), args.count)
    targets = [{"key": "teacher fp32", "export_dir": args.teacher, "backend": "auto", "precision": "fp32"},
               {"key": "student fp32", "export_dir": args.student, "backend": "auto", "precision": "fp32"}]
    if os.path.isfile(os.path.join(args.student, layout.INT8_ONNX_FILE)):
        targets.append({"key": "student int8", "export_dir": args.student, "backend": "onnx", "precision": "int8"})
    env = latency.environment(args.threads)
    print(f"{env['cpu_model']}, 1-min load average {env.get('load_average_1min')}; {len(texts)} texts, "
          f"{args.threads} thread(s), interleaved over {args.rounds} rounds")
    out = latency_review.measure_per_review(targets, texts, num_threads=args.threads, rounds=args.rounds)
    teacher = out["teacher fp32"]["p50_ms"]
    print("| model | backend | p50 ms | p95 ms | mean ms | tokenize | pack | engine | decode | speed-up (p50) |\n"
          "|---|---|---|---|---|---|---|---|---|---|")
    for key, r in out.items():
        st = r["stages_ms"]
        print(f"| {key} | {r['backend_used']} | {r['p50_ms']:.2f} | {r['p95_ms']:.2f} | {r['mean_ms']:.2f} | "
              f"{st['tokenize']:.2f} | {st['pack']:.3f} | {st['engine']:.2f} | {st['decode']:.3f} | "
              f"{teacher / r['p50_ms']:.1f}x |")
    return 0


def add_serve(subparsers) -> None:
    p = subparsers.add_parser("serve", help="requests/s and p50/p95/p99 of the HTTP server vs offline batches")
    p.add_argument("--model", required=True, help="export directory")
    add_text_source(p)
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    p.add_argument("--requests", type=int, default=300, help="requests per concurrency (one text each)")
    p.add_argument("--processes", type=int, default=2, help="server processes (tools/serve.py --processes)")
    p.add_argument("--workers", type=int, default=1, help="predictor threads per process")
    p.add_argument("--threads", type=int, default=1, help="CPU threads per worker")
    p.add_argument("--backend", choices=["auto", "paddle", "onnx"], default="auto")
    p.add_argument("--precision", choices=["fp32", "bf16", "int8"], default="fp32")
    p.add_argument("--max-batch", type=int, default=32)
    p.add_argument("--max-wait-ms", type=float, default=2.0)
    p.add_argument("--json", help="write the rows to this file")
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")


def run_serve(args) -> int:
    from ernie_tiny_distill.deploy import latency, load_test

    texts = read_texts(args)
    env = latency.environment(args.threads)
    print(f"{env['cpu_model']} ({env['logical_cpus']} CPUs), 1-min load average {env.get('load_average_1min')}; "
          f"{len(texts)} texts, {args.requests} requests per concurrency")
    rows = load_test.run(args.model, texts, concurrencies=args.concurrency, requests=args.requests,
                         processes=args.processes, workers=args.workers, threads=args.threads,
                         backend=args.backend, precision=args.precision,
                         max_batch=args.max_batch, max_wait_ms=args.max_wait_ms,
                         log=lambda line: print(line, file=sys.stderr, flush=True))
    print(load_test.table_header())
    for row in rows:
        print(load_test.table_row(row))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"environment": env, "results": rows}, f, indent=2)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    subparsers = parser.add_subparsers(dest="command", required=True)
    add_latency(subparsers)
    add_engine(subparsers)
    add_per_request(subparsers)
    add_serve(subparsers)
    args = parser.parse_args()
    setup_logging()
    threads = getattr(args, "threads", None) or [1]
    set_threads(max(threads) if isinstance(threads, list) else threads)
    quiet_paddlenlp()
    runners = {"latency": run_latency, "engine": run_engine, "per-request": run_per_request, "serve": run_serve}
    return main_wrapper(lambda: runners[args.command](args), args.debug)


if __name__ == "__main__":
    sys.exit(main())
