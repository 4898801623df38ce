"""The files of an export directory: names, reading and checking export.json/labels.json, atomic JSON writes."""
from __future__ import annotations

import json
import os
from typing import Dict, Sequence

from ernie_tiny_distill import extensions
from ernie_tiny_distill.errors import UserError
from ernie_tiny_distill.util import fsutil

MODEL_FILE = "inference.json"
PARAMS_FILE = "inference.pdiparams"
LABELS_FILE = "labels.json"
EXPORT_FILE = "export.json"
ONNX_FILE = "model.onnx"
INT8_ONNX_FILE = "model.int8.onnx"
INPUT_NAMES = ("input_ids", "token_type_ids")
FORMAT_VERSION = 1
EXPORT_HINT = "re-run tools/export.py for this model"


def read_json(path: str):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError, RecursionError) as e:
        raise UserError(f"cannot read {os.path.basename(path)}: {e}", where=path) from None


def write_json(path: str, data) -> None:
    """Write JSON atomically (a temporary file renamed over `path`); NaN/inf are refused, not written."""
    try:
        fsutil.write_json(path, data, ensure_ascii=False, allow_nan=False)
    except OSError as e:
        raise UserError(f"cannot write {os.path.basename(path)}: {e.strerror or e}", where=path) from None


def _schema():
    """The pydantic model of export.json (built on first use: pydantic is imported only when an export is read)."""
    from typing import List, Literal, Optional

    from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, PositiveInt, create_model, model_validator

    class Strict(BaseModel):
        model_config = ConfigDict(extra="forbid", strict=True)

    class Vocab(Strict):
        size: PositiveInt
        blake2b: str

    class LongDocument(Strict):
        stride: Optional[PositiveInt] = None
        max_windows: Optional[PositiveInt] = None
        pooling: Literal["mean", "max"] = "mean"

    class ExportMeta(Strict):
        format_version: int
        task: str
        labels: List[str] = Field(min_length=1)
        max_seq_length: int = Field(ge=3)
        truncation: Literal["head", "head_tail"]
        word_splitter: str
        model_class: str
        source: str
        stage: Optional[str] = None
        dev: Optional[dict] = None
        layers: PositiveInt
        hidden: PositiveInt
        heads: PositiveInt
        intermediate: PositiveInt
        vocab_size: PositiveInt
        max_position_embeddings: PositiveInt
        pad_token_id: NonNegativeInt
        params: NonNegativeInt
        nonembedding_params: NonNegativeInt
        inputs: List[str]
        paddle_version: str
        paddlenlp_version: str
        created: str
        source_weights: Optional[dict] = None
        vocab: Optional[Vocab] = None  # exports made before it was recorded have none
        check: Optional[dict] = None
        onnx: Optional[dict] = None
        int8: Optional[dict] = None
        files: Optional[dict] = None
        long_document: Optional[LongDocument] = None
        decoding: Optional[str] = None
        case_ids: Optional[bool] = None  # word case classes as token types (absent: all 0)
        layer_heads: Optional[List[int]] = None
        layer_intermediate: Optional[List[int]] = None
        attention_head_size: Optional[PositiveInt] = None
        pooler_size: Optional[PositiveInt] = None

        @model_validator(mode="after")
        def consistent(self):
            if self.format_version != FORMAT_VERSION:
                raise ValueError(f"format_version {self.format_version} is not one this version reads "
                                 f"({FORMAT_VERSION})")
            if len(set(self.labels)) != len(self.labels):
                raise ValueError(f"labels repeat a label: {self.labels}")
            if self.pad_token_id >= self.vocab_size:
                raise ValueError(f"pad_token_id {self.pad_token_id} is not below vocab_size {self.vocab_size}")
            if self.max_seq_length > self.max_position_embeddings:
                raise ValueError(f"max_seq_length {self.max_seq_length} exceeds max_position_embeddings "
                                 f"{self.max_position_embeddings}")
            if list(self.inputs) != list(INPUT_NAMES):
                raise ValueError(f"inputs {self.inputs}, expected {list(INPUT_NAMES)}")
            for key in ("layer_heads", "layer_intermediate"):
                per_layer = getattr(self, key)
                if per_layer is not None and (len(per_layer) != self.layers or min(per_layer) < 0):
                    raise ValueError(f"{key} must hold {self.layers} counts >= 0, got {per_layer}")
            return self

    # the settings an extension's document table records (checked against its files by the extension)
    extra = {key: (Optional[dict], None) for key in extensions.metadata_keys()}
    return create_model("ExportMeta", __base__=ExportMeta, **extra) if extra else ExportMeta


def _check_schema(meta: Dict, where: str) -> None:
    from pydantic import ValidationError

    try:
        _schema().model_validate(meta)
    except ValidationError as e:
        first = e.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        message = first["msg"].removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            message = "unknown key (not written by this version)"
        got = "" if first["type"] in ("missing", "value_error") else f", got {first.get('input')!r}"
        raise UserError(f"{key + ': ' if key else ''}{message}{got}", where=where, hint=EXPORT_HINT) from None


def _check_task(meta: Dict, where: str) -> None:
    """The task must be the one of the graph's model class (an edited task reads the logits the wrong way)."""
    from ernie_tiny_distill.tasks.adapters import TASKS, task_class

    if meta["task"] not in TASKS:
        raise UserError(f"task {meta['task']!r}; expected one of {', '.join(TASKS)}", where=where, hint=EXPORT_HINT)
    for other in TASKS:  # a class of another task's head (an extension's wrapper class names no head)
        head = task_class(other).model_class.__name__
        if other != meta["task"] and meta["model_class"] in (head, "Pruned" + head):
            raise UserError(f"task {meta['task']!r} does not match model_class {meta['model_class']!r} (a "
                            f"{other} model)", where=where, hint=EXPORT_HINT)


def read_export_metadata(export_dir: str, *, need: Sequence[str] = ()) -> Dict:
    """export.json + labels.json of `export_dir`, checking that those and the files in `need` exist, that every
    field of export.json is valid (a pydantic model; unknown keys refused), that its task matches the graph's
    model class, and that labels.json holds export.json's labels in export.json's order."""
    if not os.path.isdir(export_dir):
        raise UserError(f"export directory not found: {export_dir}",
                        hint="create one with `python tools/export.py --model RUN_DIR --out DIR`")
    for name in (EXPORT_FILE, LABELS_FILE) + tuple(need):
        if not os.path.isfile(os.path.join(export_dir, name)):
            raise UserError(f"incomplete export directory: {name} is missing", where=export_dir, hint=EXPORT_HINT)
    where = os.path.join(export_dir, EXPORT_FILE)
    meta = read_json(where)
    if not isinstance(meta, dict):
        raise UserError(f"{EXPORT_FILE} must be a JSON object", where=where)
    labels = read_json(os.path.join(export_dir, LABELS_FILE))
    if not isinstance(labels, list) or not labels or not all(isinstance(x, str) for x in labels):
        raise UserError(f"{LABELS_FILE} must be a non-empty JSON list of label strings", where=export_dir)
    _check_schema(meta, where)
    _check_task(meta, where)
    if labels != meta["labels"]:
        raise UserError(f"{LABELS_FILE} lists {labels[:8]} but {EXPORT_FILE} records {meta['labels'][:8]}: the "
                        "logit columns are in the exported order, so an edited label list would rename them",
                        where=os.path.join(export_dir, LABELS_FILE), hint=EXPORT_HINT)
    extensions.export_document_table(export_dir, meta)  # loaded to check it against export.json
    return meta


def check_vocab(export_dir: str, meta: Dict, tokenizer) -> None:
    """The export's vocabulary must fit its embedding table and be the one export.json recorded at export."""
    from ernie_tiny_distill.models.build import vocab_record

    record, where = vocab_record(tokenizer), os.path.join(export_dir, "vocab.txt")
    rows = meta.get("vocab_size")
    if isinstance(rows, int) and record["size"] > rows:
        raise UserError(f"the vocabulary has {record['size']} tokens but the model's word embeddings have {rows} "
                        f"rows ({EXPORT_FILE} vocab_size)", where=where, hint=EXPORT_HINT)
    expected = meta.get("vocab")
    if expected and expected != record:
        raise UserError(f"the vocabulary is not the one this model was exported with ({record['size']} tokens, "
                        f"blake2b {record['blake2b']}; {EXPORT_FILE} records {expected.get('size')} tokens, "
                        f"blake2b {expected.get('blake2b')})", where=where, hint=EXPORT_HINT)


def check_listed_files(export_dir: str, meta: Dict) -> None:
    """Every file export.json lists (tokenizer files included) must still be there."""
    optional = {ONNX_FILE, INT8_ONNX_FILE, MODEL_FILE, PARAMS_FILE}  # checked per backend
    for name in meta.get("files") or {}:
        if name not in optional and not os.path.isfile(os.path.join(export_dir, name)):
            raise UserError(f"incomplete export directory: {name} is missing", where=export_dir, hint=EXPORT_HINT)


def file_sizes(export_dir: str) -> Dict[str, int]:
    return {name: os.path.getsize(os.path.join(export_dir, name)) for name in sorted(os.listdir(export_dir))
            if os.path.isfile(os.path.join(export_dir, name))}
