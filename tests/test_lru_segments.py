"""The segmented LRU (HOT/WARM/COLD/TEMP) and its maintainer, side by side with memcached 1.6.18.

Every test runs against both servers with the same flags and checks what a user can see:
`stats items` segment counts and moves, `stats` maintainer counters, the `lru` commands'
replies and `stats settings`, and which keys survive eviction. Values are large (class 31,
about 80 KB chunks) so a few MB of memory hold few items and the numbers stay small.
"""

import time

import pytest

from slabtest import RawConn, TARGET

SERVERS = [pytest.param("memcached", id="memcached"), pytest.param(TARGET, id="slabcached")]
VALUE = b"B" * 66560


def stats(conn: RawConn, group: str = "") -> dict[str, str]:
    conn.send(f"stats {group}".strip().encode() + b"\r\n")
    out = {}
    while (line := conn.line()) != b"END":
        _, name, value = line.decode().split(" ", 2)
        out[name] = value
    return out


def cmd(conn: RawConn, line: str) -> bytes:
    conn.send(line.encode() + b"\r\n")
    return conn.line()


def store(conn: RawConn, key: str, exptime: int = 0, value: bytes = VALUE) -> None:
    conn.send(f"set {key} 0 {exptime} {len(value)}\r\n".encode() + value + b"\r\n")
    assert conn.line() == b"STORED"


def get(conn: RawConn, key: str) -> bytes | None:
    conn.send(f"get {key}\r\n".encode())
    line = conn.line()
    if line == b"END":
        return None
    n = int(line.split()[3])
    value = conn.exact(n + 2)[:-2]
    assert conn.line() == b"END"
    return value


def wait_for(check, seconds: float = 6.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return check()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", SERVERS)
def test_hot_items_move_to_cold_and_a_twice_read_item_to_warm(start_server, kind):
    srv = start_server(["-m", "6", "-o", "lru_maintainer,lru_crawler"], kind=kind)
    with RawConn(srv.port) as conn:
        store(conn, "canary")
        for i in range(30):
            store(conn, f"key{i}")
        # HOT is kept at 20 % of the class: the maintainer moves the rest to COLD.
        # memcached counts the share in bytes (and moves a little more): about a fifth.
        assert wait_for(lambda: int(stats(conn, "items")["items:31:number_hot"]) <= 31 // 3)
        s = stats(conn, "items")
        assert int(s["items:31:moves_to_cold"]) > 0
        assert int(s["items:31:number_cold"]) > 0
        # Two fetches make the canary ACTIVE in COLD; the maintainer bumps it to WARM.
        assert get(conn, "canary") == VALUE
        assert get(conn, "canary") == VALUE
        assert wait_for(lambda: int(stats(conn, "items")["items:31:moves_to_warm"]) > 0)
        s = stats(conn, "items")
        assert s["items:31:number_warm"] == "1"
        assert int(s["items:31:hits_to_cold"]) == 2
        # Segment counts add up to the class's items.
        parts = sum(int(s[f"items:31:number_{n}"]) for n in ("hot", "warm", "cold"))
        assert parts == int(s["items:31:number"])
        # Fill far past the memory: the canary, in WARM, survives.
        for i in range(30, 120):
            store(conn, f"key{i}")
        assert int(stats(conn)["evictions"]) > 0
        assert get(conn, "canary") == VALUE
        assert int(stats(conn, "items")["items:31:hits_to_warm"]) >= 1
        assert int(stats(conn)["lru_maintainer_juggles"]) > 0


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", SERVERS)
def test_temp_lru_holds_short_ttl_items_and_never_evicts_them(start_server, kind):
    srv = start_server(["-m", "2", "-o", "lru_maintainer,lru_crawler,temporary_ttl=61"], kind=kind)
    with RawConn(srv.port) as conn:
        settings = stats(conn, "settings")
        assert (settings["temp_lru"], settings["temporary_ttl"]) == ("yes", "61")
        store(conn, "canary", exptime=30)
        s = stats(conn, "items")
        assert (s["items:31:number_temp"], s["items:31:number_hot"]) == ("1", "0")
        for i in range(100):
            store(conn, f"key{i}", exptime=3600)
        s = stats(conn, "items")
        assert int(s["items:31:evicted"]) > 0
        assert int(s["items:31:number_hot"]) > 0
        assert s["items:31:number_temp"] == "1"
        assert get(conn, "canary") == VALUE
        assert s["items:31:hits_to_temp"] == "0"
        assert stats(conn, "items")["items:31:hits_to_temp"] == "1"


@pytest.mark.timeout(30)
@pytest.mark.parametrize("kind", SERVERS)
def test_lru_commands_and_settings(start_server, kind):
    srv = start_server(["-m", "16"], kind=kind)
    with RawConn(srv.port) as conn:
        s = stats(conn, "settings")
        assert (s["lru_maintainer_thread"], s["lru_segmented"], s["temp_lru"]) == ("yes", "yes", "no")
        assert (s["hot_lru_pct"], s["warm_lru_pct"]) == ("20", "40")
        assert (s["hot_max_factor"], s["warm_max_factor"]) == ("0.20", "2.00")
        assert cmd(conn, "lru tune 10 30 0.1 1.5") == b"OK"
        s = stats(conn, "settings")
        assert (s["hot_lru_pct"], s["warm_lru_pct"]) == ("10", "30")
        assert (s["hot_max_factor"], s["warm_max_factor"]) == ("0.10", "1.50")
        # memcached: "ERROR hot and warm pcts must not exceed 80"
        assert cmd(conn, "lru tune 50 50 0.1 1.5").startswith(b"ERROR")
        assert cmd(conn, "lru mode flat") == b"OK"
        assert stats(conn, "settings")["lru_segmented"] == "no"
        assert cmd(conn, "lru mode segmented") == b"OK"
        assert cmd(conn, "lru mode other") == b"ERROR"
        assert cmd(conn, "lru temp_ttl 100") == b"OK"
        s = stats(conn, "settings")
        assert (s["temp_lru"], s["temporary_ttl"]) == ("yes", "100")
        assert cmd(conn, "lru temp_ttl -1") == b"OK"
        assert stats(conn, "settings")["temp_lru"] == "no"


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", SERVERS)
def test_lru_tune_changes_the_hot_share(start_server, kind):
    srv = start_server(["-m", "16"], kind=kind)
    with RawConn(srv.port) as conn:
        assert cmd(conn, "lru tune 50 30 0.2 2.0") == b"OK"
        for i in range(40):
            store(conn, f"key{i}")
        assert wait_for(lambda: int(stats(conn, "items")["items:31:number_hot"]) <= 20)
        s = stats(conn, "items")
        assert int(s["items:31:number_hot"]) >= 19
        assert int(s["items:31:moves_to_cold"]) >= 19


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", SERVERS)
def test_flat_mode_stores_new_items_in_cold(start_server, kind):
    srv = start_server(["-m", "16"], kind=kind)
    with RawConn(srv.port) as conn:
        assert cmd(conn, "lru mode flat") == b"OK"
        for i in range(10):
            store(conn, f"key{i}")
        s = stats(conn, "items")
        assert (s["items:31:number_hot"], s["items:31:number_cold"]) == ("0", "10")


@pytest.mark.timeout(30)
@pytest.mark.parametrize("kind", SERVERS)
def test_no_lru_maintainer_has_no_segment_rows_or_lru_mode(start_server, kind):
    srv = start_server(["-m", "16", "-o", "no_lru_maintainer"], kind=kind)
    with RawConn(srv.port) as conn:
        store(conn, "a", value=b"x")
        s = stats(conn, "items")
        assert "items:1:number_hot" not in s and "items:1:moves_to_cold" not in s
        assert "lru_maintainer_juggles" not in stats(conn)
        assert cmd(conn, "lru mode flat") == b"ERROR"


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", SERVERS)
def test_evicted_time_and_direct_reclaims(start_server, kind):
    """`evicted_time` is how long the last evicted item had gone untouched (memcached: since its
    last access; slabcached: since its last write, the same for items never read), and
    `direct_reclaims` counts stores that had to free a chunk themselves."""
    srv = start_server(["-m", "6", "-o", "lru_maintainer,lru_crawler"], kind=kind)
    with RawConn(srv.port) as conn:
        for i in range(30):
            store(conn, f"old{i}")
        s = stats(conn, "items")
        assert (s["items:31:evicted_time"], s["items:31:direct_reclaims"]) == ("0", "0")
        time.sleep(2.2)
        # Store until the first eviction: it takes one of the first batch, over 2 s old.
        for i in range(120):
            store(conn, f"new{i}")
            s = stats(conn, "items")
            if int(s["items:31:evicted"]) > 0:
                break
        assert int(s["items:31:evicted"]) > 0
        assert 2 <= int(s["items:31:evicted_time"]) <= 4
        for i in range(120):
            store(conn, f"more{i}")
        s = stats(conn, "items")
        assert int(s["items:31:direct_reclaims"]) >= int(s["items:31:evicted"])
        assert int(stats(conn)["direct_reclaims"]) == int(s["items:31:direct_reclaims"])
        # Evicting the first batch, written over two seconds before, showed its age.
        assert any(get(conn, f"old{i}") is None for i in range(30))
        assert cmd(conn, "stats reset") == b"RESET"
        s = stats(conn, "items")
        assert (s["items:31:evicted_time"], s["items:31:direct_reclaims"]) == ("0", "0")
