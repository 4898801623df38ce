"""Rewrite trusted legacy PaddleNLP checkpoints whose weights are pickled (.pdparams) as safetensors directories."""
from __future__ import annotations

import json
import logging
import os
import shutil
from typing import Dict, List

import numpy as np

from ernie_tiny_distill.errors import UserError
from ernie_tiny_distill.models.convert import CONVERSION_INFO, check_destination
from ernie_tiny_distill.models.hf_files import HF_CONFIG, HF_WEIGHTS, read_json
from ernie_tiny_distill.util import fsutil

logger = logging.getLogger(__name__)

PADDLE_WEIGHTS = "model_state.pdparams"
PADDLE_WEIGHTS_INDEX = "model_state.pdparams.index.json"
PICKLE_WARNING = ("loading pickled weights (.pdparams) from {src}: unpickling can run arbitrary code, so only do "
                  "this for a checkpoint you trust; the result is written as safetensors and never needs pickle again")


def pdparams_files(path: str) -> List[str]:
    """The pickled weight files of a PaddleNLP directory (a single file or the shards of an index)."""
    single = os.path.join(path, PADDLE_WEIGHTS)
    if os.path.isfile(single):
        return [single]
    index = os.path.join(path, PADDLE_WEIGHTS_INDEX)
    if os.path.isfile(index):
        shards = sorted(set(read_json(index).get("weight_map", {}).values()))
        return [os.path.join(path, s) for s in shards]
    return sorted(os.path.join(path, f) for f in os.listdir(path) if f.endswith(".pdparams"))


def is_pickle_only_dir(path: str) -> bool:
    """A directory with .pdparams weights and no safetensors (what models.load_model refuses)."""
    if not os.path.isdir(path):
        return False
    files = os.listdir(path)
    return (any(f.endswith(".pdparams") for f in files)
            and not any(f.endswith(".safetensors") or f.endswith(".safetensors.index.json") for f in files))


def convert_pdparams(src_dir: str, dst_dir: str, overwrite: bool = False, allow_pickle: bool = False,
                     warn=None) -> str:
    """Rewrite a trusted PaddleNLP directory whose weights are pickled (.pdparams) as a safetensors directory.

    Refused unless allow_pickle=True (unpickling can execute code). Every other file (config.json, tokenizer
    files, task.json) is copied; weights go to model.safetensors under the same names, which PaddleNLP's
    from_pretrained reads. Written to a temporary sibling and renamed, like convert_hf_bert. `warn(message)`
    reports the pickle warning (default: logger.warning).
    """
    src_dir, dst_dir = str(src_dir), os.path.abspath(str(dst_dir))
    if not os.path.isdir(src_dir):
        raise UserError("no such directory", where=src_dir)
    files = pdparams_files(src_dir)
    if not files:
        raise UserError("no .pdparams weights here", where=src_dir,
                        hint="expected a PaddleNLP model directory (config.json + model_state.pdparams)")
    if not allow_pickle:
        raise UserError(
            "refusing to load pickled .pdparams weights (unpickling can run arbitrary code)", where=src_dir,
            hint="if you trust this checkpoint, convert it once with "
                 "`python tools/convert_checkpoint.py --src DIR --dst NEW_DIR --allow-pickle`",
        )
    if not os.path.isfile(os.path.join(src_dir, HF_CONFIG)):
        raise UserError(f"no {HF_CONFIG} here", where=src_dir, hint="expected a PaddleNLP model directory")
    check_destination(src_dir, dst_dir, overwrite)
    import paddle

    (warn or logger.warning)(PICKLE_WARNING.format(src=src_dir))
    state: Dict[str, np.ndarray] = {}
    for file in files:
        try:
            loaded = paddle.load(file)  # pickle: allowed explicitly by the caller for a trusted file
        except Exception as exc:
            raise UserError(f"cannot read pickled weights: {exc}", where=file) from None
        if not isinstance(loaded, dict):
            raise UserError(f"expected a state dict (name -> tensor), found {type(loaded).__name__}", where=file)
        for name, value in loaded.items():
            if isinstance(value, paddle.Tensor):
                if value.dtype == paddle.bfloat16:  # numpy has no bfloat16: widen exactly
                    value = value.astype("float32")
                state[name] = np.ascontiguousarray(value.numpy())
            elif isinstance(value, np.ndarray):
                state[name] = np.ascontiguousarray(value)
            # other entries (e.g. the legacy "StructuredToParameterName@@" name map) are not weights
    if not state:
        raise UserError("no tensors in the .pdparams file(s)", where=src_dir)

    from safetensors.numpy import save_file

    with fsutil.atomic_dir(dst_dir) as tmp:
        skip = {os.path.basename(f) for f in files} | {PADDLE_WEIGHTS_INDEX}
        for name in os.listdir(src_dir):
            path = os.path.join(src_dir, name)
            if name in skip or name.endswith((".pdparams", ".pdopt", ".pdmodel", ".pdiparams")) \
                    or not os.path.isfile(path):
                continue
            shutil.copy2(path, os.path.join(tmp, name))
        save_file(state, os.path.join(tmp, HF_WEIGHTS), metadata={"format": "np"})  # as PaddleNLP writes it
        with open(os.path.join(tmp, CONVERSION_INFO), "w", encoding="utf-8") as f:
            json.dump({"source": os.path.abspath(src_dir), "from": "pdparams", "num_tensors": len(state),
                       "num_parameters": int(sum(v.size for v in state.values()))}, f, indent=2)
    return dst_dir
