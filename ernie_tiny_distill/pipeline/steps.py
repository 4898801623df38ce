"""Resumable pipeline steps: each writes OUT/steps/<name>.json when complete, and a re-run skips it."""
from __future__ import annotations

import json
import logging
import os
import time
from typing import Callable, Dict, List

from ernie_tiny_distill.util import fsutil

logger = logging.getLogger(__name__)


class Steps:
    """Runs named steps in order, announcing each as [i/n]; a step whose record exists is not run again.

    A record is written only after its step returned, so an interrupted step runs again on the next call
    (training steps then resume from their own checkpoints).
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

    def run(self, name: str, what: str, fn: Callable[[], Dict]) -> Dict:
        position = f"[{self.names.index(name) + 1}/{len(self.names)}]" if name in self.names else "[+]"
        if self.done(name):
            with open(self.path(name), encoding="utf-8") as f:
                record = json.load(f)
            logger.info("%s %s: done earlier (%s), skipped", position, what, self.path(name))
            self.skipped.append(name)
            return record["result"]
        logger.info("%s %s ...", position, what)
        started = time.time()
        result = fn()
        seconds = round(time.time() - started, 1)
        fsutil.write_json(self.path(name), {"step": name, "seconds": seconds, "result": result})
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
