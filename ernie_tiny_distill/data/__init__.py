"""Data: readers for every format, the example types, splits, batching, augmentation and the demo data."""
