"""INT8: ONNX Runtime post-training quantization of model.onnx into model.int8.onnx, and its agreement check."""
from __future__ import annotations

import os
from typing import Dict, List, Optional, Sequence

import numpy as np

from ernie_tiny_distill.deploy import layout
from ernie_tiny_distill.deploy.encoding import TextEncoder
from ernie_tiny_distill.deploy.engines import OnnxEngine
from ernie_tiny_distill.deploy.onnx_export import require_onnx_tools, write_onnx_files
from ernie_tiny_distill.errors import UserError
from ernie_tiny_distill.util import fsutil

INT8_METHODS = ("static", "dynamic")


def quantize_int8(export_dir: str, calibration_texts: Optional[Sequence[str]] = None, *, method: str = "dynamic",
                  num_calibration: int = 300) -> Dict:
    """Add model.int8.onnx to an export directory (adds model.onnx first when it is missing).

    Every MatMul with a weight input (Q/K/V/output projections, FFN, pooler, classifier) is quantized with
    per-channel int8 weights; attention's activation x activation MatMuls and the embeddings stay FP32.
    method "dynamic" (default): activation scales computed per batch at run time; the texts only serve
    the agreement check recorded in export.json.
    method "static": ONNX Runtime post-training static quantization (QDQ, uint8 activations) whose
    activation ranges are calibrated (min/max) on `num_calibration` texts.
    On MiniLM-L6 fine-tuned on the demo data, argmax agreement with FP32 on 300 held-out texts was 97%
    (dynamic) vs 93% (static min/max; 94% with 99.99-percentile calibration) for classification and
    99.1% vs 97.4% of NER token rows, at about the same speed, hence the default.
    """
    meta = layout.read_export_metadata(export_dir, need=(layout.MODEL_FILE, layout.PARAMS_FILE))
    if not os.path.isfile(os.path.join(export_dir, layout.ONNX_FILE)):
        meta["onnx"] = write_onnx_files(export_dir)
    meta["int8"] = write_int8_file(export_dir, calibration_texts, method, num_calibration)
    meta["files"] = layout.file_sizes(export_dir)
    layout.write_json(os.path.join(export_dir, layout.EXPORT_FILE), meta)
    return meta


def write_int8_file(export_dir: str, texts: Optional[Sequence[str]], method: str = "dynamic",
                    num_calibration: int = 300) -> Dict:
    """Quantize model.onnx into model.int8.onnx; returns the "int8" record of export.json."""
    if method not in INT8_METHODS:
        raise UserError(f"INT8 method must be one of {', '.join(INT8_METHODS)}, got {method!r}")
    require_onnx_tools("INT8 quantization")
    try:
        import onnx
        from onnxruntime.quantization import (
            CalibrationDataReader,
            QuantFormat,
            QuantType,
            quantize_dynamic,
            quantize_static,
        )
        from onnxruntime.quantization.shape_inference import quant_pre_process
    except ImportError as e:
        raise UserError(f"onnxruntime.quantization could not be imported ({e})", hint="pip install ml_dtypes") from None
    texts = [t for t in (texts or []) if isinstance(t, str) and t.strip()]
    if method == "static" and not texts:
        raise UserError("static INT8 quantization needs non-empty calibration texts")
    texts = texts[:num_calibration]
    src = os.path.join(export_dir, layout.ONNX_FILE)
    pre = os.path.join(export_dir, f".pre-{os.getpid()}.onnx")
    out = os.path.join(export_dir, layout.INT8_ONNX_FILE)
    try:
        quant_pre_process(src, pre, skip_symbolic_shape=True)
        skip = activation_matmuls(pre)
        with fsutil.atomic_path(out) as tmp_out:  # model.int8.onnx appears complete or not at all
            if method == "dynamic":
                # DefaultTensorType: shape inference does not type the outputs of com.microsoft operators (a graph
                # fused by ONNX Runtime's transformer optimizer); every activation here is float32
                quantize_dynamic(pre, tmp_out, weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"],
                                 per_channel=True, nodes_to_exclude=skip,
                                 extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
            else:
                encoder = TextEncoder(export_dir)
                features = encoder.calibration_features(texts)
                batches = [encoder.collate(features[i:i + 16]) for i in range(0, len(features), 16)]

                class Reader(CalibrationDataReader):
                    def __init__(self):
                        self.it = iter(batches)

                    def get_next(self):
                        batch = next(self.it, None)
                        return None if batch is None else {"input_ids": batch[0], "token_type_ids": batch[1]}

                quantize_static(pre, tmp_out, Reader(), quant_format=QuantFormat.QDQ,
                                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                                op_types_to_quantize=["MatMul"], per_channel=True, nodes_to_exclude=skip)
    except UserError:
        raise
    except Exception as e:
        raise UserError(f"ONNX Runtime INT8 quantization failed: {type(e).__name__}: {e}") from None
    finally:
        if os.path.exists(pre):
            os.remove(pre)
        for f in os.listdir(export_dir):  # calibration leaves augmented models behind in some versions
            if f.startswith("augmented_model") and f.endswith(".onnx"):
                os.remove(os.path.join(export_dir, f))
    record = {"file": layout.INT8_ONNX_FILE, "method": method, "quantized": "MatMul with a weight input (per-channel int8)",
              "kept_fp32_matmuls": len(skip),
              "calibration_texts": len(texts) if method == "static" else 0, "backend": "onnxruntime"}
    if texts:
        record.update(int8_agreement(export_dir, texts[:64]))
    return record


def activation_matmuls(onnx_file: str) -> List[str]:
    """MatMul nodes whose inputs are both activations (Q @ K^T, attention @ V): they stay in FP32.

    Quantizing them costs accuracy and, as QDQ around dynamic tensors, makes ONNX Runtime slower.
    """
    import onnx

    graph = onnx.load(onnx_file, load_external_data=False).graph
    constant = {i.name for i in graph.initializer}
    constant |= {o for n in graph.node if n.op_type == "Constant" for o in n.output}
    return [n.name for n in graph.node if n.op_type == "MatMul" and not any(i in constant for i in n.input)]


def int8_agreement(export_dir: str, texts: Sequence[str]) -> Dict:
    """How often the INT8 model's predictions equal the FP32 model's on `texts`: argmax per text
    (classification) or per word (NER), and the largest logit difference among those rows."""
    encoder = TextEncoder(export_dir)
    features = encoder.calibration_features(texts)
    fp32 = OnnxEngine(os.path.join(export_dir, layout.ONNX_FILE), num_threads=1)
    int8 = OnnxEngine(os.path.join(export_dir, layout.INT8_ONNX_FILE), num_threads=1)
    same = total = 0
    diff = 0.0
    for i in range(0, len(features), 16):
        ids, types = encoder.collate(features[i:i + 16])
        batch = features[i:i + 16]
        # the prediction rows: one per text, or one per word (its first sub-word)
        a = encoder.task.feature_rows(fp32.run(ids, types), batch)
        b = encoder.task.feature_rows(int8.run(ids, types), batch)
        same += int((a.argmax(-1) == b.argmax(-1)).sum())
        total += a.shape[0]
        diff = max(diff, float(np.abs(a - b).max()))
    return {"agreement_with_fp32": same / max(1, total), "rows_compared": total,
            "max_abs_logit_diff_vs_fp32": diff}
