"""Memory no client can take: careless and hostile clients against the selected server
(slabcached, or memcached with SLABCACHED_TARGET=memcached), each with a bound on the
server's resident set (VmRSS from /proc/<pid>/status).

- a pipelined multi-get of large values from a client that never reads: RSS grows by at
  most 16 MB, and another client on the same worker (-t 1) is answered within 100 ms;
- 200 connections that each send 900 KB of a 1 MB value and pause: RSS stays within
  -m x 1.05 + 16 MB;
- 500 connections that sent half a command: at most 8 KB of RSS each.
"""

import socket
import time

from slabtest import RawConn, TARGET

MB = 1 << 20


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def fill(port: int, keys: list[bytes], size: int) -> None:
    """Store `size`-byte values under `keys`, pipelined, and check every reply."""
    value = b"v" * size
    with RawConn(port, timeout=30) as c:
        c.send(b"".join(b"set %s 0 0 %d noreply\r\n%s\r\n" % (k, size, value) for k in keys))
        c.send(b"mn\r\n")
        assert c.line() == b"MN"


def test_multiget_to_a_client_that_does_not_read(start_server):
    srv = start_server(["-m", "128", "-t", "1"])
    keys = [b"big%d" % i for i in range(100)]
    fill(srv.port, keys, 512 * 1024)
    before = rss_kb(srv.pid)
    hog = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
    hog.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    line = b"get " + b" ".join(keys) + b"\r\n"
    hog.setblocking(False)
    request = line * 50
    sent = 0
    worst = 0.0
    peak = before
    with RawConn(srv.port, timeout=5) as other:
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            try:
                sent += hog.send(request[sent:])
            except BlockingIOError:
                pass
            start = time.monotonic()
            other.send(b"mn\r\n")
            assert other.line() == b"MN"
            worst = max(worst, time.monotonic() - start)
            peak = max(peak, rss_kb(srv.pid))
            time.sleep(0.05)
    hog.close()
    growth_mb = (peak - before) / 1024
    print(f"{TARGET}: multi-get hog: RSS growth {growth_mb:.1f} MB, worst other-client latency "
          f"{worst * 1000:.1f} ms")
    assert growth_mb <= 16
    assert worst <= 0.1
