"""ERNIE models whose layers each have their own attention-head count and FFN width (students pruned from a teacher).

PaddleNLP's ErnieModel ties the attention width to the hidden size (heads x head_dim = hidden) and gives every
layer one FFN width. A pruned student keeps, per layer, the heads and FFN neurons that matter, and may have a
narrower residual stream than its teacher; its classification pooler keeps the teacher's output width so that the
teacher's pooler and classifier carry over exactly. These classes are the PaddleNLP classes with those layers
resized after construction; everything else (forward, save_pretrained/from_pretrained, jit export) is inherited.

The shape lives in config.json:
    layer_heads          [L] attention heads per layer
    layer_intermediate   [L] FFN width per layer
    attention_head_size  width of one head (the teacher's: hidden / heads)
    pooler_size          output width of the [CLS] pooler (sequence classification reads it)
    source_heads         [L][heads] the teacher head each kept head came from (attention distillation uses it)
    source_layers        [L] the teacher layer each layer came from (the default distillation layer map)
"""
from __future__ import annotations

import paddle.nn as nn
from paddlenlp.transformers import ErnieForSequenceClassification, ErnieForTokenClassification, ErnieModel

SHAPE_KEYS = ("layer_heads", "layer_intermediate", "attention_head_size", "pooler_size")


def is_pruned(config) -> bool:
    return getattr(config, "layer_heads", None) is not None


def _construct(init, self, config):
    """Build with a head count that divides the hidden size (paddle asserts it), then resize per layer."""
    declared = config.num_attention_heads
    config.num_attention_heads = 1
    try:
        init(self, config)
    finally:
        config.num_attention_heads = declared


def resize_encoder(ernie: ErnieModel, config) -> None:
    hidden, head = config.hidden_size, config.attention_head_size
    layers = ernie.encoder.layers
    if not (len(layers) == len(config.layer_heads) == len(config.layer_intermediate)):
        raise ValueError(f"config lists {len(config.layer_heads)} head counts and {len(config.layer_intermediate)} "
                         f"FFN widths for {len(layers)} layers")
    for layer, heads, ffn in zip(layers, config.layer_heads, config.layer_intermediate):
        attention = layer.self_attn
        width = heads * head
        attention.num_heads, attention.head_dim = heads, head
        attention.q_proj = nn.Linear(hidden, width)
        attention.k_proj = nn.Linear(hidden, width)
        attention.v_proj = nn.Linear(hidden, width)
        attention.out_proj = nn.Linear(width, hidden)
        layer.linear1 = nn.Linear(hidden, ffn)
        layer.linear2 = nn.Linear(ffn, hidden)
    ernie.pooler.dense = nn.Linear(hidden, config.pooler_size)


class PrunedErnieModel(ErnieModel):
    def __init__(self, config):
        _construct(ErnieModel.__init__, self, config)
        resize_encoder(self, config)


class PrunedErnieForSequenceClassification(ErnieForSequenceClassification):
    def __init__(self, config):
        _construct(ErnieForSequenceClassification.__init__, self, config)
        resize_encoder(self.ernie, config)
        self.classifier = nn.Linear(config.pooler_size, config.num_labels)


class PrunedErnieForTokenClassification(ErnieForTokenClassification):
    def __init__(self, config):
        _construct(ErnieForTokenClassification.__init__, self, config)
        resize_encoder(self.ernie, config)


PRUNED_CLASSES = {
    ErnieModel: PrunedErnieModel,
    ErnieForSequenceClassification: PrunedErnieForSequenceClassification,
    ErnieForTokenClassification: PrunedErnieForTokenClassification,
}


def pruned_class(model_class):
    """The pruned variant of a PaddleNLP ERNIE class (itself when it is already one)."""
    if model_class in PRUNED_CLASSES.values():
        return model_class
    if model_class not in PRUNED_CLASSES:
        supported = ", ".join(c.__name__ for c in PRUNED_CLASSES)
        raise ValueError(f"no pruned variant of {model_class.__name__} (supported: {supported})")
    return PRUNED_CLASSES[model_class]

