"""Serve an export directory over HTTP: `ernie-serve --model EXPORT_DIR --port 8000` (or `python tools/serve.py`).

POST /predict {"texts": ["...", ...]} or (NER) {"tokens": [["word", ...], ...]} -> {"task", "results": [...]}
(results as tools/predict.py prints); GET /health; GET /metrics (Prometheus text). Requests arriving within
--max-wait-ms are predicted together (at most --max-batch items per call) by --workers threads in each of
--processes server processes sharing the port; when --max-queue items already wait in the process that took the
request, it gets 503 with Retry-After. Listens on 127.0.0.1 unless --host says otherwise; /docs and
/openapi.json only with --docs.
"""
import argparse
import sys

from ernie_tiny_distill.cli import run_tool


def port(value: str) -> int:
    """A TCP port number, 1..65535 (argparse reports anything else as a usage error, exit 2)."""
    if not value.isdigit() or not 1 <= int(value) <= 65535:
        raise argparse.ArgumentTypeError(f"{value!r} is not a port number (1..65535)")
    return int(value)


def positive(value: str) -> int:
    """An integer >= 1 (a limit of 0 or less would refuse every request, or none)."""
    if not value.lstrip("+").isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not an integer >= 1")
    return int(value)


def nonnegative(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not number >= 0:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number >= 0")
    return number


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="export directory (tools/export.py --out)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=port, default=8000)
    parser.add_argument("--backend", choices=["auto", "paddle", "onnx"], default="auto")
    parser.add_argument("--precision", choices=["fp32", "bf16", "int8"], default="fp32")
    parser.add_argument("--threads", type=positive, default=1, help="CPU threads per worker")
    parser.add_argument("--workers", type=positive, default=1, help="predictor threads (one engine each)")
    parser.add_argument("--processes", type=positive, default=1,
                        help="server processes on the same port, each with --workers threads (a process per core "
                             "serves more requests per second than threads, which share one interpreter lock)")
    parser.add_argument("--max-batch", type=positive, default=32, help="most items in one engine batch")
    parser.add_argument("--max-wait-ms", type=nonnegative, default=2.0, help="how long a batch waits to fill up")
    parser.add_argument("--max-queue", type=positive, default=256, help="most items waiting; then 503")
    parser.add_argument("--max-request-bytes", type=positive, default=1 << 20)
    parser.add_argument("--max-batch-size", type=positive, default=64, help="most texts in one request")
    parser.add_argument("--max-text-chars", type=positive, default=100_000)
    parser.add_argument("--word-splitter", choices=["conll", "tweet", "whitespace"],
                        help="NER: how raw text is split into words (default: the export's)")
    parser.add_argument("--decoding", choices=["viterbi", "argmax"], help="NER: tag decoding")
    parser.add_argument("--docs", action="store_true", help="serve /docs and /openapi.json")
    parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"], default="info",
                        help="uvicorn's log level (info logs every request)")

    def run(args) -> int:
        from ernie_tiny_distill.util.extras import require

        require("uvicorn", "serve", "ernie-serve")
        require("fastapi", "serve", "ernie-serve")
        from ernie_tiny_distill.cli import main_wrapper
        from ernie_tiny_distill.deploy.metrics import Metrics
        from ernie_tiny_distill.deploy.predictor import Predictor
        from ernie_tiny_distill.deploy.processes import run_processes
        from ernie_tiny_distill.deploy.service import create_app, listen, serve

        # a bad host or a port in use: a one-line error before loading; one socket per process (processes.py)
        many = args.processes > 1
        socks = [listen(args.host, args.port, reuse_port=many)]
        socks += [listen(args.host, socks[0].getsockname()[1], reuse_port=True) for _ in range(args.processes - 1)]
        metrics = Metrics(shared=many)  # made before the processes fork: one set of counters

        def serve_here(number: int = 0) -> int:
            for k, other in enumerate(socks):
                if k != number:
                    other.close()  # each process accepts on its own socket only
            predictor = Predictor(args.model, backend=args.backend, precision=args.precision,
                                  num_threads=args.threads, batch_size=args.max_batch,
                                  word_splitter=args.word_splitter, decoding=args.decoding)
            app = create_app(predictor, max_request_bytes=args.max_request_bytes,
                             max_batch_size=args.max_batch_size, max_text_chars=args.max_text_chars,
                             workers=args.workers, max_batch=args.max_batch, max_wait_ms=args.max_wait_ms,
                             max_queue=args.max_queue, docs=args.docs, metrics=metrics, processes=args.processes)
            serve(app, socks[number], log_level=args.log_level)
            return 0

        if not many:
            return serve_here()
        return run_processes(lambda number: main_wrapper(lambda: serve_here(number), args.debug), args.processes)

    return run_tool(parser, run)


if __name__ == "__main__":
    sys.exit(main())
