"""Export a trained checkpoint for deployment: `python tools/export.py --model RUN_OR_BEST_DIR --out EXPORT_DIR`.

Writes the Paddle Inference model (inference.json + .pdiparams), tokenizer, labels.json and export.json;
--onnx adds model.onnx (paddle2onnx); --int8 adds model.int8.onnx (ONNX Runtime post-training quantization;
the default dynamic method needs no calibration texts, --int8-method static calibrates on --calibration-file:
JSONL/CSV/TSV with a text column, CoNLL for NER, or one text per line). --word-splitter says how the served
model splits raw text into words (NER; recorded in export.json).
"""
import argparse
import json
import sys

from ernie_tiny_distill.cli import run_tool


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a stage's output dir or its best/ dir (with task.json)")
    parser.add_argument("--out", required=True, help="export directory to write (replaced atomically)")
    parser.add_argument("--onnx", action="store_true", help="also write model.onnx for backend 'onnx'")
    parser.add_argument("--int8", action="store_true", help="also write model.int8.onnx (implies --onnx)")
    parser.add_argument("--calibration-file", help="training texts for static INT8 calibration and the agreement "
                                                   "check (optional for the dynamic method)")
    parser.add_argument("--calibration-size", type=int, default=300, help="texts used for calibration")
    parser.add_argument("--int8-method", choices=["dynamic", "static"], default="dynamic",
                        help="dynamic: per-batch activation scales (more accurate here); static: ranges "
                             "calibrated on the calibration texts")
    parser.add_argument("--word-splitter", choices=["conll", "tweet", "whitespace"], default="conll",
                        help="how the served NER model splits raw text into words: like the training data")
    parser.add_argument("--no-verify", action="store_true", help="skip the dygraph vs inference logit check")
    parser.add_argument("--threads", type=int, default=2)

    def run(args) -> int:
        from ernie_tiny_distill.deploy.export import export_model, read_calibration_texts

        texts = None
        if args.int8 and args.calibration_file:
            texts = read_calibration_texts(args.calibration_file, args.model)[: args.calibration_size]
        meta = export_model(args.model, args.out, precision="int8" if args.int8 else "fp32", onnx=args.onnx,
                            calibration_texts=texts, int8_method=args.int8_method, verify=not args.no_verify,
                            word_splitter=args.word_splitter)
        shown = {k: meta[k] for k in ("task", "labels", "max_seq_length", "word_splitter", "layers", "hidden", "params",
                                      "nonembedding_params", "check", "onnx", "int8", "files") if k in meta}
        print(json.dumps(shown, indent=2))
        return 0

    return run_tool(parser, run)


if __name__ == "__main__":
    sys.exit(main())
