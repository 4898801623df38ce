"""Score an exported model on a data split named by a training config, as deployed (Paddle Inference / ONNX).

Same as the console script ernie-evaluate; the program is ernie_tiny_distill/commands/evaluate.py.
"""
import sys

from ernie_tiny_distill.commands.evaluate import main

if __name__ == "__main__":
    sys.exit(main())
