"""Memory no client can take: careless and hostile clients against the selected server
(slabcached, or memcached with SLABCACHED_TARGET=memcached), each with a bound on the
server's resident set (VmRSS from /proc/<pid>/status).

- a pipelined multi-get of large values from a client that never reads: RSS grows by at
  most 16 MB, and another client on the same worker (-t 1) is answered within 100 ms;
- 200 connections that each send 900 KB of a 1 MB value and pause: RSS stays within
  -m x 1.05 + 16 MB;
- 500 connections that sent half a command: at most 8 KB of RSS each;
- half-closed clients get every reply and their connections close;
- (slabcached) an append over the read budget is refused and swallowed (large set, add,
  replace and cas values go straight into the cache instead: tests/test_intake.py).
"""

import socket
import struct
import time

import pytest

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


def test_values_that_arrive_slowly(start_server):
    limit_mb = 64
    srv = start_server(["-m", str(limit_mb), "-t", "2", "-c", "1024"])
    socks = []
    part = b"x" * (900 * 1024)
    try:
        for i in range(200):
            s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
            s.setblocking(False)
            socks.append([s, b"set slow%d 0 0 1000000\r\n" % i + part])
        # Push every connection's 900 KB as far as the server takes it.
        deadline = time.monotonic() + 20
        while any(buf for _, buf in socks) and time.monotonic() < deadline:
            progress = False
            for entry in socks:
                s, buf = entry
                if not buf:
                    continue
                try:
                    n = s.send(buf[:256 * 1024])
                    entry[1] = buf[n:]
                    progress = progress or n > 0
                except BlockingIOError:
                    pass
            if not progress:
                time.sleep(0.01)
        time.sleep(0.5)
        rss_mb = rss_kb(srv.pid) / 1024
        unsent = sum(len(buf) for _, buf in socks)
        print(f"{TARGET}: 200 partial 1 MB values: RSS {rss_mb:.1f} MB with -m {limit_mb} "
              f"({unsent / MB:.1f} MB not accepted)")
        assert unsent == 0, "the server stopped reading partial values"
        assert rss_mb <= limit_mb * 1.05 + 16
        # The server still serves, and answers every connection once its value completes.
        with RawConn(srv.port) as c:
            c.send(b"set after 0 0 2\r\nok\r\nget after\r\n")
            assert c.line() == b"STORED"
            assert c.line() == b"VALUE after 0 2"
        for s, _ in socks[:20]:
            s.setblocking(True)
            s.settimeout(10)
            s.sendall(b"y" * (1000000 - len(part)) + b"\r\n")
            reply = s.recv(100)
            # Refused when the value is announced (slabcached, and memcached when it cannot
            # allocate the item) or while it arrives (memcached's chunked items).
            assert reply in (b"STORED\r\n", b"SERVER_ERROR out of memory storing object\r\n",
                             b"SERVER_ERROR Out of memory during read\r\n"), reply
    finally:
        for s, _ in socks:
            s.close()


def test_idle_connections_are_cheap(start_server):
    srv = start_server(["-m", "64", "-t", "2", "-c", "2048"])
    with RawConn(srv.port) as c:  # warm up: a worker's first requests allocate
        c.send(b"set k 0 0 1\r\nx\r\nget k\r\n")
        assert c.line() == b"STORED"
    time.sleep(0.2)
    before = rss_kb(srv.pid)
    socks = []
    try:
        for i in range(500):
            s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
            s.sendall(b"set half%d 0 0 10\r\nhal" % i)
            socks.append(s)
        time.sleep(1)
        per_conn_kb = (rss_kb(srv.pid) - before) / 500
        print(f"{TARGET}: 500 idle connections with half a command: {per_conn_kb:.1f} KB each")
        assert per_conn_kb <= 8
        # They are still served once they finish.
        socks[0].sendall(b"f-done!\r\n")
        assert socks[0].recv(100) == b"STORED\r\n"
    finally:
        for s in socks:
            s.close()


def curr_connections(port: int) -> int:
    with RawConn(port) as c:
        c.send(b"stats\r\n")
        while True:
            line = c.line()
            if line.startswith(b"STAT curr_connections "):
                return int(line.split()[2])


def test_half_closed_clients_get_every_reply_and_are_closed(start_server):
    srv = start_server(["-m", "64", "-t", "1"])
    fill(srv.port, [b"h%d" % i for i in range(20)], 100 * 1024)
    base = curr_connections(srv.port)
    for n in (1, 20):
        for _ in range(20):
            s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
            s.sendall(b"get " + b" ".join(b"h%d" % i for i in range(n)) + b"\r\n")
            s.shutdown(socket.SHUT_WR)
            got = b""
            while chunk := s.recv(1 << 20):
                got += chunk
            s.close()
            assert got.count(b"VALUE ") == n and got.endswith(b"END\r\n")
    deadline = time.monotonic() + 5
    while curr_connections(srv.port) > base and time.monotonic() < deadline:
        time.sleep(0.1)
    assert curr_connections(srv.port) == base


def test_a_value_over_the_read_budget_is_refused_and_swallowed(start_server):
    """slabcached's budget for partial values (-o read_buf_mem_limit=1: 1 MB), which holds
    what a store cannot write straight into an item (append and prepend, see
    tests/test_intake.py): while one connection holds most of it, a second large append is
    refused as memcached refuses an item it cannot allocate, its bytes are swallowed, and the
    connection goes on; a large set meanwhile goes into the cache and is stored. memcached
    allocates items from -m and has no such budget, so this runs against slabcached only."""
    if TARGET == "memcached":
        pytest.skip("slabcached's read budget")
    srv = start_server(["-m", "64", "-t", "1", "-o", "read_buf_mem_limit=1"])
    with RawConn(srv.port, timeout=10) as c:
        c.send(b"set held 0 0 1\r\nh\r\nset other 0 0 1\r\no\r\n")
        assert c.line() == b"STORED" and c.line() == b"STORED"
    holder = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    holder.sendall(b"append held 0 0 900000\r\n" + b"h" * 500000)
    time.sleep(0.3)
    with RawConn(srv.port, timeout=10) as c:
        c.send(b"append other 0 0 600000\r\n" + b"o" * 600000 + b"\r\nget other\r\n")
        assert c.line() == b"SERVER_ERROR out of memory storing object"
        assert c.line() == b"VALUE other 0 1"
        c.line()
        assert c.line() == b"END"
        c.send(b"prepend other 0 0 600000 noreply\r\n" + b"o" * 600000 + b"\r\nmn\r\n")
        assert c.line() == b"MN"
        c.send(b"set big 0 0 600000\r\n" + b"s" * 600000 + b"\r\n")
        assert c.line() == b"STORED"
        # binary Append: status 0x82, then the connection still answers.
        key, value = b"other", b"b" * 600000
        body = key + value
        frame = struct.pack(">BBHBBHIIQ", 0x80, 0x0e, len(key), 0, 0, 0, len(body), 9, 0) + body
        noop = struct.pack(">BBHBBHIIQ", 0x80, 0x0a, 0, 0, 0, 0, 0, 10, 0)
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as b:
        b.sendall(frame + noop)
        r = RawConn.__new__(RawConn)
        r.sock, r.buf = b, b""
        head = r.exact(24)
        assert head[1] == 0x0e and struct.unpack(">H", head[6:8])[0] == 0x82
        r.exact(struct.unpack(">I", head[8:12])[0])
        assert r.exact(24)[1] == 0x0a
    # Once the holder completes, the budget is back and large appends store again.
    holder.sendall(b"h" * 400000 + b"\r\n")
    assert holder.recv(100) == b"STORED\r\n"
    holder.close()
    with RawConn(srv.port, timeout=10) as c:
        c.send(b"append other 0 0 600000\r\n" + b"o" * 600000 + b"\r\n")
        assert c.line() == b"STORED"


def test_large_values_to_a_client_that_does_not_read(start_server):
    """One 6 MB value (-I 8m) asked for 40 times by a client that never reads: the server's
    RSS grows by at most 16 MB (a reply is not copied out whole), and a client that reads
    gets the value intact."""
    srv = start_server(["-m", "64", "-t", "1", "-I", "8m"])
    value = bytes(i % 251 for i in range(6 * MB))
    with RawConn(srv.port, timeout=30) as c:
        c.send(b"set huge 0 0 %d\r\n%s\r\n" % (len(value), value))
        assert c.line() == b"STORED"
    time.sleep(0.2)
    before = rss_kb(srv.pid)
    hog = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
    hog.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    hog.sendall(b"get huge\r\n" * 40)
    peak = before
    with RawConn(srv.port, timeout=30) as c:
        for _ in range(3):
            c.send(b"get huge\r\n")
            assert c.line() == b"VALUE huge 0 %d" % len(value)
            assert c.exact(len(value) + 2) == value + b"\r\n"
            assert c.line() == b"END"
            peak = max(peak, rss_kb(srv.pid))
            time.sleep(0.3)
    hog.close()
    growth_mb = (peak - before) / 1024
    print(f"{TARGET}: 6 MB value x 40 to a non-reader: RSS growth {growth_mb:.1f} MB")
    assert growth_mb <= 16


def test_values_near_a_large_item_limit_arrive_whole(start_server):
    """3.9 MB values with -I 4m, each on a new connection after another request: the read
    buffer is sized to the store, and its last bytes never make it grow past the limit."""
    srv = start_server(["-m", "128", "-I", "4m", "-t", "2"])
    value = bytes(i % 253 for i in range(3_900_000))
    for _ in range(10):
        with RawConn(srv.port, timeout=20) as c:
            c.send(b"version\r\n")
            assert c.line().startswith(b"VERSION")
            c.send(b"set large 7 0 %d\r\n%s\r\n" % (len(value), value))
            assert c.line() == b"STORED"
