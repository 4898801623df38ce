"""Record a finished speed run as the committed one: benchmarks/speed_results.json, the speed section of
docs/benchmarks.md and the end-to-end speed-ups of the README table, nothing else.

    python -m benchmarks.speed --task all --requests 300 --out DIR --record
    python -m benchmarks.speed_record DIR/speed.json

The rest of the report is left as it is: its rows, set-up and per-review latency lines come from the training runs
(tools/reproduce.py --report-only), which a speed run does not touch. The README table is rendered again from
the committed benchmarks/results.json rows with the new end-to-end figures.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Dict, Optional, Sequence

from benchmarks import speed_goals
from benchmarks.readme_table import readme_table
from benchmarks.report import update_readme
from benchmarks.util import read_json, write_json, write_text
from ernie_tiny_distill.errors import UserError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SECTION = "## Speed, end to end"
REPORT_COMMAND = "python tools/reproduce.py --task all --profile cpu --report-only --keep-committed-rows"
TASKS = ("conll", "imdb")  # the README table's order (the cpu profile's tasks)


def replace_section(markdown: str, section: Sequence[str]) -> str:
    """`markdown` with its speed section (from its heading to the next `## ` heading) replaced by `section`."""
    start = markdown.find(SECTION + "\n")
    if start < 0:
        raise UserError(f"no '{SECTION}' heading to replace", where="docs/benchmarks.md")
    end = markdown.find("\n## ", start + len(SECTION))
    rest = markdown[end + 1:] if end >= 0 else ""
    return markdown[:start] + "\n".join(section).rstrip("\n") + "\n\n" + rest


def record(results: Dict, root: str = ROOT) -> Dict[str, str]:
    """Write `results` (a benchmarks/speed.py result) where the report reads it; returns the files written."""
    if not results.get("tasks"):
        raise UserError("the speed result has no tasks: nothing to record")
    results_path = os.path.join(root, "benchmarks", os.path.basename(speed_goals.RESULTS_FILE))
    md_path = os.path.join(root, "docs", "benchmarks.md")
    write_json(results_path, results)
    with open(md_path, encoding="utf-8") as f:
        write_text(md_path, replace_section(f.read(), speed_goals.render_section(results)))
    written = {"results": results_path, "markdown": md_path}
    rows = read_json(os.path.join(root, "benchmarks", "results.json"))
    table = readme_table(rows, TASKS, REPORT_COMMAND, speed_goals.end_to_end_speedups(results))
    if update_readme(os.path.join(root, "README.md"), table):
        written["readme"] = os.path.join(root, "README.md")
    return written


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("speed_json", help="the speed.json of a finished python -m benchmarks.speed run")
    args = ap.parse_args(argv)
    print(record(read_json(args.speed_json)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
