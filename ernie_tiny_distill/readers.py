"""Data readers: IMDB, CoNLL, MSRA, plain text and CSV/TSV/JSONL files into TextExample/TaggedSentence lists."""
from __future__ import annotations

import codecs
import csv
import io
import json
import logging
import math
import numbers
import os
import random
import re
import tarfile
import tempfile
import threading
import zlib
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

from .errors import UserError, location
from .examples import TaggedSentence, TextExample
from .filemodes import as_umask_file

logger = logging.getLogger(__name__)

__all__ = [
    "read_imdb",
    "read_plain_text",
    "read_conll",
    "read_msra",
    "read_classification_file",
    "read_label_names",
    "decode_bytes",
    "split_train_dev",
    "label_set",
    "check_labels_known",
]

ENCODING_ERRORS = ("replace", "strict")
IOB_REPAIR = ("convert", "reject")
LABEL_POLICIES = ("error", "map_to_o")
IMDB_SPLITS = ("train", "test", "unsup")
FILE_FORMATS = ("csv", "tsv", "jsonl")

_SUFFIX_FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "jsonl"}
_SHOW_WIDTH = 80  # error messages quote the offending line, cut to this many characters

IMDB_URL = "https://ai.stanford.edu/~amaas/data/sentiment/"
IMDB_LAYOUT = (
    "aclImdb_v1.tar.gz, or its extracted folder: aclImdb/{train,test}/{pos,neg}/<id>_<rating>.txt "
    "and aclImdb/train/unsup/<id>_0.txt"
)
IMDB_HINT = (
    f"download aclImdb_v1.tar.gz from {IMDB_URL} and pass its path (or the extracted folder); "
    "with path=None PaddleNLP's load_dataset('imdb') downloads the train/test splits when online"
)
CONLL_HINT = (
    "expected a CoNLL file: one token per line, token first and IOB tag last (e.g. `word POS chunk NER`), "
    "a blank line between sentences; CoNLL-2003 train.txt/valid.txt/test.txt can be fetched when online "
    "with paddlenlp.datasets.load_dataset('conll2003') (Hugging Face hub) and saved in that layout"
)


# --------------------------------------------------------------------------- bytes and lines


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


def _check_choice(name: str, value, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise UserError(f"{name} must be one of {', '.join(repr(a) for a in allowed)}; got {value!r}")


def decode_bytes(raw: bytes, *, where: str, encoding_errors: str) -> str:
    """Decode UTF-8 file contents (dropping a BOM); 'replace' warns with the bad-byte count, 'strict' raises."""
    _check_choice("encoding_errors", encoding_errors, ENCODING_ERRORS)
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


def _read_bytes(path, *, what: str, hint: Optional[str] = None) -> bytes:
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


read_bytes = _read_bytes  # the public name (deploy.inputs reads text files through it)


def _lines(text: str) -> List[Tuple[int, str]]:
    """(1-based line number, line) pairs; splits on \\n only (str.splitlines would also split on U+2028, \\x1c...)."""
    parts = text.split("\n")
    if parts and parts[-1] == "":
        parts.pop()  # the final newline does not start another line
    return [(i, part[:-1] if part.endswith("\r") else part) for i, part in enumerate(parts, start=1)]


def _show(line: str) -> str:
    """The offending line for an error message, truncated so one huge line does not flood the terminal."""
    if len(line) > _SHOW_WIDTH:
        line = line[: _SHOW_WIDTH - 3] + "..."
    return repr(line)


# --------------------------------------------------------------------------- IMDB

_IMDB_NAME = re.compile(r"^(\d+)_(\d+)\.txt$")
# Spelled-out case classes instead of re.IGNORECASE: the case-folding matcher is ~2x slower on 100k reviews.
_HTML_BREAK = re.compile(r"<[bB][rR]\s*/?>")
_IMDB_LIMIT_SEED = 20110619  # fixed so `limit` picks the same reviews on every run and machine
_IMDB_CACHE_VERSION = 1  # bump when the parsed form changes, so stale caches are not reused

# (abs path, size, mtime_ns) -> {split: examples}; one tarball only, to bound memory (~100k reviews).
_imdb_tar_memo: Dict[Tuple[str, int, int], Dict[str, List[TextExample]]] = {}


def _clean_review(text: str) -> str:
    # Reviews carry HTML line breaks; models should see plain single-spaced text.
    # str.split() + join collapses (Unicode) whitespace runs and strips, faster than a regex.
    return " ".join((_HTML_BREAK.sub(" ", text) if "<" in text else text).split())


def _imdb_sort_key(label_dir: str, name: str):
    # Numeric id order (2 before 10), not the file system's or the tarball's order.
    m = _IMDB_NAME.match(name)
    return (label_dir, int(m.group(1)) if m else math.inf, name)


def _imdb_member_place(name: str) -> Optional[Tuple[str, str, str]]:
    """(split, label dir, file name) for a review inside the official layout, else None."""
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if len(parts) != 4 or parts[0] != "aclImdb" or not parts[3].endswith(".txt"):
        return None
    _, top, label_dir, fname = parts
    if top == "train" and label_dir == "unsup":
        return "unsup", label_dir, fname
    if top in ("train", "test") and label_dir in ("neg", "pos"):
        return top, label_dir, fname
    return None


def _imdb_examples(rows: List[Tuple[str, str, str]], split: str) -> List[TextExample]:
    """Sorted examples from (label dir, file name, raw text) rows."""
    rows.sort(key=lambda r: _imdb_sort_key(r[0], r[1]))
    return [TextExample(_clean_review(text), None if split == "unsup" else label) for label, _, text in rows]


def _read_imdb_tar_all(tar_path: Path) -> Dict[str, List[TextExample]]:
    """All three splits from one pass over the tarball (gzip cannot seek, so one pass is the cheap way).

    The compressed stream is read to its very end, so gzip checks its CRC and length: a damaged archive is an
    error, never a partial read (tarfile stops silently at the first unreadable header). Then the review ids are
    checked against the archive's urls_*.txt lists (_check_imdb_complete).
    """
    rows: Dict[str, List[Tuple[str, str, str]]] = {s: [] for s in IMDB_SPLITS}
    url_counts: Dict[Tuple[str, str], int] = {}
    try:
        with tarfile.open(tar_path, "r:*") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                urls = _imdb_urls_place(member.name)
                if urls is not None:
                    url_counts[urls] = _count_lines(tar.extractfile(member).read())
                    continue
                place = _imdb_member_place(member.name)
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
    _check_imdb_complete(str(tar_path), rows, url_counts)
    return {split: _imdb_examples(r, split) for split, r in rows.items()}


# The official aclImdb_v1.tar.gz: reviews per directory, ids 0..N-1 (`<id>_<rating>.txt`), one line per review
# in the directory's urls_<label>.txt. Checked against the urls files of the archive or folder being read.
IMDB_OFFICIAL_COUNTS = {("train", "neg"): 12500, ("train", "pos"): 12500, ("train", "unsup"): 50000,
                        ("test", "neg"): 12500, ("test", "pos"): 12500}
# Reviews absent from some redistributed copies that are otherwise intact (accepted with a warning):
# test/pos/7_9.txt is missing from /work/shared/datasets/aclImdb_v1.tar.gz (see its README), so its test split
# has 24,999 reviews.
IMDB_KNOWN_MISSING = {("test", "pos"): {7}}
_IMDB_URLS = re.compile(r"^urls_(neg|pos|unsup)\.txt$")


def _imdb_urls_place(name: str) -> Optional[Tuple[str, str]]:
    """(split dir, label dir) for aclImdb/{train,test}/urls_<label>.txt, else None."""
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if len(parts) != 3 or parts[0] != "aclImdb" or parts[1] not in ("train", "test"):
        return None
    m = _IMDB_URLS.match(parts[2])
    return (parts[1], m.group(1)) if m else None


def _count_lines(raw: bytes) -> int:
    return len([line for line in raw.split(b"\n") if line.strip()])


def _check_imdb_complete(where: str, rows: Dict[str, List[Tuple[str, str, str]]],
                         url_counts: Dict[Tuple[str, str], int]) -> None:
    """Every review a urls_<label>.txt lists (ids 0..N-1) must be present: a shortfall is an error naming the
    archive and the missing files, so a partly extracted or damaged copy is never read as if it were whole."""
    problems = []
    for (top, label_dir), expected in sorted(url_counts.items()):
        split = "unsup" if label_dir == "unsup" else top
        ids = set()
        for row_label, fname, _ in rows[split]:
            m = _IMDB_NAME.match(fname)
            if row_label == label_dir and m:
                ids.add(int(m.group(1)))
        missing = sorted(set(range(expected)) - ids)
        known = sorted(set(missing) & IMDB_KNOWN_MISSING.get((top, label_dir), set()))
        if known:
            logger.warning("%s: aclImdb/%s/%s/ lacks review id(s) %s, known to be missing from some copies; "
                           "that directory has %d reviews instead of %d", where, top, label_dir,
                           ", ".join(map(str, known)), expected - len(known), expected)
            missing = [i for i in missing if i not in known]
        if missing:
            shown = ", ".join(f"{i}_*.txt" for i in missing[:5]) + (f" and {len(missing) - 5} more"
                                                                    if len(missing) > 5 else "")
            problems.append(f"aclImdb/{top}/{label_dir}/ has {expected - len(missing)} of the {expected} reviews "
                            f"its urls_{label_dir}.txt lists (missing {shown})")
    if problems:
        official = ", ".join(f"{t}/{d} {n:,}" for (t, d), n in IMDB_OFFICIAL_COUNTS.items())
        raise UserError("incomplete IMDB data: " + "; ".join(problems), where=where,
                        hint=f"the official aclImdb_v1.tar.gz has {official} reviews; download it again from "
                             f"{IMDB_URL} (or re-extract it)")


def _imdb_cache_file(cache_dir: Path, split: str, stat: os.stat_result) -> Path:
    # size+mtime identify the tarball cheaply; a replaced tarball gets a new cache file.
    return cache_dir / f"imdb-v{_IMDB_CACHE_VERSION}-{split}-{stat.st_size}-{stat.st_mtime_ns}.jsonl"


def _load_imdb_cache(file: Path) -> Optional[List[TextExample]]:
    if not file.is_file():
        return None
    try:
        with open(file, encoding="utf-8") as f:
            return [TextExample(d["text"], d["label"]) for d in map(json.loads, f)]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        # The cache is derived data: a damaged one is rebuilt, not reported as the user's error.
        logger.warning("ignoring unreadable IMDB cache %s (%s); re-reading the tarball", file, exc)
        return None


def _write_imdb_cache(file: Path, examples: List[TextExample]) -> None:
    file.parent.mkdir(parents=True, exist_ok=True)
    # Temp file + os.replace: a crash or a concurrent reader never sees a half-written cache.
    fd, tmp = tempfile.mkstemp(dir=file.parent, prefix=file.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            for ex in examples:
                f.write(json.dumps({"text": ex.text, "label": ex.label}, ensure_ascii=False) + "\n")
        as_umask_file(tmp)  # mkstemp makes 0600 files; a shared cache_dir needs the user's umask
        os.replace(tmp, file)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _read_imdb_tar(tar_path: Path, split: str, cache_dir: Optional[str]) -> List[TextExample]:
    stat = tar_path.stat()
    key = (str(tar_path.resolve()), stat.st_size, stat.st_mtime_ns)
    splits = _imdb_tar_memo.get(key)
    if splits is None and cache_dir is not None:
        cached = _load_imdb_cache(_imdb_cache_file(Path(cache_dir), split, stat))
        if cached is not None:
            return cached
    if splits is None:
        splits = _read_imdb_tar_all(tar_path)
        _imdb_tar_memo.clear()
        _imdb_tar_memo[key] = splits
    if cache_dir is not None:
        # The pass produced every split, so cache them all: the next split asked for is free too.
        for name, examples in splits.items():
            file = _imdb_cache_file(Path(cache_dir), name, stat)
            if examples and not file.is_file():
                _write_imdb_cache(file, examples)
    if not splits[split]:
        raise UserError(
            f"no reviews for split {split!r} in the tarball (looked for {_imdb_split_dirs(split)})",
            where=str(tar_path),
            hint=f"expected {IMDB_LAYOUT}",
        )
    return splits[split]


def _imdb_split_dirs(split: str) -> str:
    return "aclImdb/train/unsup/" if split == "unsup" else f"aclImdb/{split}/neg/ and aclImdb/{split}/pos/"


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
            url_counts[(d.parent.name, label_dir)] = _count_lines(urls.read_bytes())
    _check_imdb_complete(str(folder), {s: (rows if s == split else []) for s in IMDB_SPLITS}, url_counts)
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
    _check_choice("split", split, IMDB_SPLITS)
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


# --------------------------------------------------------------------------- plain text


def read_plain_text(path, *, encoding_errors: str = "replace") -> List[TextExample]:
    """One unlabeled document per line; blank lines are separators and are skipped."""
    text = decode_bytes(_read_bytes(path, what="text file"), where=str(path), encoding_errors=encoding_errors)
    docs = [TextExample(line.strip(), None) for _, line in _lines(text) if line.strip()]
    if not docs:
        raise UserError("no documents: the file is empty or has only blank lines", where=str(path),
                        hint="expected one document per line")
    return docs


# --------------------------------------------------------------------------- tagging

_TAG = re.compile(r"^(O|[BI]-\S+)$")
_COLUMNS = re.compile(r"[ \t]+")
_TAG_EXPECTED = "expected 'O' or 'B-TYPE' / 'I-TYPE' (IOB1 or IOB2)"


def _check_tag(tag: str, where: str, line: str, what: str = "the last column") -> None:
    if not _TAG.match(tag):
        raise UserError(f"bad tag {tag!r} in {what} of line {_show(line)}: {_TAG_EXPECTED}", where=where)


def _iob1_starts(tags: List[str]) -> List[int]:
    """Positions of I-X tags that start an entity (allowed in IOB1, not in IOB2)."""
    starts = []
    prev = "O"  # a sentence start behaves like a preceding O
    for i, tag in enumerate(tags):
        if tag.startswith("I-") and (prev == "O" or prev[2:] != tag[2:]):
            starts.append(i)
        prev = tag
    return starts


def read_conll(path, *, iob_repair: str = "convert", encoding_errors: str = "replace") -> List[TaggedSentence]:
    """CoNLL sentences: token = first column, tag = last column; IOB1 converted to IOB2 (or rejected)."""
    _check_choice("iob_repair", iob_repair, IOB_REPAIR)
    raw = _read_bytes(path, what="CoNLL file", hint=CONLL_HINT)
    text = decode_bytes(raw, where=str(path), encoding_errors=encoding_errors)

    sentences: List[TaggedSentence] = []
    tokens: List[str] = []
    tags: List[str] = []
    line_nos: List[int] = []
    lines_text: List[str] = []
    converted = 0

    def flush() -> None:
        nonlocal converted
        if not tokens:
            return
        for i in _iob1_starts(tags):
            if iob_repair == "reject":
                before = "the sentence start" if i == 0 else repr(tags[i - 1])
                raise UserError(
                    f"tag {tags[i]!r} starts an entity (after {before}) in line {_show(lines_text[i])}: "
                    f"this is IOB1; expected IOB2, where every entity starts with 'B-{tags[i][2:]}'",
                    where=location(str(path), line_nos[i]),
                    hint="pass iob_repair='convert' to convert IOB1 to IOB2",
                )
            tags[i] = "B-" + tags[i][2:]
            converted += 1
        sentences.append(TaggedSentence(list(tokens), list(tags)))
        for buf in (tokens, tags, line_nos, lines_text):
            buf.clear()

    for line_no, line in _lines(text):
        stripped = line.strip(" \t")
        if not stripped:
            flush()
            continue
        cols = _COLUMNS.split(stripped)
        if cols[0] == "-DOCSTART-":
            flush()  # document boundaries also end a sentence
            continue
        where = location(str(path), line_no)
        if len(cols) < 2:
            raise UserError(
                f"only one column in line {_show(line)}: expected at least 2 columns separated by spaces or tabs "
                "(token first, tag last)",
                where=where,
                hint=CONLL_HINT,
            )
        _check_tag(cols[-1], where, line)
        tokens.append(cols[0])
        tags.append(cols[-1])
        line_nos.append(line_no)
        lines_text.append(line)
    flush()

    if not sentences:
        raise UserError("no sentences: the file is empty (or has only -DOCSTART- and blank lines)",
                        where=str(path), hint=CONLL_HINT)
    if converted:
        logger.warning("%s: converted %d IOB1 tag(s) to IOB2 (an I-X that starts an entity became B-X)",
                       path, converted)
    return sentences


_MSRA_HEADER = "text_a\tlabel"
_MSRA_SEP = "\002"


def read_msra(path, *, encoding_errors: str = "replace") -> List[TaggedSentence]:
    """PaddleNLP msra_ner/peoples_daily_ner TSV: chars joined by U+0002, a tab, tags joined by U+0002."""
    text = decode_bytes(_read_bytes(path, what="MSRA-format file"), where=str(path), encoding_errors=encoding_errors)
    expected = "expected `chars<TAB>tags` with the characters and the tags each joined by U+0002"
    sentences = []
    for line_no, line in _lines(text):
        if line_no == 1 and line.strip() == _MSRA_HEADER:
            continue
        if not line.strip():
            continue
        where = location(str(path), line_no)
        fields = line.split("\t")
        if len(fields) != 2:
            raise UserError(f"{len(fields)} tab-separated field(s) in line {_show(line)}: {expected}", where=where)
        chars, tags = fields[0].split(_MSRA_SEP), fields[1].split(_MSRA_SEP)
        if len(chars) != len(tags):
            raise UserError(
                f"{len(chars)} characters but {len(tags)} tags in line {_show(line)}: "
                f"{expected}, one tag per character",
                where=where,
            )
        for tag in tags:
            _check_tag(tag, where, line, what="the tags")
        sentences.append(TaggedSentence(chars, tags))
    if not sentences:
        raise UserError("no sentences: the file is empty", where=str(path), hint=expected)
    return sentences


# --------------------------------------------------------------------------- CSV / TSV / JSONL


def _file_format(path, file_format: Optional[str]) -> str:
    if file_format is not None:
        _check_choice("file_format", file_format, FILE_FORMATS)
        return file_format
    fmt = _SUFFIX_FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise UserError(
            f"cannot tell the file format from the suffix {Path(path).suffix!r}: allowed formats are "
            f"{', '.join(FILE_FORMATS)} (suffixes .csv, .tsv, .jsonl/.json for JSON lines)",
            where=str(path),
            hint="pass file_format explicitly",
        )
    return fmt


def _table_records(text: str, path, delimiter: str, header: bool = True):
    """(line, {column: value}) per CSV/TSV record; line is where the record starts (fields may span lines).

    The first item is (0, column names): the header row, or with header=False the positions "0", "1", ... of
    the first record, which is then a record too.
    """
    # Long documents can exceed csv's default 128 KiB field limit; 2**31-1 is safe on every platform.
    csv.field_size_limit(max(csv.field_size_limit(), 2**31 - 1))
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    names: Optional[List[str]] = None
    while True:
        start = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise UserError(f"malformed {'TSV' if delimiter == chr(9) else 'CSV'} record: {exc}",
                            where=location(str(path), start)) from exc
        if not row or (len(row) == 1 and not row[0].strip() and names is not None):
            continue  # blank line
        if names is None:
            names = [name.strip() for name in row] if header else [str(i) for i in range(len(row))]
            yield 0, names
            if header:
                continue
        if len(row) != len(names):
            what = f"the header has {len(names)} ({', '.join(names)})" if header else \
                f"the first record has {len(names)}"
            raise UserError(
                f"{len(row)} field(s) but {what}; quote fields that contain the delimiter, quotes or newlines",
                where=location(str(path), start),
            )
        yield start, dict(zip(names, row))


def _jsonl_records(text: str, path):
    for line_no, line in _lines(text):
        if not line.strip():
            continue
        where = location(str(path), line_no)
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserError(f"invalid JSON: {exc.msg} (column {exc.colno}) in line {_show(line)}", where=where,
                            hint="expected one JSON object per line (JSON lines)") from exc
        if not isinstance(obj, dict):
            raise UserError(f"expected a JSON object per line, found {type(obj).__name__}", where=where)
        yield line_no, obj


def _label_text(value, where: str, column: str) -> str:
    # JSON gives ints for class ids; labels are always strings downstream ("0", "1").
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return str(value)
    if value is None:
        return ""
    raise UserError(f"label {column!r} must be a string or an integer, found {type(value).__name__} {value!r}",
                    where=where)


Column = Union[str, int]


def read_label_names(spec, first_id: int = 0) -> Optional[Dict[str, str]]:
    """{label id as written in the data: class name} from a file (one name per line), a list or a mapping."""
    if spec is None:
        return None
    if isinstance(spec, dict):
        return {str(k): str(v).strip() for k, v in spec.items()}
    if isinstance(spec, (list, tuple)):
        names, where = [str(v).strip() for v in spec], "label_names"
    else:
        text = decode_bytes(_read_bytes(spec, what="label-names file"), where=str(spec), encoding_errors="strict")
        names, where = [line.strip() for _, line in _lines(text) if line.strip()], str(spec)
        if not names:
            raise UserError("no class names: expected one name per line", where=where)
    if len(set(names)) != len(names):
        raise UserError(f"class names repeat: {names}", where=where)
    return {str(first_id + i): name for i, name in enumerate(names)}


def _column_name(column: Column, names: List[str], fmt: str, path, header: bool) -> str:
    """The record key for a configured column: its name, or a 0-based position (CSV/TSV)."""
    if isinstance(column, str):
        if not header and fmt != "jsonl":
            raise UserError(f"column {column!r} is a name but the file has no header row (header=False): "
                            f"give its 0-based position (0 to {len(names) - 1})", where=location(str(path), 1),
                            hint="set text_column / label_column to column positions")
        return column
    if fmt == "jsonl":
        raise UserError(f"column position {column} given for JSON lines, whose fields have names only",
                        where=str(path), hint="set text_column / label_column to field names")
    if not 0 <= column < len(names):
        raise UserError(f"column position {column} is out of range: the {'header' if header else 'first record'} "
                        f"has {len(names)} columns (positions 0 to {len(names) - 1})",
                        where=location(str(path), 1))
    return names[column]


def read_classification_file(
    path,
    *,
    text_column: Union[Column, Sequence[Column]] = "text",
    label_column: Optional[Column] = "label",
    file_format: Optional[str] = None,
    encoding_errors: str = "replace",
    skip_empty: bool = False,
    header: bool = True,
    label_names: Optional[Dict[str, str]] = None,
) -> List[TextExample]:
    """Text (and label) columns from a CSV/TSV file (with a header row, or header=False and 0-based column
    positions) or from JSON lines. Several text columns are joined with a space; label_names maps label ids
    as written to class names (an id without a name is an error)."""
    fmt = _file_format(path, file_format)
    if not header and fmt == "jsonl":
        raise UserError("header=False applies to CSV/TSV files only; JSON lines name their fields",
                        where=str(path))
    text_columns = list(text_column) if isinstance(text_column, (list, tuple)) else [text_column]
    text = decode_bytes(_read_bytes(path, what=f"{fmt.upper()} file"), where=str(path),
                        encoding_errors=encoding_errors)
    wanted = text_columns + ([label_column] if label_column is not None else [])
    if fmt == "jsonl":
        records = _jsonl_records(text, path)
        names: List[str] = []
    else:
        records = _table_records(text, path, "," if fmt == "csv" else "\t", header=header)
        first = next(records, None)
        if first is None:
            raise UserError(f"empty file: expected {'a header row naming the columns' if header else 'records'} "
                            f"({', '.join(map(str, wanted))})", where=str(path))
        names = first[1]
        named = [c for c in wanted if isinstance(c, str)]
        missing = [c for c in named if c not in names] if header else []
        if missing:
            raise UserError(
                f"no column {', '.join(repr(c) for c in missing)} in the header; columns found: {names}",
                where=location(str(path), 1),
                hint="set text_column / label_column to the right names (or 0-based positions); "
                     "header=False for a file without a header row",
            )
    text_keys = [_column_name(c, names, fmt, path, header) for c in text_columns]
    label_key = None if label_column is None else _column_name(label_column, names, fmt, path, header)
    keys = text_keys + ([label_key] if label_key is not None else [])
    text_desc = " + ".join(repr(c) for c in text_columns)

    examples, skipped = [], 0
    for line_no, rec in records:
        where = location(str(path), line_no)
        missing = [c for c in keys if c not in rec]
        if missing:
            raise UserError(
                f"no field {', '.join(repr(c) for c in missing)}; fields found: {sorted(rec)}",
                where=where,
                hint="set text_column / label_column to the right names",
            )
        parts = []
        for key, column in zip(text_keys, text_columns):
            value = rec[key]
            if not isinstance(value, str):
                raise UserError(f"text {column!r} must be a string, found {type(value).__name__}", where=where)
            if value.strip():
                parts.append(value.strip())
        doc = " ".join(parts)
        if not doc:
            if skip_empty:
                skipped += 1
                continue
            raise UserError(f"empty text in column {text_desc}", where=where,
                            hint="remove the record or pass skip_empty=True")
        label = None
        if label_key is not None:
            label = _label_text(rec[label_key], where, str(label_column))
            if not label:
                raise UserError(f"missing or empty label in column {label_column!r}", where=where)
            if label_names is not None:
                if label not in label_names:
                    raise UserError(
                        f"label {label!r} has no class name: the names given are for ids "
                        f"{', '.join(_sorted_labels(label_names))}", where=where,
                        hint="check label_names and first_label_id (the id of the first name)")
                label = label_names[label]
        examples.append(TextExample(doc, label))
    if skipped:
        logger.warning("%s: skipped %d record(s) with empty text", path, skipped)
    if not examples:
        raise UserError("no examples: the file has no records" + (" with text" if skipped else ""), where=str(path))
    return examples


# --------------------------------------------------------------------------- splits and labels


def _natural_key(label: str):
    # "2" < "10": digit runs compare as numbers; re.split with a group alternates str/int so tuples compare.
    return [int(part) if i % 2 else part for i, part in enumerate(re.split(r"(\d+)", label))]


def _sorted_labels(labels) -> List[str]:
    labels = set(labels)
    try:
        # All integers (also negative ones): numeric order; the string breaks ties such as "1" vs "01".
        return sorted(labels, key=lambda s: (int(s), s))
    except ValueError:
        return sorted(labels, key=lambda s: (_natural_key(s), s))


def _dev_count(dev_size, n: int) -> int:
    if isinstance(dev_size, bool) or not isinstance(dev_size, (numbers.Integral, float)):
        raise UserError(f"dev_size must be an int count or a float fraction in (0, 1); got {dev_size!r}")
    if isinstance(dev_size, float):
        if not 0.0 < dev_size < 1.0:
            raise UserError(f"dev_size as a fraction must be in (0, 1); got {dev_size!r}")
        count = max(1, round(dev_size * n))
    else:
        count = int(dev_size)
    if n < 2:
        raise UserError(f"cannot split {n} example(s) into train and dev: need at least 2")
    if count <= 0 or count >= n:
        raise UserError(
            f"dev_size {dev_size!r} gives {count} dev example(s) out of {n}: expected between 1 and {n - 1}, "
            "so that both train and dev are non-empty"
        )
    return count


def split_train_dev(examples: list, dev_size, seed: int) -> Tuple[list, list]:
    """Seeded train/dev split, stratified by label for labeled examples; both parts keep the input order."""
    n = len(examples)
    dev_n = _dev_count(dev_size, n)
    rng = random.Random(seed)
    labels = [getattr(ex, "label", None) for ex in examples]
    if n and all(isinstance(label, str) for label in labels):
        by_label: Dict[str, List[int]] = {}
        for i, label in enumerate(labels):
            by_label.setdefault(label, []).append(i)
        classes = _sorted_labels(by_label)
        # Largest-remainder apportionment: each class gets its share of the dev set, rounded fairly.
        quota = {c: dev_n * len(by_label[c]) / n for c in classes}
        take = {c: math.floor(quota[c]) for c in classes}
        by_remainder = sorted(classes, key=lambda c: -(quota[c] - take[c]))  # stable: ties keep label order
        for c in by_remainder[: dev_n - sum(take.values())]:
            take[c] += 1
        dev_idx = []
        for c in classes:
            members = list(by_label[c])
            rng.shuffle(members)
            dev_idx.extend(members[: take[c]])
    else:
        order = list(range(n))
        rng.shuffle(order)
        dev_idx = order[:dev_n]
    dev_set = set(dev_idx)
    train = [examples[i] for i in range(n) if i not in dev_set]
    dev = [examples[i] for i in sorted(dev_set)]
    return train, dev


def label_set(examples) -> List[str]:
    """Sorted labels seen: tags with "O" first for tagging, numeric-aware order ("2" < "10") for classification."""
    tags, labels, tagging = set(), set(), False
    for ex in examples:
        if isinstance(ex, TaggedSentence):
            tagging = True
            tags.update(ex.tags or ())
        elif ex.label is not None:
            labels.add(ex.label)
    if tagging:
        return (["O"] if "O" in tags else []) + sorted(tags - {"O"})
    return _sorted_labels(labels)


def check_labels_known(examples, known: Sequence[str], *, where: str, policy: str = "error") -> list:
    """Labels of dev/test data must be in the training label set: raise, or (tagging) map unknown tags to O."""
    _check_choice("policy", policy, LABEL_POLICIES)
    known_set = set(known)
    tagging = any(isinstance(ex, TaggedSentence) for ex in examples)
    if policy == "map_to_o" and examples and not tagging:
        raise UserError("policy 'map_to_o' applies only to tagging data (TaggedSentence); use 'error'", where=where)
    unknown: Dict[str, int] = {}
    for ex in examples:
        seen = (ex.tags or ()) if isinstance(ex, TaggedSentence) else ([ex.label] if ex.label is not None else ())
        for label in seen:
            if label not in known_set:
                unknown[label] = unknown.get(label, 0) + 1
    if not unknown:
        return examples
    if policy == "error":
        names = _sorted_labels(unknown)
        shown = ", ".join(repr(x) for x in names[:5]) + (f" (and {len(names) - 5} more)" if len(names) > 5 else "")
        raise UserError(
            f"labels not in the training label set: {shown}; known labels: {', '.join(repr(k) for k in known)}",
            where=where,
            hint="policy 'map_to_o' (config key data.unknown_eval_labels) replaces unknown tags with 'O'"
            if tagging else None,
        )
    out = [
        TaggedSentence(ex.tokens, None if ex.tags is None else [t if t in known_set else "O" for t in ex.tags])
        for ex in examples
    ]
    logger.warning("%s: replaced %d tag(s) not in the training label set with 'O': %s",
                   where, sum(unknown.values()), ", ".join(_sorted_labels(unknown)[:5]))
    return out
