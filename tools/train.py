"""Train one stage: `python tools/train.py --config configs/X.yaml [key=value ...]`.

Same as the console script ernie-train; the program is ernie_tiny_distill/commands/train.py.
"""
from ernie_tiny_distill.cli import exit_process
from ernie_tiny_distill.commands.train import main

if __name__ == "__main__":
    exit_process(main())  # data-parallel workers skip the interpreter teardown (see exit_process)
