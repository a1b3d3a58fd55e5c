"""Memory that moves: the global page pool, `slabs reassign`, the automove balancer, chunked large
items, the background LRU crawler (`lru_crawler crawl` / `metadump`) and `cache_memlimit`.

Every scenario was measured against Debian's memcached 1.6.18 first (SLABCACHED_TARGET=memcached);
the figures it showed are in each test's docstring. Pages are 1 MB and slab_chunk_max is half a
page (512 KB), as in memcached 1.6.

Two scenarios start the server with `-o slab_automove_window=3`, as memcached's own balancer tests
do: the balancer (mode 1, on by default) only decides once its window of one-second samples has
filled, which takes 30 s with the default window and about 3 s with a window of 3.
"""

from __future__ import annotations

import random
import re
import time
from urllib.parse import quote

import pytest

from slabtest import RawConn

PAGE = 1024 * 1024
CHUNK_MAX = PAGE // 2  # slab_chunk_max: larger values are stored across chunks
FAST_WINDOW = ["-o", "slab_automove_window=3"]


def pattern(seed: int, size: int) -> bytes:
    """`size` bytes that differ for every seed and never repeat with a short period, so a value
    read back can be checked against the key it was written under (a torn or shifted value shows)."""
    unit = b"%010d|" % seed
    reps = size // len(unit) + 1
    out = bytearray((unit * reps)[:size])
    # stamp the offset every 4 KB so equal-seed runs at different offsets differ too
    for off in range(0, size - 12, 4096):
        out[off:off + 12] = b"@%010d|" % off
    return bytes(out)


class Conn(RawConn):
    """RawConn plus the few commands these scenarios need."""

    def cmd(self, command: str | bytes) -> bytes:
        """Send one command line, return its one-line reply."""
        if isinstance(command, str):
            command = command.encode()
        self.send(command + b"\r\n")
        return self.line()

    def stats(self, arg: str = "") -> dict[str, str]:
        self.send(f"stats {arg}".strip().encode() + b"\r\n")
        out = {}
        while True:
            line = self.line()
            if line == b"END":
                return out
            parts = line.decode().split(" ", 2)
            assert parts[0] == "STAT" and len(parts) == 3, line
            out[parts[1]] = parts[2]

    def stat(self, name: str, arg: str = "") -> int:
        return int(self.stats(arg)[name])

    def slab_classes(self) -> dict[int, dict[str, int]]:
        """`stats slabs` as {class id: {field: value}} (the totals are left out)."""
        classes: dict[int, dict[str, int]] = {}
        for name, value in self.stats("slabs").items():
            m = re.fullmatch(r"(\d+):(\w+)", name)
            if m:
                classes.setdefault(int(m[1]), {})[m[2]] = int(value)
        return classes

    def set(self, key: bytes, value: bytes, exptime: int = 0, flags: int = 0) -> bytes:
        self.send(b"set %s %d %d %d\r\n%s\r\n" % (key, flags, exptime, len(value), value))
        return self.line()

    def set_many(self, items: list[tuple[bytes, bytes]], exptime: int = 0) -> list[bytes]:
        """Pipelined sets (with replies): one write, then one reply line per set."""
        self.send(b"".join(b"set %s 0 %d %d\r\n%s\r\n" % (k, exptime, len(v), v) for k, v in items))
        return [self.line() for _ in items]

    def get(self, key: bytes) -> bytes | None:
        self.send(b"get " + key + b"\r\n")
        header = self.line()
        if header == b"END":
            return None
        parts = header.split()
        assert parts[0] == b"VALUE" and parts[1] == key, header
        data = self.exact(int(parts[3]))
        assert self.exact(2) == b"\r\n", f"value of {key!r} not followed by CRLF"
        assert self.line() == b"END"
        return data

    def gets_cas(self, key: bytes) -> int:
        self.send(b"gets " + key + b"\r\n")
        parts = self.line().split()
        assert parts[0] == b"VALUE", parts
        self.exact(int(parts[3]) + 2)
        assert self.line() == b"END"
        return int(parts[4])

    def metadump(self, arg: str = "all") -> list[bytes] | bytes:
        """`lru_crawler metadump ARG`: the key lines (each ends in a bare LF, the list in END CRLF,
        as memcached writes it), or the one-line reply when the server refuses."""
        self.send(f"lru_crawler metadump {arg}".encode() + b"\r\n")
        while True:
            if self.buf.startswith(b"END\r\n") or b"\nEND\r\n" in self.buf:
                end = self.buf.index(b"END\r\n")
                body, self.buf = self.buf[:end], self.buf[end + 5:]
                assert body == b"" or body.endswith(b"\n"), body[-100:]
                lines = body.split(b"\n")[:-1]
                for line in lines:
                    assert not line.endswith(b"\r"), f"metadump lines end in LF only: {line!r}"
                return lines
            if b"\r\n" in self.buf and not self.buf.startswith(b"key="):
                return self.line()
            self._fill()


def wait_for(what: str, probe, timeout: float, interval: float = 0.05, detail=None):
    """Poll `probe()` until it returns something true; fail after `timeout` s, showing
    `detail()` (the figures that were waited on) if given."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            shown = f" ({detail()})" if detail else ""
            pytest.fail(f"{what}: not reached within {timeout} s{shown}")
        time.sleep(interval)


def check_miss_or_intact(conn: Conn, keyed: dict[bytes, bytes]) -> int:
    """Every key reads back as a miss or exactly its value; returns the number of hits."""
    hits = 0
    for key, value in keyed.items():
        got = conn.get(key)
        if got is not None:
            assert got == value, f"{key!r}: value changed ({len(got)} bytes, expected {len(value)})"
            hits += 1
    return hits


def fill_small_until_evicting(conn: Conn, size: int = 100) -> int:
    """Write distinct `size`-byte values (noreply, in batches) until the server evicts; returns
    how many were written."""
    written = 0
    while True:
        batch = b"".join(
            b"set small:%d 0 0 %d noreply\r\n%s\r\n" % (i, size, pattern(i, size))
            for i in range(written, written + 5000))
        conn.send(batch)
        written += 5000
        if conn.stat("evictions") > 0:
            return written
        assert written < 2_000_000, "no eviction after 2 million small values"


# 1. size shift -------------------------------------------------------------------------------

def test_size_shift_moves_pages_to_the_new_size(start_server):
    """-m 16 full of 100-byte values, then a steady stream of 20 KB values.

    memcached 1.6.18 (-o slab_automove_window=3): the 100-byte class holds all 16 pages; the first
    20 KB value gets the new class's first page (over the limit: total_malloced 17 MB) and every
    20 KB set is STORED from the first one on (evicting within that page at first); the first
    page moves 3.2 s after the server started (slabs_moved 1), then about one page per 0.8 s.
    """
    srv = start_server(["-m", "16", "-t", "2"] + FAST_WINDOW)
    with Conn(srv.port, timeout=10) as conn:
        fill_small_until_evicting(conn)
        big = {}
        failures = []
        stored = 0
        moved = 0
        start = time.monotonic()
        while stored < 2000 or moved < 1:
            assert time.monotonic() - start < 10, (
                f"after 10 s: {stored} 20 KB values stored, slabs_moved {moved}")
            batch = [(b"big:%d" % i, pattern(i, 20_000)) for i in range(stored, stored + 50)]
            for (key, value), reply in zip(batch, conn.set_many(batch)):
                if reply == b"STORED":
                    big[key] = value
                else:
                    failures.append((key, reply))
            stored += len(batch)
            moved = conn.stat("slabs_moved")
            time.sleep(0.1)  # a steady stream over several seconds, not one burst
        elapsed = time.monotonic() - start
        # nearly all: memcached refuses none
        assert len(failures) <= stored // 100, (
            f"{len(failures)} of {stored} 20 KB sets failed, e.g. {failures[:3]}")
        assert not any(b"out of memory" in reply for _, reply in failures), failures[:3]
        # the class of the 20 KB values now has more than its first page
        classes = conn.slab_classes()
        big_cls = [c for c, f in classes.items() if 20_000 < f["chunk_size"] <= 30_000
                   and f["used_chunks"] > 0]
        assert big_cls and classes[big_cls[0]]["total_pages"] >= 2, (elapsed, classes)
        # the most recent 20 KB values are there, intact; every other read is a miss or intact
        recent = [b"big:%d" % i for i in range(stored - 20, stored)]
        for key in recent:
            assert conn.get(key) == big[key], key
        check_miss_or_intact(conn, big)


def test_automove_2_moves_on_eviction(start_server):
    """`slabs automove 2` (aggressive) moves a page as soon as a class evicts.

    memcached 1.6.18: after `slabs automove 2`, 2 pages moved within 0.2 s of the first 20 KB
    sets and 15 of 16 pages within 1.7 s, every set STORED.
    """
    srv = start_server(["-m", "16", "-t", "2"])
    with Conn(srv.port, timeout=10) as conn:
        assert conn.cmd("slabs automove 2") == b"OK"
        fill_small_until_evicting(conn)
        start = time.monotonic()
        sent = 0
        while conn.stat("slabs_moved") < 1:
            assert time.monotonic() - start < 3, "no page moved within 3 s in automove mode 2"
            batch = [(b"big:%d" % i, pattern(i, 20_000)) for i in range(sent, sent + 20)]
            assert set(conn.set_many(batch)) == {b"STORED"}
            sent += len(batch)
            time.sleep(0.05)


def test_automove_0_moves_nothing(start_server):
    """With the balancer off, the same size shift moves no page: the 20 KB values live in the
    one page their class got, evicting each other (memcached 1.6.18: slabs_moved stays 0, every
    set STORED)."""
    srv = start_server(["-m", "16", "-t", "2"] + FAST_WINDOW)
    with Conn(srv.port, timeout=10) as conn:
        assert conn.cmd("slabs automove 0") == b"OK"
        assert conn.stats("settings")["slab_automove"] == "0"
        fill_small_until_evicting(conn)
        start = time.monotonic()
        sent = 0
        while time.monotonic() - start < 5:  # past the 3-second window that moves pages in mode 1
            batch = [(b"big:%d" % i, pattern(i, 20_000)) for i in range(sent, sent + 50)]
            assert set(conn.set_many(batch)) == {b"STORED"}
            sent += len(batch)
            time.sleep(0.1)
        assert conn.stat("slabs_moved") == 0
        last = b"big:%d" % (sent - 1)
        assert conn.get(last) == pattern(sent - 1, 20_000)


# 2. growing values ---------------------------------------------------------------------------

def test_growing_values_up_to_1m(start_server):
    """Values from 1 KB to just under 1 MB in 16 KB steps (plus the sizes around slab_chunk_max),
    each under its own key and again under one reused key; every one is STORED and reads back
    identical at once, and at the end every key reads back as a miss or intact.

    memcached 1.6.18 at -m 64: all STORED, all read back; the largest value accepted under a
    1 MB item_size_max is item_size_max minus 59 bytes plus the key length.
    """
    srv = start_server(["-m", "64", "-t", "2"])
    sizes = list(range(1024, PAGE, 16 * 1024)) + [
        CHUNK_MAX - 100, CHUNK_MAX - 48, CHUNK_MAX, CHUNK_MAX + 1, CHUNK_MAX + 100,
        PAGE - 4096, PAGE - 1024]
    written = {}
    with Conn(srv.port, timeout=20) as conn:
        for n, size in enumerate(sizes):
            value = pattern(size, size)
            for key in (b"grow:%d" % size, b"same"):
                reply = conn.set(key, value)
                assert reply == b"STORED", f"{size}-byte value under {key!r}: {reply!r}"
                got = conn.get(key)
                assert got == value, f"{size}-byte value under {key!r} read back {len(got or b'')} bytes"
            written[b"grow:%d" % size] = value
        assert conn.get(b"same") == pattern(sizes[-1], sizes[-1])
        assert check_miss_or_intact(conn, written) > 0
        assert conn.stats("items")  # some class holds items
        # one byte over the item size limit is refused, and the old value is gone
        reply = conn.set(b"grow:%d" % (PAGE - 1024), b"x" * PAGE)
        assert reply == b"SERVER_ERROR object too large for cache", reply


# 3. large (chunked) values -------------------------------------------------------------------

@pytest.mark.parametrize("args,item_max,size", [
    (["-m", "64", "-I", "2m"], 2 * PAGE, 1_500_000),
    (["-m", "128", "-I", "4m"], 4 * PAGE, 3_900_000),
])
def test_large_values_span_chunks(start_server, args, item_max, size):
    """Values larger than slab_chunk_max (512 KB) with -I 2m / -I 4m.

    memcached 1.6.18: `stats settings` shows item_size_max 2097152 / 4194304 and slab_chunk_max
    524288 (pages stay 1 MB); a 1.5 MB value uses 3 chunks of the 524288-byte class 39 (plus a
    small header chunk), a 3.9 MB value 7 of them (plus the header and a 252696-byte tail chunk);
    `stats items` counts the item in the 524288-byte class (items:39:number 1, mem_requested =
    value + 62); after delete every chunk is free again (used_chunks 0, at times only a moment
    later). An append to a chunked
    item reads back as the concatenation; a value of item_size_max bytes is refused.
    """
    srv = start_server(args + ["-t", "2"])
    value = random.Random(size).randbytes(size)
    with Conn(srv.port, timeout=20) as conn:
        settings = conn.stats("settings")
        assert int(settings["item_size_max"]) == item_max
        assert int(settings["slab_chunk_max"]) == CHUNK_MAX

        assert conn.set(b"large", value, flags=7) == b"STORED"
        assert conn.get(b"large") == value
        stats = conn.stats()
        assert int(stats["curr_items"]) == 1
        assert int(stats["bytes"]) >= size

        classes = conn.slab_classes()
        max_cls = [c for c, f in classes.items() if f["chunk_size"] == CHUNK_MAX]
        assert len(max_cls) == 1, f"no class with chunk_size {CHUNK_MAX}: {classes}"
        chunk_class = classes[max_cls[0]]
        # at least the whole chunks of the value are in the largest class
        assert chunk_class["used_chunks"] >= size // CHUNK_MAX, chunk_class
        assert chunk_class["total_chunks"] == chunk_class["total_pages"] * 2, chunk_class
        items = conn.stats("items")
        assert int(items[f"items:{max_cls[0]}:number"]) == 1, items
        assert sum(int(v) for k, v in items.items() if k.endswith(":number")) == 1

        # the exact bytes, also after an append and an overwrite
        tail = b"appended-tail" * 77
        assert conn.cmd(b"append large 0 0 %d\r\n%s" % (len(tail), tail)) == b"STORED"
        assert conn.get(b"large") == value + tail
        other = random.Random(size + 1).randbytes(size - 12345)
        assert conn.set(b"large", other) == b"STORED"
        assert conn.get(b"large") == other
        near_max = random.Random(3).randbytes(item_max - 1024)
        assert conn.set(b"near-max", near_max) == b"STORED"
        assert conn.get(b"near-max") == near_max
        assert conn.get(b"large") == other

        assert conn.cmd("delete large") == b"DELETED"
        assert conn.cmd("delete near-max") == b"DELETED"
        assert conn.get(b"large") is None
        # memcached sometimes frees the chunks a moment after DELETED (seen: 3 chunks of class
        # 39 and the header chunk still used right after, none a second later)
        wait_for("every chunk free after the deletes",
                 lambda: all(f["used_chunks"] == 0 for f in conn.slab_classes().values()), 3)
        reply = conn.set(b"too-large", b"z" * item_max)
        assert reply == b"SERVER_ERROR object too large for cache", reply


# 4. slabs reassign ---------------------------------------------------------------------------

def reassign(conn: Conn, src: int, dst: int, timeout: float = 5) -> None:
    """`slabs reassign src dst` until it is accepted (BUSY: a move still runs), then wait for
    slabs_moved to count it."""
    before = conn.stat("slabs_moved")
    deadline = time.monotonic() + timeout
    while (reply := conn.cmd(f"slabs reassign {src} {dst}")).startswith(b"BUSY"):
        assert time.monotonic() < deadline, "still BUSY"
        time.sleep(0.05)
    assert reply == b"OK", (src, dst, reply)
    wait_for(f"slabs_moved above {before} after reassign {src} {dst}",
             lambda: conn.stat("slabs_moved") > before, timeout)


def test_slabs_reassign_replies_and_moves(start_server):
    """memcached 1.6.18 replies, measured: SAME is checked first (`5 5`), then BADCLASS (a class
    above the largest, or below -1; `-1 0` on an empty server, as no class has a spare page to
    pick), then NOSPARE (`1 2` before anything is stored; `0 1` while the global pool is empty);
    a non-number gives CLIENT_ERROR bad command line format and a wrong word count ERROR.

    150 values of 20 KB fill 4 pages of their class (48 chunks a page); `reassign src dst`
    answers OK and slabs_moved is 1 within 11 ms; src keeps 3 pages, dst gets a second;
    `-1 0` then moves a page of a class with a spare one (src or dst: memcached's pick rotates)
    to the global pool (slab_global_page_pool 1). The pool too only gives a page while it keeps
    one: `0 dst` is NOSPARE with 1 pooled page, OK with 2 (pool 1 after). Items of the moved
    pages are rescued into free chunks or evicted: every key reads back as a miss or intact.
    A class with one page answers NOSPARE; the source class still takes new values.
    """
    srv = start_server(["-m", "64", "-t", "2"])
    with Conn(srv.port, timeout=10) as conn:
        # the balancer off, so that only the moves asked for happen
        assert conn.cmd("slabs automove 0") == b"OK"
        assert conn.cmd("slabs reassign 5 5") == b"SAME src and dst class are identical"
        for args in ("100 1", "1 100", "1 -2", "-2 1", "-1 0"):
            assert conn.cmd(f"slabs reassign {args}") == b"BADCLASS invalid src or dst class id", args
        for args in ("1 2", "0 1"):
            assert conn.cmd(f"slabs reassign {args}") == b"NOSPARE source class has no spare pages", args
        for args in ("x y", "1 y", "x 1", "1.5 2"):
            reply = conn.cmd(f"slabs reassign {args}")
            assert reply == b"CLIENT_ERROR bad command line format", (args, reply)
        assert conn.cmd("slabs reassign 1") == b"ERROR"
        assert conn.cmd("slabs reassign") == b"ERROR"
        assert conn.cmd("slabs nonsense") == b"ERROR"

        big = {b"r:%d" % i: pattern(i, 20_000) for i in range(150)}
        assert set(conn.set_many(list(big.items()))) == {b"STORED"}
        mid = {b"q:%d" % i: pattern(i, 5_000) for i in range(50)}
        assert set(conn.set_many(list(mid.items()))) == {b"STORED"}
        classes = conn.slab_classes()
        src = next(c for c, f in classes.items() if f["used_chunks"] == 150)
        dst = next(c for c, f in classes.items() if f["used_chunks"] == 50)
        src_pages, dst_pages = classes[src]["total_pages"], classes[dst]["total_pages"]
        assert src_pages >= 3, classes[src]
        assert conn.stat("slabs_moved") == 0

        reassign(conn, src, dst)
        classes = conn.slab_classes()
        assert classes[src]["total_pages"] == src_pages - 1
        assert classes[dst]["total_pages"] == dst_pages + 1
        assert check_miss_or_intact(conn, big) > 0
        assert check_miss_or_intact(conn, mid) == len(mid)  # the destination lost nothing

        # -1: any class with a spare page; 0: the global page pool
        reassign(conn, -1, 0)
        assert conn.stat("slabs_moved") == 2
        assert conn.stat("slab_global_page_pool") == 1
        classes = conn.slab_classes()
        # memcached picks src or dst here (both have a spare page): one page fewer between them
        assert (classes[src]["total_pages"] + classes[dst]["total_pages"]
                == src_pages + dst_pages - 1), classes
        # the pool, like a class, only gives a page while it keeps one
        assert conn.cmd(f"slabs reassign 0 {dst}") == b"NOSPARE source class has no spare pages"
        reassign(conn, -1, 0)
        assert conn.stat("slab_global_page_pool") == 2
        classes = conn.slab_classes()
        assert (classes[src]["total_pages"] + classes[dst]["total_pages"]
                == src_pages + dst_pages - 2), classes
        # and from the pool to a class
        dst_now = classes[dst]["total_pages"]
        reassign(conn, 0, dst)
        assert conn.stat("slabs_moved") == 4
        assert conn.stat("slab_global_page_pool") == 1
        assert conn.slab_classes()[dst]["total_pages"] == dst_now + 1
        assert check_miss_or_intact(conn, big) > 0
        assert check_miss_or_intact(conn, mid) == len(mid)

        # a class with a single page has none to spare
        assert conn.set(b"tiny", b"t") == b"STORED"
        tiny_cls = next(c for c, f in conn.slab_classes().items()
                        if f["used_chunks"] == 1 and f["chunk_size"] < 1000)
        assert conn.slab_classes()[tiny_cls]["total_pages"] == 1
        assert conn.cmd(f"slabs reassign {tiny_cls} {dst}") == b"NOSPARE source class has no spare pages"

        # the source class still takes values, and they read back
        fresh = {b"r2:%d" % i: pattern(10_000 + i, 20_000) for i in range(60)}
        assert set(conn.set_many(list(fresh.items()))) == {b"STORED"}
        recent = dict(list(fresh.items())[-20:])
        assert check_miss_or_intact(conn, recent) == len(recent)
        assert conn.get(b"tiny") == b"t"


def test_slabs_automove_replies(start_server):
    """`slabs automove 0|1|2` answer OK and show in `stats settings`; 3 is ERROR, a non-number
    CLIENT_ERROR bad command line format (memcached 1.6.18). The balancer is on by default in
    mode 1."""
    srv = start_server(["-m", "64", "-t", "2"])
    with Conn(srv.port) as conn:
        settings = conn.stats("settings")
        assert settings["slab_automove"] == "1"
        assert settings["slab_reassign"] == "yes"
        assert int(settings["slab_chunk_max"]) == CHUNK_MAX
        for level in ("0", "2", "1"):
            assert conn.cmd(f"slabs automove {level}") == b"OK", level
            assert conn.stats("settings")["slab_automove"] == level
        assert conn.cmd("slabs automove 3") == b"ERROR"
        assert conn.cmd("slabs automove x") == b"CLIENT_ERROR bad command line format"
        assert conn.stats("settings")["slab_automove"] == "1"


def test_slabs_reassign_disabled(start_server):
    """-o no_slab_reassign: `slabs reassign` answers CLIENT_ERROR slab reassignment disabled."""
    srv = start_server(["-m", "64", "-t", "2", "-o", "no_slab_reassign"])
    with Conn(srv.port) as conn:
        assert conn.stats("settings")["slab_reassign"] == "no"
        assert conn.cmd("slabs reassign 1 2") == b"CLIENT_ERROR slab reassignment disabled"


# 5. crawler reclaim --------------------------------------------------------------------------

def test_crawler_reclaims_expired_items(start_server):
    """300 items with a 1 s TTL in three classes, each class's expiring items between 100 that
    never expire (so that every LRU tail holds live items, and only a crawl finds the dead ones);
    past the expiry, `lru_crawler crawl all` answers OK and the crawler reclaims them with no
    get: crawler_reclaimed reaches 300 and curr_items drops to 300.

    memcached 1.6.18 (6 runs of 6, also with 5 s of waiting): nothing is reclaimed before the
    crawl (curr_items 600, reclaimed 0); right after it crawler_reclaimed is 300 and curr_items
    300 (within 10 ms). Without the live items at the tails its LRU maintainer reclaims some of
    them first (counted under `reclaimed`), which is why they are there.
    """
    srv = start_server(["-m", "64", "-t", "2"])
    sizes = (10, 500, 3000)
    with Conn(srv.port, timeout=10) as conn:
        assert conn.cmd("lru_crawler crawl 0") == b"BADCLASS invalid class id"
        keep = {b"keep:%d" % i: pattern(i, sizes[i % 3]) for i in range(300)}
        gone = {b"gone:%d" % i: pattern(i, sizes[i % 3]) for i in range(300)}
        assert set(conn.set_many(list(keep.items())[:150])) == {b"STORED"}
        assert set(conn.set_many(list(gone.items()), exptime=1)) == {b"STORED"}
        assert set(conn.set_many(list(keep.items())[150:])) == {b"STORED"}
        assert conn.stat("curr_items") == 600
        time.sleep(2.2)  # past the expiry; no get of the expired keys

        assert conn.cmd("lru_crawler crawl all") == b"OK"
        wait_for("crawler_reclaimed 300",
                 lambda: conn.stat("crawler_reclaimed") >= 300, timeout=10)
        stats = conn.stats()
        assert int(stats["crawler_reclaimed"]) == 300
        assert int(stats["curr_items"]) == 300
        items = conn.stats("items")
        per_class = [int(v) for k, v in items.items() if k.endswith(":crawler_reclaimed")]
        assert sum(per_class) == 300, items
        assert len([n for n in per_class if n == 100]) == 3, per_class
        assert conn.cmd("lru_crawler crawl 1,2") == b"OK"  # a list of classes is accepted too

        for key, value in keep.items():
            assert conn.get(key) == value, key
        for key in list(gone)[:30]:
            assert conn.get(key) is None, key


def test_crawler_reclaims_flushed_items(start_server):
    """After flush_all, a crawl frees the flushed items: curr_items drops to 0 within 10 s
    (memcached 1.6.18: at once, counted under `reclaimed`)."""
    srv = start_server(["-m", "64", "-t", "2"])
    with Conn(srv.port, timeout=10) as conn:
        items = [(b"f:%d" % i, pattern(i, 100)) for i in range(300)]
        assert set(conn.set_many(items)) == {b"STORED"}
        assert conn.cmd("flush_all") == b"OK"
        assert conn.cmd("lru_crawler crawl all") == b"OK"
        wait_for("curr_items 0 after flush_all and a crawl",
                 lambda: conn.stat("curr_items") == 0, timeout=10)
        assert all(conn.get(k) is None for k, _ in items[:20])


# 6. metadump ---------------------------------------------------------------------------------

METADUMP_LINE = re.compile(
    rb"key=(\S+) exp=(-1|\d+) la=(\d+) cas=(\d+) fetch=(yes|no) cls=(\d+) size=(\d+)")


def parse_metadump(lines: list[bytes]) -> dict[bytes, dict[str, object]]:
    out = {}
    for line in lines:
        m = METADUMP_LINE.fullmatch(line)
        assert m, f"not a metadump line: {line!r}"
        out[m[1]] = {"exp": int(m[2]), "la": int(m[3]), "cas": int(m[4]),
                     "fetch": m[5] == b"yes", "cls": int(m[6]), "size": int(m[7])}
    return out


def metadump_of(conn: Conn, arg: str, want: set[bytes], timeout: float = 5):
    """`metadump ARG` until it lists exactly the keys `want`, each once. memcached's dump walks
    the LRUs while its maintainer moves items between them, so right after a burst of sets and
    gets it can miss or repeat an item (measured: 10 of 11 keys, then 11 of 11 0.3 s later)."""
    deadline = time.monotonic() + timeout
    while True:
        lines = conn.metadump(arg)
        assert isinstance(lines, list), f"metadump {arg}: {lines!r}"
        dump = parse_metadump(lines)
        if len(lines) == len(want) and set(dump) == want:
            return dump
        if time.monotonic() > deadline:
            pytest.fail(f"metadump {arg}: {len(lines)} lines; missing "
                        f"{sorted(want - set(dump))[:5]}, extra {sorted(set(dump) - want)[:5]}")
        time.sleep(0.2)


# keys with the bytes memcached URI-encodes: everything but A-Z a-z 0-9 - . _ ~ becomes %XX
ODD_KEYS = [b"plain", b"with%pct", b"utf\xc3\xa9", b"a:b/c?d&e=f+g", b"tilde~_-.",
            b"brace{}[]", b"quote\"'`", b"hash#!$*(),;@", b"ctl\x01x", b"hi\x7fdel",
            b"back\\slash", b"lt<gt>|^"]


def test_metadump_lists_every_key(start_server):
    """`lru_crawler metadump all` lists every live key once, `key=<uri-escaped> exp=.. la=..
    cas=.. fetch=yes|no cls=.. size=..` each (LF-terminated), then END.

    memcached 1.6.18, measured: keys escaped as %XX with upper-case hex for every byte but
    A-Z a-z 0-9 - . _ ~ (so `with%pct` is `with%25pct`, `utf\\xc3\\xa9` is `utf%C3%A9`); exp -1
    without expiry, else the absolute unix time; la the last access (unix time); cas as `gets`
    shows it; fetch=yes once read; cls the slab class (1 for small values, 17 for 3,000 bytes);
    size the whole item (61 bytes for a 1-byte key and a 1-byte value); `metadump 17,1` lists
    the keys of those classes; class 0 or a non-number in the list is BADCLASS.
    """
    srv = start_server(["-m", "64", "-t", "2"])
    with Conn(srv.port, timeout=10) as conn:
        now = time.time()
        for key in ODD_KEYS:
            assert conn.set(key, b"abc", flags=5) == b"STORED", key
        assert conn.set(b"ttl100", b"x", exptime=100) == b"STORED"
        abs_exp = int(now) + 500
        assert conn.set(b"ttl-abs", b"y", exptime=abs_exp) == b"STORED"
        assert conn.set(b"big", b"z" * 3000) == b"STORED"
        many = [(b"many-%d" % i, pattern(i, (20, 200, 2000)[i % 3])) for i in range(3000)]
        assert set(conn.set_many(many)) == {b"STORED"}
        assert conn.get(b"plain") == b"abc"
        assert conn.get(b"many-7") == many[7][1]

        expected = {quote(k, safe="").encode(): k for k in ODD_KEYS}
        assert quote(b"with%pct", safe="") == "with%25pct"  # what memcached prints
        for k, _ in many:
            expected[quote(k, safe="").encode()] = k
        expected.update({b"ttl100": b"ttl100", b"ttl-abs": b"ttl-abs", b"big": b"big"})
        dump = metadump_of(conn, "all", set(expected))

        for shown, key in list(expected.items())[:len(ODD_KEYS)] + [(b"big", b"big")]:
            entry = dump[shown]
            assert entry["exp"] == -1, (key, entry)
            assert abs(entry["la"] - now) <= 3, (key, entry)
            assert entry["cas"] == conn.gets_cas(key), key
            assert entry["size"] >= len(key) + 3, (key, entry)
        assert abs(dump[b"ttl100"]["exp"] - (now + 100)) <= 3, dump[b"ttl100"]
        assert abs(dump[b"ttl-abs"]["exp"] - abs_exp) <= 1, dump[b"ttl-abs"]
        assert dump[b"plain"]["fetch"] is True
        assert dump[b"many-7"]["fetch"] is True
        assert dump[b"with%25pct"]["fetch"] is False
        assert dump[b"many-8"]["fetch"] is False
        assert dump[b"big"]["size"] >= 3000

        # cls agrees with `stats items`, and bigger values sit in higher classes
        per_class: dict[int, int] = {}
        for entry in dump.values():
            per_class[entry["cls"]] = per_class.get(entry["cls"], 0) + 1
        items = conn.stats("items")
        for cls, count in per_class.items():
            assert int(items[f"items:{cls}:number"]) == count, (cls, count)
        small_cls, big_cls = dump[b"plain"]["cls"], dump[b"big"]["cls"]
        assert small_cls < dump[b"many-1"]["cls"] < big_cls

        # a list of classes: exactly the keys of those classes
        for arg, classes in ((f"{big_cls},{small_cls}", {small_cls, big_cls}), (str(big_cls), {big_cls})):
            metadump_of(conn, arg, {k for k, e in dump.items() if e["cls"] in classes})
        for arg in ("0", "1,x", "all,1", "64"):
            assert conn.metadump(arg) == b"BADCLASS invalid class id", arg

        # deleted and expired keys are not listed
        assert conn.cmd("delete many-0") == b"DELETED"
        assert conn.set(b"short", b"s", exptime=1) == b"STORED"
        time.sleep(2.1)
        metadump_of(conn, "all", set(expected) - {b"many-0"})


def test_metadump_refused(start_server):
    """-X (dump disabled): `ERROR metadump not allowed`; `lru_crawler disable` (OK, also twice):
    metadump and crawl answer `CLIENT_ERROR lru crawler disabled`; `enable` (OK) restores them."""
    srv = start_server(["-m", "64", "-t", "2", "-X"])
    with Conn(srv.port) as conn:
        assert conn.set(b"k", b"v") == b"STORED"
        assert conn.metadump("all") == b"ERROR metadump not allowed"
        assert conn.cmd("lru_crawler crawl all") == b"OK"  # -X refuses dumps, not crawls

    srv = start_server(["-m", "64", "-t", "2"])
    with Conn(srv.port) as conn:
        assert conn.set(b"k", b"v") == b"STORED"
        assert conn.cmd("lru_crawler disable") == b"OK"
        assert conn.cmd("lru_crawler disable") == b"OK"
        assert conn.metadump("all") == b"CLIENT_ERROR lru crawler disabled"
        assert conn.cmd("lru_crawler crawl all") == b"CLIENT_ERROR lru crawler disabled"
        assert conn.cmd("lru_crawler enable") == b"OK"
        metadump_of(conn, "all", {b"k"})
        assert conn.cmd("lru_crawler crawl all") == b"OK"
        assert conn.cmd("lru_crawler nonsense") == b"ERROR"


# 7. cache_memlimit ---------------------------------------------------------------------------

def test_cache_memlimit_shrinks_and_grows(start_server):
    """-m 64 filled with 1,000-byte values, then `cache_memlimit 8`.

    memcached 1.6.18 (-o slab_automove_window=3), measured: OK; limit_maxbytes and `stats
    settings` maxbytes read 8388608 at once; total_malloced stays 64 MB while the pages are
    full (new values of the same size are STORED by evicting, no page added); after 90% of the
    keys are deleted the balancer moves the emptied pages to the global pool and frees them:
    total_malloced is 8388608 two seconds later (56 pages moved) and all 5,664 remaining values
    read back intact. `cache_memlimit 0`/`1` answer MEMLIMIT_TOO_SMALL; back at 64, 20 MB more
    values are STORED with no eviction and total_malloced grows again (29 MB).
    """
    srv = start_server(["-m", "64", "-t", "2"] + FAST_WINDOW)
    size = 1000
    with Conn(srv.port, timeout=20) as conn:
        count = (80 << 20) // size
        for first in range(0, count, 1000):
            conn.send(b"".join(b"set m:%d 0 0 %d noreply\r\n%s\r\n" % (i, size, pattern(i, size))
                               for i in range(first, first + 1000)))
        assert conn.stat("evictions") > 0
        full = conn.stat("total_malloced", "slabs")
        assert full <= 64 * PAGE

        assert conn.cmd("cache_memlimit 0").startswith(b"MEMLIMIT_TOO_SMALL")
        assert conn.cmd("cache_memlimit 1") == b"MEMLIMIT_TOO_SMALL cannot set maxbytes to less than 8m"
        assert conn.cmd("cache_memlimit 8") == b"OK"
        wait_for("limit_maxbytes 8 MB", lambda: conn.stat("limit_maxbytes") == 8 * PAGE, 3)
        assert int(conn.stats("settings")["maxbytes"]) == 8 * PAGE

        # over the new limit: values of the same size still store, by evicting, without growing
        evictions = conn.stat("evictions")
        more = [(b"m:%d" % i, pattern(i, size)) for i in range(count, count + 2000)]
        assert set(conn.set_many(more)) == {b"STORED"}
        assert conn.stat("evictions") > evictions
        assert conn.stat("total_malloced", "slabs") <= full

        # empty most pages: they go back, down to the new limit
        conn.send(b"".join(b"delete m:%d noreply\r\n" % i
                           for i in range(count + 2000) if i % 10 != 0))
        wait_for("total_malloced down to 8 MB after the deletes",
                 lambda: conn.stat("total_malloced", "slabs") <= 8 * PAGE, timeout=10,
                 detail=lambda: f"total_malloced {conn.stat('total_malloced', 'slabs')}, "
                                f"slabs_moved {conn.stat('slabs_moved')}")
        survivors = {b"m:%d" % i: pattern(i, size) for i in range(0, count + 2000, 10)}
        hits = check_miss_or_intact(conn, survivors)
        assert hits > 0
        assert conn.stat("total_malloced", "slabs") <= 8 * PAGE

        # and back up: new values fit without evicting anything
        assert conn.cmd("cache_memlimit 64") == b"OK"
        assert conn.stat("limit_maxbytes") == 64 * PAGE
        evictions = conn.stat("evictions")
        fresh = [(b"n:%d" % i, pattern(i, size)) for i in range(20_000)]
        for first in range(0, len(fresh), 1000):
            assert set(conn.set_many(fresh[first:first + 1000])) == {b"STORED"}
        assert conn.stat("evictions") == evictions
        assert conn.stat("total_malloced", "slabs") > 16 * PAGE
        assert check_miss_or_intact(conn, dict(fresh[-100:])) == 100


# 8. expired memory reused --------------------------------------------------------------------

def test_expired_items_reclaimed_without_traffic(start_server):
    """140 values of 20 KB with a 1 s TTL take 3 pages of their class; with no command but
    `stats`, the expired items are reclaimed in the background (curr_items 0, used_chunks 0),
    and 140 new values of the same size reuse those pages: total_pages of the class is unchanged.

    memcached 1.6.18: curr_items dropped from 140 to 0 two seconds after the sets (the LRU
    maintainer; crawler_reclaimed stayed 0); the new values took no new page (3 pages).
    """
    srv = start_server(["-m", "64", "-t", "2"])
    with Conn(srv.port, timeout=10) as conn:
        old = [(b"t:%d" % i, pattern(i, 20_000)) for i in range(140)]
        assert set(conn.set_many(old, exptime=1)) == {b"STORED"}
        classes = conn.slab_classes()
        cls = next(c for c, f in classes.items() if f["used_chunks"] == 140)
        pages = classes[cls]["total_pages"]
        assert pages >= 3
        wait_for("the expired items reclaimed", lambda: conn.stat("curr_items") == 0,
                 timeout=10, interval=0.25,
                 detail=lambda: f"curr_items {conn.stat('curr_items')}")
        assert conn.slab_classes()[cls]["used_chunks"] == 0

        new = [(b"n:%d" % i, pattern(1000 + i, 20_000)) for i in range(140)]
        assert set(conn.set_many(new)) == {b"STORED"}
        classes = conn.slab_classes()
        assert classes[cls]["total_pages"] == pages, classes[cls]
        assert classes[cls]["used_chunks"] == 140
        for key, value in new:
            assert conn.get(key) == value, key
        for key, _ in old[:20]:
            assert conn.get(key) is None, key
