"""The wide part as an extension of the core (entry point `wide` in setup.py): its config section, rules, stage,
and how its tables join a loaded model or export."""
from __future__ import annotations

import os
from typing import Dict

from ernie_tiny_distill.errors import UserError
from ernie_tiny_distill.extensions import Extension
from ernie_tiny_distill.wide.config import WideConfig, check_wide

STUDENT_KEY = "config key 'model.student.path'"


def run_stage(cfg, tokenizer, splits) -> Dict[str, object]:
    """Stage 'wide': the table fitted beside the frozen transformer, at window or document level."""
    from ernie_tiny_distill.wide import document_fit, fit

    return (document_fit if cfg.model.wide.level == "document" else fit).run(cfg, tokenizer, splits)


def attach(model, path: str):
    """A wide-and-deep student: the transformer plus the n-gram table saved beside it, if any."""
    if not os.path.isdir(path):
        return model
    from ernie_tiny_distill.models import build as models
    from ernie_tiny_distill.wide import document, window

    if document.has_document_table(path):
        # document level: added after the windows are pooled (evaluation.predict_logits, the Predictor), not in forward
        model.document_table = document.DocumentTable.load(path)
        document.check_table(model.document_table, models.read_task_metadata(path),
                             models.encoder_of(model).config.vocab_size, os.path.join(path, document.DOCUMENT_CONFIG),
                             models.TASK_FILE)
        return model
    return window.attach(model, path) if window.has_wide(path) else model


def check_student(student, path: str) -> None:
    if getattr(student, "document_table", None) is not None:
        # added after pooling, outside forward: training the transformer would silently leave it behind
        raise UserError(f"model.student.path {path} has a document-level wide part (wide_document.json), which "
                        "stage training cannot carry on; start from the run its stage 'wide' froze (task.json "
                        "'wide.deep')", where=STUDENT_KEY)


def export_document_table(export_dir: str, meta: Dict):
    """The document-level table of an export, checked against its export.json; None if it has none."""
    from ernie_tiny_distill.deploy import layout
    from ernie_tiny_distill.wide import document

    if not document.has_document_table(export_dir):
        return None
    table = document.DocumentTable.load(export_dir)
    document.check_table(table, meta, meta["vocab_size"], os.path.join(export_dir, document.DOCUMENT_CONFIG),
                         layout.EXPORT_FILE)
    return table


EXTENSION = Extension(
    name="wide",
    sections={"model.wide": WideConfig},
    rules=(check_wide,),
    stages={"wide": run_stage},
    distill_stages=("wide",),
    input_exports=lambda cfg: [("model.wide.deep_export", cfg.model.wide.deep_export)],
    attach=attach,
    check_student=check_student,
    export_document_table=export_document_table,
    metadata_keys=("wide_document",),
)
