"""Warm restart (-e <memory file>): a graceful stop (SIGUSR1 or `shutdown graceful`) keeps the
items for the next start with the same settings; anything else starts the cache empty and says
why in the log, and never serves a wrong value.

Each test starts real slabcached processes over a memory file of its own (in /dev/shm when there
is one) and stops them by PID.
"""

import os
import random
import signal
import time
from pathlib import Path

import pytest

from slabtest import RawConn, Server

pytestmark = pytest.mark.skipif(
    os.environ.get("SLABCACHED_TARGET", "slabcached") != "slabcached",
    reason="slabcached's warm restart (memcached's own differs in its refusals)",
)

LARGE = 700_000  # chained over several 512 KB chunks


@pytest.fixture
def memfile(tmp_path):
    """A memory file path; the file and its .meta are removed afterwards."""
    base = Path("/dev/shm") if Path("/dev/shm").is_dir() else tmp_path
    path = base / f"slabcached-test-{os.getpid()}-{random.randrange(1 << 30)}"
    yield path
    for p in (path, Path(f"{path}.meta"), Path(f"{path}.meta.tmp")):
        if p.exists():
            p.unlink()


class Servers:
    """Starts servers over one memory file; the test's servers are stopped at the end."""

    def __init__(self, memfile: Path):
        self.memfile = memfile
        self.started: list[Server] = []

    def start(self, *extra: str) -> Server:
        srv = Server("slabcached", ["-e", str(self.memfile), "-t", "2", *extra])
        self.started.append(srv)
        return srv

    def stop_all(self) -> None:
        for srv in self.started:
            srv.stop()


@pytest.fixture
def servers(memfile):
    s = Servers(memfile)
    yield s
    s.stop_all()


def log_of(srv: Server, text: str, timeout: float = 30) -> str:
    """The server's stderr once it contains `text` (the port accepts before a restore ends:
    requests wait for it, the log line comes at its end)."""
    deadline = time.monotonic() + timeout
    while text not in srv.stderr() and time.monotonic() < deadline:
        time.sleep(0.02)
    return srv.stderr()


def graceful_stop(srv: Server, timeout: float = 60) -> None:
    srv.proc.send_signal(signal.SIGUSR1)
    assert srv.proc.wait(timeout=timeout) == 0, srv.stderr()


def value_of(i: int) -> bytes:
    if i % 1000 == 0:
        size = LARGE + i  # chained
    elif i % 97 == 0:
        size = 20_000 + i
    else:
        size = 1 + (i * 7919) % 1500
    seed = (i * 2654435761) & 0xFFFFFFFF
    pattern = seed.to_bytes(4, "little") + b"restart"
    return (pattern * (size // len(pattern) + 1))[:size]


def flags_of(i: int) -> int:
    return (i * 40503) & 0xFFFFFFFF


def fill(conn: RawConn, keys: range, exptime: int = 0) -> None:
    batch = 500
    for start in range(keys.start, keys.stop, batch):
        chunk = range(start, min(start + batch, keys.stop))
        out = bytearray()
        for i in chunk:
            v = value_of(i)
            out += b"set key%d %d %d %d\r\n%s\r\n" % (i, flags_of(i), exptime, len(v), v)
        conn.send(bytes(out))
        for i in chunk:
            assert conn.line() == b"STORED", f"key{i}"


def gets_all(conn: RawConn, keys: range) -> dict[int, tuple[int, int, bytes]]:
    """key index -> (flags, cas, value) for every key that is there."""
    found = {}
    batch = 100
    for start in range(keys.start, keys.stop, batch):
        names = b" ".join(b"key%d" % i for i in range(start, min(start + batch, keys.stop)))
        conn.send(b"gets " + names + b"\r\n")
        while True:
            line = conn.line()
            if line == b"END":
                break
            _, key, flags, length, cas = line.split()
            data = conn.exact(int(length) + 2)[:-2]
            found[int(key[3:])] = (int(flags), int(cas), data)
    return found


def stat(conn: RawConn, name: str, group: bytes = b"") -> str:
    conn.send(b"stats " + group + b"\r\n")
    value = None
    while True:
        line = conn.line()
        if line == b"END":
            return value
        parts = line.split(b" ", 2)
        if parts[1].decode() == name:
            value = parts[2].decode()


def test_every_item_comes_back_exact_after_sigusr1(servers):
    n = 20_500
    srv = servers.start("-m", "128", "-I", "2m")
    with RawConn(srv.port) as c:
        fill(c, range(n))
        # A TTL the restart must keep counting, and one that ends while the server is down.
        c.send(b"set ttl-long 3 100 4\r\nlong\r\nset ttl-short 0 2 5\r\nshort\r\n")
        assert c.line() == b"STORED" and c.line() == b"STORED"
        assert stat(c, "evictions") == "0"
        before = gets_all(c, range(n))
    assert len(before) == n
    graceful_stop(srv)
    assert Path(f"{servers.memfile}.meta").exists()
    time.sleep(2.2)

    srv = servers.start("-m", "128", "-I", "2m")
    assert "restored" in log_of(srv, "restored")
    with RawConn(srv.port) as c:
        after = gets_all(c, range(n))
        missing = [i for i in range(n) if i not in after]
        assert not missing, f"{len(missing)} items lost, e.g. {missing[:5]}"
        for i in range(n):
            assert after[i] == before[i], f"key{i} differs"
            assert after[i][0] == flags_of(i) and after[i][2] == value_of(i)
        # The CAS counter continues above every restored unique.
        c.send(b"set fresh 0 0 1\r\nx\r\ngets fresh\r\n")
        assert c.line() == b"STORED"
        fresh_cas = int(c.line().split()[4])
        c.exact(3)
        assert c.line() == b"END"
        assert fresh_cas > max(cas for _, cas, _ in after.values())
        # TTLs count the time the server was down.
        c.send(b"mg ttl-long t v\r\nmg ttl-short v\r\n")
        hit = c.line()
        assert hit.startswith(b"VA 4 "), hit
        ttl = int(hit.split(b" t")[1].split()[0])
        assert 90 <= ttl <= 98, ttl
        assert c.exact(6) == b"long\r\n"
        assert c.line() == b"EN"
        assert int(stat(c, "curr_items")) == n + 2


def test_kill_9_restarts_empty_and_serves_no_old_value(servers):
    srv = servers.start("-m", "64")
    with RawConn(srv.port) as c:
        fill(c, range(2000))
    graceful_stop(srv)
    # The next process takes the metadata; killed, it leaves none behind.
    srv = servers.start("-m", "64")
    with RawConn(srv.port) as c:
        assert len(gets_all(c, range(2000))) == 2000
        c.send(b"set key5 0 0 3\r\nnew\r\n")
        assert c.line() == b"STORED"
    assert not Path(f"{servers.memfile}.meta").exists()
    srv.proc.send_signal(signal.SIGKILL)
    srv.proc.wait(timeout=10)

    srv = servers.start("-m", "64")
    assert "starting with an empty cache" in log_of(srv, "starting with an empty cache")
    assert "no metadata file" in log_of(srv, "no metadata file")
    with RawConn(srv.port) as c:
        assert gets_all(c, range(2000)) == {}
        assert stat(c, "curr_items") == "0"


def test_sigterm_is_not_a_graceful_stop(servers):
    srv = servers.start("-m", "64")
    with RawConn(srv.port) as c:
        fill(c, range(100))
    srv.stop()  # SIGTERM
    srv = servers.start("-m", "64")
    with RawConn(srv.port) as c:
        assert gets_all(c, range(100)) == {}


@pytest.mark.parametrize(
    "changed, setting",
    [
        (["-m", "96"], "memory_limit"),
        (["-m", "64", "-f", "1.5"], "growth_factor"),
        (["-m", "64", "-n", "64"], "min_chunk"),
        (["-m", "64", "-I", "2m"], "item_size_max"),
        (["-m", "64", "-o", "slab_chunk_max=65536"], "slab_chunk_max"),
        (["-m", "64", "-C"], "use_cas"),
    ],
)
def test_different_settings_start_empty_and_say_why(servers, changed, setting):
    srv = servers.start("-m", "64")
    with RawConn(srv.port) as c:
        fill(c, range(300))
    graceful_stop(srv)
    srv = servers.start(*changed)
    assert f"setting {setting} differs" in log_of(srv, "differs")
    with RawConn(srv.port) as c:
        assert gets_all(c, range(300)) == {}


def test_quick_restarts_within_the_same_second_keep_the_cache(servers):
    srv = servers.start("-m", "64")
    with RawConn(srv.port) as c:
        fill(c, range(500))
        c.send(b"set ttl 0 5 2\r\nok\r\n")
        assert c.line() == b"STORED"
    same_second = 0
    for round_ in range(7):
        graceful_stop(srv)
        stopped = int(time.time())
        srv = servers.start("-m", "64")
        same_second += int(time.time()) == stopped
        assert "restored" in log_of(srv, "restored")
        with RawConn(srv.port) as c:
            got = gets_all(c, range(500))
            assert len(got) == 500, f"round {round_}: {500 - len(got)} lost"
            assert all(got[i][2] == value_of(i) for i in range(500))
    assert same_second > 0, "no restart happened within the stop's second"


def test_shutdown_graceful_saves_like_sigusr1(servers):
    srv = servers.start("-m", "64", "-A")
    with RawConn(srv.port) as c:
        fill(c, range(1000))
        c.send(b"shutdown graceful\r\n")
        with pytest.raises(ConnectionError):
            c.line()
    assert srv.proc.wait(timeout=30) == 0
    srv = servers.start("-m", "64", "-A")
    with RawConn(srv.port) as c:
        assert len(gets_all(c, range(1000))) == 1000
        # A plain `shutdown` is no graceful stop: nothing is saved.
        c.send(b"shutdown\r\n")
    assert srv.proc.wait(timeout=30) == 0
    srv = servers.start("-m", "64", "-A")
    with RawConn(srv.port) as c:
        assert gets_all(c, range(1000)) == {}


def test_a_damaged_memory_file_is_never_served(servers):
    srv = servers.start("-m", "64")
    with RawConn(srv.port) as c:
        fill(c, range(3000))
    graceful_stop(srv)
    # Change one byte of a stored value: the restart must notice, not serve it.
    data = bytearray(servers.memfile.read_bytes())
    needle = value_of(1234)
    at = data.find(needle)
    assert at > 0
    data[at + 10] ^= 0x01
    servers.memfile.write_bytes(bytes(data))
    srv = servers.start("-m", "64")
    assert "checksum" in log_of(srv, "checksum")
    with RawConn(srv.port) as c:
        assert gets_all(c, range(3000)) == {}


def test_truncated_or_damaged_metadata_starts_empty(servers):
    meta = Path(f"{servers.memfile}.meta")
    srv = servers.start("-m", "64")
    with RawConn(srv.port) as c:
        fill(c, range(200))
    graceful_stop(srv)
    text = meta.read_bytes()
    meta.write_bytes(text[: len(text) // 2])
    srv = servers.start("-m", "64")
    assert "starting with an empty cache" in log_of(srv, "starting with an empty cache")
    assert not meta.exists()
    with RawConn(srv.port) as c:
        assert gets_all(c, range(200)) == {}
        fill(c, range(200))
    graceful_stop(srv)
    meta.write_bytes(meta.read_bytes().replace(b"next_cas ", b"next_cas 9"))
    srv = servers.start("-m", "64")
    assert "checksum mismatch" in log_of(srv, "checksum mismatch")
    with RawConn(srv.port) as c:
        assert gets_all(c, range(200)) == {}


def test_a_truncated_memory_file_starts_empty(servers):
    srv = servers.start("-m", "64")
    with RawConn(srv.port) as c:
        fill(c, range(200))
    graceful_stop(srv)
    os.truncate(servers.memfile, 4 << 20)
    srv = servers.start("-m", "64")
    assert "memory file is" in log_of(srv, "memory file is")
    with RawConn(srv.port) as c:
        assert gets_all(c, range(200)) == {}


def test_an_empty_metadata_file_refuses_to_start(memfile):
    Path(f"{memfile}.meta").write_bytes(b"")
    with pytest.raises(RuntimeError, match="is empty"):
        Server("slabcached", ["-e", str(memfile), "-m", "64"])


def test_stats_settings_names_the_memory_file(servers):
    srv = servers.start("-m", "64")
    with RawConn(srv.port) as c:
        assert stat(c, "memory_file", b"settings") == str(servers.memfile)


def test_without_memory_file_stats_say_null(server):
    with RawConn(server.port) as c:
        assert stat(c, "memory_file", b"settings") == "(null)"


@pytest.mark.parametrize("cas_flag", [[], ["-C"]], ids=["cas", "no-cas"])
def test_flushed_items_stay_flushed_across_a_restart(servers, cas_flag):
    srv = servers.start("-m", "64", *cas_flag)
    with RawConn(srv.port) as c:
        fill(c, range(300))
        c.send(b"flush_all\r\n")
        assert c.line() == b"OK"
        if cas_flag:
            # Without CAS uniques a flush covers its whole second: store after it.
            time.sleep(1.1)
        fill(c, range(300, 400))
    graceful_stop(srv)
    srv = servers.start("-m", "64", *cas_flag)
    log_of(srv, "restored")
    with RawConn(srv.port) as c:
        got = gets_all(c, range(400))
        assert sorted(got) == list(range(300, 400))
        assert all(got[i][2] == value_of(i) for i in got)


def test_items_moved_between_classes_come_back(servers):
    srv = servers.start("-m", "64", "-o", "slab_reassign")
    with RawConn(srv.port) as c:
        fill(c, range(3000))
        # Move pages out of the class of the smallest values and back into another.
        for _ in range(3):
            c.send(b"slabs reassign 1 0\r\n")
            c.line()
            time.sleep(0.3)
        before = gets_all(c, range(3000))
    graceful_stop(srv)
    srv = servers.start("-m", "64", "-o", "slab_reassign")
    log_of(srv, "restored")
    with RawConn(srv.port) as c:
        assert gets_all(c, range(3000)) == before
