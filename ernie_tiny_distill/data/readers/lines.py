"""Classification lines: `LABEL text ...`, the label the first whitespace-separated field (TREC's files)."""
from __future__ import annotations

import logging
from typing import Dict, List, Optional

from ernie_tiny_distill.data.examples import TextExample
from ernie_tiny_distill.data.readers.labels import sorted_labels
from ernie_tiny_distill.data.readers.text import decode_bytes, lines, read_bytes, show
from ernie_tiny_distill.errors import UserError, location

logger = logging.getLogger(__name__)

LINES_HINT = "expected one example per line: the label, a space or tab, then the text (e.g. `NUM:dist How far is ...`)"


def read_label_text(path, *, encoding: str = "utf-8", encoding_errors: str = "strict", skip_empty: bool = False,
                    label_names: Optional[Dict[str, str]] = None) -> List[TextExample]:
    """One labeled example per line: the first whitespace-separated field is the label, the rest the text;
    label_names maps label ids as written to class names (an id without a name is an error)."""
    text = decode_bytes(read_bytes(path, what="label_text file", hint=LINES_HINT), where=str(path),
                        encoding_errors=encoding_errors, encoding=encoding)
    examples, skipped = [], 0
    for line_no, line in lines(text):
        if not line.strip():
            continue
        fields = line.split(None, 1)
        if len(fields) < 2 or not fields[1].strip():
            if skip_empty:
                skipped += 1
                continue
            raise UserError(f"a label but no text in line {show(line)}", where=location(str(path), line_no),
                            hint=LINES_HINT + "; data.skip_empty=true skips such lines")
        label = fields[0]
        if label_names is not None:
            if label not in label_names:
                raise UserError(f"label {label!r} has no class name: the names given are for ids "
                                f"{', '.join(sorted_labels(label_names))}", where=location(str(path), line_no),
                                hint="check label_names and first_label_id (the id of the first name)")
            label = label_names[label]
        examples.append(TextExample(" ".join(fields[1].split()), label))
    if skipped:
        logger.warning("%s: skipped %d line(s) with a label but no text", path, skipped)
    if not examples:
        raise UserError("no examples: the file is empty or has only blank lines", where=str(path), hint=LINES_HINT)
    return examples
