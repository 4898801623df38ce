"""Students taught by a recorded teacher (benchmarks/full_teacher.py), recorded from their finished runs as a row
of their own:

    python -m benchmarks.full_teacher_students --runs DIR [DIR ...] --teacher-run DIR --like VARIANT
        --command "python tools/train.py --config ... output_dir=.../seed{seed} train.seed={seed} ..."
        [--taught-by full|case_ids] [--variant NAME] [--task imdb|conll] [--profile cpu]

`--taught-by full` (default, task imdb): the full-data teacher, row `<like>_full_teacher`; `--taught-by case_ids`
(task conll): the teacher trained with case ids, row `<like>_case_ids` (the runs have model.case_ids true too).
Each run is one seed of the same recipe as the matrix row `--like` of the same student (its config, with
model.teacher and distill.teachers pointing at that teacher; a run that changes more says so with `--variant`,
a name with the same suffix, e.g. task_kd_transfer74k_full_teacher). The row goes after that student's last row
(`{seed}` in the command stands for each run's train.seed); its shape, sizes and latency are those of the
`--like` row (the same exported architecture). `--teacher-run` must be the run the task's recorded teacher row
records (same test metric), so the row's `% of the full-data teacher` (or `% of the case-ids teacher`) compares
the student with the teacher it learned from.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import yaml

from benchmarks.full_teacher import (CASE_IDS_TEACHER, DEFAULT_TASK, RECORDED, STUDENT_SUFFIXES, VARIANTS, check_command,
                                     command_entry, recorded_teacher, replace_once, report_files, table_block)
from benchmarks.util import read_json, write_json, write_text
from ernie_tiny_distill.errors import UserError

# what a student row shares with the matrix row of the same architecture
SHARED = ("dataset", "metric_name", "model", "layers", "hidden", "params", "nonembedding_params", "size_mb",
          "size_mb_int8", "latency_ms_p50", "latency_ms_p95", "throughput_per_s", "speedup_vs_teacher",
          "latency_seq_len", "latency_backend")


def _read_run(run_dir: str, metric: str) -> Dict:
    """A finished task-stage run: its summary and config."""
    summary = read_json(os.path.join(run_dir, "summary.json"))
    if not isinstance(summary, dict) or not isinstance(summary.get("test"), dict) or metric not in summary["test"]:
        raise UserError(f"{run_dir}/summary.json: expected a finished run with a test {metric!r} (train.py writes "
                        f"it last), got {None if not isinstance(summary, dict) else summary.get('test')!r}")
    with open(os.path.join(run_dir, "config.yaml"), encoding="utf-8") as f:
        config = yaml.safe_load(f) or {}
    return {"dir": run_dir, "summary": summary, "config": config}


def _check_teacher(runs: Sequence[Dict], teacher_run: str, recorded: Dict, metric: str) -> None:
    """Every run learned from `teacher_run`, and it is the run the `recorded` teacher row records (a case-ids
    teacher's students read case ids too)."""
    taught = read_json(os.path.join(teacher_run, "summary.json")) or {}
    if (taught.get("test") or {}).get(metric) != recorded["metric"]:
        raise UserError(f"--teacher-run: {teacher_run}/summary.json has test {metric} "
                        f"{(taught.get('test') or {}).get(metric)!r}, the {recorded['variant']} row "
                        f"{recorded['metric']!r}: not the recorded teacher")
    for run in runs:
        cfg = run["config"]
        if recorded["variant"] == CASE_IDS_TEACHER and (cfg.get("model") or {}).get("case_ids") is not True:
            raise UserError(f"{run['dir']}/config.yaml: model.case_ids is not true; a student of the case-ids "
                            "teacher reads case ids as it does")
        paths = [(cfg.get("model") or {}).get("teacher")] + [
            t.get("path") for t in (cfg.get("distill") or {}).get("teachers") or []]
        if any(os.path.normpath(str(p)) != os.path.normpath(teacher_run) for p in paths if p):
            raise UserError(f"{run['dir']}/config.yaml: model.teacher / distill.teachers name {paths}, expected "
                            f"{teacher_run} (--teacher-run)")


def student_row(rows: Sequence[Dict], task: str, run_dirs: Sequence[str], teacher_run: str, like: str,
                command: str, variant: Optional[str] = None, taught_by: str = "full") -> Dict:
    """The `variant` row (default `<like>` + the teacher's suffix) of `task` from its seeds' finished runs, taught
    by the recorded teacher `taught_by` (full or case_ids)."""
    check_command(command)
    teacher_variant = VARIANTS[taught_by]
    suffix = STUDENT_SUFFIXES[teacher_variant]
    variant = variant or like + suffix
    if not variant.endswith(suffix) or variant == suffix:
        raise UserError(f"--variant: a name ending in {suffix!r} (a row taught by the {teacher_variant} teacher), "
                        f"got {variant!r}")
    if len(run_dirs) > 1 and "{seed}" not in command:
        raise UserError(f"--command: with {len(run_dirs)} runs, write {{seed}} where each run's seed goes, got "
                        f"{command!r}")
    task_rows = [r for r in rows if r.get("task") == task]
    recorded = recorded_teacher(task_rows, teacher_variant)
    teacher = next((r for r in task_rows if r.get("variant") == "teacher" and r.get("metric")), None)
    if not recorded or not teacher:
        raise UserError(f"the results file needs the {task!r} rows 'teacher' and '{teacher_variant}' "
                        f"(python -m benchmarks.full_teacher) before students of that teacher")
    metric = teacher["metric_name"]
    runs = [_read_run(d, metric) for d in run_dirs]
    _check_teacher(runs, teacher_run, recorded, metric)
    shapes = {(r["summary"].get("layers"), r["summary"].get("hidden")) for r in runs}
    same = [r for r in task_rows if r.get("variant") == like and (r.get("layers"), r.get("hidden")) in shapes]
    if len(shapes) != 1 or len(same) != 1:
        raise UserError(f"--like {like}: expected one {task} row of that variant with the runs' shape {sorted(shapes)}"
                        f", found {len(same)}")
    seeds = [int((r["config"].get("train") or {}).get("seed")) for r in runs]
    if len(set(seeds)) != len(seeds):
        raise UserError(f"--runs: each run is one seed; got seeds {seeds}")
    scores = [r["summary"]["test"][metric] for r in runs]
    mean = statistics.mean(scores)
    row = {k: same[0].get(k) for k in SHARED}
    row.update(task=task, variant=variant, like=like, metric=mean,
               metric_std=statistics.stdev(scores) if len(scores) > 1 else None, seeds=seeds,
               per_seed={str(s): v for s, v in zip(seeds, scores)},
               dev_metric=statistics.mean(r["summary"]["dev"][metric] for r in runs),
               pct_of_teacher=100 * mean / teacher["metric"], command=command.replace("{seed}", str(seeds[0])),
               train_commands=[command.replace("{seed}", str(s)) for s in seeds],
               train_examples=runs[0]["summary"].get("train_examples"),
               transfer_examples=runs[0]["summary"].get("transfer_examples"),
               teacher_dev_metric=recorded.get("dev_metric"), taught_by=teacher_variant,
               train_seconds=round(sum(r["summary"].get("seconds") or 0 for r in runs), 1))
    return row


def with_student_row(rows: List[Dict], row: Dict) -> List[Dict]:
    """`rows` with `row` after the last row of its task and model (replacing an earlier row of its variant)."""
    out = [r for r in rows if not (r.get("task") == row["task"] and r.get("model") == row["model"]
                                   and r.get("variant") == row["variant"])]
    at = max(i for i, r in enumerate(out) if r.get("task") == row["task"] and r.get("model") == row["model"]) + 1
    return out[:at] + [row] + out[at:]


def with_recorded(rows: List[Dict], results) -> List[Dict]:
    """The report's `rows` plus the recorded student rows of the results file, each after its model's last row."""
    for row in results if isinstance(results, list) else []:
        if isinstance(row, dict) and row.get("taught_by") in RECORDED and \
                any(r.get("task") == row.get("task") and r.get("model") == row.get("model") for r in rows):
            rows = with_student_row(rows, row)
    return rows


ABLATION_HEADING = "### Ablation: what each ingredient adds (dev; test beside it)\n\n"


def with_ablation(markdown: str, rows: Sequence[Dict], where: str) -> str:
    """`markdown` with its ablation table re-rendered from `rows` (born.ablation; recorded rows are in it too)."""
    from benchmarks import born

    start = markdown.find(ABLATION_HEADING)
    if start < 0:
        raise UserError(f"{where}: no {ABLATION_HEADING.strip()!r} section; regenerate the report first "
                        "(python tools/reproduce.py --report-only)")
    start += len(ABLATION_HEADING)
    end = markdown.find("\n\n", start)
    tasks = list(dict.fromkeys(r["task"] for r in rows if r.get("task")))
    return markdown[:start] + "\n".join(born.ablation(list(rows), tasks)) + markdown[end:]


def record(results_path: str, markdown_path: str, row: Dict) -> None:
    """Write the row into the results file and re-render its task's table in the markdown report, its command
    in the list of commands after the `--like` row's."""
    entry = command_entry
    rows, t = read_json(results_path), row["task"]
    new_rows = with_student_row(rows, row)
    markdown = Path(markdown_path).read_text(encoding="utf-8")
    markdown = replace_once(markdown, table_block(rows, t), table_block(new_rows, t), markdown_path,
                            f"{t} results table")
    earlier = next((r for r in rows if r.get("task") == t and r.get("model") == row["model"]
                    and r.get("variant") == row["variant"]), None)
    if earlier and markdown.count(entry(earlier)) == 1:
        markdown = markdown.replace(entry(earlier), "")
    like_variant = row.get("like") or row["variant"][:-len(STUDENT_SUFFIXES[row["taught_by"]])]
    like = next(r for r in rows if r.get("task") == t and r.get("model") == row["model"]
                and r.get("variant") == like_variant)
    markdown = replace_once(markdown, entry(like), entry(like) + entry(row), markdown_path,
                            f"{t} {like['variant']} command")
    markdown = with_ablation(markdown, new_rows, markdown_path)
    write_json(results_path, new_rows)
    write_text(markdown_path, markdown)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.full_teacher_students", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", nargs="+", required=True, help="the finished student runs, one per seed")
    parser.add_argument("--teacher-run", required=True, help="the full-data teacher's run directory")
    parser.add_argument("--like", required=True, help="the matrix variant whose recipe the runs followed")
    parser.add_argument("--command", required=True, help="the runs' command, {seed} for the seed, paths relative to the repository")
    parser.add_argument("--taught-by", choices=sorted(VARIANTS), default="full",
                        help="full: the full-data teacher (row teacher_full, the default); case_ids: the teacher "
                             "trained with case ids (row teacher_case_ids)")
    parser.add_argument("--variant", help="the row's name, ending in the teacher's suffix (default: the --like "
                        "variant + _full_teacher or _case_ids); for runs that change the recipe beyond the teacher")
    parser.add_argument("--task", help="the profile's task (default imdb; conll with --taught-by case_ids)")
    parser.add_argument("--profile", default="cpu", help="the profile whose results file and report get the row")
    parser.add_argument("--out-dir", help="report root: <out>/benchmarks/, <out>/docs/ (default: the profile's)")
    args = parser.parse_args(argv)
    args.task = args.task or DEFAULT_TASK[args.taught_by]
    _, paths = report_files(args.profile, args.task, args.out_dir)
    row = student_row(read_json(paths["results"]) or [], args.task, args.runs, args.teacher_run, args.like,
                      args.command, args.variant, args.taught_by)
    record(paths["results"], paths["markdown"], row)
    print(f"{paths['results']}, {paths['markdown']}: {row['model']} {row['variant']} (test "
          f"{100 * row['metric']:.2f} over seeds {row['seeds']}, {row['pct_of_teacher']:.1f}% of the teacher)")
    return 0


if __name__ == "__main__":
    from ernie_tiny_distill.cli import main_wrapper

    sys.exit(main_wrapper(lambda: main([a for a in sys.argv[1:] if a != "--debug"]), "--debug" in sys.argv))
