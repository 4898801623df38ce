"""Your labeled data to an exported, evaluated student in one command (the same as the `ernie-distill` script).

python tools/distill.py --task classification|ner --train FILE [--dev FILE] [--test FILE] [--unlabeled FILE]
    [--teacher minilm|DIR] [--speedup 5|10] [--control] [--encoding ENC] [--format FMT] --out DIR [key=value ...]
Re-running the same command skips finished steps; `--help` lists every flag. The work is done by
ernie_tiny_distill/pipeline/ (run.py); the recipes are configs/recipes/*.yaml.
"""
import sys

from ernie_tiny_distill.pipeline.cli import main

if __name__ == "__main__":
    sys.exit(main())
