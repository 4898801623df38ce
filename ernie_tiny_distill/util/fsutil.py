"""Atomic writes: a file or directory appears complete under its final name or not at all."""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from typing import Iterator, Optional

from ernie_tiny_distill.util.filemodes import as_umask_dir, as_umask_file


def _fsync_dir(directory: str) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass  # not supported on every file system; the rename is still atomic


@contextlib.contextmanager
def atomic_path(path: str, durable: bool = False) -> Iterator[str]:
    """Yield a temporary file name beside `path`; when the block succeeds it is renamed to `path`.

    For writers that want a file name (np.savez, safetensors, yaml). With durable=True the file and the directory
    are fsynced, so the new content survives a power cut as well as a crash.
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    os.close(fd)
    as_umask_file(tmp)  # mkstemp's private 0600 would become the file's mode
    try:
        yield tmp
        if durable:
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
        if durable:
            _fsync_dir(directory)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_text(path: str, text: str, durable: bool = False) -> None:
    """Write `text` (UTF-8, '\\n' line ends) to `path` atomically."""
    with atomic_path(path, durable) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)


def write_json(path: str, obj, durable: bool = False, **dump_kwargs) -> None:
    """json.dump `obj` (indent=2 unless given) to `path` atomically."""
    dump_kwargs.setdefault("indent", 2)
    write_text(path, json.dumps(obj, **dump_kwargs) + "\n", durable)


def _as_umask_tree(root: str) -> None:
    """Files and directories under `root` get the user's umask: writers such as safetensors create 0600 files,
    which other users of a shared model directory could not read."""
    for directory, dirs, files in os.walk(root):
        for name in dirs:
            as_umask_dir(os.path.join(directory, name))
        for name in files:
            path = os.path.join(directory, name)
            if not os.path.islink(path):
                as_umask_file(path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # another user's process (or a number we cannot ask about): leave it alone
    return True


def remove_stale_temps(path: str) -> None:
    """Remove the temporary directories (`.<name>.tmp-<pid>-*`) that writers of `path` killed before their rename
    left behind (their pid is gone), and pid-less ones of earlier versions; a running writer's are kept."""
    parent, name = os.path.split(os.path.abspath(path))
    head = f".{name}.tmp-"
    for entry in os.listdir(parent):
        if not entry.startswith(head) or not os.path.isdir(os.path.join(parent, entry)):
            continue
        pid, sep, _ = entry[len(head):].partition("-")
        if sep and pid.isdigit() and _alive(int(pid)):
            continue
        shutil.rmtree(os.path.join(parent, entry), ignore_errors=True)


@contextlib.contextmanager
def atomic_dir(path: str, durable: bool = False, prefix: Optional[str] = None) -> Iterator[str]:
    """Yield a temporary directory beside `path`; when the block succeeds it replaces `path` (old one removed).

    A crash leaves either the old directory or the new one under `path`, never a mixture (a failed rename puts
    the old one back); the temporary directory's name starts with `prefix` (default `.<name>.tmp-<pid>-`, whose
    leftovers from dead processes the next write of `path` removes) so a cleanup can recognise leftovers.
    """
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    if prefix is None:
        remove_stale_temps(path)
    tmp = tempfile.mkdtemp(prefix=prefix or f".{os.path.basename(path)}.tmp-{os.getpid()}-", dir=parent)
    as_umask_dir(tmp)  # mkdtemp's private 0700 would become the directory's mode (best/, checkpoints, exports)
    try:
        yield tmp
        _as_umask_tree(tmp)
        old = None
        if os.path.exists(path):
            # rename cannot replace a non-empty directory: move the old one aside first, delete it last
            old = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}.old-", dir=parent)
            os.replace(path, os.path.join(old, "x"))
        try:
            os.replace(tmp, path)
        except BaseException:
            if old:
                os.replace(os.path.join(old, "x"), path)  # put the old directory back
                shutil.rmtree(old, ignore_errors=True)
            raise
        if durable:
            _fsync_dir(parent)
        if old:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
