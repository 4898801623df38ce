"""Serve an export directory over HTTP: `python tools/serve.py --model EXPORT_DIR --port 8000`.

POST /predict {"texts": ["...", ...]} or (NER) {"tokens": [["word", ...], ...]} -> {"task", "results": [...]}
(results as tools/predict.py prints); GET /health (503 once the model cannot predict). Clear 4xx answers for
bad JSON (400), an empty list or empty text (422) and size limits (413).
Listens on 127.0.0.1 unless --host says otherwise.
"""
import argparse
import sys

from ernie_tiny_distill.cli import run_tool


def port(value: str) -> int:
    """A TCP port number, 1..65535 (argparse reports anything else as a usage error, exit 2)."""
    if not value.isdigit() or not 1 <= int(value) <= 65535:
        raise argparse.ArgumentTypeError(f"{value!r} is not a port number (1..65535)")
    return int(value)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="export directory (tools/export.py --out)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=port, default=8000)
    parser.add_argument("--backend", choices=["auto", "paddle", "onnx"], default="auto")
    parser.add_argument("--precision", choices=["fp32", "bf16", "int8"], default="fp32")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--max-request-bytes", type=int, default=1 << 20)
    parser.add_argument("--max-batch-size", type=int, default=64, help="most texts in one request")
    parser.add_argument("--max-text-chars", type=int, default=100_000)
    parser.add_argument("--word-splitter", choices=["conll", "tweet", "whitespace"],
                        help="NER: how raw text is split into words (default: the export's)")
    parser.add_argument("--decoding", choices=["viterbi", "argmax"], help="NER: tag decoding")

    def run(args) -> int:
        from ernie_tiny_distill.util.extras import require

        uvicorn = require("uvicorn", "serve", "ernie-serve")
        require("fastapi", "serve", "ernie-serve")
        from ernie_tiny_distill.deploy.predictor import Predictor
        from ernie_tiny_distill.deploy.service import create_app

        predictor = Predictor(args.model, backend=args.backend, precision=args.precision, num_threads=args.threads,
                              word_splitter=args.word_splitter, decoding=args.decoding)
        app = create_app(predictor, max_request_bytes=args.max_request_bytes, max_batch_size=args.max_batch_size,
                         max_text_chars=args.max_text_chars)
        uvicorn.run(app, host=args.host, port=args.port, log_level="info")
        return 0

    return run_tool(parser, run)


if __name__ == "__main__":
    sys.exit(main())
