"""How much do an encoder's final hidden states vary across inputs? A diagnostic for stage-1 students.

    python tools/probe_spread.py --config configs/bench/imdb_B_general_seed1.yaml \
        --models minilm runs/bench/imdb/B/general/seed1/best runs/bench/conll/B/general/seed1/best --teacher minilm

For each model it encodes the first --examples dev texts of the config's data (one batch, no training) and prints
the spread of the [CLS] state and of the mean-pooled state across examples, relative to the norm of their mean:
mean_i ||x_i - mean(x)|| / ||mean(x)||. Near 0 means every input gets almost the same vector (a collapsed
representation a new classification head has to learn to read).

With --teacher it also prints, for the teacher layers that the config's student is matched to in stage 1, the
teacher's variance around its mean state: the hidden MSE a student earns by outputting the teacher's mean
vector for every token. Compare their average with the final `hidden` loss in the stage-1 run's train_log.jsonl
(distill.hidden_loss=mse): if they are close, stage 1 taught little beyond the mean.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ernie_tiny_distill.cli import run_tool  # noqa: E402


def spread(x):
    import numpy as np

    center = x.mean(0)
    return float(np.linalg.norm(x - center, axis=1).mean() / np.linalg.norm(center))


def run(args) -> None:
    import numpy as np
    import paddle
    from paddlenlp.transformers import ErnieModel

    from ernie_tiny_distill import data as data_lib
    from ernie_tiny_distill import models
    from ernie_tiny_distill.config import load_config

    cfg = load_config(args.config)
    task = "classification" if cfg.task == "classification" else cfg.task
    dev = data_lib.load_splits(cfg.data, task).dev[: args.examples]
    texts = [e.text if hasattr(e, "text") else " ".join(e.tokens) for e in dev]
    if args.teacher:
        from ernie_tiny_distill.trainer import default_layer_map

        tokenizer = models.load_tokenizer(args.teacher)
        enc = tokenizer(texts, max_length=args.max_seq_length, truncation=True, padding=True,
                        return_attention_mask=True)
        teacher = models.load_model(args.teacher, ErnieModel)
        teacher.eval()
        with paddle.no_grad():
            states = teacher(input_ids=paddle.to_tensor(enc["input_ids"]),
                             token_type_ids=paddle.to_tensor(enc["token_type_ids"]),
                             attention_mask=paddle.to_tensor(enc["attention_mask"]),
                             output_hidden_states=True, return_dict=True).hidden_states
        valid = np.asarray(enc["attention_mask"], dtype=bool)
        student = cfg.model.student
        layer_map = cfg.distill.layer_map or default_layer_map(
            student.num_layers or len(student.layers or []), len(states) - 1, student.layers)
        variances = []
        for j in layer_map:
            tokens = states[j].numpy()[valid]  # [tokens, H]
            variances.append(float(((tokens - tokens.mean(0)) ** 2).mean()))
            print(f"{args.teacher} layer {j}: variance around the mean state {variances[-1]:.4f}")
        print(f"{args.teacher}: hidden MSE of the mean-state predictor over layers {layer_map}: "
              f"{np.mean(variances):.4f}")
    for spec in args.models:
        tokenizer = models.load_tokenizer(spec)
        enc = tokenizer(texts, max_length=args.max_seq_length, truncation=True, padding=True,
                        return_attention_mask=True)
        model = models.load_model(spec, ErnieModel)
        model.eval()
        with paddle.no_grad():
            seq = model(input_ids=paddle.to_tensor(enc["input_ids"]),
                        token_type_ids=paddle.to_tensor(enc["token_type_ids"]))[0].numpy()
        mask = np.asarray(enc["attention_mask"], dtype=np.float32)[..., None]
        mean_pooled = (seq * mask).sum(1) / mask.sum(1)
        print(f"{spec}: [CLS] spread/norm {spread(seq[:, 0]):.3f}   mean-pooled spread/norm "
              f"{spread(mean_pooled):.3f}   ({len(texts)} dev texts, {args.max_seq_length} tokens)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True, help="a config whose data section gives the dev texts")
    parser.add_argument("--models", nargs="+", required=True, help="model dirs or names (e.g. minilm, <run>/best)")
    parser.add_argument("--teacher", help="also print the teacher's per-layer variance (e.g. minilm)")
    parser.add_argument("--examples", type=int, default=64)
    parser.add_argument("--max-seq-length", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1)
    return run_tool(parser, run, argv)


if __name__ == "__main__":
    sys.exit(main())
