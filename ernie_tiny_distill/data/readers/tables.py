"""Classification tables: text and label columns from CSV/TSV files (with or without a header) or JSON lines."""
from __future__ import annotations

import csv
import io
import json
import logging
import numbers
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

from ernie_tiny_distill.data.examples import TextExample
from ernie_tiny_distill.data.readers.labels import sorted_labels
from ernie_tiny_distill.data.readers.text import check_choice, decode_bytes, lines, read_bytes, show
from ernie_tiny_distill.errors import UserError, location

logger = logging.getLogger(__name__)

FILE_FORMATS = ("csv", "tsv", "jsonl")
_SUFFIX_FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "jsonl"}


def _file_format(path, file_format: Optional[str]) -> str:
    if file_format is not None:
        check_choice("file_format", file_format, FILE_FORMATS)
        return file_format
    fmt = _SUFFIX_FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise UserError(
            f"cannot tell the file format from the suffix {Path(path).suffix!r}: allowed formats are "
            f"{', '.join(FILE_FORMATS)} (suffixes .csv, .tsv, .jsonl/.json for JSON lines)",
            where=str(path),
            hint="pass file_format explicitly",
        )
    return fmt


def _table_records(text: str, path, delimiter: str, header: bool = True):
    """(line, {column: value}) per CSV/TSV record; line is where the record starts (fields may span lines).

    The first item is (0, column names): the header row, or with header=False the positions "0", "1", ... of
    the first record, which is then a record too.
    """
    # Long documents can exceed csv's default 128 KiB field limit; 2**31-1 is safe on every platform.
    csv.field_size_limit(max(csv.field_size_limit(), 2**31 - 1))
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    names: Optional[List[str]] = None
    while True:
        start = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise UserError(f"malformed {'TSV' if delimiter == chr(9) else 'CSV'} record: {exc}",
                            where=location(str(path), start)) from exc
        if not row or (len(row) == 1 and not row[0].strip() and names is not None):
            continue  # blank line
        if names is None:
            names = [name.strip() for name in row] if header else [str(i) for i in range(len(row))]
            _check_unique(names, path)
            yield 0, names
            if header:
                continue
        if len(row) != len(names):
            what = f"the header has {len(names)} ({', '.join(names)})" if header else \
                f"the first record has {len(names)}"
            raise UserError(
                f"{len(row)} field(s) but {what}; quote fields that contain the delimiter, quotes or newlines",
                where=location(str(path), start),
            )
        yield start, dict(zip(names, row))


def _check_unique(names: List[str], path) -> None:
    # Records become {name: value}: a repeated name would silently keep only its last column.
    seen: Dict[str, int] = {}
    for i, name in enumerate(names):
        if name in seen:
            raise UserError(f"column name {name!r} repeats in the header (positions {seen[name]} and {i}): each "
                            "column needs its own name", where=location(str(path), 1),
                            hint="rename one of the columns in the file's first line")
        seen[name] = i


def _jsonl_records(text: str, path):
    for line_no, line in lines(text):
        if not line.strip():
            continue
        where = location(str(path), line_no)
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserError(f"invalid JSON: {exc.msg} (column {exc.colno}) in line {show(line)}", where=where,
                            hint="expected one JSON object per line (JSON lines)") from exc
        except RecursionError:
            raise UserError("JSON nested too deeply to read (thousands of levels of [ or {)", where=where,
                            hint="expected one flat JSON object per line, e.g. {\"text\": ..., \"label\": ...}"
                            ) from None
        if not isinstance(obj, dict):
            raise UserError(f"expected a JSON object per line, found {type(obj).__name__}", where=where)
        yield line_no, obj


def _label_text(value, where: str, column: str) -> str:
    # JSON gives ints for class ids; labels are always strings downstream ("0", "1").
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return str(value)
    if value is None:
        return ""
    raise UserError(f"label {column!r} must be a string or an integer, found {type(value).__name__} {value!r}",
                    where=where)


def _check_label_kind(value, first_of_kind: Dict[type, tuple], where: str, line_no: int) -> None:
    """JSON labels of one file are all strings or all integers: 1 among "pos"/"neg" would become a new class."""
    if isinstance(value, str):
        kind, other_kind = str, int
    elif isinstance(value, numbers.Integral) and not isinstance(value, bool):
        kind, other_kind = int, str
    else:
        return  # other types are refused by _label_text
    first_of_kind.setdefault(kind, (line_no, value))
    other = first_of_kind.get(other_kind)
    if other is not None:
        names = {str: "a string", int: "an integer"}
        raise UserError(f"label {value!r} is {names[kind]} but line {other[0]} has {names[other_kind]} label "
                        f"{other[1]!r}: the labels of one file must be all strings or all integers",
                        where=where, hint="write every label the same way (e.g. the class name as a string)")


Column = Union[str, int]


# the keys a hint names: config keys, and the flags of the one-command pipeline
COLUMN_KEYS = "data.text_column / data.label_column (tools/distill.py: --text-column / --label-column)"


def _column_name(column: Column, names: List[str], fmt: str, path, header: bool) -> str:
    """The record key for a configured column: its name, or a 0-based position (CSV/TSV)."""
    if isinstance(column, str):
        if not header and fmt != "jsonl":
            raise UserError(f"column {column!r} is a name but the file has no header row (header=False): "
                            f"give its 0-based position (0 to {len(names) - 1})", where=location(str(path), 1),
                            hint=f"set {COLUMN_KEYS} to column positions")
        return column
    if fmt == "jsonl":
        raise UserError(f"column position {column} given for JSON lines, whose fields have names only",
                        where=str(path), hint=f"set {COLUMN_KEYS} to field names")
    if not 0 <= column < len(names):
        raise UserError(f"column position {column} is out of range: the {'header' if header else 'first record'} "
                        f"has {len(names)} columns (positions 0 to {len(names) - 1})",
                        where=location(str(path), 1))
    return names[column]


def read_classification_file(
    path,
    *,
    text_column: Union[Column, Sequence[Column]] = "text",
    label_column: Optional[Column] = "label",
    file_format: Optional[str] = None,
    encoding_errors: str = "replace",
    skip_empty: bool = False,
    header: bool = True,
    label_names: Optional[Dict[str, str]] = None,
    encoding: str = "utf-8",
) -> List[TextExample]:
    """Text (and label) columns from a CSV/TSV file (with a header row, or header=False and 0-based column
    positions) or from JSON lines. Several text columns are joined with a space; label_names maps label ids
    as written to class names (an id without a name is an error)."""
    fmt = _file_format(path, file_format)
    if not header and fmt == "jsonl":
        raise UserError("header=False applies to CSV/TSV files only; JSON lines name their fields",
                        where=str(path))
    text_columns = list(text_column) if isinstance(text_column, (list, tuple)) else [text_column]
    text = decode_bytes(read_bytes(path, what=f"{fmt.upper()} file"), where=str(path),
                        encoding_errors=encoding_errors, encoding=encoding)
    wanted = text_columns + ([label_column] if label_column is not None else [])
    if fmt == "jsonl":
        records = _jsonl_records(text, path)
        names: List[str] = []
    else:
        records = _table_records(text, path, "," if fmt == "csv" else "\t", header=header)
        first = next(records, None)
        if first is None:
            raise UserError(f"empty file: expected {'a header row naming the columns' if header else 'records'} "
                            f"({', '.join(map(str, wanted))})", where=str(path))
        names = first[1]
        named = [c for c in wanted if isinstance(c, str)]
        missing = [c for c in named if c not in names] if header else []
        if missing:
            raise UserError(
                f"no column {', '.join(repr(c) for c in missing)} in the header; columns found: {names}",
                where=location(str(path), 1),
                hint=f"set {COLUMN_KEYS} to the right names (or 0-based positions); "
                     "data.header=false for a file without a header row",
            )
    text_keys = [_column_name(c, names, fmt, path, header) for c in text_columns]
    label_key = None if label_column is None else _column_name(label_column, names, fmt, path, header)
    keys = text_keys + ([label_key] if label_key is not None else [])
    text_desc = " + ".join(repr(c) for c in text_columns)

    examples, skipped = [], 0
    first_of_kind: Dict[type, tuple] = {}  # JSON label type -> (line, label) where it first appears
    for line_no, rec in records:
        where = location(str(path), line_no)
        missing = [c for c in keys if c not in rec]
        if missing:
            raise UserError(
                f"no field {', '.join(repr(c) for c in missing)}; fields found: {sorted(rec)}",
                where=where,
                hint=f"set {COLUMN_KEYS} to the right names",
            )
        parts = []
        for key, column in zip(text_keys, text_columns):
            value = rec[key]
            if not isinstance(value, str):
                raise UserError(f"text {column!r} must be a string, found {type(value).__name__}", where=where)
            if value.strip():
                parts.append(value.strip())
        doc = " ".join(parts)
        if not doc:
            if skip_empty:
                skipped += 1
                continue
            raise UserError(f"empty text in column {text_desc}", where=where,
                            hint="remove the record or pass skip_empty=True")
        label = None
        if label_key is not None:
            _check_label_kind(rec[label_key], first_of_kind, where, line_no)
            label = _label_text(rec[label_key], where, str(label_column))
            if not label:
                raise UserError(f"missing or empty label in column {label_column!r}", where=where)
            if label_names is not None:
                if label not in label_names:
                    raise UserError(
                        f"label {label!r} has no class name: the names given are for ids "
                        f"{', '.join(sorted_labels(label_names))}", where=where,
                        hint="check label_names and first_label_id (the id of the first name)")
                label = label_names[label]
        examples.append(TextExample(doc, label))
    if skipped:
        logger.warning("%s: skipped %d record(s) with empty text", path, skipped)
    if not examples:
        raise UserError("no examples: the file has no records" + (" with text" if skipped else ""), where=str(path))
    return examples
