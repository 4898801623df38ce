"""Optional parts: the hooks an installed extension fills, found once through the entry-point group GROUP.

An extension ships a module-level `Extension` and names it in its package's setup.py:

    entry_points={"ernie_tiny_distill.extensions": ["NAME = package.module:EXTENSION"]}

The core calls the hooks below where an optional part joins a run and never imports an extension by name. The
named module is loaded while the core's config modules load, so at its top level it imports only
ernie_tiny_distill.errors, ernie_tiny_distill.extensions and its own config dataclasses; the rest inside its hooks.

A model may carry a `document_table`: an object added to each document's logits after its windows are pooled,
outside the exported graph, with
    add_to(features, pooled) -> [logits per document]   (evaluation, the Predictor, teachers scored by export)
    save(directory)                                     (beside the model and in its export)
    metadata() -> dict                                  (keys merged into task.json / export.json: metadata_keys)
"""
from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from ernie_tiny_distill.errors import UserError

GROUP = "ernie_tiny_distill.extensions"
SECTION_PARENTS = ("model",)  # where an extension's config section may sit
INSTALL_HINT = ("install the package that provides it; a source checkout re-installs its own parts with "
                "`pip install -e .` (or `make venv`)")


@dataclass(frozen=True)
class Extension:
    """What one optional part adds; every hook may be left out."""

    name: str  # the entry point's name
    # "model.NAME" -> a dataclass of its keys (defaults, `choices` metadata, a comment above each field)
    sections: Mapping[str, type] = field(default_factory=dict)
    # checks of a built Config, run after the core's per-stage rules; each raises UserError naming the key
    rules: Sequence[Callable[[Any], None]] = ()
    # stage name -> run(cfg, tokenizer, splits) -> the summary (summary.json); splits: the labeled splits
    stages: Mapping[str, Callable] = field(default_factory=dict)
    # of `stages`, those trained on the labeled split plus the transfer set (data.unlabeled), taught by teachers
    distill_stages: Tuple[str, ...] = ()
    # cfg -> [(config key, directory or None)]: exports the run reads (never an output_dir)
    input_exports: Optional[Callable[[Any], List[Tuple[str, Optional[str]]]]] = None
    # (model, model directory) -> the model with the parts saved in that directory attached, else `model`
    attach: Optional[Callable[[Any, str], Any]] = None
    # (student, model.student.path) -> None: refuses a loaded start student that stage training would break
    check_student: Optional[Callable[[Any, str], None]] = None
    # (export directory, export.json) -> its document_table (checked against export.json), or None
    export_document_table: Optional[Callable[[str, Dict], Any]] = None
    # the keys its parts' metadata() add to task.json / export.json
    metadata_keys: Tuple[str, ...] = ()


def _load(entry) -> Extension:
    where = f"entry point {entry.name} = {entry.value} (group {GROUP})"
    try:
        extension = entry.load()
    except Exception as e:  # a missing dependency of the extension, a renamed module
        raise UserError(f"the extension {entry.name!r} does not load: {type(e).__name__}: {e}", where=where,
                        hint="repair or uninstall the package that provides it") from None
    if not isinstance(extension, Extension) or extension.name != entry.name:
        raise UserError(f"the extension {entry.name!r} must name an Extension called {entry.name!r}", where=where)
    for key in extension.sections:
        if key.rpartition(".")[0] not in SECTION_PARENTS or not dataclasses.is_dataclass(extension.sections[key]):
            raise UserError(f"section {key!r} of the extension {entry.name!r} must be a dataclass below one of "
                            f"{', '.join(SECTION_PARENTS)}", where=where)
    return extension


@functools.cache
def installed() -> Tuple[Extension, ...]:
    """The installed extensions, by name (loaded once)."""
    return tuple(_load(entry) for entry in sorted(metadata.entry_points(group=GROUP), key=lambda e: e.name))


def names() -> Tuple[str, ...]:
    return tuple(e.name for e in installed())


def missing(what: str) -> str:
    """Why `what` (a key or a stage a config asks for) is not known: no installed extension provides it."""
    return (f"no installed extension provides {what} (optional parts register through the entry-point group "
            f"{GROUP!r}; installed: {', '.join(names()) or 'none'})")


# ---------------------------------------------------------------- configuration


def with_sections(cls, parent: str):
    """The dataclass `cls` plus a field per extension section below `parent` (defaulting to its defaults)."""
    extra = [(key.rpartition(".")[2], section, field(default_factory=section))
             for e in installed() for key, section in e.sections.items() if key.rpartition(".")[0] == parent]
    if not extra:
        return cls
    return dataclasses.make_dataclass(cls.__name__, extra, bases=(cls,),
                                      namespace={"__doc__": cls.__doc__, "__module__": cls.__module__})


def stages() -> Tuple[str, ...]:
    return tuple(stage for e in installed() for stage in e.stages)


def distill_stages() -> Tuple[str, ...]:
    return tuple(stage for e in installed() for stage in e.distill_stages)


def stage_runner(stage: str) -> Optional[Callable]:
    return next((e.stages[stage] for e in installed() if stage in e.stages), None)


def check(cfg) -> None:
    for e in installed():
        for rule in e.rules:
            rule(cfg)


def input_exports(cfg) -> List[Tuple[str, Optional[str]]]:
    return [spec for e in installed() if e.input_exports for spec in e.input_exports(cfg)]


# ---------------------------------------------------------------- models and exports


def attach(model, path: str):
    for e in installed():
        if e.attach:
            model = e.attach(model, path)
    return model


def check_student(student, path: str) -> None:
    for e in installed():
        if e.check_student:
            e.check_student(student, path)


def export_document_table(export_dir: str, meta: Dict):
    for e in installed():
        table = e.export_document_table(export_dir, meta) if e.export_document_table else None
        if table is not None:
            return table
    return None


def metadata_keys() -> Tuple[str, ...]:
    return tuple(key for e in installed() for key in e.metadata_keys)


def document_table_metadata(model) -> Dict:
    """What a model's document_table records in task.json / export.json ({} without one)."""
    table = getattr(model, "document_table", None)
    return table.metadata() if table is not None else {}

