"""Cluster tests (ElastiCache auto-discovery): every test gets a hard time limit on top of the
per-process timeouts in clusterlib, and servers come from tests/conftest.py's `start_server`,
which stops each one by PID. `config get cluster` is a slabcached extension, so these tests are
skipped when the suite runs against memcached (SLABCACHED_TARGET=memcached)."""

import os
from pathlib import Path

import pytest

from clusterlib import LocalCluster

HERE = Path(__file__).resolve().parent
TEST_TIMEOUT = 60  # seconds, per test


def pytest_collection_modifyitems(config, items):
    skip = pytest.mark.skip(reason="cluster discovery is a slabcached extension")
    for item in items:
        if HERE not in Path(str(item.path)).resolve().parents:
            continue
        if item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(TEST_TIMEOUT))
        if os.environ.get("SLABCACHED_TARGET", "slabcached") == "memcached":
            item.add_marker(skip)


@pytest.fixture
def make_cluster(start_server, tmp_path):
    """make_cluster(count, extra_args=()) -> LocalCluster; its nodes stop at teardown."""
    made = []

    def make(count: int, extra_args=()) -> LocalCluster:
        directory = tmp_path / f"cluster{len(made)}"
        directory.mkdir()
        cluster = LocalCluster(start_server, directory, count, extra_args)
        made.append(cluster)
        return cluster

    return make
