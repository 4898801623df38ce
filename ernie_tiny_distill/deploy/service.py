"""HTTP service over a Predictor: POST /predict (micro-batched), GET /health, GET /metrics (FastAPI)."""
from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import sys
import time
from typing import List, Optional

from pydantic import BaseModel, ConfigDict, StrictStr, ValidationError

from ernie_tiny_distill.deploy.batching import Batcher, QueueFull
from ernie_tiny_distill.deploy.metrics import Metrics
from ernie_tiny_distill.deploy.predictor import Predictor
from ernie_tiny_distill.deploy.words import is_blank
from ernie_tiny_distill.errors import UserError
from ernie_tiny_distill.tasks.serving import NON_FINITE

logger = logging.getLogger(__name__)
RETRY_AFTER_SECONDS = 1
SWITCH_INTERVAL_S = 0.0005

SHAPE = 'expected a JSON object {"texts": ["...", ...]} or {"tokens": [["word", ...], ...]}'


class PredictRequest(BaseModel):
    """Raw texts, or (NER) pre-split words per sentence; exactly one of the two."""

    model_config = ConfigDict(extra="ignore")
    texts: Optional[List[StrictStr]] = None
    tokens: Optional[List[List[StrictStr]]] = None


def _validation_message(error: ValidationError) -> str:
    first = error.errors()[0]
    path = "".join(f"[{p}]" if isinstance(p, int) else (f".{p}" if i else str(p))
                   for i, p in enumerate(first["loc"]))
    if first["type"] == "string_type":
        return f"{path} is not a string"
    if first["type"] == "list_type":
        return f"{path} is not a list"
    return f"{path}: {first['msg']}"


def check_limits(**limits) -> None:
    """Every limit must be a positive integer (max_wait_ms may be 0): a UserError naming the first that is not."""
    for name, value in limits.items():
        low = 0 if name == "max_wait_ms" else 1
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= low:
            flag = "--" + name.replace("_", "-")
            raise UserError(f"{flag} must be {'at least ' + str(low) if low else 'a number >= 0'}, got {value!r}")


def public_message(error: UserError) -> str:
    """The error's message without the server-side path it names (answers never show server paths)."""
    text = str(error)
    if error.where and text.startswith(f"{error.where}: "):
        text = text[len(error.where) + 2:]
    return text.split("\n  hint:")[0]


def create_app(predictor: Predictor, *, max_request_bytes: int = 1 << 20, max_batch_size: int = 64,
               max_text_chars: int = 100_000, workers: int = 1, max_batch: int = 32, max_wait_ms: float = 2.0,
               max_queue: int = 256, docs: bool = False, metrics: Optional[Metrics] = None, processes: int = 1):
    """A FastAPI app: POST /predict {"texts": [...]} or {"tokens": [[...], ...]} -> {"task", "results"},
    GET /health, GET /metrics (Prometheus text).

    Batching: the items of requests arriving within `max_wait_ms` are predicted together, at most `max_batch`
    per call, by `workers` threads (each its own Predictor.clone()); at most `max_queue` items wait, and a
    request that does not fit is answered 503 with Retry-After at once. `metrics`: counters shared by the
    `processes` server processes of tools/serve.py --processes (Metrics(shared=True)); a new set by default.
    4xx answers: 400 body is not JSON (or nested too deeply to parse); 413 body larger than
    max_request_bytes, more than max_batch_size items, or a text longer than max_text_chars; 422 neither
    "texts" nor "tokens", an empty list, a non-string or a text with nothing to read (whitespace, control or
    format characters only), tokens for a classification model. 500: the model's output for this request is
    not finite, or the model failed on it (logged; later requests are unaffected). /docs and /openapi.json
    exist only with docs=True.
    """
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse, PlainTextResponse

    check_limits(max_request_bytes=max_request_bytes, max_batch_size=max_batch_size,
                 max_text_chars=max_text_chars, workers=workers, max_batch=max_batch, max_wait_ms=max_wait_ms,
                 max_queue=max_queue)
    if max_queue < max_batch_size:
        raise UserError(f"--max-queue ({max_queue}) must hold one request of --max-batch-size ({max_batch_size})")
    metrics = metrics if metrics is not None else Metrics()
    batcher = Batcher([predictor] + [predictor.clone() for _ in range(workers - 1)], max_batch=max_batch,
                      max_wait_ms=max_wait_ms, max_queue=max_queue, on_batch=metrics.batch)

    async def lifespan(app):
        yield
        batcher.close()

    app = FastAPI(title="ernie_tiny_distill predictor", version="1", lifespan=lifespan,
                  docs_url="/docs" if docs else None, redoc_url=None,
                  openapi_url="/openapi.json" if docs else None)
    app.state.batcher, app.state.metrics = batcher, metrics
    info = {"task": predictor.task, "labels": predictor.labels, "backend": predictor.backend,
            "precision": predictor.precision, "max_seq_length": predictor.encoder.max_seq_length,
            "word_splitter": predictor.encoder.word_splitter, **predictor.encoder.task.decoding_metadata(),
            "model": os.path.basename(os.path.abspath(predictor.encoder.export_dir)), "workers": workers,
            "processes": processes}

    def fail(status: int, message: str, headers: Optional[dict] = None):
        return JSONResponse({"error": message}, status_code=status, headers=headers)

    def health():
        if not batcher.alive():
            return JSONResponse({"status": "error", "error": "the predictor workers stopped", **info},
                                status_code=503)
        return {"status": "ok", "queued_items": batcher.queued, **info}

    def metrics_text():
        return PlainTextResponse(metrics.text(batcher.queued), media_type="text/plain; version=0.0.4")

    def check(request: PredictRequest):
        """The items to predict, or an error response."""
        if (request.texts is None) == (request.tokens is None):
            return fail(422, SHAPE)
        name = "texts" if request.texts is not None else "tokens"
        items = request.texts if request.texts is not None else request.tokens
        if not items:
            return fail(422, f'"{name}" is empty')
        if len(items) > max_batch_size:
            return fail(413, f"{len(items)} {name} in one request; the limit is {max_batch_size}")
        if request.tokens is not None and not predictor.post.accepts_words:
            return fail(422, f'"tokens" (pre-split words) are for NER models; this is a {predictor.task} model')
        for i, t in enumerate(items):
            size = len(t) if isinstance(t, str) else sum(len(w) + 1 for w in t)
            if size > max_text_chars:
                return fail(413, f"{name}[{i}] has {size} characters; the limit is {max_text_chars}")
            if is_blank(t) if isinstance(t, str) else all(is_blank(w) for w in t):
                return fail(422, f"{name}[{i}] is empty")
        return items

    async def read(request):
        """The items of a request, or an error response."""
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > max_request_bytes:
            return fail(413, f"request body is larger than {max_request_bytes} bytes")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > max_request_bytes:
                return fail(413, f"request body is larger than {max_request_bytes} bytes")
        try:
            payload = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            return fail(400, f"request body is not valid UTF-8 JSON: {e}")
        except RecursionError:
            return fail(400, "request body is not valid UTF-8 JSON: nested too deeply")
        if not isinstance(payload, dict):
            return fail(422, SHAPE)
        try:
            return check(PredictRequest.model_validate(payload))
        except ValidationError as e:
            return fail(422, _validation_message(e))
        except RecursionError:
            return fail(400, "request body is nested too deeply")

    async def answer(items):
        name = "texts" if isinstance(items[0], str) else "tokens"
        try:
            results = await asyncio.wrap_future(batcher.submit(items))
        except QueueFull as e:
            return fail(503, f"the server is busy ({e}); retry later", {"Retry-After": str(RETRY_AFTER_SECONDS)})
        except UserError as e:
            return fail(422, public_message(e))
        except Exception as e:  # logged with its traceback by the worker; the body says no more than the type
            return fail(500, f"the model failed on this request ({type(e).__name__}); see the server log")
        bad = [i for i, r in enumerate(results) if r.get("error") == NON_FINITE]
        if bad:
            logger.warning("request of %d %s: the model output for %s[%d] is not finite", len(items), name, name,
                           bad[0])
            return fail(500, f"the model's output for {name}[{bad[0]}] is not finite (NaN or inf)")
        return {"task": predictor.task, "results": results}

    async def predict(request):
        start = time.perf_counter()
        batcher.announce()
        try:
            items = await read(request)
        finally:
            batcher.arrived()
        response = await answer(items) if isinstance(items, list) else items
        status = getattr(response, "status_code", 200)
        metrics.request(status, time.perf_counter() - start, len(items) if status == 200 else 0)
        return response

    predict.__annotations__ = {"request": Request}  # explicit: this module uses postponed annotations
    app.get("/health")(health)
    app.get("/metrics")(metrics_text)
    app.post("/predict")(predict)
    return app


def listen(host: str, port: int, reuse_port: bool = False) -> socket.socket:
    """A TCP socket bound to host:port and listening; a UserError naming host:port when that is impossible.
    `reuse_port`: SO_REUSEPORT, so that several such sockets share the port (one per server process)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except (socket.gaierror, UnicodeError) as e:
        raise UserError(f"cannot listen on {host}:{port}: {getattr(e, 'strerror', None) or e}") from None
    if reuse_port and not hasattr(socket, "SO_REUSEPORT"):
        raise UserError("several server processes need SO_REUSEPORT, which this platform lacks",
                        hint="run one process (--processes 1) with --workers threads")
    sock = socket.socket(family, kind, proto)
    try:
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
        sock.listen(1024)
    except OSError as e:
        sock.close()
        raise UserError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    return sock


def serve(app, sock: socket.socket, log_level: str = "info") -> None:
    """Run `app` with uvicorn on an already listening socket (see listen) until interrupted."""
    import uvicorn

    # the event loop thread needs the GIL after every socket read; at the default 5 ms switch interval it
    # waits behind workers tokenizing in Python, and a request costs 5 ms per wait under load
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    uvicorn.Server(uvicorn.Config(app, log_level=log_level)).run(sockets=[sock])
