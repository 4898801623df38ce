"""Optional dependencies: import one, or say in one line which extra of the package installs it."""
from __future__ import annotations

import importlib
from types import ModuleType

from ernie_tiny_distill.errors import UserError


def require(module: str, extra: str, for_what: str) -> ModuleType:
    """Import `module`; if it is not installed, a UserError naming the setup.py extra that brings it."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise UserError(f"{for_what} needs {module.split('.')[0]}, which is not installed ({e.msg})",
                        hint=f"pip install 'ernie_tiny_distill[{extra}]'") from None
