"""Test helpers shared by every suite: start a real server process on a free loopback port.

The server under test is slabcached (target/release/slabcached, or $SLABCACHED_BIN) unless
SLABCACHED_TARGET=memcached, in which case Debian's /usr/bin/memcached is started with the same
flags. Every server is stopped by PID when its fixture ends.
"""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TARGET = os.environ.get("SLABCACHED_TARGET", "slabcached")

# Stats parity with memcached 1.6.18 (tests/test_stats.py, tests/clients): fields of features
# built elsewhere (buffer accounting, watch, TLS, warm restart), tolerated while slabcached lacks
# them, and slabcached's own fields, which come after all of memcached's in their group.
OTHER_FEATURES = {
    "stats": {
        "response_obj_oom", "response_obj_count", "response_obj_bytes",
        "read_buf_count", "read_buf_bytes", "read_buf_bytes_free", "read_buf_oom",
        "log_worker_dropped", "log_worker_written", "log_watcher_skipped", "log_watcher_sent",
        "log_watchers",
        "ssl_new_sessions", "ssl_handshake_errors", "time_since_server_cert_refresh",
    },
    "settings": {
        "watcher_logbuf_size", "worker_logbuf_size", "read_buf_mem_limit",
        "ssl_enabled", "ssl_chain_cert", "ssl_key", "ssl_verify_mode", "ssl_keyformat",
        "ssl_ciphers", "ssl_ca_cert", "ssl_wbuf_size", "ssl_session_cache", "ssl_kernel_tls",
        "ssl_min_version", "memory_file",
    },
    "items": set(),
    "slabs": set(),
    "conns": set(),
}

# slabcached's own fields; each group lists them after all of memcached's.
SLABCACHED_EXTRAS = {
    "stats": set(),
    "settings": {"item_header_size"},
    "items": set(),
    "slabs": set(),
    "conns": set(),
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_binary(kind: str) -> str:
    if kind == "memcached":
        path = shutil.which("memcached") or "/usr/bin/memcached"
    else:
        path = os.environ.get("SLABCACHED_BIN", str(ROOT / "target" / "release" / "slabcached"))
    if not os.path.exists(path):
        pytest.fail(f"server binary {path} not found (build with cargo build --release)")
    return path


class Server:
    """A running server process; `port` is where it listens, `stop()` ends it."""

    def __init__(self, kind: str, args: list[str]):
        self.kind = kind
        self.port = free_port()
        cmd = [server_binary(kind), "-l", "127.0.0.1", "-p", str(self.port), "-U", "0"] + args
        if kind == "memcached" and os.geteuid() == 0:
            cmd += ["-u", "root"]
        # stderr goes to a file, not a pipe: a verbose server must never block on a full pipe.
        self.stderr_file = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=self.stderr_file)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{cmd} exited with {self.proc.returncode}: {self.stderr()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"{cmd} did not start listening within 10 s")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stderr(self) -> str:
        """Everything the server wrote to stderr so far."""
        self.stderr_file.seek(0)
        return self.stderr_file.read().decode(errors="replace")

    def terminate(self) -> None:
        """Ask the server to exit without waiting (stop() then waits), so that several servers
        can exit at once. slabcached gets SIGTERM; the reference memcached gets SIGKILL, as its
        exit path is not under test and it takes about a second to join its threads."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL if self.kind == "memcached" else signal.SIGTERM)

    def connect(self, timeout: float = 5.0) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=timeout)

    def stop(self) -> None:
        stop_process(self.proc)


def stop_process(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    """Stop a child: `sig`, up to 5 s to exit, then SIGKILL."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


class RawConn:
    """A minimal text-protocol connection to 127.0.0.1:`port`, independent of every client
    library under test: send bytes, read CRLF-terminated lines or exact byte counts."""

    def __init__(self, port: int, timeout: float = 5.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""

    def close(self) -> None:
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> None:
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise ConnectionError(f"server closed the connection; unread: {self.buf[:200]!r}")
        self.buf += chunk

    def line(self) -> bytes:
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data
