"""Differential test: replay every script in tests/diff/ against memcached AND the target.

Both servers are started with the same flags on separate loopback ports; each script runs on
both in lock step, the replies are normalised (volatile values masked, see INTENDED_DIFFERENCES)
and compared byte for byte.  The reference is always Debian's memcached; the other side is the
selected target (slabcached by default, memcached with SLABCACHED_TARGET=memcached, which is how
the harness proves it is deterministic).  A missing slabcached binary is a failure, not a skip.

Corpus format (one file = one script, lines processed in order):

    # comment                  ignored, as are blank lines
    @args -I 512k -C           server flags for this script (before the first step)
    @memcached-args -o X       extra flags for memcached only (see INTENDED_DIFFERENCES)
    @conn NAME                 switch to connection NAME (opened on first use; default "main")
    @sleep 1.2                 pause (keep these rare: the whole corpus sleeps ~2 s)
    > TEXT                     send TEXT followed by \\r\\n
    >> TEXT                    send TEXT exactly (no line end added)
    <                          read one reply
    < N                        read N replies (a reply ends with a terminal line such as
                               STORED/END/ERROR/a number; VALUE data blocks, STAT/ITEM
                               lines and metadump `key=` lines are part of the reply that
                               follows them)
    < eof                      read until the server closes the connection

In TEXT: escapes \\r \\n \\t \\0 \\\\ \\xHH \\{ \\} (use \\x20 for a trailing space) and
expansions {rep:STR:N} (STR, escapes decoded, repeated N times), {cas:KEY} (the last CAS
unique this server returned for KEY, on any connection), {cas+1:KEY} (that plus one: a wrong
CAS), {class:N} (the N-th slab class holding items, in ascending id order, from the last
`stats items`/`stats slabs` reply of this server). Each server gets its own values.

A `stats ...` request must be alone in its step, so its reply is compared with the rule for
that stats sub-command.

Run one script against one server and print the raw transcript (for writing corpus files):

    python3 tests/test_differential.py tests/diff/incr_decr.txt [--kind memcached]
"""

from __future__ import annotations

import difflib
import re
import select
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from slabtest import TARGET, Server  # noqa: E402

CORPUS = Path(__file__).resolve().parent / "diff"
REPLY_TIMEOUT = 3.0  # seconds to wait for an expected reply
FINAL_QUIET = 0.15  # quiet period at the end of a script, to catch stray output

# Differences between memcached and slabcached that the comparison deliberately tolerates.
# Each is implemented by a normalisation rule below; keep this list and those rules in sync.
INTENDED_DIFFERENCES = [
    ("VERSION text",
     "`version` and `STAT version` carry each server's own version number; masked to <version>."),
    ("CAS unique values",
     "CAS uniques are an implementation's counter; they are compared structurally: each value is "
     "replaced by its rank among the distinct uniques the script saw on that server, so equal "
     "stays equal and the order of increase must match (0, meaning CAS disabled, is kept)."),
    ("volatile stats values",
     "pid, uptime, time, rusage, bytes, byte counters, connection counts, memory and hash "
     "figures depend on the process and the clock; every `STAT <name> <value>` value is masked "
     "except the counters in STATS_COMPARED_VALUES, which are deterministic after known commands."),
    ("`stats` field set and order",
     "memcached reports many fields tied to its own internals (libevent, LRU maintainer, slab "
     "rebalancer, extstore, ...); only the presence of STATS_CORE_FIELDS is required and their "
     "order is not compared."),
    ("`stats settings` field set and order",
     "settings of memcached-only features (TLS, extstore, LRU tuning, ...) need not exist; only "
     "SETTINGS_CORE_FIELDS must be present, with equal values for SETTINGS_COMPARED_VALUES."),
    ("`stats slabs` / `stats items` chunk sizes and class ids",
     "slabcached's item header is smaller than memcached's, so an item can land in a class with "
     "a different id and chunk size; these are compared structurally: number of classes in use "
     "(holding items), field names per class, and per class in use (in ascending order) "
     "used_chunks / number; global field names (active_slabs, total_malloced) but not their "
     "values; other values are masked. Classes that are listed but hold no item (memcached "
     "keeps their pages) are ignored."),
    ("`stats conns` descriptors and states",
     "file descriptor numbers, peer addresses, state names and idle times are process-specific; "
     "only the number of connections listed and the field names of each are compared."),
    ("`stats items` LRU segment fields",
     "memcached's segmented LRU adds number_hot/_warm/_cold, age_hot/_warm, moves_*, hits_to_* "
     "and similar per-class fields; only ITEMS_CORE_FIELDS are required in every class."),
    ("get_expired / get_flushed values",
     "whether a read finds an expired or flushed item, or a background reclaimer (memcached's "
     "LRU crawler) removed it first, depends on timing; the fields must exist but their values "
     "are not compared."),
    ("memcached-only flags for determinism",
     "scripts that list items (`stats cachedump`) run memcached with `-o no_lru_maintainer` "
     "(directive @memcached-args): memcached only dumps its cold LRU segment, which its "
     "background maintainer fills at unpredictable moments. The target gets the plain flags."),
    ("incr/decr result padding",
     "when a decr (or a wrapping incr) shortens a number, memcached either rewrites it in place, "
     "padded with trailing spaces to the old length, or stores a new item of the exact length, "
     "depending on whether one of its background threads holds the item at that instant; "
     "a value made of digits followed by spaces is compared with the spaces (and the length "
     "in its VALUE line) trimmed."),
    ("`lru_crawler metadump` order, times and sizes",
     "metadump lines follow each server's crawl order and carry absolute times, CAS uniques, "
     "class ids and item sizes (slabcached's item header is smaller); lines are compared as a "
     "sorted set of key, fetch flag and whether the item expires, the other values masked."),
    ("`stats cachedump` order and expiry stamps",
     "the order of ITEM lines follows each server's LRU internals, and the expiry is an "
     "absolute time; ITEM lines are compared as a sorted set with the time masked unless 0."),
]

STATS_CORE_FIELDS = (
    "pid uptime time version curr_connections total_connections cmd_get cmd_set cmd_flush "
    "cmd_touch get_hits get_misses get_expired get_flushed delete_misses delete_hits "
    "incr_misses incr_hits decr_misses decr_hits cas_misses cas_hits cas_badval touch_hits "
    "touch_misses bytes_read bytes_written limit_maxbytes threads bytes curr_items total_items "
    "evictions reclaimed"
).split()

# Values of general `stats` compared exactly: command counters that are fully determined by the
# commands a script sent, plus configuration echoes.
STATS_COMPARED_VALUES = (
    "cmd_get cmd_set cmd_flush cmd_touch get_hits get_misses "
    "delete_misses delete_hits incr_misses incr_hits decr_misses decr_hits cas_misses cas_hits "
    "cas_badval touch_hits touch_misses limit_maxbytes threads"
).split()

SETTINGS_CORE_FIELDS = (
    "maxbytes maxconns tcpport udpport verbosity evictions growth_factor chunk_size num_threads "
    "cas_enabled item_size_max flush_enabled dump_enabled shutdown_command reqs_per_event "
    "tcp_backlog"
).split()
SETTINGS_COMPARED_VALUES = (
    "maxbytes maxconns udpport verbosity evictions growth_factor chunk_size num_threads "
    "cas_enabled item_size_max flush_enabled dump_enabled shutdown_command reqs_per_event "
    "tcp_backlog slab_reassign slab_automove slab_automove_ratio slab_automove_window "
    "slab_chunk_max lru_crawler lru_crawler_sleep lru_crawler_tocrawl hot_lru_pct warm_lru_pct "
    "hot_max_factor warm_max_factor temp_lru temporary_ttl"
).split()

# Per-class values compared in `stats slabs` / `stats items` (classes in ascending id order).
SLABS_COMPARED_VALUES = ("used_chunks",)
ITEMS_COMPARED_VALUES = ("number",)
# `stats items` field names required per class; memcached adds more for its segmented LRU.
ITEMS_CORE_FIELDS = (
    "number age mem_requested evicted evicted_nonzero evicted_time outofmemory tailrepairs "
    "reclaimed expired_unfetched evicted_unfetched crawler_reclaimed crawler_items_checked "
    "lrutail_reflocked"
).split()
SLABS_GLOBAL_COMPARED: tuple[str, ...] = ()

# `stats` sub-commands whose values are always compared exactly (no volatile content).
STATS_SIMPLE_VALUES = {"sizes_status"}


# --------------------------------------------------------------------------------------------
# Corpus parsing


@dataclass
class Step:
    kind: str  # "send", "read", "sleep", "conn"
    lineno: int
    text: str = ""  # send: template text (before escapes/expansions)
    raw: bool = False  # send: no \r\n appended
    count: int = 1  # read: number of replies; -1 = until EOF
    seconds: float = 0.0
    conn: str = "main"


@dataclass
class Script:
    path: Path
    args: list[str]
    steps: list[Step]
    memcached_args: list[str] = field(default_factory=list)

    def args_for(self, kind: str) -> list[str]:
        return self.args + (self.memcached_args if kind == "memcached" else [])

    @property
    def name(self) -> str:
        return self.path.stem


def parse_script(path: Path) -> Script:
    args: list[str] = []
    memcached_args: list[str] = []
    steps: list[Step] = []
    for lineno, line in enumerate(path.read_text().split("\n"), 1):
        if line.startswith(">>"):
            text = line[2:]
            steps.append(Step("send", lineno, text=text[1:] if text.startswith(" ") else text,
                              raw=True))
        elif line.startswith(">"):
            text = line[1:]
            steps.append(Step("send", lineno, text=text[1:] if text.startswith(" ") else text))
        elif line.startswith("<"):
            arg = line[1:].strip()
            if arg == "":
                count = 1
            elif arg == "eof":
                count = -1
            elif arg.isdigit() and int(arg) > 0:
                count = int(arg)
            else:
                raise ValueError(f"{path.name}:{lineno}: bad read marker {line!r}")
            steps.append(Step("read", lineno, count=count))
        elif line.startswith("@"):
            word, _, rest = line[1:].partition(" ")
            rest = rest.strip()
            if word in ("args", "memcached-args"):
                if steps:
                    raise ValueError(f"{path.name}:{lineno}: @{word} must come before any step")
                if word == "args":
                    args = rest.split()
                else:
                    memcached_args = rest.split()
            elif word == "sleep":
                steps.append(Step("sleep", lineno, seconds=float(rest)))
            elif word == "conn":
                if not re.fullmatch(r"\w+", rest):
                    raise ValueError(f"{path.name}:{lineno}: bad connection name {rest!r}")
                steps.append(Step("conn", lineno, conn=rest))
            else:
                raise ValueError(f"{path.name}:{lineno}: unknown directive @{word}")
        elif line.strip() == "" or line.lstrip().startswith("#"):
            continue
        else:
            raise ValueError(f"{path.name}:{lineno}: unrecognised line {line!r}")
    check_stats_alone(path, steps)
    return Script(path, args, steps, memcached_args)


def check_stats_alone(path: Path, steps: list[Step]) -> None:
    """A `stats` request must be the only send of its step (so its reply can be classified)."""
    pending: list[Step] = []
    for step in steps:
        if step.kind == "send":
            pending.append(step)
        elif step.kind == "read":
            texts = [s.text for s in pending]
            if any(t.lstrip().startswith("stats") for t in texts) and len(pending) > 1:
                raise ValueError(f"{path.name}:{step.lineno}: a stats request must be alone "
                                 "before its read marker")
            pending = []
        elif step.kind == "conn":
            pending = []


def corpus_files() -> list[Path]:
    return sorted(CORPUS.glob("*.txt"))


# --------------------------------------------------------------------------------------------
# Running a script against one server


TOKEN_RE = re.compile(rb"\\(x[0-9a-fA-F]{2}|.)|\{(rep|cas|cas\+1|class):([^}]*)\}", re.S)
ESCAPES = {b"r": b"\r", b"n": b"\n", b"t": b"\t", b"0": b"\0", b"\\": b"\\", b"{": b"{",
           b"}": b"}"}


class SideState:
    """What one server's replies taught us: CAS uniques per key, slab classes in use."""

    def __init__(self) -> None:
        self.cas: dict[bytes, int] = {}
        self.classes: list[int] = []

    def expand(self, template: str) -> bytes:
        data = template.encode("utf-8")

        def sub(m: re.Match) -> bytes:
            if m.group(1) is not None:
                esc = m.group(1)
                if esc.startswith(b"x") and len(esc) == 3:
                    return bytes([int(esc[1:], 16)])
                if esc in ESCAPES:
                    return ESCAPES[esc]
                raise ValueError(f"unknown escape \\{esc.decode()}")
            fn, arg = m.group(2), m.group(3)
            if fn == b"rep":
                text, _, n = arg.rpartition(b":")
                return self.expand(text.decode("utf-8")) * int(n)
            if fn in (b"cas", b"cas+1"):
                if arg not in self.cas:
                    raise ValueError(f"no CAS unique seen yet for key {arg!r}")
                return str(self.cas[arg] + (1 if fn == b"cas+1" else 0)).encode()
            if fn == b"class":
                n = int(arg)
                if not 1 <= n <= len(self.classes):
                    raise ValueError(f"{{class:{n}}}: only {len(self.classes)} classes in use")
                return str(self.classes[n - 1]).encode()
            raise AssertionError(fn)

        return TOKEN_RE.sub(sub, data)

    def learn(self, request: bytes, reply: bytes) -> None:
        for m in re.finditer(rb"^VALUE (\S+) \d+ \d+ (\d+)\r\n", reply, re.M):
            self.cas[m.group(1)] = int(m.group(2))
        words = request.split()
        if words[:2] == [b"stats", b"items"]:
            self.classes = sorted(
                int(m.group(1)) for m in re.finditer(rb"^STAT items:(\d+):number (\d+)", reply,
                                                     re.M) if int(m.group(2)) > 0)
        elif words[:2] == [b"stats", b"slabs"]:
            self.classes = sorted(
                int(m.group(1)) for m in re.finditer(rb"^STAT (\d+):used_chunks (\d+)", reply,
                                                     re.M) if int(m.group(2)) > 0)


def split_replies(buf: bytes, want: int) -> int | None:
    """Byte length of the first `want` complete replies in buf, or None if not all there yet."""
    pos = 0
    done = 0
    while done < want:
        nl = buf.find(b"\n", pos)
        if nl < 0:
            return None
        line = buf[pos:nl + 1]
        pos = nl + 1
        if line.startswith(b"VALUE ") or line.startswith(b"CONFIG "):
            parts = line.split()
            try:
                size = int(parts[-1] if line.startswith(b"CONFIG ") else parts[3])
            except (IndexError, ValueError):
                size = 0
            pos += size + 2
            if len(buf) < pos:
                return None
            continue
        if line.startswith(b"STAT ") or line.startswith(b"ITEM ") or line.startswith(b"key="):
            continue
        done += 1
    return pos


CLOSED = b"<connection closed>"


class Conn:
    def __init__(self, server: Server):
        self.sock = server.connect(timeout=REPLY_TIMEOUT)
        # each corpus line is one write, delivered at once (no Nagle delay between the lines)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.closed = False

    def send(self, data: bytes) -> None:
        if self.closed:
            return
        try:
            self.sock.sendall(data)
        except OSError:
            self._recv_some(0)  # pick up whatever the server said before closing
            self.closed = True

    def _recv_some(self, timeout: float) -> bool:
        """Wait up to timeout for data; append it. False on timeout."""
        if self.closed:
            return False
        ready, _, _ = select.select([self.sock], [], [], max(timeout, 0))
        if not ready:
            return False
        try:
            data = self.sock.recv(1 << 20)
        except OSError:
            data = b""
        if not data:
            self.closed = True
            return False
        self.buf += data
        return True

    def read(self, count: int) -> tuple[bytes, bool]:
        """Read `count` replies (-1: until close). Returns (bytes, timed_out)."""
        deadline = time.monotonic() + REPLY_TIMEOUT
        while True:
            if count > 0:
                end = split_replies(self.buf, count)
                if end is not None:
                    out, self.buf = self.buf[:end], self.buf[end:]
                    return out, False
            if self.closed:
                out, self.buf = self.buf + CLOSED, b""
                return out, False
            left = deadline - time.monotonic()
            if left <= 0:
                out, self.buf = self.buf, b""
                return out + b"<timeout>", True
            self._recv_some(left)

    def drain(self, quiet: float) -> bytes:
        while self._recv_some(quiet):
            pass
        out, self.buf = self.buf, b""
        if self.closed and out:
            out += CLOSED
        return out

    def close(self) -> None:
        self.sock.close()


@dataclass
class Exchange:
    lineno: int  # line of the read marker (or end of file for trailing output)
    conn: str
    request: bytes  # what was sent on this connection since its previous read
    template: str  # the same, as written in the corpus
    reply: bytes
    timed_out: bool = False
    extra: bytes = b""  # only with check_counts: output beyond the requested replies


@dataclass
class Side:
    server: Server
    state: SideState = field(default_factory=SideState)
    conns: dict[str, Conn] = field(default_factory=dict)
    exchanges: list[Exchange] = field(default_factory=list)
    pending: dict[str, list[tuple[bytes, str]]] = field(default_factory=dict)

    def conn(self, name: str) -> Conn:
        if name not in self.conns:
            self.conns[name] = Conn(self.server)
        return self.conns[name]


def run_script(script: Script, servers: list[Server],
               check_counts: bool = False) -> list[list[Exchange]]:
    """Run the script on all servers in lock step; returns each server's exchanges.

    check_counts (corpus authoring): after each read, wait briefly and flag replies that arrive
    beyond the count the read marker asked for (they would be attributed to the next step).
    """
    sides = [Side(s) for s in servers]
    current = "main"
    try:
        for step in script.steps:
            if step.kind == "conn":
                current = step.conn
            elif step.kind == "sleep":
                time.sleep(step.seconds)
            elif step.kind == "send":
                for side in sides:
                    data = side.state.expand(step.text) + (b"" if step.raw else b"\r\n")
                    side.pending.setdefault(current, []).append((data, step.text))
                    side.conn(current).send(data)
            elif step.kind == "read":
                for side in sides:
                    reply, timed_out = side.conn(current).read(step.count)
                    sent = side.pending.pop(current, [])
                    request = b"".join(d for d, _ in sent)
                    template = "\n".join(t for _, t in sent)
                    side.state.learn(request, reply)
                    ex = Exchange(step.lineno, current, request, template, reply, timed_out)
                    if check_counts:
                        conn = side.conn(current)
                        while conn._recv_some(0.1):
                            pass
                        ex.extra = conn.buf
                    side.exchanges.append(ex)
        end = len(script.path.read_text().split("\n"))
        for side in sides:
            for name, conn in side.conns.items():
                extra = conn.drain(FINAL_QUIET)
                sent = side.pending.pop(name, [])
                if extra or sent:
                    side.exchanges.append(Exchange(
                        end, name, b"".join(d for d, _ in sent),
                        "\n".join(t for _, t in sent) + "  (end of script: trailing output)",
                        extra))
    finally:
        for side in sides:
            for conn in side.conns.values():
                conn.close()
    return [side.exchanges for side in sides]


# --------------------------------------------------------------------------------------------
# Normalisation


def cas_ranks(exchanges: list[Exchange]) -> dict[int, int]:
    values = set()
    for ex in exchanges:
        for m in re.finditer(rb"^VALUE \S+ \d+ \d+ (\d+)\r\n", ex.reply, re.M):
            values.add(int(m.group(1)))
    values.discard(0)
    return {v: i + 1 for i, v in enumerate(sorted(values))}


def mask_values(reply: bytes, ranks: dict[int, int]) -> bytes:
    """Mask CAS uniques and version numbers in a non-stats reply; data blocks stay intact."""
    out = []
    pos = 0
    while pos < len(reply):
        nl = reply.find(b"\n", pos)
        if nl < 0:
            out.append(reply[pos:])
            break
        line = reply[pos:nl + 1]
        pos = nl + 1
        if line.startswith(b"VALUE "):
            parts = line.rstrip(b"\r\n").split(b" ")
            if len(parts) == 5 and parts[4].isdigit() and int(parts[4]) != 0:
                parts[4] = b"<cas#%d>" % ranks[int(parts[4])]
            try:
                size = int(parts[3])
            except (IndexError, ValueError):
                out.append(line)
                continue
            data = reply[pos:pos + size + 2]
            pos += size + 2
            if re.fullmatch(rb"\d+ +\r\n", data):  # incr/decr padding, see INTENDED_DIFFERENCES
                data = data.replace(b" ", b"")
                parts[3] = b"%d" % (len(data) - 2)
            out.append(b" ".join(parts) + line[len(line.rstrip(b"\r\n")):])
            out.append(data)
        elif line.startswith(b"VERSION "):
            out.append(b"VERSION <version>" + line[len(line.rstrip(b"\r\n")):])
        else:
            out.append(line)
    return b"".join(out)


def parse_stats(reply: bytes) -> tuple[list[tuple[str, str]], list[bytes]]:
    """Split a stats reply into (name, value) pairs and the other lines (END, errors, ...)."""
    pairs = []
    other = []
    for line in reply.split(b"\r\n"):
        if line.startswith(b"STAT "):
            _, name, *rest = line.decode("latin-1").split(" ", 2)
            pairs.append((name, rest[0] if rest else ""))
        elif line:
            other.append(line)
    return pairs, other


def tail(other: list[bytes]) -> str:
    return " | ".join(o.decode("latin-1") for o in other)


def normalise_stats(words: list[str], reply: bytes) -> str:
    sub = words[1] if len(words) > 1 else ""
    pairs, other = parse_stats(reply)
    if not pairs:  # errors, RESET, empty lists: compare as they are
        return reply.decode("latin-1")
    values = dict(pairs)
    if sub == "":
        missing = [f for f in STATS_CORE_FIELDS if f not in values]
        lines = [f"general stats; missing core fields: {missing}"]
        lines += [f"{f} = {values.get(f, '<absent>')}" for f in STATS_COMPARED_VALUES]
        return "\n".join(lines + [tail(other)])
    if sub == "settings":
        missing = [f for f in SETTINGS_CORE_FIELDS if f not in values]
        lines = [f"settings; missing core fields: {missing}"]
        lines += [f"{f} = {values.get(f, '<absent>')}" for f in SETTINGS_COMPARED_VALUES]
        return "\n".join(lines + [tail(other)])
    if sub in ("slabs", "items"):
        classes: dict[int, dict[str, str]] = {}
        globals_: dict[str, str] = {}
        for name, value in pairs:
            m = re.fullmatch(r"(?:items:)?(\d+):(\w+)", name)
            if m:
                classes.setdefault(int(m.group(1)), {})[m.group(2)] = value
            else:
                globals_[name] = value
        compared = SLABS_COMPARED_VALUES if sub == "slabs" else ITEMS_COMPARED_VALUES
        # memcached keeps listing a class whose pages are allocated after its last item went
        # away; only classes holding items are compared.
        in_use = [cid for cid in sorted(classes)
                  if classes[cid].get(compared[0], "0") not in ("0", "")]
        lines = [f"stats {sub}: {len(in_use)} classes in use"]
        for i, cid in enumerate(in_use):
            fields = classes[cid]
            vals = ", ".join(f"{f}={fields.get(f, '<absent>')}" for f in compared)
            if sub == "slabs":
                names = " ".join(sorted(fields))
            else:
                names = "missing " + " ".join(f for f in ITEMS_CORE_FIELDS if f not in fields)
            lines.append(f"class #{i + 1}: {vals}; fields: {names}")
        lines.append("globals: " + ", ".join(
            f"{g}={globals_[g]}" if g in SLABS_GLOBAL_COMPARED else g for g in sorted(globals_)))
        return "\n".join(lines + [tail(other)])
    if sub == "conns":
        conns: dict[str, list[str]] = {}
        for name, _ in pairs:
            fd, _, fname = name.partition(":")
            conns.setdefault(fd, []).append(fname)
        shapes = sorted(" ".join(sorted(f)) for f in conns.values())
        return "\n".join([f"stats conns: {len(conns)} connections"] + shapes + [tail(other)])
    # anything else (sizes, ...): names and order kept, values masked unless known static
    return "\n".join([f"STAT {n} {v if n in STATS_SIMPLE_VALUES else '<masked>'}"
                      for n, v in pairs] + [tail(other)])


def normalise_cachedump(reply: bytes) -> str:
    items = []
    other = []
    for line in reply.split(b"\r\n"):
        m = re.fullmatch(rb"ITEM (\S+) \[(\d+) b; (\d+) s\]", line)
        if m:
            stamp = m.group(3).decode() if m.group(3) == b"0" else "<time>"
            items.append(f"ITEM {m.group(1).decode('latin-1')} [{m.group(2).decode()} b; "
                         f"{stamp} s]")
        elif line:
            other.append(line)
    return "\n".join(sorted(items) + [tail(other)])


def normalise_metadump(reply: bytes) -> str:
    items = []
    other = []
    for line in reply.split(b"\n"):
        m = re.fullmatch(rb"key=(\S+) exp=(-?\d+) la=\d+ cas=\d+ fetch=(yes|no) cls=\d+ size=\d+",
                         line)
        if m:
            exp = "-1" if m.group(2) == b"-1" else "<time>"
            items.append(f"key={m.group(1).decode('latin-1')} exp={exp} la=<time> cas=<cas> "
                         f"fetch={m.group(3).decode()} cls=<cls> size=<size>")
        elif line:
            other.append(line.rstrip(b"\r"))
    return "\n".join(sorted(items) + [tail(other)])


def normalise(ex: Exchange, ranks: dict[int, int]) -> str:
    words = ex.request.decode("latin-1").split()
    closed = ex.reply.endswith(CLOSED)
    body = ex.reply[:-len(CLOSED)] if closed else ex.reply
    if words[:1] == ["stats"] and body.count(b"\n") > 0 and not ex.timed_out:
        if words[1:2] == ["cachedump"]:
            text = normalise_cachedump(body)
        elif words[1:2] == ["reset"] or words[1:2] == ["detail"]:
            text = body.decode("latin-1")
        else:
            text = normalise_stats(words, body)
    elif words[:2] == ["lru_crawler", "metadump"] and b"key=" in body:
        text = normalise_metadump(body)
    else:
        text = mask_values(body, ranks).decode("latin-1")
    return text + ("<connection closed>" if closed else "")


# --------------------------------------------------------------------------------------------
# Reporting


def show(data: bytes | str, limit: int = 600) -> str:
    if isinstance(data, str):
        data = data.encode("latin-1")
    text = repr(data)[2:-1]
    if len(text) > limit:
        text = text[:limit] + f"... ({len(data)} bytes)"
    return text


def compare(script: Script, ref: list[Exchange], got: list[Exchange]) -> list[str]:
    ref_ranks, got_ranks = cas_ranks(ref), cas_ranks(got)
    problems = []
    for i in range(max(len(ref), len(got))):
        r = ref[i] if i < len(ref) else None
        g = got[i] if i < len(got) else None
        rn = normalise(r, ref_ranks) if r else "<no reply>"
        gn = normalise(g, got_ranks) if g else "<no reply>"
        if rn != gn:
            ex = r or g
            diff = difflib.unified_diff(rn.split("\n"), gn.split("\n"), "memcached", TARGET,
                                        n=1, lineterm="")
            problems.append(
                f"{script.path.name}:{ex.lineno} [conn {ex.conn}]\n"
                f"  request:   {show(ex.request)}\n"
                f"  memcached: {show(r.reply) if r else '<none>'}\n"
                f"  {TARGET + ':':10} {show(g.reply) if g else '<none>'}\n"
                f"  normalised, memcached -> {TARGET}:\n    "
                + "\n    ".join(show(line, 300) for line in diff))
    return problems


# --------------------------------------------------------------------------------------------
# The tests


@pytest.mark.parametrize("path", corpus_files(), ids=lambda p: p.stem)
def test_differential(path: Path, start_server) -> None:
    script = parse_script(path)
    reference = start_server(script.args_for("memcached"), kind="memcached")
    target = start_server(script.args_for(TARGET), kind=TARGET)
    ref, got = run_script(script, [reference, target])
    # A reply memcached did not finish within the timeout means the corpus is wrong.
    slow = [f"line {ex.lineno}: {show(ex.reply)}" for ex in ref if ex.timed_out]
    assert not slow, f"corpus {path.name}: memcached did not send the expected replies: {slow}"
    problems = compare(script, ref, got)
    if problems:
        pytest.fail(f"{len(problems)} mismatch(es) between memcached and {TARGET} in "
                    f"{path.name}:\n\n" + "\n\n".join(problems[:15]), pytrace=False)


def test_corpus_is_present_and_parses() -> None:
    files = corpus_files()
    assert len(files) >= 10, f"expected the differential corpus in {CORPUS}"
    for path in files:
        parse_script(path)


def _stats(pairs: list[tuple[str, object]], end: bytes = b"END") -> bytes:
    return b"".join(b"STAT %s %s\r\n" % (n.encode(), str(v).encode()) for n, v in pairs) + end + b"\r\n"


def _general(**changes: object) -> list[tuple[str, object]]:
    values: dict[str, object] = {f: 1 for f in STATS_CORE_FIELDS}
    values.update(changes)
    return list(values.items())


def _normalised(request: bytes, reply: bytes) -> str:
    ex = Exchange(1, "main", request, request.decode("latin-1"), reply)
    return normalise(ex, cas_ranks([ex]))


# One example per intended difference: (request, memcached's reply, a reply the rule must
# accept as equal, a reply the rule must still tell apart). Each rule is exercised both
# ways, so a rule that stops masking, or starts masking everything, fails here.
_ITEM = b"ITEM k [1 b; %d s]\r\n"
_META = b"key=%s exp=%s la=%d cas=%d fetch=no cls=%d size=%d\n"
DIFFERENCE_EXAMPLES: dict[str, tuple[bytes, bytes, bytes, bytes]] = {
    "VERSION text": (b"version\r\n", b"VERSION 1.6.18\r\n", b"VERSION 0.1.0\r\n", b"ERROR\r\n"),
    "CAS unique values": (
        b"gets a b\r\n",
        b"VALUE a 0 1 17\r\nx\r\nVALUE b 0 1 30\r\ny\r\nEND\r\n",
        b"VALUE a 0 1 2\r\nx\r\nVALUE b 0 1 5\r\ny\r\nEND\r\n",
        b"VALUE a 0 1 5\r\nx\r\nVALUE b 0 1 2\r\ny\r\nEND\r\n"),
    "volatile stats values": (
        b"stats\r\n", _stats(_general(pid=10, uptime=3)), _stats(_general(pid=99, uptime=7)),
        _stats(_general(cmd_get=2))),
    "`stats` field set and order": (
        b"stats\r\n", _stats(_general(libevent="2.1") + [("lru_maintainer_juggles", 5)]),
        _stats(list(reversed(_general()))), _stats(_general()[1:])),
    "`stats settings` field set and order": (
        b"stats settings\r\n",
        _stats([(f, 1) for f in SETTINGS_CORE_FIELDS] + [("ssl_enabled", "no")]),
        _stats([(f, 1) for f in reversed(SETTINGS_CORE_FIELDS)]),
        _stats([(f, 2 if f == "maxbytes" else 1) for f in SETTINGS_CORE_FIELDS])),
    "`stats slabs` / `stats items` chunk sizes and class ids": (
        b"stats slabs\r\n",
        _stats([("1:chunk_size", 96), ("1:used_chunks", 3), ("active_slabs", 1)]),
        _stats([("2:chunk_size", 64), ("2:used_chunks", 3), ("active_slabs", 1)]),
        _stats([("2:chunk_size", 64), ("2:used_chunks", 4), ("active_slabs", 1)])),
    "`stats conns` descriptors and states": (
        b"stats conns\r\n", _stats([("5:addr", "tcp:1"), ("5:state", "conn_parse_cmd")]),
        _stats([("9:addr", "tcp:2"), ("9:state", "conn_waiting")]),
        _stats([("9:addr", "tcp:2"), ("9:state", "x"), ("10:addr", "tcp:3")])),
    "`stats items` LRU segment fields": (
        b"stats items\r\n",
        _stats([(f"items:1:{f}", 1) for f in ITEMS_CORE_FIELDS] + [("items:1:number_hot", 0)]),
        _stats([(f"items:1:{f}", 1) for f in ITEMS_CORE_FIELDS]),
        _stats([(f"items:1:{f}", 1) for f in ITEMS_CORE_FIELDS if f != "evicted"])),
    "get_expired / get_flushed values": (
        b"stats\r\n", _stats(_general(get_expired=0, get_flushed=0)),
        _stats(_general(get_expired=4, get_flushed=2)), _stats(_general(get_hits=0))),
    "incr/decr result padding": (
        b"get n\r\n", b"VALUE n 0 3\r\n99 \r\nEND\r\n", b"VALUE n 0 2\r\n99\r\nEND\r\n",
        b"VALUE n 0 2\r\n98\r\nEND\r\n"),
    "`lru_crawler metadump` order, times and sizes": (
        b"lru_crawler metadump all\r\n",
        _META % (b"a", b"-1", 100, 5, 1, 70) + _META % (b"b", b"1700000000", 100, 6, 1, 70) + b"END\r\n",
        _META % (b"b", b"1700000999", 300, 2, 3, 50) + _META % (b"a", b"-1", 300, 1, 3, 50) + b"END\r\n",
        _META % (b"a", b"1700000999", 300, 1, 3, 50) + _META % (b"b", b"-1", 300, 2, 3, 50) + b"END\r\n"),
    "`stats cachedump` order and expiry stamps": (
        b"stats cachedump 1 0\r\n", _ITEM % 1700000000 + _ITEM.replace(b"k", b"j") % 0 + b"END\r\n",
        _ITEM.replace(b"k", b"j") % 0 + _ITEM % 1700000500 + b"END\r\n",
        _ITEM.replace(b"k", b"j") % 5 + _ITEM % 1700000500 + b"END\r\n"),
}


@pytest.mark.parametrize("name", [n for n, _ in INTENDED_DIFFERENCES])
def test_intended_differences_are_exactly_what_normalisation_tolerates(name: str, tmp_path) -> None:
    if name == "memcached-only flags for determinism":
        # @memcached-args reach memcached only; the target runs the script's plain flags.
        path = tmp_path / "flags.txt"
        path.write_text("@args -m 8\n@memcached-args -o no_lru_maintainer\n> version\n<\n")
        script = parse_script(path)
        assert script.args_for("memcached") == ["-m", "8", "-o", "no_lru_maintainer"]
        assert script.args_for("slabcached") == ["-m", "8"]
        return
    request, reference, tolerated, different = DIFFERENCE_EXAMPLES[name]
    assert reference != tolerated
    assert _normalised(request, reference) == _normalised(request, tolerated), name
    assert _normalised(request, reference) != _normalised(request, different), name


def test_every_difference_example_is_documented() -> None:
    documented = {n for n, _ in INTENDED_DIFFERENCES}
    assert set(DIFFERENCE_EXAMPLES) <= documented
    assert documented - set(DIFFERENCE_EXAMPLES) == {"memcached-only flags for determinism"}


# --------------------------------------------------------------------------------------------
# Corpus authoring helper


def _main(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(description="print a corpus script's raw transcript")
    parser.add_argument("scripts", nargs="+", type=Path)
    parser.add_argument("--kind", default="memcached", choices=["memcached", "slabcached"])
    opts = parser.parse_args(argv)
    for path in opts.scripts:
        script = parse_script(path)
        srv = Server(opts.kind, script.args_for(opts.kind))
        try:
            (exchanges,) = run_script(script, [srv], check_counts=True)
        finally:
            srv.stop()
        print(f"==== {path} ({opts.kind} {' '.join(script.args_for(opts.kind))})")
        ranks = cas_ranks(exchanges)
        for ex in exchanges:
            flag = "  TIMEOUT" if ex.timed_out else ""
            if ex.extra:
                flag += f"  EXTRA OUTPUT BEYOND THE COUNT: {show(ex.extra)}"
            print(f"--- line {ex.lineno} [{ex.conn}]{flag}\n>>> {show(ex.request, 300)}\n"
                  f"<<< {show(ex.reply, 2000)}")
            norm = normalise(ex, ranks)
            if norm != ex.reply.decode("latin-1"):
                print("norm: " + norm.replace("\n", "\n      "))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
