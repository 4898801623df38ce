"""The IMDB tarball's parsed splits cached as JSON lines, keyed by the tarball's size and mtime."""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import List, Optional

from ..examples import TextExample
from ..fsutil import atomic_path

logger = logging.getLogger(__name__)

_IMDB_CACHE_VERSION = 1  # bump when the parsed form changes, so stale caches are not reused


def cache_file(cache_dir: Path, split: str, stat: os.stat_result) -> Path:
    """The cache file of one split of the tarball whose os.stat is `stat`."""
    # size+mtime identify the tarball cheaply; a replaced tarball gets a new cache file.
    return cache_dir / f"imdb-v{_IMDB_CACHE_VERSION}-{split}-{stat.st_size}-{stat.st_mtime_ns}.jsonl"


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
