"""telnet-style sessions through nc (netcat-openbsd): the exact bytes a person at a terminal sees."""

import re

import pytest

from clientcompat import Raw, need, run, slabcached_only, wait_for


def nc(port: int, transcript: bytes, timeout: float = 10) -> bytes:
    """Type a transcript into `nc` the way telnet sends it (CRLF lines) and return the reply bytes.
    The transcript ends with `quit`, so the server closes the connection and nc exits."""
    assert transcript.endswith(b"quit\r\n")
    proc = run([need("nc"), "-N", "-w", "5", "127.0.0.1", str(port)], input=transcript,
               timeout=timeout, text=False)
    return proc.stdout


def stat_lines(reply: bytes) -> list[tuple[str, str]]:
    text = reply.decode()
    assert text.endswith("END\r\n"), text[-200:]
    out = []
    for line in text[: -len("END\r\n")].split("\r\n")[:-1]:
        m = re.fullmatch(r"STAT (\S+) (.*)", line)
        assert m, f"not a STAT line: {line!r}"
        out.append((m[1], m[2]))
    return out


def test_classic_transcript(server):
    out = nc(server.port, b"set mykey 0 60 6\r\nmydata\r\nget mykey\r\nquit\r\n")
    assert out == b"STORED\r\nVALUE mykey 0 6\r\nmydata\r\nEND\r\n"


def test_transcript_miss_delete_and_errors(server):
    out = nc(server.port, b"get nosuchkey\r\n"
                          b"set k 5 0 2\r\nhi\r\n"
                          b"gets k\r\n"
                          b"delete k\r\ndelete k\r\n"
                          b"bogus_command\r\n"
                          b"quit\r\n")
    m = re.fullmatch(rb"END\r\nSTORED\r\nVALUE k 5 2 (\d+)\r\nhi\r\nEND\r\nDELETED\r\nNOT_FOUND\r\nERROR\r\n", out)
    assert m, out


def test_version(server):
    out = nc(server.port, b"version\r\nquit\r\n")
    assert re.fullmatch(rb"VERSION \d+\.\d+\.\d+\S*\r\n", out), out


def test_stats_slabs(server):
    # One small item and one of ~5 KB land in two different slab classes.
    out = nc(server.port, b"set small 0 0 3\r\nabc\r\n"
                          b"set large 0 0 5000\r\n" + b"x" * 5000 + b"\r\n"
                          b"stats slabs\r\nquit\r\n")
    assert out.startswith(b"STORED\r\nSTORED\r\n"), out[:100]
    stats = stat_lines(out[len(b"STORED\r\nSTORED\r\n"):])
    classes: dict[int, dict[str, int]] = {}
    totals = {}
    for name, value in stats:
        m = re.fullmatch(r"(\d+):(\w+)", name)
        if m:
            classes.setdefault(int(m[1]), {})[m[2]] = int(value)
        else:
            totals[name] = int(value)
    assert set(totals) >= {"active_slabs", "total_malloced"}, totals
    used = {cls: f for cls, f in classes.items() if f.get("used_chunks", 0) > 0}
    assert len(used) == 2, classes
    assert totals["active_slabs"] == len(classes)
    assert totals["total_malloced"] > 0
    for cls, f in classes.items():
        for field in ("chunk_size", "chunks_per_page", "total_pages", "total_chunks",
                      "used_chunks", "free_chunks", "cmd_set", "get_hits"):
            assert field in f, (cls, field, f)
        assert f["total_chunks"] == f["total_pages"] * f["chunks_per_page"], f
        assert f["used_chunks"] + f["free_chunks"] <= f["total_chunks"], f
    small_cls, large_cls = sorted(used)
    assert used[small_cls]["chunk_size"] < 5000 <= used[large_cls]["chunk_size"]
    assert used[small_cls]["used_chunks"] == 1 and used[large_cls]["used_chunks"] == 1
    assert used[small_cls]["cmd_set"] == 1 and used[large_cls]["cmd_set"] == 1
    sizes = [classes[c]["chunk_size"] for c in sorted(classes)]
    assert sizes == sorted(sizes) and len(set(sizes)) == len(sizes), sizes


def test_stats_items(server):
    sets = b"".join(b"set key%d 0 0 4\r\nabcd\r\n" % i for i in range(7))
    out = nc(server.port, sets + b"set big 0 0 3000\r\n" + b"y" * 3000 + b"\r\nstats items\r\nquit\r\n")
    assert out.startswith(b"STORED\r\n" * 8)
    stats = stat_lines(out[len(b"STORED\r\n" * 8):])
    per_class: dict[int, dict[str, int]] = {}
    for name, value in stats:
        m = re.fullmatch(r"items:(\d+):(\w+)", name)
        assert m, name
        per_class.setdefault(int(m[1]), {})[m[2]] = int(value)
    numbers = sorted(f["number"] for f in per_class.values())
    assert numbers == [1, 7], per_class
    for f in per_class.values():
        for field in ("number", "age", "evicted", "outofmemory"):
            assert field in f, f


def test_stats_cachedump(server):
    with Raw(server.port) as raw:
        now = int(raw.stats()["time"])
    out = nc(server.port, b"set mykey 0 60 6\r\nmydata\r\nset other 0 0 3\r\nabc\r\nquit\r\n")
    assert out == b"STORED\r\nSTORED\r\n"

    # memcached lists items of the cold LRU only, which new items reach within about a second:
    # ask until both keys are listed.
    def dump():
        reply = nc(server.port, b"stats cachedump 1 100\r\nquit\r\n")
        assert reply.endswith(b"END\r\n"), reply
        items = {}
        for line in reply.decode().split("\r\n")[:-2]:
            m = re.fullmatch(r"ITEM (\S+) \[(\d+) b; (\d+) s\]", line)
            assert m, f"not an ITEM line: {line!r}"
            items[m[1]] = (int(m[2]), int(m[3]))
        return items if {"mykey", "other"} <= set(items) else None

    items = wait_for(dump, timeout=8, interval=0.25)
    assert items, "stats cachedump 1 100 never listed mykey and other"
    assert items["mykey"][0] == 6 and items["other"] == (3, 0)
    # The expiry of an item with a TTL is shown as an absolute unix time.
    assert now + 55 <= items["mykey"][1] <= now + 66, (now, items)
    # A limit caps the listing.
    one = nc(server.port, b"stats cachedump 1 1\r\nquit\r\n")
    assert len(re.findall(rb"^ITEM ", one, re.M)) == 1, one


@slabcached_only
def test_config_get_cluster(server):
    out = nc(server.port, b"config get cluster\r\nquit\r\n")
    # ElastiCache auto-discovery format:
    #   CONFIG cluster 0 <bytes>\r\n<config version>\n<host>|<ip>|<port> ...\n\r\nEND\r\n
    m = re.fullmatch(rb"CONFIG cluster 0 (\d+)\r\n(.*)\r\nEND\r\n", out, re.S)
    assert m, out
    body = m[2]
    assert len(body) == int(m[1]), (len(body), out)
    lines = body.decode().strip("\n").split("\n")
    assert len(lines) == 2, lines
    assert lines[0].isdigit(), lines
    nodes = [node.split("|") for node in lines[1].split()]
    assert nodes and all(len(n) == 3 and n[2].isdigit() for n in nodes), nodes
    assert any(n[2] == str(server.port) for n in nodes), (server.port, nodes)
