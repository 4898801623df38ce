"""Does ONNX Runtime's transformer optimizer make an exported student faster? (model.onnx, before/after INT8)

    python -m benchmarks.ort_fusion --export EXPORT_DIR [--tokens 16] [--rounds 30] [--calls 200] [--out DIR]

Runs `onnxruntime.transformers.optimizer.optimize_model(model_type="bert")` on the export's model.onnx, quantizes
both graphs as tools/export.py --int8 does (deploy/quantize.py), and times the four models interleaved, batch 1,
`--tokens` tokens, 1 thread. Prints the fusions it found, node counts and the median milliseconds per call.
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time

import numpy as np


def _nodes(path: str) -> int:
    import onnx

    return len(onnx.load(path).graph.node)


def _session(path: str):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads, options.log_severity_level = 1, 1, 3
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--export", required=True, help="an export directory with model.onnx (tools/export.py --onnx)")
    parser.add_argument("--tokens", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--calls", type=int, default=200, help="calls per model per round")
    parser.add_argument("--out", help="keep the fused models here (default: a temporary directory)")
    args = parser.parse_args(argv)

    from onnxruntime.transformers.optimizer import optimize_model

    from ernie_tiny_distill.deploy import layout
    from ernie_tiny_distill.deploy.quantize import write_int8_file

    meta = layout.read_export_metadata(args.export)
    work = args.out or tempfile.mkdtemp(prefix="ort-fusion-")
    plain, fused = os.path.join(work, "plain"), os.path.join(work, "fused")
    for d in (plain, fused):
        shutil.copytree(args.export, d, dirs_exist_ok=True)
    model = optimize_model(os.path.join(plain, layout.ONNX_FILE), model_type="bert", num_heads=int(meta["heads"]),
                           hidden_size=int(meta["hidden"]), opt_level=0)
    fusions = {k: v for k, v in model.get_fused_operator_statistics().items() if v}
    model.save_model_to_file(os.path.join(fused, layout.ONNX_FILE))
    for d in (plain, fused):
        write_int8_file(d, None)
    files = {f"{name} {precision}": os.path.join(d, file) for name, d in (("plain", plain), ("fused", fused))
             for precision, file in (("fp32", layout.ONNX_FILE), ("int8", layout.INT8_ONNX_FILE))}
    sessions = {k: _session(f) for k, f in files.items()}
    rng = np.random.default_rng(0)
    ids = rng.integers(1000, int(meta["vocab_size"]), size=(1, args.tokens)).astype("int64")
    feed = {"input_ids": ids, "token_type_ids": np.zeros_like(ids)}
    reference = {k: s.run(None, feed)[0] for k, s in sessions.items()}
    times = {k: [] for k in sessions}
    for r in range(args.rounds):
        order = list(sessions) if r % 2 == 0 else list(sessions)[::-1]
        for key in order:
            start = time.perf_counter()
            for _ in range(args.calls):
                sessions[key].run(None, feed)
            times[key].append(1000 * (time.perf_counter() - start) / args.calls)
    print(f"fusions found: {fusions}")
    print("| model | nodes | median ms per call | max |Δ| vs plain of the same precision |")
    print("|---|---|---|---|")
    out = {}
    for key, path in files.items():
        base = reference[key.replace("fused", "plain")]
        diff = float(np.abs(reference[key] - base).max())
        out[key] = {"nodes": _nodes(path), "median_ms": float(np.median(times[key])), "max_abs_diff": diff}
        print(f"| {key} | {out[key]['nodes']} | {out[key]['median_ms']:.4f} | {diff:.2g} |")
    if not args.out:
        shutil.rmtree(work, ignore_errors=True)
    return {"fusions": fusions, "models": out}


if __name__ == "__main__":
    main()
