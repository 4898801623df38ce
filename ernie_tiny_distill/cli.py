"""Shared command-line plumbing: logging, thread count, and clean exits for user errors."""
from __future__ import annotations

import logging
import os
import sys
import traceback
from typing import Callable

from .errors import UserError


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")


def set_threads(num_threads: int) -> None:
    """Paddle sets OMP_NUM_THREADS=1 at import when it is unset; make the count explicit before importing it."""
    os.environ.setdefault("OMP_NUM_THREADS", str(num_threads))


def quiet_paddlenlp() -> None:
    """PaddleNLP logs every file it loads at INFO; keep its warnings, drop the chatter. Imports Paddle."""
    from paddlenlp.utils.log import logger

    logger.set_level("WARNING")


def main_wrapper(main: Callable[[], int], debug: bool) -> int:
    """Run `main`; a UserError prints `error: ...` (no traceback unless --debug) and exits with status 2."""
    try:
        return main() or 0
    except UserError as e:
        if debug:
            traceback.print_exc()
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; re-run the same command to resume from the last checkpoint", file=sys.stderr)
        return 130
