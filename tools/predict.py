"""Predict with an export directory: `python tools/predict.py --model EXPORT_DIR "some text" "another text"`.

Same as the console script ernie-predict; the program is ernie_tiny_distill/commands/predict.py.
"""
import sys

from ernie_tiny_distill.commands.predict import main

if __name__ == "__main__":
    sys.exit(main())
