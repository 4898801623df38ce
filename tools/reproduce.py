"""Reproduce the benchmark tables (issue 4): the IMDB / CoNLL-2003 matrix, resumable, then the report.

    python tools/reproduce.py --task imdb|conll|all [--profile cpu|full] [--only ROWS] [--skip ROWS]
                              [--runs-dir runs/bench] [--report-only] [--plan]

Run from the repository root. Each training stage is `python tools/train.py --config configs/bench/<stage>.yaml`
(generated, complete YAML); finished stages are skipped on a re-run and interrupted ones resume. Rows are
selected by name, prefix, component or glob: `--only imdb/B/task_kd/seed2`, `--only conll/B`,
`--skip export,latency`, `--only '*/A/*'`. Writes benchmarks/results.json, docs/benchmarks.md and
docs/pareto.png (profile cpu). `--plan` lists the selected jobs and their commands without running them.
Long runs: nohup python tools/reproduce.py --task all > /work/logs/reproduce.log 2>&1 &
"""
import sys

from ernie_tiny_distill.cli import main_wrapper, setup_logging


def main() -> int:
    debug = "--debug" in sys.argv
    argv = [a for a in sys.argv[1:] if a != "--debug"]
    setup_logging()

    def run() -> int:
        from ernie_tiny_distill.reproduce import main as reproduce_main

        outcome = reproduce_main(argv)
        return 1 if outcome.get("failed") else 0

    return main_wrapper(run, debug)


if __name__ == "__main__":
    sys.exit(main())
