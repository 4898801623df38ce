"""Export a trained checkpoint for deployment: `python tools/export.py --model RUN_OR_BEST_DIR --out EXPORT_DIR`.

Same as the console script ernie-export; the program is ernie_tiny_distill/commands/export.py.
"""
import sys

from ernie_tiny_distill.commands.export import main

if __name__ == "__main__":
    sys.exit(main())
