"""Several server processes on one port (`tools/serve.py --processes N`).

Worker threads of one process share its interpreter lock: the event loop (HTTP, JSON) and the workers'
tokenization and decoding take turns, while the engines run in parallel. N processes, forked after their sockets
are bound and before any model is loaded, each run the whole service (their own predictor, batcher and event
loop). Child k serves on socket k of N listening on the same port with SO_REUSEPORT, so the kernel hashes each
new connection to one of them: the processes get even shares of the connections. (On one shared socket the
process that woke first accepted a burst of simultaneous connections: in one load test of three, one process took
most of 32 clients and the server gave 48% of its offline throughput instead of 106-113%.) The parent only waits:
it forwards SIGTERM/SIGINT to the children, and when one child exits it stops the others (SIGTERM, then SIGKILL
after a grace period) and exits with that child's status.
"""
from __future__ import annotations

import os
import signal
import sys
import time
import traceback
from typing import Callable, List


def run_processes(child: Callable[[int], int], processes: int, stop_seconds: float = 20.0) -> int:
    """Fork `processes` children running `child(k)`, k = 0 .. processes - 1 (its return value is the child's exit
    status); wait for them. A child still running `stop_seconds` after SIGTERM is killed."""
    pids: List[int] = []
    stops = (signal.SIGINT, signal.SIGTERM)
    # blocked while forking: a signal that reaches a child before it has its own handlers waits for them
    signal.pthread_sigmask(signal.SIG_BLOCK, stops)
    try:
        for number in range(processes):
            pid = os.fork()
            if pid == 0:
                _run_child(lambda: child(number), stops)
            pids.append(pid)

        def forward(signum, _frame):
            for p in pids:
                _signal(p, signum)

        previous = {s: signal.signal(s, forward) for s in stops}
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, stops)
    try:
        pid, status = os.wait()  # the first child to exit (a crash, a failed start or a forwarded signal)
        code = os.waitstatus_to_exitcode(status)
        others = [p for p in pids if p != pid]
        for p in others:
            _signal(p, signal.SIGTERM)
        _reap(others, stop_seconds)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    # a child ended by the forwarded SIGINT/SIGTERM is a clean stop; a child that failed gives its status
    return 0 if code in (0, -signal.SIGINT, -signal.SIGTERM) else (code if code > 0 else 1)


def _run_child(child: Callable[[], int], stops) -> None:
    """The child's side: default signal handling (uvicorn installs its own), run, leave through os._exit."""
    status = 1
    try:
        for s in stops:
            signal.signal(s, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, stops)
        status = int(child() or 0)
    except BaseException:  # noqa: B036 - the child must leave through os._exit, after saying why
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)


def _reap(pids: List[int], seconds: float) -> None:
    """Wait for `pids` to exit; those still running after `seconds` are killed."""
    deadline = time.monotonic() + seconds
    left = list(pids)
    while left:
        left = [p for p in left if os.waitpid(p, os.WNOHANG) == (0, 0)]
        if left and time.monotonic() > deadline:
            for p in left:
                _signal(p, signal.SIGKILL)
                os.waitpid(p, 0)
            return
        if left:
            time.sleep(0.05)


def _signal(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass  # already gone
