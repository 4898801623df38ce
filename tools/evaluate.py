"""Score an exported model on a data split named by a training config, as deployed (Paddle Inference / ONNX).

python tools/evaluate.py --model EXPORT_DIR --config configs/conll_teacher.yaml [--split test] [key=value ...]
Prints the metric (the same function as training-time evaluation) as JSON, without the per-class report.
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

    def run(args) -> int:
        from ernie_tiny_distill.config import load_config
        from ernie_tiny_distill.data import load_splits
        from ernie_tiny_distill.predictor import Predictor, evaluate_export

        cfg = load_config(args.config, args.overrides)
        examples = getattr(load_splits(cfg.data, cfg.task), args.split)
        predictor = Predictor(args.model, backend=args.backend, precision=args.precision, num_threads=args.threads)
        result = evaluate_export(predictor, examples)
        print(json.dumps({k: v for k, v in result.items() if k != "per_class"}, indent=2))
        return 0

    return run_tool(parser, run)


if __name__ == "__main__":
    sys.exit(main())
