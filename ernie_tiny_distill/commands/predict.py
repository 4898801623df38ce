"""Predict with an export directory: `python tools/predict.py --model EXPORT_DIR "some text" "another text"`.

Texts come from the arguments, --file (one text per line; bytes that are not UTF-8 are replaced and
counted in a warning) or JSONL on stdin ({"text": ...} or, for NER, pre-split words {"tokens": [...]} per
line). Prints one JSON result per input: classification {"label", "probabilities"}, NER {"entities":
[{"type", "text", "start", "end", "start_token", "end_token", "score"}]} (no start/end for "tokens" input).
An empty text gives {"label": null, "error": "empty text"} (classification) or {"entities": []} (NER).
"""
import argparse
import json
import sys

from ernie_tiny_distill.cli import positive_int, run_tool


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="export directory (tools/export.py --out)")
    parser.add_argument("texts", nargs="*", help="texts to predict (else --file, else JSONL on stdin)")
    parser.add_argument("--file", help="one text per line")
    parser.add_argument("--backend", choices=["auto", "paddle", "onnx"], default="auto",
                        help="auto: Paddle Inference, or ONNX Runtime for --precision int8")
    parser.add_argument("--precision", choices=["fp32", "bf16", "int8"], default="fp32")
    parser.add_argument("--threads", type=positive_int, default=1)
    parser.add_argument("--batch-size", type=positive_int, default=32)
    parser.add_argument("--max-seq-length", type=positive_int, help="default: the length the model was trained with")
    parser.add_argument("--task", choices=["classification", "ner"], help="fail unless the model is this task")
    parser.add_argument("--device", choices=["cpu", "gpu", "auto"], default="cpu")
    parser.add_argument("--word-splitter", choices=["conll", "tweet", "whitespace"],
                        help="NER: how raw text is split into words (default: the export's, see export.json)")
    parser.add_argument("--decoding", choices=["viterbi", "argmax"],
                        help="NER: tag decoding (default: the library's, see docs/deployment.md)")

    def run(args) -> int:
        from ernie_tiny_distill.deploy.inputs import read_jsonl_items, read_texts_file
        from ernie_tiny_distill.deploy.predictor import Predictor

        predictor = Predictor(args.model, backend=args.backend, precision=args.precision, num_threads=args.threads,
                              batch_size=args.batch_size, max_seq_length=args.max_seq_length, device=args.device,
                              task=args.task, word_splitter=args.word_splitter, decoding=args.decoding)
        if args.texts:
            items = args.texts
        elif args.file:
            items = read_texts_file(args.file)
        else:
            items = read_jsonl_items(sys.stdin.buffer)
        for result in predictor.predict(items):
            print(json.dumps(result, ensure_ascii=False))
        return 0

    return run_tool(parser, run)


if __name__ == "__main__":
    sys.exit(main())
