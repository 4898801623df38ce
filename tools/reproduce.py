"""Reproduce the benchmark tables: the IMDB / CoNLL-2003 matrix of a profile, resumable, then the report.

    python tools/reproduce.py --task imdb|conll|all [--profile cpu|full|PATH.yaml] [--only JOBS] [--skip JOBS]
                              [--runs-dir runs/bench] [--report-only] [--plan]

`python tools/reproduce.py --help` explains the options; benchmarks/ holds the machinery and
benchmarks/profiles/ the profiles.
"""
import os
import sys

# benchmarks/ is a package of this repository, not of the installed library: import it from the checkout
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ernie_tiny_distill.cli import main_wrapper, setup_logging  # noqa: E402


def main() -> int:
    debug = "--debug" in sys.argv
    argv = [a for a in sys.argv[1:] if a != "--debug"]
    setup_logging()

    def run() -> int:
        from benchmarks.cli import main as reproduce_main

        outcome = reproduce_main(argv)
        return 1 if outcome.get("failed") else 0

    return main_wrapper(run, debug)


if __name__ == "__main__":
    sys.exit(main())
