"""Benchmarks run in under 3 minutes by default: the long ones are marked ``slow``.

``python -m pytest benchmarks --benchmark-only`` skips benchmarks marked
``@pytest.mark.slow`` (each takes over ~20 s on a 2-core machine); ``--run-slow`` runs
them too, and so does any ``-m`` expression (``-m slow`` runs only them).
"""

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add ``--run-slow``."""
    parser.addoption("--run-slow", action="store_true", default=False,
                     help="also run the benchmarks marked slow (skipped by default)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip slow benchmarks unless ``--run-slow`` or a ``-m`` expression is given."""
    if config.getoption("--run-slow") or config.getoption("markexpr"):
        return
    skip = pytest.mark.skip(reason="slow benchmark: run with --run-slow (or -m slow)")
    for item in items:
        if "slow" in item.keywords and "benchmarks" in item.path.parts:
            item.add_marker(skip)
