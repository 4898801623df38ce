"""Fast tokenization against PaddleNLP's tokenizer on every IMDB dev review and every CoNLL-2003 dev sentence.

    python benchmarks/tokenizer_parity.py --datasets ../shared/datasets --model minilm

Prints, per data set, how many texts (and CoNLL words) get different ids from tasks/tokenizer.py than from the
PaddleNLP tokenizer it is built from, how many kept ends of truncated texts differ (max_seq_length 128, head and
head_tail), how many texts the fast path hands to PaddleNLP, and the CPU time each takes for the same texts
(the fast path from a cold word memo).
IMDB dev is the pipeline's own split of IMDB train (data.dev_size 0.1, data.split_seed 0).
"""
import argparse
import os
import sys
import time

from ernie_tiny_distill.data import readers
from ernie_tiny_distill.models import build
from ernie_tiny_distill.tasks.classification import ClassificationTask
from ernie_tiny_distill.tasks.tokenizer import WordPieces


def timed(fn, items):
    """Results and CPU seconds (process time: steadier than wall time on a shared machine)."""
    start = time.process_time()
    out = [fn(x) for x in items]
    return out, time.process_time() - start


def compare(name, texts, tokenizer, reference, max_seq_length=128):
    """Whole-text ids, kept ends under both truncations, and the speed of each tokenizer on `texts`."""
    pieces = WordPieces(tokenizer)  # an empty word memo
    want, slow = timed(reference, texts)
    got, fast = timed(pieces.ids, texts)
    differ = [i for i, (a, b) in enumerate(zip(want, got)) if a != b]
    print(f"{name}: {len(texts)} texts, {sum(map(len, want))} pieces; different ids: {len(differ)}; "
          f"through PaddleNLP: {sum(map(pieces._odd, texts))}")
    for i in differ[:5]:
        print(f"  differs: {texts[i][:120]!r}")
    for truncation in ("head", "head_tail"):
        task = ClassificationTask(pieces.tokenizer, ["a"], max_seq_length, truncation)
        ends = [pieces.ends(t, *task.kept_ends()) for t in texts]
        wrong = sum(kept != task.truncate(ids) or cut != (len(ids) > max_seq_length - 2)
                    for (kept, cut), ids in zip(ends, want))
        print(f"  {truncation} truncation to {max_seq_length}: {sum(c for _, c in ends)} truncated, "
              f"{wrong} with different kept pieces")
    print(f"  PaddleNLP {slow * 1e3 / len(texts):.3f} ms/text, fast {fast * 1e3 / len(texts):.3f} ms/text: "
          f"{slow / fast:.1f}x")
    return len(differ)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--datasets", default=os.path.join("..", "shared", "datasets"))
    ap.add_argument("--model", default="minilm", help="model name or directory whose tokenizer is compared")
    args = ap.parse_args(argv)
    tokenizer = build.load_tokenizer(args.model)
    if not WordPieces(tokenizer).is_fast:
        sys.exit(f"no fast tokenizer for {args.model}: nothing to compare")

    def reference(text):
        return tokenizer.convert_tokens_to_ids(tokenizer.tokenize(text))

    imdb = readers.read_imdb(os.path.join(args.datasets, "aclImdb_v1.tar.gz"), "train")
    _, dev = readers.split_train_dev(imdb, 0.1, seed=0)
    differ = compare("IMDB dev", [ex.text for ex in dev], tokenizer, reference)

    conll = readers.read_conll(os.path.join(args.datasets, "conll2003", "valid.txt"))
    differ += compare("CoNLL dev sentences", [" ".join(s.tokens) for s in conll], tokenizer, reference)
    want, slow = timed(lambda s: [reference(w) for w in s.tokens], conll)
    pieces = WordPieces(tokenizer)
    got, fast = timed(lambda s: pieces.words(s.tokens), conll)
    words = [(w, a, b) for s, wa, wb in zip(conll, want, got) for w, a, b in zip(s.tokens, wa, wb)]
    wrong = [w for w, a, b in words if a != b]
    print(f"CoNLL dev words: {len(words)} words, {sum(len(a) for _, a, _ in words)} pieces; "
          f"different word pieces: {len(wrong)} {wrong[:5]}")
    print(f"  PaddleNLP {slow * 1e3 / len(conll):.3f} ms/sentence, fast {fast * 1e3 / len(conll):.3f} "
          f"ms/sentence: {slow / fast:.1f}x")
    return 1 if differ + len(wrong) else 0


if __name__ == "__main__":
    sys.exit(main())
