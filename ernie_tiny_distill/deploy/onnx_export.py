"""ONNX export: model.onnx converted from the Paddle Inference graph by paddle2onnx, checked against it."""
from __future__ import annotations

import os
from typing import Dict, Sequence

import numpy as np

from ernie_tiny_distill.deploy import layout
from ernie_tiny_distill.deploy.engines import OnnxEngine, PaddleEngine
from ernie_tiny_distill.deploy.predictor import probe_inputs
from ernie_tiny_distill.errors import UserError
from ernie_tiny_distill.tasks.adapters import task_class
from ernie_tiny_distill.util import fsutil


def max_abs_diff(a: Sequence[np.ndarray], b: Sequence[np.ndarray]) -> float:
    """Largest |a - b| over paired arrays; NaN when any value is NaN (so a tolerance check fails)."""
    diffs = [float(np.abs(x.astype("float64") - y.astype("float64")).max()) for x, y in zip(a, b) if x.size]
    if any(np.isnan(d) for d in diffs):
        return float("nan")
    return max(diffs, default=0.0)


def require_onnx_tools(for_what: str):
    try:
        import onnxruntime  # noqa: F401
        import paddle2onnx  # noqa: F401
    except ImportError as e:
        raise UserError(f"{for_what} needs paddle2onnx and onnxruntime ({e})",
                        hint="pip install 'ernie_tiny_distill[onnx]'") from None


def write_onnx_files(export_dir: str, opset: int = 14) -> Dict:
    """paddle2onnx, then ONNX Runtime's basic (portable) graph optimization, written as model.onnx.

    The basic pass folds the constant mask that paddle2onnx multiplies into the word embedding (it
    handles padding_idx), which would otherwise double the file size.
    """
    require_onnx_tools("ONNX export")
    import onnxruntime as ort
    import paddle2onnx

    raw = os.path.join(export_dir, f".raw-{os.getpid()}.onnx")
    final = os.path.join(export_dir, layout.ONNX_FILE)
    try:
        try:
            paddle2onnx.export(os.path.join(export_dir, layout.MODEL_FILE), os.path.join(export_dir, layout.PARAMS_FILE),
                               save_file=raw, opset_version=opset, enable_onnx_checker=True,
                               optimize_tool="None", verbose=False)
        except Exception as e:  # paddle2onnx raises plain Exceptions/RuntimeErrors from C++
            raise UserError(f"paddle2onnx could not convert {layout.MODEL_FILE}: {e}") from None
        with fsutil.atomic_path(final) as tmp_final:  # model.onnx appears complete or not at all
            options = ort.SessionOptions()
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
            options.optimized_model_filepath = tmp_final  # ONNX format: only an .ort suffix selects ORT format
            options.log_severity_level = 3
            ort.InferenceSession(raw, options, providers=["CPUExecutionProvider"])
    finally:
        if os.path.exists(raw):
            os.remove(raw)
    check = _onnx_parity(export_dir, layout.ONNX_FILE)
    import paddle2onnx as p2o

    return {"file": layout.ONNX_FILE, "opset": opset, "paddle2onnx_version": getattr(p2o, "__version__", "?"),
            "onnxruntime_version": ort.__version__, **check}


def _onnx_parity(export_dir: str, onnx_file: str) -> Dict:
    meta = layout.read_export_metadata(export_dir)
    ids = probe_inputs(meta["vocab_size"], meta["pad_token_id"], seed=1)
    types = np.zeros_like(ids)
    ref = PaddleEngine(export_dir, num_threads=1, use_mkldnn=True, precision="fp32", device="cpu").run(ids, types)
    got = OnnxEngine(os.path.join(export_dir, onnx_file), num_threads=1, device="cpu").run(ids, types)
    task = task_class(meta["task"])
    lengths = (ids != meta["pad_token_id"]).sum(1)
    diff = max_abs_diff([task.slice_logits(ref, i, n) for i, n in enumerate(lengths)],
                        [task.slice_logits(got, i, n) for i, n in enumerate(lengths)])
    return {"max_abs_diff_vs_paddle": diff}
