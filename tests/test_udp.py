"""UDP (`-U PORT`): memcached's 8-byte frame header, one datagram per request, replies cut
into datagrams of at most 1,400 bytes; run against slabcached and Debian's memcached alike."""

import socket
import time
import struct

import pytest

from slabtest import RawConn

KINDS = ["slabcached", "memcached"]


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def udp_server(start_server, kind):
    port = free_udp_port()
    return start_server(["-U", str(port)], kind=kind), port


def ask(port: int, request_id: int, payload: bytes, timeout: float = 3.0) -> tuple[bytes, list]:
    """Send one request datagram; reassemble the reply by sequence number."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        u.settimeout(timeout)
        u.sendto(struct.pack(">HHHH", request_id, 0, 1, 0) + payload, ("127.0.0.1", port))
        parts, headers, total = {}, [], None
        while total is None or len(parts) < total:
            data, _ = u.recvfrom(65536)
            rid, seq, count, reserved = struct.unpack(">HHHH", data[:8])
            headers.append((rid, seq, count, reserved, len(data)))
            total = count
            parts[seq] = data[8:]
        return b"".join(parts[i] for i in range(total)), headers


@pytest.mark.parametrize("kind", KINDS)
def test_small_get_is_one_datagram_with_the_request_id(start_server, kind):
    srv, port = udp_server(start_server, kind)
    c = RawConn(srv.port)
    c.send(b"set foo 0 0 6\r\nfooval\r\n")
    assert c.line() == b"STORED"
    body, headers = ask(port, 0xA1, b"get foo\r\n")
    assert body == b"VALUE foo 0 6\r\nfooval\r\nEND\r\n"
    assert headers == [(0xA1, 0, 1, 0, 8 + len(body))]


@pytest.mark.parametrize("kind", KINDS)
def test_a_large_value_spans_numbered_datagrams_of_1400_bytes(start_server, kind):
    srv, port = udp_server(start_server, kind)
    value = bytes(65 + i % 26 for i in range(20000))
    c = RawConn(srv.port)
    c.send(b"set big 0 0 20000\r\n" + value + b"\r\n")
    assert c.line() == b"STORED"
    body, headers = ask(port, 7, b"get big\r\n")
    assert body == b"VALUE big 0 20000\r\n" + value + b"\r\nEND\r\n"
    assert {h[0] for h in headers} == {7}
    assert sorted(h[1] for h in headers) == list(range(len(headers)))
    assert all(h[2] == len(headers) for h in headers)
    assert max(h[4] for h in headers) == 1400


@pytest.mark.parametrize("kind", KINDS)
def test_store_and_binary_over_udp(start_server, kind):
    srv, port = udp_server(start_server, kind)
    body, _ = ask(port, 1, b"set k 5 0 2\r\nhi\r\n")
    assert body == b"STORED\r\n"
    body, _ = ask(port, 2, b"incr n 1\r\n")
    assert body == b"NOT_FOUND\r\n"
    # A binary GetK: magic 0x80, opcode 0x0c, key length 1.
    frame = struct.pack(">BBHBBHIIQ", 0x80, 0x0C, 1, 0, 0, 0, 1, 0xBEEF, 0) + b"k"
    body, _ = ask(port, 3, frame)
    magic, opcode, keylen, extlen, _, status, total, opaque, _ = struct.unpack(">BBHBBHIIQ", body[:24])
    assert (magic, opcode, status, opaque) == (0x81, 0x0C, 0, 0xBEEF)
    assert body[24:] == struct.pack(">I", 5) + b"k" + b"hi"


@pytest.mark.parametrize("kind", KINDS)
def test_multi_datagram_requests_are_dropped_and_stats_conns_lists_the_socket(start_server, kind):
    srv, port = udp_server(start_server, kind)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        u.settimeout(0.5)
        u.sendto(struct.pack(">HHHH", 9, 0, 2, 0) + b"get foo\r\n", ("127.0.0.1", port))
        with pytest.raises(socket.timeout):
            u.recvfrom(65536)
    c = RawConn(srv.port)
    c.send(b"stats conns\r\n")
    lines = []
    while (line := c.line()) != b"END":
        lines.append(line.decode())
    assert any(line.endswith(f":addr udp:127.0.0.1:{port}") for line in lines), lines


def replies(port: int, request_id: int, payload: bytes, wait: float = 0.5) -> list[tuple]:
    """Every datagram answering one request, in arrival order: (seq, count, body)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        u.settimeout(wait)
        u.sendto(struct.pack(">HHHH", request_id, 0, 1, 0) + payload, ("127.0.0.1", port))
        got = []
        try:
            while True:
                data, _ = u.recvfrom(65536)
                rid, seq, count, _ = struct.unpack(">HHHH", data[:8])
                assert rid == request_id
                got.append((seq, count, data[8:]))
        except socket.timeout:
            return got


@pytest.mark.parametrize("kind", KINDS)
def test_each_key_and_command_is_its_own_message(start_server, kind):
    """memcached numbers the datagrams of each response on its own: a multi-get sends one
    message per key found (the last carrying END), misses before the first hit as one empty
    header, and every command of the datagram its own message."""
    srv, port = udp_server(start_server, kind)
    c = RawConn(srv.port)
    c.send(b"set a 0 0 1\r\nA\r\nset b 0 0 3000\r\n" + b"B" * 3000 + b"\r\n")
    assert (c.line(), c.line()) == (b"STORED", b"STORED")
    b_reply = b"VALUE b 0 3000\r\n" + b"B" * 3000 + b"\r\n"
    got = replies(port, 1, b"get a b\r\nversion\r\n")
    assert [(seq, count) for seq, count, _ in got] == [(0, 1), (0, 3), (1, 3), (2, 3), (0, 1)]
    assert got[0][2] == b"VALUE a 0 1\r\nA\r\n"
    assert b"".join(body for _, _, body in got[1:4]) == b_reply + b"END\r\n"
    assert got[4][2].startswith(b"VERSION ")
    # Misses before the first hit: one bare header; after it: nothing; a last miss: END alone.
    got = replies(port, 2, b"get x y a z b w\r\n")
    assert [(seq, count) for seq, count, _ in got] == [(0, 0), (0, 1), (0, 3), (1, 3), (2, 3), (0, 1)]
    assert got[0][2] == b"" and got[1][2] == b"VALUE a 0 1\r\nA\r\n" and got[5][2] == b"END\r\n"


@pytest.mark.parametrize("kind", KINDS)
def test_a_refused_store_cut_off_by_the_datagram_gets_no_reply(start_server, kind):
    srv, port = udp_server(start_server, kind)
    assert replies(port, 3, b"set y 0 0 2000000\r\nabc") == []
    if kind == "memcached":
        return  # memcached then takes its next datagrams for the rest of that data block
    # Each datagram stands alone here: the next request is served.
    assert replies(port, 4, b"get y\r\n") == [(0, 1, b"END\r\n")]


@pytest.mark.parametrize("kind", KINDS)
def test_a_datagram_asking_for_one_value_many_times_is_streamed(start_server, kind):
    """One 2,000-key datagram naming the same 200 KB value asks for 400 MB of replies. They
    go out one value at a time: the server's peak memory stays far below that."""
    srv, port = udp_server(start_server, kind)
    value = b"v" * 200_000
    c = RawConn(srv.port)
    c.send(b"set big 0 0 %d\r\n" % len(value) + value + b"\r\n")
    assert c.line() == b"STORED"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        u.sendto(struct.pack(">HHHH", 9, 0, 1, 0) + b"get" + b" big" * 2000 + b"\r\n", ("127.0.0.1", port))
        # Read nothing: the replies overflow this socket and are dropped, as UDP does.
        time.sleep(0.3)
    c.send(b"version\r\n")
    assert c.line().startswith(b"VERSION ")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        c.send(b"stats\r\n")
        stats = {}
        while (line := c.line()) != b"END":
            _, name, val = line.decode().split(" ", 2)
            stats[name] = val
        if int(stats["bytes_written"]) > 300_000_000:
            break
        time.sleep(0.2)
    with open(f"/proc/{srv.pid}/status") as f:
        peak_kb = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    assert peak_kb < 150_000, f"peak RSS {peak_kb} kB"
