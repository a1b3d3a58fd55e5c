"""An ElastiCache auto-discovery client, written for these tests.

It reads the reply the way the AWS ElastiCache Cluster Clients do: the `CONFIG cluster 0 <n>`
line, exactly <n> bytes of body, then `\\r\\n` and `END\\r\\n`; the body, trimmed, is two lines
(split on an optional CR before each LF): a version (a signed 64-bit integer) and a
whitespace-separated list of `host|ip|port` entries, where an entry needs a non-empty host and
two `|`; the ip is used when present, else the host. A server that answers `ERROR` to
`config get` (an older engine) is asked `get AmazonElastiCache:cluster` instead. A poller applies
a list only when its version is strictly higher than the one it holds.

Anything that deviates (a count that does not match, a missing END, a third line) raises
DiscoveryError: these tests want the server's reply to be exact, not merely parseable.
"""

import socket
import threading
import time
from dataclasses import dataclass, field

CONFIG_COMMAND = b"config get cluster\r\n"
LEGACY_COMMAND = b"get AmazonElastiCache:cluster\r\n"
MAX_LONG = 2**63 - 1


class DiscoveryError(Exception):
    """The endpoint's reply is not a valid cluster config."""


@dataclass(frozen=True)
class Node:
    host: str
    ip: str
    port: int

    @property
    def address(self) -> str:
        """Where a client connects: the ip when given, else the hostname."""
        return f"{self.ip or self.host}:{self.port}"


@dataclass(frozen=True)
class ClusterInfo:
    version: int
    nodes: tuple[Node, ...]
    raw: bytes = field(compare=False, default=b"")

    @property
    def addresses(self) -> list[str]:
        return [n.address for n in self.nodes]


class _Reader:
    """Exact-length reads and CRLF lines over a socket."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.buf = b""
        self.seen = b""

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise DiscoveryError(f"connection closed after {self.seen + self.buf!r}")
        self.buf += chunk

    def line(self) -> bytes:
        while b"\r\n" not in self.buf:
            if len(self.buf) > 1 << 20:
                raise DiscoveryError("reply line too long")
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        self.seen += line + b"\r\n"
        return line

    def exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        self.seen += data
        return data


def parse_body(body: bytes) -> tuple[int, tuple[Node, ...]]:
    """The cluster config body -> (version, nodes), with the AWS clients' rules."""
    text = body.decode("ascii", errors="strict").strip()
    if not text:
        raise DiscoveryError("empty configuration")
    lines = text.replace("\r\n", "\n").split("\n")
    if len(lines) != 2:
        raise DiscoveryError(f"expected 2 lines, got {len(lines)}: {body!r}")
    version_text = lines[0].strip()
    if not version_text or not version_text.lstrip("-").isdigit():
        raise DiscoveryError(f"bad version {version_text!r}")
    version = int(version_text)
    if not -MAX_LONG - 1 <= version <= MAX_LONG:
        raise DiscoveryError(f"version {version} does not fit a long")
    host_list = lines[1].strip()
    if not host_list:
        raise DiscoveryError("empty host list")
    nodes = []
    for entry in host_list.split():
        first, last = entry.find("|"), entry.rfind("|")
        if first < 1 or first == last:
            raise DiscoveryError(f"bad node entry {entry!r}")
        host = entry[:first].strip()
        ip = entry[first + 1:last].strip()
        port_text = entry[last + 1:].strip()
        if not port_text.isdigit():
            raise DiscoveryError(f"bad port in {entry!r}")
        nodes.append(Node(host, ip, int(port_text)))
    return version, tuple(nodes)


def _read_block(reader: _Reader, header: bytes, keyword: bytes) -> bytes:
    """After a `CONFIG cluster <flags> <n>` or `VALUE <key> <flags> <n>` header line: the body."""
    parts = header.split(b" ")
    if len(parts) != 4 or parts[0] != keyword:
        raise DiscoveryError(f"unexpected reply line {header!r}")
    if parts[2] != b"0":
        raise DiscoveryError(f"flags {parts[2]!r}, expected 0")
    if not parts[3].isdigit():
        raise DiscoveryError(f"bad length in {header!r}")
    body = reader.exact(int(parts[3]))
    if reader.exact(2) != b"\r\n":
        raise DiscoveryError(f"body not followed by CRLF: the count {int(parts[3])} is wrong ({reader.seen!r})")
    end = reader.line()
    if end != b"END":
        raise DiscoveryError(f"expected END, got {end!r}")
    return body


def fetch_raw(host: str, port: int, timeout: float = 2.0, legacy: bool = False) -> tuple[bytes, bytes]:
    """(body, whole reply) from one endpoint; falls back to the legacy key on ERROR."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        reader = _Reader(sock)
        if not legacy:
            sock.sendall(CONFIG_COMMAND)
            header = reader.line()
            if header == b"ERROR":
                legacy = True
            else:
                return _read_block(reader, header, b"CONFIG"), reader.seen
        reader.seen = b""
        sock.sendall(LEGACY_COMMAND)
        header = reader.line()
        if header == b"END":
            raise DiscoveryError("no cluster config under the legacy key")
        return _read_block(reader, header, b"VALUE"), reader.seen


def discover(host: str, port: int, timeout: float = 2.0, legacy: bool = False) -> ClusterInfo:
    """Ask one configuration endpoint for the cluster's nodes."""
    body, raw = fetch_raw(host, port, timeout=timeout, legacy=legacy)
    version, nodes = parse_body(body)
    return ClusterInfo(version, nodes, raw)


class Poller:
    """Polls an endpoint every `interval` seconds in a thread, like the AWS clients' poller; the
    node list changes only when a reply's version is strictly higher than the current one."""

    def __init__(self, host: str, port: int, interval: float = 0.05):
        self.host, self.port, self.interval = host, port, interval
        self.current: ClusterInfo | None = None
        self.applied: list[int] = []   # versions applied, in order
        self.ignored: list[int] = []   # versions seen but not higher
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def offer(self, info: ClusterInfo) -> bool:
        """Apply `info` if its version is strictly higher; True when applied."""
        with self._changed:
            if self.current is not None and info.version <= self.current.version:
                if info.version < self.current.version or info.nodes != self.current.nodes:
                    self.ignored.append(info.version)
                return False
            self.current = info
            self.applied.append(info.version)
            self._changed.notify_all()
            return True

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.offer(discover(self.host, self.port))
            except (OSError, DiscoveryError) as e:
                self.errors.append(str(e))
            self._stop.wait(self.interval)

    def start(self) -> "Poller":
        self._thread.start()
        return self

    def wait_for(self, predicate, timeout: float) -> ClusterInfo | None:
        """The current config once `predicate(config)` holds, or None after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self.current is None or not predicate(self.current):
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._changed.wait(left)
            return self.current

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def __enter__(self) -> "Poller":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
