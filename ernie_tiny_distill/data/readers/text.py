"""File bytes to text: UTF-8 decoding with counted replacements, lines, and one-document-per-line files."""
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


def decode_bytes(raw: bytes, *, where: str, encoding_errors: str) -> str:
    """Decode UTF-8 file contents (dropping a BOM); 'replace' warns with the bad-byte count, 'strict' raises."""
    check_choice("encoding_errors", encoding_errors, ENCODING_ERRORS)
    bom = len(codecs.BOM_UTF8) if raw.startswith(codecs.BOM_UTF8) else 0
    body = raw[bom:] if bom else raw
    try:
        # Fast path: nearly every file is clean UTF-8.
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = exc
    line = body.count(b"\n", 0, bad.start) + 1
    if encoding_errors == "strict":
        raise UserError(
            f"not valid UTF-8: byte 0x{body[bad.start]:02x} at byte offset {bad.start + bom} ({bad.reason})",
            where=location(where, line),
            hint="re-save the file as UTF-8, or pass encoding_errors='replace' to substitute U+FFFD",
        )
    _replace_counter.count, _replace_counter.first = 0, -1
    text = body.decode("utf-8", _COUNTING_HANDLER)
    logger.warning(
        "%s: replaced %d byte(s) that are not valid UTF-8 with U+FFFD (first at line %d); is the file UTF-8?",
        where,
        _replace_counter.count,
        line,
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


def read_plain_text(path, *, encoding_errors: str = "replace") -> List[TextExample]:
    """One unlabeled document per line; blank lines are separators and are skipped."""
    text = decode_bytes(read_bytes(path, what="text file"), where=str(path), encoding_errors=encoding_errors)
    docs = [TextExample(line.strip(), None) for _, line in lines(text) if line.strip()]
    if not docs:
        raise UserError("no documents: the file is empty or has only blank lines", where=str(path),
                        hint="expected one document per line")
    return docs
