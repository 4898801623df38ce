"""Export a trained checkpoint to a self-contained inference directory (Paddle Inference, optionally ONNX + INT8).

An export directory holds:

    inference.json, inference.pdiparams   the static graph (PIR) from paddle.jit.to_static + paddle.jit.save;
                                          inputs input_ids, token_type_ids: int64 [batch, length], both dynamic;
                                          output: logits only ([B, C] classification, [B, L, C] NER)
    vocab.txt, tokenizer_config.json, ... the tokenizer (PaddleNLP format)
    labels.json                           the label list, index = logit column
    export.json                           task, max_seq_length, truncation, model sizes, versions, files
    model.onnx                            (optional) the same graph converted by paddle2onnx, for ONNX Runtime
    model.int8.onnx                       (optional) post-training INT8 quantization of model.onnx

There is no attention_mask input: ErnieModel derives the mask from `input_ids == pad_token_id`, so inputs
must be padded with export.json's pad_token_id (the Predictor does). `check_padding` in the export record
shows that padded and unpadded rows give the same logits.

INT8 runs through ONNX Runtime, not Paddle Inference: Paddle 3.3.1 loads `inference.json` as a PIR program,
and its oneDNN pass list for PIR (kPirMkldnnPasses) starts with delete_quant_dequant_linear_op_pass /
delete_weight_dequant_linear_op_pass, i.e. a quantized PIR model runs in FP32; the legacy-IR INT8 passes
(cpu_quantize_pass, ...) need a .pdmodel, which `paddle.jit.save` with FLAGS_enable_pir_api=0 cannot write
for ErnieModel on 3.3.1 ("matmul(): argument (position 1) must be Value, but got Variable").
"""
from __future__ import annotations

import datetime
import json
import logging
import os
import shutil
import tempfile
from typing import Dict, List, Optional, Sequence

import numpy as np

from .errors import UserError

logger = logging.getLogger(__name__)

MODEL_FILE = "inference.json"
PARAMS_FILE = "inference.pdiparams"
LABELS_FILE = "labels.json"
EXPORT_FILE = "export.json"
ONNX_FILE = "model.onnx"
INT8_ONNX_FILE = "model.int8.onnx"
INPUT_NAMES = ("input_ids", "token_type_ids")
FORMAT_VERSION = 1
TASK_MODEL_CLASSES = {"classification": "ErnieForSequenceClassification", "ner": "ErnieForTokenClassification"}
PARITY_TOLERANCE = 1e-4  # max |dygraph - Paddle Inference| logit difference accepted without a warning


# ---------------------------------------------------------------- reading export directories


def read_export_metadata(export_dir: str, *, need: Sequence[str] = ()) -> Dict:
    """export.json + labels.json of `export_dir`, checking that those and the files in `need` exist."""
    if not os.path.isdir(export_dir):
        raise UserError(f"export directory not found: {export_dir}",
                        hint="create one with `python tools/export.py --model RUN_DIR --out DIR`")
    for name in (EXPORT_FILE, LABELS_FILE) + tuple(need):
        if not os.path.isfile(os.path.join(export_dir, name)):
            raise UserError(f"incomplete export directory: {name} is missing", where=export_dir,
                            hint="re-run tools/export.py for this model")
    meta = _read_json(os.path.join(export_dir, EXPORT_FILE))
    labels = _read_json(os.path.join(export_dir, LABELS_FILE))
    if not isinstance(labels, list) or not labels or not all(isinstance(x, str) for x in labels):
        raise UserError(f"{LABELS_FILE} must be a non-empty JSON list of label strings", where=export_dir)
    meta["labels"] = labels
    if meta.get("task") not in TASK_MODEL_CLASSES:
        raise UserError(f"{EXPORT_FILE} has task {meta.get('task')!r}; expected one of "
                        f"{', '.join(TASK_MODEL_CLASSES)}", where=export_dir)
    return meta


def _read_json(path: str):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise UserError(f"cannot read {os.path.basename(path)}: {e}", where=path) from None


def _write_json(path: str, data) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, ensure_ascii=False)
        f.write("\n")
    os.replace(tmp, path)


def file_sizes(export_dir: str) -> Dict[str, int]:
    return {name: os.path.getsize(os.path.join(export_dir, name)) for name in sorted(os.listdir(export_dir))
            if os.path.isfile(os.path.join(export_dir, name))}


# ---------------------------------------------------------------- export


def export_model(model_dir: str, out_dir: str, *, precision: str = "fp32", onnx: bool = False,
                 calibration_texts: Optional[Sequence[str]] = None, int8_method: str = "dynamic",
                 verify: bool = True) -> Dict:
    """Export the task model in `model_dir` (a stage's best/ dir or run dir) to `out_dir`; returns export.json.

    precision "fp32" writes the Paddle Inference model (+ model.onnx when `onnx`); "int8" also writes
    model.onnx and model.int8.onnx quantized with `calibration_texts` (see quantize_int8). The directory
    is built in a temporary sibling and renamed, so `out_dir` is either complete or untouched.
    """
    if precision not in ("fp32", "int8"):
        raise UserError(f"export precision must be 'fp32' or 'int8', got {precision!r}",
                        hint="bf16 is a run-time option: Predictor(..., precision='bf16')")
    if precision == "int8" and not calibration_texts:
        raise UserError("INT8 export needs calibration texts (a few hundred training examples)",
                        hint="tools/export.py --int8 --calibration-file TRAIN_FILE")
    import paddle
    from . import models

    path = models.resolve(model_dir)
    task_meta = models.read_task_metadata(path) if os.path.isdir(path) else None
    if task_meta is None or task_meta.get("task") not in TASK_MODEL_CLASSES:
        what = "has no task.json" if task_meta is None else f"is a {task_meta.get('task')!r} model"
        raise UserError(f"{model_dir} is not a task model ({what}); only classification and NER checkpoints "
                        "can be exported", hint="export the best/ directory of a teacher or task-distillation run")
    _check_out_dir(out_dir, path)
    labels = list(task_meta.get("labels") or [])
    if not labels:
        raise UserError("task.json has no labels", where=os.path.join(path, models.TASK_FILE))
    model_class = _model_class(task_meta)
    tokenizer = models.load_tokenizer(path)
    model = models.load_model(path, model_class, num_labels=len(labels))
    model.eval()

    parent = os.path.dirname(os.path.abspath(out_dir))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(os.path.abspath(out_dir))}.tmp-", dir=parent)
    try:
        static = paddle.jit.to_static(
            LogitsOnly(model),
            input_spec=[paddle.static.InputSpec([None, None], "int64", name=n) for n in INPUT_NAMES],
            full_graph=True,
        )
        paddle.jit.save(static, os.path.join(tmp, "inference"))
        for name in (MODEL_FILE, PARAMS_FILE):
            if not os.path.isfile(os.path.join(tmp, name)):
                raise UserError(f"paddle.jit.save did not write {name} (got {sorted(os.listdir(tmp))}); "
                                "Paddle >= 3.0 with the PIR format is required")
        tokenizer.save_pretrained(tmp)
        _write_json(os.path.join(tmp, LABELS_FILE), labels)
        meta = _metadata(model, tokenizer, task_meta, labels, path)
        _write_json(os.path.join(tmp, EXPORT_FILE), meta)
        if verify:
            meta["check"] = verify_export(model, tmp, pad_token_id=meta["pad_token_id"],
                                          vocab_size=meta["vocab_size"])
        if onnx or precision == "int8":
            meta["onnx"] = _export_onnx_files(tmp)
        if precision == "int8":
            meta["int8"] = _quantize_files(tmp, meta, calibration_texts, int8_method)
        meta["files"] = file_sizes(tmp)
        meta["files"][EXPORT_FILE] = 0  # rewritten just below; its own size is not meaningful
        _write_json(os.path.join(tmp, EXPORT_FILE), meta)
        _replace_dir(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info("exported %s model (%d labels, %.1fM parameters) to %s", meta["task"], len(labels),
                meta["params"] / 1e6, out_dir)
    return meta


def _logits_only_class():
    import paddle

    class LogitsOnlyLayer(paddle.nn.Layer):
        """Wraps a PaddleNLP task model so the static graph takes (input_ids, token_type_ids) -> logits."""

        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, input_ids, token_type_ids):
            out = self.model(input_ids=input_ids, token_type_ids=token_type_ids, return_dict=False)
            if isinstance(out, (tuple, list)):
                out = out[0]
            return out

    return LogitsOnlyLayer


def LogitsOnly(model):  # noqa: N802 - a factory that reads like the class it builds (Paddle imported lazily)
    return _logits_only_class()(model)


def _model_class(task_meta: Dict):
    import paddlenlp.transformers as transformers

    name = task_meta.get("model_class") or TASK_MODEL_CLASSES[task_meta["task"]]
    cls = getattr(transformers, name, None)
    if cls is None:
        raise UserError(f"task.json names model_class {name!r}, which PaddleNLP does not have")
    return cls


def _metadata(model, tokenizer, task_meta: Dict, labels: List[str], source: str) -> Dict:
    import paddle
    import paddlenlp

    from . import models

    config = models.encoder_of(model).config
    total, nonembedding = models.count_parameters(model)
    return {
        "format_version": FORMAT_VERSION,
        "task": task_meta["task"],
        "labels": labels,
        "max_seq_length": int(task_meta.get("max_seq_length") or 128),
        "truncation": task_meta.get("truncation") or "head",
        "model_class": type(model).__name__,
        "source": os.path.abspath(source),
        "stage": task_meta.get("stage"),
        "dev": task_meta.get("dev"),
        "layers": int(config.num_hidden_layers),
        "hidden": int(config.hidden_size),
        "heads": int(config.num_attention_heads),
        "intermediate": int(config.intermediate_size),
        "vocab_size": int(config.vocab_size),
        "max_position_embeddings": int(config.max_position_embeddings),
        "pad_token_id": int(config.pad_token_id if config.pad_token_id is not None else 0),
        "params": int(total),
        "nonembedding_params": int(nonembedding),
        "inputs": list(INPUT_NAMES),
        "paddle_version": paddle.__version__,
        "paddlenlp_version": paddlenlp.__version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def _check_out_dir(out_dir: str, model_path: str) -> None:
    """Only an empty directory or an earlier export may be replaced, and never the checkpoint itself."""
    out, model = os.path.realpath(out_dir), os.path.realpath(model_path)
    if out == model or model.startswith(out + os.sep):
        raise UserError(f"--out {out_dir} would overwrite the checkpoint {model_path}; choose another directory")
    if os.path.exists(out_dir):
        if not os.path.isdir(out_dir):
            raise UserError(f"output path exists and is not a directory: {out_dir}")
        if os.listdir(out_dir) and not os.path.isfile(os.path.join(out_dir, EXPORT_FILE)):
            raise UserError(f"output directory {out_dir} exists and is not an export directory (no {EXPORT_FILE}); "
                            "refusing to replace it", hint="choose a new or empty directory")


def _replace_dir(tmp: str, out_dir: str) -> None:
    parent = os.path.dirname(os.path.abspath(out_dir))
    old = None
    if os.path.exists(out_dir):
        if not os.path.isdir(out_dir):
            raise UserError(f"output path exists and is not a directory: {out_dir}")
        old = tempfile.mkdtemp(prefix=f".{os.path.basename(os.path.abspath(out_dir))}.old-", dir=parent)
        os.replace(out_dir, os.path.join(old, "x"))
    os.replace(tmp, out_dir)
    if old:
        shutil.rmtree(old, ignore_errors=True)


# ---------------------------------------------------------------- parity check


def check_inputs(vocab_size: int, pad_token_id: int, seed: int = 0) -> np.ndarray:
    """A small int64 batch with different real lengths (padded with pad_token_id), for parity checks."""
    rng = np.random.default_rng(seed)
    lengths = [24, 17, 9, 3]
    ids = np.full((len(lengths), max(lengths)), pad_token_id, dtype="int64")
    low = min(5, vocab_size - 1)
    for i, n in enumerate(lengths):
        row = rng.integers(low, vocab_size, size=n)
        row[row == pad_token_id] = low
        ids[i, :n] = row
    return ids


def verify_export(model, export_dir: str, *, pad_token_id: int, vocab_size: int) -> Dict:
    """Dygraph vs Paddle Inference logits on a padded batch, and padded vs unpadded rows (real positions)."""
    import paddle

    from .predictor import PaddleEngine

    ids = check_inputs(vocab_size, pad_token_id)
    types = np.zeros_like(ids)
    with paddle.no_grad():
        ref = LogitsOnly(model)(paddle.to_tensor(ids), paddle.to_tensor(types)).numpy()
    engine = PaddleEngine(export_dir, num_threads=1, use_mkldnn=True, precision="fp32", device="cpu")
    got = engine.run(ids, types)
    lengths = (ids != pad_token_id).sum(1)
    padding = 0.0
    for i, n in enumerate(lengths):
        alone = engine.run(ids[i:i + 1, :n], types[i:i + 1, :n])[0]
        real = got[i] if got.ndim == 2 else got[i, :n]
        padding = max(padding, float(np.abs(alone - real).max()))
    diff = float(np.abs(ref - got).max()) if ref.ndim == 2 else max(
        float(np.abs(ref[i, :n] - got[i, :n]).max()) for i, n in enumerate(lengths))
    if diff > PARITY_TOLERANCE or padding > PARITY_TOLERANCE:
        logger.warning("exported model differs from the checkpoint: max |dygraph - inference| = %.2e, "
                       "max |padded - unpadded| = %.2e (tolerance %.0e)", diff, padding, PARITY_TOLERANCE)
    return {"max_abs_diff_dygraph_vs_inference": diff, "max_abs_diff_padded_vs_unpadded": padding,
            "tolerance": PARITY_TOLERANCE}


# ---------------------------------------------------------------- ONNX


def _require_onnx_tools(for_what: str):
    try:
        import onnxruntime  # noqa: F401
        import paddle2onnx  # noqa: F401
    except ImportError as e:
        raise UserError(f"{for_what} needs paddle2onnx and onnxruntime ({e})",
                        hint="pip install paddle2onnx onnxruntime") from None


def export_onnx(export_dir: str, *, opset: int = 14) -> Dict:
    """Add model.onnx (paddle2onnx conversion of inference.json) to an existing export directory."""
    meta = read_export_metadata(export_dir, need=(MODEL_FILE, PARAMS_FILE))
    meta["onnx"] = _export_onnx_files(export_dir, opset=opset)
    meta["files"] = file_sizes(export_dir)
    _write_json(os.path.join(export_dir, EXPORT_FILE), meta)
    return meta


def _export_onnx_files(export_dir: str, opset: int = 14) -> Dict:
    """paddle2onnx, then ONNX Runtime's basic (portable) graph optimization, written as model.onnx.

    The basic pass folds the constant mask that paddle2onnx multiplies into the word embedding (it
    handles padding_idx), which would otherwise double the file size.
    """
    _require_onnx_tools("ONNX export")
    import onnxruntime as ort
    import paddle2onnx

    raw = os.path.join(export_dir, f".raw-{os.getpid()}.onnx")
    final = os.path.join(export_dir, ONNX_FILE)
    tmp_final = final + f".tmp-{os.getpid()}"
    try:
        try:
            paddle2onnx.export(os.path.join(export_dir, MODEL_FILE), os.path.join(export_dir, PARAMS_FILE),
                               save_file=raw, opset_version=opset, enable_onnx_checker=True,
                               optimize_tool="None", verbose=False)
        except Exception as e:  # paddle2onnx raises plain Exceptions/RuntimeErrors from C++
            raise UserError(f"paddle2onnx could not convert {MODEL_FILE}: {e}") from None
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.optimized_model_filepath = tmp_final
        options.log_severity_level = 3
        ort.InferenceSession(raw, options, providers=["CPUExecutionProvider"])
        os.replace(tmp_final, final)
    finally:
        for f in (raw, tmp_final):
            if os.path.exists(f):
                os.remove(f)
    check = _onnx_parity(export_dir, ONNX_FILE)
    import paddle2onnx as p2o

    return {"file": ONNX_FILE, "opset": opset, "paddle2onnx_version": getattr(p2o, "__version__", "?"),
            "onnxruntime_version": ort.__version__, **check}


def _onnx_parity(export_dir: str, onnx_file: str) -> Dict:
    from .predictor import OnnxEngine, PaddleEngine

    meta = _read_json(os.path.join(export_dir, EXPORT_FILE))
    ids = check_inputs(meta["vocab_size"], meta["pad_token_id"], seed=1)
    types = np.zeros_like(ids)
    ref = PaddleEngine(export_dir, num_threads=1, use_mkldnn=True, precision="fp32", device="cpu").run(ids, types)
    got = OnnxEngine(os.path.join(export_dir, onnx_file), num_threads=1, device="cpu").run(ids, types)
    mask = ids != meta["pad_token_id"]
    diff = np.abs(ref - got) if ref.ndim == 2 else np.abs(ref - got)[mask]
    return {"max_abs_diff_vs_paddle": float(diff.max())}


# ---------------------------------------------------------------- INT8


INT8_METHODS = ("static", "dynamic")


def read_calibration_texts(path: str, model_dir: str) -> List[str]:
    """Raw texts for INT8 calibration: JSONL/CSV/TSV (a "text" column), CoNLL for an NER model, else one per line."""
    from . import models, readers

    suffix = os.path.splitext(path)[1].lower()
    if suffix in (".jsonl", ".json", ".csv", ".tsv"):
        return [e.text for e in readers.read_classification_file(path, label_column=None, skip_empty=True)]
    task_meta = models.read_task_metadata(models.resolve(model_dir)) or {}
    if task_meta.get("task") == "ner":
        return [" ".join(s.tokens) for s in readers.read_conll(path)]
    return [e.text for e in readers.read_plain_text(path)]


def quantize_int8(export_dir: str, calibration_texts: Sequence[str], *, method: str = "dynamic",
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
    meta = read_export_metadata(export_dir, need=(MODEL_FILE, PARAMS_FILE))
    if not os.path.isfile(os.path.join(export_dir, ONNX_FILE)):
        meta["onnx"] = _export_onnx_files(export_dir)
    meta["int8"] = _quantize_files(export_dir, meta, calibration_texts, method, num_calibration)
    meta["files"] = file_sizes(export_dir)
    _write_json(os.path.join(export_dir, EXPORT_FILE), meta)
    return meta


def _quantize_files(export_dir: str, meta: Dict, texts: Optional[Sequence[str]], method: str,
                    num_calibration: int = 300) -> Dict:
    if method not in INT8_METHODS:
        raise UserError(f"INT8 method must be one of {', '.join(INT8_METHODS)}, got {method!r}")
    _require_onnx_tools("INT8 quantization")
    try:
        from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType, quantize_dynamic,
                                              quantize_static)
        from onnxruntime.quantization.shape_inference import quant_pre_process
    except ImportError as e:
        raise UserError(f"onnxruntime.quantization could not be imported ({e})", hint="pip install ml_dtypes") from None
    from .predictor import TextEncoder

    texts = [t for t in (texts or []) if isinstance(t, str) and t.strip()]
    if method == "static" and not texts:
        raise UserError("static INT8 quantization needs non-empty calibration texts")
    texts = texts[:num_calibration]
    src = os.path.join(export_dir, ONNX_FILE)
    pre = os.path.join(export_dir, f".pre-{os.getpid()}.onnx")
    out = os.path.join(export_dir, INT8_ONNX_FILE)
    tmp_out = os.path.join(export_dir, f".int8-{os.getpid()}.onnx")
    try:
        quant_pre_process(src, pre, skip_symbolic_shape=True)
        skip = activation_matmuls(pre)
        if method == "dynamic":
            quantize_dynamic(pre, tmp_out, weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"],
                             per_channel=True, nodes_to_exclude=skip)
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
        os.replace(tmp_out, out)
    except UserError:
        raise
    except Exception as e:
        raise UserError(f"ONNX Runtime INT8 quantization failed: {type(e).__name__}: {e}") from None
    finally:
        for f in (pre, tmp_out):
            if os.path.exists(f):
                os.remove(f)
        for f in os.listdir(export_dir):  # calibration leaves augmented models behind in some versions
            if f.startswith("augmented_model") and f.endswith(".onnx"):
                os.remove(os.path.join(export_dir, f))
    record = {"file": INT8_ONNX_FILE, "method": method, "quantized": "MatMul with a weight input (per-channel int8)",
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
    from .predictor import OnnxEngine, TextEncoder

    encoder = TextEncoder(export_dir)
    features = encoder.calibration_features(texts)
    fp32 = OnnxEngine(os.path.join(export_dir, ONNX_FILE), num_threads=1)
    int8 = OnnxEngine(os.path.join(export_dir, INT8_ONNX_FILE), num_threads=1)
    same = total = 0
    diff = 0.0
    for i in range(0, len(features), 16):
        ids, types = encoder.collate(features[i:i + 16])
        batch = features[i:i + 16]
        a, b = fp32.run(ids, types), int8.run(ids, types)
        if a.ndim == 3:  # NER: the rows that score words (first sub-words)
            rows = [(r, p) for r, f in enumerate(batch) for p in f["first_positions"]]
            a = np.stack([a[r, p] for r, p in rows]) if rows else a[:0, 0]
            b = np.stack([b[r, p] for r, p in rows]) if rows else b[:0, 0]
        same += int((a.argmax(-1) == b.argmax(-1)).sum())
        total += a.shape[0]
        diff = max(diff, float(np.abs(a - b).max()))
    return {"agreement_with_fp32": same / max(1, total), "rows_compared": total,
            "max_abs_logit_diff_vs_fp32": diff}
