"""Compatibility names for export: the code lives in deploy/ (export.py, onnx_export.py, quantize.py, layout.py)."""
from __future__ import annotations

from .deploy.export import (PARITY_TOLERANCE, LogitsOnly, export_model, model_class_for,  # noqa: F401
                            read_calibration_texts, verify_export)
from .deploy.layout import (EXPORT_FILE, FORMAT_VERSION, INPUT_NAMES, INT8_ONNX_FILE, LABELS_FILE,  # noqa: F401
                            MODEL_FILE, ONNX_FILE, PARAMS_FILE, file_sizes, read_export_metadata)
from .deploy.onnx_export import export_onnx  # noqa: F401
from .deploy.predictor import probe_inputs as check_inputs  # noqa: F401
from .deploy.quantize import INT8_METHODS, activation_matmuls, int8_agreement, quantize_int8  # noqa: F401
from .tasks import TASKS

TASK_MODEL_CLASSES = {name: cls.model_class.__name__ for name, cls in TASKS.items()}
_model_class = model_class_for  # old private name, still used by latency.py until it moves to bench/
