"""Compatibility: `python -m ernie_tiny_distill.baselines` (the command recorded in benchmarks/results.json and
docs/benchmarks.md) runs ernie_tiny_distill.bench.baselines, where the TF-IDF baseline lives."""
import sys

from .bench.baselines import C_GRID, fit_tfidf_lr, main, make_model, run, time_model  # noqa: F401

if __name__ == "__main__":
    sys.exit(main())
