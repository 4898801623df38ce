"""The files of an export directory: names, reading and checking export.json/labels.json, atomic JSON writes."""
from __future__ import annotations

import json
import os
from typing import Dict, Sequence

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


def read_export_metadata(export_dir: str, *, need: Sequence[str] = ()) -> Dict:
    """export.json + labels.json of `export_dir`, checking that those and the files in `need` exist."""
    from ernie_tiny_distill.tasks.adapters import TASKS

    if not os.path.isdir(export_dir):
        raise UserError(f"export directory not found: {export_dir}",
                        hint="create one with `python tools/export.py --model RUN_DIR --out DIR`")
    for name in (EXPORT_FILE, LABELS_FILE) + tuple(need):
        if not os.path.isfile(os.path.join(export_dir, name)):
            raise UserError(f"incomplete export directory: {name} is missing", where=export_dir, hint=EXPORT_HINT)
    meta = read_json(os.path.join(export_dir, EXPORT_FILE))
    if not isinstance(meta, dict):
        raise UserError(f"{EXPORT_FILE} must be a JSON object", where=os.path.join(export_dir, EXPORT_FILE))
    labels = read_json(os.path.join(export_dir, LABELS_FILE))
    if not isinstance(labels, list) or not labels or not all(isinstance(x, str) for x in labels):
        raise UserError(f"{LABELS_FILE} must be a non-empty JSON list of label strings", where=export_dir)
    meta["labels"] = labels
    if meta.get("task") not in TASKS:
        raise UserError(f"{EXPORT_FILE} has task {meta.get('task')!r}; expected one of {', '.join(TASKS)}",
                        where=export_dir)
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
