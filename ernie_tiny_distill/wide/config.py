"""The config section model.wide and its rules (loaded with the core's config: imports nothing else of the package
but errors)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from ernie_tiny_distill.errors import UserError

WIDE_FITS = ("residual", "separate")
WIDE_LEVELS = ("window", "document")
WIDE_WEIGHTINGS = ("tfidf", "nb")  # document.WEIGHTINGS


@dataclass
class WideConfig:
    """Stage 'wide': a linear n-gram part (wide/window.py) fitted beside the task student in model.student.path,
    whose transformer stays frozen, on the teachers' soft labels (distill.*) and gold labels."""

    buckets: int = 1 << 20  # hashed word-piece bigram slots (0: unigrams only)
    # a tools/export.py directory of model.student.path: its windows are scored through Paddle Inference (faster,
    # same logits; checked to hold the same weights, else dygraph)
    deep_export: Optional[str] = None
    # residual: the table is fitted on top of the frozen transformer's logits (z = deep + table -> the soft labels);
    # separate: the table alone learns the soft labels, then joins the transformer at the scale (WIDE_SCALES) and
    # epoch best on dev, z = deep + scale * table -- a product of the two experts, so what the transformer knows
    # is kept rather than fitted away (and its logits on documents it was trained on never enter the fit)
    fit: str = field(default="residual", metadata={"choices": WIDE_FITS})
    # window: a table inside the exported graph, averaged over each window (wide/window.py); document: sublinear
    # TF-IDF weights over the whole document's word-piece n-grams and a linear layer (wide/document.py), added
    # after pooling, fitted alone by logistic regression on the soft labels (needs fit 'separate')
    level: str = field(default="window", metadata={"choices": WIDE_LEVELS})
    # level 'document': how each n-gram is weighted -- tfidf (sublinear count x idf) or nb (presence x the
    # naive-Bayes log-count ratio of the labeled training documents, NBSVM's features; two labels)
    weighting: str = field(default="tfidf", metadata={"choices": WIDE_WEIGHTINGS})


def check_wide(cfg) -> None:
    w, d = cfg.model.wide, cfg.distill
    if w.buckets < 0:
        raise UserError(f"config key 'model.wide.buckets' must be >= 0 (0: unigrams only), got {w.buckets}")
    if w.level == "document" and w.fit != "separate":
        raise UserError("config key 'model.wide.level' 'document' is fitted alone and then scaled on dev: set "
                        f"model.wide.fit to 'separate' (got {w.fit!r})")
    if cfg.stage != "wide":
        return
    if cfg.model.student.init != "pretrained":
        raise UserError("stage 'wide' fits a wide part beside a trained task student: set model.student.init "
                        f"to 'pretrained' and model.student.path to its best/ directory (got init "
                        f"{cfg.model.student.init!r})")
    if d.kd_weight + d.ce_weight <= 0:
        raise UserError("stage 'wide' has distill.kd_weight and distill.ce_weight at 0: nothing to fit")
    if d.hidden_weight > 0 or d.attention_weight > 0 or d.mlm_weight > 0:
        raise UserError("stage 'wide' fits logits only: set distill.hidden_weight, attention_weight and "
                        "mlm_weight to 0")
