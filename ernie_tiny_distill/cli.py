"""Shared command-line plumbing: logging, thread count, and clean exits for user errors."""
from __future__ import annotations

import argparse
import errno
import logging
import os
import sys
import traceback
import warnings
from typing import Callable, Optional, Sequence

from ernie_tiny_distill.errors import UserError

LOG_FORMAT, DATE_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"


# Warnings third-party packages print on every start that say nothing about the user's run: Paddle's C++
# extension builder (this project compiles nothing), setuptools' distutils shim, and Paddle's "Skip loading"
# for a fresh task head (models.load_model logs which weights are newly initialised instead).
_NOISE = ("No ccache found", "Setuptools is replacing distutils", r"Skip loading for (classifier|cls)\.")


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format=LOG_FORMAT, datefmt=DATE_FORMAT)
    for message in _NOISE:
        warnings.filterwarnings("ignore", message=message)


def set_threads(num_threads: int, override: bool = False) -> None:
    """Paddle sets OMP_NUM_THREADS=1 at import when it is unset; make the count explicit before importing it.

    override: a configured count (train.num_threads) wins over an exported OMP_NUM_THREADS; a tool's default
    (--threads) does not."""
    if override:
        os.environ["OMP_NUM_THREADS"] = str(num_threads)
    else:
        os.environ.setdefault("OMP_NUM_THREADS", str(num_threads))


def positive_int(text: str) -> int:
    """argparse type for counts and lengths: an integer >= 1 (0 or a negative value is refused, not reinterpreted)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def quiet_paddlenlp() -> None:
    """PaddleNLP logs every file it loads at INFO; keep its warnings, drop the chatter, and print them like ours
    (its own formatter adds ANSI colour codes, which show up raw in log files and plain terminals). Imports Paddle."""
    from paddlenlp.utils.log import logger

    logger.set_level("WARNING")
    logger.handler.setFormatter(logging.Formatter(LOG_FORMAT.replace("%(name)s", "paddlenlp"), DATE_FORMAT))


def run_tool(parser: argparse.ArgumentParser, body: Callable[[argparse.Namespace], Optional[int]],
             argv: Optional[Sequence[str]] = None) -> int:
    """The frame of a tools/ script that runs a model: adds --debug, parses, sets up logging, makes the thread
    count (`--threads`) explicit before Paddle is imported, quiets PaddleNLP, and exits cleanly on user errors."""
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    args = parser.parse_args(argv)
    setup_logging()

    def run() -> Optional[int]:
        set_threads(args.threads)
        quiet_paddlenlp()
        return body(args)

    return main_wrapper(run, args.debug)


def exit_process(code: int) -> None:
    """Leave with `code`. A worker of `paddle.distributed.launch` leaves through os._exit, after flushing logs and
    output, so that no C++ static destructors run.

    Why: rank 0 hosts Paddle's TCP store, whose MasterDaemon thread (and gloo's device loop) keeps polling the
    sockets of the other processes. When the processes exit at about the same time, a peer's closing socket wakes
    that thread while the exiting interpreter is destroying the static objects it uses (logging flags, error
    machinery), and the process aborts with SIGABRT ("Exit code -6" from the launcher, about 1 run in 18 of
    test_two_processes_train_data_parallel_on_cpu, after both workers had printed their summaries). Every file of
    a run is closed by then, so skipping the destructors loses nothing.
    """
    if int(os.environ.get("PADDLE_TRAINERS_NUM", "1")) > 1:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


def main_wrapper(main: Callable[[], int], debug: bool) -> int:
    """Run `main`; a UserError prints `error: ...` (no traceback unless --debug) and exits with status 2.

    So do a full disk and permission errors (OSError with ENOSPC, EDQUOT, EACCES, EPERM, EROFS).
    """
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
    except OSError as e:
        # the machine, not the input or this package: a full disk or a directory that may not be written
        if e.errno not in _ENVIRONMENT_ERRNOS:
            raise
        if debug:
            traceback.print_exc()
        where = f"{e.filename}: " if e.filename else ""
        print(f"error: {where}{e.strerror or e}\n  hint: {_ENVIRONMENT_ERRNOS[e.errno]}", file=sys.stderr)
        return 2


_ENVIRONMENT_ERRNOS = {
    errno.ENOSPC: "free some space (or point output_dir elsewhere), then re-run the same command: it resumes "
                  "from the last complete checkpoint",
    errno.EDQUOT: "the disk quota is exhausted; free some space, then re-run the same command to resume",
    errno.EACCES: "this path may not be read or written by you; choose another output_dir or fix its permissions",
    errno.EPERM: "this path may not be read or written by you; choose another output_dir or fix its permissions",
    errno.EROFS: "the file system is read-only; choose another output_dir (or data.cache_dir)",
}
