"""Convert Hugging Face BERT checkpoints (safetensors only, never pickle) into PaddleNLP ERNIE models and directories."""
from __future__ import annotations

import json
import logging
import os
import re
import warnings
from typing import TYPE_CHECKING, Dict, Iterable, List, Optional, Tuple

import numpy as np

from ernie_tiny_distill.errors import UserError
from ernie_tiny_distill.models.hf_files import (
    HF_CONFIG,
    explain_not_hf_bert,
    is_hf_bert_dir,
    load_hf_weights,
    load_tokenizer,
    read_json,
    to_float32,
)
from ernie_tiny_distill.util import fsutil

if TYPE_CHECKING:  # paddle/paddlenlp take seconds to import; only the functions that need them import them
    from paddlenlp.transformers import ErnieConfig

logger = logging.getLogger(__name__)

CONVERSION_INFO = "conversion_info.json"

# HF name -> (Paddle name, transpose?). Paddle nn.Linear stores [in, out]; HF/torch Linear stores [out, in].
_EMBEDDINGS = {
    "embeddings.word_embeddings.weight": ("embeddings.word_embeddings.weight", False),
    "embeddings.position_embeddings.weight": ("embeddings.position_embeddings.weight", False),
    "embeddings.token_type_embeddings.weight": ("embeddings.token_type_embeddings.weight", False),
    "embeddings.LayerNorm.weight": ("embeddings.layer_norm.weight", False),
    "embeddings.LayerNorm.bias": ("embeddings.layer_norm.bias", False),
}
_LAYER = {  # suffixes after "encoder.layer.N."
    "attention.self.query.weight": ("self_attn.q_proj.weight", True),
    "attention.self.query.bias": ("self_attn.q_proj.bias", False),
    "attention.self.key.weight": ("self_attn.k_proj.weight", True),
    "attention.self.key.bias": ("self_attn.k_proj.bias", False),
    "attention.self.value.weight": ("self_attn.v_proj.weight", True),
    "attention.self.value.bias": ("self_attn.v_proj.bias", False),
    "attention.output.dense.weight": ("self_attn.out_proj.weight", True),
    "attention.output.dense.bias": ("self_attn.out_proj.bias", False),
    "attention.output.LayerNorm.weight": ("norm1.weight", False),
    "attention.output.LayerNorm.bias": ("norm1.bias", False),
    "intermediate.dense.weight": ("linear1.weight", True),
    "intermediate.dense.bias": ("linear1.bias", False),
    "output.dense.weight": ("linear2.weight", True),
    "output.dense.bias": ("linear2.bias", False),
    "output.LayerNorm.weight": ("norm2.weight", False),
    "output.LayerNorm.bias": ("norm2.bias", False),
}
_POOLER = {
    "pooler.dense.weight": ("pooler.dense.weight", True),
    "pooler.dense.bias": ("pooler.dense.bias", False),
}
# ErnieLMPredictionHead.decoder is paddlenlp.layers.Linear, stored [out, in] like torch: no transpose there.
_MLM = {
    "cls.predictions.transform.dense.weight": ("cls.predictions.transform.weight", True),
    "cls.predictions.transform.dense.bias": ("cls.predictions.transform.bias", False),
    "cls.predictions.transform.LayerNorm.weight": ("cls.predictions.layer_norm.weight", False),
    "cls.predictions.transform.LayerNorm.bias": ("cls.predictions.layer_norm.bias", False),
    "cls.predictions.bias": ("cls.predictions.decoder_bias", False),
}
# HF ties decoder.weight to the word embeddings and decoder.bias to predictions.bias, so either may be absent.
_MLM_OPTIONAL = ("cls.predictions.decoder.weight", "cls.predictions.decoder.bias")
# Buffers and the next-sentence head are not weights ERNIE needs; dropping them loses nothing for distillation.
_IGNORED = re.compile(r"^(embeddings\.position_ids|embeddings\.token_type_ids|cls\.seq_relationship\.(weight|bias))$")
_LAYER_KEY = re.compile(r"^encoder\.layer\.(\d+)\.(.+)$")
_SUPPORTED_ACTS = ("gelu", "relu")  # Paddle's TransformerEncoderLayer uses exact-erf F.gelu; tanh variants differ


def _normalize_hf_key(key: str) -> str:
    """Strip the `bert.` prefix of BertFor* checkpoints and rename TF-era LayerNorm gamma/beta."""
    if key.startswith("bert."):
        key = key[len("bert.") :]
    return re.sub(r"LayerNorm\.gamma$", "LayerNorm.weight", re.sub(r"LayerNorm\.beta$", "LayerNorm.bias", key))


def _short_list(keys: Iterable[str], limit: int = 5) -> str:
    keys = sorted(keys)
    more = f" (and {len(keys) - limit} more)" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def _map_key(key: str, num_layers: int) -> Optional[Tuple[str, bool]]:
    """Paddle (name, transpose) for a normalized HF key, or None if the key is not part of a BERT encoder/MLM head."""
    for table in (_EMBEDDINGS, _POOLER, _MLM):
        if key in table:
            return table[key]
    match = _LAYER_KEY.match(key)
    if match and int(match.group(1)) < num_layers and match.group(2) in _LAYER:
        name, transpose = _LAYER[match.group(2)]
        return f"encoder.layers.{match.group(1)}.{name}", transpose
    return None


def _required_hf_keys(num_layers: int) -> List[str]:
    keys = list(_EMBEDDINGS)
    for i in range(num_layers):
        keys += [f"encoder.layer.{i}.{suffix}" for suffix in _LAYER]
    return keys


def hf_bert_to_ernie_state(hf_state: Dict[str, np.ndarray], num_layers: int) -> Tuple[Dict[str, np.ndarray], bool]:
    """Rename/transpose HF BERT tensors to ErnieModel keys (no `ernie.` prefix) plus `cls.predictions.*` keys.

    Returns (state, has_mlm_head). The pooler is optional (BertForMaskedLM has none); everything else the
    encoder needs is required. Unknown keys raise instead of being dropped so a wrong checkpoint is noticed.
    """
    hf = {_normalize_hf_key(key): value for key, value in hf_state.items()}

    state: Dict[str, np.ndarray] = {}
    unknown = []
    for key, value in hf.items():
        if _IGNORED.match(key) or key in _MLM_OPTIONAL:
            continue
        mapped = _map_key(key, num_layers)
        if mapped is None:
            unknown.append(key)
            continue
        name, transpose = mapped
        state[name] = np.ascontiguousarray(value.T) if transpose else value
    if unknown:
        raise UserError(
            f"{len(unknown)} checkpoint tensor(s) are not part of a {num_layers}-layer BERT encoder or MLM head: "
            f"{_short_list(unknown)}",
            hint="is this a BERT checkpoint, and does config.json's num_hidden_layers match the weights?",
        )

    missing = [k for k in _required_hf_keys(num_layers) if k not in hf]
    has_mlm_head = any(k.startswith("cls.predictions.") for k in hf)
    if has_mlm_head:
        missing += [k for k in _MLM if k not in hf]
    if any(k in hf for k in _POOLER):  # the pooler is optional, but half a pooler is a broken checkpoint
        missing += [k for k in _POOLER if k not in hf]
    if missing:
        raise UserError(f"checkpoint is missing {len(missing)} required tensor(s): {_short_list(missing)}")

    if has_mlm_head:
        _add_mlm_decoder(state, hf)
    return state, has_mlm_head


def _add_mlm_decoder(state: Dict[str, np.ndarray], hf: Dict[str, np.ndarray]) -> None:
    """Fill the decoder weight/bias: HF checkpoints usually store them only once because they are tied."""
    state["cls.predictions.decoder.weight"] = hf.get(
        "cls.predictions.decoder.weight", state["embeddings.word_embeddings.weight"]
    )
    dec_bias = hf.get("cls.predictions.decoder.bias")
    if dec_bias is not None and not np.array_equal(dec_bias, hf["cls.predictions.bias"]):
        raise UserError("cls.predictions.decoder.bias differs from cls.predictions.bias; ERNIE has one decoder bias")
    # `decoder.bias` and `decoder_bias` are the same Paddle parameter under two names; give both so no key is missing.
    state["cls.predictions.decoder.bias"] = state["cls.predictions.decoder_bias"]


def decoder_is_tied(state: Dict[str, np.ndarray]) -> bool:
    """True when the MLM decoder equals the word embeddings (the usual BERT tying), so Paddle may tie them too."""
    dec = state.get("cls.predictions.decoder.weight")
    emb = state["embeddings.word_embeddings.weight"]
    return dec is None or dec is emb or (dec.shape == emb.shape and np.array_equal(dec, emb))


def hf_bert_config_to_ernie(hf_config: dict) -> "ErnieConfig":
    """ErnieConfig with the same architecture as a HF BertConfig dict; raises for BERT variants ERNIE cannot run."""
    from paddlenlp.transformers import ErnieConfig

    if hf_config.get("position_embedding_type", "absolute") != "absolute":
        raise UserError(f"position_embedding_type={hf_config['position_embedding_type']!r} is not supported",
                        where=HF_CONFIG, hint="only absolute position embeddings map onto ERNIE")
    if hf_config.get("is_decoder") or hf_config.get("add_cross_attention"):
        raise UserError("decoder / cross-attention BERT models are not supported", where=HF_CONFIG)
    act = hf_config.get("hidden_act", "gelu")
    if act not in _SUPPORTED_ACTS:
        raise UserError(f"hidden_act={act!r} is not supported (supported: {', '.join(_SUPPORTED_ACTS)})",
                        where=HF_CONFIG, hint="Paddle's encoder layer computes the exact erf GELU only")
    try:
        fields = {k: hf_config[k] for k in ("vocab_size", "hidden_size", "num_hidden_layers",
                                            "num_attention_heads", "intermediate_size")}
    except KeyError as exc:
        raise UserError(f"BERT config lacks {exc.args[0]!r}", where=HF_CONFIG) from None
    return ErnieConfig(
        **fields,
        hidden_act=act,
        hidden_dropout_prob=hf_config.get("hidden_dropout_prob", 0.1),
        attention_probs_dropout_prob=hf_config.get("attention_probs_dropout_prob", 0.1),
        max_position_embeddings=hf_config.get("max_position_embeddings", 512),
        type_vocab_size=hf_config.get("type_vocab_size", 2),
        initializer_range=hf_config.get("initializer_range", 0.02),
        pad_token_id=hf_config.get("pad_token_id", 0) or 0,
        # Recorded for reference; PaddleNLP's ERNIE hard-codes LayerNorm epsilon 1e-12 (see _set_layer_norm_eps).
        layer_norm_eps=hf_config.get("layer_norm_eps", 1e-12),
    )


def load_hf_bert(path: str) -> Tuple["ErnieConfig", Dict[str, np.ndarray], bool]:
    """(ErnieConfig, Ernie-named float32 state, has_mlm_head) read from a HF BERT directory."""
    path = str(path)
    if not is_hf_bert_dir(path):
        raise explain_not_hf_bert(path)
    config = hf_bert_config_to_ernie(read_json(os.path.join(path, HF_CONFIG)))
    try:
        state, has_mlm_head = hf_bert_to_ernie_state(to_float32(load_hf_weights(path)), config.num_hidden_layers)
    except UserError as exc:
        raise UserError(str(exc), where=path) from None
    if has_mlm_head and not decoder_is_tied(state):
        config.tie_word_embeddings = False  # otherwise Paddle would overwrite the decoder with the embeddings
    return config, state, has_mlm_head


def _set_layer_norm_eps(model, eps: float) -> None:
    """PaddleNLP's ERNIE init forces every LayerNorm to epsilon 1e-12, ignoring config.layer_norm_eps; BERT
    variants with another epsilon need it restored to compute the same function."""
    import paddle

    for layer in model.sublayers():
        if isinstance(layer, paddle.nn.LayerNorm):
            layer._epsilon = float(eps)


def _load_state_into(model, state: Dict[str, np.ndarray], source: str) -> None:
    """set_state_dict with checks: the encoder must be complete and shapes must agree; new heads may stay random."""
    target = model.state_dict()
    # Head classes (ErnieForSequenceClassification, ...) nest the encoder under `ernie.`; ErnieModel does not.
    prefix = "" if "embeddings.word_embeddings.weight" in target else "ernie."
    named = {(k if k.startswith("cls.") else prefix + k): v for k, v in state.items()}
    usable = {k: v for k, v in named.items() if k in target}
    bad_shapes = [f"{k} {list(v.shape)} vs {list(target[k].shape)}" for k, v in usable.items()
                  if list(v.shape) != list(target[k].shape)]
    if bad_shapes:
        raise UserError(f"tensor shapes do not match the model: {_short_list(bad_shapes)}", where=source)
    missing = [k for k in target if k not in usable]
    if any(k.startswith(prefix + "embeddings.") or k.startswith(prefix + "encoder.") for k in missing):
        raise UserError(f"encoder weights missing for {type(model).__name__}: {_short_list(missing)}", where=source)
    if any(k.startswith(prefix + "pooler.") for k in missing):
        warnings.warn(f"{source}: checkpoint has no pooler; {type(model).__name__}.pooler stays randomly initialised")
    if missing:
        logger.info("newly initialised (not in %s): %s", source, _short_list(missing))
    unused = sorted(set(named) - set(usable))
    if unused:
        logger.info("not used by %s: %s", type(model).__name__, _short_list(unused))
    # Keys left out would make Paddle warn "Skip loading" for each; the fresh head weights are passed back instead.
    model.set_state_dict({**target, **usable})


def load_ernie_from_hf(path: str, model_cls=None):
    """A `model_cls` (default ErnieModel; any ErniePretrainedModel subclass) instance with the checkpoint's weights.

    `path` is a HF BERT directory (converted in memory) or an already converted PaddleNLP directory.
    Head layers absent from the checkpoint (e.g. a classifier) keep their fresh initialisation.
    """
    from paddlenlp.transformers import ErnieModel

    model_cls = model_cls or ErnieModel
    path = str(path)
    if not is_hf_bert_dir(path):
        if not os.path.isfile(os.path.join(path, HF_CONFIG)):
            raise explain_not_hf_bert(path)
        return model_cls.from_pretrained(path)
    config, state, _ = load_hf_bert(path)
    model = model_cls(config)
    _set_layer_norm_eps(model, config.layer_norm_eps)
    _load_state_into(model, state, path)
    return model


def _count_params(model) -> int:
    """Unique parameters: tied MLM decoder/embeddings count once."""
    return int(sum(int(np.prod(p.shape)) for p in model.parameters()))


def check_destination(src: str, dst_dir: str, overwrite: bool) -> None:
    """Refuse a destination that is, contains or is inside the source (replacing it would delete the source),
    and a non-empty one unless `overwrite`."""
    source, dst = os.path.realpath(str(src)), os.path.realpath(str(dst_dir))
    inside = dst.startswith(source.rstrip(os.sep) + os.sep)
    if dst == source or inside or source.startswith(dst.rstrip(os.sep) + os.sep):
        relation = "is" if dst == source else "is inside" if inside else "contains"
        raise UserError(f"--dst {dst_dir} {relation} the source {src}; writing there would delete the source",
                        hint="choose a destination outside the source, e.g. a sibling directory")
    if os.path.isfile(dst_dir) or (os.path.isdir(dst_dir) and os.listdir(dst_dir) and not overwrite):
        raise UserError("destination exists and is not empty", where=dst_dir, hint="pass overwrite=True / --overwrite")


def convert_hf_bert(src_dir: str, dst_dir: str, overwrite: bool = False) -> str:
    """Write a PaddleNLP directory (config.json, model.safetensors, tokenizer files, conversion_info.json) to dst_dir.

    The model is ErnieModel, or ErnieForMaskedLM when the checkpoint has an MLM head. Everything is written into a
    sibling temporary directory and renamed into place, so a crash never leaves a half-written dst_dir.
    """
    from paddlenlp.transformers import ErnieForMaskedLM, ErnieModel

    src_dir, dst_dir = str(src_dir), os.path.abspath(str(dst_dir))
    config, state, has_mlm_head = load_hf_bert(src_dir)
    check_destination(src_dir, dst_dir, overwrite)
    if config.layer_norm_eps != 1e-12:
        # PaddleNLP re-applies 1e-12 when it loads the saved model, so the function would change silently.
        warnings.warn(f"layer_norm_eps={config.layer_norm_eps} but PaddleNLP ERNIE always uses 1e-12; "
                      "outputs of the saved model will differ slightly")
    tokenizer = load_tokenizer(src_dir)
    model = (ErnieForMaskedLM if has_mlm_head else ErnieModel)(config)
    _load_state_into(model, state, src_dir)

    with fsutil.atomic_dir(dst_dir) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        info = {"source": os.path.abspath(src_dir), "model_class": type(model).__name__,
                "has_mlm_head": has_mlm_head, "num_hidden_layers": config.num_hidden_layers,
                "hidden_size": config.hidden_size, "num_parameters": _count_params(model),
                "layer_norm_eps": config.layer_norm_eps}
        with open(os.path.join(tmp, CONVERSION_INFO), "w", encoding="utf-8") as f:
            json.dump(info, f, indent=2)
    return dst_dir
