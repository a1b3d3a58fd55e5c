"""Meta and binary protocol tests: memcached 1.6.18 and the target side by side.

The line-based meta commands are mostly covered by the differential corpus (tests/diff/meta_*.txt);
this module adds what that harness cannot express:

* Binary protocol differential: each scenario is a byte string of request frames, sent to a fresh
  memcached and a fresh target started with the same flags; the reply bytes are parsed into
  packets and compared field for field (magic, opcode, key/extras length, data type, status, body
  length, opaque, cas, extras, key, value). CAS values are compared by rank (equal stays equal,
  order kept, 0 kept), the version text is masked, and `Stat` listings are compared the way the
  text harness compares `stats` (core fields present, deterministic counters equal, see
  test_differential.py). A scenario ends with a sentinel `Noop` (its reply proves every earlier
  reply was sent, quiet opcodes included) or with the server closing the connection.
* Meta replies with volatile tokens: returned cas (`c`, by rank), finite TTLs (`t`, checked to be
  within a second of each other) and `me` lines (`cls=`, `size=` are per-implementation).
* Robustness: random and hostile frames never take the server down or disturb another client.
* slabcached's intended additions (skipped against memcached): ElastiCache config opcodes, the
  legacy auto-discovery key over binary, `Verbosity` frames skipped exactly, `l` as time since the
  last write.
"""

from __future__ import annotations

import random
import re
import socket
import struct
import time
from dataclasses import dataclass

import pytest

from slabtest import TARGET
from test_differential import (
    SETTINGS_COMPARED_VALUES,
    SETTINGS_CORE_FIELDS,
    STATS_COMPARED_VALUES,
    STATS_CORE_FIELDS,
)

slabcached_only = pytest.mark.skipif(
    TARGET == "memcached", reason="slabcached addition or approximation (not memcached's)")

READ_TIMEOUT = 5.0

# --------------------------------------------------------------------------------------------
# Binary frames

REQ, RES = 0x80, 0x81
GET, SET, ADD, REPLACE, DELETE, INCR, DECR, QUIT, FLUSH, GETQ, NOOP, VERSION = range(0x0C)
GETK, GETKQ, APPEND, PREPEND, STAT, SETQ, ADDQ, REPLACEQ, DELETEQ, INCRQ, DECRQ = range(0x0C, 0x17)
QUITQ, FLUSHQ, APPENDQ, PREPENDQ, VERBOSITY, TOUCH, GAT, GATQ = range(0x17, 0x1F)
SASL_LIST, SASL_AUTH, SASL_STEP, GATK, GATKQ = 0x20, 0x21, 0x22, 0x23, 0x24
CONFIG_GET, CONFIG_GETQ, CONFIG_GETK, CONFIG_GETKQ = 0x60, 0x61, 0x62, 0x63
CONFIG_SET, CONFIG_SETQ, CONFIG_DELETE, CONFIG_DELETEQ = 0x64, 0x65, 0x66, 0x67
SENTINEL = 0x5E471EE1


def frame(op: int, key: bytes = b"", extras: bytes = b"", value: bytes = b"", opaque: int = 0,
          cas: int = 0, keylen: int | None = None, extlen: int | None = None,
          bodylen: int | None = None, magic: int = REQ, vbucket: int = 0) -> bytes:
    """A request frame; the length fields default to the real lengths."""
    kl = len(key) if keylen is None else keylen
    el = len(extras) if extlen is None else extlen
    bl = len(extras) + len(key) + len(value) if bodylen is None else bodylen
    return struct.pack(">BBHBBHIIQ", magic, op, kl, el, 0, vbucket, bl, opaque, cas) + extras + key + value


def store_extras(flags: int = 0, exptime: int = 0) -> bytes:
    return struct.pack(">II", flags, exptime)


def arith_extras(delta: int, initial: int = 0, exptime: int = 0) -> bytes:
    return struct.pack(">QQI", delta, initial, exptime)


def u32(n: int) -> bytes:
    return struct.pack(">I", n)


SE = store_extras(5, 0)
NOOP_FRAME = frame(NOOP, opaque=SENTINEL)


@dataclass
class Packet:
    magic: int
    opcode: int
    key_len: int
    extras_len: int
    data_type: int
    status: int
    body_len: int
    opaque: int
    cas: int
    extras: bytes
    key: bytes
    value: bytes


def parse_packets(buf: bytes) -> tuple[list[Packet], bytes]:
    """Complete packets at the front of buf, and the bytes left over."""
    out = []
    while len(buf) >= 24:
        magic, op, kl, el, dt, st, bl, opq, cas = struct.unpack(">BBHBBHIIQ", buf[:24])
        if len(buf) < 24 + bl:
            break
        body = buf[24:24 + bl]
        out.append(Packet(magic, op, kl, el, dt, st, bl, opq, cas, body[:el], body[el:el + kl],
                          body[el + kl:]))
        buf = buf[24 + bl:]
    return out, buf


def recv_until(sock: socket.socket, done, timeout: float = READ_TIMEOUT) -> tuple[bytes, bool]:
    """Read until done(buffer) or the peer closes. Returns (bytes, closed)."""
    buf = b""
    deadline = time.monotonic() + timeout
    while not done(buf):
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no complete reply within {timeout}s; got {buf[:300]!r}")
        sock.settimeout(left)
        try:
            chunk = sock.recv(1 << 20)
        except (ConnectionResetError, BrokenPipeError):
            return buf, True
        if not chunk:
            return buf, True
        buf += chunk
    return buf, False


def sentinel_seen(buf: bytes) -> bool:
    packets, _ = parse_packets(buf)
    return any(p.opcode == NOOP and p.opaque == SENTINEL for p in packets)


def binary_exchange(server, data: bytes, end: str) -> tuple[bytes, bool]:
    """Send data (plus the sentinel Noop when end == "sentinel") and read the replies."""
    with server.connect(timeout=READ_TIMEOUT) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            sock.sendall(data + (NOOP_FRAME if end == "sentinel" else b""))
        except (ConnectionResetError, BrokenPipeError):
            pass
        if end == "sentinel":
            return recv_until(sock, sentinel_seen)
        return recv_until(sock, lambda _: False)


# --------------------------------------------------------------------------------------------
# Normalisation of binary replies


def cas_ranks(packets: list[Packet]) -> dict[int, int]:
    values = sorted({p.cas for p in packets} - {0})
    return {v: i + 1 for i, v in enumerate(values)}


def stat_kind(keys: list[bytes]) -> str:
    names = {k.decode("latin-1") for k in keys}
    if "pid" in names:
        return "general"
    if "maxbytes" in names:
        return "settings"
    if any(re.match(r"items:\d+:", n) for n in names):
        return "items"
    if any(re.match(r"\d+:", n) for n in names):
        return "slabs"
    return "other"


def condense_stats(group: list[Packet]) -> list[str]:
    """A Stat listing as the text harness compares `stats`: headers must be uniform, core
    fields present, deterministic values equal; anything else about the fields is free."""
    headers = sorted({(p.magic, p.opcode, p.status, p.data_type, p.extras_len, p.opaque, p.cas)
                      for p in group})
    values = {p.key.decode("latin-1"): p.value.decode("latin-1") for p in group}
    kind = stat_kind([p.key for p in group])
    lines = [f"STAT LISTING ({kind}) headers={headers}"]
    if kind == "general":
        lines.append(f"missing core: {[f for f in STATS_CORE_FIELDS if f not in values]}")
        lines += [f"{f}={values.get(f, '<absent>')}" for f in STATS_COMPARED_VALUES]
    elif kind == "settings":
        lines.append(f"missing core: {[f for f in SETTINGS_CORE_FIELDS if f not in values]}")
        lines += [f"{f}={values.get(f, '<absent>')}" for f in SETTINGS_COMPARED_VALUES]
    elif kind in ("items", "slabs"):
        field = "number" if kind == "items" else "used_chunks"
        per_class = [v for k, v in values.items()
                     if re.fullmatch(rf"(items:)?\d+:{field}", k) and v != "0"]
        lines.append(f"classes in use: {len(per_class)}, {field}: {per_class}")
    else:
        lines += [f"{k}={v}" for k, v in values.items()]
    return lines


def describe(p: Packet, ranks: dict[int, int]) -> str:
    cas = f"cas#{ranks[p.cas]}" if p.cas else "cas=0"
    value = p.value
    body_len: int | str = p.body_len
    if p.opcode == VERSION and p.status == 0:
        value, body_len = b"<version>", "<masked>"
    elif re.fullmatch(rb"\d+ +", value):
        # incr/decr padding: memcached pads a shortened number in place or stores it exactly,
        # depending on its own reference counts (see INTENDED_DIFFERENCES in the text harness).
        value = value.rstrip(b" ")
        body_len = p.body_len - (len(p.value) - len(value))
    return (f"magic={p.magic:#x} op={p.opcode:#04x} keylen={p.key_len} extlen={p.extras_len} "
            f"dt={p.data_type} status={p.status:#06x} bodylen={body_len} "
            f"opaque={p.opaque:#x} {cas} extras={p.extras!r} key={p.key!r} value={value[:200]!r}"
            + (f"...({len(value)} bytes)" if len(value) > 200 else ""))


def normalise_binary(raw: bytes, closed: bool) -> list[str]:
    packets, rest = parse_packets(raw)
    ranks = cas_ranks(packets)
    out: list[str] = []
    i = 0
    while i < len(packets):
        p = packets[i]
        if p.opcode == STAT and p.status == 0 and p.key:
            j = i
            while j < len(packets) and packets[j].opcode == STAT and packets[j].key:
                j += 1
            group = packets[i:j]
            if stat_kind([q.key for q in group]) == "other":
                out += [describe(q, ranks) for q in group]
            else:
                out += condense_stats(group)
            i = j
            continue
        out.append(describe(p, ranks))
        i += 1
    if rest:
        out.append(f"trailing bytes: {rest!r}")
    if closed:
        out.append("<connection closed>")
    return out


def compare_binary(start_server, args: list[str], data: bytes, end: str) -> None:
    ref = start_server(args, kind="memcached")
    tgt = start_server(args)
    want = normalise_binary(*binary_exchange(ref, data, end))
    got = normalise_binary(*binary_exchange(tgt, data, end))
    assert got == want, "\n".join(
        ["replies differ (memcached | target):"]
        + [f"  {'==' if a == b else '!='} {a}\n     {b}" for a, b in
           zip(want + ["<none>"] * (len(got) - len(want)), got + ["<none>"] * (len(want) - len(got)))])


# --------------------------------------------------------------------------------------------
# Binary scenarios: (id, server args, request bytes, "sentinel" | "eof")

A = b"\x00" * 4
BIG = 1024 * 1024  # with -I 1m (the default) no value this long fits

BINARY_SCENARIOS = [
    # storage
    ("set-get", [], frame(SET, b"k", SE, b"v1", opaque=7) + frame(GET, b"k", opaque=8)),
    ("set-flags-exptime", [], frame(SET, b"k", store_extras(0xFFFFFFFF, 100), b"")
     + frame(GET, b"k") + frame(GETK, b"k")),
    ("add", [], frame(ADD, b"k", SE, b"1") + frame(ADD, b"k", SE, b"2", opaque=2) + frame(GET, b"k")),
    ("replace", [], frame(REPLACE, b"k", SE, b"1", opaque=1) + frame(SET, b"k", SE, b"1")
     + frame(REPLACE, b"k", store_extras(9), b"2", opaque=2) + frame(GET, b"k")),
    ("append-prepend", [], frame(APPEND, b"k", b"", b"x", opaque=1) + frame(PREPEND, b"k", b"", b"x")
     + frame(SET, b"k", SE, b"mid") + frame(APPEND, b"k", b"", b">>") + frame(PREPEND, b"k", b"", b"<<")
     + frame(GET, b"k")),
    ("cas", [], frame(SET, b"k", SE, b"1") + frame(SET, b"k", SE, b"2", cas=1, opaque=1)
     + frame(SET, b"k", SE, b"3", cas=1, opaque=2) + frame(SET, b"zz", SE, b"3", cas=1, opaque=3)
     + frame(REPLACE, b"k", SE, b"4", cas=99) + frame(REPLACE, b"k", SE, b"4", cas=2)
     + frame(ADD, b"k", SE, b"5", cas=5) + frame(ADD, b"new", SE, b"5", cas=5) + frame(GET, b"k")),
    ("append-cas", [], frame(SET, b"k", SE, b"1") + frame(APPEND, b"k", b"", b"x", cas=12345)
     + frame(APPEND, b"k", b"", b"y", cas=1) + frame(PREPEND, b"k", b"", b"z", cas=1) + frame(GET, b"k")),
    ("empty-and-binary-values", [], frame(SET, b"e", SE, b"") + frame(GET, b"e")
     + frame(SET, b"b", SE, bytes(range(256)) * 4) + frame(GETK, b"b")),
    ("quiet-stores", [], frame(SETQ, b"a", SE, b"1", opaque=1) + frame(ADDQ, b"a", SE, b"1", opaque=2)
     + frame(REPLACEQ, b"zz", SE, b"1", opaque=3) + frame(APPENDQ, b"zz", b"", b"1", opaque=4)
     + frame(PREPENDQ, b"a", b"", b"0", opaque=5) + frame(REPLACEQ, b"a", SE, b"2", opaque=6)
     + frame(SETQ, b"a", SE, b"3", cas=99, opaque=7) + frame(GET, b"a")),
    # retrieval
    ("get-miss", [], frame(GET, b"zz", opaque=5) + frame(GETK, b"zz", opaque=6)),
    ("getq-batch", [], frame(SET, b"a", SE, b"A") + frame(SET, b"b", SE, b"B")
     + frame(GETQ, b"a", opaque=1) + frame(GETQ, b"zz", opaque=2) + frame(GETKQ, b"b", opaque=3)
     + frame(GETKQ, b"zz", opaque=4) + frame(GETQ, b"a", opaque=5)),
    ("touch-gat", [], frame(SET, b"k", SE, b"v1") + frame(TOUCH, b"k", u32(100), opaque=1)
     + frame(GAT, b"k", u32(100), opaque=2) + frame(GATK, b"k", u32(0), opaque=3)
     + frame(TOUCH, b"zz", u32(100), opaque=4) + frame(GAT, b"zz", u32(1), opaque=5)
     + frame(GATK, b"zz", u32(100), opaque=6)),
    ("gat-quiet", [], frame(SET, b"k", SE, b"v1") + frame(GATQ, b"k", u32(100), opaque=1)
     + frame(GATKQ, b"k", u32(100), opaque=2) + frame(GATQ, b"zz", u32(100), opaque=3)
     + frame(GATKQ, b"zz", u32(100), opaque=4)),
    ("touch-expires", [], frame(SET, b"k", SE, b"v1") + frame(TOUCH, b"k", u32(0xFFFFFFFF))
     + frame(GET, b"k")),
    # delete
    ("delete", [], frame(SET, b"k", SE, b"v1") + frame(DELETE, b"k", cas=3, opaque=1)
     + frame(DELETE, b"k", cas=1, opaque=2) + frame(DELETE, b"k", opaque=3)
     + frame(DELETEQ, b"k", opaque=4) + frame(SET, b"k", SE, b"v1") + frame(DELETEQ, b"k", opaque=5)
     + frame(GET, b"k")),
    # arithmetic
    ("incr-decr", [], frame(INCR, b"n", arith_extras(1, 10, 0xFFFFFFFF), opaque=1)
     + frame(INCR, b"n", arith_extras(1, 10, 0), opaque=2) + frame(INCR, b"n", arith_extras(3, 10, 0))
     + frame(DECR, b"n", arith_extras(300, 10, 0)) + frame(DECR, b"n", arith_extras(1, 10, 0))
     + frame(GET, b"n")),
    ("incr-cas", [], frame(INCR, b"n", arith_extras(1, 10, 0)) + frame(INCR, b"n", arith_extras(1), cas=999)
     + frame(INCR, b"n", arith_extras(5), cas=1) + frame(DECR, b"zz", arith_extras(5), cas=7)),
    ("incr-wrap-and-width", [], frame(SET, b"w", SE, b"18446744073709551615")
     + frame(INCR, b"w", arith_extras(2)) + frame(GET, b"w") + frame(SET, b"x", SE, b"99")
     + frame(INCR, b"x", arith_extras(1)) + frame(GET, b"x") + frame(DECR, b"x", arith_extras(95))
     + frame(GET, b"x")),
    ("incr-non-numeric", [], frame(SET, b"k", SE, b"v1") + frame(INCR, b"k", arith_extras(1))
     + frame(SET, b"e", SE, b"") + frame(DECR, b"e", arith_extras(1), cas=5)),
    ("incr-quiet", [], frame(INCRQ, b"n", arith_extras(1, 10, 0), opaque=1)
     + frame(INCRQ, b"n", arith_extras(1), opaque=2)
     + frame(DECRQ, b"zz", arith_extras(1, 0, 0xFFFFFFFF), opaque=3)
     + frame(DECRQ, b"n", arith_extras(1), cas=77, opaque=4) + frame(GET, b"n")),
    # other commands
    ("version-noop", [], frame(VERSION, opaque=1) + frame(NOOP, opaque=2)),
    ("flush", [], frame(SET, b"k", SE, b"v1") + frame(FLUSH, opaque=2) + frame(GET, b"k")
     + frame(SET, b"k", SE, b"v2") + frame(GET, b"k")),
    ("flush-delay", [], frame(SET, b"k", SE, b"v1") + frame(FLUSH, extras=u32(100)) + frame(GET, b"k")
     + frame(FLUSH, extras=u32(0)) + frame(GET, b"k")),
    ("flush-quiet", [], frame(SET, b"k", SE, b"v1") + frame(FLUSHQ, opaque=2) + frame(GET, b"k")),
    ("flush-disabled", ["-F"], frame(SET, b"k", SE, b"v1") + frame(FLUSH, opaque=2)
     + frame(FLUSHQ, opaque=3) + frame(GET, b"k") + frame(STAT)),
    ("quit", [], frame(SET, b"k", SE, b"v1") + frame(QUIT, opaque=3) + frame(GET, b"k"), "eof"),
    ("quit-quiet", [], frame(QUITQ, opaque=3) + frame(GET, b"k"), "eof"),
    ("sasl-without-sasl", [], frame(SASL_LIST, opaque=1)
     + frame(SASL_AUTH, b"PLAIN", b"", b"\0u\0p", opaque=2)
     + frame(SASL_STEP, b"PLAIN", b"", b"\0u\0p", opaque=3)),
    ("unknown-opcodes", [], frame(0x50, opaque=1) + frame(0x25, opaque=2) + frame(0xFF, opaque=3)),
    # stats
    ("stat-general-counters", [], frame(SET, b"a", SE, b"1") + frame(GET, b"a") + frame(GET, b"zz")
     + frame(GETQ, b"zz") + frame(GAT, b"a", u32(0)) + frame(TOUCH, b"zz", u32(0))
     + frame(SET, b"a", SE, b"2", cas=999) + frame(SET, b"zz", SE, b"2", cas=9) + frame(ADD, b"a", SE, b"1")
     + frame(APPEND, b"zz", b"", b"1") + frame(INCR, b"n", arith_extras(1, 1, 0))
     + frame(INCR, b"n", arith_extras(1)) + frame(DECR, b"n", arith_extras(1))
     + frame(INCR, b"q", arith_extras(1, 1, 0xFFFFFFFF)) + frame(DECR, b"q", arith_extras(1, 1, 0xFFFFFFFF))
     + frame(DELETE, b"a", cas=77) + frame(DELETE, b"a") + frame(DELETE, b"a") + frame(FLUSH)
     + frame(STAT, opaque=0x51)),
    ("stat-groups", [], frame(SET, b"a", SE, b"1") + frame(SET, b"b", SE, b"x" * 3000)
     + frame(STAT, b"settings", opaque=1) + frame(STAT, b"items", opaque=2) + frame(STAT, b"slabs", opaque=3)
     + frame(STAT, b"sizes", opaque=4)),
    ("stat-detail-reset", [], frame(STAT, b"detail on", opaque=1) + frame(STAT, b"detail off", opaque=2)
     + frame(STAT, b"detail dump", opaque=3) + frame(STAT, b"detail", opaque=4)
     + frame(STAT, b"detail bogus", opaque=5) + frame(GET, b"zz") + frame(STAT, b"reset", opaque=6)
     + frame(STAT, b"resetting", opaque=7) + frame(STAT, opaque=8)),
    ("stat-unknown-groups", [], frame(STAT, b"conns", opaque=1) + frame(STAT, b"cachedump 1 1", opaque=2)
     + frame(STAT, b"extstore", opaque=3) + frame(STAT, b"bogus", opaque=4) + frame(STAT, b"item", opaque=5)),
    # bad frames: memcached closes on these, after a reply for all but bad magic
    # (on an auto-detecting server a first byte other than 0x80 means text, hence -B binary)
    ("bad-magic", ["-B", "binary"], frame(GET, b"k", magic=0x81), "eof"),
    ("bad-magic-after-good", [], frame(NOOP, opaque=1) + frame(GET, b"k", magic=0x00), "eof"),
    ("key-longer-than-body", [], frame(GET, b"k", bodylen=0, opaque=3), "eof"),
    ("key-and-extras-longer-than-body", [], frame(SET, b"k", SE, b"", bodylen=5, opaque=3), "eof"),
    ("key-too-long", [], frame(GET, b"k" * 251, opaque=3), "eof"),
    ("key-too-long-set", [], frame(SET, b"k" * 300, SE, b"v", opaque=3), "eof"),
    ("get-with-extras", [], frame(GET, b"k", A, opaque=3), "eof"),
    ("get-without-key", [], frame(GET, b"", opaque=3), "eof"),
    ("get-with-value", [], frame(GET, b"k", b"", b"v", opaque=3), "eof"),
    ("set-without-extras", [], frame(SET, b"k", b"", b"v", opaque=3), "eof"),
    ("set-short-extras", [], frame(SET, b"k", A, b"v", opaque=3), "eof"),
    ("append-with-extras", [], frame(APPEND, b"k", A, b"v", opaque=3), "eof"),
    ("incr-wrong-extras", [], frame(INCR, b"k", b"x" * 8, opaque=3), "eof"),
    ("incr-with-value", [], frame(INCR, b"k", arith_extras(1), b"v", opaque=3), "eof"),
    ("delete-with-extras", [], frame(DELETE, b"k", A, opaque=3), "eof"),
    ("noop-with-body", [], frame(NOOP, b"", b"", b"xx", opaque=3), "eof"),
    ("version-with-key", [], frame(VERSION, b"k", opaque=3), "eof"),
    ("flush-with-key", [], frame(FLUSH, b"k", opaque=3), "eof"),
    ("flush-wrong-extras", [], frame(FLUSH, b"", b"\0\0", opaque=3), "eof"),
    ("quit-with-body", [], frame(QUIT, b"", b"", b"x", opaque=3), "eof"),
    ("touch-without-extras", [], frame(TOUCH, b"k", opaque=3), "eof"),
    ("gat-without-key", [], frame(GAT, b"", u32(1), opaque=3), "eof"),
    ("stat-with-extras", [], frame(STAT, b"", A, opaque=3), "eof"),
    ("sasl-list-with-key", [], frame(SASL_LIST, b"k", opaque=3), "eof"),
    ("sasl-auth-without-key", [], frame(SASL_AUTH, b"", b"", b"x", opaque=3), "eof"),
    # loose length checks: memcached reads Touch/Gat/Stat's extra body bytes as the next frame
    ("touch-with-trailing-body", [], frame(SET, b"k", SE, b"v")
     + frame(TOUCH, b"k", u32(10), bodylen=4 + 1 + 24)
     + frame(NOOP, opaque=1)),
    # too large: refused, value swallowed, connection kept; a set drops the old value
    ("too-large-set", [], frame(SET, b"big", SE, b"small") + frame(SET, b"big", SE, b"x" * BIG, opaque=4)
     + frame(GET, b"big")),
    ("too-large-add-keeps", [], frame(SET, b"big", SE, b"small")
     + frame(ADD, b"big", SE, b"x" * BIG, opaque=4)
     + frame(GET, b"big")),
    ("too-large-quiet", [], frame(SETQ, b"big", SE, b"x" * BIG, opaque=4)
     + frame(APPENDQ, b"big", b"", b"x" * BIG)),
    ("too-large-small-limit", ["-I", "512k"], frame(SET, b"k", SE, b"x" * (600 * 1024), opaque=1)
     + frame(SET, b"k", SE, b"x" * (400 * 1024), opaque=2) + frame(GET, b"k", opaque=3)),
    # CAS disabled: uniques are 0; a header cas is ignored by stores, compared by delete/incr
    ("cas-disabled", ["-C"], frame(SET, b"a", SE, b"1") + frame(GET, b"a") + frame(SET, b"a", SE, b"2", cas=1)
     + frame(ADD, b"a", SE, b"2", cas=1) + frame(APPEND, b"a", b"", b"x", cas=3)
     + frame(INCR, b"n", arith_extras(1, 10, 0)) + frame(INCR, b"n", arith_extras(1), cas=1)
     + frame(DELETE, b"a", cas=1) + frame(TOUCH, b"n", u32(1)) + frame(GET, b"a")),
    # protocol selection: -B binary refuses text (first byte is not the binary magic)
    ("binding-binary-text-refused", ["-B", "binary"], b"version\r\n" * 3, "eof"),
    ("binding-binary", ["-B", "binary"], frame(SET, b"k", SE, b"v") + frame(GET, b"k")),
    ("pipelined-split-writes", [], (frame(SET, b"k", SE, b"v" * 5000) + frame(GETK, b"k")) * 20),
]


def binary_scenario_params() -> list:
    params = []
    for entry in BINARY_SCENARIOS:
        name, args, data = entry[:3]
        end = entry[3] if len(entry) > 3 else "sentinel"
        params.append(pytest.param(args, data, end, id=name))
    return params


@pytest.mark.parametrize("args,data,end", binary_scenario_params())
def test_binary_matches_memcached(start_server, args, data, end):
    compare_binary(start_server, args, data, end)


def test_binary_frames_split_byte_by_byte(start_server):
    """A frame that arrives one byte at a time is executed once, when complete."""
    srv = start_server()
    data = frame(SET, b"k", SE, b"value", opaque=1) + frame(GETK, b"k", opaque=2) + NOOP_FRAME
    with srv.connect() as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(len(data)):
            sock.sendall(data[i:i + 1])
            if i % 16 == 0:
                time.sleep(0.001)
        raw, closed = recv_until(sock, sentinel_seen)
    packets, rest = parse_packets(raw)
    assert not closed and not rest
    assert [(p.opcode, p.status, p.opaque) for p in packets] == [
        (SET, 0, 1), (GETK, 0, 2), (NOOP, 0, SENTINEL)]
    assert packets[1].key == b"k" and packets[1].value == b"value"
    assert packets[1].extras == u32(5) and packets[1].cas == packets[0].cas != 0


def test_binary_incr_value_is_8_bytes_big_endian(start_server):
    srv = start_server()
    raw, _ = binary_exchange(srv, frame(INCR, b"n", arith_extras(1, 2**40 + 7, 0), opaque=9)
                             + frame(INCR, b"n", arith_extras(2**32)), "sentinel")
    created, bumped, _ = parse_packets(raw)[0]
    assert created.value == struct.pack(">Q", 2**40 + 7) and created.opaque == 9
    assert bumped.value == struct.pack(">Q", 2**40 + 2**32 + 7)
    assert bumped.cas > created.cas > 0


# --------------------------------------------------------------------------------------------
# Meta replies with volatile tokens


def meta_exchange(server, data: bytes) -> bytes:
    with server.connect(timeout=READ_TIMEOUT) as sock:
        sock.sendall(data + b"mn\r\n")
        raw, _ = recv_until(sock, lambda b: b.endswith(b"MN\r\n"))
    return raw


def normalise_meta(raw: bytes) -> tuple[list[str], list[int]]:
    """Meta reply lines with cas values ranked (0 kept), TTLs masked and `me` sizes masked;
    returns the lines and the masked TTLs, which the caller compares with a tolerance of one
    second (the two servers' clocks tick at different moments)."""
    cas_re = re.compile(rb"( c|\bcas=)(\d+)")
    uniques = sorted({int(m.group(2)) for m in cas_re.finditer(raw)} - {0})
    ranks = {v: i + 1 for i, v in enumerate(uniques)}
    ttls: list[int] = []

    def cas(m: re.Match) -> bytes:
        n = int(m.group(2))
        return m.group(1) + (b"#%d" % ranks[n] if n else b"0")

    def ttl(m: re.Match) -> bytes:
        ttls.append(int(m.group(2)))
        return m.group(1) + b"<ttl>"

    text = cas_re.sub(cas, raw)
    # `t<seconds>` (not -1) in meta flags, `exp=-<seconds>` in `me` lines
    text = re.sub(rb"( t)(\d+)", ttl, text)
    text = re.sub(rb"(exp=-)(\d+)(?= la=)", lambda m: m.group(0) if m.group(2) == b"1" else ttl(m), text)
    text = re.sub(rb" cls=\d+ size=\d+", b" cls=<n> size=<n>", text)
    return text.decode("latin-1").split("\r\n"), ttls


META_SCENARIOS = [
    ("ms-returns-cas", [], b"ms a 1 c\r\n1\r\nms a 1 c k O1\r\n2\r\nms a 1 c MA\r\n3\r\n"
     b"ms a 1 ME c\r\n4\r\nms zz 1 MR c\r\n5\r\nms a 1 C1 c\r\n6\r\nmg a c v\r\n"),
    ("ms-cas-round-trip", [], b"ms a 1 c\r\n1\r\nms a 1 C1 c\r\n2\r\nms a 1 C2 c\r\n3\r\n"
     b"ms a 1 C2 c q\r\n4\r\n"
     b"mg a c\r\nms a 1 C1 I c\r\nst\r\nmg a c v\r\nmg a c v\r\n"),
    ("mg-ttl-and-cas", [], b"ms a 1 T100\r\n1\r\nmg a t c\r\nmg a T50 t\r\nmg a t T200 t\r\n"
     b"mg v N300 t c\r\nmg v t\r\nmg a R1000 t\r\nmg a R10 t\r\n"),
    ("ma-ttl-and-cas", [], b"ma n N100 J5 t c v\r\nma n t c v\r\nma n T500 t\r\nma n t\r\nma n C1 c\r\n"
     b"ma n C2 c\r\nma n MD c t v\r\n"),
    ("md-invalidate-cas", [], b"ms a 1\r\n1\r\nmg a c\r\nmd a I T30\r\nmg a c t v\r\nms a 1 C1 I c\r\nx\r\n"
     b"mg a c t v\r\nmd a C1\r\nmd a C4 q\r\nmg a\r\n"),
    ("me-lines", [], b"ms a 3 T1000\r\nabc\r\nme a\r\nmg a v\r\nme a\r\nms Zm9v 1 b\r\nx\r\nme Zm9v b\r\n"
     b"me foo\r\nmg viv N0\r\nme viv\r\n"),
    ("cas-disabled-meta", ["-C"], b"ms a 1 c\r\n1\r\nmg a c\r\nms a 1 C0 c\r\n2\r\nms a 1 MA C5\r\n3\r\n"
     b"mg a v\r\nmd a C5\r\nma n N0 c v\r\nma n C0 v\r\n"),
]


@pytest.mark.parametrize("args,data", [pytest.param(a, d, id=n) for n, a, d in META_SCENARIOS])
def test_meta_volatile_tokens_match_memcached(start_server, args, data):
    ref = start_server(args, kind="memcached")
    tgt = start_server(args)
    want, want_ttls = normalise_meta(meta_exchange(ref, data))
    got, got_ttls = normalise_meta(meta_exchange(tgt, data))
    assert got == want
    assert len(got_ttls) == len(want_ttls)
    for w, g in zip(want_ttls, got_ttls):
        assert abs(w - g) <= 1, f"TTL {g} on the target, {w} on memcached"


def test_meta_counts_like_memcached(start_server):
    """The counters after a meta workload (stats compared as the text harness does)."""
    data = (b"mg a v\r\nms a 1\r\n1\r\nmg a\r\nmg a T10\r\nmg zz T10\r\nmg v N0\r\nms a 1 C1\r\n1\r\n"
            b"ms zz 1 C1\r\n1\r\nms a 2\r\nxyz\r\nmd a C1\r\nmd a\r\nmd a\r\nmd v I\r\nma n\r\nma n N0\r\n"
            b"ma n\r\nma n MD\r\nma n C99\r\nma q MD\r\nme n\r\nme zz\r\nmn\r\n")
    values = []
    for kind in ("memcached", TARGET):
        srv = start_server([], kind=kind)
        meta_exchange(srv, data)
        with srv.connect() as sock:
            sock.sendall(b"stats\r\n")
            raw, _ = recv_until(sock, lambda b: b.endswith(b"END\r\n"))
        stats = dict(re.findall(r"STAT (\S+) (\S+)", raw.decode()))
        values.append({k: stats.get(k) for k in STATS_COMPARED_VALUES + ["cmd_meta", "store_too_large"]})
    assert values[1] == values[0]


# --------------------------------------------------------------------------------------------
# Robustness: hostile input on one connection never disturbs another


def test_random_frames_never_disturb_other_clients(start_server):
    srv = start_server()
    rng = random.Random(20240611)
    with srv.connect() as good:
        good.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for round_ in range(150):
            op = rng.choice([rng.randrange(256), rng.choice(range(0x25)), rng.randrange(0x60, 0x68)])
            key = rng.randbytes(rng.choice([0, 1, 10, 250, 251, 300]))
            extras = rng.randbytes(rng.choice([0, 4, 8, 20, 3, 255]))
            value = rng.randbytes(rng.choice([0, 5, 100, 70000, 1 << 20]))
            lens = {}
            if rng.random() < 0.5:
                lens = rng.choice([{"keylen": rng.randrange(65536)}, {"extlen": rng.randrange(256)},
                                   {"bodylen": rng.choice([0, 1, 2**31 - 1, 2**31, 2**32 - 1])}])
            bad = frame(op, key, extras, value, opaque=round_, cas=rng.randrange(2**64), **lens)
            if rng.random() < 0.1:
                bad = bytes([rng.randrange(256)]) + bad[1:]
            with srv.connect(timeout=2) as sock:
                try:
                    sock.sendall(bad + bad[: rng.randrange(len(bad) + 1)])
                    sock.settimeout(0.02)
                    sock.recv(65536)
                except OSError:
                    pass
            # the other client still gets exact answers
            good.sendall(frame(SET, b"probe", SE, b"%d" % round_) + frame(GET, b"probe", opaque=round_)
                         + NOOP_FRAME)
            raw, closed = recv_until(good, sentinel_seen)
            packets, _ = parse_packets(raw)
            assert not closed
            assert [p.status for p in packets] == [0, 0, 0]
            assert packets[1].value == b"%d" % round_ and packets[1].opaque == round_
    assert srv.proc.poll() is None


@slabcached_only
def test_hostile_body_length_is_refused_without_buffering(start_server):
    """A Set announcing ~2 GB is refused as too large at once; the server neither waits for
    the value before answering nor stops serving others. (memcached sends the same reply,
    but only once it has swallowed the announced bytes.)"""
    srv = start_server()
    with srv.connect() as sock:
        sock.sendall(frame(SET, b"k", SE, b"", bodylen=2**31 - 1, opaque=3))
        raw, _ = recv_until(sock, lambda b: len(parse_packets(b)[0]) >= 1)
        (p,), _ = parse_packets(raw)
        assert (p.opcode, p.status, p.opaque, p.value) == (SET, 0x03, 3, b"Too large.")
    raw, closed = binary_exchange(srv, frame(SET, b"k", SE, b"v") + frame(GET, b"k"), "sentinel")
    assert not closed and [p.status for p in parse_packets(raw)[0]] == [0, 0, 0]


def test_verbosity_without_extras_is_an_unknown_command(start_server):
    """memcached 1.6.18 has no Verbosity handler: whatever the frame's shape it answers
    `Unknown command` and keeps the connection."""
    srv = start_server()
    raw, closed = binary_exchange(srv, frame(VERBOSITY, opaque=6), "sentinel")
    packets, _ = parse_packets(raw)
    assert not closed
    assert [(p.opcode, p.status, p.opaque, p.value) for p in packets] == [
        (VERBOSITY, 0x81, 6, b"Unknown command"), (NOOP, 0, SENTINEL, b"")]


def test_value_length_past_2_31_swallows_nothing(start_server):
    """memcached holds a Set's value length in a C int: body length 0xFFFFFFF0 makes it
    negative, so it answers Too large, swallows nothing, and reads the next frame."""
    srv = start_server()
    raw, closed = binary_exchange(srv, frame(SET, b"k", SE, b"", bodylen=0xFFFFFFF0, opaque=7), "sentinel")
    packets, _ = parse_packets(raw)
    assert not closed
    assert [(p.opcode, p.status, p.opaque) for p in packets] == [(SET, 0x03, 7), (NOOP, 0, SENTINEL)]


def test_lengths_past_the_body_are_answered_once_the_key_arrived(start_server):
    """Key length over the body length: memcached reads extras and key before any check, so
    it says nothing while they are incomplete, then answers Unknown command and closes."""
    srv = start_server()
    with srv.connect(timeout=READ_TIMEOUT) as sock:
        sock.sendall(frame(GET, b"abc", bodylen=3, keylen=5, opaque=8))
        sock.settimeout(0.3)
        with pytest.raises(socket.timeout):
            sock.recv(1024)
        sock.sendall(b"de")
        raw, closed = recv_until(sock, lambda _: False)
    (p,), _ = parse_packets(raw)
    assert (p.opcode, p.status, p.opaque, closed) == (GET, 0x81, 8, True)


def test_text_meta_and_binary_connections_share_items(start_server):
    srv = start_server()
    raw, _ = binary_exchange(srv, frame(SET, b"shared", store_extras(3), b"from-binary"), "sentinel")
    assert parse_packets(raw)[0][0].status == 0
    assert meta_exchange(srv, b"mg shared v f\r\nms shared 9 F4\r\nfrom-meta\r\n") == (
        b"VA 11 f3\r\nfrom-binary\r\nHD\r\nMN\r\n")
    raw, _ = binary_exchange(srv, frame(GETK, b"shared"), "sentinel")
    p = parse_packets(raw)[0][0]
    assert (p.extras, p.key, p.value) == (u32(4), b"shared", b"from-meta")


# --------------------------------------------------------------------------------------------
# slabcached's additions and approximations


@slabcached_only
def test_elasticache_config_opcodes(start_server):
    srv = start_server(["--enable-config-set"])
    with srv.connect() as sock:
        sock.sendall(b"config get cluster\r\n")
        text, _ = recv_until(sock, lambda b: b.endswith(b"END\r\n"))
    body = text.split(b"\r\n", 1)[1].rsplit(b"\r\nEND\r\n", 1)[0]
    raw, closed = binary_exchange(
        srv,
        frame(CONFIG_GET, b"cluster", opaque=1) + frame(CONFIG_GETK, b"cluster", opaque=2)
        + frame(CONFIG_GETQ, b"nothing", opaque=3) + frame(CONFIG_GETKQ, b"nothing", opaque=4)
        + frame(CONFIG_GET, b"nothing", opaque=5) + frame(CONFIG_GETK, b"nothing", opaque=6)
        + frame(CONFIG_SET, b"other", u32(7), b"payload", opaque=7) + frame(CONFIG_GETK, b"other", opaque=8)
        + frame(CONFIG_SETQ, b"cluster", u32(0), b"not a config", opaque=9)
        + frame(CONFIG_DELETEQ, b"other", opaque=10) + frame(CONFIG_DELETE, b"other", opaque=11),
        "sentinel")
    packets, _ = parse_packets(raw)
    assert not closed
    got = [(p.opcode, p.status, p.opaque, p.extras, p.key, p.value) for p in packets[:-1]]
    assert got == [
        (CONFIG_GET, 0, 1, u32(0), b"", body),
        (CONFIG_GETK, 0, 2, u32(0), b"cluster", body),
        (CONFIG_GET, 1, 5, b"", b"", b"Not found"),
        (CONFIG_GETK, 1, 6, b"", b"nothing", b""),
        (CONFIG_SET, 0, 7, b"", b"", b""),
        (CONFIG_GETK, 0, 8, u32(7), b"other", b"payload"),
        (CONFIG_SETQ, 4, 9, b"", b"", b"Invalid arguments"),
        (CONFIG_DELETE, 1, 11, b"", b"", b"Not found"),
    ]


@slabcached_only
def test_config_set_disabled_is_an_unknown_command(start_server):
    srv = start_server()
    raw, closed = binary_exchange(srv, frame(CONFIG_SET, b"cluster", u32(0), b"x", opaque=1)
                                  + frame(CONFIG_DELETE, b"cluster", opaque=2), "sentinel")
    packets, _ = parse_packets(raw)
    assert not closed
    assert [(p.opcode, p.status, p.value) for p in packets[:2]] == [
        (CONFIG_SET, 0x81, b"Unknown command"), (CONFIG_DELETE, 0x81, b"Unknown command")]


@slabcached_only
def test_binary_get_of_the_legacy_discovery_key(start_server):
    srv = start_server()
    raw, _ = binary_exchange(srv, frame(GETK, b"AmazonElastiCache:cluster", opaque=4), "sentinel")
    p = parse_packets(raw)[0][0]
    assert (p.status, p.opaque, p.extras, p.key, p.cas) == (0, 4, u32(0), b"AmazonElastiCache:cluster", 0)
    assert re.fullmatch(rb"\d+\n\S+\|\S+\|\d+( \S+\|\S+\|\d+)*\n", p.value)


@slabcached_only
def test_verbosity_frame_is_skipped_exactly(start_server):
    """memcached 1.6.18 answers Verbosity `Unknown command` and then skips body-length more
    bytes (eating the start of the next frame); slabcached skips exactly the frame."""
    srv = start_server()
    raw, closed = binary_exchange(srv, frame(VERBOSITY, extras=u32(1), opaque=5), "sentinel")
    packets, _ = parse_packets(raw)
    assert not closed
    assert [(p.opcode, p.status, p.opaque, p.value) for p in packets] == [
        (VERBOSITY, 0x81, 5, b"Unknown command"), (NOOP, 0, SENTINEL, b"")]


@slabcached_only
def test_last_access_reports_seconds_since_the_last_write(start_server):
    srv = start_server()
    meta_exchange(srv, b"ms a 1 T100\r\n1\r\nms b 1\r\n1\r\n")
    time.sleep(2.2)
    raw = meta_exchange(srv, b"mg a l t h\r\nmg a l h\r\nms b 1\r\n2\r\nmg b l\r\nme a\r\n")
    lines = raw.split(b"\r\n")
    l_a, ttl, hit = map(int, re.fullmatch(rb"HD l(\d+) t(\d+) h(\d)", lines[0]).groups())
    assert 2 <= l_a <= 3 and 96 <= ttl <= 98 and hit == 0
    assert re.fullmatch(rb"HD l[23] h1", lines[1])
    assert lines[2:4] == [b"HD", b"HD l0"]
    assert re.fullmatch(rb"ME a exp=-(9[6-8]) la=[23] cas=1 fetch=yes cls=\d+ size=\d+", lines[4])


def test_meta_ttl_counts_down(start_server):
    srv = start_server()
    meta_exchange(srv, b"ms a 1 T100\r\n1\r\n")
    time.sleep(1.1)
    ttl = int(re.match(rb"HD t(\d+)", meta_exchange(srv, b"mg a t\r\n")).group(1))
    assert 97 <= ttl <= 99
