"""The pipeline's report: OUT/report.json (every figure) and OUT/report.md (the same, for people)."""
from __future__ import annotations

import os
import shlex
from typing import Dict, List, Optional

from ernie_tiny_distill.util import fsutil


def _pct(part: Optional[float], whole: Optional[float]) -> Optional[float]:
    return round(100.0 * part / whole, 2) if part is not None and whole else None


def _ratio(slow: Optional[float], fast: Optional[float]) -> Optional[float]:
    return round(slow / fast, 2) if slow and fast else None


def _per_step(summary: Optional[Dict]) -> Optional[float]:
    if not summary or not summary.get("train_seconds") or not summary.get("steps_run"):
        return None
    return round(summary["train_seconds"] / summary["steps_run"], 3)


def build(*, opts, recipe, user, estimate, teacher, student, control, exports, scores, split, latency,
          step_seconds, wall_seconds, skipped, assistant=None) -> Dict:
    """Every figure of the run, from the steps' records."""
    metric = student["metric_name"]
    t_score = scores["teacher_fp32"][metric]
    s_fp32, s_int8 = scores["student_fp32"][metric], scores["student_int8"][metric]
    lat = latency
    out = {
        "task": opts.task, "metric": metric, "split": split, "recipe": recipe["file"], "speedup_target": opts.speedup,
        "data": {"train": len(user.splits.train), "dev": len(user.splits.dev), "test": len(user.splits.test),
                 "transfer": len(user.splits.unlabeled), "labels": len(user.splits.labels),
                 "dev_source": user.dev_source, "transfer_source": user.transfer_source},
        "teacher": {"dir": teacher["dir"], "reused": teacher["reused"], "params": exports["teacher"]["params"],
                    "layers": exports["teacher"]["layers"], "hidden": exports["teacher"]["hidden"],
                    "dev": teacher["summary"] and teacher["summary"]["dev"], "fp32": t_score,
                    "fp32_mb": exports["teacher"]["fp32_mb"], "seconds_per_step": _per_step(teacher["summary"]),
                    "steps": teacher["summary"] and teacher["summary"]["steps_run"],
                    "check": teacher["check"], "tfidf_baseline": teacher.get("baseline")},
        "student": {"dir": student["best_dir"], "export": exports["student"]["dir"],
                    "params": exports["student"]["params"], "layers": exports["student"]["layers"],
                    "hidden": exports["student"]["hidden"], "dev": student["dev"], "fp32": s_fp32, "int8": s_int8,
                    "pct_of_teacher_fp32": _pct(s_fp32, t_score), "pct_of_teacher_int8": _pct(s_int8, t_score),
                    "fp32_mb": exports["student"]["fp32_mb"], "int8_mb": exports["student"]["int8_mb"],
                    "steps": student["steps_run"], "planned_steps": student["total_steps"],
                    "stopped_early": student["stopped_early"], "train_seconds": student["train_seconds"],
                    "seconds_per_step": _per_step(student), "transfer_examples": student["transfer_examples"]},
        "latency": {**lat, "speedup_fp32": _ratio(lat["teacher_fp32"]["p50_ms"], lat["student_fp32"]["p50_ms"]),
                    "speedup_int8": _ratio(lat["teacher_fp32"]["p50_ms"], lat["student_int8"]["p50_ms"]),
                    "how": "p50/p95 per request of one raw text (tokenization to decoded answer), the three exports "
                           "interleaved round-robin over the same texts, after 3 warm-up requests each; FP32 on the "
                           "engine that serve and predict pick by default (--backend auto: the faster at load), "
                           "INT8 on ONNX Runtime"},
        "time": {"estimate_seconds": estimate["seconds"], "estimate_parts": estimate["parts"],
                 "estimate_method": estimate["method"], "step_seconds": step_seconds,
                 "steps_total_seconds": round(sum(step_seconds.values()), 1),
                 "this_call_seconds": round(wall_seconds, 1), "skipped_steps": list(skipped)},
        "commands": commands(exports["student"]["dir"]),
    }
    if assistant is not None:
        out["assistant"] = {"dir": assistant["best_dir"], "recipe": recipe["assistant"]["recipe"],
                            "weight": recipe["assistant"]["weight"], "layers": assistant["layers"],
                            "hidden": assistant["hidden"], "dev": assistant["dev"], "steps": assistant["steps_run"],
                            "train_seconds": assistant["train_seconds"]}
    if control is not None:
        kd_split, ctl_split = student.get(split) or student["dev"], control.get(split) or control["dev"]
        out["control"] = {"dir": control["best_dir"], "dev": control["dev"], split: control.get(split),
                          "steps": control["steps_run"], "seconds_per_step": _per_step(control),
                          "student_" + split: student.get(split),
                          "kd_gain": round(kd_split[metric] - ctl_split[metric], 6),
                          "kd_gain_dev": round(student["dev"][metric] - control["dev"][metric], 6),
                          "how": f"student minus control, {split} {metric} of the best-on-dev checkpoints (dygraph)"}
    return out


def commands(export_dir: str) -> Dict[str, str]:
    d = shlex.quote(export_dir)
    return {"serve": f"python tools/serve.py --model {d} --backend onnx --precision int8 --port 8000",
            "predict": f"python tools/predict.py --model {d} --backend onnx --precision int8 \"your text here\"",
            "serve_fp32": f"python tools/serve.py --model {d} --port 8000",
            "evaluate": f"python tools/evaluate.py --model {d} --config CONFIG --precision int8 --backend onnx"}


def consistency_errors(r: Dict) -> List[str]:
    """Figures that disagree with each other (the report's own check; empty when consistent)."""
    errors = []
    s, t = r["student"], r["teacher"]
    for key, score in (("pct_of_teacher_fp32", s["fp32"]), ("pct_of_teacher_int8", s["int8"])):
        if s[key] is None or abs(s[key] - 100.0 * score / t["fp32"]) > 0.01:
            errors.append(f"student.{key} {s[key]} != {100.0 * score / t['fp32']:.2f}")
    lat = r["latency"]
    for key, model in (("speedup_fp32", "student_fp32"), ("speedup_int8", "student_int8")):
        expected = lat["teacher_fp32"]["p50_ms"] / lat[model]["p50_ms"]
        if abs(lat[key] - expected) > 0.01:
            errors.append(f"latency.{key} {lat[key]} != {expected:.2f}")
    if "control" in r:
        c, split, m = r["control"], r["split"], r["metric"]
        ours = (c["student_" + split] or s["dev"])[m] - (c[split] or c["dev"])[m]
        if abs(c["kd_gain"] - ours) > 1e-5:
            errors.append(f"control.kd_gain {c['kd_gain']} != {ours}")
    if r["data"]["transfer"] != s["transfer_examples"]:
        errors.append(f"data.transfer {r['data']['transfer']} != student.transfer_examples {s['transfer_examples']}")
    return errors


ENGINES = {"paddle": "Paddle Inference", "onnx": "ONNX Runtime"}


def _fmt(x, digits=4) -> str:
    return "-" if x is None else (f"{x:.{digits}f}" if isinstance(x, float) else str(x))


def _row(name: str, model: Dict, mb, score, pct, timing: Dict, speedup) -> str:
    return (f"| {name} | {model['layers']}x{model['hidden']} | {model['params'] / 1e6:.1f}M | {_fmt(mb, 2)} | "
            f"{_fmt(score)} | {_fmt(pct, 2)} | {ENGINES.get(timing.get('backend_used'), '-')} | "
            f"{timing['p50_ms']:.2f} | {timing['p95_ms']:.2f} | {_fmt(speedup, 2)} |")


def markdown(r: Dict) -> str:
    m, s, t, lat, d = r["metric"], r["student"], r["teacher"], r["latency"], r["data"]
    lines = [f"# Distillation report: {r['task']}, ~{r['speedup_target']}x recipe", "",
             f"Recipe: `{r['recipe']}`", "",
             "## Data", "",
             f"- train {d['train']}, dev {d['dev']} ({d['dev_source']}), test {d['test']}, "
             f"transfer set {d['transfer']} ({d['transfer_source']}); {d['labels']} labels", "",
             f"## Scores ({r['split']} {m}, exported models)", "",
             "| model | layers x hidden | params | MB on disk | " + m + " | % of teacher | engine | p50 ms | p95 ms | "
             "speed-up |", "|---|---|---|---|---|---|---|---|---|---|",
             _row("teacher FP32", t, t["fp32_mb"], t["fp32"], 100.0, lat["teacher_fp32"], 1.0),
             _row("student FP32", s, s["fp32_mb"], s["fp32"], s["pct_of_teacher_fp32"], lat["student_fp32"],
                  lat["speedup_fp32"]),
             _row("student INT8", s, s["int8_mb"], s["int8"], s["pct_of_teacher_int8"], lat["student_int8"],
                  lat["speedup_int8"]), "",
             f"Latency: {lat['how']}; {lat['teacher_fp32']['reviews']} texts, {lat['teacher_fp32']['threads']} "
             f"thread(s).", ""]
    check = t.get("check")
    if t["reused"]:
        lines += [f"Teacher: reused `{t['dir']}` (already fine-tuned on these labels).", ""]
    elif check:
        base = t.get("tfidf_baseline")
        lines += [f"Teacher check: dev {m} {check['teacher_dev']:.4f}"
                  + (f" against TF-IDF + LR {base['dev_accuracy']:.4f}" if base else "")
                  + f"; best at step {check.get('best_at')} of {check.get('evaluations')} evaluations"
                  + ("; trained longer once" if check.get("extended") else "")
                  + (f". Warning: {check['warning']}" if check.get("warning") else "") + ".", ""]
    if "assistant" in r:
        a = r["assistant"]
        lines += [f"Assistant: a {a['layers']}x{a['hidden']} student (`{a['recipe']}`) distilled first, dev "
                  f"{_fmt(a['dev'][m])}; the student's soft target is the mean of the teacher's and the assistant's "
                  f"(weights 1 and {a['weight']:g}).", ""]
    if "control" in r:
        c = r["control"]
        lines += ["## KD gain (--control)", "",
                  f"Student with KD {_fmt(c['student_' + r['split']][m] if c['student_' + r['split']] else None)}, "
                  f"the same born student without KD {_fmt(c[r['split']][m] if c[r['split']] else None)}: "
                  f"gain {c['kd_gain'] * 100:+.2f} points ({r['split']}; dev {c['kd_gain_dev'] * 100:+.2f}).", ""]
    tm = r["time"]
    lines += ["## Time", "",
              f"- estimate before the run: {tm['estimate_seconds']:.0f} s ({tm['estimate_method']})",
              f"- steps as run: {', '.join(f'{k} {v:.0f} s' for k, v in tm['step_seconds'].items())} "
              f"(total {tm['steps_total_seconds']:.0f} s)",
              f"- training wall time per step: teacher {_fmt(t['seconds_per_step'], 3)} s, student "
              f"{_fmt(s['seconds_per_step'], 3)} s ({s['steps']} of {s['planned_steps']} planned steps"
              + (", stopped on a dev plateau" if s["stopped_early"] else "") + ")", "",
              "## Use the student", "", "```bash", r["commands"]["serve"], r["commands"]["predict"], "```", ""]
    return "\n".join(lines)


def write(out_dir: str, r: Dict) -> None:
    fsutil.write_json(os.path.join(out_dir, "report.json"), r)
    fsutil.write_text(os.path.join(out_dir, "report.md"), markdown(r))
