"""How much do an encoder's final hidden states vary across inputs? A diagnostic for stage-1 students.

    python benchmarks/probe_spread.py --config runs/bench/configs/imdb_B_general_seed1.yaml --teacher minilm --init-student \
        --models minilm runs/bench/imdb/B/general/seed1/best runs/bench/conll/B/general/seed1/best

For each model it encodes the first --examples dev texts of the config's data (one batch, no training) and prints
the spread of the [CLS] state and of the mean-pooled state across examples, relative to the norm of their mean:
mean_i ||x_i - mean(x)|| / ||mean(x)||. Near 0 means every input gets almost the same vector (a collapsed
representation a new classification head has to learn to read). --init-student adds the config's student as
initialised before any training (same seed and scheme), the starting point that stage 1 is meant to improve on.

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


def encode(model, tokenizer, texts, max_seq_length):
    """(hidden states of every layer [B, L, H] each, the valid-token mask [B, L]) as numpy."""
    import numpy as np
    import paddle

    enc = tokenizer(texts, max_length=max_seq_length, truncation=True, padding=True, return_attention_mask=True)
    model.eval()
    with paddle.no_grad():
        states = model(input_ids=paddle.to_tensor(enc["input_ids"]),
                       token_type_ids=paddle.to_tensor(enc["token_type_ids"]),
                       attention_mask=paddle.to_tensor(enc["attention_mask"]),
                       output_hidden_states=True, return_dict=True).hidden_states
    return [s.numpy() for s in states], np.asarray(enc["attention_mask"], dtype=bool)


def print_teacher_variance(name, states, valid, layer_map) -> None:
    import numpy as np

    variances = []
    for j in layer_map:
        tokens = states[j][valid]  # [tokens, H]
        variances.append(float(((tokens - tokens.mean(0)) ** 2).mean()))
        print(f"{name} layer {j}: variance around the mean state {variances[-1]:.4f}")
    print(f"{name}: hidden MSE of the mean-state predictor over layers {layer_map}: {np.mean(variances):.4f}")


def print_spread(name, states, valid, num_texts, max_seq_length) -> None:
    last = states[-1]
    mask = valid[..., None].astype(last.dtype)
    mean_pooled = (last * mask).sum(1) / mask.sum(1)
    print(f"{name}: [CLS] spread/norm {spread(last[:, 0]):.3f}   mean-pooled spread/norm "
          f"{spread(mean_pooled):.3f}   ({num_texts} dev texts, {max_seq_length} tokens)")


def run(args) -> None:
    import functools

    from paddlenlp.transformers import ErnieModel

    from ernie_tiny_distill.config import load_config
    from ernie_tiny_distill.data import load as data_lib
    from ernie_tiny_distill.distill import distiller as distill
    from ernie_tiny_distill.models import build as models
    from ernie_tiny_distill.models import birth
    from ernie_tiny_distill.train import stages

    cfg = load_config(args.config)
    dev = data_lib.load_splits(cfg.data, cfg.task).dev[: args.examples]
    texts = [e.text if hasattr(e, "text") else " ".join(e.tokens) for e in dev]
    load_model = functools.lru_cache(maxsize=None)(lambda spec: models.load_model(spec, ErnieModel))
    student = None
    if args.teacher or args.init_student:
        stages.seed_everything(cfg.train.seed)  # initialised the way stage 1 does it (same seed, same scheme)
        student = birth.build_student(cfg.model.student, load_model(cfg.model.teacher),
                                       models.load_tokenizer(cfg.model.teacher), ErnieModel)
    if args.teacher:
        states, valid = encode(load_model(args.teacher), models.load_tokenizer(args.teacher), texts,
                               args.max_seq_length)
        layer_map = distill.layer_map_for(cfg, models.num_layers(student), len(states) - 1)
        print_teacher_variance(args.teacher, states, valid, layer_map)
    if args.init_student:
        states, valid = encode(student, models.load_tokenizer(cfg.model.teacher), texts, args.max_seq_length)
        print_spread(f"student of {args.config} at initialisation", states, valid, len(texts), args.max_seq_length)
    for spec in args.models:
        states, valid = encode(load_model(spec), models.load_tokenizer(spec), texts, args.max_seq_length)
        print_spread(spec, states, valid, len(texts), args.max_seq_length)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True, help="a config whose data section gives the dev texts")
    parser.add_argument("--models", nargs="*", default=[], help="model dirs or names (e.g. minilm, <run>/best)")
    parser.add_argument("--teacher", help="also print the teacher's per-layer variance (e.g. minilm)")
    parser.add_argument("--init-student", action="store_true",
                        help="also probe the config's student as initialised, before training")
    parser.add_argument("--examples", type=int, default=64)
    parser.add_argument("--max-seq-length", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1)
    return run_tool(parser, run, argv)


if __name__ == "__main__":
    sys.exit(main())
