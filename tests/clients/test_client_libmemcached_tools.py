"""libmemcached-tools command-line clients (Debian 12 names: memcstat, memccp, memccat, memcping,
memcslap, memcexist, memctouch, memcrm, memcflush)."""

import re

import pytest

from clientcompat import Raw, binary_xfail, free_port, need, run


def servers(server) -> str:
    return f"--servers=127.0.0.1:{server.port}"


def test_memcstat(server):
    with Raw(server.port) as raw:
        raw.set("one", b"1")
        raw.set("two", b"22")
        pid = int(raw.stats()["pid"])
    out = run([need("memcstat"), servers(server)], timeout=30).stdout
    assert out.splitlines()[0] == f"Server: 127.0.0.1 ({server.port})", out
    stats = dict(re.findall(r"^\t(\w+): (.*)$", out, re.M))
    assert int(stats["pid"]) == pid
    assert int(stats["curr_items"]) == 2
    assert int(stats["total_items"]) == 2
    assert re.fullmatch(r"\d+\.\d+\.\d+\S*", stats["version"]), stats["version"]
    assert int(stats["limit_maxbytes"]) == 64 * 1024 * 1024


def test_memccp_memccat(server, tmp_path):
    content = bytes(range(256)) * 64 + b"\nend of file\n"
    src = tmp_path / "payload.bin"
    src.write_bytes(content)
    run([need("memccp"), servers(server), src], timeout=30)
    with Raw(server.port) as raw:
        stored = raw.get("payload.bin")  # memccp stores a file under its base name
    assert stored is not None and stored[1] == content
    out = run([need("memccat"), servers(server), "payload.bin"], timeout=30, text=False).stdout
    # memccat writes the value followed by a newline.
    assert out in (content, content + b"\n"), (len(out), len(content))
    missing = run([need("memccat"), servers(server), "no-such-file"], timeout=30, check=False)
    assert missing.returncode != 0


def test_memcping(server):
    run([need("memcping"), servers(server)], timeout=30)
    dead = run([need("memcping"), f"--servers=127.0.0.1:{free_port()}"], timeout=30, check=False)
    assert dead.returncode != 0, "memcping must fail against a closed port"


def test_memcexist_memctouch_memcrm_memcflush(server):
    with Raw(server.port) as raw:
        raw.set("here", b"x")
        raw.set("also", b"y")
    run([need("memcexist"), servers(server), "here"], timeout=30)
    assert run([need("memcexist"), servers(server), "absent"], timeout=30, check=False).returncode != 0
    run([need("memctouch"), servers(server), "--expire=100", "here"], timeout=30)
    run([need("memcrm"), servers(server), "here"], timeout=30)
    with Raw(server.port) as raw:
        assert raw.get("here") is None
        assert raw.get("also") == (0, b"y")
    run([need("memcflush"), servers(server)], timeout=30)
    with Raw(server.port) as raw:
        assert raw.get("also") is None


@pytest.mark.parametrize("protocol", ["text", pytest.param("binary", marks=binary_xfail)])
def test_memcslap_short_run(server, protocol):
    extra = ["--binary"] if protocol == "binary" else []
    with Raw(server.port) as raw:
        before = raw.stats()
    # set test: 2 threads x 2000 sets
    out = run([need("memcslap"), servers(server), "--concurrency=2", "--execute-number=2000",
               "--test=set", *extra], timeout=60).stdout
    assert re.search(r"Time to set\s+4000 keys by\s+2 threads", out), out
    with Raw(server.port) as raw:
        mid = raw.stats()
    assert int(mid["cmd_set"]) - int(before["cmd_set"]) == 4000
    # get test: loads 2000 keys, then 2 threads x 2000 gets, every one a hit
    out = run([need("memcslap"), servers(server), "--concurrency=2", "--execute-number=2000",
               "--test=get", *extra], timeout=60).stdout
    assert re.search(r"Time to get\s+4000 keys by\s+2 threads", out), out
    with Raw(server.port) as raw:
        after = raw.stats()
    assert int(after["cmd_set"]) - int(mid["cmd_set"]) == 2000
    assert int(after["get_hits"]) - int(mid["get_hits"]) == 4000
    assert int(after["get_misses"]) == int(mid["get_misses"])
