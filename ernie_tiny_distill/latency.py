"""Compatibility: the latency code lives in ernie_tiny_distill.bench.latency (tests and scripts import it here)."""
from .bench.latency import (environment, flops_per_sequence, interleave, markdown_table, measure,  # noqa: F401
                            measure_dygraph, measure_interleaved, run_grid, runnable_pairs)
