"""File modes: files and directories made through `tempfile` get the user's umask, not tempfile's private 0600/0700."""
from __future__ import annotations

import os


def current_umask() -> int:
    mask = os.umask(0)  # the only portable way to read it is to set it; put it straight back
    os.umask(mask)
    return mask


def as_umask_file(path: str) -> None:
    """A file from tempfile.mkstemp (0600) gets the mode open() would have given it (0666 & ~umask)."""
    os.chmod(path, 0o666 & ~current_umask())


def as_umask_dir(path: str) -> None:
    """A directory from tempfile.mkdtemp (0700) gets the mode os.mkdir would have given it (0777 & ~umask)."""
    os.chmod(path, 0o777 & ~current_umask())
