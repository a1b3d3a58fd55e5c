"""Client-compatibility suite: every scenario gets a hard time limit (pytest-timeout) on top of
the per-subprocess timeouts, and the fixtures in tests/conftest.py start the server."""

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
SCENARIO_TIMEOUT = 90  # seconds, per test


def pytest_collection_modifyitems(config, items):
    for item in items:
        if HERE in Path(str(item.path)).resolve().parents and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(SCENARIO_TIMEOUT))
