"""The unseen-data benchmark: TREC and MIT Restaurant through tools/distill.py at 10x and 5x, rendered with goals.

python -m benchmarks.unseen run [--runs-dir runs/unseen] [--only NAME] [--again]
python -m benchmarks.unseen report [--runs-dir runs/unseen] [--out docs/unseen_data.md] [--run NAME=DIR ...]
    [--keep-committed-runs] [--record benchmarks/unseen_results.json]
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
from typing import Dict, List, Optional, Sequence, Tuple

from benchmarks import unseen_record
from benchmarks.util import write_text
from ernie_tiny_distill.errors import UserError
from ernie_tiny_distill.pipeline.report import ENGINES

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_RUNS_DIR = "runs/unseen"
DEFAULT_OUT = "docs/unseen_data.md"
DATA = "../shared/datasets"

# data set -> (title, task, pipeline arguments besides --speedup/--teacher/--out, trailing key=value overrides)
DATASETS = {
    "mit_restaurant": ("MIT Restaurant (NER, 8 entity types)", "ner",
                       ["--train", f"{DATA}/mit_restaurant/train.txt", "--test", f"{DATA}/mit_restaurant/test.txt"],
                       []),
    "trec": ("TREC (question classification, 6 coarse classes)", "classification",
             ["--train", f"{DATA}/trec/train_5500.label", "--test", f"{DATA}/trec/TREC_10.label",
              "--format", "label_text", "--encoding", "latin-1"],
             ["data.label_separator=:"]),
}
SPEEDUPS = (10, 5)
# the 10x recipe runs again with these train.seed values (its first run keeps the default seed, 42), reusing its
# teacher: one test score moves by a question or two between seeds
EXTRA_SEEDS = (2, 3)
DEFAULT_SEED = 42


def dataset_runs(dataset: str) -> List[str]:
    return [f"{dataset}_{s}x" for s in SPEEDUPS] + [f"{dataset}_10x_seed{s}" for s in EXTRA_SEEDS]


RUN_NAMES = [n for d in DATASETS for n in dataset_runs(d)]
# % of the teacher's test metric the student must keep, per task and shape
PCT_GOALS = {"classification": {10: 98.0, 5: 99.5}, "ner": {10: 95.0, 5: 98.0}}
KD_GAIN_GOAL = 1.0  # points, KD student minus the no-KD control
TIME_GOAL_MINUTES = 60.0


def parse_name(name: str) -> Tuple[str, int, Optional[int]]:
    """(data set, speed-up, extra seed or None) of a run name: trec_10x, trec_5x, trec_10x_seed2."""
    base, _, seed = name.partition("_seed")
    dataset, shape = base.rsplit("_", 1)
    return dataset, int(shape.rstrip("x")), int(seed) if seed else None


def shape_of(name: str) -> str:
    """The recipe of a run as the doc names it: "10x", "5x"."""
    return f"{parse_name(name)[1]}x"


def command(name: str, runs_dir: str = DEFAULT_RUNS_DIR) -> List[str]:
    """The tools/distill.py argument list of run `name`; every run but the 10x one reuses the 10x run's teacher."""
    dataset, speedup, seed = parse_name(name)
    _, task, data_args, overrides = DATASETS[dataset]
    reuses = speedup != 10 or seed is not None
    teacher = ["--teacher", f"{runs_dir}/{dataset}_10x/teacher"] if reuses else []
    return (["python", "tools/distill.py", "--task", task] + data_args
            + ["--speedup", str(speedup), "--control"] + teacher
            + ["--out", f"{runs_dir}/{name}", "--threads", "1"] + overrides
            + ([f"train.seed={seed}"] if seed is not None else []))


def command_text(name: str, runs_dir: str = DEFAULT_RUNS_DIR) -> str:
    return " ".join(shlex.quote(a) for a in command(name, runs_dir))


def parse_run_overrides(values: Sequence[str]) -> Dict[str, str]:
    """`NAME=DIR` pairs; a name that is not one of the four runs is an error naming the known ones."""
    out = {}
    for v in values or []:
        name, sep, path = v.partition("=")
        if not sep or not path:
            raise UserError(f"--run {v!r}: expected NAME=DIR, e.g. mit_restaurant_10x=runs/mit10")
        if name not in RUN_NAMES:
            raise UserError(f"--run {v!r}: unknown run {name!r}; expected one of {', '.join(RUN_NAMES)}")
        out[name] = path
    return out


def run_dirs(runs_dir: str, overrides: Dict[str, str]) -> Dict[str, str]:
    return {n: overrides.get(n, os.path.join(runs_dir, n)) for n in RUN_NAMES}


def load_reports(dirs: Dict[str, str]) -> Dict[str, Dict]:
    """report.json of each run whose pipeline finished (the pipeline writes it last)."""
    reports = {}
    for name, d in dirs.items():
        path = os.path.join(d, "report.json")
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as f:
                try:
                    reports[name] = json.load(f)
                except json.JSONDecodeError as e:
                    raise UserError(f"not valid JSON ({e}); expected a pipeline report.json", where=path) from None
    return reports


# ---- figures and goals ----

def run_minutes(report: Dict) -> float:
    """The run's total time: every pipeline step as run, summed over resumed calls."""
    return report["time"]["steps_total_seconds"] / 60.0


def kd_gains(report: Dict) -> Tuple[Optional[float], Optional[float]]:
    """(FP32, INT8) KD gain in points: the report's dygraph gain for FP32; the exported INT8 score minus the
    control for INT8 (the control is scored in dygraph only)."""
    control = report.get("control")
    if not control:
        return None, None
    int8 = report["student"].get("int8")
    ctl = control["test" if report["split"] == "test" else "dev"][report["metric"]]
    return 100 * control["kd_gain"], (None if int8 is None else 100 * (int8 - ctl))


def _mean(values: Sequence[Optional[float]]) -> Optional[float]:
    return None if not values or any(v is None for v in values) else sum(values) / len(values)


def goal_rows(name: str, report: Optional[Dict], seed_reports: Sequence[Dict] = ()) -> List[Dict]:
    """One row per goal of run `name`: {goal, target, value, unit, met} (value and met None when not run).
    With `seed_reports` (the same recipe's runs at other seeds) the score goals take the mean over all runs."""
    dataset, speedup, _ = parse_name(name)
    shape = shape_of(name)
    pct = PCT_GOALS[DATASETS[dataset][1]][speedup]
    runs = [report] + list(seed_reports) if report else []
    over = f" (mean of {len(runs)} seeds)" if len(runs) > 1 else ""

    def mean(value) -> Optional[float]:
        return _mean([value(r) for r in runs]) if runs else None

    rows = [
        {"goal": f"{shape} student FP32, % of teacher{over}", "target": pct, "direction": "min", "unit": "%",
         "value": mean(lambda r: r["student"].get("pct_of_teacher_fp32"))},
        {"goal": f"{shape} student INT8, % of teacher{over}", "target": pct, "direction": "min", "unit": "%",
         "value": mean(lambda r: r["student"].get("pct_of_teacher_int8"))},
        {"goal": f"{shape} KD − no-KD (test, points){over}", "target": KD_GAIN_GOAL, "direction": "min",
         "unit": " pt", "value": mean(lambda r: kd_gains(r)[0])},
        {"goal": f"{shape} run's total time", "target": TIME_GOAL_MINUTES, "direction": "max", "unit": " min",
         "value": run_minutes(report) if report else None},
    ]
    for r in rows:
        v = r["value"]
        r["met"] = None if v is None else (v >= r["target"] if r["direction"] == "min" else v <= r["target"])
    return rows


# ---- markdown ----

def _num(v: Optional[float], spec: str, signed: bool = False) -> str:
    if v is None:
        return "—"
    return format(v, ("+" if signed else "") + spec)


def engine(timing: Dict) -> str:
    """The engine a latency row ran on (older reports name only the backend asked for)."""
    used = timing.get("backend_used") or timing.get("backend")
    return ENGINES.get(used, used or "—")


def model_rows(report: Dict, shape: str) -> List[List[str]]:
    """The student FP32/INT8 and control rows of one run: model, metric, % of teacher, KD gain, p50, speed-up."""
    s, lat, m = report["student"], report["latency"], report["metric"]
    shape_txt = f"{s['layers']}x{s['hidden']}"
    gain_fp32, gain_int8 = kd_gains(report)
    minutes = f"{run_minutes(report):.1f}"
    rows = [[f"{shape} student FP32 ({shape_txt})", _num(s["fp32"], ".4f"), _num(s["pct_of_teacher_fp32"], ".2f"),
             _num(gain_fp32, ".2f", True), engine(lat["student_fp32"]), _num(lat["student_fp32"]["p50_ms"], ".2f"),
             _num(lat["speedup_fp32"], ".2f"), minutes],
            [f"{shape} student INT8 ({shape_txt})", _num(s.get("int8"), ".4f"),
             _num(s.get("pct_of_teacher_int8"), ".2f"), _num(gain_int8, ".2f", True),
             engine(lat.get("student_int8") or {}), _num((lat.get("student_int8") or {}).get("p50_ms"), ".2f"),
             _num(lat.get("speedup_int8"), ".2f"), minutes]]
    control = report.get("control")
    if control:
        score = control["test" if report["split"] == "test" else "dev"][m]
        rows.append([f"{shape} no-KD control ({shape_txt}, FP32)", f"{score:.4f}",
                     f"{100 * score / report['teacher']['fp32']:.2f}", "0 (reference)", "—", "—", "—", minutes])
    else:
        rows.append([f"{shape} no-KD control", "not run (no --control)", "—", "—", "—", "—", "—", minutes])
    return rows


def seed_table(names: List[str], reports: Dict[str, Dict]) -> List[str]:
    """The 10x recipe at each seed run (same teacher) and their mean; nothing when only the first run exists."""
    if len(names) < 2:
        return []
    m = reports[names[0]]["metric"]
    lines = ["", f"The 10x recipe at {len(names)} seeds (`train.seed`; the later runs reuse the first run's "
             "teacher):", "", f"| seed | student FP32 {m} | % of teacher | student INT8 {m} | % of teacher | "
             "KD gain (points) |", "|---|---|---|---|---|---|"]
    cols = []
    for n in names:
        r, seed = reports[n], parse_name(n)[2] or DEFAULT_SEED
        s = r["student"]
        col = [s["fp32"], s["pct_of_teacher_fp32"], s.get("int8"), s.get("pct_of_teacher_int8"), kd_gains(r)[0]]
        cols.append(col)
        lines.append(f"| {seed} | " + " | ".join(_seed_cells(col)) + " |")
    means = [_mean([c[k] for c in cols]) for k in range(5)]
    return lines + ["| mean | " + " | ".join(_seed_cells(means)) + " |"]


def _seed_cells(col: List[Optional[float]]) -> List[str]:
    return [_num(col[0], ".4f"), _num(col[1], ".2f"), _num(col[2], ".4f"), _num(col[3], ".2f"),
            _num(col[4], ".2f", True)]


def dataset_section(dataset: str, reports: Dict[str, Dict], runs_dir: str) -> List[str]:
    title = DATASETS[dataset][0]
    names = [f"{dataset}_{s}x" for s in SPEEDUPS]
    seeds = [f"{dataset}_10x_seed{s}" for s in EXTRA_SEEDS]
    done = [n for n in names if n in reports]
    lines = [f"## {title}", ""]
    if done:
        first = reports[done[0]]
        m, t = first["metric"], first["teacher"]
        d = first["data"]
        lines += [f"Data: train {d['train']}, dev {d['dev']}, test {d['test']}, {d['labels']} labels; "
                  f"metric: {first['split']} {m} of the exported models.", "",
                  f"| model | {first['split']} {m} | % of teacher | KD gain (points) | engine | p50 ms | speed-up "
                  "| run time (min) |", "|---|---|---|---|---|---|---|---|",
                  f"| teacher FP32 ({t['layers']}x{t['hidden']}) | {t['fp32']:.4f} | 100.00 | — | "
                  f"{engine(first['latency']['teacher_fp32'])} | {first['latency']['teacher_fp32']['p50_ms']:.2f} | "
                  f"1.00 | {run_minutes(first):.1f} |"]
        for n in done:
            lines += ["| " + " | ".join(r) + " |" for r in model_rows(reports[n], shape_of(n))]
        lines += ["", f"The teacher row is from the {shape_of(done[0])} run. KD gain: the report's "
                  "student minus control (best-on-dev checkpoints, dygraph) for FP32; the exported INT8 score "
                  "minus the control for INT8. The control has the student's shape, so its latency is the FP32 "
                  "student's. p50 ms: per request of one raw text, 1 thread, FP32 on the engine that serve and "
                  "predict pick by default (--backend auto: the faster at load); speed-up: teacher p50 / student p50 "
                  "in the same run. Run time: every pipeline step as run."]
        for n in done:
            a = reports[n].get("assistant")
            if a:
                lines.append(f"The {shape_of(n)} student learns from the teacher and an assistant distilled first, "
                             f"a {a['layers']}x{a['hidden']} student ({os.path.basename(a['recipe'])}, dev {m} "
                             f"{a['dev'][m]:.4f}; weight {a['weight']:g} beside the teacher's 1); its run time "
                             "includes the assistant's.")
        for n in done:
            if reports[n]["teacher"].get("reused"):
                lines.append(f"The {shape_of(n)} run reuses the 10x run's teacher, so its run time "
                             "leaves out the teacher's fine-tuning.")
        lines += seed_table([n for n in [f"{dataset}_10x"] + seeds if n in reports], reports)
    else:
        lines.append("No run of this data set has finished yet.")
    lines += ["", "| goal | target | value | |", "|---|---|---|---|"]
    for n in names:
        extra = [reports[x] for x in seeds if x in reports] if n.endswith("_10x") else []
        for g in goal_rows(n, reports.get(n), extra):
            sign = "≥" if g["direction"] == "min" else "≤"
            if g["value"] is None:
                value, verdict = "not run yet" if n not in reports else "not measured", "—"
            else:
                value = _num(g["value"], ".2f", g["unit"] == " pt") + g["unit"]
                verdict = "met" if g["met"] else "missed"
            lines.append(f"| {g['goal']} | {sign} {g['target']:g}{g['unit']} | {value} | {verdict} |")
    missing = [n for n in names + seeds if n not in reports]
    if missing:
        lines += ["", "Not run yet:", ""] + [f"- {n}: `{command_text(n, runs_dir)}`" for n in missing]
    return lines + [""]


def render(reports: Dict[str, Dict], runs_dir: str = DEFAULT_RUNS_DIR, out: str = DEFAULT_OUT,
           kept: Sequence[str] = ()) -> str:
    """The markdown doc of whichever runs finished; `kept` names those taken from the committed record instead of a
    run directory. The commands in it are repo-relative."""
    shown_dir = runs_dir if not os.path.isabs(runs_dir) else DEFAULT_RUNS_DIR
    generator = "python -m benchmarks.unseen report" + ("" if shown_dir == DEFAULT_RUNS_DIR
                                                         else f" --runs-dir {shown_dir}") \
        + ("" if out == DEFAULT_OUT or os.path.isabs(out) else f" --out {out}")
    lines = ["# Unseen data: TREC and MIT Restaurant", "",
             "Two data sets no recipe was tuned on, each distilled at the 10x and 5x recipes with the no-KD control "
             "(`--control`), one thread per run. Made by `python -m benchmarks.unseen run` "
             f"(the commands below) and rendered by `{generator}`.", ""]
    if kept:
        lines += [f"Taken from the committed record (`{unseen_record.DEFAULT_RECORD}`, written when the doc was "
                  f"last rendered from their run directories), not run again: {', '.join(kept)}.", ""]
    for dataset in DATASETS:
        lines += dataset_section(dataset, reports, shown_dir)
    lines += ["## Commands", "", "```bash"] + [command_text(n, shown_dir) for n in RUN_NAMES] + ["```", ""]
    return "\n".join(lines)


# ---- CLI ----

def run(runs_dir: str, only: Optional[str], overrides: Dict[str, str], again: bool = False) -> int:
    """Run the pipeline for each selected run whose report.json is missing (with `again`, every selected run: the
    pipeline then re-runs only the steps whose inputs changed), in order; stop at the first failure."""
    dirs = {n: os.path.abspath(d) for n, d in run_dirs(runs_dir, overrides).items()}
    for name in RUN_NAMES:
        if only and name != only:
            continue
        if not again and os.path.isfile(os.path.join(dirs[name], "report.json")):
            print(f"{name}: finished ({dirs[name]}/report.json), skipped")
            continue
        args = command(name, runs_dir)
        args[0] = sys.executable
        args[args.index("--out") + 1] = dirs[name]
        if "--teacher" in args:
            teacher = os.path.join(dirs[parse_name(name)[0] + "_10x"], "teacher")
            if not os.path.isdir(teacher):
                print(f"{name}: needs the 10x run's teacher at {teacher}; run the 10x run first", file=sys.stderr)
                return 1
            args[args.index("--teacher") + 1] = teacher
        print(f"{name}: {' '.join(shlex.quote(a) for a in args)}", flush=True)
        code = subprocess.call(args, cwd=ROOT)
        if code != 0:
            print(f"{name}: tools/distill.py exited with {code}; re-run to resume", file=sys.stderr)
            return code
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.unseen", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("run", "report"):
        s = sub.add_parser(name)
        s.add_argument("--runs-dir", default=DEFAULT_RUNS_DIR, help="holds one OUT directory per run")
        s.add_argument("--run", action="append", default=[], metavar="NAME=DIR",
                       help="this run's OUT directory instead of RUNS_DIR/NAME (repeatable)")
        if name == "run":
            s.add_argument("--only", choices=RUN_NAMES, help="run just this one")
            s.add_argument("--again", action="store_true",
                           help="call finished runs too: their steps whose inputs changed run again (e.g. latency "
                                "after a change in how it is measured), the others are skipped")
        else:
            s.add_argument("--out", default=DEFAULT_OUT, help="the markdown file to write")
            s.add_argument("--record", default=unseen_record.DEFAULT_RECORD,
                           help="the JSON record of the shown runs' reports, written beside the doc")
            s.add_argument("--keep-committed-runs", action="store_true",
                           help="a run without a finished run directory is taken from the record (the doc says so)")
    args = p.parse_args(argv)
    try:
        overrides = parse_run_overrides(args.run)
        if args.cmd == "run":
            return run(args.runs_dir, args.only, overrides, args.again)
        reports = load_reports(run_dirs(args.runs_dir, overrides))
        kept = []
        if args.keep_committed_runs:
            committed = unseen_record.read(args.record)
            kept = [n for n in RUN_NAMES if n not in reports and n in committed]
            reports.update({n: committed[n] for n in kept})
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    reports = {n: reports[n] for n in RUN_NAMES if n in reports}
    text = render(reports, args.runs_dir, args.out, kept)
    write_text(args.out, text)
    unseen_record.write(reports, args.record)
    print(f"{args.out}: {len(reports)} of {len(RUN_NAMES)} runs ({', '.join(reports) or 'none'})"
          + (f", {len(kept)} from {args.record}" if kept else "") + f"; record: {args.record}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
