"""Latency per real review in the report: rows of benchmarks/results.json (variant latency_per_review), their
tables in the benchmarks markdown, and carrying them over when this machine has no latency run."""
from __future__ import annotations

from typing import Dict, List

from benchmarks.jobs import Matrix
from benchmarks.util import read_json

PER_REVIEW = "latency_per_review"  # the variant of results.json rows that hold a per-review latency measurement


def per_review_rows(m: Matrix, extra: Dict) -> List[Dict]:
    """Latency per real review (profile latency.per_review), one results.json row per task and export, with the
    fixed-length p50 of the same export beside it; metric None, so they are never table rows."""
    out = []
    for t in m.tasks:
        lat = extra[t].get("latency") or {}
        pr = lat.get("per_review") or {}
        fixed = lat.get("measured") or {}
        teacher = (pr.get("measured", {}).get("teacher") or {}).get("p50_ms")
        for key, r in (pr.get("measured") or {}).items():
            f = fixed.get(key) or fixed.get(key[:-len("-windows")] if key.endswith("-windows") else key)
            out.append({"task": t, "model": key, "variant": PER_REVIEW, "metric": None,
                        "examples": pr["examples"], "seed": pr["seed"], "threads": r["threads"],
                        "rounds": r["rounds"], "backend": r["backend"], "precision": r["precision"],
                        "reads": r["reads"], "windows_mean": r.get("windows_mean"), "p50_ms": r["p50_ms"],
                        "p95_ms": r["p95_ms"], "teacher_p50_ms": teacher,
                        "fixed_p50_ms": f["p50_ms"] if f else None, "fixed_seq_len": f["seq_len"] if f else None})
    return out


def per_review_lines(m: Matrix, review_rows: List[Dict]) -> List[str]:
    """Latency per real review beside each export's fixed-length p50, per task (rows of per_review_rows)."""
    L = []
    for t in m.tasks:
        rows = [r for r in review_rows if r["task"] == t]
        if not rows:
            continue
        r0 = rows[0]
        L += [f"### {m.p.tasks[t].title}: latency per real review", "",
              f"{r0['examples']} test texts drawn at random (seed {r0['seed']}: the test split's own length "
              f"distribution); each timed as one request through the Predictor (tokenization, every window and "
              f"their pooling or the truncation, the model, the label), batch 1, {r0['threads']} thread, "
              f"interleaved over the models ({r0['rounds']} rounds). Fixed-length p50: the table above (synthetic "
              "ids, no tokenization). vs teacher = the 128-token teacher's p50 per review / the row's."
              + (" † carried over from an earlier run of this profile (benchmarks/results.json)."
                 if any(r.get("carried") for r in rows) else ""), "",
              "| export | backend | reads | windows/review | p50 ms/review | p95 ms/review | vs teacher | "
              "fixed-length p50 ms |", "|---|---|---|---|---|---|---|---|"]
        for r in rows:
            windows = f"{r['windows_mean']:.2f}" if r.get("windows_mean") is not None else "1"
            teacher = r.get("teacher_p50_ms")
            ratio = f"{teacher / r['p50_ms']:.2f}x" if teacher else ""
            at_fixed = f"{r['fixed_p50_ms']:.2f} (seq {r['fixed_seq_len']})" if r.get("fixed_p50_ms") else ""
            L.append(f"| {r['model']} | {r['backend']} {r['precision']} | {r['reads']} | {windows} | "
                     f"{r['p50_ms']:.2f} | {r['p95_ms']:.2f} | {ratio} | {at_fixed} |")
        L.append("")
    return L


def review_tables_lost(markdown_path: str, m: Matrix, review_rows: List[Dict]) -> List[str]:
    """Tasks whose per-review latency table the committed markdown has and `review_rows` would not give."""
    try:
        with open(markdown_path, encoding="utf-8") as f:
            text = f.read()
    except OSError:
        return []
    have = {r["task"] for r in review_rows}
    return [t for t in m.tasks if t not in have and f"### {m.p.tasks[t].title}: latency per real review" in text]


def carried_reviews(results_path: str, review: List[Dict]) -> List[Dict]:
    """The committed per-review latency rows of tasks whose runs give none here, marked `carried`."""
    old = read_json(results_path)
    have = {r["task"] for r in review}
    return [dict(r, carried=r.get("carried") or "an earlier run of this profile (benchmarks/results.json)")
            for r in (old if isinstance(old, list) else [])
            if isinstance(r, dict) and r.get("variant") == PER_REVIEW and r.get("task") not in have]
