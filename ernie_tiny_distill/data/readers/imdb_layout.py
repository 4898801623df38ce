"""The official aclImdb layout: where reviews and urls_*.txt lists sit, and the check that no review is missing."""
from __future__ import annotations

import logging
import re
from typing import Dict, List, Optional, Tuple

from ernie_tiny_distill.errors import UserError

logger = logging.getLogger(__name__)

IMDB_SPLITS = ("train", "test", "unsup")
IMDB_URL = "https://ai.stanford.edu/~amaas/data/sentiment/"
IMDB_LAYOUT = (
    "aclImdb_v1.tar.gz, or its extracted folder: aclImdb/{train,test}/{pos,neg}/<id>_<rating>.txt "
    "and aclImdb/train/unsup/<id>_0.txt"
)
IMDB_HINT = (
    f"download aclImdb_v1.tar.gz from {IMDB_URL} and pass its path (or the extracted folder); "
    "with path=None PaddleNLP's load_dataset('imdb') downloads the train/test splits when online"
)

REVIEW_NAME = re.compile(r"^(\d+)_(\d+)\.txt$")

# The official aclImdb_v1.tar.gz: reviews per directory, ids 0..N-1 (`<id>_<rating>.txt`), one line per review
# in the directory's urls_<label>.txt. Checked against the urls files of the archive or folder being read.
IMDB_OFFICIAL_COUNTS = {("train", "neg"): 12500, ("train", "pos"): 12500, ("train", "unsup"): 50000,
                        ("test", "neg"): 12500, ("test", "pos"): 12500}
# Reviews absent from some redistributed copies that are otherwise intact (accepted with a warning):
# test/pos/7_9.txt is missing from the shared datasets' aclImdb_v1.tar.gz (see its README), so its test split
# has 24,999 reviews.
IMDB_KNOWN_MISSING = {("test", "pos"): {7}}
_IMDB_URLS = re.compile(r"^urls_(neg|pos|unsup)\.txt$")


def member_place(name: str) -> Optional[Tuple[str, str, str]]:
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


def urls_place(name: str) -> Optional[Tuple[str, str]]:
    """(split dir, label dir) for aclImdb/{train,test}/urls_<label>.txt, else None."""
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if len(parts) != 3 or parts[0] != "aclImdb" or parts[1] not in ("train", "test"):
        return None
    m = _IMDB_URLS.match(parts[2])
    return (parts[1], m.group(1)) if m else None


def count_lines(raw: bytes) -> int:
    """Non-blank lines of a urls_<label>.txt: the number of reviews its directory must hold."""
    return len([line for line in raw.split(b"\n") if line.strip()])


def check_complete(where: str, rows: Dict[str, List[Tuple[str, str, str]]],
                   url_counts: Dict[Tuple[str, str], int]) -> None:
    """Every review a urls_<label>.txt lists (ids 0..N-1) must be present: a shortfall is an error naming the
    archive and the missing files, so a partly extracted or damaged copy is never read as if it were whole."""
    problems = []
    for (top, label_dir), expected in sorted(url_counts.items()):
        split = "unsup" if label_dir == "unsup" else top
        ids = set()
        for row_label, fname, _ in rows[split]:
            m = REVIEW_NAME.match(fname)
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


def split_dirs(split: str) -> str:
    """The layout's directories that hold `split`, for error messages."""
    return "aclImdb/train/unsup/" if split == "unsup" else f"aclImdb/{split}/neg/ and aclImdb/{split}/pos/"
