"""Several server processes on one port (deploy/processes.py, tools/serve.py --processes): the parent's exit
status, stopping the others when one fails, counters shared by all of them, and a socket per process."""
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

    def child(_number):
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


def test_a_failing_child_stops_the_others_and_gives_its_status():
    def body(i):
        if i == 0:
            return 3  # fails at once ...
        time.sleep(60)  # ... while the other would serve a minute
        return 0

    started = time.time()
    assert run_processes(body, 2) == 3
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
    assert run_processes(body, 2, stop_seconds=0.5) == 0
    assert time.time() - started < 30


def test_each_child_gets_its_own_number():
    import multiprocessing

    seen = multiprocessing.Array("i", 3)

    def child(number):
        seen[number] = number + 1
        while 0 in seen[:]:  # the first child to leave makes the parent stop the others: all write first
            time.sleep(0.01)
        return 0

    assert run_processes(child, 3) == 0
    assert list(seen) == [1, 2, 3]


def test_sockets_with_reuse_port_share_a_port_and_each_accepts_connections():
    import socket

    from ernie_tiny_distill.deploy.service import listen

    first = listen("127.0.0.1", 0, reuse_port=True)
    port = first.getsockname()[1]
    second = listen("127.0.0.1", port, reuse_port=True)
    try:
        with pytest.raises(Exception, match=f"cannot listen on 127.0.0.1:{port}"):
            listen("127.0.0.1", port)  # without SO_REUSEPORT the port is taken
        accepted = {"first": 0, "second": 0}
        for sock in (first, second):
            sock.setblocking(False)
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(40)]
        time.sleep(0.2)
        for name, sock in (("first", first), ("second", second)):
            while True:
                try:
                    conn, _ = sock.accept()
                except BlockingIOError:
                    break
                conn.close()
                accepted[name] += 1
        for c in clients:
            c.close()
        # the kernel hashes connections over the sockets: all 40 arrive, and both sockets get some
        assert sum(accepted.values()) == 40 and min(accepted.values()) > 0
    finally:
        first.close()
        second.close()


def test_an_exception_in_a_child_is_a_failure(capfd):
    def child(_number):
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
