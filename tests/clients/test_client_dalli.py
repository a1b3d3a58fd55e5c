"""Dalli (Debian's ruby-dalli 3.0.x). Dalli 3.0 speaks only the binary protocol (the meta protocol
came in 3.2), so on slabcached this scenario waits for binary-protocol support."""

from clientcompat import HERE, Raw, binary_xfail, need, ok_lines, run

SCRIPT = HERE / "ruby" / "dalli_check.rb"


@binary_xfail
def test_dalli_binary(server):
    ruby = need("ruby")
    with Raw(server.port) as raw:
        raw.set("from_python", b"written by python")
    proc = run([ruby, SCRIPT, server.port], timeout=60)
    passed = ok_lines(proc.stdout)
    for name in ("protocol", "set object", "get object", "get raw", "get_multi", "cas block",
                 "set_cas stale", "incr", "decr", "delete", "touch", "expired", "touched survives",
                 "read python key", "get all byte values"):
        assert name in passed, (name, proc.stdout)
    assert proc.stdout.rstrip().endswith("done")
    # What Dalli wrote raw is plain bytes for every other client.
    with Raw(server.port) as raw:
        assert raw.get("from_dalli") == (0, b"written by dalli")
        assert raw.get("ctr2") == (0, b"42")
        # Marshalled Ruby objects carry Dalli's "serialized" flag bit.
        flags, _ = raw.get("obj")
        assert flags & 0x1
