"""`stats hotkeys`: the most requested keys of the last minute or so, hottest first.

A skewed (zipf) load over two connections (so both workers' sketches are merged) must put
its most requested key first, with an estimated rate of the right size; -X turns the
listing off. slabcached only.
"""

from __future__ import annotations

import random
import re
import struct
import time

import pytest

from slabtest import TARGET, RawConn

pytestmark = pytest.mark.skipif(TARGET == "memcached", reason="slabcached's own command")


def hotkeys(port: int) -> list[tuple[str, float]]:
    with RawConn(port) as c:
        c.send(b"stats hotkeys\r\n")
        rows = []
        while (line := c.line()) != b"END":
            m = re.fullmatch(rb"STAT (\S+) (\d+\.\d)", line)
            assert m, line
            rows.append((m.group(1).decode(), float(m.group(2))))
        return rows


def zipf_keys(n_keys: int, n_requests: int, s: float, seed: int) -> list[int]:
    weights = [1 / (i + 1) ** s for i in range(n_keys)]
    return random.Random(seed).choices(range(n_keys), weights=weights, k=n_requests)


def pipelined_gets(conn: RawConn, keys: list[int], batch: int = 500) -> None:
    for start in range(0, len(keys), batch):
        chunk = keys[start:start + batch]
        conn.send(b"".join(b"get zipf:%d\r\n" % k for k in chunk))
        for _ in chunk:
            line = conn.line()
            if line.startswith(b"VALUE"):
                conn.exact(int(line.split()[3]) + 2)
                line = conn.line()
            assert line == b"END"


def test_the_hottest_key_of_a_zipf_load_comes_first(start_server):
    srv = start_server(["-m", "64", "-t", "2"])
    n = 40_000
    started = time.monotonic()
    with RawConn(srv.port) as a, RawConn(srv.port) as b:
        a.send(b"set zipf:0 0 0 1\r\nx\r\n")
        assert a.line() == b"STORED"
        pipelined_gets(a, zipf_keys(500, n // 2, 1.1, seed=1))
        pipelined_gets(b, zipf_keys(500, n // 2, 1.1, seed=2))
    elapsed = max(time.monotonic() - started, 1.0)
    rows = hotkeys(srv.port)
    assert 1 <= len(rows) <= 20
    assert rows[0][0] == "zipf:0", rows[:5]
    rates = [r for _, r in rows]
    assert rates == sorted(rates, reverse=True)
    assert [k for k, _ in rows[:3]].count("zipf:0") == 1
    # Key 0 takes about 20 % of this load. The rate is averaged over the seconds the
    # sketch has counted (at least one), so only its order of magnitude is checked.
    share = 1 / sum(1 / (i + 1) ** 1.1 for i in range(500))
    assert rows[0][1] > 0.2 * share * n / (elapsed + 2)
    assert rows[0][1] < 5 * share * n


def test_binary_keys_and_the_binary_stat_group(start_server):
    srv = start_server(["-m", "64", "-t", "1"])
    with RawConn(srv.port) as c:
        # Binary GetK of a key with a space in it, 3000 times, pipelined.
        key = b"bin key"
        packet = struct.pack(">BBHBBHIIQ", 0x80, 0x0C, len(key), 0, 0, 0, len(key), 0, 0) + key
        c.send(packet * 3000)
        for _ in range(3000):
            header = c.exact(24)
            c.exact(struct.unpack(">I", header[8:12])[0])
        # Binary Stat "hotkeys".
        group = b"hotkeys"
        c.send(struct.pack(">BBHBBHIIQ", 0x80, 0x10, len(group), 0, 0, 0, len(group), 0, 0) + group)
        names = []
        while True:
            header = c.exact(24)
            key_len = struct.unpack(">H", header[2:4])[0]
            body = c.exact(struct.unpack(">I", header[8:12])[0])
            if key_len == 0:
                break
            names.append(body[:key_len])
    assert names[:1] == [b"bin%20key"]


def test_x_turns_hot_keys_off(start_server):
    srv = start_server(["-m", "64", "-t", "1", "-X"])
    with RawConn(srv.port) as c:
        c.send(b"get k\r\n" * 1000)
        for _ in range(1000):
            assert c.line() == b"END"
        c.send(b"stats hotkeys\r\n")
        assert c.line() == b"STAT hotkeys_status disabled"
        assert c.line() == b"END"


def test_meta_commands_count_their_keys(start_server):
    srv = start_server(["-m", "64", "-t", "1"])
    with RawConn(srv.port) as c:
        c.send(b"ms metakey 1 T0\r\nx\r\n")
        assert c.line() == b"HD"
        c.send(b"mg metakey v\r\n" * 3000 + b"mg other v\r\n" * 300)
        for _ in range(3000):
            assert c.line() == b"VA 1"
            assert c.line() == b"x"
        for _ in range(300):
            assert c.line() == b"EN"
    rows = hotkeys(srv.port)
    assert rows[0][0] == "metakey", rows
