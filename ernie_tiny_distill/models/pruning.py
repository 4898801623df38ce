"""Students born from the teacher: head/FFN-neuron importance, a narrower residual stream, sliced weights.

Importance (Michel et al. 2019, "Are Sixteen Heads Really Better than One?"): a mask of ones multiplies every
attention head's output and every FFN neuron; the importance of a head or neuron is the accumulated
|dL/d mask| of the task loss over training batches (PaddleNLP's DynaBERT `compute_neuron_head_importance` does
the same), normalised per layer by its L2 norm when heads are allocated across layers.

Width (hidden_size below the teacher's): the residual stream is projected on P, the top principal directions of
the teacher's own hidden states (second moment over real tokens of every layer, so the mean direction counts).
Every Linear that reads the stream gets P^T W, every one that writes it W P, embedding tables E P. LayerNorm
does not commute with a projection: its gain becomes sqrt(H/k)·diag(P^T diag(g) P) and its bias P^T b, exact
when P is the identity and an approximation otherwise that the distillation after pruning repairs
(`init_report` measures how far off the student starts).
"""
from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import numpy as np
import paddle
from paddlenlp.transformers import ErnieForSequenceClassification

from ernie_tiny_distill.data import batching
from ernie_tiny_distill.distill import losses
from ernie_tiny_distill.errors import UserError
from ernie_tiny_distill.models.pruned_ernie import is_pruned, pruned_class
from ernie_tiny_distill.util import fsutil

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
IMPORTANCE_FILE = "importance.json"
PRUNING_FILE = "pruning.json"


@dataclass
class Importance:
    heads: np.ndarray  # [L, H] accumulated |dL/d head_mask|
    neurons: np.ndarray  # [L, F] accumulated |dL/d ffn_mask|
    second_moment: np.ndarray  # [hidden, hidden] E[h h^T] over real tokens of every hidden state
    examples: int

    def to_json(self) -> Dict:
        return {"format": FORMAT_VERSION, "examples": self.examples, "heads": self.heads.tolist(),
                "neurons": self.neurons.tolist(), "second_moment": self.second_moment.tolist()}

    @classmethod
    def from_json(cls, data: Dict, where: str) -> "Importance":
        try:
            if data.get("format") != FORMAT_VERSION:
                raise KeyError("format")
            return cls(np.asarray(data["heads"], dtype=np.float64), np.asarray(data["neurons"], dtype=np.float64),
                       np.asarray(data["second_moment"], dtype=np.float64), int(data["examples"]))
        except (KeyError, TypeError, ValueError) as e:
            raise UserError(f"not an importance file of format {FORMAT_VERSION} ({e})", where=where) from None


def _encoder(model):
    return model if not hasattr(model, "ernie") else model.ernie


def _head_size(model) -> int:
    config = _encoder(model).config
    return getattr(config, "attention_head_size", None) or config.hidden_size // config.num_attention_heads


# ---------------------------------------------------------------- measuring


def measure_importance(model, features: Sequence[Dict], batch_size: int = 16, pad_token_id: int = 0) -> Importance:
    """Head and neuron importance of `model` (with its task head) on labeled `features`, and the second moment
    of its hidden states. The model is left as it was (eval mode, no hooks)."""
    encoder = _encoder(model)
    layers = encoder.encoder.layers
    head = _head_size(model)
    n_heads = [layer.self_attn.num_heads for layer in layers]
    n_neurons = [layer.linear1.weight.shape[1] for layer in layers]
    if len(set(n_heads)) != 1 or len(set(n_neurons)) != 1:
        raise UserError("importance is measured on an unpruned teacher (same head count and FFN width per layer)")
    head_mask = paddle.ones([len(layers), n_heads[0]], dtype="float32")
    neuron_mask = paddle.ones([len(layers), n_neurons[0]], dtype="float32")
    head_mask.stop_gradient = neuron_mask.stop_gradient = False
    hooks = []
    for i, layer in enumerate(layers):
        # the out_proj input is the heads' outputs side by side: [B, L, heads * head_size]
        hooks.append(layer.self_attn.out_proj.register_forward_pre_hook(
            lambda _layer, inputs, i=i: (inputs[0] * paddle.repeat_interleave(head_mask[i], head),)))
        hooks.append(layer.linear2.register_forward_pre_hook(
            lambda _layer, inputs, i=i: (inputs[0] * neuron_mask[i],)))
    frozen = {p.name: p.stop_gradient for p in model.parameters()}
    for p in model.parameters():
        p.stop_gradient = True  # gradients are wanted for the masks only
    width = encoder.config.hidden_size
    moment = np.zeros((width, width), dtype=np.float64)
    tokens = 0
    heads_acc = np.zeros(head_mask.shape, dtype=np.float64)
    neurons_acc = np.zeros(neuron_mask.shape, dtype=np.float64)
    model.eval()
    try:
        lengths = [len(f["input_ids"]) for f in features]
        for idx in batching.eval_batches(lengths, batch_size):
            batch = {k: paddle.to_tensor(v) for k, v in batching.collate([features[i] for i in idx], pad_token_id).items()}
            out = model(input_ids=batch["input_ids"], token_type_ids=batch["token_type_ids"],
                        attention_mask=batch["attention_mask"], output_hidden_states=True, return_dict=True)
            loss = losses.hard_ce(out.logits, batch["labels"])
            loss.backward()
            heads_acc += np.abs(head_mask.grad.numpy())
            neurons_acc += np.abs(neuron_mask.grad.numpy())
            head_mask.clear_gradient()
            neuron_mask.clear_gradient()
            real = batch["attention_mask"].numpy().astype(bool)  # [B, L]
            for hidden in out.hidden_states:
                states = hidden.numpy()[real].astype(np.float64)  # [tokens, H]
                moment += states.T @ states
                tokens += len(states)
    finally:
        for h in hooks:
            h.remove()
        for p in model.parameters():
            p.stop_gradient = frozen[p.name]
    return Importance(heads_acc, neurons_acc, moment / max(1, tokens), len(features))


def fingerprint(teacher_dir: str, features: Sequence[Dict]) -> str:
    """Key of an importance measurement: the teacher's weight files and every input/label sequence."""
    h = hashlib.sha256(f"importance-v{FORMAT_VERSION}".encode())
    for name in sorted(os.listdir(teacher_dir)) if os.path.isdir(teacher_dir) else []:
        if name.endswith(".safetensors") or name.endswith(".safetensors.index.json"):
            st = os.stat(os.path.join(teacher_dir, name))
            h.update(f"{os.path.realpath(os.path.join(teacher_dir, name))}|{st.st_size}|{st.st_mtime_ns}".encode())
    if not os.path.isdir(teacher_dir):
        h.update(teacher_dir.encode())
    for f in features:
        h.update(np.asarray(f["input_ids"], dtype=np.int64).tobytes())
        h.update(np.asarray(f["labels"], dtype=np.int64).tobytes())
        if any(f.get("token_type_ids", ())):  # case ids (model.case_ids); all-0 types leave older keys as they were
            h.update(b"types|" + np.asarray(f["token_type_ids"], dtype=np.int8).tobytes())
    return h.hexdigest()[:20]


def load_or_measure(cache_dir: str, teacher_dir: str, teacher, features: Sequence[Dict], pad_token_id: int,
                    path: Optional[str] = None) -> Importance:
    """Importance from `path` (a file the user names), else from the cache, else measured once and cached."""
    if path:
        try:
            with open(path, encoding="utf-8") as f:
                return Importance.from_json(json.load(f), where=path)
        except OSError as e:
            raise UserError(f"cannot read the importance file: {e.strerror}", where=path) from None
        except json.JSONDecodeError as e:
            raise UserError(f"not valid JSON: {e}", where=path) from None
    from filelock import FileLock

    key = fingerprint(teacher_dir, features)
    cached = os.path.join(cache_dir, f"importance-{key}.json")
    os.makedirs(cache_dir, exist_ok=True)
    # runs started together (several seeds or students of one teacher) measure once; the others wait and reuse it
    with FileLock(cached + ".lock"):
        if os.path.isfile(cached):
            try:
                with open(cached, encoding="utf-8") as f:
                    logger.info("head/neuron importance from cache %s", cached)
                    return Importance.from_json(json.load(f), where=cached)
            except (OSError, ValueError, UserError) as e:
                logger.warning("importance cache %s is unreadable (%s); measuring again", cached, e)
        logger.info("measuring head/neuron importance of the teacher on %d training examples", len(features))
        importance = measure_importance(teacher, features, pad_token_id=pad_token_id)
        fsutil.write_json(cached, importance.to_json(), indent=None)
    return importance


# ---------------------------------------------------------------- planning


@dataclass
class Plan:
    layers: List[int]  # teacher layers kept, in order
    heads: List[List[int]]  # per kept layer: teacher head indices kept (ascending)
    neurons: List[List[int]]  # per kept layer: teacher FFN neurons kept (ascending)
    hidden_size: int

    def to_json(self) -> Dict:
        return {"layers": self.layers, "heads": self.heads, "neurons": self.neurons, "hidden_size": self.hidden_size}


def _top(scores: np.ndarray, k: int) -> List[int]:
    order = np.argsort(-scores, kind="stable")[:k]  # ties: the lower index first
    return sorted(int(i) for i in order)


def _allocate(scores: np.ndarray, per_layer: int, allocation: str) -> List[List[int]]:
    """Indices to keep per layer: the top `per_layer` of each row (uniform), or the top per_layer x rows over all
    rows after normalising each row by its L2 norm (global), at least one per row."""
    if allocation == "uniform":
        return [_top(row, per_layer) for row in scores]
    norm = scores / np.maximum(np.linalg.norm(scores, axis=1, keepdims=True), 1e-12)
    budget = per_layer * len(scores)
    keep = [[int(np.argmax(row))] for row in norm]  # every layer keeps its best unit
    flat = [(-norm[r, c], r, c) for r in range(norm.shape[0]) for c in range(norm.shape[1]) if c != keep[r][0]]
    for _, r, c in sorted(flat)[: budget - len(scores)]:
        keep[r].append(c)
    return [sorted(k) for k in keep]


def make_plan(importance: Importance, layers: Sequence[int], num_heads: Optional[int],
              intermediate_size: Optional[int], hidden_size: Optional[int], allocation: str = "uniform") -> Plan:
    n_layers, n_heads = importance.heads.shape
    n_neurons = importance.neurons.shape[1]
    width = importance.second_moment.shape[0]
    checks = [("num_heads", num_heads, n_heads, "attention heads per layer"),
              ("intermediate_size", intermediate_size, n_neurons, "FFN neurons per layer"),
              ("hidden_size", hidden_size, width, "hidden units")]
    for key, value, limit, what in checks:
        if value is not None and not 1 <= value <= limit:
            raise UserError(f"config key 'model.student.{key}' is {value}, but the teacher has {limit} {what}; "
                            f"use 1..{limit} (or null to keep them all)")
    rows = list(layers)
    heads = _allocate(importance.heads[rows], num_heads or n_heads, allocation)
    neurons = _allocate(importance.neurons[rows], intermediate_size or n_neurons, allocation)
    return Plan(rows, heads, neurons, hidden_size or width)


def principal_basis(second_moment: np.ndarray, width: int) -> np.ndarray:
    """[H, width]: orthonormal top eigenvectors of the second moment (identity when width = H, so that an
    unreduced student is the teacher's exact copy rather than a rotation of it)."""
    size = second_moment.shape[0]
    if width == size:
        return np.eye(size)
    values, vectors = np.linalg.eigh(second_moment)  # ascending
    return vectors[:, np.argsort(-values, kind="stable")[:width]]


# ---------------------------------------------------------------- building


def build_pruned(teacher, plan: Plan, model_class, num_labels: Optional[int], basis: np.ndarray):
    """A student of pruned_class(model_class) whose weights are sliced (and projected) from `teacher`."""
    t_encoder = _encoder(teacher)
    t_config = t_encoder.config
    head = _head_size(teacher)
    config = copy.deepcopy(t_config)
    config.num_hidden_layers = len(plan.layers)
    config.hidden_size = plan.hidden_size
    config.layer_heads = [len(h) for h in plan.heads]
    config.layer_intermediate = [len(n) for n in plan.neurons]
    config.num_attention_heads = max(config.layer_heads)
    config.intermediate_size = max(config.layer_intermediate)
    config.attention_head_size = head
    # the pooler keeps the teacher's output width: tanh does not commute with a projection
    config.pooler_size = t_config.hidden_size
    config.source_heads = plan.heads
    config.source_layers = plan.layers
    if num_labels is not None:
        config.num_labels = num_labels
    student = pruned_class(model_class)(config)
    P = basis.astype(np.float64)  # [H_teacher, k]
    t_state = {k: v.numpy().astype(np.float64) for k, v in teacher.state_dict().items()}
    t_prefix = "ernie." if hasattr(teacher, "ernie") else ""
    s_prefix = "ernie." if hasattr(student, "ernie") else ""
    new: Dict[str, np.ndarray] = {}

    def put(name, value, prefix=s_prefix):
        new[prefix + name] = value

    def get(name, prefix=t_prefix):
        return t_state[prefix + name]

    ratio = np.sqrt(t_config.hidden_size / plan.hidden_size)

    def layer_norm(source, target):
        gain, bias = get(f"{source}.weight"), get(f"{source}.bias")
        put(f"{target}.weight", ratio * ((P ** 2).T @ gain))  # diag(P^T diag(g) P)
        put(f"{target}.bias", P.T @ bias)

    for table in ("word_embeddings", "position_embeddings", "token_type_embeddings"):
        put(f"embeddings.{table}.weight", get(f"embeddings.{table}.weight") @ P)
    layer_norm("embeddings.layer_norm", "embeddings.layer_norm")
    for j, (t, heads, neurons) in enumerate(zip(plan.layers, plan.heads, plan.neurons)):
        src, dst = f"encoder.layers.{t}", f"encoder.layers.{j}"
        cols = np.concatenate([np.arange(h * head, (h + 1) * head) for h in heads])
        for proj in ("q_proj", "k_proj", "v_proj"):
            put(f"{dst}.self_attn.{proj}.weight", P.T @ get(f"{src}.self_attn.{proj}.weight")[:, cols])
            put(f"{dst}.self_attn.{proj}.bias", get(f"{src}.self_attn.{proj}.bias")[cols])
        put(f"{dst}.self_attn.out_proj.weight", get(f"{src}.self_attn.out_proj.weight")[cols] @ P)
        put(f"{dst}.self_attn.out_proj.bias", get(f"{src}.self_attn.out_proj.bias") @ P)
        put(f"{dst}.linear1.weight", P.T @ get(f"{src}.linear1.weight")[:, neurons])
        put(f"{dst}.linear1.bias", get(f"{src}.linear1.bias")[neurons])
        put(f"{dst}.linear2.weight", get(f"{src}.linear2.weight")[neurons] @ P)
        put(f"{dst}.linear2.bias", get(f"{src}.linear2.bias") @ P)
        layer_norm(f"{src}.norm1", f"{dst}.norm1")
        layer_norm(f"{src}.norm2", f"{dst}.norm2")
    put("pooler.dense.weight", P.T @ get("pooler.dense.weight"))
    put("pooler.dense.bias", get("pooler.dense.bias"))
    s_keys = student.state_dict()
    if "classifier.weight" in s_keys and "classifier.weight" in t_state:
        weight = t_state["classifier.weight"]
        if not isinstance(student, ErnieForSequenceClassification):
            weight = P.T @ weight  # a token classifier reads the (projected) stream
        if tuple(weight.shape) == tuple(s_keys["classifier.weight"].shape):
            new["classifier.weight"], new["classifier.bias"] = weight, t_state["classifier.bias"]
    missing = [k for k in s_keys if k not in new and not k.startswith("classifier.")]
    if missing:
        raise RuntimeError(f"pruning left student weights unset: {missing[:4]}")  # a bug here, not user input
    student.set_state_dict({k: paddle.to_tensor(v.astype(s_keys[k].numpy().dtype)) for k, v in new.items()})
    student.eval()
    return student


def init_report(teacher, student, features: Sequence[Dict], basis: np.ndarray, layer_map: Sequence[int],
                pad_token_id: int = 0, batch_size: int = 32, task=None) -> Dict[str, object]:
    """How far the freshly pruned student starts from its teacher on `features`, before any training:
    relative error of each mapped hidden state (student vs P^T teacher) and, given the `task`, agreement of the
    argmax predictions on the rows KD compares (one per text or per word)."""
    P = paddle.to_tensor(basis.astype("float32"))
    errors = np.zeros(len(layer_map))
    agree = total = 0
    teacher.eval()
    student.eval()
    lengths = [len(f["input_ids"]) for f in features]
    with paddle.no_grad():
        for idx in batching.eval_batches(lengths, batch_size):
            batch = {k: paddle.to_tensor(v) for k, v in batching.collate([features[i] for i in idx], pad_token_id).items()}
            kwargs = dict(input_ids=batch["input_ids"], token_type_ids=batch["token_type_ids"],
                          attention_mask=batch["attention_mask"], output_hidden_states=True, return_dict=True)
            t_out, s_out = teacher(**kwargs), student(**kwargs)
            real = batch["attention_mask"].numpy().astype(bool)
            for i, j in enumerate(layer_map):
                target = paddle.matmul(t_out.hidden_states[j], P).numpy()[real]
                diff = s_out.hidden_states[i].numpy()[real] - target
                errors[i] += float((diff ** 2).sum()) / max(1e-12, float((target ** 2).sum())) * len(idx)
            if task is None or getattr(t_out, "logits", None) is None:
                continue  # a bare encoder (stage 1) has no predictions to compare
            t_logits, s_logits = t_out.logits.numpy(), s_out.logits.numpy()
            for row, i in enumerate(idx):
                f = features[i]
                t_rows = task.kd_rows_numpy(task.slice_logits(t_logits, row, lengths[i]), f).argmax(-1)
                s_rows = task.kd_rows_numpy(task.slice_logits(s_logits, row, lengths[i]), f).argmax(-1)
                agree += int((t_rows == s_rows).sum())
                total += int(t_rows.size)
    return {"hidden_relative_error": [round(float(e / max(1, len(features))), 6) for e in errors],
            "prediction_agreement": round(agree / total, 6) if total else None, "examples": len(features)}


def student_from_teacher(student_cfg, teacher, teacher_dir: str, features: Sequence[Dict], model_class,
                         num_labels: Optional[int], cache_dir: str, output_dir: str, pad_token_id: int = 0,
                         task=None):
    """init=teacher_pruned: measure (or reuse) importance on labeled `features`, plan, build.

    Writes <output_dir>/importance.json (the scores used) and <output_dir>/pruning.json (what was kept and how far
    the student starts from the teacher). Returns (student, basis [H_teacher, k]).
    """
    from ernie_tiny_distill.models.birth import layers_to_keep  # imported here, as models.build: avoids a cycle
    from ernie_tiny_distill.models.build import num_layers

    labeled = [f for f in features if np.any(np.asarray(f["labels"]) != -100)]
    if not labeled and not student_cfg.importance_file:
        raise UserError("model.student.init=teacher_pruned measures importance on labeled training data, and the "
                        "training set has no labels", where="config key 'model.student.init'")
    # a fixed subset (not the training seed): every seed of a student shares one importance measurement
    rng = np.random.default_rng(0)
    chosen = sorted(rng.permutation(len(labeled))[: student_cfg.importance_examples].tolist())
    sample = [labeled[i] for i in chosen]
    importance = load_or_measure(cache_dir, teacher_dir, teacher, sample, pad_token_id, path=student_cfg.importance_file)
    layers = layers_to_keep(student_cfg, num_layers(teacher))
    plan = make_plan(importance, layers, student_cfg.num_heads, student_cfg.intermediate_size,
                     student_cfg.hidden_size, student_cfg.allocation)
    basis = principal_basis(importance.second_moment, plan.hidden_size)
    student = build_pruned(teacher, plan, model_class, num_labels, basis)
    layer_map = [0] + [t + 1 for t in plan.layers]
    report = init_report(teacher, student, (sample or list(features))[:256], basis, layer_map, pad_token_id,
                         task=task)
    logger.info("student pruned from the teacher: %s", describe(plan, _encoder(teacher).config))
    logger.info("before training, on %d training examples, the student's hidden states are off by %s (relative "
                "squared error per mapped layer); prediction agreement with the teacher: %s", report["examples"],
                report["hidden_relative_error"], report["prediction_agreement"])
    fsutil.write_json(os.path.join(output_dir, IMPORTANCE_FILE), importance.to_json(), indent=None)
    fsutil.write_json(os.path.join(output_dir, PRUNING_FILE), {**plan.to_json(), "allocation": student_cfg.allocation,
                                                        "init_report": report})
    return student, basis


def describe(plan: Plan, teacher_config) -> str:
    heads = sorted(set(len(h) for h in plan.heads))
    neurons = sorted(set(len(n) for n in plan.neurons))
    return (f"teacher layers {plan.layers}, heads per layer {heads[0] if len(heads) == 1 else [len(h) for h in plan.heads]}"
            f" of {teacher_config.num_attention_heads}, FFN {neurons[0] if len(neurons) == 1 else [len(n) for n in plan.neurons]}"
            f" of {teacher_config.intermediate_size}, hidden {plan.hidden_size} of {teacher_config.hidden_size}")


__all__ = ["Importance", "Plan", "measure_importance", "load_or_measure", "make_plan", "principal_basis",
           "build_pruned", "init_report", "describe", "is_pruned", "IMPORTANCE_FILE", "PRUNING_FILE"]
