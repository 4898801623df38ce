"""A small search for a student's shape, chosen by measured speed: each candidate is born from the teacher, trained
briefly with one recipe, exported, and timed model-only (batch 1, 128 tokens, Paddle Inference FP32, 1 thread) and
per real request (the test split's own texts, tokenization included), interleaved with the teacher in one run.
The dev-best candidate whose model-only speed-up reaches the budget is kept.

    python -m benchmarks.shapes --config STUDENT_CONFIG --teacher-export DIR --out DIR
        [--candidate 2x128x4x512 ...] [--steps 600] [--budget 10] [--texts 300] [key=value ...]

STUDENT_CONFIG is a task-stage config (a recipe's, or the benchmark's generated one) and key=value overrides apply
to every candidate (e.g. the teacher). A candidate is LAYERSxHIDDENxHEADSxFFN: teacher layers kept evenly up to the
top one, heads and FFN neurons per layer by importance, the residual width by PCA (model.student.init
teacher_pruned). Each candidate trains `--steps` optimisation steps (dev evaluated 3 times, the best kept); a
candidate whose run finished is not trained again, so the search resumes. Writes OUT/shapes.json and
OUT/shapes.md (the table printed at the end).
"""
from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
from typing import Dict, List, Optional, Sequence

from benchmarks.util import read_json, write_json, write_text
from ernie_tiny_distill.errors import UserError

DEFAULT_CANDIDATES = ("2x128x4x512", "3x128x4x256", "4x128x2x256", "2x192x4x256", "3x160x4x256", "2x256x2x256")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parse_candidate(text: str) -> Dict:
    """`LAYERSxHIDDENxHEADSxFFN` -> its shape; a name that is not four positive integers is refused."""
    parts = text.lower().split("x")
    if len(parts) != 4 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise UserError(f"--candidate: expected LAYERSxHIDDENxHEADSxFFN (four positive integers, e.g. 2x128x4x512), "
                        f"got {text!r}")
    layers, hidden, heads, ffn = map(int, parts)
    return {"name": "x".join(parts), "layers": layers, "hidden": hidden, "heads": heads, "ffn": ffn}


def teacher_layers(kept: int, total: int) -> List[int]:
    """`kept` of the teacher's `total` layers (0-based), evenly spaced and ending with the top layer: 2 of 6 ->
    [2, 5] (the recipe's every third layer), 3 of 6 -> [1, 3, 5]."""
    if not 1 <= kept <= total:
        raise UserError(f"--candidate: a student keeps 1..{total} of the teacher's {total} layers, got {kept}")
    return [(i + 1) * total // kept - 1 for i in range(kept)]


def train_overrides(candidate: Dict, total_layers: int, out_dir: str, steps: int) -> List[str]:
    """The tools/train.py overrides that give a run of the candidate's shape and length."""
    layers = teacher_layers(candidate["layers"], total_layers)
    return [f"output_dir={out_dir}", "model.student.init=teacher_pruned", "model.student.every_k=null",
            f"model.student.layers=[{', '.join(map(str, layers))}]", f"model.student.hidden_size={candidate['hidden']}",
            f"model.student.num_heads={candidate['heads']}", f"model.student.intermediate_size={candidate['ffn']}",
            f"train.max_steps={steps}", "train.min_steps=null", f"train.eval_every={max(1, steps // 3)}",
            "train.patience=null", "train.progress=false"]


def choose(rows: Sequence[Dict], budget: float) -> Optional[Dict]:
    """The dev-best row whose model-only speed-up is at least `budget` (None when no row reaches it)."""
    inside = [r for r in rows if r["speedup_model"] >= budget]
    return max(inside, key=lambda r: (r["dev"], r["speedup_model"])) if inside else None


def table(rows: Sequence[Dict], budget: float, metric: str, steps: int) -> List[str]:
    """The search's markdown table, the kept candidate marked."""
    kept = choose(rows, budget)
    lines = [f"| shape (layers × hidden, heads, FFN) | teacher layers | params | dev {metric} after {steps} steps (%) | "
             "model-only p50 ms | speed-up | per request p50 ms | speed-up | within ≥ "
             f"{budget:g}x |", "|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: -r["speedup_model"]):
        mark = " **(kept)**" if r is kept else ""
        lines.append(f"| {r['layers']} × {r['hidden']}, {r['heads']} heads, FFN {r['ffn']}{mark} | "
                     f"{r['teacher_layers']} | {r['params'] / 1e6:.2f}M | {100 * r['dev']:.2f} | "
                     f"{r['model_p50_ms']:.2f} | {r['speedup_model']:.1f}x | {r['request_p50_ms']:.2f} | "
                     f"{r['speedup_request']:.1f}x | {'yes' if r['speedup_model'] >= budget else 'no'} |")
    return lines


def _run(cmd: List[str]) -> None:
    print("+ " + " ".join(cmd), flush=True)
    if subprocess.run(cmd, cwd=REPO).returncode != 0:
        raise UserError(f"failed: {' '.join(cmd)}")


def _test_texts(config: str, overrides: Sequence[str], count: int) -> List[str]:
    """`count` texts of the config's test split (seeded sample): the requests the candidates are timed on."""
    from ernie_tiny_distill.config import load_config
    from ernie_tiny_distill.data.load import load_splits
    from ernie_tiny_distill.deploy.latency_review import sample_texts

    cfg = load_config(config, list(overrides))
    test = load_splits(cfg.data, cfg.task).test or []
    texts = [e.text if hasattr(e, "text") else " ".join(e.tokens) for e in test]
    return sample_texts(texts, count)


def measure(teacher_export: str, exports: Dict[str, str], texts: List[str]) -> Dict[str, Dict]:
    """Model-only and per-request p50 of the teacher and every candidate export, each interleaved in one run."""
    from ernie_tiny_distill.deploy import latency, latency_review

    names = {"teacher": teacher_export, **exports}
    model = latency.measure_interleaved([{"key": k, "export_dir": d, "backend": "paddle", "precision": "fp32",
                                          "seq_len": 128} for k, d in names.items()], iterations=100, rounds=5)
    request = latency_review.measure_per_review([{"key": k, "export_dir": d, "backend": "paddle",
                                                  "precision": "fp32"} for k, d in names.items()], texts)
    return {k: {"model_p50_ms": model[k]["p50_ms"], "request_p50_ms": request[k]["p50_ms"]} for k in names}


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.shapes", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="a task-stage config every candidate trains with")
    parser.add_argument("--teacher-export", required=True, help="the teacher's export directory (timed beside)")
    parser.add_argument("--out", required=True, help="where candidate runs, exports and the table go")
    parser.add_argument("--candidate", action="append", help="LAYERSxHIDDENxHEADSxFFN (repeatable; default: "
                                                             + ", ".join(DEFAULT_CANDIDATES) + ")")
    parser.add_argument("--steps", type=int, default=600, help="optimisation steps per candidate")
    parser.add_argument("--budget", type=float, default=10.0, help="minimum model-only speed-up vs the teacher")
    parser.add_argument("--texts", type=int, default=300, help="test texts each model is timed on per request")
    parser.add_argument("overrides", nargs="*", help="key=value overrides of the config for every candidate")
    args = parser.parse_args(argv)
    candidates = [parse_candidate(c) for c in (args.candidate or DEFAULT_CANDIDATES)]
    if args.steps < 3:
        raise UserError(f"--steps: at least 3 (dev is evaluated 3 times), got {args.steps}")
    teacher_meta = read_json(os.path.join(args.teacher_export, "export.json"))
    if not isinstance(teacher_meta, dict) or not teacher_meta.get("layers"):
        raise UserError(f"--teacher-export: {args.teacher_export}/export.json with the teacher's layers expected "
                        "(python tools/export.py writes it)")
    total = int(teacher_meta["layers"])
    exports, trained = {}, {}
    for c in candidates:
        run = os.path.join(args.out, c["name"])
        if not os.path.isfile(os.path.join(run, "summary.json")):
            _run([sys.executable, "tools/train.py", "--config", args.config, *args.overrides,
                  *train_overrides(c, total, run, args.steps)])
        export = os.path.join(run, "export")
        if not os.path.isfile(os.path.join(export, "export.json")):
            _run([sys.executable, "tools/export.py", "--model", os.path.join(run, "best"), "--out", export,
                  "--threads", "1"])
        exports[c["name"]], trained[c["name"]] = export, read_json(os.path.join(run, "summary.json"))
    first = train_overrides(candidates[0], total, os.path.join(args.out, candidates[0]["name"]), args.steps)
    speed = measure(args.teacher_export, exports, _test_texts(args.config, [*args.overrides, *first], args.texts))
    metric = trained[candidates[0]["name"]]["metric_name"]
    rows = [dict(c, teacher_layers=teacher_layers(c["layers"], total), params=trained[c["name"]]["params"],
                 dev=trained[c["name"]]["dev"][metric], **speed[c["name"]],
                 speedup_model=speed["teacher"]["model_p50_ms"] / speed[c["name"]]["model_p50_ms"],
                 speedup_request=speed["teacher"]["request_p50_ms"] / speed[c["name"]]["request_p50_ms"])
            for c in candidates]
    lines = table(rows, args.budget, metric, args.steps)
    command = "python -m benchmarks.shapes " + shlex.join(argv if argv is not None else sys.argv[1:])
    write_json(os.path.join(args.out, "shapes.json"), {"command": command, "teacher": speed["teacher"],
                                                        "budget": args.budget, "steps": args.steps, "rows": rows})
    write_text(os.path.join(args.out, "shapes.md"), "\n".join([f"`{command}`", "", *lines]) + "\n")
    print("\n".join(lines))
    kept = choose(rows, args.budget)
    print(f"kept: {kept['name']} (dev {100 * kept['dev']:.2f})" if kept else
          f"no candidate reaches {args.budget:g}x model-only")
    return 0


if __name__ == "__main__":
    from ernie_tiny_distill.cli import main_wrapper

    sys.exit(main_wrapper(lambda: main([a for a in sys.argv[1:] if a != "--debug"]), "--debug" in sys.argv))
