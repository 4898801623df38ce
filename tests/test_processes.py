"""Several server processes on one socket (deploy/processes.py, tools/serve.py --processes): the parent's exit
status, stopping the others when one fails, and counters shared by all of them."""
import json
import os
import re
import signal
import time
import urllib.request

import pytest

from ernie_tiny_distill.deploy import load_test
from ernie_tiny_distill.deploy.metrics import Metrics
from ernie_tiny_distill.deploy.processes import run_processes


def _value(text: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    assert match, (name, text)
    return float(match.group(1))


def test_children_share_the_counters_and_a_clean_stop_gives_status_0():
    metrics = Metrics(shared=True)

    def child():
        metrics.request(200, 0.003, items=2)
        metrics.batch(2)
        while "batch_size_count 3" not in metrics.text(0):  # every child has counted: the first to leave
            time.sleep(0.01)                                  # makes the parent stop the others
        return 0

    assert run_processes(child, 3) == 0
    text = metrics.text(0)
    assert _value(text, 'ernie_tiny_distill_requests_total{code="200"}') == 3
    assert _value(text, "ernie_tiny_distill_items_total") == 6
    assert _value(text, "ernie_tiny_distill_batch_size_count") == 3
    assert _value(text, 'ernie_tiny_distill_request_latency_seconds_bucket{le="0.005"}') == 3


def _numbered(body):
    """A child function calling body(i), i = 0, 1, ... in the order the children start."""
    import multiprocessing

    counter = multiprocessing.Value("i", 0)

    def child():
        with counter.get_lock():
            i = counter.value
            counter.value += 1
        return body(i)

    return child


def test_a_failing_child_stops_the_others_and_gives_its_status():
    def body(i):
        if i == 0:
            return 3  # fails at once ...
        time.sleep(60)  # ... while the other would serve a minute
        return 0

    started = time.time()
    assert run_processes(_numbered(body), 2) == 3
    assert time.time() - started < 30  # the sleeping child was stopped, not waited for


def test_a_child_that_ignores_sigterm_is_killed_after_the_grace_period():
    def body(i):
        if i == 0:
            time.sleep(0.2)
            return 0
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        time.sleep(60)
        return 0

    started = time.time()
    assert run_processes(_numbered(body), 2, stop_seconds=0.5) == 0
    assert time.time() - started < 30


def test_an_exception_in_a_child_is_a_failure(capfd):
    def child():
        raise RuntimeError("no model here")

    assert run_processes(child, 1) == 1
    assert "RuntimeError: no model here" in capfd.readouterr().err


def test_other_status_codes_are_counted_apart():
    metrics = Metrics()
    metrics.request(418, 0.1)
    metrics.request(503, 0.1)
    text = metrics.text(0)
    assert _value(text, 'ernie_tiny_distill_requests_total{code="other"}') == 1
    assert _value(text, "ernie_tiny_distill_request_errors_total") == 2


@pytest.mark.slow  # starts tools/serve.py with two server processes: ~10-20 s on a shared 2-core machine
def test_two_server_processes_answer_and_report_all_requests(cls_export):
    port = load_test.free_port()
    server = load_test.start_server(cls_export, port, workers=1, threads=1, backend="paddle", precision="fp32",
                                    max_batch=8, max_wait_ms=1.0, max_queue=64, processes=2)
    url = f"http://{load_test.HOST}:{port}"
    try:
        assert load_test.wait_healthy(url, server)["processes"] == 2
        body = json.dumps({"texts": ["the film was great", "bad"]}).encode()
        for _ in range(10):  # a new connection each: the kernel spreads them over both processes
            request = urllib.request.Request(f"{url}/predict", data=body, headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=30) as r:
                assert r.status == 200 and len(json.loads(r.read())["results"]) == 2
        for _ in range(4):  # whichever process answers /metrics counts every request of both
            text = load_test._get(f"{url}/metrics", 10)[1]
            assert _value(text, 'ernie_tiny_distill_requests_total{code="200"}') == 10
            assert _value(text, "ernie_tiny_distill_items_total") == 20
    finally:
        server.terminate()
        status = server.wait(timeout=30)
        server.log.close()
    assert status == 0
