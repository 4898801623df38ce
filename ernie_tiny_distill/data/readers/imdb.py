"""IMDB reviews from aclImdb_v1.tar.gz, its extracted folder or PaddleNLP's download, with a memo and a cache."""
from __future__ import annotations

import math
import numbers
import random
import re
import tarfile
import zlib
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from ernie_tiny_distill.data.examples import TextExample
from ernie_tiny_distill.data.readers.imdb_cache import cache_file, load_cache, remove_stale, tarball_digest, write_cache
from ernie_tiny_distill.data.readers.imdb_layout import (
    IMDB_HINT,
    IMDB_LAYOUT,
    IMDB_SPLITS,
    IMDB_URL,
    REVIEW_NAME,
    check_complete,
    count_lines,
    member_place,
    split_dirs,
    urls_place,
)
from ernie_tiny_distill.data.readers.text import check_choice, decode_bytes
from ernie_tiny_distill.errors import UserError

# Spelled-out case classes instead of re.IGNORECASE: the case-folding matcher is ~2x slower on 100k reviews.
_HTML_BREAK = re.compile(r"<[bB][rR]\s*/?>")
_IMDB_LIMIT_SEED = 20110619  # fixed so `limit` picks the same reviews on every run and machine

# (abs path, size, mtime_ns) -> {split: examples}; one tarball only, to bound memory (~100k reviews).
_imdb_tar_memo: Dict[Tuple[str, int, int], Dict[str, List[TextExample]]] = {}
# (abs path, size, mtime_ns) -> the tarball's content digest, the cache files' key (hashed once per process)
_imdb_digest_memo: Dict[Tuple[str, int, int], str] = {}


def _clean_review(text: str) -> str:
    # Reviews carry HTML line breaks; models should see plain single-spaced text.
    # str.split() + join collapses (Unicode) whitespace runs and strips, faster than a regex.
    return " ".join((_HTML_BREAK.sub(" ", text) if "<" in text else text).split())


def _imdb_sort_key(label_dir: str, name: str):
    # Numeric id order (2 before 10), not the file system's or the tarball's order.
    m = REVIEW_NAME.match(name)
    return (label_dir, int(m.group(1)) if m else math.inf, name)


def _imdb_examples(rows: List[Tuple[str, str, str]], split: str) -> List[TextExample]:
    """Sorted examples from (label dir, file name, raw text) rows."""
    rows.sort(key=lambda r: _imdb_sort_key(r[0], r[1]))
    return [TextExample(_clean_review(text), None if split == "unsup" else label) for label, _, text in rows]


def _read_imdb_tar_all(tar_path: Path) -> Dict[str, List[TextExample]]:
    """All three splits from one pass over the tarball (gzip cannot seek, so one pass is the cheap way).

    The compressed stream is read to its very end, so gzip checks its CRC and length: a damaged archive is an
    error, never a partial read (tarfile stops silently at the first unreadable header). Then the review ids are
    checked against the archive's urls_*.txt lists (imdb_layout.check_complete).
    """
    rows: Dict[str, List[Tuple[str, str, str]]] = {s: [] for s in IMDB_SPLITS}
    url_counts: Dict[Tuple[str, str], int] = {}
    try:
        with tarfile.open(tar_path, "r:*") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                urls = urls_place(member.name)
                if urls is not None:
                    url_counts[urls] = count_lines(tar.extractfile(member).read())
                    continue
                place = member_place(member.name)
                if place is None:
                    continue
                split, label_dir, fname = place
                raw = tar.extractfile(member).read()
                text = decode_bytes(raw, where=f"{tar_path}:{member.name}", encoding_errors="replace")
                rows[split].append((label_dir, fname, text))
            # Drain the rest of the (decompressed) stream: gzip verifies CRC-32 and size only at its end.
            while tar.fileobj.read(1 << 20):
                pass
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise UserError(
            f"cannot read IMDB tarball, it is damaged or incomplete ({type(exc).__name__}: {exc})",
            where=str(tar_path),
            hint=f"download it again from {IMDB_URL} (expected {IMDB_LAYOUT})",
        ) from exc
    check_complete(str(tar_path), rows, url_counts)
    return {split: _imdb_examples(r, split) for split, r in rows.items()}


def _read_imdb_tar(tar_path: Path, split: str, cache_dir: Optional[str]) -> List[TextExample]:
    stat = tar_path.stat()
    key = (str(tar_path.resolve()), stat.st_size, stat.st_mtime_ns)
    splits = _imdb_tar_memo.get(key)
    if cache_dir is not None and key not in _imdb_digest_memo:
        _imdb_digest_memo[key] = tarball_digest(tar_path)
    if splits is None and cache_dir is not None:
        cached = load_cache(cache_file(Path(cache_dir), split, stat.st_size, _imdb_digest_memo[key]))
        if cached is not None:
            return cached
    if splits is None:
        splits = _read_imdb_tar_all(tar_path)
        _imdb_tar_memo.clear()
        _imdb_tar_memo[key] = splits
    if cache_dir is not None:
        # The pass produced every split, so cache them all: the next split asked for is free too.
        for name, examples in splits.items():
            file = cache_file(Path(cache_dir), name, stat.st_size, _imdb_digest_memo[key])
            if examples and not file.is_file():
                write_cache(file, examples)
                remove_stale(Path(cache_dir), name, keep=file)
    if not splits[split]:
        raise UserError(
            f"no reviews for split {split!r} in the tarball (looked for {split_dirs(split)})",
            where=str(tar_path),
            hint=f"expected {IMDB_LAYOUT}",
        )
    return splits[split]


def _imdb_root(folder: Path) -> Path:
    """The aclImdb/ folder, given it or its parent."""
    if (folder / "aclImdb").is_dir():
        return folder / "aclImdb"
    if (folder / "train").is_dir() or (folder / "test").is_dir():
        return folder
    raise UserError(
        f"not an IMDB folder: found neither aclImdb/ nor train/ or test/ in {folder}",
        where=str(folder),
        hint=f"expected {IMDB_LAYOUT}",
    )


def _read_imdb_folder(folder: Path, split: str) -> List[TextExample]:
    root = _imdb_root(folder)
    dirs = [("unsup", root / "train" / "unsup")] if split == "unsup" else [
        (label, root / split / label) for label in ("neg", "pos")
    ]
    rows = []
    for label_dir, d in dirs:
        if not d.is_dir():
            raise UserError(
                f"missing IMDB folder {d} for split {split!r}", where=str(folder), hint=f"expected {IMDB_LAYOUT}"
            )
        for f in d.iterdir():
            if f.is_file() and f.suffix == ".txt":
                text = decode_bytes(f.read_bytes(), where=str(f), encoding_errors="replace")
                rows.append((label_dir, f.name, text))
    if not rows:
        raise UserError(f"no reviews (*.txt) for split {split!r} under {', '.join(str(d) for _, d in dirs)}",
                        where=str(folder), hint=f"expected {IMDB_LAYOUT}")
    url_counts = {}
    for label_dir, d in dirs:
        urls = d.parent / f"urls_{label_dir}.txt"
        if urls.is_file():
            url_counts[(d.parent.name, label_dir)] = count_lines(urls.read_bytes())
    check_complete(str(folder), {s: (rows if s == split else []) for s in IMDB_SPLITS}, url_counts)
    return _imdb_examples(rows, split)


_PADDLENLP_IMDB_LABELS = {0: "neg", 1: "pos", "0": "neg", "1": "pos"}


def _read_imdb_paddlenlp(split: str) -> List[TextExample]:
    """Train/test via PaddleNLP's builder (aclImdb/{split}/{pos,neg}, labels "1"/"0" mapped to ids 1/0)."""
    if split == "unsup":
        raise UserError(
            "PaddleNLP's load_dataset('imdb') has only the 'train' and 'test' splits, no 'unsup' (unlabeled) split",
            hint=f"pass the path of aclImdb_v1.tar.gz (from {IMDB_URL}) or its extracted folder to read "
            "aclImdb/train/unsup/",
        )
    try:
        # Imported here: paddlenlp takes seconds to import and is needed only for this download path.
        from paddlenlp.datasets import load_dataset

        data = load_dataset("imdb", splits=split)
        if isinstance(data, (list, tuple)) and data and not isinstance(data[0], dict):
            data = data[0]  # some versions return a one-element list of datasets for a single split
        records = list(data)
    except Exception as exc:  # network, checksum, extraction: all mean "no data", and all need the same advice
        raise UserError(
            f"downloading IMDB with paddlenlp.datasets.load_dataset('imdb') failed ({type(exc).__name__}: {exc})",
            hint=IMDB_HINT,
        ) from exc
    by_label: Dict[str, List[TextExample]] = {"neg": [], "pos": []}
    for rec in records:
        label = _PADDLENLP_IMDB_LABELS.get(rec["label"])
        if label is None:
            raise UserError(f"unexpected IMDB label {rec['label']!r} from PaddleNLP (expected 0/1)")
        by_label[label].append(TextExample(_clean_review(rec["text"]), label))
    # Same class order as the local readers (neg, then pos); PaddleNLP keeps file-name order within a class.
    return by_label["neg"] + by_label["pos"]


def _imdb_limit(examples: List[TextExample], limit: int, split: str) -> List[TextExample]:
    if split == "unsup":
        return examples[:limit]
    # Shuffle each class with a fixed seed, then alternate classes: any prefix is balanced, and a
    # smaller limit gives a prefix of a larger one.
    classes = sorted({ex.label for ex in examples})
    queues = []
    for label in classes:
        members = [ex for ex in examples if ex.label == label]
        random.Random(_IMDB_LIMIT_SEED).shuffle(members)
        queues.append(members)
    picked: List[TextExample] = []
    for i in range(max(len(q) for q in queues)):
        picked.extend(q[i] for q in queues if i < len(q))
        if len(picked) >= limit:
            break
    return picked[:limit]


def read_imdb(
    path: Optional[str],
    split: str,
    *,
    limit: Optional[int] = None,
    cache_dir: Optional[str] = None,
) -> List[TextExample]:
    """IMDB reviews of one split ("train"/"test" labeled "neg"/"pos", "unsup" unlabeled), sorted by (label, id)."""
    check_choice("split", split, IMDB_SPLITS)
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, numbers.Integral) or limit < 1):
        raise UserError(f"limit must be a positive integer or None; got {limit!r}")
    if path is None:
        examples = _read_imdb_paddlenlp(split)
    else:
        p = Path(path)
        if not p.exists():
            raise UserError(f"IMDB data not found: {path}", hint=f"expected {IMDB_LAYOUT}; {IMDB_HINT}")
        examples = _read_imdb_folder(p, split) if p.is_dir() else _read_imdb_tar(p, split, cache_dir)
    if limit is not None:
        examples = _imdb_limit(examples, limit, split)
    # Fresh objects: the in-process memo must not see a caller's edits to the examples.
    return [TextExample(ex.text, ex.label) for ex in examples]
