"""pylibmc (libmemcached), text and binary protocol, with tcp_nodelay and ketama behaviours."""

import pylibmc
import pytest

from clientcompat import Raw, binary_xfail

PROTOCOLS = [
    pytest.param(False, id="text"),
    pytest.param(True, id="binary", marks=binary_xfail),
]
BEHAVIORS = {"tcp_nodelay": True, "ketama": True, "cas": True,
             "connect_timeout": 5000, "receive_timeout": 5_000_000, "send_timeout": 5_000_000}


def client(ports, binary: bool) -> pylibmc.Client:
    return pylibmc.Client([f"127.0.0.1:{p}" for p in ports], binary=binary, behaviors=BEHAVIORS)


@pytest.mark.parametrize("binary", PROTOCOLS)
def test_behaviors_applied(server, binary):
    mc = client([server.port], binary)
    assert mc.binary is binary
    assert mc.behaviors["tcp_nodelay"] and mc.behaviors["ketama"] and mc.behaviors["cas"]
    assert mc.set("hello", b"world")
    assert mc.get("hello") == b"world"
    mc.disconnect_all()


@pytest.mark.parametrize("binary", PROTOCOLS)
def test_storage_commands(server, binary):
    mc = client([server.port], binary)
    assert mc.set("k", b"v", time=0) is True
    assert mc.get("k") == b"v"
    assert mc.add("k", b"other") is False
    assert mc.add("new", b"n") is True
    assert mc.replace("k", b"r") is True
    if binary:
        # The binary protocol answers "key not found" (status 0x0001), which pylibmc raises.
        with pytest.raises(pylibmc.NotFound):
            mc.replace("absent", b"x")
    else:
        assert mc.replace("absent", b"x") is False
    assert mc.get("absent") is None
    assert mc.append("k", b"-end") is True
    assert mc.prepend("k", b"start-") is True
    assert mc.get("k") == b"start-r-end"
    assert mc.set("empty", b"") is True
    assert mc.get("empty") == b""
    every = bytes(range(256)) * 16
    assert mc.set("every", every) is True
    assert mc.get("every") == every
    assert mc.delete("k") is True
    assert mc.delete("k") is False
    assert mc.get("k") is None
    # What reached the server is the raw bytes (bytes values carry flags 0).
    with Raw(server.port) as raw:
        assert raw.get("every") == (0, every)
        assert raw.get("new") == (0, b"n")
        assert raw.get("empty") == (0, b"")
    mc.disconnect_all()


@pytest.mark.parametrize("binary", PROTOCOLS)
def test_typed_values_keep_their_flags(server, binary):
    mc = client([server.port], binary)
    mc.set("int", 42)
    mc.set("text", "unicode ✓")
    mc.set("obj", {"a": [1, 2]})
    assert mc.get("int") == 42
    assert mc.get("text") == "unicode ✓"
    assert mc.get("obj") == {"a": [1, 2]}
    with Raw(server.port) as raw:
        flags_int, raw_int = raw.get("int")
        flags_text, raw_text = raw.get("text")
        flags_obj, _ = raw.get("obj")
    assert raw_int == b"42" and raw_text == "unicode ✓".encode()
    # pylibmc tells types apart only by the flags the server hands back.
    assert len({flags_int, flags_text, flags_obj, 0}) == 4
    mc.disconnect_all()


@pytest.mark.parametrize("binary", PROTOCOLS)
def test_cas_incr_decr_touch(server, binary):
    mc = client([server.port], binary)
    mc.set("c", b"1")
    value, token = mc.gets("c")
    assert value == b"1" and token
    assert mc.cas("c", b"2", token) is True
    assert mc.cas("c", b"3", token) is False
    assert mc.get("c") == b"2"
    mc.set("n", 10)
    assert mc.incr("n", 5) == 15
    assert mc.decr("n", 20) == 0
    assert mc.incr("n") == 1
    with pytest.raises(pylibmc.NotFound):
        mc.incr("no-counter", 1)
    assert mc.touch("n", 100) is True
    assert mc.touch("no-counter", 100) is False
    assert mc.get("n") == 1
    mc.disconnect_all()


@pytest.mark.parametrize("binary", PROTOCOLS)
def test_multi_get_100_keys(server, binary):
    mc = client([server.port], binary)
    values = {f"multi:{i:03d}": (b"%d:" % i) * (i + 1) for i in range(100)}
    assert mc.set_multi(values) == []
    got = mc.get_multi(list(values) + ["multi:missing"])
    assert got == values
    # key_prefix is applied on the way out and stripped on the way back.
    assert mc.get_multi(["001", "099"], key_prefix="multi:") == {
        "001": values["multi:001"], "099": values["multi:099"]}
    assert mc.delete_multi(list(values)[:50]) is True
    assert mc.get_multi(list(values)) == dict(list(values.items())[50:])
    mc.disconnect_all()


@pytest.mark.parametrize("binary", PROTOCOLS)
def test_ketama_spreads_keys_over_two_servers(start_server, binary):
    servers = [start_server(["-m", "64", "-t", "2"]) for _ in range(2)]
    mc = client([s.port for s in servers], binary)
    values = {f"ring:{i}": b"v%d" % i for i in range(200)}
    assert mc.set_multi(values) == []
    assert mc.get_multi(list(values)) == values
    placed = []
    with Raw(servers[0].port) as a, Raw(servers[1].port) as b:
        for key, value in values.items():
            where = [a.get(key), b.get(key)]
            # Each key lives on exactly one server, stored verbatim.
            assert where.count(None) == 1, (key, where)
            index = 0 if where[0] is not None else 1
            assert where[index] == (0, value)
            placed.append(index)
    share = placed.count(0) / len(placed)
    assert 0.15 < share < 0.85, share
    # The consistent-hash ring is deterministic: a new client picks the same server per key.
    again = client([s.port for s in servers], binary)
    assert again.get_multi(list(values)) == values
    mc.disconnect_all()
    again.disconnect_all()
