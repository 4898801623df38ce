"""Pipelines that chain stages: teacher -> student -> export -> report."""
