"""Stage 1 (general distillation): the student learns the teacher's hidden states on unlabeled text."""
from __future__ import annotations

import os
from typing import Dict

from paddlenlp.transformers import ErnieForMaskedLM, ErnieModel

from ernie_tiny_distill.config import Config
from ernie_tiny_distill.errors import UserError
from ernie_tiny_distill.models import birth
from ernie_tiny_distill.models import build as models
from ernie_tiny_distill.tasks.adapters import GeneralTask
from ernie_tiny_distill.train import builders

# Stage 1 scores itself on this share of the unlabeled corpus, held out from training.
GENERAL_DEV_FRACTION, GENERAL_DEV_MAX = 0.02, 500


def run_general(cfg: Config, tokenizer, corpus: list) -> Dict[str, object]:
    d = cfg.distill
    n_dev = min(GENERAL_DEV_MAX, max(1, int(len(corpus) * GENERAL_DEV_FRACTION)))
    train_docs, dev_docs = corpus[n_dev:], corpus[:n_dev]
    task = GeneralTask(tokenizer, cfg.model.max_seq_length)
    model_class = ErnieForMaskedLM if d.mlm_weight > 0 else ErnieModel
    teacher = models.load_model(cfg.model.teacher, model_class)
    if d.mlm_weight > 0:
        require_mlm_head(cfg.model.teacher)
    train_features = task.encode(train_docs)
    dev_features = task.encode(dev_docs)
    basis = None
    if cfg.model.student.init == "teacher_pruned":
        if not cfg.model.student.importance_file:
            raise UserError("stage 'general' has no labels to measure head/neuron importance with",
                            where="config key 'model.student.importance_file'",
                            hint="point it at the importance.json of a task-stage run of the same teacher")
        student, basis = builders.pruned_student(cfg, teacher, train_features, model_class, None, tokenizer)
    else:
        student = birth.build_student(cfg.model.student, teacher, tokenizer, model_class, dropout=cfg.model.dropout)
    trainer = builders.make_trainer(cfg, task, student, teacher, tokenizer, basis=basis)
    best_dir = os.path.join(cfg.output_dir, "best")

    def save_best(metrics):
        models.save_model_dir(trainer.trainable.student, tokenizer, best_dir,
                              {**task.metadata(), "stage": "general", "dev": metrics})

    state = trainer.fit(train_features, dev_features, dev_docs, on_best=save_best)
    total, non_embedding = birth.count_parameters(student)
    return {"train_examples": len(train_features), "dev": {"loss": state["best_metric"]}, "best_dir": best_dir,
            "params": total, "nonembedding_params": non_embedding, "history": state["history"],
            "train_seconds": state.get("seconds"), "segments": state.get("segments", 1),
            "earlier_train_seconds": state.get("earlier_seconds")}


def require_mlm_head(spec: str) -> None:
    path = models.resolve(spec)
    from ernie_tiny_distill.models import convert, hf_files

    has_head = False
    if os.path.isdir(path) and hf_files.is_hf_bert_dir(path):
        has_head = convert.load_hf_bert(path)[2]
    elif os.path.isdir(path):
        from safetensors import safe_open

        for name in os.listdir(path):
            if name.endswith(".safetensors"):
                with safe_open(os.path.join(path, name), framework="np") as f:
                    has_head |= any(k.startswith("cls.") for k in f.keys())
    else:
        has_head = True  # PaddleNLP pretrained names ship their MLM head
    if not has_head:
        raise UserError(
            f"distill.mlm_weight > 0 needs a teacher with a masked-LM head, and {spec!r} has none",
            hint="set distill.mlm_weight=0 and use distill.hidden_weight / distill.attention_weight instead",
        )
