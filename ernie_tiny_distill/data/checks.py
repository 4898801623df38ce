"""Consistency checks of the `data` config section: settings that would read other data than the user meant."""
from __future__ import annotations

import codecs

from ernie_tiny_distill.errors import UserError

TABLE_FORMATS = ("csv", "tsv", "jsonl")


def validate_data(data, stage: str) -> None:
    """Refuse data settings (a config.DataConfig; config.validate calls this) that would read other data than the
    user meant, naming the key and the fix."""
    try:
        codecs.lookup(data.encoding)
    except LookupError:
        raise UserError(f"config key 'data.encoding' is {data.encoding!r}, which is not a text encoding Python knows",
                        hint="e.g. utf-8, latin-1, cp1252, utf-16") from None
    if data.label_separator is not None and not data.label_separator:
        raise UserError("config key 'data.label_separator' must be a non-empty string (e.g. ':') or null")
    if data.format == "demo":
        for key in ("train_file", "dev_file", "test_file"):
            if getattr(data, key):
                raise UserError(f"config key 'data.{key}' is set but data.format is 'demo', which reads the "
                                "generated demo data and would ignore it",
                                hint="set data.format to the file's format (csv, tsv, jsonl, label_text, conll, msra)")
        if data.path:
            from ernie_tiny_distill.data.demo import demo_folder_problem

            problem = demo_folder_problem(data.path)
            if problem:
                raise UserError(f"config key 'data.path' = {data.path!r} {problem}, but data.format is 'demo', "
                                "which writes and reads the generated demo data there",
                                hint="set data.format to your data's format (conll, csv, imdb, ...), or data.path "
                                     "to an empty folder for the demo data")
    if data.unlabeled == "demo" and data.format != "demo":
        raise UserError(f"config key 'data.unlabeled' is 'demo' (the generated demo text) but data.format is "
                        f"{data.format!r}: the transfer set would not come from your data",
                        hint="set data.unlabeled to a file of your own unlabeled text, or 'augment' (stage task)")
    if data.unlabeled == "augment" and stage == "general":
        raise UserError("config key 'data.unlabeled' = 'augment' builds a transfer set from the training data; "
                        "it is for stage 'task' (stage 'general' needs real unlabeled text)")
    for key in ("unlabeled_column", "unlabeled_rows"):
        if getattr(data, key) is not None and data.unlabeled in (None, "demo", "augment", "imdb_unsup"):
            raise UserError(f"config key 'data.{key}' applies to an unlabeled file given as data.unlabeled, "
                            f"which is {data.unlabeled!r}", hint=f"set data.unlabeled to that file or data.{key} "
                                                                "to null")
    if data.label_separator is not None and data.format not in TABLE_FORMATS + ("label_text",):
        raise UserError(f"config key 'data.label_separator' applies to formats {', '.join(TABLE_FORMATS)}, "
                        f"label_text, but data.format is {data.format!r}", hint="set data.label_separator to null")
    for key in ("dev_text_column", "test_text_column"):
        if getattr(data, key) is not None and data.format not in TABLE_FORMATS:
            raise UserError(f"config key 'data.{key}' applies to formats {', '.join(TABLE_FORMATS)}, but "
                            f"data.format is {data.format!r}", hint=f"set data.{key} to null")
