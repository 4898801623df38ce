"""Micro-batching for the service: items of concurrent requests packed into one predictor call per batch.

Each request's items join one bounded queue; a worker thread (one Predictor clone each) takes the first item
waiting, then more until `max_batch` items or until `max_wait_ms` after that first item arrived, and predicts
them in one call (the Predictor sorts them by length into engine calls). It waits only while more requests are
on their way (announced by the service when a request arrives, before its body is read), so a lone request
never waits for company. Every request gets its own results in its own order. A request that does not fit the
queue is refused at once (QueueFull), so the queue never grows past `max_queue` items.
"""
from __future__ import annotations

import collections
import logging
import threading
import time
from concurrent.futures import Future
from typing import Callable, List, Optional, Sequence

from ernie_tiny_distill.errors import UserError

logger = logging.getLogger(__name__)


class QueueFull(Exception):
    """The queue cannot take a request's items now; the client should retry later."""


class _Request:
    __slots__ = ("items", "results", "remaining", "future", "failed")

    def __init__(self, items: Sequence):
        self.items = list(items)
        self.results: List[Optional[dict]] = [None] * len(self.items)
        self.remaining = len(self.items)
        self.future: Future = Future()
        self.failed = False


class Batcher:
    """Bounded item queue + worker threads, each running `predict(items) -> results` of its own Predictor."""

    def __init__(self, predictors: Sequence, *, max_batch: int = 32, max_wait_ms: float = 2.0,
                 max_queue: int = 256, on_batch: Optional[Callable[[int], None]] = None):
        for name, value, low in (("max_batch", max_batch, 1), ("max_queue", max_queue, 1),
                                 ("workers", len(predictors), 1)):
            if not isinstance(value, int) or value < low:
                raise UserError(f"{name} must be an integer >= {low}, got {value!r}")
        if not max_wait_ms >= 0:
            raise UserError(f"max_wait_ms must be >= 0, got {max_wait_ms!r}")
        self.max_batch, self.max_wait, self.max_queue = max_batch, max_wait_ms / 1000.0, max_queue
        self.on_batch = on_batch
        self._queue: collections.deque = collections.deque()  # (request, index, arrival time)
        self._cond = threading.Condition()
        self._closed = False
        self._arriving = 0  # requests announced whose items are not queued yet
        self._done = threading.Lock()  # a request's items may finish in several workers
        self.threads = [threading.Thread(target=self._work, args=(p,), name=f"predictor-{i}", daemon=True)
                        for i, p in enumerate(predictors)]
        for t in self.threads:
            t.start()

    @property
    def queued(self) -> int:
        return len(self._queue)

    def alive(self) -> bool:
        return not self._closed and all(t.is_alive() for t in self.threads)

    def announce(self) -> None:
        """A request has arrived; its items will follow (submit) or it will be refused (arrived)."""
        with self._cond:
            self._arriving += 1

    def arrived(self) -> None:
        """An announced request is read (its items are about to be submitted) or refused."""
        with self._cond:
            self._arriving -= 1
            if self._arriving == 0:
                self._cond.notify_all()  # a worker waiting for company stops waiting

    def submit(self, items: Sequence) -> Future:
        """A Future of the items' results in order; QueueFull when they do not fit the queue now."""
        request = _Request(items)
        now = time.perf_counter()
        with self._cond:
            if self._closed:
                raise QueueFull("the service is shutting down")
            if len(self._queue) + len(request.items) > self.max_queue:
                raise QueueFull(f"{len(self._queue)} items are queued; the limit is {self.max_queue}")
            self._queue.extend((request, i, now) for i in range(len(request.items)))
            self._cond.notify()
        return request.future

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        for t in self.threads:
            t.join(timeout=5)

    def _take(self) -> list:
        """The next batch: the first waiting item, then more until max_batch or its arrival + max_wait."""
        with self._cond:
            while not self._queue and not self._closed:
                self._cond.wait()
            if self._closed:
                return []
            deadline = self._queue[0][2] + self.max_wait
            while len(self._queue) < self.max_batch and self._arriving > 0 and not self._closed:
                left = deadline - time.perf_counter()
                if left <= 0:
                    break
                self._cond.wait(left)
            batch = [self._queue.popleft() for _ in range(min(self.max_batch, len(self._queue)))]
            if self._queue:
                self._cond.notify()  # another worker can start on what is left
            return batch

    def _work(self, predictor) -> None:
        while True:
            batch = self._take()
            if not batch:
                return
            if self.on_batch is not None:
                self.on_batch(len(batch))
            try:
                results = predictor.predict([request.items[i] for request, i, _ in batch])
            except Exception as e:  # fail the requests of this batch only; the worker goes on
                logger.exception("a batch of %d items failed", len(batch))
                with self._done:
                    for request, _, _ in batch:
                        if not request.failed:
                            request.failed = True
                            request.future.set_exception(e)
                continue
            with self._done:
                for (request, i, _), result in zip(batch, results):
                    if request.failed:
                        continue
                    request.results[i] = result
                    request.remaining -= 1
                    if request.remaining == 0:
                        request.future.set_result(request.results)
