"""Procedurally generated demo data (sentiment reviews and CoNLL-style NER) for the quickstart."""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
from typing import Dict, Optional, Sequence, Set

from ernie_tiny_distill.data.demo_ner import ner_banned, ner_split
from ernie_tiny_distill.data.demo_reviews import sentiment_banned, sentiment_split
from ernie_tiny_distill.errors import UserError
from ernie_tiny_distill.util import fsutil

# Bump whenever the generators change, so a stale manifest never short-circuits a rewrite.
DEMO_DATA_VERSION = 2

# Relative paths of every file, keyed as in the returned dict.
_FILES: Dict[str, str] = {
    "sentiment_train": "sentiment/train.jsonl",
    "sentiment_dev": "sentiment/dev.jsonl",
    "sentiment_test": "sentiment/test.jsonl",
    "sentiment_unlabeled": "sentiment/unlabeled.txt",
    "ner_train": "ner/train.txt",
    "ner_dev": "ner/dev.txt",
    "ner_test": "ner/test.txt",
    "ner_unlabeled": "ner/unlabeled.txt",
}
_MANIFEST = "manifest.json"
_DEMO_ENTRIES = {_MANIFEST} | {rel.split("/")[0] for rel in _FILES.values()}



def _rng(seed: int, task: str, split: str) -> random.Random:
    # String seeds are hashed with SHA-512 by `random`, so this is stable across runs and
    # independent of PYTHONHASHSEED; each split gets its own stream.
    return random.Random(f"ernie_tiny_distill-demo-v{DEMO_DATA_VERSION}:{seed}:{task}:{split}")


def demo_folder_problem(path: str) -> Optional[str]:
    """Why `path` cannot hold the demo data (it is a file, or a folder with other files), or None."""
    if not os.path.exists(path):
        return None
    if not os.path.isdir(path):
        return "is a file"
    others = sorted(name for name in os.listdir(path) if name not in _DEMO_ENTRIES and not name.startswith("."))
    if others:
        shown = ", ".join(others[:3]) + (", ..." if len(others) > 3 else "")
        return f"holds other files ({shown})"
    return None


def write_demo_data(out_dir: str, seed: int = 0, n_train: int = 400, n_dev: int = 100,
                    n_test: int = 200, n_unlabeled: int = 600) -> Dict[str, str]:
    """Write the demo sentiment and NER data under `out_dir` and return the file paths.

    Deterministic for `seed`. If `out_dir/manifest.json` records the same parameters and
    version and every file exists, nothing is rewritten.
    """
    params = {"version": DEMO_DATA_VERSION, "seed": seed, "n_train": n_train, "n_dev": n_dev,
              "n_test": n_test, "n_unlabeled": n_unlabeled}
    for name in ("seed", "n_train", "n_dev", "n_test", "n_unlabeled"):
        value = params[name]
        if isinstance(value, bool) or not isinstance(value, int) or \
                (name != "seed" and value < 0):
            raise UserError(f"{name} must be a non-negative integer, got {value!r}",
                            where="write_demo_data")
    paths = {key: os.path.join(out_dir, rel) for key, rel in _FILES.items()}
    manifest_path = os.path.join(out_dir, _MANIFEST)

    try:
        with open(manifest_path, encoding="utf-8") as f:
            previous = json.load(f)
    except (OSError, ValueError):
        previous = None
    if isinstance(previous, dict) and previous.get("params") == params and \
            all(os.path.isfile(p) for p in paths.values()):
        return paths

    # Remove the old manifest first: if we are interrupted, the next call regenerates
    # instead of trusting a mix of old and new files.
    if os.path.exists(manifest_path):
        os.unlink(manifest_path)

    sizes = {"train": n_train, "dev": n_dev, "test": n_test, "unlabeled": n_unlabeled}
    counts: Dict[str, int] = {}

    s_banned = sentiment_banned()
    seen_reviews: Set[str] = set()
    for split, n in sizes.items():
        rng = _rng(seed, "sentiment", split)
        labeled = split != "unlabeled"
        rows = sentiment_split(rng, n, s_banned if split == "train" else set(), seen_reviews,
                                labeled)
        if labeled:
            text = "".join(json.dumps({"text": t, "label": l}, ensure_ascii=False) + "\n"
                           for t, l in rows)
        else:
            text = "".join(t + "\n" for t, _ in rows)
        fsutil.write_text(paths[f"sentiment_{split}"], text)
        counts[f"sentiment_{split}"] = len(rows)

    n_banned = ner_banned()
    seen_sents: Set[str] = set()
    for split, n in sizes.items():
        rng = _rng(seed, "ner", split)
        sents = ner_split(rng, n, n_banned if split == "train" else set(), seen_sents)
        if split == "unlabeled":
            text = "".join(" ".join(toks) + "\n" for toks, _ in sents)
        else:
            text = "\n".join("".join(f"{tok} {tag}\n" for tok, tag in zip(toks, tags))
                             for toks, tags in sents)
        fsutil.write_text(paths[f"ner_{split}"], text)
        counts[f"ner_{split}"] = len(sents)

    manifest = {"params": params, "files": _FILES, "counts": counts}
    fsutil.write_text(manifest_path, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return paths


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ernie_tiny_distill.data.demo",
        description="Write the generated demo sentiment and NER data set.")
    parser.add_argument("out_dir", help="directory to write into (created if missing)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-train", type=int, default=400)
    parser.add_argument("--n-dev", type=int, default=100)
    parser.add_argument("--n-test", type=int, default=200)
    parser.add_argument("--n-unlabeled", type=int, default=600)
    args = parser.parse_args(argv)
    try:
        paths = write_demo_data(args.out_dir, seed=args.seed, n_train=args.n_train,
                                n_dev=args.n_dev, n_test=args.n_test,
                                n_unlabeled=args.n_unlabeled)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    with open(os.path.join(args.out_dir, _MANIFEST), encoding="utf-8") as f:
        counts = json.load(f)["counts"]
    unit = {"sentiment": "reviews", "ner": "sentences"}
    for key, path in paths.items():
        print(f"{key:20s} {counts[key]:5d} {unit[key.split('_')[0]]:9s} {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
