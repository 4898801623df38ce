"""Service metrics: request counts by status, latency and batch-size histograms, in Prometheus text format.

Every value lives in one flat array of numbers: a list in a single server process, or shared memory that the
server processes of `tools/serve.py --processes N` all write (Metrics(shared=True), made before they fork), so
/metrics reports the whole server whichever process answers it.
"""
from __future__ import annotations

import threading
from typing import Sequence

PREFIX = "ernie_tiny_distill"
LATENCY_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)  # seconds
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)  # items per engine batch
# the statuses POST /predict answers with (service.py); any other is counted as code="other"
STATUS_CODES = (200, 400, 413, 422, 500, 503)


class Histogram:
    """Cumulative buckets, sum and count, as a Prometheus histogram reports them, kept in values[at:at + size]."""

    def __init__(self, bounds: Sequence[float], values, at: int):
        self.bounds, self.values, self.at = tuple(bounds), values, at

    @staticmethod
    def size(bounds: Sequence[float]) -> int:
        return len(bounds) + 2  # the buckets, the sum, the count

    def observe(self, value: float) -> None:
        v, at = self.values, self.at
        for i, bound in enumerate(self.bounds):
            if value <= bound:
                v[at + i] += 1
        v[at + len(self.bounds)] += value
        v[at + len(self.bounds) + 1] += 1

    @property
    def count(self) -> int:
        return int(self.values[self.at + len(self.bounds) + 1])

    def lines(self, name: str) -> list:
        v, at, n = self.values, self.at, len(self.bounds)
        out = [f'{name}_bucket{{le="{_number(b)}"}} {int(v[at + i])}' for i, b in enumerate(self.bounds)]
        out.append(f'{name}_bucket{{le="+Inf"}} {int(v[at + n + 1])}')
        return out + [f"{name}_sum {_number(float(v[at + n]))}", f"{name}_count {int(v[at + n + 1])}"]


class Metrics:
    """Counters for the service (requests by status code, items, batches, latency), safe across threads and,
    with shared=True, across the processes forked after it is made."""

    CODES = (*STATUS_CODES, "other")

    def __init__(self, shared: bool = False):
        size = len(self.CODES) + 1 + Histogram.size(LATENCY_BUCKETS) + Histogram.size(BATCH_BUCKETS)
        if shared:
            import multiprocessing

            self._values, self._lock = multiprocessing.RawArray("d", size), multiprocessing.Lock()
        else:
            self._values, self._lock = [0.0] * size, threading.Lock()
        self._items_at = len(self.CODES)
        self.latency = Histogram(LATENCY_BUCKETS, self._values, self._items_at + 1)
        self.batch_size = Histogram(BATCH_BUCKETS, self._values,
                                    self.latency.at + Histogram.size(LATENCY_BUCKETS))

    def _code_at(self, status: int) -> int:
        return self.CODES.index(status) if status in STATUS_CODES else len(self.CODES) - 1

    def request(self, status: int, seconds: float, items: int = 0) -> None:
        with self._lock:
            self._values[self._code_at(status)] += 1
            self._values[self._items_at] += items
            self.latency.observe(seconds)

    def batch(self, size: int) -> None:
        with self._lock:
            self.batch_size.observe(size)

    def text(self, queued_items: int) -> str:
        """The Prometheus text exposition (version 0.0.4) of every metric."""
        p = PREFIX
        with self._lock:
            counts = [(code, int(self._values[i])) for i, code in enumerate(self.CODES) if self._values[i]]
            errors = sum(n for code, n in counts if code == "other" or code >= 400)
            lines = [f"# HELP {p}_requests_total POST /predict requests answered, by HTTP status.",
                     f"# TYPE {p}_requests_total counter"]
            lines += [f'{p}_requests_total{{code="{code}"}} {n}' for code, n in counts]
            lines += [f"# HELP {p}_request_errors_total POST /predict requests answered with a 4xx or 5xx status.",
                      f"# TYPE {p}_request_errors_total counter", f"{p}_request_errors_total {errors}",
                      f"# HELP {p}_items_total Texts or sentences predicted.",
                      f"# TYPE {p}_items_total counter", f"{p}_items_total {int(self._values[self._items_at])}",
                      f"# HELP {p}_request_latency_seconds Time from a request's arrival to its answer.",
                      f"# TYPE {p}_request_latency_seconds histogram"]
            lines += self.latency.lines(f"{p}_request_latency_seconds")
            lines += [f"# HELP {p}_batch_size Items per engine batch.", f"# TYPE {p}_batch_size histogram"]
            lines += self.batch_size.lines(f"{p}_batch_size")
            lines += [f"# HELP {p}_queued_items Items waiting for a worker (in the process that answered).",
                      f"# TYPE {p}_queued_items gauge", f"{p}_queued_items {queued_items}"]
        return "\n".join(lines) + "\n"


def _number(x: float) -> str:
    return repr(float(x)) if isinstance(x, float) else str(x)
