"""The benchmark matrix: YAML profiles (profile), the job graph and generated configs (jobs), one runner
(runner, deploy), the report (rows, report, plot), latency and the TF-IDF baseline; tools/reproduce.py runs cli.main.
"""
