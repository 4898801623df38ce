"""Small helpers of the benchmark package: atomic writes, JSON/YAML reads, job-name selection, fingerprints."""
from __future__ import annotations

import fnmatch
import hashlib
import json
from typing import Dict, List, Optional, Sequence

import yaml

from ernie_tiny_distill.util import fsutil


def fmt(x: float) -> str:
    """A number as it appears in job names: 0.001 -> `0.001`, 1e-05 -> `1e-5`."""
    return f"{x:g}".replace("e-0", "e-")


def split_list(values: Optional[Sequence[str]]) -> List[str]:
    out: List[str] = []
    for v in values or []:
        out += [x for x in v.split(",") if x.strip()]
    return out


def matches(name: str, selectors: Sequence[str]) -> bool:
    """A run of whole name components (imdb/B, task_kd, B/task_kd/seed2, export) or a glob (*/A/*)."""
    for s in split_list(selectors):
        s = s.strip().strip("/")
        if s and (f"/{s}/" in f"/{name}/" or fnmatch.fnmatchcase(name, s)):
            return True
    return False


def sha(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def write_text(path: str, text: str) -> None:
    """Write through a temporary file and rename, so a reader never sees half a file."""
    fsutil.write_text(path, text)


def write_json(path: str, data) -> None:
    """JSON (indent 2; values JSON cannot hold written as str()) through a temporary file and rename."""
    fsutil.write_json(path, data, default=str)


def read_json(path: str):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def read_yaml(path: str):
    try:
        with open(path, encoding="utf-8") as f:
            return yaml.safe_load(f)
    except (OSError, yaml.YAMLError):
        return None


def tail(path: str, n: int = 25) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return ""


def headline(metrics):
    """A metrics dict without its per-class breakdown."""
    if not metrics:
        return metrics
    return {k: v for k, v in metrics.items() if k != "per_class"}


def member_name(member: Dict) -> str:
    """How a report names an ensemble member ({teacher, weight} of a summary): TF-IDF + LR or the teacher."""
    return "TF-IDF + LR" if member["teacher"] == "tfidf" else "teacher over windows"


def members_text(teachers) -> str:
    """'TF-IDF + LR' / 'the ensemble (teacher over windows × 1 + TF-IDF + LR × 1)' from a summary's members."""
    teachers = teachers or []
    if len(teachers) == 1:
        return member_name(teachers[0])
    parts = [f"{member_name(x)} × {x['weight']:g}" for x in teachers]
    return "the ensemble (" + " + ".join(parts) + ")" if parts else "its teachers"


def table_text(level: str, weighting: str = "tfidf") -> str:
    """The wide part a wide student adds (model.wide.level, .weighting), for config headers and report rows."""
    if level != "document":
        return "word-piece uni/bigram table"
    scheme = "naive-Bayes-weighted (NBSVM)" if weighting == "nb" else "TF-IDF"
    return f"document-level word-piece uni/bigram {scheme} table"
