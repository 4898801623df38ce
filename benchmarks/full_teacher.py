"""Teachers trained outside the benchmark matrix, recorded from their finished runs as rows of their own:

- `--variant full` (default): a teacher fine-tuned on all of a task's labeled data, the row `teacher_full`; the
  report then compares every row of that task with it too, in a column of its own.
- `--variant case_ids`: a teacher trained with model.case_ids=true (each word's letter case fed through the
  token-type embedding), the row `teacher_case_ids`: the teacher's score with and without case ids, side by side.

    python -m benchmarks.full_teacher --run DIR --command "python tools/train.py --config ... key=value ..."
        [--variant full|case_ids] [--task imdb|conll] [--profile cpu]

adds (or replaces) the row in benchmarks/results.json, after the task's teacher (a `teacher_case_ids` row after
the `teacher_full` one when both exist), and rewrites that task's results table in docs/benchmarks.md.
`% of teacher` keeps comparing with the `teacher` row, the one the students learned from.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import yaml

from benchmarks.profile import TaskSpec
from benchmarks.row_builders import _row_base
from benchmarks.util import read_json, write_json, write_text
from ernie_tiny_distill.errors import UserError

FULL_TEACHER = "teacher_full"   # the row's variant
CASE_IDS_TEACHER = "teacher_case_ids"
RECORDED = (FULL_TEACHER, CASE_IDS_TEACHER)   # their order after the task's teacher row
VARIANTS = {"full": FULL_TEACHER, "case_ids": CASE_IDS_TEACHER}   # --variant -> the row's variant
DEFAULT_TASK = {"full": "imdb", "case_ids": "conll"}   # case ids exist for tagging tasks only
# the column a results table gains when its task has one of the recorded teachers (the first of RECORDED found),
# and the variant suffix of the student rows taught by that teacher (benchmarks/full_teacher_students.py)
PCT_HEADS = {FULL_TEACHER: "% of the full-data teacher", CASE_IDS_TEACHER: "% of the case-ids teacher"}
STUDENT_SUFFIXES = {FULL_TEACHER: "_full_teacher", CASE_IDS_TEACHER: "_case_ids"}


def teacher_name(teacher: str) -> str:
    """The teacher's name in a row's model column, from model.teacher of its config."""
    return "teacher MiniLM-L6-H384" if "minilm" in str(teacher) else "teacher"


def recorded_teacher(rows: Sequence[Dict], variant: str) -> Optional[Dict]:
    """The `variant` row (one of RECORDED) with a metric among `rows` (one task's), else None."""
    return next((r for r in rows if r.get("variant") == variant and r.get("metric")), None)


def second_teacher(rows: Sequence[Dict]) -> Optional[Dict]:
    """The recorded teacher a task's table also compares every row with: the first of RECORDED it has."""
    return next((t for t in (recorded_teacher(rows, v) for v in RECORDED) if t), None)


def pct_of(row: Dict, teacher: Dict) -> Optional[float]:
    return None if row.get("metric") is None else 100 * row["metric"] / teacher["metric"]


def note_lines(rows: Sequence[Dict]) -> List[str]:
    """The line under a results table that has a recorded teacher's column (none without such a row)."""
    second = second_teacher(rows)
    if not second:
        return []
    variant = second["variant"]
    return [f"{PCT_HEADS[variant]}: each row's test metric over that of the `{variant}` row ({second['model']}, "
            f"test {100 * second['metric']:.2f}); `% of teacher` compares with the `teacher` row, the teacher of "
            f"the matrix's students. Rows whose variant ends in `{STUDENT_SUFFIXES[variant]}` learned from the "
            f"`{variant}` teacher instead.", ""]


def _summary(run_dir: str) -> Dict:
    path = os.path.join(run_dir, "summary.json")
    summary = read_json(path)
    if not isinstance(summary, dict):
        raise UserError(f"--run: {path} not found or not JSON: the run has not finished (train.py writes it last)")
    if summary.get("stage") != "teacher" or not isinstance(summary.get("test"), dict):
        raise UserError(f"{path}: expected a finished teacher run with test metrics (stage 'teacher', a 'test' "
                        f"mapping), got stage {summary.get('stage')!r}, test {summary.get('test')!r}")
    return summary


def _model_text(variant: str, run_dir: str, summary: Dict) -> str:
    """The row's model column, from the run's config.yaml; a case-ids row's run must have model.case_ids true."""
    path = os.path.join(run_dir, "config.yaml")
    with open(path, encoding="utf-8") as f:
        model = (yaml.safe_load(f) or {}).get("model") or {}
    name = teacher_name(model.get("teacher"))
    if variant == CASE_IDS_TEACHER:
        if model.get("case_ids") is not True:
            raise UserError(f"{path}: model.case_ids is {model.get('case_ids')!r}; --variant case_ids records a "
                            "teacher trained with model.case_ids=true")
        return f"{name}, case ids (word letter case as token type)"
    return f"{name}, all {summary.get('train_examples')} labeled training examples"


def check_command(command: str) -> None:
    """A recorded row's command names paths relative to the repository (the row is committed)."""
    if any(part.startswith("/") for word in command.split() for part in word.split("=")):
        raise UserError(f"--command: write paths relative to the repository (the row is committed), got {command!r}")


def command_entry(row: Dict) -> str:
    """A row's entry in the report's list of commands, as the report writes it."""
    from benchmarks.report import row_command_lines

    return "\n".join(row_command_lines(row)) + "\n"


def teacher_row(rows: Sequence[Dict], task: str, spec: TaskSpec, run_dir: str, command: str,
                variant: str = FULL_TEACHER) -> Dict:
    """The `variant` row (one of RECORDED) of `task` from its finished run, its % of teacher against the task's
    `teacher` row."""
    check_command(command)
    summary = _summary(run_dir)
    teacher = next((r for r in rows if r.get("task") == task and r.get("variant") == "teacher"), None)
    if not teacher or teacher.get("metric") is None:
        raise UserError(f"the results file has no finished teacher row of task {task!r} to compare with")
    metric = teacher["metric_name"]
    if metric not in summary["test"]:
        raise UserError(f"{run_dir}/summary.json: no test {metric!r} (the task's metric); it has "
                        f"{sorted(summary['test'])}")
    row = _row_base(task, spec, metric)
    row.update(model=_model_text(variant, run_dir, summary), variant=variant, layers=summary.get("layers"),
               hidden=summary.get("hidden"), params=summary.get("params"),
               nonembedding_params=summary.get("nonembedding_params"),
               metric=summary["test"][metric], dev_metric=(summary.get("dev") or {}).get(metric),
               pct_of_teacher=100 * summary["test"][metric] / teacher["metric"], command=command,
               train_commands=[command], train_examples=summary.get("train_examples"),
               train_seconds=summary.get("seconds"))
    return row


def with_teacher_row(rows: List[Dict], row: Dict) -> List[Dict]:
    """`rows` with the recorded `row` after its task's teacher row (and after the recorded rows that come before
    its variant in RECORDED), replacing an earlier row of the task with its variant."""
    task, variant = row["task"], row["variant"]
    out = [r for r in rows if not (r.get("task") == task and r.get("variant") == variant)]
    at = next(i for i, r in enumerate(out) if r.get("task") == task and r.get("variant") == "teacher") + 1
    before = RECORDED[:RECORDED.index(variant)]
    while at < len(out) and out[at].get("task") == task and out[at].get("variant") in before:
        at += 1
    return out[:at] + [row] + out[at:]


def with_recorded(rows: List[Dict], results) -> List[Dict]:
    """The runs' `rows` plus the recorded teacher rows of the results file (no run of the matrix gives them), each
    after its task's teacher."""
    for row in results if isinstance(results, list) else []:
        if isinstance(row, dict) and row.get("variant") in RECORDED and \
                any(r.get("task") == row.get("task") and r.get("variant") == "teacher" for r in rows):
            rows = with_teacher_row(rows, row)
    return rows


def table_block(rows: Sequence[Dict], task: str) -> str:
    """A task's results table as the report writes it (and the note on the full-data teacher, when it has one)."""
    from benchmarks.reviews import PER_REVIEW
    from benchmarks.rows import markdown_table

    trows = [r for r in rows if r.get("task") == task and r.get("variant") != PER_REVIEW]
    return "\n".join([markdown_table(trows), "", *note_lines(trows)]).rstrip("\n")


def replace_once(markdown: str, old: str, new: str, where: str, what: str) -> str:
    if markdown.count(old) != 1:
        raise UserError(f"{where}: its {what} is not the one the results file gives; regenerate the report first "
                        "(python tools/reproduce.py --report-only)")
    return markdown.replace(old, new)


def record(results_path: str, markdown_path: str, row: Dict) -> None:
    """Write the row into the results file and, in the markdown report, re-render its task's table and add its
    command after the task's teacher's and those of the recorded rows before it (in place: the rest of the report
    stays as its runs wrote it)."""
    entry = command_entry
    rows, t, variant = read_json(results_path), row["task"], row["variant"]
    new_rows = with_teacher_row(rows, row)
    markdown = Path(markdown_path).read_text(encoding="utf-8")
    markdown = replace_once(markdown, table_block(rows, t), table_block(new_rows, t), markdown_path,
                             f"{t} results table")
    earlier = next((r for r in rows if r.get("task") == t and r.get("variant") == variant), None)
    if earlier:
        markdown = replace_once(markdown, entry(earlier), "", markdown_path, f"{t} {variant} command")
    # the entries of the teacher and of the recorded rows before this one, in the order the table has them
    at = next(i for i, r in enumerate(new_rows) if r.get("task") == t and r.get("variant") == "teacher")
    anchor = "".join(entry(r) for r in new_rows[at:new_rows.index(row)])
    markdown = replace_once(markdown, anchor, anchor + entry(row), markdown_path, f"{t} teacher command")
    write_json(results_path, new_rows)
    write_text(markdown_path, markdown)


def report_files(profile: str, task: str, out_dir: Optional[str]) -> Tuple[TaskSpec, Dict[str, str]]:
    """The task's spec in `profile` and the paths of the results file and report a recorded row goes into."""
    from benchmarks.jobs import Matrix
    from benchmarks.profile import load_profile
    from benchmarks.report import report_paths

    p = load_profile(profile)
    if task not in p.tasks:
        raise UserError(f"--task: profile {p.name!r} has no task {task!r} (it has {sorted(p.tasks)})")
    if out_dir:
        p.out_dir = out_dir
    return p.tasks[task], report_paths(Matrix(p, [task]))


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.full_teacher", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="the finished teacher run directory (its summary.json)")
    parser.add_argument("--command", required=True, help="the command that trained it, paths relative to the repo")
    parser.add_argument("--variant", choices=sorted(VARIANTS), default="full",
                        help="full: trained on all labeled data (row teacher_full, the default); case_ids: trained "
                             "with model.case_ids=true (row teacher_case_ids)")
    parser.add_argument("--task", help="the profile's task it was trained on (default imdb; conll with "
                                       "--variant case_ids)")
    parser.add_argument("--profile", default="cpu", help="the profile whose results file and report get the row")
    parser.add_argument("--out-dir", help="report root: <out>/benchmarks/, <out>/docs/ (default: the profile's)")
    args = parser.parse_args(argv)
    args.task = args.task or DEFAULT_TASK[args.variant]
    spec, paths = report_files(args.profile, args.task, args.out_dir)
    row = teacher_row(read_json(paths["results"]) or [], args.task, spec, args.run, args.command,
                      VARIANTS[args.variant])
    record(paths["results"], paths["markdown"], row)
    print(f"{paths['results']}, {paths['markdown']}: {row['model']} (test {100 * row['metric']:.2f}, "
          f"{row['pct_of_teacher']:.1f}% of the teacher)")
    return 0


if __name__ == "__main__":
    from ernie_tiny_distill.cli import main_wrapper

    sys.exit(main_wrapper(lambda: main([a for a in sys.argv[1:] if a != "--debug"]), "--debug" in sys.argv))
