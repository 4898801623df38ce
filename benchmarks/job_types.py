"""The benchmark matrix's units: a Job (one row's work, with the jobs it needs) and a Stage (one generated
training config)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional

TRAIN_SCRIPT = "tools/train.py"


@dataclass
class Job:
    name: str
    kind: str          # teacher | train | sweep_select | tfidf | decoding | teachers | export | int8 | latency
    task: str
    deps: List[str] = field(default_factory=list)
    model: Optional[str] = None
    variant: Optional[str] = None
    seed: Optional[int] = None
    extra: Dict = field(default_factory=dict)


@dataclass
class Stage:
    name: str          # e.g. imdb/B/general/seed1
    cfg: Dict
    yaml_path: str

    @property
    def command(self) -> str:
        return f"python {TRAIN_SCRIPT} --config {self.yaml_path}"
