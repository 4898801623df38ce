"""Serve an export directory over HTTP: `python tools/serve.py --model EXPORT_DIR --port 8000`.

Same as the console script ernie-serve; the program is ernie_tiny_distill/commands/serve.py.
"""
import sys

from ernie_tiny_distill.commands.serve import main

if __name__ == "__main__":
    sys.exit(main())
