"""Quickstart: the one-command distillation pipeline (tools/distill.py) on generated demo data, both tasks.

python tools/quickstart.py [--out runs/quickstart] [--tasks classification ner] [--control]
For each task: teacher fine-tuning and its check -> a 10x student born from it and distilled -> FP32 and INT8
exports -> test scores and latency against the teacher -> the report, then the student's answers on a few
sentences written for it. Re-running skips finished steps; an interrupted training run resumes.
"""
import argparse
import sys
import time

from ernie_tiny_distill.cli import run_tool


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/quickstart", help="output directory")
    parser.add_argument("--tasks", nargs="+", default=["classification", "ner"], choices=["classification", "ner"])
    parser.add_argument("--teacher", help="teacher to start from (default: minilm if installed, else a random one)")
    parser.add_argument("--control", action="store_true", help="also train each student without KD (KD gain)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("overrides", nargs="*", help="key=value config overrides for every stage")

    def run(args) -> int:
        from ernie_tiny_distill.pipeline.quickstart import format_reports, run_quickstart

        started = time.time()
        reports = run_quickstart(args.out, args.tasks, args.teacher, args.control,
                                 [f"train.num_threads={args.threads}", *args.overrides])
        print()
        print(format_reports(reports))
        print(f"quickstart finished in {time.time() - started:.0f} s; outputs in {args.out}")
        return 0

    return run_tool(parser, run, argv)


if __name__ == "__main__":
    sys.exit(main())
