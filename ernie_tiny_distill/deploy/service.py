"""HTTP service over a Predictor: POST /predict, GET /health (FastAPI, pydantic request model)."""
from __future__ import annotations

import json
import os
from typing import List, Optional

from pydantic import BaseModel, ConfigDict, StrictStr, ValidationError

from ernie_tiny_distill.deploy.predictor import Predictor
from ernie_tiny_distill.errors import UserError
from ernie_tiny_distill.tasks.adapters import TaggingTask

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


def create_app(predictor: Predictor, *, max_request_bytes: int = 1 << 20, max_batch_size: int = 64,
               max_text_chars: int = 100_000):
    """A FastAPI app: POST /predict {"texts": [...]} or {"tokens": [[...], ...]} -> {"task", "results"}, GET /health.

    4xx answers: 400 body is not JSON (or nested too deeply to parse); 413 body larger than
    max_request_bytes, more than max_batch_size items, or a text longer than max_text_chars; 422 neither
    "texts" nor "tokens", an empty list, a non-string or an empty/whitespace-only text, tokens for a
    classification model. 503 (and /health "error") once the model has produced non-finite logits or failed.
    The predictor runs in a worker thread (one request at a time).
    """
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse
    from starlette.concurrency import run_in_threadpool

    app = FastAPI(title="ernie_tiny_distill predictor", version="1")
    info = {"task": predictor.task, "labels": predictor.labels, "backend": predictor.backend,
            "precision": predictor.precision, "max_seq_length": predictor.encoder.max_seq_length,
            "word_splitter": predictor.encoder.word_splitter, **predictor.encoder.task.decoding_metadata(),
            "model": os.path.basename(os.path.abspath(predictor.encoder.export_dir))}

    def fail(status: int, message: str):
        return JSONResponse({"error": message}, status_code=status)

    def health():
        if predictor.error:
            return JSONResponse({"status": "error", "error": predictor.error, **info}, status_code=503)
        return {"status": "ok", **info}

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
        if request.tokens is not None and not isinstance(predictor.encoder.task, TaggingTask):
            return fail(422, f'"tokens" (pre-split words) are for NER models; this is a {predictor.task} model')
        for i, t in enumerate(items):
            size = len(t) if isinstance(t, str) else sum(len(w) + 1 for w in t)
            if not (t.strip() if isinstance(t, str) else t):
                return fail(422, f"{name}[{i}] is empty")
            if size > max_text_chars:
                return fail(413, f"{name}[{i}] has {size} characters; the limit is {max_text_chars}")
        return items

    async def predict(request):
        if predictor.error:
            return fail(503, f"the model cannot predict: {predictor.error}")
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
            items = check(PredictRequest.model_validate(payload))
        except ValidationError as e:
            return fail(422, _validation_message(e))
        except RecursionError:
            return fail(400, "request body is nested too deeply")
        if not isinstance(items, list):
            return items  # an error response
        try:
            results = await run_in_threadpool(predictor.predict, items)
        except UserError as e:
            return fail(503 if predictor.error else 422, str(e))
        except Exception as e:  # an engine failure: say so on /health too
            predictor.error = f"{type(e).__name__}: {e}"
            return fail(500, f"the model failed: {predictor.error}")
        return {"task": predictor.task, "results": results}

    predict.__annotations__ = {"request": Request}  # explicit: this module uses postponed annotations
    app.get("/health")(health)
    app.post("/predict")(predict)
    return app
