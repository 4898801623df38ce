"""Export a trained checkpoint to a self-contained inference directory (Paddle Inference, optionally ONNX + INT8).

An export directory holds:

    inference.json, inference.pdiparams   the static graph (PIR) from paddle.jit.to_static + paddle.jit.save;
                                          inputs input_ids, token_type_ids: int64 [batch, length], both dynamic;
                                          output: logits only ([B, C] classification, [B, L, C] NER)
    vocab.txt, tokenizer_config.json, ... the tokenizer (PaddleNLP format)
    labels.json                           the label list, index = logit column
    export.json                           task, max_seq_length, truncation, word_splitter, model sizes,
                                          versions, files, parity check, source_weights (sha256 per
                                          weight file of the source: scoring.export_mismatch)
    model.onnx                            (optional) the same graph converted by paddle2onnx, for ONNX Runtime
    model.int8.onnx                       (optional) post-training INT8 quantization of model.onnx

There is no attention_mask input: ErnieModel derives the mask from `input_ids == pad_token_id`, so inputs
must be padded with export.json's pad_token_id (the Predictor does). The "check" record in export.json
shows that padded and unpadded rows give the same logits. A checkpoint whose weights or logits are not
finite is refused (a NaN parity difference is a failure, not a pass).

INT8 runs through ONNX Runtime, not Paddle Inference: Paddle 3.3.1 loads `inference.json` as a PIR program,
and its oneDNN pass list for PIR (kPirMkldnnPasses) starts with delete_quant_dequant_linear_op_pass /
delete_weight_dequant_linear_op_pass, i.e. a quantized PIR model runs in FP32; the legacy-IR INT8 passes
(cpu_quantize_pass, ...) need a .pdmodel, which `paddle.jit.save` with FLAGS_enable_pir_api=0 cannot write
for ErnieModel on 3.3.1 ("matmul(): argument (position 1) must be Value, but got Variable").
"""
from __future__ import annotations

import datetime
import errno
import logging
import os
from typing import Dict, List, Optional, Sequence

import numpy as np

from ernie_tiny_distill import extensions
from ernie_tiny_distill.deploy import layout
from ernie_tiny_distill.deploy.engines import PaddleEngine
from ernie_tiny_distill.deploy.onnx_export import max_abs_diff, write_onnx_files
from ernie_tiny_distill.deploy.predictor import probe_inputs
from ernie_tiny_distill.deploy.quantize import INT8_METHODS, write_int8_file
from ernie_tiny_distill.deploy.scoring import weights_digest
from ernie_tiny_distill.deploy.words import DEFAULT_SPLITTER, SPLITTERS
from ernie_tiny_distill.errors import UserError
from ernie_tiny_distill.tasks.adapters import TASKS, model_class_named, task_class
from ernie_tiny_distill.util import fsutil

logger = logging.getLogger(__name__)

PARITY_TOLERANCE = 1e-4  # max |dygraph - Paddle Inference| logit difference accepted without a warning


def model_class_for(task_meta: Dict):
    """The PaddleNLP class of a task model from its task.json (or export.json) record."""
    return model_class_named(task_meta.get("model_class") or task_class(task_meta["task"]).model_class.__name__)


def export_model(model_dir: str, out_dir: str, *, precision: str = "fp32", onnx: bool = False,
                 calibration_texts: Optional[Sequence[str]] = None, int8_method: str = "dynamic",
                 verify: bool = True, word_splitter: str = DEFAULT_SPLITTER) -> Dict:
    """Export the task model in `model_dir` (a stage's best/ dir or run dir) to `out_dir`; returns export.json.

    precision "fp32" writes the Paddle Inference model (+ model.onnx when `onnx`); "int8" also writes
    model.onnx and model.int8.onnx (see quantize.py; the default dynamic method needs no calibration
    texts). `word_splitter` is how the served model splits raw text into words (words.py), recorded in
    export.json. The directory is built in a temporary sibling and renamed, so `out_dir` is either
    complete or untouched.
    """
    if precision not in ("fp32", "int8"):
        raise UserError(f"export precision must be 'fp32' or 'int8', got {precision!r}",
                        hint="bf16 is a run-time option: Predictor(..., precision='bf16')")
    if int8_method not in INT8_METHODS:
        raise UserError(f"INT8 method must be one of {', '.join(INT8_METHODS)}, got {int8_method!r}")
    if precision == "int8" and int8_method == "static" and not calibration_texts:
        raise UserError("static INT8 quantization needs calibration texts (a few hundred training examples)",
                        hint="tools/export.py --int8 --int8-method static --calibration-file TRAIN_FILE")
    if word_splitter not in SPLITTERS:
        raise UserError(f"word splitter must be one of {', '.join(SPLITTERS)}, got {word_splitter!r}")
    import paddle

    from ernie_tiny_distill.models import build as models

    path = models.resolve(model_dir)
    task_meta = models.read_task_metadata(path) if os.path.isdir(path) else None
    if task_meta is None or task_meta.get("task") not in TASKS:
        what = "has no task.json" if task_meta is None else f"is a {task_meta.get('task')!r} model"
        raise UserError(f"{model_dir} is not a task model ({what}); only classification and NER checkpoints "
                        "can be exported", hint="export the best/ directory of a teacher or task-distillation run")
    _check_out_dir(out_dir, path)
    labels = list(task_meta.get("labels") or [])
    if not labels:
        raise UserError("task.json has no labels", where=os.path.join(path, models.TASK_FILE))
    tokenizer = models.load_tokenizer(path)
    model = _load_checked(models, path, model_class_for(task_meta), len(labels))

    try:
        os.makedirs(os.path.dirname(os.path.abspath(out_dir)), exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create the export directory: {e.strerror or e}", where=out_dir) from None
    try:
        # built in a temporary sibling (with the user's umask) and renamed over out_dir when complete
        with fsutil.atomic_dir(out_dir) as tmp:
            static = paddle.jit.to_static(
                LogitsOnly(model),
                input_spec=[paddle.static.InputSpec([None, None], "int64", name=n) for n in layout.INPUT_NAMES],
                full_graph=True,
            )
            paddle.jit.save(static, os.path.join(tmp, "inference"))
            for name in (layout.MODEL_FILE, layout.PARAMS_FILE):
                if not os.path.isfile(os.path.join(tmp, name)):
                    raise UserError(f"paddle.jit.save did not write {name} (got {sorted(os.listdir(tmp))}); "
                                    "Paddle >= 3.0 with the PIR format is required")
            tokenizer.save_pretrained(tmp)
            if getattr(model, "document_table", None) is not None:
                # added after pooling, outside the graph (extensions.py): the Predictor reads it here
                model.document_table.save(tmp)
            layout.write_json(os.path.join(tmp, layout.LABELS_FILE), labels)
            meta = _metadata(model, tokenizer, task_meta, labels, path, word_splitter)
            # which weights this is (scoring.export_mismatch: a teacher scored through its export must be these)
            meta["source_weights"] = weights_digest(path)
            meta["vocab"] = models.vocab_record(tokenizer)  # checked on load (layout.check_vocab)
            meta.update(extensions.document_table_metadata(model))  # checked on load (read_export_metadata)
            layout.write_json(os.path.join(tmp, layout.EXPORT_FILE), meta)
            if verify:
                meta["check"] = verify_export(model, tmp, task=meta["task"], pad_token_id=meta["pad_token_id"],
                                              vocab_size=meta["vocab_size"])
            if onnx or precision == "int8":
                meta["onnx"] = write_onnx_files(tmp)
            if precision == "int8":
                meta["int8"] = write_int8_file(tmp, calibration_texts, int8_method)
            meta["files"] = layout.file_sizes(tmp)
            meta["files"][layout.EXPORT_FILE] = 0  # rewritten just below; its own size is not meaningful
            layout.write_json(os.path.join(tmp, layout.EXPORT_FILE), meta)
    except BaseException as e:
        if _is_disk_full(e):
            raise UserError("the disk is full: could not write the export (partial files removed)", where=out_dir,
                            hint="free some space and re-run; the previous export, if any, is untouched") from None
        if isinstance(e, OSError):
            raise UserError(f"could not write the export: {e.strerror or e}", where=out_dir) from None
        raise
    logger.info("exported %s model (%d labels, %.1fM parameters) to %s", meta["task"], len(labels),
                meta["params"] / 1e6, out_dir)
    return meta


def _is_disk_full(e: BaseException) -> bool:
    return (isinstance(e, OSError) and e.errno == errno.ENOSPC) or "No space left on device" in str(e)


def _load_checked(models, path: str, model_class, num_labels: int):
    """The checkpoint's model in eval mode; unreadable weight files and non-finite weights are errors."""
    from safetensors import safe_open

    for name in sorted(os.listdir(path)):
        if name.endswith(".safetensors"):
            try:
                with safe_open(os.path.join(path, name), framework="np") as f:
                    f.keys()
            except Exception as e:  # SafetensorError / OSError: truncated or corrupt header
                raise UserError(f"cannot read {name}: the file is truncated or corrupt ({str(e)[:160]})",
                                where=os.path.join(path, name), hint="re-copy or re-train the checkpoint") from None
    model = models.load_model(path, model_class, num_labels=num_labels)
    bad = [name for name, value in model.state_dict().items()
           if not np.isfinite(np.asarray(value.astype("float32").numpy())).all()]
    if bad:
        raise UserError(f"the checkpoint has non-finite (NaN or inf) weights in {len(bad)} tensors "
                        f"({', '.join(bad[:3])}{', ...' if len(bad) > 3 else ''}); it cannot be exported",
                        where=path, hint="export an earlier checkpoint, or re-train with a lower learning rate")
    model.eval()
    return model


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


# ---------------------------------------------------------------- metadata and directories


def _metadata(model, tokenizer, task_meta: Dict, labels: List[str], source: str, word_splitter: str) -> Dict:
    import paddle
    import paddlenlp

    from ernie_tiny_distill.models import build as models
    from ernie_tiny_distill.models import birth

    config = models.encoder_of(model).config
    total, nonembedding = birth.count_parameters(model)
    # a student pruned from its teacher: per-layer shapes (FLOPs are counted from them)
    pruned = {key: getattr(config, key) for key in ("layer_heads", "layer_intermediate", "attention_head_size",
                                                     "pooler_size") if getattr(config, key, None) is not None}
    # long documents read as pooled windows (absent: truncation)
    windows = {"long_document": task_meta["long_document"]} if task_meta.get("long_document") else {}
    # tag decoding the model was scored (and best/ chosen) with; absent: the library default (TextEncoder)
    decoding = {"decoding": task_meta["decoding"]} if task_meta.get("decoding") else {}
    # word case classes as token types (model.case_ids): the served encoder must compute them too
    case_ids = {"case_ids": True} if task_meta.get("case_ids") else {}
    return {**pruned, **windows, **decoding, **case_ids,
        "format_version": layout.FORMAT_VERSION,
        "task": task_meta["task"],
        "labels": labels,
        "max_seq_length": int(task_meta.get("max_seq_length") or 128),
        "truncation": task_meta.get("truncation") or "head",
        "word_splitter": word_splitter,
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
        "inputs": list(layout.INPUT_NAMES),
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
        if os.listdir(out_dir) and not os.path.isfile(os.path.join(out_dir, layout.EXPORT_FILE)):
            raise UserError(f"output directory {out_dir} exists and is not an export directory (no {layout.EXPORT_FILE}); "
                            "refusing to replace it", hint="choose a new or empty directory")


# ---------------------------------------------------------------- parity check


def verify_export(model, export_dir: str, *, task: str, pad_token_id: int, vocab_size: int) -> Dict:
    """Dygraph vs Paddle Inference logits on a padded batch, and padded vs unpadded rows (real positions).

    Non-finite logits, or a difference that is not a finite number within tolerance for NaN reasons,
    are an error; a finite difference above the tolerance is a warning (recorded in export.json).
    """
    import paddle

    ids = probe_inputs(vocab_size, pad_token_id)
    types = np.zeros_like(ids)
    with paddle.no_grad():
        ref = LogitsOnly(model)(paddle.to_tensor(ids), paddle.to_tensor(types)).numpy()
    engine = PaddleEngine(export_dir, num_threads=1, use_mkldnn=True, precision="fp32", device="cpu")
    got = engine.run(ids, types)
    slicer = task_class(task).slice_logits
    lengths = (ids != pad_token_id).sum(1)
    real = [slicer(got, i, n) for i, n in enumerate(lengths)]
    alone = [slicer(engine.run(ids[i:i + 1, :n], types[i:i + 1, :n]), 0, n) for i, n in enumerate(lengths)]
    padding = max_abs_diff(alone, real)
    diff = max_abs_diff([slicer(ref, i, n) for i, n in enumerate(lengths)], real)
    if not (np.isfinite(ref).all() and np.isfinite(got).all() and np.isfinite([diff, padding]).all()):
        raise UserError("the exported model's logits are not finite (NaN or inf); nothing was exported",
                        hint="check the checkpoint's weights; export an earlier checkpoint")
    if diff > PARITY_TOLERANCE or padding > PARITY_TOLERANCE:
        logger.warning("exported model differs from the checkpoint: max |dygraph - inference| = %.2e, "
                       "max |padded - unpadded| = %.2e (tolerance %.0e)", diff, padding, PARITY_TOLERANCE)
    return {"max_abs_diff_dygraph_vs_inference": diff, "max_abs_diff_padded_vs_unpadded": padding,
            "tolerance": PARITY_TOLERANCE, "passed": bool(diff <= PARITY_TOLERANCE and padding <= PARITY_TOLERANCE)}


def read_calibration_texts(path: str, model_dir: str) -> List[str]:
    """Raw texts for INT8 calibration in the model's task format (JSONL/CSV/TSV "text" column, CoNLL, lines)."""
    from ernie_tiny_distill.models import build as models

    task_meta = models.read_task_metadata(models.resolve(model_dir)) or {}
    return task_class(task_meta.get("task") or "classification").calibration_texts(path)
