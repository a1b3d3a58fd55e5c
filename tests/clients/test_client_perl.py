"""Perl Cache::Memcached::Fast (Debian's libcache-memcached-fast-perl, text protocol)."""

from clientcompat import HERE, Raw, need, ok_lines, run

SCRIPT = HERE / "perl" / "fast_check.pl"


def test_cache_memcached_fast(server):
    with Raw(server.port) as raw:
        raw.set("from_python", b"written by python")
    proc = run([need("perl"), SCRIPT, server.port], timeout=60)
    passed = ok_lines(proc.stdout)
    for name in ("set", "get", "get bytes", "get_multi values", "cas", "cas stale", "incr",
                 "decr", "read python key", "delete", "touch"):
        assert name in passed, (name, proc.stdout)
    assert proc.stdout.rstrip().endswith("done"), proc.stdout
    with Raw(server.port) as raw:
        assert raw.get("perl:str") == (0, b"hello from perl")
        assert raw.get("perl:multi:7") == (0, b"value-7")
        assert raw.get("perl:ctr") is not None
