"""`watch`: memcached's log streams, over TCP against the release binary, and against
Debian's memcached 1.6.18 wherever the bytes must match.

Log lines end in a bare "\\n" (only the `OK` ends in "\\r\\n"); they are compared with the
parts that differ run to run (time, gid, socket numbers, ports) replaced.
"""

import re
import socket
import time

import pytest

from slabtest import RawConn

KINDS = ["slabcached", "memcached"]


class Watcher:
    """A `watch` connection: sends the command, checks `OK`, reads log lines."""

    def __init__(self, srv, streams: str = "", timeout: float = 5.0, rcvbuf: int = 0):
        if rcvbuf:
            # Set before connecting, so the TCP window is small from the start.
            self.sock = socket.socket()
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            self.sock.settimeout(timeout)
            self.sock.connect(("127.0.0.1", srv.port))
        else:
            self.sock = srv.connect(timeout=timeout)
        self.buf = b""
        self.sock.sendall(f"watch {streams}\r\n".encode() if streams else b"watch\r\n")
        assert self.read_until(b"\r\n") == b"OK\r\n"

    def read_until(self, end: bytes) -> bytes:
        while end not in self.buf:
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise ConnectionError(f"watcher closed; unread {self.buf[:200]!r}")
            self.buf += chunk
        i = self.buf.index(end) + len(end)
        data, self.buf = self.buf[:i], self.buf[i:]
        return data

    def line(self) -> str:
        return self.read_until(b"\n").decode()

    def lines_for(self, seconds: float) -> list[str]:
        """Every line that arrives within `seconds`."""
        deadline = time.monotonic() + seconds
        out = []
        while True:
            while b"\n" in self.buf:
                out.append(self.line())
            left = deadline - time.monotonic()
            if left <= 0:
                return out
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(1 << 16)
            except socket.timeout:
                return out
            finally:
                self.sock.settimeout(5.0)
            if not chunk:
                return out
            self.buf += chunk

    def close(self) -> None:
        self.sock.close()


LINE = re.compile(r"^ts=\d+\.\d+ gid=(\d+) (type=.*)\n$")


def normalize(lines: list[str]) -> list[str]:
    """The lines without their time, gid (checked to be unique: lines of different threads
    may come out of gid order), fd numbers and ports."""
    out, gids = [], set()
    for line in lines:
        m = LINE.match(line)
        assert m, line
        gid = int(m.group(1))
        assert gid not in gids, lines
        gids.add(gid)
        body = re.sub(r"cfd=\d+", "cfd=N", m.group(2))
        body = re.sub(r"rport=\d+", "rport=P", body)
        # An expiry in the past shows as memcached's unsigned difference from its clock,
        # which depends on the server's uptime.
        body = re.sub(r"ttl=4294\d{6}", "ttl=PAST", body)
        out.append(body)
    return out


def stats(conn: RawConn) -> dict[str, str]:
    conn.send(b"stats\r\n")
    rows = {}
    while (line := conn.line()) != b"END":
        _, name, value = line.decode().split(" ", 2)
        rows[name] = value
    return rows


def stat_names(conn: RawConn) -> list[str]:
    conn.send(b"stats\r\n")
    names = []
    while (line := conn.line()) != b"END":
        names.append(line.decode().split(" ")[1])
    return names


SESSION = [
    (b"set foo 0 100 3\r\nbar\r\n", b"STORED"),
    (b"get foo nope\r\n", b"END"),
    (b"add foo 0 0 1\r\nx\r\n", b"NOT_STORED"),
    (b"append foo 0 0 2\r\nzz\r\n", b"STORED"),
    (b"prepend nope 0 0 2\r\nzz\r\n", b"NOT_STORED"),
    (b"cas foo 0 0 1 999\r\nq\r\n", b"EXISTS"),
    (b"gets foo\r\n", b"END"),
    (b"touch foo 10\r\n", b"TOUCHED"),
    (b"incr foo 1\r\n", b"CLIENT_ERROR cannot increment or decrement non-numeric value"),
    (b"set n 0 0 1\r\n5\r\n", b"STORED"),
    (b"decr n 2\r\n", b"3"),
    (b"delete foo\r\n", b"DELETED"),
    (b"delete foo\r\n", b"NOT_FOUND"),
    (b"set k\xc3\xa9/y%+ 0 0 1\r\na\r\n", b"STORED"),
    (b"replace zz 0 0 1\r\na\r\n", b"NOT_STORED"),
    (b"mg n v\r\n", b"3"),
    (b"mg nope v\r\n", b"EN"),
    (b"me n\r\n", b"ME n"),
    (b"me nope\r\n", b"EN"),
    (b"ms mk 2\r\nab\r\n", b"HD"),
    (b"set ex 0 -1 1\r\na\r\n", b"STORED"),
    (b"get ex\r\n", b"END"),
    (b"set fl 0 0 1\r\na\r\n", b"STORED"),
    (b"flush_all\r\n", b"OK"),
    (b"get fl\r\n", b"END"),
]


def settle(srv):
    """Let the server finish with the connection the start helper probed it with (its
    close would otherwise be logged to a watcher started right away)."""
    time.sleep(0.3)
    return srv


def run_session(srv, streams: str) -> list[str]:
    """The normalized lines a `watch <streams>` connection sees for SESSION, ending with
    the client's `quit`."""
    settle(srv)
    w = Watcher(srv, streams)
    c = RawConn(srv.port)
    for cmd, last in SESSION:
        c.send(cmd)
        while not c.line().startswith(last):
            pass
    c.send(b"quit\r\n")
    c.close()
    lines = w.lines_for(1.5)
    w.close()
    return normalize(lines)


@pytest.mark.parametrize("streams", ["fetchers mutations connevents", "mutations", "", "evictions"])
def test_lines_match_memcached(start_server, streams):
    """Every line of a session (gets, every store mode, touch, incr/decr, delete, meta,
    a key needing URI encoding) as memcached 1.6.18 writes it."""
    ours = run_session(start_server(["-m", "64", "-t", "2"]), streams)
    theirs = run_session(start_server(["-m", "64", "-t", "2"], kind="memcached"), streams)
    assert ours == theirs
    if streams == "":
        assert ours and all(line.startswith("type=item_get ") for line in ours)
    if streams == "mutations":
        assert ours and all(line.startswith("type=item_store ") for line in ours)
    if streams == "evictions":
        assert ours == []


@pytest.mark.parametrize("kind", KINDS)
def test_filters_per_watcher(start_server, kind):
    """Two watchers of different streams each see their own; the item_get a store makes
    comes before its item_store."""
    srv = start_server(["-m", "64", "-t", "2"], kind=kind)
    fetch = Watcher(srv, "fetchers")
    mutate = Watcher(srv, "mutations")
    both = Watcher(srv, "mutations fetchers")
    with RawConn(srv.port) as c:
        c.send(b"set a 0 0 1\r\nx\r\nget a\r\n")
        assert c.line() == b"STORED"
        assert c.line() == b"VALUE a 0 1"
        assert c.line() == b"x"
        assert c.line() == b"END"
    f = normalize(fetch.lines_for(1.0))
    m = normalize(mutate.lines_for(0.2))
    b = normalize(both.lines_for(0.2))
    assert f == [
        "type=item_get key=a status=not_found clsid=0 cfd=N size=0",
        "type=item_get key=a status=found clsid=1 cfd=N size=1",
    ]
    assert m == ["type=item_store key=a status=stored cmd=set ttl=0 clsid=1 cfd=N size=1"]
    assert b == [f[0], m[0], f[1]]


@pytest.mark.parametrize("kind", KINDS)
def test_cfd_is_the_stats_conns_id(start_server, kind):
    srv = start_server(["-m", "64", "-t", "2"], kind=kind)
    w = Watcher(srv, "fetchers")
    with RawConn(srv.port) as c:
        c.send(b"stats conns\r\n")
        ids = set()
        while (line := c.line()) != b"END":
            ids.add(int(line.split(b":")[0].split(b" ")[1]))
        c.send(b"get k\r\n")
        assert c.line() == b"END"
        line = w.line()
        cfd = int(re.search(r"cfd=(\d+)", line).group(1))
        assert cfd in ids
        # The watcher itself stays listed in stats conns, in state conn_watch.
        assert len(ids) >= 2
        c.send(b"stats conns\r\n")
        states = []
        while (line := c.line()) != b"END":
            if line.split(b" ")[1].endswith(b":state"):
                states.append(line.split(b" ")[2])
        assert states.count(b"conn_watch") == 1


@pytest.mark.parametrize("kind", KINDS)
def test_connevents(start_server, kind):
    srv = settle(start_server(["-m", "64", "-t", "2", "-o", "idle_timeout=1"], kind=kind))
    w = Watcher(srv, "connevents")
    normal = RawConn(srv.port)
    normal.send(b"version\r\n")
    normal.line()
    normal.send(b"quit\r\n")
    hangup = RawConn(srv.port)
    hangup.send(b"version\r\n")
    hangup.line()
    hangup.close()
    http = RawConn(srv.port)
    http.send(b"GET / HTTP/1.1\r\n")
    idle = RawConn(srv.port)
    lines = normalize(w.lines_for(4.5))
    for c in (normal, http, idle):
        c.close()
    new = "type=conn_new rip=127.0.0.1 rport=P transport=tcp cfd=N"
    close = "type=conn_close rip=127.0.0.1 rport=P transport=tcp reason={} cfd=N"
    assert lines.count(new) == 4
    assert sorted(line for line in lines if line != new) == sorted(
        close.format(r) for r in ["normal", "normal", "error", "idle_timeout"]
    )
    # The idle watcher itself is never timed out (memcached's watchers are not either).
    w.sock.settimeout(0.2)
    with pytest.raises(socket.timeout):
        w.sock.recv(1)


@pytest.mark.parametrize("kind", KINDS)
def test_evictions(start_server, kind):
    srv = start_server(["-m", "2", "-t", "2"], kind=kind)
    value = b"B" * 11000
    with RawConn(srv.port) as c:
        for i in range(400):
            c.send(b"set n,foo%d 0 0 %d noreply\r\n%s\r\n" % (i, len(value), value))
        c.send(b"version\r\n")
        c.line()
        w = Watcher(srv, "evictions")
        for i in range(50):
            c.send(b"set more%d 0 0 %d noreply\r\n%s\r\n" % (i, len(value), value))
        c.send(b"version\r\n")
        c.line()
    lines = normalize(w.lines_for(1.5))
    assert lines
    pattern = re.compile(r"^type=eviction key=n%2Cfoo\d+ fetch=no ttl=-1 la=\d+ clsid=\d+ size=11000$")
    assert all(pattern.match(line) for line in lines), lines[:3]


@pytest.mark.parametrize("kind", KINDS)
def test_refusals(start_server, kind):
    srv = start_server(["-m", "64", "-t", "2"], kind=kind)
    with RawConn(srv.port) as c:
        # 1.6.18 has no `deletions` stream.
        c.send(b"watch deletions\r\n")
        assert c.line() == b"ERROR"
        c.send(b"watch fetchers bogus\r\n")
        assert c.line() == b"ERROR"
        c.send(b"watch bogus noreply\r\nversion\r\n")
        assert c.line().startswith(b"VERSION ")
        # A reply still queued in the same batch refuses the watch.
        c.send(b"version\r\nwatch\r\n")
        assert c.line().startswith(b"VERSION ")
        assert c.line() == b"ERROR cannot pipeline other commands before watch"
    disabled = start_server(["-m", "64", "-t", "2", "-W"], kind=kind)
    with RawConn(disabled.port) as c:
        c.send(b"watch bogus\r\n")
        assert c.line() == b"CLIENT_ERROR watch commands not allowed"
        c.send(b"watch\r\n")
        assert c.line() == b"CLIENT_ERROR watch commands not allowed"


@pytest.mark.parametrize("kind", KINDS)
def test_watcher_limit_and_stats(start_server, kind):
    srv = start_server(["-m", "64", "-t", "2"], kind=kind)
    watchers = [Watcher(srv) for _ in range(20)]
    with RawConn(srv.port) as c:
        c.send(b"watch\r\n")
        assert c.line() == b"WATCHER_TOO_MANY log watcher limit reached"
        deadline = time.monotonic() + 5
        while stats(c)["log_watchers"] != "20" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert stats(c)["log_watchers"] == "20"
        c.send(b"get x\r\n")
        assert c.line() == b"END"
        for w in watchers:
            assert "type=item_get key=x status=not_found" in w.line()
        for w in watchers[:15]:
            w.close()
        deadline = time.monotonic() + 5
        while stats(c)["log_watchers"] != "5" and time.monotonic() < deadline:
            time.sleep(0.1)
        s = stats(c)
        assert s["log_watchers"] == "5"
        assert int(s["log_watcher_sent"]) >= 20
        assert int(s["log_worker_written"]) >= 1
        assert s["log_worker_dropped"] == "0"
        assert int(s["curr_connections"]) >= 6
        # A slot freed by a watcher that left can be taken again.
        again = Watcher(srv)
        again.close()
        names = stat_names(c)
        logger = ["log_worker_dropped", "log_worker_written", "log_watcher_skipped",
                  "log_watcher_sent", "log_watchers"]
        i = names.index("log_worker_dropped")
        assert names[i:i + 5] == logger
        assert names.index("lru_maintainer_juggles") < i < names.index("bytes")
    for w in watchers[15:]:
        w.close()


@pytest.mark.parametrize("kind", KINDS)
def test_slow_watcher_is_skipped_not_waited_for(start_server, kind):
    """A watcher that never reads: clients keep being served at full speed, the watcher's
    lines are counted skipped, and once it reads again it is told how many it missed."""
    srv = start_server(["-m", "64", "-t", "2", "-o", "watcher_logbuf_size=8"], kind=kind)
    w = Watcher(srv, "fetchers", rcvbuf=8192)
    spacer = b"X" * 180
    with RawConn(srv.port) as c, RawConn(srv.port) as other:
        # Flood until lines are skipped (how many reach the watcher before its socket is
        # full depends on kernel buffers and on how many the busy logger drops earlier).
        batch, sent, skipped = 500, 0, 0
        deadline = time.monotonic() + 30
        while skipped == 0 and time.monotonic() < deadline:
            for _ in range(10):
                start = time.monotonic()
                c.send(b"".join(b"get foo%d%s\r\n" % (sent + i, spacer) for i in range(batch)))
                for _ in range(batch):
                    assert c.line() == b"END"
                sent += batch
                # Nothing waits for the watcher: a batch is served in well under a second.
                assert time.monotonic() - start < 2.0
            # Another client is answered at once while the watcher is stuck.
            t = time.monotonic()
            other.send(b"version\r\n")
            assert other.line().startswith(b"VERSION ")
            assert time.monotonic() - t < 1.0
            time.sleep(0.2)
            skipped = int(stats(c)["log_watcher_skipped"])
        assert skipped > 0
        # Reading again: once the backlog has drained, a skipped= line comes before the
        # next line (new lines keep the logger writing).
        found = None
        deadline = time.monotonic() + 60
        while found is None and time.monotonic() < deadline:
            for line in w.lines_for(0.1):
                if line.startswith("skipped="):
                    found = line
                    break
            c.send(b"get foo\r\n" * 50)
            for _ in range(50):
                assert c.line() == b"END"
        assert found is not None and re.fullmatch(r"skipped=\d+\n", found)
        assert int(found.split("=")[1]) > 0
        # Real lines follow (memcached may interleave another skipped= line).
        assert any(LINE.match(w.line()) for _ in range(10))
    w.close()


def slab_moves(srv) -> list[str]:
    """The slab_move lines a `watch sysevents` connection sees while a class is filled and
    emptied and the automove balancer gives its free pages back to the pool."""
    w = Watcher(srv, "sysevents")
    with RawConn(srv.port) as c:
        value = b"x" * 1000
        c.send(b"".join(b"set k%d 0 0 1000 noreply\r\n%s\r\n" % (i, value) for i in range(10000)))
        c.send(b"".join(b"delete k%d noreply\r\n" % i for i in range(10000)))
        c.send(b"version\r\n")
        c.line()
        moves: list[str] = []
        deadline = time.monotonic() + 15
        while len(moves) < 10 and time.monotonic() < deadline:
            # memcached also logs its crawler's runs here; slabcached has no such line.
            moves += [line for line in w.lines_for(0.5) if "type=slab_move" in line]
    w.close()
    return normalize(moves)


def test_sysevents_slab_move_matches_memcached(start_server):
    args = ["-m", "64", "-t", "2", "-o", "slab_automove_window=3"]
    ours = slab_moves(start_server(args))
    theirs = slab_moves(start_server(args, kind="memcached"))
    assert ours == theirs == ["type=slab_move src=12 dst=0"] * 10
