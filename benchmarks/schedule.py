"""Run the selected jobs of a benchmark matrix in order, each under its own lock (training jobs in runner.py,
exports, INT8, TF-IDF and latency in deploy.py, tag decodings in decoding.py)."""
from __future__ import annotations

import logging
import os
import time
from typing import Dict, Sequence

from benchmarks import decoding, deploy
from benchmarks.jobs import Matrix, NotReady
from benchmarks.runner import run_sweep_select, run_teacher, run_train

logger = logging.getLogger(__name__)


def run(m: Matrix, only: Sequence[str] = (), skip: Sequence[str] = ()) -> Dict:
    """Run (or skip as finished) every selected job in order; a failed job does not stop the others."""
    from filelock import FileLock, Timeout

    kinds = {"train": run_train, "teacher": run_teacher, "sweep_select": run_sweep_select,
             "tfidf": deploy.run_tfidf, "decoding": decoding.run_job, "teachers": deploy.run_teachers,
             "export": deploy.run_export,
             "int8": deploy.run_int8, "latency": deploy.run_latency}
    jobs = m.select(only, skip)
    logger.info("%d jobs selected: %s", len(jobs), ", ".join(j.name for j in jobs))
    for job in jobs:
        blocked = [d for d in job.extra.get("hard_deps", job.deps) if not m.is_done(d)]
        if blocked:
            logger.warning("%s: skipped, waiting for %s", job.name, ", ".join(blocked))
            m.failed[job.name] = f"blocked by {', '.join(blocked)}"
            continue
        started = time.time()
        lock_path = m.out("locks", job.name.replace("/", "_") + ".lock")
        os.makedirs(os.path.dirname(lock_path), exist_ok=True)
        lock = FileLock(lock_path)   # two reproduce processes never run the same job at once
        try:
            try:
                lock.acquire(timeout=0)
            except Timeout:
                logger.info("waiting for another process that holds %s", lock_path)
                lock.acquire()
            try:
                kinds[job.kind](m, job)
            finally:
                lock.release()
            m.done.append(job.name)
            logger.info("%s: done (%.0f s)", job.name, time.time() - started)
        except NotReady as e:
            logger.warning("%s: not ready: %s", job.name, e)
            m.failed[job.name] = str(e)
        except Exception as e:  # one failed row must not stop the rest of a long run
            logger.exception("%s: FAILED: %s", job.name, e)
            m.failed[job.name] = f"{type(e).__name__}: {e}"
    return {"done": m.done, "ran": m.ran, "failed": m.failed}
