"""The IMDB tarball's parsed splits cached as JSON lines, keyed by the tarball's size and content digest."""
from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import List, Optional

from ernie_tiny_distill.data.examples import TextExample
from ernie_tiny_distill.util.fsutil import atomic_path

logger = logging.getLogger(__name__)

# bump when the parsed form or the key changes, so stale caches are not reused (2: keyed by content, not mtime)
_IMDB_CACHE_VERSION = 2


def tarball_digest(tar_path: Path) -> str:
    """A digest of the tarball's bytes (~0.1 s for the 84 MB IMDB tarball). Not its mtime: a copied or re-extracted
    dataset (a new mtime, the same reviews) would otherwise leave a new 130 MB set of cache files each time."""
    h = hashlib.blake2b(digest_size=10)
    with open(tar_path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def cache_file(cache_dir: Path, split: str, size: int, digest: str) -> Path:
    """The cache file of one split of the tarball of `size` bytes whose tarball_digest is `digest`."""
    return cache_dir / f"imdb-v{_IMDB_CACHE_VERSION}-{split}-{size}-{digest}.jsonl"


def remove_stale(cache_dir: Path, split: str, keep: Path) -> None:
    """Remove this split's cache files of other versions or tarballs: the cache holds one tarball's splits."""
    for old in cache_dir.glob(f"imdb-v*-{split}-*.jsonl"):
        if old != keep:
            try:
                old.unlink()
                logger.info("removed stale IMDB cache %s", old)
            except OSError as exc:  # another process got there first, or a read-only cache: harmless
                logger.debug("could not remove %s: %s", old, exc)


def load_cache(file: Path) -> Optional[List[TextExample]]:
    """The cached examples, or None when the file is absent or unreadable (then the tarball is read again)."""
    if not file.is_file():
        return None
    try:
        with open(file, encoding="utf-8") as f:
            return [TextExample(d["text"], d["label"]) for d in map(json.loads, f)]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        # The cache is derived data: a damaged one is rebuilt, not reported as the user's error.
        logger.warning("ignoring unreadable IMDB cache %s (%s); re-reading the tarball", file, exc)
        return None


def write_cache(file: Path, examples: List[TextExample]) -> None:
    """Write the cache atomically: a crash or a concurrent reader never sees a half-written cache."""
    with atomic_path(str(file)) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for ex in examples:
            f.write(json.dumps({"text": ex.text, "label": ex.label}, ensure_ascii=False) + "\n")
