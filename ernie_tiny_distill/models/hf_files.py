"""Read Hugging Face BERT directories: config.json, safetensors weights (BF16 too) and the WordPiece tokenizer."""
from __future__ import annotations

import json
import os
import struct
from typing import Dict

import numpy as np

from ernie_tiny_distill.errors import UserError

HF_CONFIG = "config.json"
HF_WEIGHTS = "model.safetensors"
HF_WEIGHTS_INDEX = "model.safetensors.index.json"


def read_json(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read JSON: {exc}", where=path) from None


def _is_bert_config(config: dict) -> bool:
    archs = config.get("architectures") or []
    return config.get("model_type") == "bert" or any(str(a).startswith("Bert") for a in archs)


def is_hf_bert_dir(path: str) -> bool:
    """A directory holding a HF BERT config.json and safetensors weights (single file or sharded index)."""
    cfg = os.path.join(str(path), HF_CONFIG)
    if not os.path.isfile(cfg):
        return False
    try:
        config = read_json(cfg)
    except UserError:
        return False
    has_weights = any(os.path.isfile(os.path.join(path, f)) for f in (HF_WEIGHTS, HF_WEIGHTS_INDEX))
    return _is_bert_config(config) and has_weights


def explain_not_hf_bert(path: str) -> UserError:
    """A specific error for a directory that is_hf_bert_dir rejected."""
    if not os.path.isdir(path):
        return UserError("no such directory", where=path)
    cfg = os.path.join(path, HF_CONFIG)
    if not os.path.isfile(cfg):
        return UserError(f"no {HF_CONFIG} here", where=path, hint="expected a Hugging Face BERT model directory")
    config = read_json(cfg)
    if not _is_bert_config(config):
        return UserError(f"model_type is {config.get('model_type')!r}, expected 'bert'", where=cfg)
    hint = None
    if os.path.isfile(os.path.join(path, "pytorch_model.bin")):
        hint = "only pytorch_model.bin is present; convert it to model.safetensors first (this tool never unpickles)"
    return UserError(f"no {HF_WEIGHTS} or {HF_WEIGHTS_INDEX} here", where=path, hint=hint)


_ST_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32,
              "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_}


def _read_safetensors_raw(path: str) -> Dict[str, np.ndarray]:
    """Minimal safetensors reader for files numpy cannot represent (BF16): BF16 is widened to float32 bitwise."""
    with open(path, "rb") as f:
        (header_len,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(header_len))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        raw, shape = data[start:end], info["shape"]
        if info["dtype"] == "BF16":  # bf16 is the top half of a float32
            out[name] = (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view(np.float32).reshape(shape)
        elif info["dtype"] in _ST_DTYPES:
            out[name] = np.frombuffer(raw, np.dtype(_ST_DTYPES[info["dtype"]]).newbyteorder("<")).reshape(shape)
        else:
            raise UserError(f"unsupported tensor dtype {info['dtype']} for {name}", where=path)
    return out


def load_safetensors(path: str) -> Dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    try:
        return load_file(path)
    except TypeError:  # "data type 'bfloat16' not understood": numpy has no bfloat16
        return _read_safetensors_raw(path)
    except Exception as exc:  # safetensors raises its own error types for corrupt headers
        raise UserError(f"cannot read safetensors file: {exc}", where=path) from None


def load_hf_weights(path: str) -> Dict[str, np.ndarray]:
    single = os.path.join(path, HF_WEIGHTS)
    if os.path.isfile(single):
        return load_safetensors(single)
    index = read_json(os.path.join(path, HF_WEIGHTS_INDEX))
    state: Dict[str, np.ndarray] = {}
    for shard in sorted(set(index.get("weight_map", {}).values())):
        state.update(load_safetensors(os.path.join(path, shard)))
    return state


def to_float32(state: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """Paddle's default dtype is float32; half-precision checkpoints are widened (exactly) on load."""
    return {k: v.astype(np.float32) if np.issubdtype(v.dtype, np.floating) and v.dtype != np.float32 else v
            for k, v in state.items()}


def load_tokenizer(path: str):
    """PaddleNLP tokenizer: BertTokenizer built from a HF BERT dir's vocab.txt, else AutoTokenizer for a Paddle dir."""
    path = str(path)
    if not is_hf_bert_dir(path):
        from paddlenlp.transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(path)
    from paddlenlp.transformers import BertTokenizer

    vocab = os.path.join(path, "vocab.txt")
    if not os.path.isfile(vocab):
        raise UserError("no vocab.txt here (a WordPiece vocabulary is needed for BertTokenizer)", where=path)
    tok_cfg_path = os.path.join(path, "tokenizer_config.json")
    tok_cfg = read_json(tok_cfg_path) if os.path.isfile(tok_cfg_path) else {}
    # Only arguments BertTokenizer understands; HF-only fields (added_tokens_decoder, ...) would confuse it.
    passthrough = ("unk_token", "sep_token", "pad_token", "cls_token", "mask_token", "tokenize_chinese_chars",
                   "strip_accents", "never_split", "do_basic_tokenize", "model_max_length")
    kwargs = {k: tok_cfg[k] for k in passthrough if tok_cfg.get(k) is not None}
    return BertTokenizer(vocab_file=vocab, do_lower_case=tok_cfg.get("do_lower_case", True), **kwargs)
