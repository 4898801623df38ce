"""Distillation losses as pure functions of tensors; masked means are over valid positions only (0 if none)."""
from __future__ import annotations

from typing import Optional, Sequence

import paddle
import paddle.nn.functional as F


def _masked_mean(values: paddle.Tensor, mask: Optional[paddle.Tensor]) -> paddle.Tensor:
    """Mean of `values` over positions where `mask` is true; 0 (not NaN) when nothing is valid."""
    if mask is None:
        # zero rows (e.g. a tagging batch whose words were all truncated away) must give 0, not mean([]) = NaN
        return values.sum() / max(1, int(values.size))
    mask = mask.astype(values.dtype)
    # clip the count at 1 so an all-masked batch gives 0 / 1 = 0 instead of 0 / 0
    return (values * mask).sum() / paddle.clip(mask.sum(), min=1.0)


def soft_kl(student_logits: paddle.Tensor, teacher_logits: paddle.Tensor, temperature: float = 1.0) -> paddle.Tensor:
    """T² · KL(softmax(z_T/T) ‖ softmax(z_S/T)), averaged over rows (0 for no rows).

    logits: [N, C], only the rows to compare (Task.kd_rows selects them, e.g. each word's first sub-word).
    The T² factor keeps the gradient scale of the soft term independent of T (Hinton et al., 2015).
    """
    t = float(temperature)
    teacher_logp = F.log_softmax(teacher_logits.astype("float32") / t, axis=-1)  # [N, C]
    student_logp = F.log_softmax(student_logits.astype("float32") / t, axis=-1)  # [N, C]
    kl = (teacher_logp.exp() * (teacher_logp - student_logp)).sum(axis=-1)  # [N]
    return _masked_mean(kl, None) * (t * t)


def hard_ce(logits: paddle.Tensor, labels: paddle.Tensor, ignore_index: int = -100) -> paddle.Tensor:
    """Cross-entropy with gold labels, averaged over labels != ignore_index (0 when there are none)."""
    num_classes = logits.shape[-1]
    flat_logits = logits.reshape([-1, num_classes]).astype("float32")  # [N, C]
    flat_labels = labels.reshape([-1]).astype("int64")  # [N]
    valid = flat_labels != ignore_index
    safe_labels = paddle.where(valid, flat_labels, paddle.zeros_like(flat_labels))
    nll = F.cross_entropy(flat_logits, safe_labels, reduction="none").reshape([-1])  # [N]
    return _masked_mean(nll, valid)


def hidden_mse(student_hidden: paddle.Tensor, teacher_hidden: paddle.Tensor, mask: Optional[paddle.Tensor] = None):
    """Mean squared error between [B, L, H] hidden states (already projected to the same width),
    averaged over hidden units and over tokens where `mask` [B, L] is true."""
    per_token = ((student_hidden.astype("float32") - teacher_hidden.astype("float32")) ** 2).mean(axis=-1)  # [B, L]
    return _masked_mean(per_token, mask)


def relative_hidden_mse(student_hidden: paddle.Tensor, teacher_hidden: paddle.Tensor,
                        mask: Optional[paddle.Tensor] = None, eps: float = 1e-6):
    """`hidden_mse` divided by the teacher's variance around its mean state (over the valid tokens of the batch):
    the fraction of the teacher's variation the student leaves unexplained. Predicting the teacher's mean vector
    for every token scores 1.0 in every layer.

    Why: plain MSE is dominated by the layers whose states are large, and a student can lower it a long way by
    reproducing the teacher's mean state alone (MiniLM's last layer varies ~6x less than its middle ones, so the
    state the classifier reads gets the least weight). Relative to the variance, each layer counts the same and
    only the input-dependent part of the states is rewarded.
    """
    teacher = teacher_hidden.astype("float32")
    if mask is None:
        valid = paddle.ones(teacher.shape[:-1], dtype="float32")
    else:
        valid = mask.astype("float32")
    weights = valid.unsqueeze(-1)  # [B, L, 1]
    count = paddle.clip(valid.sum(), min=1.0)
    center = (teacher * weights).sum(axis=[0, 1]) / count  # [H]: the teacher's mean state
    variance = _masked_mean(((teacher - center) ** 2).mean(axis=-1), valid)
    return hidden_mse(student_hidden, teacher, mask) / (variance + eps)


# distill.hidden_loss -> function
HIDDEN_LOSSES = {"mse": hidden_mse, "relative_mse": relative_hidden_mse}


def attention_loss(
    student_attention: paddle.Tensor,
    teacher_attention: paddle.Tensor,
    mask: Optional[paddle.Tensor] = None,
    kind: str = "kl",
    eps: float = 1e-8,
    teacher_heads: Optional[Sequence[int]] = None,
) -> paddle.Tensor:
    """Match attention distributions [B, heads, L, L] (softmax probabilities over the last axis).

    Head counts may differ between teacher and student, so both are averaged over heads first; a student whose
    head k was pruned from teacher head teacher_heads[k] is instead matched head by head to those heads.
    kind="kl": KL(teacher ‖ student) per query row; kind="mse": squared error per row, summed over keys.
    Averaged over query positions where `mask` [B, L] is true; padded keys carry ~0 probability in both.
    """
    s = student_attention.astype("float32")
    t = teacher_attention.astype("float32")
    if teacher_heads is not None:
        t = paddle.index_select(t, paddle.to_tensor(list(teacher_heads), dtype="int64"), axis=1)  # [B, h, L, L]
    else:
        s, t = s.mean(axis=1, keepdim=True), t.mean(axis=1, keepdim=True)  # [B, 1, L, L]
    if kind == "kl":
        per_row = (t * (paddle.log(t + eps) - paddle.log(s + eps))).sum(axis=-1).mean(axis=1)  # [B, L]
    elif kind == "mse":
        per_row = ((s - t) ** 2).sum(axis=-1).mean(axis=1)  # [B, L]
    else:
        raise ValueError(f"attention loss kind must be 'kl' or 'mse', got {kind!r}")
    return _masked_mean(per_row, mask)
