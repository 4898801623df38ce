"""File bytes to text: decoding (UTF-8 or a named encoding) with counted replacements, lines, plain-text files."""
from __future__ import annotations

import codecs
import logging
import threading
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

from ernie_tiny_distill.data.examples import TextExample
from ernie_tiny_distill.errors import UserError, location

logger = logging.getLogger(__name__)

ENCODING_ERRORS = ("replace", "strict")
_SHOW_WIDTH = 80  # error messages quote the offending line, cut to this many characters


class _ReplaceCounter(threading.local):
    """Per-thread tally for the counting decode error handler (a codec handler cannot return extra data)."""

    count = 0
    first = -1


_replace_counter = _ReplaceCounter()


def _count_and_replace(err: UnicodeDecodeError):
    # Same output as the built-in "replace" handler, but we also learn how many bytes were bad and where.
    if _replace_counter.first < 0:
        _replace_counter.first = err.start
    _replace_counter.count += err.end - err.start
    return "\ufffd", err.end


_COUNTING_HANDLER = "ernie_tiny_distill.count_replace"
codecs.register_error(_COUNTING_HANDLER, _count_and_replace)


def check_choice(name: str, value, allowed: Sequence[str]) -> None:
    """A UserError unless `value` is one of `allowed` (the option named `name`)."""
    if value not in allowed:
        raise UserError(f"{name} must be one of {', '.join(repr(a) for a in allowed)}; got {value!r}")


def _codec(encoding: str) -> str:
    try:
        return codecs.lookup(encoding).name
    except LookupError:
        raise UserError(f"unknown text encoding {encoding!r}", hint="e.g. utf-8, latin-1, cp1252") from None


def decode_bytes(raw: bytes, *, where: str, encoding_errors: str, encoding: str = "utf-8") -> str:
    """Decode file contents (dropping a UTF-8 BOM); 'replace' warns with the bad-byte count, 'strict' raises
    naming the line."""
    check_choice("encoding_errors", encoding_errors, ENCODING_ERRORS)
    codec = _codec(encoding)
    shown = "UTF-8" if codec == "utf-8" else encoding
    bom = len(codecs.BOM_UTF8) if codec == "utf-8" and raw.startswith(codecs.BOM_UTF8) else 0
    body = raw[bom:] if bom else raw
    try:
        # Fast path: nearly every file is clean in its encoding.
        return body.decode(codec)
    except UnicodeDecodeError as exc:
        bad = exc
    line = body.count(b"\n", 0, bad.start) + 1
    if encoding_errors == "strict":
        start = body.rfind(b"\n", 0, bad.start) + 1
        end = body.find(b"\n", bad.start)
        text = body[start:end if end >= 0 else len(body)].decode(codec, "replace").rstrip("\r")
        raise UserError(
            f"not valid {shown}: byte 0x{body[bad.start]:02x} at byte offset {bad.start + bom} ({bad.reason}) "
            f"in line {show(text)}",
            where=location(where, line),
            hint="set data.encoding to the file's encoding (e.g. data.encoding=latin-1 or cp1252), re-save the "
                 "file as UTF-8, or set data.encoding_errors=replace to substitute U+FFFD",
        )
    _replace_counter.count, _replace_counter.first = 0, -1
    text = body.decode(codec, _COUNTING_HANDLER)
    logger.warning(
        "%s: replaced %d byte(s) that are not valid %s with U+FFFD (first at line %d); is the file %s?",
        where,
        _replace_counter.count,
        shown,
        line,
        shown,
    )
    return text


def read_bytes(path, *, what: str, hint: Optional[str] = None) -> bytes:
    """File contents, or a UserError naming the path (readers take bytes so decode_bytes sees BOMs and bad bytes)."""
    p = Path(path)
    if not p.exists():
        raise UserError(f"{what} not found: {path}", hint=hint)
    if p.is_dir():
        raise UserError(f"is a directory, expected a {what}", where=str(path), hint=hint)
    try:
        return p.read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read {what}: {exc.strerror or exc}", where=str(path)) from exc


def lines(text: str) -> List[Tuple[int, str]]:
    """(1-based line number, line) pairs; splits on \\n only (str.splitlines would also split on U+2028, \\x1c...)."""
    parts = text.split("\n")
    if parts and parts[-1] == "":
        parts.pop()  # the final newline does not start another line
    return [(i, part[:-1] if part.endswith("\r") else part) for i, part in enumerate(parts, start=1)]


def show(line: str) -> str:
    """The offending line for an error message, truncated so one huge line does not flood the terminal."""
    if len(line) > _SHOW_WIDTH:
        line = line[: _SHOW_WIDTH - 3] + "..."
    return repr(line)


def read_plain_text(path, *, encoding_errors: str = "replace", encoding: str = "utf-8") -> List[TextExample]:
    """One unlabeled document per line; blank lines are separators and are skipped."""
    text = decode_bytes(read_bytes(path, what="text file"), where=str(path), encoding_errors=encoding_errors,
                        encoding=encoding)
    docs = [TextExample(line.strip(), None) for _, line in lines(text) if line.strip()]
    if not docs:
        raise UserError("no documents: the file is empty or has only blank lines", where=str(path),
                        hint="expected one document per line")
    return docs
