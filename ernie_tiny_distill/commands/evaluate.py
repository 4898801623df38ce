"""Score an exported model on a data split named by a training config, as deployed (Paddle Inference / ONNX).

python tools/evaluate.py --model EXPORT_DIR --config configs/conll_teacher.yaml [--split test] [key=value ...]
Prints the metric (the same function as training-time evaluation) of what the predictor serves (NER: the
entities it returns for the gold words) as JSON, without the per-class report. The config's task and the
data's labels are checked against the export first (a mismatch is an error, exit 2).
--windows (classification) reads each text whole, as the overlapping windows of the config's model.long_document
(stride, max_windows, pooling) whose logits are pooled, also for a model fine-tuned on truncated text.
"""
import argparse
import json
import sys

from ernie_tiny_distill.cli import run_tool


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="export directory (tools/export.py --out)")
    parser.add_argument("--config", required=True, help="a training config whose data section names the data")
    parser.add_argument("overrides", nargs="*", help="key=value overrides of that config, e.g. data.max_test_examples=500")
    parser.add_argument("--split", choices=["dev", "test"], default="test")
    parser.add_argument("--backend", choices=["paddle", "onnx"], default="paddle")
    parser.add_argument("--precision", choices=["fp32", "bf16", "int8"], default="fp32")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--decoding", choices=["viterbi", "argmax"], help="NER: tag decoding")
    parser.add_argument("--windows", action="store_true", help="classification: read whole texts as windows "
                        "(model.long_document.stride, max_windows, pooling of the config), their logits pooled")

    def run(args) -> int:
        from ernie_tiny_distill.config import load_config
        from ernie_tiny_distill.data.load import load_splits
        from ernie_tiny_distill.deploy.predictor import Predictor, evaluate_export

        cfg = load_config(args.config, args.overrides)
        windows = cfg.model.long_document
        long_document = {"stride": windows.stride, "max_windows": windows.max_windows,
                         "pooling": windows.pooling} if args.windows else None
        predictor = Predictor(args.model, backend=args.backend, precision=args.precision, num_threads=args.threads,
                              task=cfg.task, decoding=args.decoding, long_document=long_document)
        # the task (and that it reads windows) is checked above, before any data is read
        examples = getattr(load_splits(cfg.data, cfg.task), args.split)
        result = evaluate_export(predictor, examples, where=f"{args.split} split of {args.config}")
        shown = {"split": args.split, "num_examples": len(examples), **predictor.encoder.task.decoding_metadata(),
                 **({"windows": long_document} if long_document else {}),
                 **{k: v for k, v in result.items() if k != "per_class"}}
        print(json.dumps(shown, indent=2))
        return 0

    return run_tool(parser, run)


if __name__ == "__main__":
    sys.exit(main())
