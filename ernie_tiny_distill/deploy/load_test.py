"""Load test of the HTTP service: a real server process on loopback, driven at several concurrencies with real
texts, beside the same model's offline batch throughput measured in the same run."""
from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Sequence

import numpy as np

from ernie_tiny_distill.errors import UserError

HOST = "127.0.0.1"  # loopback only: the load test never listens on or sends to another host
SERVE = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "tools",
                     "serve.py")


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def start_server(model: str, port: int, *, workers: int, threads: int, backend: str, precision: str,
                 max_batch: int, max_wait_ms: float, max_queue: int, processes: int = 1) -> subprocess.Popen:
    """tools/serve.py in a child process on HOST:port (stderr to a temporary file, read if it fails to start)."""
    cmd = [sys.executable, SERVE, "--model", model, "--host", HOST, "--port", str(port), "--workers", str(workers),
           "--threads", str(threads), "--processes", str(processes), "--backend", backend, "--precision", precision,
           "--max-batch", str(max_batch), "--max-wait-ms", str(max_wait_ms), "--max-queue", str(max_queue), "--log-level", "warning"]
    log = tempfile.TemporaryFile("w+")
    server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log, text=True)
    server.log = log
    return server


def _get(url: str, timeout: float) -> tuple:
    """(status, body) of a GET on loopback (the standard library: no client dependency for two GETs)."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode("utf-8")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")


def _tail(server: subprocess.Popen) -> str:
    """The last line the server wrote to its log (its error message when it could not start)."""
    server.log.seek(0)
    lines = [line for line in server.log.read().splitlines() if line.strip() and not line[0].isspace()]
    return lines[-1] if lines else "(nothing logged)"  # the message, not its indented hint


def wait_healthy(url: str, server: subprocess.Popen, timeout: float = 300.0) -> Dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if server.poll() is not None:
            raise UserError(f"the server exited with status {server.returncode}: {_tail(server)}")
        try:
            status, body = _get(f"{url}/health", 2.0)
            if status == 200:
                return json.loads(body)
        except OSError:
            pass  # not listening yet
        time.sleep(0.2)
    raise UserError(f"the server did not answer /health within {timeout:.0f} s")


async def _post(reader, writer, port: int, body: bytes) -> int:
    """One POST /predict on a kept-alive connection; the status code (the body is read and dropped)."""
    writer.write(b"POST /predict HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n%s" % (HOST.encode(), port, len(body), body))
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))
    await reader.readexactly(length)
    return status


async def _drive(port: int, texts: Sequence[str], concurrency: int, requests: int) -> Dict:
    """`requests` POST /predict calls of one text each from `concurrency` clients in closed loops, each on its
    own kept-alive connection (plain asyncio streams: the client must cost far less CPU than the server)."""
    bodies = [json.dumps({"texts": [t]}).encode("utf-8") for t in texts]
    latencies: List[float] = []
    statuses: Dict[int, int] = {}
    counter = iter(range(requests))

    async def client():
        reader, writer = await asyncio.open_connection(HOST, port)
        try:
            for n in counter:
                start = time.perf_counter()
                status = await _post(reader, writer, port, bodies[n % len(bodies)])
                latencies.append(time.perf_counter() - start)
                statuses[status] = statuses.get(status, 0) + 1
        finally:
            writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    ms = np.array(latencies) * 1000
    return {"concurrency": concurrency, "requests": requests, "statuses": statuses,
            "requests_per_s": requests / elapsed, "p50_ms": float(np.percentile(ms, 50)),
            "p95_ms": float(np.percentile(ms, 95)), "p99_ms": float(np.percentile(ms, 99))}


def server_counters(url: str) -> Dict[str, float]:
    """The server's latency and batch-size sums and counts from GET /metrics."""
    names = ("request_latency_seconds_sum", "request_latency_seconds_count", "batch_size_sum", "batch_size_count")
    out = {}
    for line in _get(f"{url}/metrics", 10.0)[1].splitlines():
        for name in names:
            if line.startswith(f"ernie_tiny_distill_{name} "):
                out[name] = float(line.split()[1])
    return out


def offline_throughput(predictor, texts: Sequence[str], batch_size: int = 32, seconds: float = 5.0) -> float:
    """Texts per second of predictor.predict over `texts` in batches of `batch_size` (at least one pass)."""
    predictor.predict(list(texts[:batch_size]))  # warm-up
    done, start = 0, time.perf_counter()
    while done < len(texts) or time.perf_counter() - start < seconds:
        at = done % len(texts)
        batch = list(texts[at:at + batch_size])
        predictor.predict(batch)
        done += len(batch)
    return done / (time.perf_counter() - start)


def run(model: str, texts: Sequence[str], *, concurrencies: Sequence[int] = (1, 8, 32), requests: int = 300,
        workers: int = 2, threads: int = 1, backend: str = "auto", precision: str = "fp32", max_batch: int = 32,
        max_wait_ms: float = 2.0, max_queue: int = 1024, offline_seconds: float = 5.0, processes: int = 1,
        log=print) -> List[Dict]:
    """One row per concurrency ({concurrency, requests_per_s, p50/p95/p99_ms, offline_per_s, share}) after a
    row of the offline throughput; the server (`processes` processes of `workers` threads) is stopped at the
    end."""
    from ernie_tiny_distill.deploy.predictor import Predictor

    texts = [t for t in texts if t.strip()]
    if not texts:
        raise UserError("no texts to send")
    port = free_port()
    url = f"http://{HOST}:{port}"
    server = start_server(model, port, workers=workers, threads=threads, backend=backend, precision=precision,
                          max_batch=max_batch, max_wait_ms=max_wait_ms, max_queue=max_queue, processes=processes)
    try:
        health = wait_healthy(url, server)
        log(f"server: {health['backend']} {health['precision']}, {processes} process(es) x {workers} workers x "
            f"{threads} threads, "
            f"max batch {max_batch}, max wait {max_wait_ms} ms")
        # offline: the same model, backend and texts while the server idles, with one engine of the server's
        # threads and one of all its threads; the better of the two is the bar
        sent = texts[:requests]
        offline = max(offline_throughput(Predictor(model, backend=health["backend"], precision=precision,
                                                   num_threads=n, batch_size=32), sent, seconds=offline_seconds)
                      for n in sorted({threads, processes * workers * threads}))
        log(f"offline batch-32 throughput: {offline:.1f} texts/s")
        rows = []
        for c in concurrencies:
            asyncio.run(_drive(port, texts, c, min(requests, 4 * c)))  # warm-up of this concurrency
            before = server_counters(url)
            row = asyncio.run(_drive(port, texts, c, requests))
            after = server_counters(url)
            delta = {k: after[k] - before[k] for k in after}
            row.update(processes=processes, workers=workers, offline_per_s=offline,
                       share=row["requests_per_s"] / offline,
                       server_mean_ms=1000 * delta["request_latency_seconds_sum"]
                       / max(1, delta["request_latency_seconds_count"]),
                       mean_batch=delta["batch_size_sum"] / max(1, delta["batch_size_count"]))
            rows.append(row)
            log(table_row(row))
        return rows
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        server.log.close()


def table_header() -> str:
    return ("| concurrency | requests | requests/s | p50 ms | p95 ms | p99 ms | p99/p50 | server mean ms | "
            "mean batch | offline texts/s | % of offline | statuses |\n" + "|---" * 12 + "|")


def table_row(r: Dict) -> str:
    return (f"| {r['concurrency']} | {r['requests']} | {r['requests_per_s']:.1f} | {r['p50_ms']:.2f} | "
            f"{r['p95_ms']:.2f} | {r['p99_ms']:.2f} | {r['p99_ms'] / r['p50_ms']:.2f} | {r['server_mean_ms']:.2f} | "
            f"{r['mean_batch']:.1f} | {r['offline_per_s']:.1f} | "
            f"{100 * r['share']:.0f} | {r['statuses']} |")
