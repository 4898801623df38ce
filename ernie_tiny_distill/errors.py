"""User-facing errors: one exception type whose message says what was wrong and what was expected."""
from __future__ import annotations

from typing import Optional


class UserError(Exception):
    """A problem with the user's input (config, data, paths, checkpoints), not a bug in this package.

    The command-line tools print only the message (no traceback) and exit with status 2;
    `--debug` shows the traceback.
    """

    def __init__(self, message: str, *, where: Optional[str] = None, hint: Optional[str] = None):
        self.where = where
        self.hint = hint
        text = f"{where}: {message}" if where else message
        if hint:
            text += f"\n  hint: {hint}"
        super().__init__(text)


def location(path: str, line: Optional[int] = None) -> str:
    """'file:line' (or just 'file') for error messages; line numbers are 1-based."""
    return f"{path}:{line}" if line is not None else str(path)
