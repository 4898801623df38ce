"""`ernie-distill` / tools/distill.py: your labeled file in, an exported, evaluated student and its report out."""
from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from ernie_tiny_distill.cli import positive_int, run_tool

DESCRIPTION = """Distill a fine-tuned teacher into a small fast student on your own labeled data, in one command.

  ernie-distill --task classification --train train.csv --test test.csv --out runs/mine
  ernie-distill --task ner --train train.conll --dev dev.conll --test test.conll --speedup 5 --out runs/ner

Steps: estimate the time -> fine-tune the teacher (or reuse --teacher DIR) and check it against TF-IDF + LR and
its dev curve -> a student born from it (configs/recipes/<task>_<speedup>x.yaml) distilled with a transfer set
-> best on dev -> export FP32 + INT8 -> score both on the test file -> latency per request against the teacher
-> OUT/report.md and OUT/report.json. Re-running the same command skips finished steps and resumes an
interrupted training run from its checkpoint. Trailing key=value pairs override config keys of every stage
(e.g. train.num_threads=1).
"""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ernie-distill", description=DESCRIPTION,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", required=True, choices=["classification", "ner"])
    p.add_argument("--train", required=True, help="labeled training file")
    p.add_argument("--dev", help="labeled dev file (default: a seeded 10%% of --train, stratified by label)")
    p.add_argument("--test", help="labeled test file (default: none; scores and latency use dev)")
    p.add_argument("--unlabeled", help="unlabeled in-domain text, one document per line: the transfer set "
                                       "(default: augmented copies of the training data)")
    p.add_argument("--teacher", default="minilm", help="pretrained model to fine-tune (minilm, a PaddleNLP name "
                                                       "or a directory), or a run already fine-tuned on these labels")
    p.add_argument("--speedup", type=int, choices=[5, 10], default=10, help="student size: ~5x or ~10x faster")
    p.add_argument("--recipe", help="a recipe file instead of configs/recipes/<task>_<speedup>x.yaml")
    p.add_argument("--control", action="store_true", help="also train the same born student without KD and "
                                                          "report the KD gain")
    p.add_argument("--no-assistant", dest="assistant", action="store_false",
                   help="skip the recipe's assistant (the 10x classifier's 5x student, distilled first): "
                        "faster, a little less accurate")
    p.add_argument("--format", help="data.format of the files (default: conll for NER; csv/tsv/jsonl by the file "
                                    "name, else `LABEL text` lines)")
    p.add_argument("--encoding", help="data.encoding of the files (e.g. latin-1)")
    p.add_argument("--text-column", help="data.text_column (csv/tsv/jsonl)")
    p.add_argument("--label-column", help="data.label_column (csv/tsv/jsonl)")
    p.add_argument("--allow-weak-teacher", action="store_true",
                   help="distill even from a teacher below the TF-IDF + LR baseline (with a warning)")
    p.add_argument("--latency-texts", type=positive_int, default=200, help="texts timed per model")
    p.add_argument("--out", required=True, help="output directory (re-run to resume)")
    p.add_argument("overrides", nargs="*", help="key=value config overrides for every stage")
    p.add_argument("--threads", type=positive_int, default=2, help="CPU threads (train.num_threads wins)")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    def body(args) -> int:
        from ernie_tiny_distill.pipeline.recipes import Options
        from ernie_tiny_distill.pipeline.report import markdown
        from ernie_tiny_distill.pipeline.run import run_pipeline

        overrides = list(args.overrides)
        if not any(o.startswith("train.num_threads=") for o in overrides):
            overrides.append(f"train.num_threads={args.threads}")
        opts = Options(task=args.task, train=args.train, out=args.out, dev=args.dev, test=args.test,
                       unlabeled=args.unlabeled, teacher=args.teacher, speedup=args.speedup, control=args.control,
                       assistant=args.assistant, encoding=args.encoding, format=args.format,
                       text_column=args.text_column, label_column=args.label_column, recipe=args.recipe,
                       overrides=overrides,
                       allow_weak_teacher=args.allow_weak_teacher, latency_texts=args.latency_texts)
        print(markdown(run_pipeline(opts)))
        print(f"report: {args.out}/report.md and report.json")
        return 0

    p = parser()
    threads = [a.partition("=")[2] for a in (sys.argv[1:] if argv is None else argv)
               if a.startswith("train.num_threads=")]
    if threads and threads[-1].isdigit():
        p.set_defaults(threads=int(threads[-1]))  # Paddle reads the thread count once, at import
    return run_tool(p, body, argv)


if __name__ == "__main__":
    sys.exit(main())
