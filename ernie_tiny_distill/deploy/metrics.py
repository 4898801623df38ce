"""Service metrics: request counts by status, latency and batch-size histograms, in Prometheus text format."""
from __future__ import annotations

import threading
from typing import Dict, Sequence

PREFIX = "ernie_tiny_distill"
LATENCY_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)  # seconds
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)  # items per engine batch


class Histogram:
    """Cumulative buckets, sum and count, as a Prometheus histogram reports them."""

    def __init__(self, bounds: Sequence[float]):
        self.bounds = tuple(bounds)
        self.counts = [0] * len(self.bounds)
        self.total = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        for i, bound in enumerate(self.bounds):
            if value <= bound:
                self.counts[i] += 1
        self.total += value
        self.count += 1

    def lines(self, name: str) -> list:
        out = [f'{name}_bucket{{le="{_number(b)}"}} {c}' for b, c in zip(self.bounds, self.counts)]
        out.append(f'{name}_bucket{{le="+Inf"}} {self.count}')
        return out + [f"{name}_sum {_number(self.total)}", f"{name}_count {self.count}"]


class Metrics:
    """Thread-safe counters for the service (requests by status code, items, batches, latency)."""

    def __init__(self):
        self._lock = threading.Lock()
        self.requests: Dict[int, int] = {}
        self.items = 0
        self.latency = Histogram(LATENCY_BUCKETS)
        self.batch_size = Histogram(BATCH_BUCKETS)

    def request(self, status: int, seconds: float, items: int = 0) -> None:
        with self._lock:
            self.requests[status] = self.requests.get(status, 0) + 1
            self.items += items
            self.latency.observe(seconds)

    def batch(self, size: int) -> None:
        with self._lock:
            self.batch_size.observe(size)

    def text(self, queued_items: int) -> str:
        """The Prometheus text exposition (version 0.0.4) of every metric."""
        p = PREFIX
        with self._lock:
            errors = sum(n for code, n in self.requests.items() if code >= 400)
            lines = [f"# HELP {p}_requests_total POST /predict requests answered, by HTTP status.",
                     f"# TYPE {p}_requests_total counter"]
            lines += [f'{p}_requests_total{{code="{code}"}} {n}' for code, n in sorted(self.requests.items())]
            lines += [f"# HELP {p}_request_errors_total POST /predict requests answered with a 4xx or 5xx status.",
                      f"# TYPE {p}_request_errors_total counter", f"{p}_request_errors_total {errors}",
                      f"# HELP {p}_items_total Texts or sentences predicted.",
                      f"# TYPE {p}_items_total counter", f"{p}_items_total {self.items}",
                      f"# HELP {p}_request_latency_seconds Time from a request's arrival to its answer.",
                      f"# TYPE {p}_request_latency_seconds histogram"]
            lines += self.latency.lines(f"{p}_request_latency_seconds")
            lines += [f"# HELP {p}_batch_size Items per engine batch.", f"# TYPE {p}_batch_size histogram"]
            lines += self.batch_size.lines(f"{p}_batch_size")
            lines += [f"# HELP {p}_queued_items Items waiting for a worker.", f"# TYPE {p}_queued_items gauge",
                      f"{p}_queued_items {queued_items}"]
        return "\n".join(lines) + "\n"


def _number(x: float) -> str:
    return repr(float(x)) if isinstance(x, float) else str(x)
