"""Shared pytest fixtures (helpers live in slabtest.py, importable from any test directory:
several directories have a conftest.py, so `from conftest import ...` would be ambiguous)."""

import pytest

from slabtest import Server, TARGET  # noqa: F401  (re-exported for older imports)


@pytest.fixture
def start_server():
    """Factory fixture: start_server(args=[...], kind=None) -> Server; all stopped at teardown."""
    started: list[Server] = []

    def start(args: list[str] | None = None, kind: str | None = None) -> Server:
        srv = Server(kind or TARGET, list(args or []))
        started.append(srv)
        return srv

    yield start
    for srv in started:
        srv.terminate()
    for srv in started:
        srv.stop()


@pytest.fixture
def server(start_server) -> Server:
    """One server of the selected target with default flags (-m 64 -t 2)."""
    return start_server(["-m", "64", "-t", "2"])
