"""Input files of tools/predict.py: one text per line, or JSONL with {"text": ...} or {"tokens": [...]}."""
from __future__ import annotations

import json
from typing import List, Union

from ernie_tiny_distill.data.readers import decode_bytes, read_bytes
from ernie_tiny_distill.errors import UserError


def read_texts_file(path: str) -> List[str]:
    """One text per line (a blank line is an empty text, so output lines match input lines).

    Bytes that are not UTF-8 are replaced with U+FFFD; the count is logged as a warning.
    """
    text = decode_bytes(read_bytes(path, what="text file"), where=path, encoding_errors="replace")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.rstrip("\r") for line in lines]


def read_jsonl_items(stream, where: str = "stdin") -> List[Union[str, List[str]]]:
    """{"text": "..."} or {"tokens": ["...", ...]} per line (blank lines skipped); a bad line raises
    UserError naming its line number. Tokens are words already split as the model's training data was."""
    items: List[Union[str, List[str]]] = []
    for number, raw in enumerate(stream, 1):
        line = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (ValueError, RecursionError) as e:
            raise UserError(f"not valid JSON: {str(e)[:200]}", where=f"{where}:{number}",
                            hint='expected one {"text": "..."} or {"tokens": [...]} object per line') from None
        if isinstance(record, dict) and isinstance(record.get("text"), str):
            items.append(record["text"])
        elif (isinstance(record, dict) and isinstance(record.get("tokens"), list)
              and all(isinstance(t, str) for t in record["tokens"])):
            items.append(list(record["tokens"]))
        else:
            raise UserError('expected an object with a string "text" field or a "tokens" list of strings',
                            where=f"{where}:{number}")
    return items
