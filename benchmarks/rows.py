"""Table rows from the result files (one per model x variant, aggregated over seeds) and what they show:
goals met or not, KD gain (the effect of stage 1 and of longer inputs: benchmarks/effects.py)."""
from __future__ import annotations

import os
import statistics
from typing import Dict, List, Optional, Sequence, Tuple

from benchmarks import decoding as dec
from benchmarks.full_teacher import PCT_HEADS, pct_of, second_teacher, teacher_name
from benchmarks.jobs import Matrix
from benchmarks.row_builders import _row_base, _student_row
from benchmarks.rows_documents import document_rows, latency_cell
from benchmarks.util import read_json
from ernie_tiny_distill.tasks.adapters import task_class

VARIANTS = ("no_kd", "task_kd", "two_stage_kd")
METRIC_LABEL = {"accuracy": "accuracy", "f1": "entity F1"}


def collect_rows(m: Matrix) -> Tuple[List[Dict], Dict]:
    """Table rows for every task from the result files (+ the teacher's summary.json)."""
    rows, extra = [], {}
    for t in m.tasks:
        c = _TaskResults(m, t)
        rows += ([_teacher_row(c)] + _student_rows(c) + _long_input_rows(c) + _int8_rows(c) + _tfidf_rows(c)
                 + document_rows(m, t, c.metric, c.teacher_metric, c.tsum, c.lat))  # whole documents, when they ran
        extra[t] = {"sweep": m.result(f"{t}/B/sweep/select"), "latency": c.lat, "teacher_summary": c.tsum}
    return rows, extra


class _TaskResults:
    """One task's teacher summary, latency and export results, which every row of the task reads."""

    def __init__(self, m: Matrix, t: str):
        self.m, self.t, self.spec = m, t, m.p.tasks[t]
        self.tcfg = m.teacher_cfg(t)
        tsum = read_json(os.path.join(self.tcfg.output_dir, "summary.json"))
        self.metric = (tsum or {}).get("metric_name") or task_class(self.tcfg.task).metric_name
        self.lat = m.result(f"{t}/latency") or {}
        self.measured = self.lat.get("measured", {})
        self.exports = {k: m.result(f"{t}/export/{k}") for k in ["teacher", *m.p.students]}
        self.tagging = bool(task_class(self.tcfg.task).decodings)
        # tagging: the teacher's scores under each decoding it has; a row compares with the teacher's of its own
        teacher_runs = [(None, {"summary": tsum})] if tsum else []
        teacher_runs, self.teacher_decoding = _decoded(teacher_runs, self.tagging, self.metric, self.tcfg.output_dir)
        self.tsum = teacher_runs[0][1]["summary"] if teacher_runs else tsum
        self.teacher_metric = self.tsum["test"][self.metric] if self.tsum and self.tsum.get("test") else None
        self.teacher_by = (self.teacher_decoding or {}).get("by_decoding") or {}
        self.teacher_p50 = (self.measured.get("teacher") or {}).get("p50_ms")

    def teacher_for(self, info: Dict, key: str = "test"):
        """The teacher's metric under the row's decoding (when both have one), else the teacher row's."""
        d = (info or {}).get("decoding")
        if d and d in self.teacher_by and self.teacher_by[d].get(key) is not None:
            return self.teacher_by[d][key]
        return self.teacher_metric if key == "test" else ((self.tsum or {}).get("dev") or {}).get(self.metric)

    def student_row(self, model: str, shape, variant: str, runs, info) -> Dict:
        return _student_row(self.t, self.spec, self.metric, model, shape, variant, runs, self.teacher_for(info),
                            info, self.teacher_for(info, "dev"))

    def add_latency(self, row: Dict, key: str) -> None:
        r = self.measured.get(key)
        if r:
            row.update(latency_ms_p50=r["p50_ms"], latency_ms_p95=r["p95_ms"],
                       throughput_per_s=r["throughput_seq_per_s"], latency_seq_len=r["seq_len"],
                       latency_backend=f"{r['backend']} {r['precision']}, {r['threads']} thread(s)")
            if self.teacher_p50:
                row["speedup_vs_teacher"] = self.teacher_p50 / r["p50_ms"]

    def add_size(self, row: Dict, key: str) -> None:
        e = self.exports.get(key)
        if e:
            row["size_mb"] = e["size_mb"]
        q = self.m.result(f"{self.t}/int8/{key}")
        if q:
            row["size_mb_int8"] = q["size_mb"]


def _teacher_row(c: _TaskResults) -> Dict:
    m, t, tsum, metric = c.m, c.t, c.tsum, c.metric
    row = _row_base(t, c.spec, metric)
    row.update(model=teacher_name(c.tcfg.model.teacher), variant="teacher", command=m.teacher_command(t),
               train_commands=[m.teacher_command(t)])
    if tsum:
        row.update(layers=tsum.get("layers"), hidden=tsum.get("hidden"), params=tsum.get("params"),
                   nonembedding_params=tsum.get("nonembedding_params"), metric=c.teacher_metric,
                   dev_metric=(tsum.get("dev") or {}).get(metric), pct_of_teacher=100.0 if c.teacher_metric else None)
        row.update(c.teacher_decoding or {})
    c.add_size(row, "teacher")
    c.add_latency(row, "teacher")
    return row


def _student_rows(c: _TaskResults) -> List[Dict]:
    """Each student x variant, aggregated over seeds."""
    m, t, out = c.m, c.t, []
    for model in m.students_b_first():
        shape = m.p.students[model]
        for variant in m.p.student_variants(model, t):
            runs = [(s, m.result(f"{t}/{model}/{variant}/seed{s}")) for s in m.p.seeds[model]]
            runs = [(s, r) for s, r in runs if r and r.get("status") == "done"]
            if not runs:
                continue
            runs, info = _decoded(runs, c.tagging, c.metric)
            row = c.student_row(model, shape, variant, runs, info)
            row["command"] = f"python tools/reproduce.py --task {t} --only {t}/{model}/{variant}"
            c.add_size(row, model)
            c.add_latency(row, model)
            out.append(row)
    return out


def _long_input_rows(c: _TaskResults) -> List[Dict]:
    """Student B reading spec.long_seq tokens, when the profile has that job and it finished."""
    m, t, spec = c.m, c.t, c.spec
    if not spec.long_seq:
        return []
    b = m.sweeper
    s = m.p.seeds[b][0]
    r = m.result(f"{t}/{b}/len{spec.long_seq}/seed{s}")
    if not (r and r.get("status") == "done"):
        return []
    runs, info = _decoded([(s, r)], c.tagging, c.metric)
    row = c.student_row(b, m.p.students[b], f"len{spec.long_seq}", runs, info)
    row["model"] += f", {spec.long_seq} tokens"
    row["command"] = f"python tools/reproduce.py --task {t} --only {r['name']}"
    c.add_size(row, b)
    c.add_latency(row, f"{b}-len{spec.long_seq}")
    return [row]


def _int8_rows(c: _TaskResults) -> List[Dict]:
    m, t, out = c.m, c.t, []
    for model in m.students_b_first():
        q = m.result(f"{t}/int8/{model}")
        if not q:
            continue
        # an INT8 row is scored by its export's evaluation, with the decoding its source run recorded
        info = {"decoding": q["summary"].get("decoding") or dec.UNRECORDED,
                "decoding_source": "INT8 evaluation"} if c.tagging else None
        row = c.student_row(model, m.p.students[model], "int8", [(m.p.seeds[model][0], q)], info)
        row["model"] += f" ({m.export_variant(model, t)} seed {m.p.seeds[model][0]}, ONNX Runtime INT8)"
        row["source_metric"] = q["summary"]["source_test"][c.metric]
        row["size_mb"] = q["size_mb"]
        row["size_mb_int8"] = q["size_mb"]
        row["command"] = f"python tools/reproduce.py --task {t} --only {q['name']}"
        row["train_commands"] = q.get("commands")
        c.add_latency(row, f"{model}-int8")
        out.append(row)
    return out


def _tfidf_rows(c: _TaskResults) -> List[Dict]:
    out = []
    for sub in ("subset", "all"):
        r = c.m.result(f"{c.t}/tfidf_lr/{sub}")
        if not r:
            continue
        row = _row_base(c.t, c.spec, c.metric)
        acc = r["summary"]["test"]["accuracy"]
        row.update(model=f"TF-IDF + LR ({r['summary']['train_examples']} reviews)", variant="tfidf_lr",
                   metric=acc, dev_metric=r["summary"]["dev"]["accuracy"], command=r["commands"][0],
                   train_commands=r["commands"], hyperparameters={"C": r["summary"]["C"]},
                   pct_of_teacher=100 * acc / c.teacher_metric if c.teacher_metric else None)
        tl = (c.lat.get("tfidf") or {}).get(sub)
        if tl:
            row.update(latency_ms_p50=tl["p50_ms"], latency_ms_p95=tl["p95_ms"],
                       throughput_per_s=tl["throughput_seq_per_s"], latency_backend=tl["note"],
                       speedup_vs_teacher=c.teacher_p50 / tl["p50_ms"] if c.teacher_p50 else None)
        out.append(row)
    return out


def _decoded(runs: List[Tuple], tagging: bool, metric: str,
             run_dir: Optional[str] = None) -> Tuple[List[Tuple], Dict]:
    """Tagging runs with the dev/test scores of one decoding, the default when every run has it (summary.json or
    decoding.json, see bench/decoding.py), and what the row records about it: {"decoding", "decoding_source",
    "by_decoding": {decoding: mean dev/test metric}}. Other tasks: the runs unchanged, {}."""
    if not tagging or not runs:
        return runs, {}
    per_run = [dec.run_scores(r["summary"], run_dir or r["summary"].get("output_dir")) for _, r in runs]
    chosen = dec.choose(per_run)
    if chosen is None:  # seeds scored under different decodings and not re-scored: shown as recorded, and said so
        return runs, {"decoding": "mixed (" + ", ".join(sorted({d for sc in per_run for d in sc})) + ")",
                      "decoding_source": "summary.json"}
    by = {}
    for d in sorted({d for scores in per_run for d in scores}):
        if all(d in scores for scores in per_run):
            by[d] = {split: _mean([(scores[d].get(split) or {}).get(metric) for scores in per_run])
                     for split in ("dev", "test")}
    out = [(s, dict(r, summary=dict(r["summary"], dev=scores[chosen]["dev"], test=scores[chosen]["test"])))
           for (s, r), scores in zip(runs, per_run)]
    sources = sorted({scores[chosen]["source"] for scores in per_run})
    # training-time evaluation picked each run's best/ by dev under the decoding its summary records
    selected = sorted({r["summary"].get("decoding") or dec.UNRECORDED for _, r in runs})
    return out, {"decoding": chosen, "decoding_source": " + ".join(sources), "by_decoding": by,
                 "best_selected_by": " + ".join(selected)}


def _mean(values):
    return statistics.mean(values) if values and all(v is not None for v in values) else None


def _f(x, fmt="{:.2f}", none="–"):
    return none if x is None else fmt.format(x)


def _metric_cell(row: Dict) -> str:
    if row["metric"] is None:
        return "–"
    scale = 100.0
    cell = f"{scale * row['metric']:.2f}"
    if row.get("metric_std") is not None:
        cell += f" ± {scale * row['metric_std']:.2f}"
    return cell


def markdown_table(rows: List[Dict]) -> str:
    """One task's results table; with a recorded teacher row among `rows` (full-data or case ids), a column of
    each row's % of it."""
    second = second_teacher(rows)
    head = ["model", "variant", "L×H", "params (non-emb.)", "FP32 MB", "INT8 MB", "test metric (%)", "% of teacher",
            *([PCT_HEADS[second["variant"]]] if second else []), "p50 ms", "p95 ms", "seq/s @32", "speed-up"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        lh = f"{r['layers']}×{r['hidden']}" if r["layers"] else "–"
        params = f"{r['params'] / 1e6:.2f}M ({r['nonembedding_params'] / 1e6:.2f}M)" if r["params"] else "–"
        seeds = f" (seeds {','.join(map(str, r['seeds']))})" if r.get("seeds") and len(r["seeds"]) > 1 else ""
        lines.append("| " + " | ".join([
            r["model"] + (" †" if r.get("carried") else ""), r["variant"], lh, params, _f(r["size_mb"], "{:.1f}"), _f(r["size_mb_int8"], "{:.1f}"),
            _metric_cell(r) + seeds, _f(r["pct_of_teacher"], "{:.1f}"),
            *([_f(pct_of(r, second), "{:.1f}")] if second else []), latency_cell(r), _f(r["latency_ms_p95"]),
            _f(r["throughput_per_s"], "{:.0f}"), _f(r["speedup_vs_teacher"], "{:.1f}×")]) + " |")
    return "\n".join(lines)


def _get(rows, task, model_key, variant):
    for r in rows:
        if r["task"] == task and r["variant"] == variant and (model_key is None or f"student {model_key} " in
                                                              r["model"] + " ") and "tokens" not in r["model"]:
            return r
    return None


GOALS = {  # task -> (min % of teacher for A, for B, min KD gain in points for B)
    "imdb": (99.0, 97.0, 1.5),
    "conll": (97.0, 93.0, 2.0),
}


def _paired(a: Dict, b: Dict) -> Tuple[List[str], float, float]:
    """Seeds both rows ran, and each row's mean test metric over exactly those seeds (rows with different seed
    sets, e.g. 3 seeds vs 1, are compared like for like)."""
    pa, pb = a.get("per_seed") or {}, b.get("per_seed") or {}
    common = sorted(set(pa) & set(pb), key=int)
    if not common:
        return [], a["metric"], b["metric"]
    return common, statistics.mean(pa[k] for k in common), statistics.mean(pb[k] for k in common)


def _seeds_note(common: List[str], a: Dict, b: Dict) -> str:
    if len(common) == len(a.get("per_seed") or {}) == len(b.get("per_seed") or {}):
        return f"mean of {len(common)} seed{'s' if len(common) != 1 else ''}"
    return f"on the seed{'s' if len(common) != 1 else ''} both ran: {', '.join(common)}"


def goals(rows: List[Dict], tasks: Sequence[str]) -> List[str]:
    out = []
    for t in tasks:
        if t not in GOALS:
            continue
        a_goal, b_goal, gain_goal = GOALS[t]
        name = "accuracy" if t == "imdb" else "F1"
        for model, goal in (("A", a_goal), ("B", b_goal)):
            cands = [r for r in (_get(rows, t, model, v) for v in ("task_kd", "two_stage_kd")) if r and r["metric"]]
            if not cands:
                out.append(f"- {t}: student {model} ≥ {goal:g}% of the teacher's {name}: not measured yet.")
                continue
            best = max(cands, key=lambda r: r["metric"])
            met = best["pct_of_teacher"] >= goal
            parts = ", ".join(f"{r['variant']} {r['pct_of_teacher']:.1f}%" for r in cands)
            out.append(f"- {t}: student {model} ≥ {goal:g}% of the teacher's {name} — **{'met' if met else 'not met'}**"
                       f" ({parts}).")
        for model in ("B", "A"):
            nokd = _get(rows, t, model, "no_kd")
            for v in ("task_kd", "two_stage_kd"):
                kd = _get(rows, t, model, v)
                if not (nokd and kd and nokd["metric"] is not None and kd["metric"] is not None):
                    continue
                common, kd_mean, nokd_mean = _paired(kd, nokd)
                gain = 100 * (kd_mean - nokd_mean)
                if model == "B":
                    out.append(f"- {t}: B with KD ({v}) beats B without KD by ≥ {gain_goal:g} points "
                               f"({_seeds_note(common, kd, nokd)}) — **{'met' if gain >= gain_goal else 'not met'}**: "
                               f"{gain:+.2f} points ({100 * kd_mean:.2f} vs {100 * nokd_mean:.2f}).")
                else:
                    out.append(f"- {t}: A, {v} vs no_kd (one seed, for reference): {gain:+.2f} points.")
        teacher = _get(rows, t, None, "teacher")
        for model, goal in (("A", 4.0), ("B", 10.0)):
            r = _get(rows, t, model, "no_kd") or _get(rows, t, model, "task_kd") or _get(rows, t, model, "two_stage_kd")
            if r and r.get("speedup_vs_teacher") and teacher and teacher.get("latency_ms_p50"):
                met = r["speedup_vs_teacher"] >= goal
                # a carried-over row keeps the speed-up of its own run: name that run's teacher time, not today's
                teacher_ms = r["latency_ms_p50"] * r["speedup_vs_teacher"] if r.get("carried") \
                    else teacher["latency_ms_p50"]
                when = " (both from the earlier run the row is carried over from, †)" if r.get("carried") else ""
                out.append(f"- {t}: latency, student {model} ≥ {goal:g}× faster than the exported teacher (batch 1, "
                           f"seq 128, Paddle Inference FP32) — **{'met' if met else 'not met'}**: "
                           f"{r['latency_ms_p50']:.2f} ms vs {teacher_ms:.2f} ms p50{when} = "
                           f"{r['speedup_vs_teacher']:.1f}×.")
            else:
                out.append(f"- {t}: latency goal for student {model} (≥ {goal:g}×): not measured yet.")
    return out


def by_dev(r: Dict) -> float:
    """Recipes are chosen as a user would: by the dev metric (the test metric only when dev is missing)."""
    return r["dev_metric"] if r.get("dev_metric") is not None else r["metric"]


def summary_lines(rows: List[Dict], tasks: Sequence[str], variants: Sequence[str] = VARIANTS) -> List[str]:
    """One line per task: the teacher, and each student's best variant with its speed-up. "Best" is by the dev
    metric, as a user would choose (and as the goal sections do); the test metric only when dev is missing."""
    out = []
    for t in tasks:
        teacher = _get(rows, t, None, "teacher")
        if not teacher or teacher["metric"] is None:
            out.append(f"- {t}: teacher not finished yet.")
            continue
        name = METRIC_LABEL.get(teacher["metric_name"], teacher["metric_name"])
        bits = [f"teacher {100 * teacher['metric']:.2f} {name}"]
        for model in ("A", "B", "Ap", "Ap3", "Bp", "P3"):
            cands = [r for r in (_get(rows, t, model, v) for v in variants) if r and r["metric"] is not None]
            if not cands:
                continue
            best = max(cands, key=by_dev)
            nokd = _get(rows, t, model, "no_kd")
            speed = f", {best['speedup_vs_teacher']:.1f}× faster" if best.get("speedup_vs_teacher") else ""
            gain = (f", {100 * (best['metric'] - nokd['metric']):+.2f} vs no_kd"
                    if nokd and nokd is not best and nokd["metric"] is not None else "")
            bits.append(f"student {model} best on dev = {best['variant']} {_metric_cell(best)} "
                        f"({best['pct_of_teacher']:.1f}% of teacher{gain}{speed})")
        for r in rows:
            if r["task"] == t and r["variant"] == "tfidf_lr" and r["metric"] is not None:
                bits.append(f"{r['model']} {100 * r['metric']:.2f}")
        out.append(f"- **{t}**: " + "; ".join(bits) + ".")
    return out
