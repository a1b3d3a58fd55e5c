"""memcached-tool, the Perl script shipped in Debian's memcached package
(/usr/share/memcached/scripts/memcached-tool): `dump` and `keys` read `lru_crawler metadump all`
(URI-decoding the keys) and then `get` every key; `display` joins `stats items` and
`stats slabs` into one row per class with pages; `stats` and `settings` print those stats."""

import os
import re
import shutil
import time

import pytest

from clientcompat import Raw, run

TOOL_PATHS = ["/usr/share/memcached/scripts/memcached-tool"]


def tool() -> list[str]:
    path = shutil.which("memcached-tool") or next((p for p in TOOL_PATHS if os.path.exists(p)), None)
    if not path:
        pytest.fail("memcached-tool not found (Debian package memcached)")
    return ["perl", path]


def memcached_tool(server, *args: str, check: bool = True):
    return run(tool() + [f"127.0.0.1:{server.port}", *args], timeout=30, text=False, check=check)


def parse_dump(out: bytes) -> dict[bytes, tuple[int, int, bytes]]:
    """`add <key> <flags> <exptime> <len>\\r\\n<value>\\r\\n` records -> {key: (flags, exptime, value)}."""
    records = {}
    pos = 0
    while pos < len(out):
        end = out.index(b"\r\n", pos)
        m = re.fullmatch(rb"add (\S+) (\d+) (\d+) (\d+)", out[pos:end])
        assert m, f"not an add line: {out[pos:end][:200]!r}"
        length = int(m[4])
        value = out[end + 2:end + 2 + length]
        assert out[end + 2 + length:end + 4 + length] == b"\r\n"
        assert m[1] not in records, f"{m[1]!r} dumped twice"
        records[m[1]] = (int(m[2]), int(m[3]), value)
        pos = end + 4 + length
    return records


def dump_until_complete(server, want: set[bytes], timeout: float = 5) -> dict:
    """memcached's metadump can miss an item that its LRU maintainer is moving right after a
    burst of writes (then lists it a moment later): run the tool until every key is there."""
    deadline = time.monotonic() + timeout
    while True:
        proc = memcached_tool(server, "dump")
        records = parse_dump(proc.stdout)
        if set(records) == want or time.monotonic() > deadline:
            assert proc.stderr.startswith(b"Dumping memcache contents"), proc.stderr
            return records
        time.sleep(0.2)


def test_dump_lists_keys_and_values(server):
    now = time.time()
    stored = {
        b"alpha": (3, 0, b"hello"),
        b"binary": (0, 0, bytes(range(256)) * 4 + b"\r\nEND\r\n"),
        b"big": (0, 0, b"b" * 3000),
        b"odd:key/x%y": (12345, 0, b"hi"),
        b"utf\xc3\xa9": (0, 0, b"accent"),
    }
    with Raw(server.port) as raw:
        for key, (flags, _, value) in stored.items():
            raw.send(b"set %s %d 0 %d\r\n%s\r\n" % (key, flags, len(value), value))
            assert raw.line() == b"STORED", key
        raw.send(b"set ttl 0 1000 4\r\nsoon\r\n")
        assert raw.line() == b"STORED"
        many = {b"many%d" % i: b"v%d" % i for i in range(200)}
        for key, value in many.items():
            raw.send(b"set %s 0 0 %d\r\n%s\r\n" % (key, len(value), value))
            assert raw.line() == b"STORED"

    want = set(stored) | set(many) | {b"ttl"}
    records = dump_until_complete(server, want)
    assert set(records) == want
    for key, (flags, exptime, value) in stored.items():
        assert records[key] == (flags, exptime, value), key
    for key, value in many.items():
        assert records[key] == (0, 0, value), key
    flags, exptime, value = records[b"ttl"]
    assert value == b"soon" and abs(exptime - (now + 1000)) <= 3, records[b"ttl"]

    # `keys` prints the metadump lines themselves (keys still URI-encoded)
    keys = memcached_tool(server, "keys").stdout.decode().splitlines()
    shown = {re.match(r"key=(\S+) exp=", line)[1] for line in keys}
    assert "odd%3Akey%2Fx%25y" in shown and "utf%C3%A9" in shown and "many7" in shown, sorted(shown)[:10]

    # dump with a limit stops after that many keys
    limited = parse_dump(memcached_tool(server, "dump", "5").stdout)
    assert len(limited) == 5 and set(limited) <= want


def test_dump_after_expiry_and_delete(server):
    with Raw(server.port) as raw:
        raw.set("stays", b"1")
        raw.set("deleted", b"2")
        raw.set("expires", b"3", exptime=1)
        raw.send(b"delete deleted\r\n")
        assert raw.line() == b"DELETED"
    time.sleep(2.1)
    records = dump_until_complete(server, {b"stays"})
    assert records == {b"stays": (0, 0, b"1")}


def test_display_rows_match_stats(server):
    with Raw(server.port) as raw:
        assert raw.lines_until_end(b"stats\r\n")  # the connection works
        raw.send(b"slabs automove 0\r\n")  # only the move asked for below
        assert raw.line() == b"OK"
        for i in range(10):
            raw.set(f"small{i}", b"s" * 10)
        for i in range(150):
            raw.set(f"large{i}", b"L" * 20_000)
        slabs = raw.stats("slabs")
        curr_items = int(raw.stats()["curr_items"])

    def rows() -> dict[int, tuple[int, int]]:
        out = memcached_tool(server, "display").stdout.decode().splitlines()
        assert out[0].split() == ["#", "Item_Size", "Max_age", "Pages", "Count", "Full?",
                                  "Evicted", "Evict_Time", "OOM"], out[0]
        table = {}
        for line in out[1:]:
            f = line.split()
            assert len(f) == 9 and re.fullmatch(r"\d+(\.\d)?[BK]", f[1]), line
            table[int(f[0])] = (int(f[3]), int(f[4]))  # pages, count
        return table

    table = rows()
    paged = {int(k.split(":")[0]): int(v) for k, v in slabs.items()
             if k.endswith(":total_pages") and int(v) > 0}
    assert {cls: pages for cls, (pages, _) in table.items()} == paged
    assert sum(count for _, count in table.values()) == curr_items == 160
    large_cls = next(cls for cls, (_, count) in table.items() if count == 150)
    assert table[large_cls][0] >= 3

    # a page moved to the global pool shows as one page fewer
    with Raw(server.port) as raw:
        raw.send(f"slabs reassign {large_cls} 0\r\n".encode())
        assert raw.line() == b"OK"
        deadline = time.monotonic() + 5
        while int(raw.stats()["slabs_moved"]) < 1:
            assert time.monotonic() < deadline, "the page did not move within 5 s"
            time.sleep(0.05)
    assert rows()[large_cls][0] == table[large_cls][0] - 1


def test_stats_and_settings(server):
    with Raw(server.port) as raw:
        raw.set("one", b"1")
        stats = raw.stats()
    out = memcached_tool(server, "stats").stdout.decode()
    assert out.splitlines()[0].startswith(f"#127.0.0.1:{server.port}")
    shown = dict(re.findall(r"^\s*(\w+)\s+(\S+)\r?$", out, re.M))
    for name in ("pid", "limit_maxbytes", "slabs_moved", "slab_global_page_pool",
                 "crawler_reclaimed", "lru_crawler_starts"):
        assert shown.get(name) == stats[name], (name, shown.get(name), stats[name])
    assert int(shown["curr_items"]) == 1

    out = memcached_tool(server, "settings").stdout.decode()
    settings = dict(re.findall(r"^\s*(\w+)\s+(\S+)\r?$", out, re.M))
    assert settings["slab_reassign"] == "yes"
    assert settings["slab_automove"] == "1"
    assert settings["lru_crawler"] == "yes"
    assert settings["slab_chunk_max"] == str(512 * 1024)
    assert settings["maxbytes"] == str(64 * 1024 * 1024)


# ------------------------------------------------------------------------------------------
# The same output shape against slabcached as against memcached 1.6.18


def _same_workload(srv) -> None:
    with Raw(srv.port) as raw:
        for i in range(10):
            raw.set(f"small{i}", b"s" * 10)
        for i in range(40):
            raw.set(f"large{i}", b"L" * 5000)
        assert raw.get("small1") == (0, b"s" * 10)
        assert raw.get("missing") is None


def _field_listing(out: str, port: int, header: re.Pattern) -> list[str]:
    """The names of a `stats`/`settings` listing (right-aligned name, value), checking every
    line's shape."""
    lines = out.splitlines()
    assert header.fullmatch(lines[0]), lines[0]
    assert f"127.0.0.1:{port}" in lines[0]
    names = []
    for line in lines[1:]:
        m = re.fullmatch(r"\s*(\S+) +(\S*)", line)
        assert m, repr(line)
        names.append(m[1])
    assert names == sorted(names)
    return names


@pytest.mark.parametrize("mode,group,header", [
    ("stats", "stats", re.compile(r"#127\.0\.0\.1:\d+ +Field +Value")),
    ("settings", "settings", re.compile(r"#127\.0\.0\.1:\d+ +Field +Value")),
])
def test_stats_and_settings_list_memcacheds_fields(start_server, mode, group, header):
    from slabtest import OTHER_FEATURES, SLABCACHED_EXTRAS

    names = {}
    for kind in ("slabcached", "memcached"):
        srv = start_server(["-m", "64"], kind="memcached" if kind == "memcached" else None)
        _same_workload(srv)
        names[kind] = _field_listing(memcached_tool(srv, mode).stdout.decode(), srv.port, header)
    sc, mc = set(names["slabcached"]), set(names["memcached"])
    missing = mc - sc
    assert missing <= OTHER_FEATURES[group], sorted(missing - OTHER_FEATURES[group])
    assert sc - mc <= SLABCACHED_EXTRAS[group], sorted(sc - mc)


def test_display_has_memcacheds_shape(start_server):
    tables = {}
    for kind in ("slabcached", "memcached"):
        srv = start_server(["-m", "64", "-o", "slab_chunk_max=16384"],
                           kind="memcached" if kind == "memcached" else None)
        _same_workload(srv)
        proc = memcached_tool(srv, "display")
        assert proc.stderr == b"", proc.stderr  # no uninitialised-value warnings from perl
        lines = proc.stdout.decode().splitlines()
        rows = []
        for line in lines[1:]:
            m = re.fullmatch(r" {0,2}(\d+) +(\d+(?:\.\d)?[BK]) +(\d+)s +(\d+) +(\d+) +(yes| no)"
                             r" +(\d+) +(\d+) +(\d+)", line)
            assert m, repr(line)
            rows.append(m.groups())
        tables[kind] = (lines[0], rows)
    (sc_header, sc_rows), (mc_header, mc_rows) = tables["slabcached"], tables["memcached"]
    assert sc_header == mc_header
    # Class ids and chunk sizes differ (slabcached's item header is smaller): the classes in
    # use, their item counts and eviction columns must not.
    assert len(sc_rows) == len(mc_rows)
    assert sorted(r[4] for r in sc_rows) == sorted(r[4] for r in mc_rows) == ["10", "40"]
    assert [r[6:] for r in sc_rows] == [r[6:] for r in mc_rows]
