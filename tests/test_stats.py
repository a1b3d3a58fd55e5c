"""Stats parity with memcached 1.6.18, run side by side with Debian's /usr/bin/memcached.

- Field names: for `stats`, `stats settings`, `stats items`, `stats slabs` and `stats conns`,
  both servers start with the same flags and the same few commands; slabcached must list
  memcached's fields in memcached's order. Tolerated: fields that other features add (listed in
  OTHER_FEATURES, and only while slabcached lacks them; once present they are checked in
  place), and slabcached's own fields (SLABCACHED_EXTRAS), which must come after memcached's.
- `stats detail on|off|dump` and `-D`: the same requests give the same PREFIX lines.
- `stats conns`: each connection's state name is the one memcached shows for it.
"""

import os
import re
import socket
import struct
import subprocess
import time

import pytest

from slabtest import OTHER_FEATURES, SLABCACHED_EXTRAS, RawConn, server_binary, stop_process

FLAG_SETS = [
    pytest.param([], id="defaults"),
    # memcached's t/stats.t
    pytest.param(["-I", "1024", "-o", "slab_chunk_max=1024,no_lru_crawler,no_lru_maintainer"],
                 id="stats.t"),
    pytest.param(["-o", "idle_timeout=30,temporary_ttl=60"], id="idle-timeout,temp-lru"),
    pytest.param(["-o", "no_slab_reassign,no_lru_crawler"], id="no-reassign"),
    pytest.param(["-C", "-D", "/"], id="no-cas,detail"),
]


def stat_names(conn: RawConn, group: str) -> list[str]:
    """The field names of `stats <group>` in order, class ids and descriptors replaced by #."""
    conn.send(f"stats {group}".strip().encode() + b"\r\n")
    names = []
    while (line := conn.line()) != b"END":
        _, name, _ = line.decode().split(" ", 2)
        names.append(re.sub(r"^(items:)?\d+:", lambda m: (m.group(1) or "") + "#:", name))
    return names


def exercise(conn: RawConn) -> None:
    """One item in the smallest class, a hit and a miss: every per-class group lists a class."""
    conn.send(b"set a 0 0 1\r\nx\r\n")
    assert conn.line() == b"STORED"
    conn.send(b"get a b\r\n")
    assert conn.line().startswith(b"VALUE a")
    assert conn.line() == b"x"
    assert conn.line() == b"END"


def expected_order(mc: list[str], sc: list[str], group: str) -> list[str]:
    """memcached's names minus other features' fields slabcached does not have yet, then
    slabcached's extras in the order it lists them."""
    present = set(sc)
    base = [n for n in mc if n not in OTHER_FEATURES[group] or n in present]
    return base + [n for n in sc if n in SLABCACHED_EXTRAS[group]]


@pytest.mark.parametrize("flags", FLAG_SETS)
def test_field_names_and_order_match_memcached(start_server, flags):
    sc_srv = start_server(flags)
    mc_srv = start_server(flags, kind="memcached")
    groups = ["stats", "settings", "items", "slabs", "conns"]
    names = {}
    for srv in (sc_srv, mc_srv):
        with RawConn(srv.port) as conn:
            exercise(conn)
            names[srv.kind] = {g: stat_names(conn, "" if g == "stats" else g) for g in groups}
    mc, sc = names["memcached"], names[sc_srv.kind]
    for group in groups:
        assert sc[group] == expected_order(mc[group], sc[group], group), (
            f"stats {group} with {flags}:\n  memcached: {mc[group]}\n  slabcached: {sc[group]}")


def test_general_stats_count_is_memcacheds_less_other_features(start_server):
    """memcached's t/stats.t counts 83 general fields with its flags; slabcached lists all but
    the other features' rows it does not have yet."""
    flags = ["-I", "1024", "-o", "slab_chunk_max=1024,no_lru_crawler,no_lru_maintainer"]
    with RawConn(start_server(flags).port) as conn:
        names = stat_names(conn, "")
    missing = OTHER_FEATURES["stats"] - set(names) - {
        "ssl_new_sessions", "ssl_handshake_errors", "time_since_server_cert_refresh"}
    assert len(names) + len(missing) == 83, (len(names), sorted(missing))
    assert len(set(names)) == len(names)


# ------------------------------------------------------------------------------------------
# stats detail

def detail_dump(conn: RawConn) -> list[bytes]:
    conn.send(b"stats detail dump\r\n")
    lines = []
    while (line := conn.line()) != b"END":
        lines.append(line)
    return sorted(lines)


def detail_session(conn: RawConn) -> list[list[bytes]]:
    """A fixed set of requests; the dump after each step."""
    dumps = []

    def cmd(data: bytes, replies: int = 1) -> None:
        conn.send(data)
        for _ in range(replies):
            while conn.line() not in (b"STORED", b"END", b"DELETED", b"NOT_FOUND", b"OK",
                                      b"NOT_STORED", b"EXISTS", b"TOUCHED", b"RESET"):
                pass

    dumps.append(detail_dump(conn))
    cmd(b"stats detail on\r\n")
    cmd(b"set user:1 0 0 2\r\nab\r\nadd user:1 0 0 1\r\nx\r\nset sess:9 0 0 1\r\nx\r\n", 3)
    cmd(b"set plain 0 0 1\r\nx\r\nappend user:1 0 0 1\r\nc\r\n", 2)
    # refused as too large: counted all the same
    conn.send(b"set user:big 0 0 2000000\r\n" + b"x" * 2_000_000 + b"\r\n")
    assert conn.line() == b"SERVER_ERROR object too large for cache"
    dumps.append(detail_dump(conn))
    cmd(b"get user:1 user:2 sess:9 plain :odd\r\n")
    cmd(b"gets user:1\r\ngat 100 user:3\r\n", 2)
    dumps.append(detail_dump(conn))
    cmd(b"delete user:1\r\ndelete user:1\r\ndelete plain\r\n", 3)
    cmd(b"incr user:5 1\r\ntouch user:1 10\r\n", 2)
    # meta commands are not counted by prefix
    conn.send(b"ms meta:1 1\r\nx\r\nmg meta:1 v\r\nmd meta:1\r\n")
    for expected in (b"HD", b"VA 1", b"x", b"HD"):
        assert conn.line() == expected
    dumps.append(detail_dump(conn))
    cmd(b"stats detail off\r\n")
    cmd(b"get user:9\r\n")
    dumps.append(detail_dump(conn))
    cmd(b"stats reset\r\n")
    dumps.append(detail_dump(conn))
    return dumps


def test_stats_detail_matches_memcached(start_server):
    results = {}
    for kind in ("slabcached", "memcached"):
        srv = start_server([], kind=kind if kind == "memcached" else None)
        with RawConn(srv.port) as conn:
            results[kind] = detail_session(conn)
            conn.send(b"stats settings\r\n")
            settings = {}
            while (line := conn.line()) != b"END":
                _, k, v = line.decode().split(" ", 2)
                settings[k] = v
            assert settings["detail_enabled"] == "no"
    assert results["slabcached"] == results["memcached"]
    assert results["slabcached"][3] == sorted([
        b"PREFIX  get 1 hit 0 set 0 del 0",
        b"PREFIX sess get 1 hit 1 set 1 del 0",
        b"PREFIX user get 4 hit 2 set 4 del 2",
    ])


def test_dash_d_turns_detail_on_with_its_delimiter(start_server):
    for kind in ("slabcached", "memcached"):
        srv = start_server(["-D", "/"], kind=kind if kind == "memcached" else None)
        with RawConn(srv.port) as conn:
            conn.send(b"stats settings\r\n")
            settings = {}
            while (line := conn.line()) != b"END":
                _, k, v = line.decode().split(" ", 2)
                settings[k] = v
            assert (settings["detail_enabled"], settings["stat_key_prefix"]) == ("yes", "/")
            conn.send(b"set a/b 0 0 1\r\nx\r\nset a:b 0 0 1\r\nx\r\n")
            assert conn.line() == b"STORED" and conn.line() == b"STORED"
            assert detail_dump(conn) == [b"PREFIX a get 0 hit 0 set 1 del 0"], kind


def binary_stat(sock: socket.socket, key: bytes) -> list[tuple[bytes, bytes]]:
    sock.sendall(struct.pack(">BBHBBHIIQ", 0x80, 0x10, len(key), 0, 0, 0, len(key), 0, 0) + key)
    rows = []
    buf = b""
    while True:
        while len(buf) < 24:
            buf += sock.recv(65536)
        _, _, klen, elen, _, status, blen, _, _ = struct.unpack(">BBHBBHIIQ", buf[:24])
        while len(buf) < 24 + blen:
            buf += sock.recv(65536)
        body, buf = buf[24:24 + blen], buf[24 + blen:]
        assert status == 0
        if klen == 0:
            return rows
        rows.append((body[elen:elen + klen], body[elen + klen:]))


def test_binary_detail_dump_matches_memcached(start_server):
    results = {}
    for kind in ("slabcached", "memcached"):
        srv = start_server([], kind=kind if kind == "memcached" else None)
        with RawConn(srv.port) as conn:
            conn.send(b"stats detail on\r\nset k:1 0 0 1\r\nx\r\nget k:1\r\n")
            for expected in (b"OK", b"STORED", b"VALUE k:1 0 1", b"x", b"END"):
                assert conn.line() == expected
        with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as sock:
            results[kind] = binary_stat(sock, b"detail dump")
    assert results["slabcached"] == results["memcached"] == [
        (b"detailed", b"PREFIX k get 1 hit 1 set 1 del 0\r\nEND\r\n")]


# ------------------------------------------------------------------------------------------
# stats conns

def conn_states(port: int) -> tuple[list[str], list[socket.socket]]:
    """Open connections in known states; the state names `stats conns` shows for them, in
    the order they were opened (the asking connection last)."""
    def open_with(data: bytes) -> socket.socket:
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        if data:
            s.sendall(data)
        return s

    socks = [
        open_with(b""),                                  # nothing sent
        open_with(b"get partial"),                       # half a command line
        open_with(b"set foo 0 0 6\r\nfo"),               # waiting for the data
        open_with(b"set foo 0 0 99999999\r\nfo"),        # refused, data being swallowed
        # binary set: header only, then header, extras and key but not the whole value
        open_with(struct.pack(">BBHBBHIIQ", 0x80, 0x01, 3, 8, 0, 0, 8 + 3 + 10, 0, 0)),
        open_with(struct.pack(">BBHBBHIIQ", 0x80, 0x01, 3, 8, 0, 0, 8 + 3 + 10, 0, 0)
                  + bytes(8) + b"key" + b"val"),
    ]
    done = open_with(b"version\r\n")                     # served, now idle
    done.recv(100)
    socks.append(done)
    time.sleep(0.5)
    asking = RawConn(port)
    asking.send(b"stats conns\r\n")
    by_fd: dict[str, dict[str, str]] = {}
    while (line := asking.line()) != b"END":
        _, name, value = line.decode().split(" ", 2)
        fd, field = name.split(":", 1)
        by_fd.setdefault(fd, {})[field] = value
    states = {}
    for fields in by_fd.values():
        if "listen_addr" in fields:
            states[fields["addr"]] = fields["state"]
    order = [f"tcp:127.0.0.1:{s.getsockname()[1]}" for s in socks]
    order.append(f"tcp:127.0.0.1:{asking.sock.getsockname()[1]}")
    listeners = [f for f in by_fd.values() if "listen_addr" not in f]
    assert [f["state"] for f in listeners] == ["conn_listening"]
    assert listeners[0]["addr"] == f"tcp:127.0.0.1:{port}"
    result = [states.get(a, "missing") for a in order]
    socks.append(asking.sock)
    return result, socks


def test_stats_conns_states_match_memcached(start_server):
    results = {}
    for kind in ("slabcached", "memcached"):
        srv = start_server([], kind=kind if kind == "memcached" else None)
        states, socks = conn_states(srv.port)
        results[kind] = states
        for s in socks:
            s.close()
    assert results["slabcached"] == results["memcached"] == [
        "conn_new_cmd", "conn_read", "conn_nread", "conn_swallow", "conn_read", "conn_nread",
        "conn_read", "conn_parse_cmd"]


def test_stats_conns_unix_socket(tmp_path):
    """A UNIX-socket server lists its socket as `unix:<path>`, listening and as each
    client's listen_addr (the fixture cannot start it: it probes a TCP port)."""
    path = tmp_path / "sock"
    proc = subprocess.Popen([server_binary("slabcached"), "-s", str(path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(5)
            s.connect(str(path))
            s.sendall(b"stats conns\r\n")
            data = b""
            while not data.endswith(b"END\r\n"):
                data += s.recv(65536)
    finally:
        stop_process(proc)
    text = data.decode()
    assert re.search(rf"STAT (\d+):addr unix:{re.escape(str(path))}\r\nSTAT \1:state "
                     r"conn_listening\r\n", text), text
    assert f":listen_addr unix:{path}\r\n" in text
    assert ":state conn_parse_cmd\r\n" in text


def test_items_age_is_the_oldest_items_seconds(start_server):
    """`age` (memcached-tool's Max_age): seconds since the item at the probation tail was
    written; 0 for a list that is empty."""
    srv = start_server([])
    with RawConn(srv.port) as conn:
        conn.send(b"set old 0 0 1\r\nx\r\n")
        assert conn.line() == b"STORED"
        time.sleep(2.2)
        conn.send(b"set new 0 0 1\r\ny\r\n")
        assert conn.line() == b"STORED"
        conn.send(b"stats items\r\n")
        items = {}
        while (line := conn.line()) != b"END":
            _, name, value = line.decode().split(" ", 2)
            items[name.split(":", 2)[2]] = int(value)
    assert items["number"] == 2
    assert 2 <= items["age"] <= 3, items
    assert items["age_warm"] == 0 and items["age_hot"] == 0


def stats_map(conn: RawConn, group: str) -> dict[str, int]:
    conn.send(f"stats {group}\r\n".encode())
    out = {}
    while (line := conn.line()) != b"END":
        _, name, value = line.decode().split(" ", 2)
        out[name] = int(value) if value.lstrip("-").isdigit() else value
    return out


# Bytes one item asks of its chunk beyond key and value: slabcached's 32-byte header (CAS
# included); memcached's 48-byte header, 8 bytes of CAS, the key's NUL and the value's CRLF.
ITEM_OVERHEAD = {"slabcached": 32, "memcached": 48 + 8 + 1 + 2}


@pytest.mark.parametrize("kind", ["slabcached", "memcached"])
def test_mem_requested_counts_each_linked_items_own_size(start_server, kind):
    """memcached's issue 42 was a mem_requested that drifted from the items stored. It must
    be exactly the sum of the linked items' sizes, and below what their chunks hold."""
    srv = start_server(["-o", "no_modern"], kind=kind)
    per_item = ITEM_OVERHEAD[kind] + len("key0") + 10
    with RawConn(srv.port) as c:
        for i in range(10):
            c.send(f"set key{i} 0 0 10\r\n{'B' * 10}\r\n".encode())
            assert c.line() == b"STORED"
        items, slabs = stats_map(c, "items"), stats_map(c, "slabs")
        assert items["items:1:mem_requested"] == 10 * per_item
        assert 10 * (len("key0") + 10) < items["items:1:mem_requested"] < 10 * slabs["1:chunk_size"]
        # An overwrite with a longer value and a delete move it by exactly their sizes.
        c.send(b"set key0 0 0 12\r\nBBBBBBBBBBBB\r\ndelete key1\r\n")
        assert (c.line(), c.line()) == (b"STORED", b"DELETED")
        assert stats_map(c, "items")["items:1:mem_requested"] == 9 * per_item + 2


@pytest.mark.parametrize("kind", ["slabcached", "memcached"])
def test_slab_sizes_option_sets_the_classes(start_server, kind):
    """`-o slab_sizes=100-200-300`: classes of 104 (rounded up to 8), 200 and 304 bytes, then
    one of slab_chunk_max; the growth factor no longer applies."""
    srv = start_server(["-o", "slab_sizes=100-200-300,slab_chunk_max=16384"], kind=kind)
    with RawConn(srv.port) as c:
        c.send(b"set small 0 0 20\r\n" + b"s" * 20 + b"\r\n")
        c.send(b"set big 0 0 10000\r\n" + b"b" * 10000 + b"\r\n")
        assert (c.line(), c.line()) == (b"STORED", b"STORED")
        slabs = stats_map(c, "slabs")
    sizes = {int(k.split(":")[0]): v for k, v in slabs.items() if k.endswith(":chunk_size")}
    assert sizes == {1: 104, 4: 16384}


@pytest.mark.parametrize("kind", ["slabcached", "memcached"])
@pytest.mark.parametrize(
    "sizes,message",
    [
        ("100-2000000", "slab size 2000000 is out of valid range"),
        ("300-200", "slab size 200 cannot be lower than or equal to a previous class size"),
        ("100-105", "slab size 105 must be at least 8 bytes larger than previous class"),
        ("10-100", "slab size 10 is out of valid range"),
    ],
)
def test_slab_sizes_are_checked_as_memcached_checks_them(kind, sizes, message):
    cmd = [server_binary(kind), "-l", "127.0.0.1", "-p", "0", "-o", f"slab_sizes={sizes}"]
    if kind == "memcached" and os.geteuid() == 0:
        cmd += ["-u", "root"]
    done = subprocess.run(cmd, capture_output=True, timeout=10)
    assert done.returncode == 64  # EX_USAGE
    assert message.encode() in done.stderr
