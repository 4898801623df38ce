"""The command line of tools/reproduce.py: select jobs, run them (resumable), write the report."""
from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Callable, Dict, Optional, Sequence

from benchmarks.jobs import Matrix
from benchmarks.profile import Profile, load_profile, profile_names
from benchmarks.util import split_list
from ernie_tiny_distill.errors import UserError

logger = logging.getLogger(__name__)

DESCRIPTION = """\
Run (or resume) the benchmark matrix of a profile -- teacher, students trained without KD, with task KD and
with two-stage KD, reference rows, exports, INT8, latency -- then write benchmarks/results.json,
docs/benchmarks.md, docs/pareto.png and the README table. Run it from the repository root.

Each training stage is `python tools/train.py --config runs/bench/configs/<stage>.yaml`, a complete config generated
from the profile (benchmarks/profiles/<profile>.yaml). Finished stages are skipped on a re-run; interrupted
ones resume from their checkpoints. Jobs are selected by name, a run of name components or a glob:
  --only imdb/B/task_kd/seed2   --only conll/B   --skip export,latency   --only '*/A/*'
Start with --plan: it lists the jobs, the command each runs and a time estimate. For a long run, keep a log:
  nohup python tools/reproduce.py --task all --profile cpu > reproduce.log 2>&1 &
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tools/reproduce.py", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="all", help="a task of the profile (imdb, conll) or all (default)")
    parser.add_argument("--profile", default="cpu",
                        help=f"a profile name ({', '.join(profile_names())}; cpu runs on a 2-core CPU, full is "
                             "larger, for GPUs) or the path of a profile YAML")
    parser.add_argument("--only", action="append", help="jobs to run: names, prefixes, components or globs "
                                                         "(comma-separated, repeatable), e.g. imdb/B/task_kd/seed2")
    parser.add_argument("--skip", action="append", help="jobs not to run, same syntax, e.g. export,latency")
    parser.add_argument("--runs-dir", help="where runs and results go (default: the profile's, runs/bench)")
    parser.add_argument("--config-dir", help="where generated configs go (default: <runs dir>/configs)")
    parser.add_argument("--out-dir", help="report root: <out>/benchmarks/, <out>/docs/, <out>/README.md "
                                          "(default: .)")
    parser.add_argument("--report-only", action="store_true", help="write the report from finished runs only")
    parser.add_argument("--no-report", action="store_true", help="do not write the report at the end")
    parser.add_argument("--force-report", action="store_true",
                        help="write the report even if it has fewer rows than the results file it replaces")
    parser.add_argument("--keep-committed-rows", action="store_true",
                        help="rows of the results file whose runs are not under the runs directory (e.g. run on "
                             "another machine) are kept in the report, marked as carried over")
    parser.add_argument("--plan", action="store_true",
                        help="list the selected jobs, their commands and time estimates; run nothing")
    parser.add_argument("--quiet-timeout", type=float, help="seconds latency waits for a quiet machine")
    return parser


def main(argv: Optional[Sequence[str]] = None, profiles: Optional[Dict[str, Callable[[], Profile]]] = None) -> Dict:
    """Parse, run, report; returns {"done", "ran", "failed", "report"}. `profiles` (tests) replaces the YAML ones."""
    from benchmarks import plan, schedule
    from benchmarks.report import report

    args = build_parser().parse_args(argv)
    if profiles is not None:
        if args.profile not in profiles:
            raise UserError(f"--profile must be one of {', '.join(profiles)}, got {args.profile!r}")
        p = profiles[args.profile]()
    else:
        p = load_profile(args.profile)
    if args.runs_dir:
        p.runs_dir = args.runs_dir
    if args.config_dir:
        p.config_dir = args.config_dir
    if args.out_dir:
        p.out_dir = args.out_dir
    if args.quiet_timeout is not None:
        p.quiet_timeout = args.quiet_timeout
    tasks = list(p.tasks) if args.task == "all" else split_list([args.task])
    m = Matrix(p, tasks)
    only, skip = split_list(args.only), split_list(args.skip)
    if args.plan:
        print(plan.render(m, m.select(only, skip)))
        return {"done": [], "ran": [], "failed": {}}
    outcome = {"done": [], "ran": [], "failed": {}}
    if not args.report_only:
        outcome = schedule.run(m, only, skip)
    if not args.no_report:
        report_cmd = f"python tools/reproduce.py --task {args.task} --profile {p.name} --report-only"
        if args.keep_committed_rows:
            report_cmd += " --keep-committed-rows"
        try:
            outcome["report"] = report(m, report_cmd, force=args.force_report, keep=args.keep_committed_rows)
            logger.info("report: %s", outcome["report"])
        except UserError as e:
            if args.report_only:
                raise
            logger.warning("report not written: %s", e)   # the runs themselves finished and are recorded
            outcome["report_refused"] = str(e)
    if outcome["failed"]:
        logger.warning("not finished: %s", json.dumps(outcome["failed"], indent=1))
    return outcome


if __name__ == "__main__":
    sys.exit(0 if not main().get("failed") else 1)
