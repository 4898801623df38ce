"""The committed record of the unseen-data runs, benchmarks/unseen_results.json: each run's report.json without its
machine paths. `python -m benchmarks.unseen report` writes it beside the doc; with --keep-committed-runs the doc
takes a run that has no run directory from it, so repeating some runs does not mean repeating all eight."""
from __future__ import annotations

import json
import os
import re
from typing import Dict

from benchmarks.util import write_text
from ernie_tiny_distill.errors import UserError

DEFAULT_RECORD = "benchmarks/unseen_results.json"
# where a run's outputs were on the machine that ran it, and the commands built from them: not results
MACHINE_KEYS = {"dir", "export", "commands"}
ABSOLUTE_PATH = re.compile(r"(?<![\w.~-])/(?:[^\s/'\"`]+/)*([^\s/'\"`]+)")


def portable(value):
    """A report.json value without the keys that hold machine paths; an absolute path left in a text becomes its
    last component (`/x/configs/recipes/classification_5x.yaml` -> `classification_5x.yaml`)."""
    if isinstance(value, dict):
        return {k: portable(v) for k, v in value.items() if k not in MACHINE_KEYS}
    if isinstance(value, list):
        return [portable(v) for v in value]
    if isinstance(value, str):
        return ABSOLUTE_PATH.sub(r"\1", value)
    return value


def write(reports: Dict[str, Dict], path: str = DEFAULT_RECORD) -> None:
    write_text(path, json.dumps({"runs": {n: portable(r) for n, r in reports.items()}}, indent=1,
                                sort_keys=True) + "\n")


def read(path: str = DEFAULT_RECORD) -> Dict[str, Dict]:
    """{run name: report} of the record; no file is an empty record."""
    if not os.path.isfile(path):
        return {}
    with open(path, encoding="utf-8") as f:
        try:
            record = json.load(f)
        except json.JSONDecodeError as e:
            raise UserError(f"not valid JSON ({e}); expected the unseen-data record", where=path) from None
    if not isinstance(record, dict) or not isinstance(record.get("runs"), dict):
        raise UserError('expected an object {"runs": {NAME: report}}', where=path)
    return record["runs"]
