"""Quickstart: teacher -> stage-1 -> stage-2 distillation -> evaluation -> export, on the embedded demo data.

python tools/quickstart.py [--out runs/quickstart] [--tasks classification ner]
Finished stages are skipped when re-run; an interrupted stage resumes from its last checkpoint.
"""
import argparse
import sys
import time
from pathlib import Path

from ernie_tiny_distill.cli import main_wrapper, quiet_paddlenlp, set_threads, setup_logging

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/quickstart", help="output directory")
    parser.add_argument("--tasks", nargs="+", default=["classification", "ner"], choices=["classification", "ner"])
    parser.add_argument("--teacher", help="teacher to start from (default: minilm if installed, else a random one)")
    parser.add_argument("--no-export", action="store_true", help="skip the Paddle Inference export")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    args = parser.parse_args()
    setup_logging()
    set_threads(2)
    quiet_paddlenlp()

    def run() -> int:
        from ernie_tiny_distill.pipeline.quickstart import format_table, run_quickstart

        started = time.time()
        rows = run_quickstart(str(CONFIG_DIR), args.out, args.tasks, args.teacher, export=not args.no_export)
        print()
        print(format_table(rows))
        print(f"\nquickstart finished in {time.time() - started:.0f} s; outputs in {args.out}")
        return 0

    return main_wrapper(run, args.debug)


if __name__ == "__main__":
    sys.exit(main())
