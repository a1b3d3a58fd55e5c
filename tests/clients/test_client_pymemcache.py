"""pymemcache (pure-Python text-protocol client): every storage and retrieval command."""

import random
import re
import time

import pytest
from pymemcache.client.base import Client
from pymemcache.exceptions import MemcacheClientError, MemcacheServerError

from clientcompat import Raw


def client(server, **kw) -> Client:
    return Client(("127.0.0.1", server.port), connect_timeout=5, timeout=5, **kw)


@pytest.fixture
def mc(server):
    c = client(server, default_noreply=False)
    yield c
    c.close()


def test_set_get_delete(mc, server):
    assert mc.set("k", b"v1") is True
    assert mc.get("k") == b"v1"
    assert mc.set("k", b"v2", flags=0xDEADBEEF) is True
    with Raw(server.port) as raw:
        assert raw.get("k") == (0xDEADBEEF, b"v2")
    assert mc.get("missing") is None
    assert mc.get("missing", default=b"dflt") == b"dflt"
    assert mc.delete("k") is True
    assert mc.delete("k") is False
    assert mc.get("k") is None


def test_add_replace_append_prepend(mc):
    assert mc.add("a", b"first") is True
    assert mc.add("a", b"second") is False
    assert mc.get("a") == b"first"
    assert mc.replace("r", b"x") is False
    assert mc.get("r") is None
    assert mc.replace("a", b"replaced") is True
    assert mc.get("a") == b"replaced"
    assert mc.append("a", b"-tail") is True
    assert mc.prepend("a", b"head-") is True
    assert mc.get("a") == b"head-replaced-tail"
    assert mc.append("nope", b"x") is False
    assert mc.prepend("nope", b"x") is False
    assert mc.get("nope") is None


def test_gets_and_cas(mc):
    assert mc.set("c", b"one") is True
    value, token = mc.gets("c")
    assert value == b"one" and token.isdigit()
    assert mc.cas("c", b"two", token) is True
    assert mc.get("c") == b"two"
    # The token went stale with the first cas.
    assert mc.cas("c", b"three", token) is False
    assert mc.get("c") == b"two"
    value2, token2 = mc.gets("c")
    assert value2 == b"two" and token2 != token
    # Any write changes the cas unique.
    mc.set("c", b"other")
    assert mc.cas("c", b"four", token2) is False
    assert mc.cas("absent", b"x", b"12345") is None
    assert mc.gets("absent") == (None, None)
    mc.set("m1", b"a")
    mc.set("m2", b"b")
    many = mc.gets_many(["m1", "m2", "m3"])
    assert set(many) == {"m1", "m2"}
    assert many["m1"][0] == b"a" and many["m2"][0] == b"b"
    assert many["m1"][1] != many["m2"][1]


def test_incr_decr(mc):
    mc.set("n", b"10")
    assert mc.incr("n", 5) == 15
    assert mc.decr("n", 3) == 12
    assert mc.decr("n", 100) == 0  # decr stops at zero
    assert mc.incr("n", 2**64 - 1) == 2**64 - 1
    assert mc.incr("n", 1) == 0  # incr wraps at 2**64
    assert int(mc.get("n").strip()) == 0
    mc.set("big", b"100")
    assert mc.decr("big", 91) == 9
    assert int(mc.get("big")) == 9
    assert mc.incr("absent", 1) is None
    assert mc.decr("absent", 1) is None
    mc.set("text", b"abc")
    with pytest.raises(MemcacheClientError):
        mc.incr("text", 1)
    assert mc.get("text") == b"abc"


def test_set_many_get_many_delete_many(mc):
    values = {f"key:{i}": f"value-{i}".encode() * (i + 1) for i in range(60)}
    assert mc.set_many(values) == []
    got = mc.get_many(list(values) + ["not-there-1", "not-there-2"])
    assert got == values
    assert mc.get_many([]) == {}
    assert mc.delete_many(list(values)[:30]) is True
    assert mc.get_many(list(values)) == dict(list(values.items())[30:])


def test_noreply(server, mc):
    quiet = client(server, default_noreply=True)
    try:
        assert quiet.set("q", b"1") is True
        assert quiet.add("q", b"ignored") is True  # noreply: no way to learn it was NOT_STORED
        assert quiet.append("q", b"2") is True
        assert quiet.prepend("q", b"0") is True
        assert quiet.incr("n", 1) is None
        quiet.set("d", b"gone")
        quiet.delete("d")
        quiet.set("t", b"t", expire=1)
        quiet.touch("t", 100)
        # Same connection afterwards: no stray replies sit in front of the next answer.
        assert quiet.get("q") == b"012"
        assert quiet.get("d") is None
    finally:
        quiet.close()
    assert mc.get("q") == b"012"
    # At the wire level a noreply command writes nothing back at all.
    with Raw(server.port) as raw:
        raw.send(b"set nr 0 0 1 noreply\r\na\r\nappend nr 0 0 1 noreply\r\nb\r\n"
                 b"delete missing noreply\r\nincr nr 1 noreply\r\nget nr\r\n")
        assert raw.line() == b"VALUE nr 0 2"
        assert raw.line() == b"ab"
        assert raw.line() == b"END"


def test_zero_byte_values(mc, server):
    assert mc.set("empty", b"") is True
    assert mc.get("empty") == b""
    assert mc.get_many(["empty"]) == {"empty": b""}
    with Raw(server.port) as raw:
        raw.send(b"get empty\r\n")
        assert raw.line() == b"VALUE empty 0 0"
        assert raw.line() == b""
        assert raw.line() == b"END"
    assert mc.append("empty", b"x") is True
    assert mc.get("empty") == b"x"


def test_all_256_byte_values(mc, server):
    every = bytes(range(256))
    assert mc.set("every", every * 4) is True
    assert mc.get("every") == every * 4
    singles = {f"byte{i}": bytes([i]) for i in range(256)}
    assert mc.set_many(singles) == []
    assert mc.get_many(list(singles)) == singles
    # Values holding protocol delimiters are framed by length, not by scanning.
    tricky = b"\r\nEND\r\nVALUE x 0 1\r\n\x00"
    assert mc.set("tricky", tricky) is True
    with Raw(server.port) as raw:
        assert raw.get("tricky") == (0, tricky)
        assert raw.get("every") == (0, every * 4)


def test_near_one_megabyte(mc):
    rng = random.Random(1234)
    value = rng.randbytes(1024 * 1024 - 1024)  # just under the default 1 MB item limit
    assert mc.set("big", value) is True
    assert mc.get("big") == value
    assert mc.get_many(["big", "none"]) == {"big": value}
    with pytest.raises(MemcacheServerError, match="too large"):
        mc.set("huge", b"z" * (2 * 1024 * 1024))
    # The connection stays usable after the refusal.
    assert mc.get("huge") is None
    assert mc.set("after", b"ok") is True
    assert mc.get("after") == b"ok"


def test_expiry_and_touch(mc):
    # A relative TTL of N seconds ends at the server clock's N-th tick, 0-1 s early, so the short
    # TTLs here are 2 s (alive for at least a second) and the wait is 3.2 s.
    future = int(time.time()) + 100
    mc.set("short", b"1", expire=2)
    mc.set("long", b"2", expire=100)
    mc.set("touched", b"3", expire=2)
    assert mc.touch("touched", 100) is True
    mc.set("untouched", b"4", expire=100)
    assert mc.touch("untouched", 2) is True
    assert mc.touch("absent", 10) is False
    mc.set("absolute", b"5", expire=future)       # > 30 days: a unix timestamp
    mc.set("past", b"6", expire=int(time.time()) - 3600)
    mc.set("negative", b"7", expire=-1)
    assert mc.get("past") is None
    assert mc.get("negative") is None
    assert mc.get("short") == b"1"
    time.sleep(3.2)
    got = mc.get_many(["short", "long", "touched", "untouched", "absolute"])
    assert got == {"long": b"2", "touched": b"3", "absolute": b"5"}


def test_flush_all(mc):
    mc.set_many({f"f{i}": b"x" for i in range(20)})
    assert len(mc.get_many([f"f{i}" for i in range(20)])) == 20
    assert mc.flush_all() is True
    assert mc.get_many([f"f{i}" for i in range(20)]) == {}
    assert mc.set("f0", b"new") is True
    assert mc.get("f0") == b"new"


def test_version_and_stats(mc):
    version = mc.version()
    assert version and version.split(b".")[0].isdigit()
    before = mc.stats()
    mc.set("s", b"x")
    mc.get("s")
    mc.get("s-miss")
    after = mc.stats()
    assert after[b"get_hits"] - before[b"get_hits"] == 1
    assert after[b"get_misses"] - before[b"get_misses"] == 1
    assert after[b"cmd_set"] - before[b"cmd_set"] == 1
    assert after[b"curr_items"] >= 1
    assert after[b"pid"] > 0


def test_gat_and_gats(mc, server):
    # pymemcache has no gat()/gats() helpers (and 3.x, Debian 12's, no raw_command either): send
    # them on a raw connection and check their effect through pymemcache.
    mc.set("g", b"value", expire=2)
    with Raw(server.port) as raw:
        raw.send(b"gat 100 g missing\r\n")
        assert [raw.line(), raw.line(), raw.line()] == [b"VALUE g 0 5", b"value", b"END"]
        raw.send(b"gats 100 g\r\n")
        m = re.fullmatch(rb"VALUE g 0 5 (\d+)", raw.line())
        assert m and [raw.line(), raw.line()] == [b"value", b"END"]
        raw.send(b"gat 100 missing\r\n")
        assert raw.line() == b"END"
    _, token = mc.gets("g")
    assert token == m[1]
    # gat reset the 2 s TTL to 100 s.
    time.sleep(3.2)
    assert mc.get("g") == b"value"
