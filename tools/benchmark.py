"""Benchmarks. `python tools/benchmark.py latency --model EXPORT_DIR --seq-lens 64 128 256 --threads 1 2
--backends paddle onnx dygraph --precisions fp32 bf16 int8` times the export as deployed and prints a markdown
table (p50/p95 ms at batch 1, sequences/s and GFLOP/s at batch 32); --json writes all numbers.
Subcommands are argparse subparsers: add one with a `add_X(subparsers)` function and a `run_X(args)`.
"""
import argparse
import json
import sys

from ernie_tiny_distill.cli import main_wrapper, quiet_paddlenlp, set_threads, setup_logging


def add_latency(subparsers) -> None:
    p = subparsers.add_parser("latency", help="latency/throughput of an export directory")
    p.add_argument("--model", required=True, help="export directory")
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
    from ernie_tiny_distill import export, latency

    export.read_export_metadata(args.model)  # a missing/incomplete directory is an error, not a table of them
    tok = {"no": (False,), "yes": (True,), "both": (False, True)}[args.tokenization]
    rows = latency.run_grid(args.model, seq_lens=args.seq_lens, threads=args.threads, backends=args.backends,
                            precisions=args.precisions, tokenization=tok, batch_size=args.batch_size,
                            iterations=args.iterations, warmup=args.warmup, dygraph_model=args.dygraph_model,
                            log=lambda r: print(latency.markdown_table([r]).splitlines()[-1], file=sys.stderr))
    env = latency.environment(max(args.threads))
    print(f"\n{env['cpu_model']} ({env['logical_cpus']} CPUs, {', '.join(env['isa'])}), "
          f"Paddle {env.get('paddle_version')}, ONNX Runtime {env.get('onnxruntime_version')}, "
          f"1-min load average {env.get('load_average_1min')}\n")
    print(latency.markdown_table(rows))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"environment": env, "results": rows}, f, indent=2)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    subparsers = parser.add_subparsers(dest="command", required=True)
    add_latency(subparsers)
    args = parser.parse_args()
    setup_logging()
    set_threads(max(getattr(args, "threads", None) or [1]))
    quiet_paddlenlp()
    runners = {"latency": run_latency}
    return main_wrapper(lambda: runners[args.command](args), args.debug)


if __name__ == "__main__":
    sys.exit(main())
