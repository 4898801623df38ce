"""The batching HTTP service: answers in order under concurrency, back-pressure, /metrics, start-up checks."""
from __future__ import annotations

import os
import re
import runpy
import socket
import sys
import threading
import time

import numpy as np
import pytest
from test_export import ROOT

from ernie_tiny_distill.deploy.batching import Batcher, QueueFull
from ernie_tiny_distill.deploy.predictor import Predictor
from ernie_tiny_distill.deploy.service import create_app
from ernie_tiny_distill.errors import UserError

pytest.importorskip("httpx", reason="fastapi's TestClient needs httpx")
from fastapi.testclient import TestClient  # noqa: E402


class Echo:
    """A predictor whose result for an item is the item itself; records the batches it is given."""

    def __init__(self, delay: float = 0.0, gate: threading.Event = None):
        self.batches, self.delay, self.gate = [], delay, gate

    def predict(self, items):
        if self.gate is not None:
            self.gate.wait(10)
        self.batches.append(list(items))
        time.sleep(self.delay)
        return [{"echo": item} for item in items]


def test_batcher_answers_every_request_its_own_items_in_order():
    echo = Echo(delay=0.01)
    batcher = Batcher([echo, Echo(delay=0.01)], max_batch=8, max_wait_ms=5, max_queue=1000)
    requests = [[f"r{r}-{i}" for i in range(1 + r % 5)] for r in range(40)]
    futures = [None] * len(requests)

    def client(r):
        futures[r] = batcher.submit(requests[r])

    threads = [threading.Thread(target=client, args=(r,)) for r in range(len(requests))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for items, future in zip(requests, futures):
        assert [x["echo"] for x in future.result(10)] == items
    batcher.close()
    assert max(len(b) for b in echo.batches) > 1 and max(len(b) for b in echo.batches) <= 8  # items were packed


def test_batcher_refuses_what_does_not_fit_the_queue():
    gate = threading.Event()
    batcher = Batcher([Echo(gate=gate)], max_batch=1, max_wait_ms=0, max_queue=3)
    first = batcher.submit(["a"])  # taken by the worker, which waits at the gate
    deadline = time.time() + 5
    while batcher.queued and time.time() < deadline:
        time.sleep(0.001)
    second = batcher.submit(["b", "c", "d"])  # fills the queue
    with pytest.raises(QueueFull, match="3 items are queued; the limit is 3"):
        batcher.submit(["e"])
    assert batcher.queued == 3
    gate.set()
    assert [x["echo"] for x in first.result(5) + second.result(5)] == ["a", "b", "c", "d"]
    batcher.close()


@pytest.mark.parametrize("bad", [dict(max_batch=0), dict(max_queue=0), dict(max_wait_ms=-1)])
def test_batcher_limits(bad):
    with pytest.raises(UserError):
        Batcher([Echo()], **bad)


def test_concurrent_clients_with_mixed_lengths_get_their_own_answers(cls_export):
    predictor = Predictor(cls_export)
    texts = ["the film was great", "bad", "a " * 40 + "film", "the film was bad , unwatchable and the play was " * 3,
             "great great great", "john lives in new york"]
    expected = predictor.predict(texts)
    app = create_app(predictor, workers=2, max_batch=8, max_wait_ms=5)
    answers = {}
    with TestClient(app) as client:
        def run(k):
            mine = [texts[(k + j) % len(texts)] for j in range(1 + k % 3)]
            answers[k] = (mine, client.post("/predict", json={"texts": mine}))

        threads = [threading.Thread(target=run, args=(k,)) for k in range(24)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        sizes = _metric(client.get("/metrics").text, "ernie_tiny_distill_batch_size_count")
    for mine, response in answers.values():
        assert response.status_code == 200, response.text
        got = response.json()["results"]
        want = [expected[texts.index(t)] for t in mine]
        assert [g["label"] for g in got] == [w["label"] for w in want]
        for g, w in zip(got, want):  # padded to other lengths in other batches: equal up to float rounding
            assert g["probabilities"]["pos"] == pytest.approx(w["probabilities"]["pos"], abs=1e-4)
    assert 1 <= sizes < sum(1 + k % 3 for k in range(24))  # fewer engine batches than items


def test_back_pressure_answers_503_with_retry_after(cls_export):
    predictor = Predictor(cls_export)
    gate, entered = threading.Event(), threading.Event()
    predict = predictor.predict

    def held(items):
        entered.set()
        gate.wait(10)
        return predict(items)

    predictor.predict = held
    app = create_app(predictor, max_batch=1, max_wait_ms=0, max_queue=2, max_batch_size=2)
    answers = []
    with TestClient(app) as client:
        waiting = [threading.Thread(target=lambda t=t: answers.append(client.post("/predict", json={"texts": t})))
                   for t in (["great"], ["bad", "great film"])]
        waiting[0].start()
        assert entered.wait(10)  # the worker holds the first request
        waiting[1].start()
        _until(lambda: app.state.batcher.queued == 2, "the second request is queued")
        busy = client.post("/predict", json={"texts": ["one more"]})
        assert busy.status_code == 503 and busy.headers["retry-after"] == "1"
        assert "2 items are queued; the limit is 2" in busy.json()["error"]
        gate.set()
        for t in waiting:
            t.join()
        assert sorted(r.status_code for r in answers) == [200, 200]
        text = client.get("/metrics").text
    assert _metric(text, 'ernie_tiny_distill_requests_total{code="503"}') == 1


def test_metrics_count_what_was_sent(cls_export):
    with TestClient(create_app(Predictor(cls_export))) as client:
        for texts in (["great"], ["bad", "the film was great"], ["john"]):
            assert client.post("/predict", json={"texts": texts}).status_code == 200
        assert client.post("/predict", json={"texts": [""]}).status_code == 422
        assert client.post("/predict", content=b"{nope").status_code == 400
        r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert _metric(text, 'ernie_tiny_distill_requests_total{code="200"}') == 3
    assert _metric(text, 'ernie_tiny_distill_requests_total{code="422"}') == 1
    assert _metric(text, 'ernie_tiny_distill_requests_total{code="400"}') == 1
    assert _metric(text, "ernie_tiny_distill_request_errors_total") == 2
    assert _metric(text, "ernie_tiny_distill_items_total") == 4
    assert _metric(text, "ernie_tiny_distill_request_latency_seconds_count") == 5
    assert _metric(text, 'ernie_tiny_distill_request_latency_seconds_bucket{le="+Inf"}') == 5
    assert _metric(text, "ernie_tiny_distill_batch_size_sum") == 4  # every predicted item was in one batch
    assert "# TYPE ernie_tiny_distill_request_latency_seconds histogram" in text


# ---------------------------------------------------------------- robustness


def test_an_overflow_on_one_input_fails_that_request_only(cls_export, caplog):
    predictor = Predictor(cls_export)
    poison = predictor.encoder.classification_feature("unwatchable")["input_ids"][1]
    run = predictor.engine.run

    def overflowing(ids, types):
        out = run(ids, types)
        out[(ids == poison).any(axis=1)] = np.inf
        return out

    predictor.engine.run = overflowing
    with TestClient(create_app(predictor)) as client:
        bad = client.post("/predict", json={"texts": ["great", "unwatchable"]})
        assert bad.status_code == 500 and "texts[1] is not finite" in bad.json()["error"]
        assert client.post("/predict", json={"texts": ["great"]}).status_code == 200
        assert client.get("/health").status_code == 200
    assert any("not finite" in r.getMessage() for r in caplog.records)


def test_error_bodies_name_no_server_path(cls_export):
    predictor = Predictor(cls_export)

    def broken(ids, types):
        raise RuntimeError(f"could not read {os.path.join(cls_export, 'inference.pdiparams')}")

    run, predictor.engine.run = predictor.engine.run, broken
    with TestClient(create_app(predictor)) as client:
        r = client.post("/predict", json={"texts": ["great"]})
        assert r.status_code == 500 and cls_export not in r.text and "RuntimeError" in r.json()["error"]
        predictor.engine.run = run
        assert client.post("/predict", json={"texts": ["great"]}).status_code == 200
        assert client.get("/health").status_code == 200


@pytest.mark.parametrize("text", ["\u200b\u200b", "\x00", "  \u200b ", "\ufffd"])
def test_texts_with_nothing_to_read_are_empty(cls_export, text):
    predictor = Predictor(cls_export)
    assert predictor.predict([text]) == [{"label": None, "probabilities": None, "error": "empty text"}]
    with TestClient(create_app(predictor)) as client:
        r = client.post("/predict", json={"texts": ["great", text]})
    assert r.status_code == 422 and r.json()["error"] == "texts[1] is empty"


def test_blank_words_are_never_entities(ner_export):
    predictor = Predictor(ner_export)
    per = predictor.labels.index("B-PER")

    def everything_a_person(ids, types):
        out = np.full(ids.shape + (len(predictor.labels),), -5.0, dtype="float32")
        out[..., per] = 5.0
        return out

    predictor.engine.run = everything_a_person
    out = predictor.predict([["", " "], ["angela", "\u200b", "merkel"]])
    assert out[0] == {"entities": []}
    assert [(e["text"], e["start_token"], e["end_token"]) for e in out[1]["entities"]] == [
        ("angela", 0, 1), ("merkel", 2, 3)]
    with TestClient(create_app(predictor)) as client:
        r = client.post("/predict", json={"tokens": [["", " "]]})
    assert r.status_code == 422 and r.json()["error"] == "tokens[0] is empty"


def test_a_zero_width_space_does_not_split_an_entity(ner_export):
    text = "Angela Merkel visited Ber\u200blin ."
    entities = Predictor(ner_export).predict([text])[0]["entities"]
    assert [(e["type"], e["text"], e["start"], e["end"]) for e in entities] == [
        ("PER", "Angela Merkel", 0, 13), ("LOC", "Ber\u200blin", 22, 29)]


def test_combining_marks_make_one_bounded_entity(ner_export):
    predictor = Predictor(ner_export)
    per = predictor.labels.index("B-PER")
    run = predictor.engine.run

    def everything_a_person(ids, types):
        out = run(ids, types)
        out[..., per] = 50.0
        return out

    predictor.engine.run = everything_a_person
    text = "e" + "\u0301" * 4000
    with TestClient(create_app(predictor)) as client:
        r = client.post("/predict", json={"texts": [text]})
    assert r.status_code == 200
    entities = r.json()["results"][0]["entities"]
    assert [(e["start"], e["end"]) for e in entities] == [(0, len(text))]  # one word, one span
    assert len(r.content) < 3 * len(text.encode("utf-8")) + 1000


# ---------------------------------------------------------------- start-up


@pytest.mark.parametrize("flag", ["--max-request-bytes=0", "--max-batch-size=0", "--max-text-chars=-1",
                                  "--workers=0", "--max-queue=0", "--max-wait-ms=-1"])
def test_serve_refuses_impossible_limits(cls_export, monkeypatch, capsys, flag):
    tool = os.path.join(ROOT, "tools", "serve.py")
    main = runpy.run_path(tool, run_name="tool")["main"]
    monkeypatch.setattr(sys, "argv", [tool, "--model", cls_export, flag])
    with pytest.raises(SystemExit) as e:
        main()
    err = capsys.readouterr().err
    assert e.value.code == 2 and flag.split("=")[0] in err and "Traceback" not in err


def test_create_app_refuses_impossible_limits(cls_export):
    predictor = Predictor(cls_export)
    for bad in (dict(max_request_bytes=0), dict(max_batch_size=0), dict(max_text_chars=-1), dict(workers=0)):
        with pytest.raises(UserError, match="--" + next(iter(bad)).replace("_", "-") + " must be at least 1"):
            create_app(predictor, **bad)


def test_docs_are_off_unless_asked_for(cls_export):
    predictor = Predictor(cls_export)
    with TestClient(create_app(predictor)) as client:
        assert client.get("/docs").status_code == 404 and client.get("/openapi.json").status_code == 404
    with TestClient(create_app(predictor, docs=True)) as client:
        assert client.get("/docs").status_code == 200 and client.get("/openapi.json").status_code == 200


def test_serve_names_a_port_in_use_and_a_bad_host(cls_export, monkeypatch, capsys):
    tool = os.path.join(ROOT, "tools", "serve.py")
    main = runpy.run_path(tool, run_name="tool")["main"]
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    port = taken.getsockname()[1]
    try:
        for host, where in (("127.0.0.1", f"127.0.0.1:{port}"), ("no-such-host.invalid", "no-such-host.invalid:")):
            monkeypatch.setattr(sys, "argv", [tool, "--model", cls_export, "--host", host, "--port", str(port)])
            assert main() == 2
            err = capsys.readouterr().err
            assert f"cannot listen on {where}" in err and err.count("\n") == 1 and "Traceback" not in err
    finally:
        taken.close()


def _metric(text: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    assert match, (name, text)
    return float(match.group(1))


def _until(condition, what: str, timeout: float = 10.0) -> None:
    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline, f"timed out waiting until {what}"
        time.sleep(0.002)


@pytest.mark.slow  # starts tools/serve.py in a child process: ~10-15 s on a shared 2-core machine
def test_load_test_drives_a_real_server(cls_export):
    from ernie_tiny_distill.deploy import load_test

    texts = ["the film was great", "bad", "john lives in new york", "a " * 20 + "film"]
    rows = load_test.run(cls_export, texts, concurrencies=(1, 3), requests=6, workers=2, backend="paddle",
                         offline_seconds=0.1, log=lambda line: None)
    assert [(r["concurrency"], r["requests"], r["statuses"]) for r in rows] == [(1, 6, {200: 6}), (3, 6, {200: 6})]
    assert all(r["mean_batch"] >= 1 and r["offline_per_s"] > 0 for r in rows)
