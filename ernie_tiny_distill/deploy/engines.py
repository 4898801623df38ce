"""Inference engines over an export directory: Paddle Inference and ONNX Runtime, one run() for both."""
from __future__ import annotations

import os

import numpy as np

from ernie_tiny_distill.deploy import layout
from ernie_tiny_distill.errors import UserError

DEVICES = ("cpu", "gpu", "auto")
MKLDNN_CACHE_SHAPES = 64


def check_finite(logits: np.ndarray, where: str) -> np.ndarray:
    """`logits` if every value is finite; NaN/inf logits (e.g. NaN weights) are an error, never a result."""
    if not np.isfinite(logits).all():
        raise UserError("the model produces non-finite logits (NaN or inf): its weights are damaged or it "
                        "diverged in training", where=where, hint="re-export a checkpoint whose weights are finite")
    return logits


class PaddleEngine:
    """Paddle Inference predictor over inference.json/.pdiparams: run(input_ids, token_type_ids) -> logits."""

    # oneDNN builds kernels per input shape: padding to a few length buckets saves more than the padding costs
    pads_to_buckets = True

    def __init__(self, export_dir: str, *, num_threads: int = 1, use_mkldnn: bool = True, precision: str = "fp32",
                 device: str = "cpu"):
        from paddle import inference

        model, params = (os.path.join(export_dir, f) for f in (layout.MODEL_FILE, layout.PARAMS_FILE))
        for f in (model, params):
            if not os.path.isfile(f):
                raise UserError(f"incomplete export directory: {os.path.basename(f)} is missing", where=export_dir,
                                hint="re-run tools/export.py for this model")
        if precision == "int8":
            raise UserError(
                "Paddle Inference 3.3.1 has no CPU INT8 path for PIR (inference.json) models: its oneDNN "
                "passes delete quantize/dequantize ops and run FP32",
                hint="INT8 runs with ONNX Runtime: backend='onnx', precision='int8' "
                     "(export with tools/export.py --int8)")
        config = inference.Config(model, params)  # PIR: (json, pdiparams); the .pdmodel form is legacy
        self.device = resolve_device(device)
        if self.device == "gpu":
            config.enable_use_gpu(256, 0)
        else:
            config.disable_gpu()
            if use_mkldnn:
                config.enable_mkldnn()
                if precision == "bf16":
                    from paddle.base import core

                    if not core.supports_bfloat16():
                        raise UserError("this CPU has no bf16 support for oneDNN (needs AVX512-BF16 or AMX)")
                    config.enable_mkldnn_bfloat16()
            elif precision == "bf16":
                raise UserError("bf16 needs oneDNN: drop use_mkldnn=False")
        config.set_cpu_math_library_num_threads(int(num_threads))
        if self.device == "cpu" and use_mkldnn:
            # oneDNN keeps the kernels of this many input shapes; the predictor pads to a few length buckets,
            # so they all stay built (0 = unbounded, which grows with every new batch size and length)
            config.set_mkldnn_cache_capacity(MKLDNN_CACHE_SHAPES)
        config.disable_glog_info()
        try:
            predictor = inference.create_predictor(config)
        except Exception as e:
            raise UserError(f"Paddle Inference could not load the model: {e}", where=export_dir) from None
        names = predictor.get_input_names()
        if sorted(names) != sorted(layout.INPUT_NAMES):
            raise UserError(f"the exported model takes inputs {names}, expected {list(layout.INPUT_NAMES)}",
                            where=export_dir)
        self._attach(predictor)

    def _attach(self, predictor) -> None:
        self.predictor = predictor
        self.inputs = [predictor.get_input_handle(name) for name in layout.INPUT_NAMES]
        self.output = predictor.get_output_handle(predictor.get_output_names()[0])

    def clone(self) -> "PaddleEngine":
        """An engine sharing these weights with a predictor of its own (one per thread)."""
        other = object.__new__(PaddleEngine)
        other.device = self.device
        other._attach(self.predictor.clone())
        return other

    def run(self, input_ids: np.ndarray, token_type_ids: np.ndarray) -> np.ndarray:
        for handle, value in zip(self.inputs, (input_ids, token_type_ids)):
            handle.reshape(value.shape)
            handle.copy_from_cpu(np.ascontiguousarray(value, dtype="int64"))
        self.predictor.run()
        return self.output.copy_to_cpu()


class OnnxEngine:
    """ONNX Runtime session over model.onnx or model.int8.onnx with the same run() as PaddleEngine."""

    # no per-shape kernels to reuse: bucket padding would only add work (measured: tools/benchmark.py engine)
    pads_to_buckets = False

    def __init__(self, model_file: str, *, num_threads: int = 1, device: str = "cpu"):
        try:
            import onnxruntime as ort
        except ImportError:
            raise UserError("backend 'onnx' needs onnxruntime", hint="pip install 'ernie_tiny_distill[onnx]'") from None
        if not os.path.isfile(model_file):
            raise UserError(f"incomplete export directory: {os.path.basename(model_file)} is missing",
                            where=os.path.dirname(model_file),
                            hint="add it with tools/export.py --onnx (model.onnx) or --int8 (model.int8.onnx)")
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(num_threads)
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3
        providers = ["CPUExecutionProvider"]
        if device in ("gpu", "auto") and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        elif device == "gpu":
            raise UserError("device 'gpu' asked for, but this onnxruntime has no CUDA provider",
                            hint="pip install onnxruntime-gpu, or use device='cpu'")
        try:
            self.session = ort.InferenceSession(model_file, options, providers=providers)
        except Exception as e:
            raise UserError(f"ONNX Runtime could not load {os.path.basename(model_file)}: {e}") from None
        self.device = "gpu" if providers[0].startswith("CUDA") else "cpu"

    def clone(self) -> "OnnxEngine":
        """This engine: an ONNX Runtime session may be run from several threads at once."""
        return self

    def run(self, input_ids: np.ndarray, token_type_ids: np.ndarray) -> np.ndarray:
        return self.session.run(None, {"input_ids": np.ascontiguousarray(input_ids, dtype="int64"),
                                       "token_type_ids": np.ascontiguousarray(token_type_ids, dtype="int64")})[0]


def resolve_device(device: str) -> str:
    if device not in DEVICES:
        raise UserError(f"device must be one of {', '.join(DEVICES)}, got {device!r}")
    if device == "cpu":
        return "cpu"
    import paddle

    available = paddle.device.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0
    if device == "gpu" and not available:
        raise UserError("device 'gpu' asked for, but this Paddle build sees no CUDA GPU",
                        hint="install paddlepaddle-gpu on a GPU machine, or use device='cpu'")
    return "gpu" if available else "cpu"
