"""A teacher fine-tuned on all of a task's labeled data, recorded from its finished run as the row `teacher_full`;
the report then compares every row of that task with it too, in a column of its own.

    python -m benchmarks.full_teacher --run DIR --command "python tools/train.py --config ... key=value ..."
        [--task imdb] [--profile cpu]

adds (or replaces) the row in benchmarks/results.json, after the task's teacher, and rewrites that task's results
table in docs/benchmarks.md. `% of teacher` keeps comparing with the `teacher` row, the one the students learned from.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import yaml

from benchmarks.profile import TaskSpec
from benchmarks.row_builders import _row_base
from benchmarks.util import read_json, write_json, write_text
from ernie_tiny_distill.errors import UserError

FULL_TEACHER = "teacher_full"   # the row's variant
FULL_PCT_HEAD = "% of the full-data teacher"


def teacher_name(teacher: str) -> str:
    """The teacher's name in a row's model column, from model.teacher of its config."""
    return "teacher MiniLM-L6-H384" if "minilm" in str(teacher) else "teacher"


def full_teacher(rows: Sequence[Dict]) -> Optional[Dict]:
    """The `teacher_full` row with a metric among `rows` (one task's), else None."""
    return next((r for r in rows if r.get("variant") == FULL_TEACHER and r.get("metric")), None)


def pct_of_full_teacher(row: Dict, full: Dict) -> Optional[float]:
    return None if row.get("metric") is None else 100 * row["metric"] / full["metric"]


def note_lines(rows: Sequence[Dict]) -> List[str]:
    """The line under a results table that has the full-data teacher's column (none without that row)."""
    full = full_teacher(rows)
    if not full:
        return []
    return [f"{FULL_PCT_HEAD}: each row's test metric over that of the `{FULL_TEACHER}` row ({full['model']}, "
            f"test {100 * full['metric']:.2f}); `% of teacher` compares with the `teacher` row, the teacher the "
            "students here learned from.", ""]


def _summary(run_dir: str) -> Dict:
    path = os.path.join(run_dir, "summary.json")
    summary = read_json(path)
    if not isinstance(summary, dict):
        raise UserError(f"--run: {path} not found or not JSON: the run has not finished (train.py writes it last)")
    if summary.get("stage") != "teacher" or not isinstance(summary.get("test"), dict):
        raise UserError(f"{path}: expected a finished teacher run with test metrics (stage 'teacher', a 'test' "
                        f"mapping), got stage {summary.get('stage')!r}, test {summary.get('test')!r}")
    return summary


def full_teacher_row(rows: Sequence[Dict], task: str, spec: TaskSpec, run_dir: str, command: str) -> Dict:
    """The `teacher_full` row of `task` from its finished run, its % of teacher against the task's `teacher` row."""
    if any(part.startswith("/") for word in command.split() for part in word.split("=")):
        raise UserError(f"--command: write paths relative to the repository (the row is committed), got {command!r}")
    summary = _summary(run_dir)
    teacher = next((r for r in rows if r.get("task") == task and r.get("variant") == "teacher"), None)
    if not teacher or teacher.get("metric") is None:
        raise UserError(f"the results file has no finished teacher row of task {task!r} to compare with")
    metric = teacher["metric_name"]
    if metric not in summary["test"]:
        raise UserError(f"{run_dir}/summary.json: no test {metric!r} (the task's metric); it has "
                        f"{sorted(summary['test'])}")
    with open(os.path.join(run_dir, "config.yaml"), encoding="utf-8") as f:
        teacher_model = ((yaml.safe_load(f) or {}).get("model") or {}).get("teacher")
    row = _row_base(task, spec, metric)
    row.update(model=f"{teacher_name(teacher_model)}, all {summary.get('train_examples')} labeled training examples",
               variant=FULL_TEACHER, layers=summary.get("layers"), hidden=summary.get("hidden"),
               params=summary.get("params"), nonembedding_params=summary.get("nonembedding_params"),
               metric=summary["test"][metric], dev_metric=(summary.get("dev") or {}).get(metric),
               pct_of_teacher=100 * summary["test"][metric] / teacher["metric"], command=command,
               train_commands=[command], train_examples=summary.get("train_examples"),
               train_seconds=summary.get("seconds"))
    return row


def with_full_teacher(rows: List[Dict], row: Dict) -> List[Dict]:
    """`rows` with `row` right after its task's teacher row, replacing an earlier `teacher_full` row of the task."""
    out = [r for r in rows if not (r.get("task") == row["task"] and r.get("variant") == FULL_TEACHER)]
    at = next(i for i, r in enumerate(out) if r.get("task") == row["task"] and r.get("variant") == "teacher")
    return out[:at + 1] + [row] + out[at + 1:]


def with_recorded(rows: List[Dict], results) -> List[Dict]:
    """The runs' `rows` plus the `teacher_full` rows of the results file (no run of the matrix gives them), each
    after its task's teacher."""
    for row in results if isinstance(results, list) else []:
        if isinstance(row, dict) and row.get("variant") == FULL_TEACHER and \
                any(r.get("task") == row.get("task") and r.get("variant") == "teacher" for r in rows):
            rows = with_full_teacher(rows, row)
    return rows


def table_block(rows: Sequence[Dict], task: str) -> str:
    """A task's results table as the report writes it (and the note on the full-data teacher, when it has one)."""
    from benchmarks.reviews import PER_REVIEW
    from benchmarks.rows import markdown_table

    trows = [r for r in rows if r.get("task") == task and r.get("variant") != PER_REVIEW]
    return "\n".join([markdown_table(trows), "", *note_lines(trows)]).rstrip("\n")


def _replace_once(markdown: str, old: str, new: str, where: str, what: str) -> str:
    if markdown.count(old) != 1:
        raise UserError(f"{where}: its {what} is not the one the results file gives; regenerate the report first "
                        "(python tools/reproduce.py --report-only)")
    return markdown.replace(old, new)


def record(results_path: str, markdown_path: str, row: Dict) -> None:
    """Write the row into the results file and, in the markdown report, re-render its task's table and add its
    command after the task's teacher's (in place: the rest of the report stays as its runs wrote it)."""
    from benchmarks.report import row_command_lines

    def entry(r: Dict) -> str:
        return "\n".join(row_command_lines(r)) + "\n"

    rows, t = read_json(results_path), row["task"]
    new_rows = with_full_teacher(rows, row)
    markdown = Path(markdown_path).read_text(encoding="utf-8")
    markdown = _replace_once(markdown, table_block(rows, t), table_block(new_rows, t), markdown_path,
                             f"{t} results table")
    earlier = full_teacher([r for r in rows if r.get("task") == t])
    if earlier:
        markdown = _replace_once(markdown, entry(earlier), "", markdown_path, f"{t} {FULL_TEACHER} command")
    teacher = next(r for r in rows if r.get("task") == t and r.get("variant") == "teacher")
    markdown = _replace_once(markdown, entry(teacher), entry(teacher) + entry(row), markdown_path,
                             f"{t} teacher command")
    write_json(results_path, new_rows)
    write_text(markdown_path, markdown)


def main(argv: Optional[Sequence[str]] = None) -> int:
    from benchmarks.jobs import Matrix
    from benchmarks.profile import load_profile
    from benchmarks.report import report_paths

    parser = argparse.ArgumentParser(prog="python -m benchmarks.full_teacher", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="the finished teacher run directory (its summary.json)")
    parser.add_argument("--command", required=True, help="the command that trained it, paths relative to the repo")
    parser.add_argument("--task", default="imdb", help="the profile's task it was trained on (default imdb)")
    parser.add_argument("--profile", default="cpu", help="the profile whose results file and report get the row")
    parser.add_argument("--out-dir", help="report root: <out>/benchmarks/, <out>/docs/ (default: the profile's)")
    args = parser.parse_args(argv)
    p = load_profile(args.profile)
    if args.task not in p.tasks:
        raise UserError(f"--task: profile {p.name!r} has no task {args.task!r} (it has {sorted(p.tasks)})")
    if args.out_dir:
        p.out_dir = args.out_dir
    paths = report_paths(Matrix(p, [args.task]))
    row = full_teacher_row(read_json(paths["results"]) or [], args.task, p.tasks[args.task], args.run, args.command)
    record(paths["results"], paths["markdown"], row)
    print(f"{paths['results']}, {paths['markdown']}: {row['model']} (test {100 * row['metric']:.2f}, "
          f"{row['pct_of_teacher']:.1f}% of the teacher)")
    return 0


if __name__ == "__main__":
    from ernie_tiny_distill.cli import main_wrapper

    sys.exit(main_wrapper(lambda: main([a for a in sys.argv[1:] if a != "--debug"]), "--debug" in sys.argv))
