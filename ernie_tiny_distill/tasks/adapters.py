"""The task registry: a task name to its adapter (classification.py, tagging.py) and the stage-1 GeneralTask."""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

from paddlenlp.transformers import ErnieModel

from ernie_tiny_distill.data.examples import TextExample
from ernie_tiny_distill.tasks.base import IGNORE_INDEX, Feature, Task
from ernie_tiny_distill.tasks.base import pad_labels  # noqa: F401 - data/batching.py imports it from here
from ernie_tiny_distill.tasks.classification import ClassificationTask
from ernie_tiny_distill.tasks.tagging import TaggingTask


class GeneralTask(Task):
    """Stage 1 (general distillation) on unlabeled text: no head, no labels; tagged sentences are joined."""

    name = "general"
    metric_name = "loss"
    greater_is_better = False
    model_class = ErnieModel

    def __init__(self, tokenizer, max_seq_length: int):
        super().__init__(tokenizer, [], max_seq_length)

    def encode(self, examples, offset: int = 0) -> List[Feature]:
        features = []
        for i, ex in enumerate(examples):
            text = ex.text if isinstance(ex, TextExample) else " ".join(ex.tokens)
            input_ids, token_type_ids = self.wrap(self.wordpieces.ends(text, self.max_seq_length - 2, 0)[0])
            features.append({"input_ids": input_ids, "token_type_ids": token_type_ids, "labels": IGNORE_INDEX,
                             "index": offset + i})
        return features


TASKS = {"classification": ClassificationTask, "ner": TaggingTask}  # the tasks a model can be trained for


def task_class(name: str):
    """The Task subclass of a task name ("classification", "ner")."""
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; expected one of {', '.join(TASKS)}") from None


def make_task(name: str, tokenizer, labels: Sequence[str], max_seq_length: int, truncation: str = "head",
              decoding: Optional[str] = None, long_document: Optional[Dict] = None, case_ids: bool = False) -> Task:
    """The adapter for `name` (decoding: how tags are decoded, for tagging tasks; long_document: windows for
    long texts, see config.LongDocumentConfig.task_option; case_ids: word case classes as token types)."""
    return task_class(name)(tokenizer, labels, max_seq_length, truncation, decoding, long_document, case_ids)


def model_class_named(name: str):
    """The PaddleNLP model class a task.json / export.json names (model_class)."""
    import paddlenlp.transformers as transformers

    cls = getattr(transformers, name, None) if isinstance(name, str) else None
    if cls is None:
        from ernie_tiny_distill.errors import UserError

        raise UserError(f"task.json names model_class {name!r}, which PaddleNLP does not have")
    return cls
