"""Helpers for the cluster tests: a local cluster built from tests/conftest.py's servers, raw
protocol access to one node, and bounded runs of external programs (nutcracker, php)."""

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from slabtest import RawConn, stop_process

from discovery import discover

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
SERVER_ARGS = ["-m", "64", "-t", "2"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def need(tool: str) -> str:
    """Path of a program; missing is a failure: scripts/install-test-deps installs it."""
    path = shutil.which(tool) or next(
        (p for p in (f"/usr/sbin/{tool}", f"/usr/bin/{tool}") if os.path.exists(p)), None
    )
    if not path:
        pytest.fail(f"{tool} not found: run scripts/install-test-deps")
    return path


def run(args, timeout: float = 30, check: bool = True) -> subprocess.CompletedProcess:
    """Run a program to completion within `timeout` seconds (killed past it); show its output
    when it fails."""
    try:
        proc = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"{args[0]} timed out after {timeout}s\nstdout: {e.stdout!r}\nstderr: {e.stderr!r}")
    if check and proc.returncode != 0:
        pytest.fail(f"{' '.join(map(str, args))} exited {proc.returncode}\n"
                    f"--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}")
    return proc


class Raw(RawConn):
    """One text-protocol connection to one node, independent of the clients under test."""

    def call(self, command: bytes) -> bytes:
        """Send one command line (CRLF added) and return the one reply line."""
        self.send(command + b"\r\n")
        return self.line()

    def get_multi(self, keys) -> dict[str, bytes]:
        """Values of those of `keys` this node holds."""
        found = {}
        keys = list(keys)
        for i in range(0, len(keys), 200):
            self.send(b"get " + " ".join(keys[i:i + 200]).encode() + b"\r\n")
            while (line := self.line()) != b"END":
                _, key, _flags, size = line.split(b" ")
                found[key.decode()] = self.exact(int(size) + 2)[:-2]
        return found

    def stats(self) -> dict[str, str]:
        self.send(b"stats\r\n")
        out = {}
        while (line := self.line()) != b"END":
            _, name, value = line.decode().split(" ", 2)
            out[name] = value
        return out


def curr_items(port: int) -> int:
    with Raw(port) as raw:
        return int(raw.stats()["curr_items"])


def holders(ports, keys) -> dict[str, list[int]]:
    """For each key, the ports of the nodes that hold it."""
    where: dict[str, list[int]] = {k: [] for k in keys}
    for port in ports:
        with Raw(port) as raw:
            for key in raw.get_multi(keys):
                where[key].append(port)
    return where


def wait_until(predicate, timeout: float, interval: float = 0.02, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class LocalCluster:
    """N slabcached nodes on loopback sharing one cluster file, started through tests/conftest.py's
    `start_server` (which stops each by PID at teardown).

    The servers pick their own free ports, so the file cannot list them before they start: each
    starts on a one-line bootstrap file, then the file is rewritten with every node and the
    version line raised, and every node gets SIGHUP, as an operator adding nodes would do."""

    def __init__(self, start_server, directory: Path, count: int, extra_args=()):
        self.start_server = start_server
        self.file = directory / "nodes"
        self.extra_args = list(extra_args)
        self.version = 1
        self.file.write_text("# placeholder until the nodes are up\nversion 1\nbootstrap|127.0.0.1|1\n")
        self.servers = []
        for _ in range(count):
            self.servers.append(self._start())
        self.publish()

    def _start(self):
        server = self.start_server(SERVER_ARGS + ["--cluster-config", str(self.file)] + self.extra_args)
        # start_server returns once the port accepts connections, which the kernel does as soon
        # as the socket listens; slabcached installs its SIGHUP handler after that, just before
        # serving. A full request answered means the handler is in place: until then a SIGHUP
        # would kill the node (the default action).
        discover("127.0.0.1", server.port)
        return server

    @property
    def ports(self) -> list[int]:
        return [s.port for s in self.servers]

    def running(self):
        return [s for s in self.servers if s.proc.poll() is None]

    def publish(self) -> None:
        """Write every node into the file at the next version, SIGHUP all running nodes, and
        wait until each serves that version."""
        self.version += 1
        lines = [f"version {self.version}"] + [f"localhost|127.0.0.1|{p}" for p in self.ports]
        tmp = self.file.with_suffix(".tmp")
        tmp.write_text("\n".join(lines) + "\n")
        tmp.replace(self.file)
        for server in self.running():
            os.kill(server.pid, signal.SIGHUP)
        for server in self.running():
            wait_until(lambda: discover("127.0.0.1", server.port).version == self.version, 5,
                       what=f"node {server.port} to serve version {self.version}")

    def add_node(self):
        """Start one more node, then list it and SIGHUP every node."""
        server = self._start()
        self.servers.append(server)
        self.publish()
        return server


class Nutcracker:
    """twemproxy in the foreground with its own config, on free loopback ports; stopped by PID."""

    def __init__(self, directory: Path, backends: list[int], distribution: str = "ketama"):
        self.port = free_port()
        self.stats_port = free_port()
        self.conf = directory / "nutcracker.yml"
        servers = "".join(f"    - 127.0.0.1:{p}:1\n" for p in backends)
        self.conf.write_text(
            "slabcached:\n"
            f"  listen: 127.0.0.1:{self.port}\n"
            "  hash: md5\n"
            f"  distribution: {distribution}\n"
            "  timeout: 2000\n"
            "  auto_eject_hosts: false\n"
            "  preconnect: true\n"
            "  servers:\n" + servers
        )
        binary = need("nutcracker")
        run([binary, "-t", "-c", self.conf], timeout=10)
        self.log = directory / "nutcracker.log"
        cmd = [binary, "-c", self.conf, "-o", self.log, "-a", "127.0.0.1", "-s", str(self.stats_port), "-v", "4"]
        self.proc = subprocess.Popen([str(a) for a in cmd], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_until(self._listening, 10, what="nutcracker to listen")
        except BaseException:
            self.stop()
            raise

    def _listening(self) -> bool:
        if self.proc.poll() is not None:
            pytest.fail(f"nutcracker exited with {self.proc.returncode}: {self.log.read_text()[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
            return True
        except OSError:
            return False

    def stop(self) -> None:
        stop_process(self.proc)
