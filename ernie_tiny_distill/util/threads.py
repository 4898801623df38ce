"""CPU threads: make a configured count the one OpenMP, BLAS and Paddle actually use, and report it."""
from __future__ import annotations

import logging
import os
from typing import Dict

logger = logging.getLogger(__name__)


def apply_threads(num_threads: int) -> Dict[str, int]:
    """Set the thread count of every loaded OpenMP/BLAS runtime and of Paddle's math library (also when Paddle was
    imported long before, as in a Python session); an exported OMP_NUM_THREADS does not override it.

    Returns {runtime: threads} as the runtimes report them after the change, and logs it.
    """
    os.environ["OMP_NUM_THREADS"] = str(num_threads)  # for processes started from this one
    from threadpoolctl import threadpool_info, threadpool_limits

    threadpool_limits(limits=num_threads)  # not a context manager: the limit stays for the rest of the process
    try:
        from paddle.base import core

        core.set_num_threads(num_threads)
    except (ImportError, AttributeError):  # another Paddle layout: OpenMP/BLAS limits above still apply
        pass
    used = {}
    for info in threadpool_info():
        used[f"{info['internal_api']} ({os.path.basename(info['filepath'])})"] = info["num_threads"]
    logger.info("CPU threads: %d (train.num_threads); runtimes report %s", num_threads,
                ", ".join(f"{k}={v}" for k, v in used.items()) or "no OpenMP/BLAS runtime loaded")
    return used
