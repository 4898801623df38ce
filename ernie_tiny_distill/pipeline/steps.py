"""Resumable pipeline steps: each writes OUT/steps/<name>.json when complete; a re-run with the same inputs
skips it."""
from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from typing import Any, Callable, Dict, List

from ernie_tiny_distill.util import fsutil

logger = logging.getLogger(__name__)


class Steps:
    """Runs named steps in order, announcing each as [i/n]; a step whose record exists is not run again.

    A record is written only after its step returned, so an interrupted step runs again on the next call
    (training steps then resume from their own checkpoints). It holds a digest of the step's inputs (configs,
    the records of the steps it reads): changed inputs run the step again.
    """

    def __init__(self, out_dir: str, names: List[str]):
        self.dir = os.path.join(out_dir, "steps")
        self.names = list(names)
        self.skipped: List[str] = []
        self.ran: List[str] = []

    def path(self, name: str) -> str:
        return os.path.join(self.dir, f"{name}.json")

    def done(self, name: str) -> bool:
        return os.path.isfile(self.path(name))

    def run(self, name: str, what: str, fn: Callable[[], Dict], inputs: Any = None) -> Dict:
        position = f"[{self.names.index(name) + 1}/{len(self.names)}]" if name in self.names else "[+]"
        key = digest(inputs)
        if self.done(name):
            with open(self.path(name), encoding="utf-8") as f:
                record = json.load(f)
            if record.get("inputs") == key:
                logger.info("%s %s: done earlier (%s), skipped", position, what, self.path(name))
                self.skipped.append(name)
                return record["result"]
            logger.info("%s %s: its inputs changed since %s was written: running it again", position, what,
                        self.path(name))
        logger.info("%s %s ...", position, what)
        started = time.time()
        result = fn()
        seconds = round(time.time() - started, 1)
        fsutil.write_json(self.path(name), {"step": name, "inputs": key, "seconds": seconds, "result": result})
        logger.info("%s %s: done in %.0f s", position, what, seconds)
        self.ran.append(name)
        return result

    def seconds(self) -> Dict[str, float]:
        """Wall time of every finished step (of the call that ran it)."""
        out = {}
        for name in self.names:
            if self.done(name):
                with open(self.path(name), encoding="utf-8") as f:
                    out[name] = json.load(f)["seconds"]
        return out


def digest(inputs: Any) -> str:
    return hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()[:16]
