"""Students born from the teacher: kept teacher layers, a PCA-narrowed copy of its embeddings, LoRA, dropout."""
from __future__ import annotations

import copy
import logging
import os
from typing import List, Optional, Sequence, Tuple

import numpy as np
import paddle
from paddlenlp.transformers import ErnieConfig, ErnieModel

from ernie_tiny_distill import extensions
from ernie_tiny_distill.config import StudentConfig
from ernie_tiny_distill.errors import UserError
from ernie_tiny_distill.models.build import (
    encoder_of,
    load_model,
    load_tokenizer,
    num_layers,
    read_task_metadata,
    resolve,
)

logger = logging.getLogger(__name__)


def layers_to_keep(student_cfg: StudentConfig, teacher_layers: int) -> Optional[List[int]]:
    """Teacher layers a student made of teacher layers (teacher_layers / teacher_pruned) keeps; else None."""
    if student_cfg.init not in ("teacher_layers", "teacher_pruned"):
        return None
    if student_cfg.layers:
        layers = list(student_cfg.layers)
    else:
        k = student_cfg.every_k
        layers = list(range(k - 1, teacher_layers, k))
    bad = [i for i in layers if not 0 <= i < teacher_layers]
    if bad or not layers:
        raise UserError(
            f"config key 'model.student.layers' selects layers {layers}, but the teacher has layers "
            f"0..{teacher_layers - 1}"
        )
    if sorted(set(layers)) != layers:
        raise UserError(f"config key 'model.student.layers' must be increasing and distinct, got {layers}")
    return layers


def select_teacher_layers(teacher, layers: Sequence[int], model_class, num_labels: Optional[int] = None):
    """A student of `model_class` whose encoder layer j is a copy of teacher layer layers[j].

    Embeddings, pooler and (when shapes agree) the task head are copied too: the ERNIE-Tiny/TinyBERT
    "parameter trimming" initialisation.
    """
    config = copy.deepcopy(encoder_of(teacher).config)
    config.num_hidden_layers = len(layers)
    if num_labels is not None:
        config.num_labels = num_labels
    student = model_class(config)
    teacher_state = teacher.state_dict()
    teacher_prefix = "" if isinstance(teacher, ErnieModel) else "ernie."
    student_prefix = "" if isinstance(student, ErnieModel) else "ernie."
    new_state = {}
    for key, param in student.state_dict().items():
        base = key[len(student_prefix):] if key.startswith(student_prefix) else None
        if base is not None and base.startswith("encoder.layers."):
            j, rest = base[len("encoder.layers."):].split(".", 1)
            source = f"{teacher_prefix}encoder.layers.{layers[int(j)]}.{rest}"
        elif base is not None:
            source = teacher_prefix + base
        else:
            source = key  # head parameters (classifier.*), copied only from a teacher with the same head
        if source in teacher_state and tuple(teacher_state[source].shape) == tuple(param.shape):
            new_state[key] = teacher_state[source]
    student.set_state_dict(new_state)
    fresh = [k for k in student.state_dict() if k not in new_state]
    if fresh:
        logger.info("student parameters not copied from the teacher (new): %s", ", ".join(fresh))
    return student


def student_from_config(student_cfg: StudentConfig, teacher, model_class, num_labels: Optional[int] = None):
    """A randomly initialised ERNIE sharing the teacher's vocabulary and position/type embedding sizes."""
    t = encoder_of(teacher).config
    num_layers_, hidden, heads, intermediate = student_cfg.shape_for_config_init()
    config = ErnieConfig(
        vocab_size=t.vocab_size,
        hidden_size=hidden,
        num_hidden_layers=num_layers_,
        num_attention_heads=heads,
        intermediate_size=intermediate,
        hidden_act=t.hidden_act,
        max_position_embeddings=t.max_position_embeddings,
        type_vocab_size=t.type_vocab_size,
        pad_token_id=t.pad_token_id,
        hidden_dropout_prob=t.hidden_dropout_prob,
        attention_probs_dropout_prob=t.attention_probs_dropout_prob,
    )
    if num_labels is not None:
        config.num_labels = num_labels
    student = model_class(config)
    if student_cfg.embeddings == "teacher_pca":
        copy_embeddings_pca(teacher, student)
    return student


def pca_basis(matrix: np.ndarray, width: int) -> np.ndarray:
    """[H_teacher, width]: the top `width` principal directions of the rows of `matrix`."""
    centered = matrix - matrix.mean(axis=0, keepdims=True)
    _, _, vt = np.linalg.svd(centered, full_matrices=False)  # vt: [H_teacher, H_teacher]
    return vt[:width].T


def copy_embeddings_pca(teacher, student) -> None:
    """Student embedding tables = teacher tables projected on the word embeddings' top principal directions.

    One basis for word, position and token-type tables keeps their sum (the embedding input) consistent;
    the rescaling keeps the projected rows' typical norm that of the teacher's rows.
    """
    t_emb, s_emb = encoder_of(teacher).embeddings, encoder_of(student).embeddings
    width = s_emb.word_embeddings.weight.shape[1]
    words = t_emb.word_embeddings.weight.numpy()
    if width > words.shape[1]:
        raise UserError(f"model.student.hidden_size ({width}) is wider than the teacher ({words.shape[1]}); "
                        "use model.student.embeddings=random")
    basis = pca_basis(words, width)
    scale = np.linalg.norm(words, axis=1).mean() / max(1e-6, np.linalg.norm(words @ basis, axis=1).mean())
    for name in ("word_embeddings", "position_embeddings", "token_type_embeddings"):
        source, target = getattr(t_emb, name).weight, getattr(s_emb, name).weight
        if source.shape[0] == target.shape[0]:
            target.set_value((source.numpy() @ basis * scale).astype(target.numpy().dtype))


def build_student(student_cfg: StudentConfig, teacher, teacher_tokenizer, model_class,
                  num_labels: Optional[int] = None, dropout: Optional[float] = None):
    if student_cfg.init == "teacher_layers":
        layers = layers_to_keep(student_cfg, num_layers(teacher))
        student = select_teacher_layers(teacher, layers, model_class, num_labels)
        logger.info("student: teacher layers %s", layers)
    elif student_cfg.init == "config":
        student = student_from_config(student_cfg, teacher, model_class, num_labels)
    else:
        student_tokenizer = load_tokenizer(student_cfg.path)
        check_same_vocab(teacher_tokenizer, student_tokenizer, student_cfg.path)
        student = load_model(student_cfg.path, model_class, num_labels=num_labels)
        extensions.check_student(student, student_cfg.path)  # parts stage training cannot carry on
    if dropout is not None:
        set_dropout(student, dropout)
    return student


def match_case_ids(model, spec: str, case_ids: bool, role: str, grow: bool):
    """`model` (loaded from `spec`) ready for model.case_ids: a model trained with case ids (its task.json says
    so) needs them, and one trained without gets the case rows (add_case_rows) when `grow`, else an error (a
    teacher must have learnt what the ids mean)."""
    path = resolve(spec)
    meta = read_task_metadata(path) if os.path.isdir(path) else None
    trained = bool((meta or {}).get("case_ids"))
    if trained == case_ids:
        return model
    if trained:
        raise UserError(f"the {role} {spec} was trained with model.case_ids=true: it reads word case from the token "
                        "types", where="config key 'model.case_ids'", hint="set model.case_ids=true")
    if not grow:
        raise UserError(f"the {role} {spec} was trained without case ids", where="config key 'model.case_ids'",
                        hint="fine-tune the teacher with model.case_ids=true, or remove model.case_ids")
    add_case_rows(model)
    return model


def add_case_rows(model) -> None:
    """Grow the token-type embedding to one row per case class (tasks/casing.py), each a copy of row 0 (the row
    single-text tasks use): before training, the model gives the same outputs whatever the case ids."""
    from ernie_tiny_distill.tasks.casing import CASE_CLASSES

    encoder = encoder_of(model)
    table = getattr(encoder.embeddings, "token_type_embeddings", None)
    if table is None:
        raise UserError("the model has no token-type embedding to carry case ids", where="config key 'model.case_ids'")
    row = table.weight.numpy()[:1]  # [1, H]
    grown = paddle.nn.Embedding(CASE_CLASSES, row.shape[1])
    grown.weight.set_value(np.repeat(row, CASE_CLASSES, axis=0))  # [CASE_CLASSES, H]
    encoder.embeddings.token_type_embeddings = grown
    for config in {id(c): c for c in (encoder.config, getattr(model, "config", encoder.config))}.values():
        config.type_vocab_size = CASE_CLASSES  # saved in config.json: the table loads at this size
    logger.info("case ids: the token-type embedding has %d rows, each a copy of row 0", CASE_CLASSES)


def set_dropout(model, p: float) -> None:
    for layer in model.sublayers():
        if isinstance(layer, paddle.nn.Dropout):
            layer.p = p
        if isinstance(layer, paddle.nn.MultiHeadAttention):
            layer.dropout = p


def disable_attention_dropout(model) -> None:
    """Attention maps are distilled as distributions; dropout on them would zero and rescale entries."""
    for layer in model.sublayers():
        if isinstance(layer, paddle.nn.MultiHeadAttention):
            layer.dropout = 0.0


def check_same_vocab(teacher_tokenizer, student_tokenizer, where: str) -> None:
    t, s = teacher_tokenizer.get_vocab(), student_tokenizer.get_vocab()
    if t != s:
        differ = sorted(set(t.items()) ^ set(s.items()))[:3]
        raise UserError(
            f"the student's vocabulary ({len(s)} tokens) differs from the teacher's ({len(t)} tokens), "
            f"e.g. {differ}; distillation needs one tokenizer for both",
            where=where,
        )


LORA_TARGETS = [".*self_attn.q_proj", ".*self_attn.k_proj", ".*self_attn.v_proj", ".*self_attn.out_proj",
                ".*linear1", ".*linear2"]


def add_lora(model, rank: int, case_ids: bool = False):
    """Wrap `model` with PaddleNLP LoRA adapters; only adapters and the task head (and with case ids the
    token-type embedding, which holds them) stay trainable."""
    from paddlenlp.peft import LoRAConfig, LoRAModel

    trainable = [".*classifier.*"] + ([".*token_type_embeddings.*"] if case_ids else [])
    config = LoRAConfig(r=rank, lora_alpha=2 * rank, target_modules=LORA_TARGETS,
                        trainable_modules=trainable, merge_weights=True)
    lora = LoRAModel(model, config)
    lora.mark_only_lora_as_trainable()
    return lora


def merge_lora(lora_model, model_class):
    """A plain `model_class` whose weights are W + scaling·A·B: what distillation and export expect."""
    lora_model.eval()  # with merge_weights=True, eval() folds each adapter into its base weight
    merged = {k: v for k, v in lora_model.model.state_dict().items() if "lora_" not in k}
    plain = model_class(copy.deepcopy(lora_model.model.config))
    plain.set_state_dict(merged)
    lora_model.train()
    return plain


def count_parameters(model) -> Tuple[int, int]:
    """(total, non-embedding) parameter counts; embeddings are the word/position/type tables."""
    total = embedding = 0
    for name, p in model.named_parameters():
        n = int(p.numel())
        total += n
        if "embeddings" in name and "layer_norm" not in name:
            embedding += n
    return total, total - embedding
