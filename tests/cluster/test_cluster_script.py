"""scripts/cluster: start, list, add, remove and stop a local cluster in a private state dir.
Every PID the script reports is also stopped by this test's fixture if the script did not."""

import os
import signal
import sys
import time

import pytest

from clusterlib import ROOT, run
from discovery import discover

SCRIPT = ROOT / "scripts" / "cluster"


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.fixture
def cluster_script(tmp_path):
    """cluster_script(*args) -> CompletedProcess, run against a state dir under tmp_path."""
    state = tmp_path / "state"
    seen_pids: set[int] = set()

    def call(*args, check=True):
        proc = run([sys.executable, SCRIPT, *args, "--dir", state], timeout=30, check=check)
        for line in proc.stdout.splitlines():
            for word in line.split():
                if word.startswith("pid="):
                    seen_pids.add(int(word[4:]))
        return proc

    call.state = state
    call.pids = seen_pids
    yield call
    run([sys.executable, SCRIPT, "stop", "--dir", state], timeout=30, check=False)
    for pid_file in state.glob("node-*.pid"):
        seen_pids.add(int(pid_file.read_text()))
    for pid in seen_pids:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


def endpoints(proc) -> list[int]:
    return [int(line.rsplit(":", 1)[1]) for line in proc.stdout.split()]


def listing(cluster_script) -> dict[int, str]:
    out = {}
    for line in cluster_script("list").stdout.splitlines():
        address, status = line.split(" ", 1)
        out[int(address.rsplit(":", 1)[1])] = status
    return out


def test_start_list_add_remove_stop(cluster_script):
    ports = endpoints(cluster_script("start", "3", "--base-port", "0"))
    assert len(ports) == 3
    for port in ports:
        info = discover("127.0.0.1", port)
        assert info.version == 1 and sorted(n.port for n in info.nodes) == sorted(ports)
    status = listing(cluster_script)
    assert sorted(status) == sorted(ports)
    assert all(s.startswith("running pid=") and s.endswith("version=1") for s in status.values()), status
    # A second start on a running cluster is refused.
    again = cluster_script("start", "2", "--base-port", "0", check=False)
    assert again.returncode == 1 and "stop it first" in again.stderr

    added = endpoints(cluster_script("add"))
    assert len(added) == 4 and set(ports) < set(added)
    new_port = (set(added) - set(ports)).pop()
    for port in added:
        info = discover("127.0.0.1", port)
        assert info.version == 2 and sorted(n.port for n in info.nodes) == sorted(added)

    status = listing(cluster_script)
    removed = ports[0]
    removed_pid = int(status[removed].split("pid=")[1].split()[0])
    rest = endpoints(cluster_script("remove", str(removed)))
    assert sorted(rest) == sorted(set(added) - {removed})
    for port in rest:
        info = discover("127.0.0.1", port)
        assert info.version == 3 and removed not in [n.port for n in info.nodes]
    deadline = time.monotonic() + 5
    while alive(removed_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(removed_pid)
    assert new_port in listing(cluster_script)

    pids = [int(s.split("pid=")[1].split()[0]) for s in listing(cluster_script).values()]
    cluster_script("stop")
    deadline = time.monotonic() + 5
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(alive(p) for p in pids)
    assert all(s == "stopped" for s in listing(cluster_script).values())
    text = (cluster_script.state / "nodes").read_text()
    assert "version 3" in text and f"|{removed}\n" not in text
