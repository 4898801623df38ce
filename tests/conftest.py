"""Shared pytest setup: registers the `slow` marker (deselect with `-m "not slow"`)."""


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: takes more than a few seconds (reads a real dataset)")
