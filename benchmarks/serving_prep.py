"""Per-request serving time outside the engine (tokenize + pack) on IMDB reviews and CoNLL-2003 sentences.

    python benchmarks/serving_prep.py --datasets ../shared/datasets --work runs/serving-prep

For each request (one text) it times what the Predictor's post-processors do before the engine call:
classification_feature + collate for an IMDB test review (max_seq_length 128, head_tail), words +
tagging_windows + collate for a CoNLL-2003 dev sentence given as raw text (max_seq_length 128). Word pieces
are memoized, so it reports a first pass from an empty memo (text never seen) and a second pass over the same
texts. The exports hold a 1-layer random model on the MiniLM vocabulary: the time measured does not depend on
the weights. Run it with each version of the package on the import path to compare them; timings on a shared
machine vary, so compare runs made one after the other.
"""
import argparse
import os
import statistics
import sys
import time

from ernie_tiny_distill.data import readers


def make_export(work: str, task_name: str, labels, truncation: str) -> str:
    """A 1-layer random model with the MiniLM tokenizer, exported (reused when already there)."""
    out = os.path.join(work, f"{task_name}_export")
    if os.path.isfile(os.path.join(out, "export.json")):
        return out
    import paddle
    from paddlenlp.transformers import ErnieConfig

    from ernie_tiny_distill.deploy.export import export_model
    from ernie_tiny_distill.models import build
    from ernie_tiny_distill.tasks import adapters

    tokenizer = build.load_tokenizer("minilm")
    paddle.seed(0)
    config = ErnieConfig(vocab_size=len(tokenizer.vocab), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=512, type_vocab_size=2, pad_token_id=0)
    config.num_labels = len(labels)
    task = adapters.make_task(task_name, tokenizer, labels, 128, truncation)
    model = task.model_class(config)
    model_dir = os.path.join(work, f"{task_name}_model")
    build.save_model_dir(model, tokenizer, model_dir, {**task.metadata(), "stage": "task", "dev": None})
    export_model(model_dir, out)
    return out


def per_request(fn, items):
    """Wall time per request (mean, median) and CPU time (mean; steadier on a shared machine)."""
    wall, cpu = [], []
    for item in items:
        start, start_cpu = time.perf_counter(), time.process_time()
        fn(item)
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return (f"wall mean {statistics.mean(wall) * 1e3:.3f} ms, median {statistics.median(wall) * 1e3:.3f} ms, "
            f"CPU mean {statistics.mean(cpu) * 1e3:.3f} ms")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--datasets", default=os.path.join("..", "shared", "datasets"))
    ap.add_argument("--work", required=True, help="directory for the two exports (kept for a second run)")
    ap.add_argument("--count", type=int, default=300, help="requests per data set")
    args = ap.parse_args(argv)
    import ernie_tiny_distill
    from ernie_tiny_distill.deploy.predictor import Predictor

    print(f"package: {os.path.dirname(ernie_tiny_distill.__file__)}")
    reviews = [ex.text for ex in readers.read_imdb(os.path.join(args.datasets, "aclImdb_v1.tar.gz"), "test")]
    reviews = reviews[:: max(1, len(reviews) // args.count)][: args.count]  # both labels, spread over the split
    conll = readers.read_conll(os.path.join(args.datasets, "conll2003", "valid.txt"))[: args.count]
    sentences = [" ".join(s.tokens) for s in conll]

    cls = Predictor(make_export(args.work, "classification", ["neg", "pos"], "head_tail"))

    def classify_prep(text):
        return cls.encoder.collate([cls.encoder.classification_feature(text)])

    ner_labels = sorted({t for s in readers.read_conll(os.path.join(args.datasets, "conll2003", "train.txt"))
                         for t in s.tags})
    ner = Predictor(make_export(args.work, "ner", ner_labels, "head"))

    def ner_prep(text):
        features, _ = ner.encoder.tagging_windows(ner.encoder.words(text)[0])
        return ner.encoder.collate(features)

    classify_prep("A warm-up review of a film.")  # imports and first-call set-up out of the timing
    cls.encoder.clear_cache()
    first = per_request(classify_prep, reviews)
    print(f"IMDB test reviews ({len(reviews)}, mean {statistics.mean(map(len, reviews)):.0f} chars), "
          f"classification_feature + collate: first pass {first}; second pass {per_request(classify_prep, reviews)}")
    ner_prep("Warm up in Berlin .")
    ner.encoder.clear_cache()
    first = per_request(ner_prep, sentences)
    print(f"CoNLL dev sentences ({len(sentences)}), words + tagging_windows + collate: first pass {first}; "
          f"second pass {per_request(ner_prep, sentences)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
