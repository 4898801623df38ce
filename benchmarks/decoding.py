"""Tag decodings of finished tagging runs: best/ re-scored under every decoding (decoding.json) and which scores a
benchmark row shows (the default decoding's, wherever they were recorded)."""
from __future__ import annotations

import hashlib
import logging
import os
import time
from typing import Dict, List, Optional, Tuple

from benchmarks.util import headline, read_json, read_yaml, sha, write_json
from ernie_tiny_distill.tasks.decoding import DECODINGS

logger = logging.getLogger(__name__)

DECODING_FILE = "decoding.json"  # in the run directory, beside summary.json
UNRECORDED = "argmax"  # what a summary without a `decoding` key was scored with (the default before Viterbi)


def weights_fingerprint(best_dir: str) -> str:
    """sha256 of best/'s weight files and task.json (labels, lengths): equal iff the model scored is the same."""
    h = hashlib.sha256()
    for name in sorted(os.listdir(best_dir)):
        if name.endswith(".safetensors") or name == "task.json":
            h.update(name.encode())
            with open(os.path.join(best_dir, name), "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
    return h.hexdigest()


def _fingerprint(best_dir: str, data: Dict) -> Tuple[str, str]:
    weights = weights_fingerprint(best_dir)
    return sha([weights, data]), weights


def rescore_run(run_dir: str, num_threads: Optional[int] = None) -> Tuple[Dict, bool]:
    """Score `run_dir`/best on its dev and test splits under every tag decoding (logits computed once per split)
    and write `run_dir`/decoding.json; returns (that record, True), or (the earlier record, False) when it was
    written for the same weights and data. The data are those of the run's config.yaml."""
    from ernie_tiny_distill.config import config_from_dict
    from ernie_tiny_distill.data import load as data_lib
    from ernie_tiny_distill.models import build as models
    from ernie_tiny_distill.tasks.adapters import make_task, task_class
    from ernie_tiny_distill.train.evaluation import predict_logits

    best = os.path.join(run_dir, "best")
    meta = models.read_task_metadata(best)
    raw_cfg = read_yaml(os.path.join(run_dir, "config.yaml"))
    if meta is None or raw_cfg is None:
        raise ValueError(f"{run_dir} is not a finished run (needs best/task.json and config.yaml)")
    decodings = task_class(meta["task"]).decodings
    if not decodings:
        raise ValueError(f"{run_dir}: a {meta['task']!r} model has one way to turn logits into predictions")
    cfg = config_from_dict(raw_cfg)
    fingerprint, weights = _fingerprint(best, cfg.to_dict()["data"])
    out = os.path.join(run_dir, DECODING_FILE)
    old = read_json(out)
    if old and old.get("fingerprint") == fingerprint:
        logger.info("%s: re-scored earlier for these weights; skipping", run_dir)
        return old, False
    if num_threads:
        from ernie_tiny_distill.util.threads import apply_threads

        apply_threads(num_threads)
    started = time.time()
    tokenizer = models.load_tokenizer(best)
    tasks = {d: make_task(meta["task"], tokenizer, meta["labels"], int(meta["max_seq_length"]),
                          meta.get("truncation") or "head", d, meta.get("long_document"))
             for d in decodings}
    task = next(iter(tasks.values()))
    model = models.load_model(best, task.model_class, task.num_labels)
    splits = data_lib.load_splits(cfg.data, cfg.task)
    scores: Dict[str, Dict] = {d: {} for d in tasks}
    for split, examples in (("dev", splits.dev), ("test", splits.test)):
        if not examples:
            continue
        features = task.encode(examples)  # encoding and logits do not depend on the decoding
        logits = predict_logits(task, model, features, cfg.train.eval_batch_size, tokenizer.pad_token_id)
        for d, t in tasks.items():
            scores[d][split] = t.evaluate([t.predict(lg, f) for lg, f in zip(logits, features)], examples)
    summary = read_json(os.path.join(run_dir, "summary.json")) or {}
    record = {"run_dir": os.path.abspath(run_dir), "metric_name": task.metric_name, "fingerprint": fingerprint,
              "weights_sha256": weights,
              # training-time evaluation chose best/ by dev under this decoding
              "best_selected_by": summary.get("decoding") or UNRECORDED,
              **scores, "seconds": round(time.time() - started, 1),
              "created": time.strftime("%Y-%m-%d %H:%M:%S")}
    write_json(out, record)
    logger.info("%s: %s", run_dir, describe(record))
    return record, True


def describe(record: Dict) -> str:
    """`argmax dev D test T; viterbi dev D test T` (the metric, 4 decimals) for a decoding.json record."""
    name = record.get("metric_name", "f1")
    parts = []
    for d in DECODINGS:
        if d in record:
            parts.append(f"{d} " + " ".join(f"{s} {record[d][s][name]:.4f}" for s in ("dev", "test")
                                            if s in record[d]))
    return "; ".join(parts)


# ---------------------------------------------------------------- what a row shows


def run_scores(summary: Dict, run_dir: Optional[str]) -> Dict[str, Dict]:
    """{decoding: {"dev", "test", "source"}} of a finished tagging run: the decoding its summary records (argmax
    when it records none), and those run_dir/decoding.json adds when written for the weights best/ holds now."""
    out: Dict[str, Dict] = {}
    rescored = read_json(os.path.join(run_dir, DECODING_FILE)) if run_dir else None
    best = os.path.join(run_dir or "", "best")
    if rescored and os.path.isdir(best) and rescored.get("weights_sha256") == weights_fingerprint(best):
        for d in DECODINGS:
            if d in rescored:
                out[d] = {"dev": headline(rescored[d].get("dev")), "test": headline(rescored[d].get("test")),
                          "source": DECODING_FILE}
    recorded = summary.get("decoding") or UNRECORDED
    out[recorded] = {"dev": summary.get("dev"), "test": summary.get("test"), "source": "summary.json"}
    return out


def choose(per_run: List[Dict[str, Dict]]) -> Optional[str]:
    """The decoding whose scores every run has: the default (tasks/base.py DEFAULT_DECODING) when they all have it."""
    from ernie_tiny_distill.tasks.base import DEFAULT_DECODING

    for d in (DEFAULT_DECODING, *[d for d in DECODINGS if d != DEFAULT_DECODING]):
        if per_run and all(d in scores for scores in per_run):
            return d
    return None


def run_job(m, job) -> None:
    """Bench job `<task>/decoding`: re-score the teacher and every finished row run of the task (not the dev-only
    sweep points) under each decoding; runs re-scored earlier for the same weights are skipped."""
    from benchmarks.runner import record

    runs = tagging_runs(m, job)
    done = {}
    for run_dir in runs:
        rec, fresh = rescore_run(run_dir, num_threads=m.p.train.get("num_threads", 1))
        done[run_dir] = {"rescored": fresh, **{d: {s: (rec[d].get(s) or {}).get(rec["metric_name"])
                                                   for s in ("dev", "test")} for d in DECODINGS if d in rec}}
    record(m, job, runs=done, commands=[f"python tools/reproduce.py --task {job.task} --only {job.name}"])


def tagging_runs(m, job) -> List[str]:
    """Run directories of the task's teacher and of the job's row runs that finished (summary.json, best/)."""
    dirs = [m.teacher_cfg(job.task).output_dir]
    dirs += [m.out(*name.split("/")) for name in job.deps if name != f"{job.task}/teacher"]
    return [d for d in dirs if os.path.isfile(os.path.join(d, "summary.json"))
            and os.path.isfile(os.path.join(d, "best", "task.json"))]
