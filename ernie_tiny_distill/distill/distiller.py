"""What distillation adds to training: the trained wrapper, the layer map, cached teacher rows and the loss terms."""
from __future__ import annotations

import logging
from typing import Dict, List, Optional

import numpy as np
import paddle
import paddle.nn as nn

from ernie_tiny_distill.config import Config
from ernie_tiny_distill.distill import losses, teacher_states
from ernie_tiny_distill.distill.teacher_states import TeacherStates, TeacherTargets
from ernie_tiny_distill.errors import UserError
from ernie_tiny_distill.models import build as models
from ernie_tiny_distill.models import birth
from ernie_tiny_distill.tasks.base import Task

logger = logging.getLogger(__name__)

class Distillable(nn.Layer):
    """What the optimizer trains: the student plus, for hidden-state matching between different widths,
    a learned projection student width -> teacher width (TinyBERT's W_h). Only `student` is exported."""

    def __init__(self, student: nn.Layer, student_hidden: int, teacher_hidden: Optional[int],
                 initial_projection: Optional[np.ndarray] = None):
        super().__init__()
        self.student = student
        self.projection = (
            nn.Linear(student_hidden, teacher_hidden)
            if teacher_hidden is not None and teacher_hidden != student_hidden else None
        )
        if self.projection is not None and initial_projection is not None:  # [student_hidden, teacher_hidden]
            self.projection.weight.set_value(initial_projection.astype("float32"))
            self.projection.bias.set_value(np.zeros([teacher_hidden], dtype="float32"))

    def train(self, mode: bool = True):
        """nn.Layer.train/eval only set `training` flags; layers with their own train()/eval() must be called
        too: PaddleNLP's LoRA layers merge their adapters on eval() and unmerge them on train()."""
        super().train(mode)
        for layer in self.sublayers():
            if type(layer).train is not nn.Layer.train:
                layer.train() if mode else layer.eval()
        return self

    def eval(self):
        return self.train(False)

    def project(self, hidden: paddle.Tensor) -> paddle.Tensor:
        return hidden if self.projection is None else self.projection(hidden)


def layer_map_for(cfg: Config, n_s: int, n_t: int, source_layers: Optional[List[int]] = None) -> List[int]:
    """Teacher hidden-state index for each of the student's n_s + 1 hidden states (0 = embedding output).

    distill.layer_map when given; else a student made of teacher layers (teacher_layers / teacher_pruned, or a
    directory whose config.json records its `source_layers`) matches each layer to its source; else layers are
    spread uniformly (student layer i <-> teacher layer i·n_t/n_s).
    """
    s = cfg.model.student
    selected = birth.layers_to_keep(s, n_t) or source_layers
    if cfg.distill.layer_map:
        layer_map = list(cfg.distill.layer_map)
    elif selected:
        layer_map = [0] + [t + 1 for t in selected]
    else:
        layer_map = [round(i * n_t / n_s) for i in range(n_s + 1)]
    if len(layer_map) != n_s + 1 or not all(0 <= j <= n_t for j in layer_map):
        raise UserError(
            f"config key 'distill.layer_map' must list {n_s + 1} teacher indices in 0..{n_t} (one for the "
            f"embeddings, then one per student layer), got {layer_map}")
    return layer_map


class TeacherRows:
    """Teacher logits for every training feature, flattened to the rows KD compares (see Task.kd_rows)."""

    def __init__(self, rows: np.ndarray, offsets: np.ndarray):
        self.rows, self.offsets = rows, offsets

    def gather(self, indices: np.ndarray) -> paddle.Tensor:
        parts = [self.rows[self.offsets[i]:self.offsets[i + 1]] for i in indices]
        return paddle.to_tensor(np.concatenate(parts, axis=0))  # [N, C], same order as Task.kd_rows


def check_same_kd_rows(task: Task, student_features, teacher_features, length: int) -> None:
    """Both encodings must give the same KD rows per example (NER: every word kept at both lengths)."""
    for s, t in zip(student_features, teacher_features):
        if task.kd_row_count(s) != task.kd_row_count(t):
            raise UserError(
                f"training example {s['index']} has {task.kd_row_count(s)} KD rows for the student but "
                f"{task.kd_row_count(t)} at the teacher's length {length}: their outputs cannot be compared",
                where="config key 'distill.teacher_max_seq_length'",
                hint="for NER use a teacher length that fits every sentence the student reads, or null")


def loss_weights(cfg: Config) -> Dict[str, float]:
    """The active loss terms of a stage and their weights (terms weighted 0 are not computed at all)."""
    d = cfg.distill
    if cfg.stage == "teacher":
        weights = {"ce": 1.0}
    elif cfg.stage == "general":
        weights = {"hidden": d.hidden_weight, "attention": d.attention_weight, "mlm": d.mlm_weight}
    else:
        weights = {"kd": d.kd_weight, "ce": d.ce_weight, "hidden": d.hidden_weight, "attention": d.attention_weight}
    return {k: v for k, v in weights.items() if v > 0}


def kd_from_logits_only(cfg: Config) -> bool:
    """The teacher contributes only its output logits, so they can be computed once and cached."""
    weights = loss_weights(cfg)
    return "kd" in weights and not any(k in weights for k in ("hidden", "attention", "mlm"))


class Distiller:
    """The loss side of training: which terms are on, the frozen teacher (or its cached rows), the layer map.

    `loss_parts` computes every active term unweighted; `combine` is the one place they are weighted and summed.
    """

    def __init__(self, cfg: Config, task: Task, trainable: Distillable, teacher: Optional[nn.Layer] = None,
                 layer_map: Optional[List[int]] = None, teacher_rows: Optional[TeacherRows] = None,
                 pad_token_id: int = 0, mask_token_id: Optional[int] = None, vocab_size: Optional[int] = None,
                 attention_heads: Optional[List[Optional[List[int]]]] = None):
        self.cfg = cfg
        self.task = task
        # per student layer: the teacher heads its heads were pruned from (matched head by head), or None (averaged)
        self.attention_heads = attention_heads
        self.trainable = trainable
        self.teacher = teacher
        self.layer_map = layer_map
        self.teacher_rows = teacher_rows
        self.pad_token_id = pad_token_id
        self.mask_token_id = mask_token_id
        self.vocab_size = vocab_size
        self.weights = loss_weights(cfg)
        self.states: Optional[TeacherStates] = None  # see plan_teacher_states
        if teacher is not None:
            teacher.eval()
            for p in teacher.parameters():
                p.stop_gradient = True

    @property
    def needs_online_teacher(self) -> bool:
        intermediate = any(k in self.weights for k in ("hidden", "attention", "mlm"))
        return self.teacher is not None and (intermediate or ("kd" in self.weights and self.teacher_rows is None))

    def _forward(self, model, batch, hidden: bool, attention: bool, masked_positions=None):
        kwargs = dict(input_ids=batch["input_ids"], token_type_ids=batch["token_type_ids"],
                      attention_mask=batch["attention_mask"], output_hidden_states=hidden,
                      output_attentions=attention, return_dict=True)
        if masked_positions is not None:
            kwargs["masked_positions"] = masked_positions
        return model(**kwargs)

    def _mask_tokens(self, batch: Dict[str, paddle.Tensor], step: int):
        """BERT-style dynamic masking for MLM distillation: 80% [MASK], 10% random, 10% unchanged."""
        rng = np.random.default_rng(self.cfg.train.seed * 7919 + step)
        ids = batch["input_ids"].numpy().copy()
        special = (ids == self.pad_token_id) | (batch["attention_mask"].numpy() == 0)
        special[:, 0] = True  # [CLS]
        lengths = batch["attention_mask"].numpy().sum(1)
        special[np.arange(len(ids)), lengths - 1] = True  # [SEP]
        chosen = (rng.random(ids.shape) < self.cfg.distill.mask_prob) & ~special
        if not chosen.any():  # keep at least one position so the MLM term is defined
            row = int(np.argmax(lengths))
            chosen[row, min(1, lengths[row] - 1)] = True
        action = rng.random(ids.shape)
        ids[chosen & (action < 0.8)] = self.mask_token_id
        randomize = chosen & (action >= 0.8) & (action < 0.9)
        ids[randomize] = rng.integers(0, self.vocab_size, size=int(randomize.sum()))
        positions = np.flatnonzero(chosen.reshape(-1)).astype("int64")  # indices into the flattened [B*L]
        return {**batch, "input_ids": paddle.to_tensor(ids)}, paddle.to_tensor(positions)

    def _attention_terms(self) -> List[teacher_states.AttentionTerm]:
        heads = self.attention_heads or [None] * len(self.layer_map)
        return [(i, j, heads[i - 1]) for i, j in enumerate(self.layer_map) if i > 0 and j > 0]

    def _hidden_keys(self) -> List[int]:
        return sorted(set(self.layer_map)) if "hidden" in self.weights else []

    def plan_teacher_states(self, features, epochs: float) -> None:
        """Decide, before training, whether the teacher's outputs are kept per example (distill.cache_teacher_states):
        task stage, hidden/attention terms on, more than one epoch, and the estimated size within
        distill.teacher_state_cache_gb. Logs the decision and the estimate."""
        d = self.cfg.distill
        intermediate = "hidden" in self.weights or "attention" in self.weights
        self.states = None
        if not (intermediate and self.teacher is not None and self.cfg.stage == "task" and d.cache_teacher_states):
            return
        if epochs <= 1:
            logger.info("teacher states: not cached (a run of %g epoch(s) meets each example once)", epochs)
            return
        with_rows = "kd" in self.weights and self.teacher_rows is None
        terms = self._attention_terms() if "attention" in self.weights else []
        sizes = [1 if heads is None else len(heads) for _, _, heads in terms]
        hidden_keys = self._hidden_keys()
        size = teacher_states.estimate_bytes(
            features, [self.task.kd_row_count(f) for f in features] if with_rows else [0] * len(features),
            len(hidden_keys), models.hidden_size(self.teacher), sum(sizes), self.task.num_labels)
        maps = ", ".join(f"layer {j}: " + ("head mean" if h is None else f"heads {h}") for _, j, h in terms)
        what = (f"{len(features)} examples: hidden states {hidden_keys}, {sum(sizes)} attention map(s) per example "
                f"({maps or 'none'}){', logit rows' if with_rows else ''}; estimated {size / 2**30:.2f} GB float32")
        if size > d.teacher_state_cache_gb * 2**30:
            logger.warning("teacher states: NOT cached, the teacher runs online every step: %s exceeds "
                           "distill.teacher_state_cache_gb=%g", what, d.teacher_state_cache_gb)
            return
        logger.info("teacher states cached in RAM (computed in epoch 1, reused after): %s", what)
        self.states = TeacherStates(hidden_keys, sizes, with_rows)

    def _teacher_targets(self, batch, want_hidden: bool, want_attention: bool) -> TeacherTargets:
        """The teacher outputs the terms read. With the cache on, the teacher runs only on the batch's features not
        cached yet (the first time each is met; their outputs are kept), and the batch is served from the cache."""
        if self.states is None:
            return self._online_targets(batch, want_hidden, want_attention)
        indices = batch["index"].numpy()
        missing = self.states.missing(indices)
        if len(missing) == len(indices):  # e.g. epoch 1: the online outputs serve the batch as they are
            return self._online_targets(batch, want_hidden, want_attention, store=True)
        if missing:  # e.g. after a resume, whose cache starts empty
            self._online_targets(teacher_states.sub_batch(batch, missing), want_hidden, want_attention, store=True)
        targets = self.states.gather(batch)
        if "kd" in self.weights and self.teacher_rows is not None:
            targets.rows = self.teacher_rows.gather(indices)
        return targets

    def _online_targets(self, batch, want_hidden: bool, want_attention: bool, store: bool = False) -> TeacherTargets:
        """The teacher outputs the terms read, from a forward pass (logits rows from TeacherRows when cached)."""
        targets = TeacherTargets()
        t_out = None
        if self.needs_online_teacher:
            with paddle.no_grad():
                t_out = self._forward(self.teacher, batch, want_hidden, want_attention)
        pooled = None
        if "kd" in self.weights:
            if self.teacher_rows is not None:
                targets.rows = self.teacher_rows.gather(batch["index"].numpy())
            else:
                pooled = self.task.pool(t_out.logits, batch)  # [B, C] or [B, L, C]
                targets.rows = self.task.kd_rows(pooled, batch)  # [N, C]
        if want_hidden:
            targets.hidden = {j: t_out.hidden_states[j] for j in self._hidden_keys()}
        if want_attention:
            targets.attention = [teacher_states.select_heads(t_out.attentions[j - 1], heads)
                                 for _, j, heads in self._attention_terms()]
        if store:
            owners = None if pooled is None else teacher_states.kd_row_owners(self.task, pooled, batch)
            self.states.store(batch, targets, owners)
        return targets

    def loss_parts(self, batch: Dict[str, paddle.Tensor], step: int = 0) -> Dict[str, paddle.Tensor]:
        """Every active loss term, unweighted (the weights are applied in `combine`)."""
        w, d = self.weights, self.cfg.distill
        want_hidden, want_attention = "hidden" in w, "attention" in w
        masked_positions = None
        if "mlm" in w:
            batch, masked_positions = self._mask_tokens(batch, step)
        student = self.trainable.student
        s_out = self._forward(student, batch, want_hidden, want_attention, masked_positions)
        parts = {}
        if "ce" in w or "kd" in w:
            s_logits = self.task.pool(s_out.logits, batch)  # [B, C]: a long document's window rows pooled
        if "ce" in w:
            parts["ce"] = losses.hard_ce(s_logits, batch["labels"])
        if "mlm" in w:  # stage 1: the masked inputs change every step, so the teacher always runs online
            with paddle.no_grad():
                t_out = self._forward(self.teacher, batch, want_hidden, want_attention, masked_positions)
            parts["mlm"] = losses.soft_kl(s_out.logits, t_out.logits, d.temperature)
            teacher = TeacherTargets(
                hidden={j: t_out.hidden_states[j] for j in self._hidden_keys()} if want_hidden else {},
                attention=[teacher_states.select_heads(t_out.attentions[j - 1], heads)
                           for _, j, heads in self._attention_terms()] if want_attention else [])
        else:
            teacher = self._teacher_targets(batch, want_hidden, want_attention)
        if "kd" in w:
            s_rows = self.task.kd_rows(s_logits, batch)  # [N, C]
            parts["kd"] = losses.soft_kl(s_rows, teacher.rows, d.temperature)
        if want_hidden:
            mask = batch["attention_mask"]
            hidden_loss = losses.HIDDEN_LOSSES[d.hidden_loss]
            terms = [hidden_loss(self.trainable.project(s_out.hidden_states[i]), teacher.hidden[j], mask)
                     for i, j in enumerate(self.layer_map)]
            parts["hidden"] = paddle.add_n(terms) / len(terms)
        if want_attention:
            mask = batch["attention_mask"]
            # the teacher maps are already the matched heads (compared one by one) or the head mean [R, 1, L, L]
            terms = [losses.attention_loss(s_out.attentions[i - 1], t_map, mask, d.attention_loss,
                                           teacher_heads=None if heads is None else list(range(len(heads))))
                     for (i, _, heads), t_map in zip(self._attention_terms(), teacher.attention)]
            parts["attention"] = paddle.add_n(terms) / len(terms)
        return parts

    def combine(self, parts: Dict[str, paddle.Tensor]) -> paddle.Tensor:
        """The one place where loss terms are weighted and summed."""
        return paddle.add_n([self.weights[name] * value for name, value in parts.items()])


def build_distiller(cfg: Config, task: Task, student: nn.Layer, teacher: Optional[nn.Layer], tokenizer,
                    teacher_rows: Optional[TeacherRows] = None, basis: Optional[np.ndarray] = None) -> Distiller:
    """The Distiller a stage's config asks for: projection and layer map only when hidden/attention terms are on.

    `basis` [H_teacher, k]: the projection a student pruned to a narrower width was made with; its W_h then starts
    at the map back to the teacher's width (P^T) instead of at random."""
    d = cfg.distill
    intermediate = teacher is not None and (d.hidden_weight > 0 or d.attention_weight > 0)
    teacher_hidden = models.hidden_size(teacher) if intermediate and d.hidden_weight > 0 else None
    trainable = Distillable(student, models.hidden_size(student), teacher_hidden, None if basis is None else basis.T)
    layer_map = None
    if intermediate:
        if d.attention_weight > 0:
            birth.disable_attention_dropout(student)
        layer_map = layer_map_for(cfg, models.num_layers(student), models.num_layers(teacher),
                                  getattr(models.encoder_of(student).config, "source_layers", None))
        logger.info("layer map (student -> teacher hidden-state index): %s", layer_map)
    return Distiller(cfg, task, trainable, teacher=teacher, layer_map=layer_map, teacher_rows=teacher_rows,
                     pad_token_id=tokenizer.pad_token_id, mask_token_id=tokenizer.mask_token_id,
                     vocab_size=models.encoder_of(student).config.vocab_size,
                     attention_heads=attention_heads(student, layer_map))


def attention_heads(student, layer_map: Optional[List[int]]) -> Optional[List[Optional[List[int]]]]:
    """Heads pruned from teacher heads are matched to them one by one, where the student layer is mapped to the
    teacher layer it came from; elsewhere heads are averaged."""
    config = models.encoder_of(student).config
    source_heads, source_layers = getattr(config, "source_heads", None), getattr(config, "source_layers", None)
    if not layer_map or not source_heads or not source_layers:
        return None
    return [heads if layer_map[i + 1] == t + 1 else None for i, (t, heads) in enumerate(zip(source_layers, source_heads))]
