"""The README's short results table: per task the teacher and the best student of each recipe shape, in plain
words; the full table is docs/benchmarks.md."""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

from benchmarks.rows import METRIC_LABEL, _f, _metric_cell, by_dev

# the recipes' shapes (configs/recipes/*_10x.yaml, *_5x.yaml) as (layers, hidden), in the README's order
README_SHAPES = ((2, 128), (3, 384))
# a student's origin, from the label its profile gives it
_ORIGINS = (("(pruned)", "born from the teacher"), ("(pretrained)", "pretrained separately"))


def _origin(row: Dict) -> str:
    return next((words for mark, words in _ORIGINS if mark in row["model"]), "from a random encoder")


def _reads_like_teacher(row: Dict, teacher: Dict) -> bool:
    """True for a row that reads the input the teacher reads (not whole documents, not longer inputs)."""
    if row.get("document_student") or row.get("latency_per") == "review":
        return False
    seq = teacher.get("latency_seq_len")
    return seq is None or row.get("latency_seq_len") in (None, seq)


def readme_rows(rows: List[Dict], tasks: Sequence[str], shapes=README_SHAPES) -> List[Dict]:
    """Per task: the teacher, then per shape the student best on dev (as a user would choose) and the INT8 export
    of that same run, when there is one. Each item is {"row", "kind": teacher | student | int8} (an int8 item
    also has its "source" row)."""
    out = []
    for t in tasks:
        teacher = next((r for r in rows if r["task"] == t and r["variant"] == "teacher"), None)
        if teacher is None or teacher["metric"] is None:
            continue
        out.append({"row": teacher, "kind": "teacher"})
        for layers, hidden in shapes:
            # students of a recorded teacher (full-data, case ids) stay out: % of teacher compares with `teacher`
            same = [r for r in rows if r["task"] == t and r["metric"] is not None and r["model"].startswith("student")
                    and (r.get("layers"), r.get("hidden")) == (layers, hidden) and _reads_like_teacher(r, teacher)
                    and not r.get("taught_by")]
            students = [r for r in same if r["variant"] != "int8"]
            if not students:
                continue
            best = max(students, key=by_dev)
            out.append({"row": best, "kind": "student"})
            export = f"{best['model']} ({best['variant']} seed "
            int8 = next((r for r in same if r["variant"] == "int8" and r["model"].startswith(export)), None)
            if int8:
                out.append({"row": int8, "kind": "int8", "source": best})
    return out


def _plain_model(item: Dict) -> str:
    r = item["row"]
    shape = f"{r['layers']} layers x {r['hidden']}"
    if item["kind"] == "teacher":
        name = r["model"][len("teacher"):].strip()
        words = f"teacher, {shape}" + (f" ({name})" if name else "")
    else:
        words = f"student, {shape} ({_origin(r)})"
        if item["kind"] == "int8":
            several = len(item["source"].get("seeds") or []) > 1   # the export is of one seed's run
            words += ", INT8 export" + (f" of seed {r['seeds'][0]}" if several and r.get("seeds") else "")
    return words + (", earlier run" if r.get("carried") else "")


def _speedup_cell(item: Dict, end_to_end: Dict) -> str:
    """The end-to-end speed-up of the row's shape and precision when one was measured, else the model-only one."""
    r = item["row"]
    measured = end_to_end.get((r["task"], (r.get("layers"), r.get("hidden")), item["kind"]))
    return f"{measured:.1f}× end to end" if measured else _f(r["speedup_vs_teacher"], "{:.1f}×")


def readme_table(rows: List[Dict], tasks: Sequence[str], command: str,
                 end_to_end: Optional[Dict] = None) -> str:
    """The README's short results table: per task the teacher and the best student of each recipe shape with its
    INT8 export (model in plain words, test metric, % of teacher, speed-up); the full table is docs/benchmarks.md.
    end_to_end: {(task, (layers, hidden), kind): speed-up per request, tokenization included}
    (speed_goals.end_to_end_speedups); such a figure replaces the model-only speed-up of its rows."""
    end_to_end = end_to_end or {}
    lines = ["| task | model | test metric | % of teacher | speed-up |", "|---|---|---|---|---|"]
    items = readme_rows(rows, tasks)
    for item in items:
        r = item["row"]
        seeds = f" ({len(r['seeds'])} seeds)" if r.get("seeds") and len(r["seeds"]) > 1 else ""
        metric = f"{METRIC_LABEL.get(r['metric_name'], r['metric_name'])} {_metric_cell(r)}{seeds}"
        lines.append("| " + " | ".join([r.get("dataset") or r["task"], _plain_model(item), metric,
                                         _f(r["pct_of_teacher"], "{:.1f}"), _speedup_cell(item, end_to_end)]) + " |")
    seq = next((i["row"].get("latency_seq_len") for i in items if i["kind"] == "teacher"), None)
    used = any(_speedup_cell(i, end_to_end).endswith("end to end") for i in items)
    lines += ["", "Best on dev per shape; speed-up = the teacher's p50 latency / the model's, one input"
              + (f" of {seq} tokens" if seq else "") + " at a time"
              + (", the model alone; \"end to end\" = per request on real test texts, tokenization and decoding "
                 "included, the same shapes timed interleaved by `python -m benchmarks.speed` "
                 "(benchmarks/speed_results.json). " if used else ". ")
              + ("An earlier run's row keeps the speed-up measured against that run's teacher. "
                 if any(i["row"].get("carried") for i in items) else "")
              + f"Every recipe, the set-up and the timing method: [docs/benchmarks.md](docs/benchmarks.md) "
              f"(generated by `{command}`)."]
    return "\n".join(lines)
