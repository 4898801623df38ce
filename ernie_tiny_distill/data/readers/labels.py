"""Label vocabularies: class-name files, the training label set, and dev/test labels the training set lacks."""
from __future__ import annotations

import logging
import re
from typing import Dict, List, Optional, Sequence

from ernie_tiny_distill.data.examples import TaggedSentence
from ernie_tiny_distill.data.readers.text import check_choice, decode_bytes, lines, read_bytes
from ernie_tiny_distill.errors import UserError

logger = logging.getLogger(__name__)

LABEL_POLICIES = ("error", "map_to_o")


def read_label_names(spec, first_id: int = 0) -> Optional[Dict[str, str]]:
    """{label id as written in the data: class name} from a file (one name per line), a list or a mapping."""
    if spec is None:
        return None
    if isinstance(spec, dict):
        return {str(k): str(v).strip() for k, v in spec.items()}
    if isinstance(spec, (list, tuple)):
        names, where = [str(v).strip() for v in spec], "label_names"
    else:
        text = decode_bytes(read_bytes(spec, what="label-names file"), where=str(spec), encoding_errors="strict")
        names, where = [line.strip() for _, line in lines(text) if line.strip()], str(spec)
        if not names:
            raise UserError("no class names: expected one name per line", where=where)
    if len(set(names)) != len(names):
        raise UserError(f"class names repeat: {names}", where=where)
    return {str(first_id + i): name for i, name in enumerate(names)}


def _natural_key(label: str):
    # "2" < "10": digit runs compare as numbers; re.split with a group alternates str/int so tuples compare.
    return [int(part) if i % 2 else part for i, part in enumerate(re.split(r"(\d+)", label))]


def sorted_labels(labels) -> List[str]:
    """Distinct labels in a stable order: numeric for integer ids, natural ("a2" < "a10") otherwise."""
    labels = set(labels)
    try:
        # All integers (also negative ones): numeric order; the string breaks ties such as "1" vs "01".
        return sorted(labels, key=lambda s: (int(s), s))
    except ValueError:
        return sorted(labels, key=lambda s: (_natural_key(s), s))


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
    return sorted_labels(labels)


def check_labels_known(examples, known: Sequence[str], *, where: str, policy: str = "error") -> list:
    """Labels of dev/test data must be in the training label set: raise, or (tagging) map unknown tags to O."""
    check_choice("policy", policy, LABEL_POLICIES)
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
        names = sorted_labels(unknown)
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
                   where, sum(unknown.values()), ", ".join(sorted_labels(unknown)[:5]))
    return out
