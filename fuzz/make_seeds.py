#!/usr/bin/env python3
"""Write the seed corpus of the slabcached_server target (fuzz/corpus/slabcached_server/).

Each seed is a script in the input format src/fuzzing.rs describes: a configuration
byte, then records (op byte: connection | action << 2 | piece << 5). Run from anywhere;
rewrites the seeds it names and leaves other files (libFuzzer finds, regressions) alone.
"""
import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "slabcached_server")


def length(n):
    return bytes([n]) if n < 255 else b"\xff" + struct.pack(">H", n)


def send(conn, data, piece=0, read=True):
    """Client `conn` sends `data` (piece: index into PIECES); a script may need several."""
    out = b""
    for at in range(0, len(data), 65535):
        chunk = data[at:at + 65535]
        out += bytes([conn | (0 if read else 3) << 2 | piece << 5]) + length(len(chunk)) + chunk
    return out


def fill(conn, kb, piece=0):
    return bytes([conn | 4 << 2 | piece << 5, kb - 1])


def close(conn):
    return bytes([conn | 5 << 2])


def half_close(conn):
    return bytes([conn | 6 << 2])


def datagram(data):
    """One UDP datagram's payload (actions 0-2 with piece code 7)."""
    return bytes([7 << 5]) + length(len(data)) + data


def maintain(secs):
    return bytes([7 << 2, secs])


def binary(opcode, key=b"", extras=b"", value=b"", opaque=0, cas=0):
    body = extras + key + value
    return struct.pack(">BBHBBHIIQ", 0x80, opcode, len(key), len(extras), 0, 0, len(body),
                       opaque, cas) + body


SEEDS = {
    "text-session": b"\x00"
    + send(0, b"set a 5 0 3\r\nabc\r\nget a\r\ngets a\r\nappend a 0 0 2\r\nde\r\n")
    + send(1, b"prepend a 0 0 1\r\nz\r\nincr n 1\r\nset n 0 0 2\r\n10\r\nincr n 5\r\n"
           b"decr n 100\r\n", piece=2)
    + send(0, b"cas a 0 0 1 999\r\nq\r\ntouch a 100\r\ngat 0 a n\r\ngats 10 a\r\n"
           b"delete a\r\ndelete a noreply\r\nget a n missing\r\n", piece=1)
    + send(1, b"add n 0 0 1\r\nx\r\nreplace zz 0 0 1\r\ny\r\nverify\r\nversion\r\n"),
    "meta-session": b"\x00"
    + send(0, b"ms foo 3 T0 F5\r\nbar\r\nmg foo v f t c s k O123 q\r\nmn\r\n")
    + send(1, b"ms Zm9v 2 b I\r\nhi\r\nmg Zm9v b v\r\nma cnt N0 J13 v\r\nma cnt MD D2 v\r\n",
           piece=3)
    + send(0, b"md foo I T30\r\nmg foo v c\r\nms foo 1 C1 q\r\nx\r\nme foo\r\n"
           b"mg missing N30 v s t\r\nmg missing v\r\nmd foo q\r\nmn\r\n", piece=4)
    + send(2, b"ms big 20000 T0\r\n") + fill(2, 19, piece=6)
    + send(2, b"b" * (20000 - 19 * 1024) + b"\r\nmg big v\r\n"),
    "binary-session": b"\x00"
    + send(0, binary(0x01, b"k1", struct.pack(">II", 7, 0), b"value1", opaque=1)
           + binary(0x00, b"k1", opaque=2) + binary(0x09, b"k1", opaque=3)
           + binary(0x0d, b"k1", opaque=4) + binary(0x0a))
    + send(1, binary(0x05, b"c", struct.pack(">QQI", 1, 5, 0)) * 3
           + binary(0x0e, b"k1", value=b"++") + binary(0x04, b"k1")
           + binary(0x10, b"") + binary(0x0b), piece=3)
    + send(0, binary(0x11, b"q1", struct.pack(">II", 0, 0), b"quiet") + binary(0x0c, b"q1")
           + binary(0x1c, b"q1", struct.pack(">I", 50)) + binary(0x08, extras=b"")
           + binary(0x07), piece=2),
    "large-values-no-read": b"\x00"
    + send(0, b"set big 0 0 102400\r\n") + fill(0, 100, piece=5) + send(0, b"\r\n")
    + send(1, b"set big2 0 0 65536\r\n") + fill(1, 64) + send(1, b"\r\n")
    + send(2, b"get big big2 big big2 big big2 big big2 big big2 big\r\n" * 4, read=False)
    + send(3, b"get big\r\n")
    + send(2, b"mg big v\r\nget big2\r\n")
    + close(2),
    "evict-and-move": b"\x00"
    + b"".join(send(i % 4, b"set k%d 0 0 40000\r\n" % i) + fill(i % 4, 39)
               + send(i % 4, b"x" * 64 + b"\r\n") for i in range(30))
    + send(0, b"cache_memlimit 8\r\n")
    + b"".join(send(i % 4, b"set k%d 0 0 40000\r\n" % i) + fill(i % 4, 39)
               + send(i % 4, b"x" * 64 + b"\r\n") for i in range(30, 90))
    + b"".join(send(i % 4, b"set s%d 0 0 10\r\n0123456789\r\n" % i * 20) for i in range(4))
    + send(0, b"slabs reassign -1 0\r\nslabs automove 2\r\n") + maintain(3)
    + send(1, b"get k0 k5 k11 s0 s3\r\nlru_crawler metadump all\r\ncache_memlimit 9\r\n")
    + maintain(60)
    + send(2, b"stats slabs\r\nstats items\r\n"),
    "admin": b"\x02"
    + send(0, b"stats\r\nstats settings\r\nstats conns\r\nstats detail on\r\nset p:a 0 0 1\r\n"
           b"a\r\nget p:a\r\nstats detail dump\r\nstats sizes\r\nverbosity 1\r\n")
    + send(1, b"cache_memlimit 2\r\nflush_all 2\r\nflush_all\r\nlru mode flat\r\n"
           b"lru_crawler crawl all\r\nstats reset\r\nmisbehave\r\nquit\r\nget never\r\n")
    + maintain(5)
    + send(2, b"set h 0 0 1\r\nh\r\nget h\r\n") + half_close(2)
    + send(3, b"watch evictions\r\nget x\r\n"),
    "refused-and-broken": b"\x01"
    + send(0, b"set huge 0 0 200000\r\n") + fill(0, 195) + send(0, b"\r\nget huge\r\n")
    + send(1, b"set " + b"k" * 300 + b" 0 0 1\r\nx\r\nget a b\r\nbogus\r\nset x 0 0 -1\r\n"
           b"set x 0 0 2\r\nabc\r\n", piece=3)
    + send(2, b"get " + b"k " * 2000 + b"\r\n", piece=5)
    + send(3, b"\x80\x01\x00\x05\x08\x00\x00\x00\xff\xff\xff\xff", piece=1)
    + send(0, b"ms x S100\r\nms x 5 Q Z\r\n12345\r\nmg\r\n" + b"\xff" * 40),
    "slow-network": b"\x08"
    + send(0, b"set v 0 0 30000\r\n") + fill(0, 29) + send(0, b"x" * 304 + b"\r\n")
    + send(1, b"get v v v v v v\r\nmg v v\r\n" + b"get v\r\n" * 8, read=False)
    + send(2, b"get v\r\n" + b"\x80" + b"\x00" * 23)
    + send(1, b"version\r\n", read=False)
    + send(3, b"stats\r\nlru_crawler metadump all\r\n", read=False) + close(3)
    + send(1, b"get v\r\n"),
    "read-budget": b"\x0c"
    + b"".join(send(i, b"set big%d 0 0 120000\r\n" % i) + fill(i, 117) for i in range(4))
    + b"".join(send(i, b"\r\nget big%d\r\n" % i) for i in range(4))
    + send(0, b"get a\r\n" * 60, read=False)
    + send(1, b"mn\r\n" * 50),
    "expiry": b"\x00"
    + send(0, b"set t 0 2 1\r\nt\r\nset u 0 -1 1\r\nu\r\nms v 1 T3\r\nv\r\nget t u v\r\n")
    + maintain(5)
    + send(1, b"get t u v\r\nmg v v\r\ngat 1 t\r\nset w 0 1 1\r\nw\r\n")
    + maintain(2) + send(0, b"get w\r\nstats items\r\n"),
    # UDP: a value asked for many times in one datagram, misses around hits, binary, a
    # store cut off by the datagram's end.
    "udp-datagrams": b"\x00"
    + send(0, b"set big 0 0 100000\r\n" + b"b" * 100000 + b"\r\nset s 0 0 1\r\ns\r\n")
    + datagram(b"get" + b" big" * 60 + b" nope s\r\nversion\r\n")
    + datagram(b"get x y s z\r\nset t 0 0 1 noreply\r\nt\r\nmg t v\r\n")
    + datagram(binary(0x0D, b"s") + binary(0x0D, b"none") + binary(0x0A))
    + datagram(b"set cut 0 0 50000\r\nabc")
    + datagram(b"get cut s\r\n"),
}


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, data in SEEDS.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
    print(f"wrote {len(SEEDS)} seeds to {OUT}")


if __name__ == "__main__":
    main()
