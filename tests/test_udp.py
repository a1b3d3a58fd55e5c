"""UDP (`-U PORT`): memcached's 8-byte frame header, one datagram per request, replies cut
into datagrams of at most 1,400 bytes; run against slabcached and Debian's memcached alike."""

import socket
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
