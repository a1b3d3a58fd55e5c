//! Decoder and encoder tests. Expected replies and byte counts were checked against
//! memcached 1.6.18 (`/usr/bin/memcached`), not derived from this code.

use super::*;
use proptest::prelude::*;

fn lim() -> Limits {
    Limits::default()
}

fn dec(input: &[u8]) -> Decoded<'_> {
    decode(input, &lim())
}

/// A request and the bytes it must consume.
fn ok(request: Request<'_>, consumed: usize) -> Decoded<'_> {
    Decoded::Request { request, consumed }
}

/// An error consuming `consumed` bytes, nothing swallowed, connection kept.
fn err(error: impl Into<ProtoError>, consumed: usize, noreply: bool) -> Decoded<'static> {
    Decoded::Error {
        error: error.into(),
        consumed,
        swallow: 0,
        close: false,
        noreply,
        unlink: None,
    }
}

fn keys<'a>(line: &'a [u8]) -> Keys<'a> {
    Keys::validated(line, 250).unwrap()
}

fn store<'a>(
    mode: StoreMode,
    key: &'a [u8],
    flags: u32,
    exptime: i64,
    value: &'a [u8],
    cas_unique: u64,
    noreply: bool,
) -> Request<'a> {
    Request::Store {
        mode,
        key,
        flags,
        exptime,
        value,
        cas_unique,
        noreply,
    }
}

/// Valid requests, whole: each must decode to the request consuming all of its bytes,
/// every proper prefix must be `Incomplete`, and bytes after it must not matter.
fn valid_cases() -> Vec<(&'static [u8], Request<'static>)> {
    use StoreMode::*;
    vec![
        (
            b"get foo\r\n",
            Request::Get {
                keys: keys(b"foo"),
                with_cas: false,
            },
        ),
        (
            b"get a  b   c\r\n",
            Request::Get {
                keys: keys(b"a b c"),
                with_cas: false,
            },
        ),
        (
            b"   get k\n",
            Request::Get {
                keys: keys(b"k"),
                with_cas: false,
            },
        ),
        (
            b"gets a b\r\n",
            Request::Get {
                keys: keys(b"a b"),
                with_cas: true,
            },
        ),
        (
            b"bget a\r\n",
            Request::Get {
                keys: keys(b"a"),
                with_cas: false,
            },
        ),
        (
            // `noreply` is just a key to the get family.
            b"get k noreply\r\n",
            Request::Get {
                keys: keys(b"k noreply"),
                with_cas: false,
            },
        ),
        (
            // Tabs and other control bytes are key bytes; only spaces separate.
            b"get a\tb \x01\r\n",
            Request::Get {
                keys: keys(b"a\tb \x01"),
                with_cas: false,
            },
        ),
        (
            // A NUL ends the line: memcached never sees `junk`.
            b"get k\0junk\r\n",
            Request::Get {
                keys: keys(b"k"),
                with_cas: false,
            },
        ),
        (
            // A `\r` not directly before the newline stays in the key.
            b"get k\r\r\n",
            Request::Get {
                keys: keys(b"k\r"),
                with_cas: false,
            },
        ),
        (
            b"gat 100 a b\r\n",
            Request::GetAndTouch {
                exptime: 100,
                keys: keys(b"a b"),
                with_cas: false,
            },
        ),
        (
            b"gats -1 a\r\n",
            Request::GetAndTouch {
                exptime: -1,
                keys: keys(b"a"),
                with_cas: true,
            },
        ),
        (
            // memcached answers `END`: an empty key list is fine for gat.
            b"gat 0\r\n",
            Request::GetAndTouch {
                exptime: 0,
                keys: keys(b""),
                with_cas: false,
            },
        ),
        (
            b"gat 4294967296 k\r\n",
            Request::GetAndTouch {
                exptime: 0,
                keys: keys(b"k"),
                with_cas: false,
            },
        ),
        (
            b"set k 5 10 3\r\nabc\r\n",
            store(Set, b"k", 5, 10, b"abc", 0, false),
        ),
        (b"set k 0 0 0\r\n\r\n", store(Set, b"k", 0, 0, b"", 0, false)),
        (
            // The data block may contain anything, newlines included.
            b"set k 0 0 4\r\n\r\n\r\n\r\n",
            store(Set, b"k", 0, 0, b"\r\n\r\n", 0, false),
        ),
        (
            b"set  k   0 0 1 noreply\nx\r\n",
            store(Set, b"k", 0, 0, b"x", 0, true),
        ),
        (
            // A sixth token that is not `noreply` is ignored.
            b"set k 0 0 1 foo\r\nx\r\n",
            store(Set, b"k", 0, 0, b"x", 0, false),
        ),
        (
            // Everything after a NUL in the line is ignored, but the data block still
            // starts after the newline.
            b"set k 0 0 1\0garbage\r\nx\r\n",
            store(Set, b"k", 0, 0, b"x", 0, false),
        ),
        (
            b"set k +5 -1 00001\r\nx\r\n",
            store(Set, b"k", 5, -1, b"x", 0, false),
        ),
        (
            b"set k 4294967296 4294967296 4294967297\r\nx\r\n",
            store(Set, b"k", 0, 0, b"x", 0, false),
        ),
        (
            b"set k 18446744073709551615 2147483648 1\r\nx\r\n",
            store(Set, b"k", u32::MAX, -2_147_483_648, b"x", 0, false),
        ),
        (
            b"set k -18446744073709551615 -9223372036854775808 1\r\nx\r\n",
            store(Set, b"k", 1, 0, b"x", 0, false),
        ),
        (
            b"set k 5\tjunk \t7 1\r\nx\r\n",
            store(Set, b"k", 5, 7, b"x", 0, false),
        ),
        (b"add k 1 2 1\r\nx\r\n", store(Add, b"k", 1, 2, b"x", 0, false)),
        (
            b"replace k 1 2 1 noreply\r\nx\r\n",
            store(Replace, b"k", 1, 2, b"x", 0, true),
        ),
        (
            b"append k 0 0 2\r\nxy\r\n",
            store(Append, b"k", 0, 0, b"xy", 0, false),
        ),
        (
            b"prepend k 0 0 2\r\nxy\r\n",
            store(Prepend, b"k", 0, 0, b"xy", 0, false),
        ),
        (
            b"cas k 0 0 1 18446744073709551615\r\nx\r\n",
            store(Cas, b"k", 0, 0, b"x", u64::MAX, false),
        ),
        (
            b"cas k 0 0 1 42 noreply\r\nx\r\n",
            store(Cas, b"k", 0, 0, b"x", 42, true),
        ),
        (
            b"delete k\r\n",
            Request::Delete {
                key: b"k",
                noreply: false,
            },
        ),
        (
            b"delete k 0\r\n",
            Request::Delete {
                key: b"k",
                noreply: false,
            },
        ),
        (
            b"delete k noreply\r\n",
            Request::Delete {
                key: b"k",
                noreply: true,
            },
        ),
        (
            b"delete k 0 noreply\r\n",
            Request::Delete {
                key: b"k",
                noreply: true,
            },
        ),
        (
            b"incr k 18446744073709551615\r\n",
            Request::Arith {
                op: ArithOp::Incr,
                key: b"k",
                delta: u64::MAX,
                noreply: false,
            },
        ),
        (
            b"decr k +3 noreply\r\n",
            Request::Arith {
                op: ArithOp::Decr,
                key: b"k",
                delta: 3,
                noreply: true,
            },
        ),
        (
            b"incr k 1 foo\r\n",
            Request::Arith {
                op: ArithOp::Incr,
                key: b"k",
                delta: 1,
                noreply: false,
            },
        ),
        (
            b"touch k 10\r\n",
            Request::Touch {
                key: b"k",
                exptime: 10,
                noreply: false,
            },
        ),
        (
            b"touch k -5 noreply\r\n",
            Request::Touch {
                key: b"k",
                exptime: -5,
                noreply: true,
            },
        ),
        (
            b"flush_all\r\n",
            Request::FlushAll {
                delay: 0,
                noreply: false,
            },
        ),
        (
            b"flush_all noreply\r\n",
            Request::FlushAll {
                delay: 0,
                noreply: true,
            },
        ),
        (
            b"flush_all 10 noreply\r\n",
            Request::FlushAll {
                delay: 10,
                noreply: true,
            },
        ),
        (
            b"flush_all 10 x\r\n",
            Request::FlushAll {
                delay: 10,
                noreply: false,
            },
        ),
        (
            b"flush_all 99999999999\r\n",
            Request::FlushAll {
                delay: 1_215_752_191,
                noreply: false,
            },
        ),
        (b"version\r\n", Request::Version),
        (b"version x y z\r\n", Request::Version),
        (b"quit\r\n", Request::Quit),
        (b"quit now\n", Request::Quit),
        (
            b"verbosity 1\r\n",
            Request::Verbosity {
                level: 1,
                noreply: false,
            },
        ),
        (
            b"verbosity 1 2\r\n",
            Request::Verbosity {
                level: 1,
                noreply: false,
            },
        ),
        (
            b"verbosity 5 noreply\r\n",
            Request::Verbosity {
                level: 5,
                noreply: true,
            },
        ),
        (b"stats\r\n", Request::Stats(StatsRequest::General)),
        (b"stats \r\n", Request::Stats(StatsRequest::General)),
        (b"stats settings\r\n", Request::Stats(StatsRequest::Settings)),
        (b"stats items\r\n", Request::Stats(StatsRequest::Items)),
        (b"stats items x\r\n", Request::Stats(StatsRequest::Items)),
        (b"stats slabs\r\n", Request::Stats(StatsRequest::Slabs)),
        (b"stats sizes\r\n", Request::Stats(StatsRequest::Sizes)),
        (b"stats hotkeys\r\n", Request::Stats(StatsRequest::Hotkeys)),
        (
            b"stats sizes_enable\r\n",
            Request::Stats(StatsRequest::SizesEnable),
        ),
        (
            b"stats sizes_disable\r\n",
            Request::Stats(StatsRequest::SizesDisable),
        ),
        (b"stats conns\r\n", Request::Stats(StatsRequest::Conns)),
        (b"stats extstore\r\n", Request::Stats(StatsRequest::Extstore)),
        (b"stats reset\r\n", Request::Stats(StatsRequest::Reset)),
        (b"stats reset noreply\r\n", Request::Stats(StatsRequest::Reset)),
        (
            b"stats detail on\r\n",
            Request::Stats(StatsRequest::Detail(StatsDetail::On)),
        ),
        (
            b"stats detail off x\r\n",
            Request::Stats(StatsRequest::Detail(StatsDetail::Off)),
        ),
        (
            b"stats detail dump\r\n",
            Request::Stats(StatsRequest::Detail(StatsDetail::Dump)),
        ),
        (
            b"stats cachedump 1 10\r\n",
            Request::Stats(StatsRequest::Cachedump { class: 1, limit: 10 }),
        ),
        (
            b"stats cachedump 4294967297 0 x\r\n",
            Request::Stats(StatsRequest::Cachedump { class: 1, limit: 0 }),
        ),
        (
            b"cache_memlimit 100\r\n",
            Request::CacheMemlimit {
                megabytes: 100,
                noreply: false,
            },
        ),
        (
            b"cache_memlimit 4294967360 noreply\r\n",
            Request::CacheMemlimit {
                megabytes: 64,
                noreply: true,
            },
        ),
        (b"shutdown\r\n", Request::Shutdown { graceful: false }),
        (b"shutdown graceful\r\n", Request::Shutdown { graceful: true }),
        (b"mn\r\n", Request::MetaNoop),
        (b"mn foo\r\n", Request::MetaNoop),
        (b"config get cluster\r\n", Request::ConfigGet { key: b"cluster" }),
        (
            b"config set cluster 0 4\r\n1\nh\n\r\n",
            Request::ConfigSet {
                key: b"cluster",
                flags: 0,
                value: b"1\nh\n",
                noreply: false,
            },
        ),
        (
            b"config delete cluster noreply\r\n",
            Request::ConfigDelete {
                key: b"cluster",
                noreply: true,
            },
        ),
        // Requests memcached refuses only if a server switch allows the command at all.
        (
            b"flush_all abc\r\n",
            Request::Refused {
                gate: Gate::FlushAll,
                error: ClientError::InvalidExptime.into(),
                noreply: false,
            },
        ),
        (
            b"flush_all x y\r\n",
            Request::Refused {
                gate: Gate::FlushAll,
                error: ClientError::InvalidExptime.into(),
                noreply: false,
            },
        ),
        (
            // Longer than `flush_all noreply`, so `noreply` is read as the delay.
            b"flush_all noreply x\r\n",
            Request::Refused {
                gate: Gate::FlushAll,
                error: ClientError::InvalidExptime.into(),
                noreply: false,
            },
        ),
        (
            b"flush_all abc noreply\r\n",
            Request::Refused {
                gate: Gate::FlushAll,
                error: ClientError::InvalidExptime.into(),
                noreply: true,
            },
        ),
        (
            b"flush_all 9223372036854775808\r\n",
            Request::Refused {
                gate: Gate::FlushAll,
                error: ClientError::InvalidExptime.into(),
                noreply: false,
            },
        ),
        (
            b"shutdown now\r\n",
            Request::Refused {
                gate: Gate::Shutdown,
                error: ClientError::InvalidShutdownMode.into(),
                noreply: false,
            },
        ),
        (
            // shutdown never takes noreply.
            b"shutdown foo noreply\r\n",
            Request::Refused {
                gate: Gate::Shutdown,
                error: ClientError::InvalidShutdownMode.into(),
                noreply: false,
            },
        ),
        (
            b"shutdown graceful x\r\n",
            Request::Refused {
                gate: Gate::Shutdown,
                error: ClientError::InvalidShutdownMode.into(),
                noreply: false,
            },
        ),
        (
            b"stats cachedump 1\r\n",
            Request::Refused {
                gate: Gate::Cachedump,
                error: ClientError::BadCommandLine.into(),
                noreply: false,
            },
        ),
        (
            b"stats cachedump x 10\r\n",
            Request::Refused {
                gate: Gate::Cachedump,
                error: ClientError::BadCommandLineFormat.into(),
                noreply: false,
            },
        ),
        (
            b"stats cachedump -1 10\r\n",
            Request::Refused {
                gate: Gate::Cachedump,
                error: ClientError::BadCommandLineFormat.into(),
                noreply: false,
            },
        ),
        (
            b"stats cachedump 64 10\r\n",
            Request::Refused {
                gate: Gate::Cachedump,
                error: ClientError::IllegalSlabId.into(),
                noreply: false,
            },
        ),
    ]
}

#[test]
fn valid_requests_decode_whole() {
    for (input, want) in valid_cases() {
        let name = String::from_utf8_lossy(input);
        assert_eq!(dec(input), ok(want.clone(), input.len()), "{name:?}");
        // What follows a request is the next request's business.
        let mut more = input.to_vec();
        more.extend_from_slice(b"get next\r\n");
        assert_eq!(dec(&more), ok(want, input.len()), "{name:?} + more");
    }
}

#[test]
fn every_prefix_of_a_valid_request_is_incomplete() {
    for (input, _) in valid_cases() {
        for end in 0..input.len() {
            let prefix = &input[..end];
            // A line that ends before its data block does is not a prefix we can vouch
            // for: cut inside `\r\n` of the line, `set ... 1\r` is still incomplete.
            assert_eq!(
                dec(prefix),
                Decoded::Incomplete,
                "{:?} cut at {end}",
                String::from_utf8_lossy(input)
            );
        }
    }
}

#[test]
fn keys_iterate_in_order_with_exact_len() {
    let d = dec(b"get  a bb  ccc \r\n");
    let Decoded::Request {
        request: Request::Get { keys, .. },
        ..
    } = d
    else {
        panic!("{d:?}")
    };
    assert_eq!(keys.len(), 3);
    let all: Vec<&[u8]> = keys.clone().collect();
    assert_eq!(all, [&b"a"[..], b"bb", b"ccc"]);
    let mut k = keys;
    k.next();
    assert_eq!(k.len(), 2);
    assert_eq!(format!("{k:?}"), r#"["bb", "ccc"]"#);
}

#[test]
fn get_keys_are_not_limited_to_24_tokens() {
    let mut line = b"get".to_vec();
    for i in 0..1000 {
        line.extend_from_slice(format!(" k{i}").as_bytes());
    }
    line.extend_from_slice(b"\r\n");
    let d = dec(&line);
    let Decoded::Request {
        request: Request::Get { keys, .. },
        consumed,
    } = d
    else {
        panic!("{d:?}")
    };
    assert_eq!(consumed, line.len());
    assert_eq!(keys.len(), 1000);
    assert_eq!(keys.last(), Some(&b"k999"[..]));
}

/// Stands for "the whole input" in the table of line errors.
const ALL: usize = usize::MAX;

#[test]
fn line_errors() {
    let k250 = "z".repeat(250);
    let k251 = "z".repeat(251);
    let bad = ClientError::BadCommandLineFormat;
    let cases: Vec<(Vec<u8>, Decoded<'static>)> = vec![
        // Empty and one-byte lines are unknown commands.
        (b"\r\n".to_vec(), err(ProtoError::Error, ALL, false)),
        (b"\n".to_vec(), err(ProtoError::Error, ALL, false)),
        (b" \r\n".to_vec(), err(ProtoError::Error, ALL, false)),
        (b"\r\r\n".to_vec(), err(ProtoError::Error, ALL, false)),
        (b"x\r\n".to_vec(), err(ProtoError::Error, ALL, false)),
        (b"\0get k\r\n".to_vec(), err(ProtoError::Error, ALL, false)),
        (b"GET k\r\n".to_vec(), err(ProtoError::Error, ALL, false)),
        (b"Version\r\n".to_vec(), err(ProtoError::Error, ALL, false)),
        (b"getx k\r\n".to_vec(), err(ProtoError::Error, ALL, false)),
        (
            b"gimme / HTTP/1.1\r\n".to_vec(),
            err(ProtoError::Error, ALL, false),
        ),
        (b"slabs\r\n".to_vec(), err(ProtoError::Error, ALL, false)),
        (b"mx\r\n".to_vec(), err(ProtoError::Error, ALL, false)),
        (b"m\r\n".to_vec(), err(ProtoError::Error, ALL, false)),
        (b"config\r\n".to_vec(), err(ProtoError::Error, ALL, false)),
        (b"stats foo\r\n".to_vec(), err(ProtoError::Error, ALL, false)),
        (b"stats noreply\r\n".to_vec(), err(ProtoError::Error, ALL, false)),
        (b"stats proxy\r\n".to_vec(), err(ProtoError::Error, ALL, false)),
        // Token counts are checked before noreply is looked for.
        (b"get\r\n".to_vec(), err(ProtoError::Error, ALL, false)),
        (b"get \r\n".to_vec(), err(ProtoError::Error, ALL, false)),
        (b"gat\r\n".to_vec(), err(ProtoError::Error, ALL, false)),
        (b"bget\r\n".to_vec(), err(ProtoError::Error, ALL, false)),
        (b"set k 0 0\r\n".to_vec(), err(ProtoError::Error, ALL, false)),
        (
            b"set k 0 0 1 noreply extra\r\n".to_vec(),
            err(ProtoError::Error, ALL, false),
        ),
        (b"cas k 0 0 1\r\n".to_vec(), err(ProtoError::Error, ALL, false)),
        (b"incr n\r\n".to_vec(), err(ProtoError::Error, ALL, false)),
        (
            b"incr n 1 noreply x\r\n".to_vec(),
            err(ProtoError::Error, ALL, false),
        ),
        (b"touch n\r\n".to_vec(), err(ProtoError::Error, ALL, false)),
        (b"delete\r\n".to_vec(), err(ProtoError::Error, ALL, false)),
        (b"delete a b c d\r\n".to_vec(), err(ProtoError::Error, ALL, false)),
        (
            b"flush_all 1 2 3\r\n".to_vec(),
            err(ProtoError::Error, ALL, false),
        ),
        (b"verbosity\r\n".to_vec(), err(ProtoError::Error, ALL, false)),
        (
            b"verbosity 1 2 3\r\n".to_vec(),
            err(ProtoError::Error, ALL, false),
        ),
        (b"cache_memlimit\r\n".to_vec(), err(ProtoError::Error, ALL, false)),
        // Bad numbers.
        (b"set k -1 0 1\r\n".to_vec(), err(bad, ALL, false)),
        (
            b"set k 18446744073709551616 0 1\r\n".to_vec(),
            err(bad, ALL, false),
        ),
        (b"set k 5x 0 1\r\n".to_vec(), err(bad, ALL, false)),
        (
            b"set k 0 9223372036854775808 1\r\n".to_vec(),
            err(bad, ALL, false),
        ),
        (b"set k 0 0 -1\r\n".to_vec(), err(bad, ALL, false)),
        (b"set k 0 0 abc\r\n".to_vec(), err(bad, ALL, false)),
        (b"set k 0 0 2147483646\r\n".to_vec(), err(bad, ALL, false)),
        (b"set k 0 0 4294967295\r\n".to_vec(), err(bad, ALL, false)),
        (b"cas k 0 0 1 -1\r\n".to_vec(), err(bad, ALL, false)),
        (b"verbosity x\r\n".to_vec(), err(bad, ALL, false)),
        (b"verbosity -1\r\n".to_vec(), err(bad, ALL, false)),
        (
            b"incr n -1\r\n".to_vec(),
            err(ClientError::InvalidDelta, ALL, false),
        ),
        (
            b"incr n abc\r\n".to_vec(),
            err(ClientError::InvalidDelta, ALL, false),
        ),
        (
            b"incr n 18446744073709551616\r\n".to_vec(),
            err(ClientError::InvalidDelta, ALL, false),
        ),
        (
            b"touch n abc\r\n".to_vec(),
            err(ClientError::InvalidExptime, ALL, false),
        ),
        (
            b"gat abc k\r\n".to_vec(),
            err(ClientError::InvalidExptime, ALL, false),
        ),
        (
            b"cache_memlimit x\r\n".to_vec(),
            err(ProtoError::Error, ALL, false),
        ),
        (
            b"cache_memlimit 5\r\n".to_vec(),
            err(ProtoError::MemlimitTooSmall, ALL, false),
        ),
        (
            b"cache_memlimit 2000000000\r\n".to_vec(),
            err(ProtoError::MemlimitNotMegabytes, ALL, false),
        ),
        (
            b"stats detail\r\n".to_vec(),
            err(ClientError::StatsDetailUsage, ALL, false),
        ),
        (
            b"stats detail x\r\n".to_vec(),
            err(ClientError::StatsDetailUsage, ALL, false),
        ),
        // delete's legacy argument.
        (
            b"delete n 5\r\n".to_vec(),
            err(ClientError::DeleteUsage, ALL, false),
        ),
        (
            b"delete n 0 x\r\n".to_vec(),
            err(ClientError::DeleteUsage, ALL, false),
        ),
        (
            b"delete n 5 noreply\r\n".to_vec(),
            err(ClientError::DeleteUsage, ALL, true),
        ),
        (
            b"delete n x noreply\r\n".to_vec(),
            err(ClientError::DeleteUsage, ALL, true),
        ),
        // noreply, once seen, silences the error too.
        (b"set k 0 0 abc noreply\r\n".to_vec(), err(bad, ALL, true)),
        (b"set k 0 0 noreply\r\n".to_vec(), err(bad, ALL, true)),
        (b"cas k 0 0 1 noreply\r\n".to_vec(), err(bad, ALL, true)),
        (
            b"incr n abc noreply\r\n".to_vec(),
            err(ClientError::InvalidDelta, ALL, true),
        ),
        (
            b"incr n noreply\r\n".to_vec(),
            err(ClientError::InvalidDelta, ALL, true),
        ),
        (
            b"touch n noreply\r\n".to_vec(),
            err(ClientError::InvalidExptime, ALL, true),
        ),
        (b"verbosity noreply\r\n".to_vec(), err(bad, ALL, true)),
        (
            b"cache_memlimit x noreply\r\n".to_vec(),
            err(ProtoError::Error, ALL, true),
        ),
        // Key length: 250 is fine, 251 is not.
        (format!("set {k251} 0 0 1\r\n").into_bytes(), err(bad, ALL, false)),
        (
            format!("set {k251} 0 0 1 noreply\r\n").into_bytes(),
            err(bad, ALL, true),
        ),
        (format!("incr {k251} abc\r\n").into_bytes(), err(bad, ALL, false)),
        (format!("touch {k251} 1\r\n").into_bytes(), err(bad, ALL, false)),
        (format!("delete {k251}\r\n").into_bytes(), err(bad, ALL, false)),
        (
            format!("delete {k251} noreply\r\n").into_bytes(),
            err(bad, ALL, true),
        ),
        // The usage check comes before the key check.
        (
            format!("delete {k251} 5\r\n").into_bytes(),
            err(ClientError::DeleteUsage, ALL, false),
        ),
        (
            format!("config get {k251}\r\n").into_bytes(),
            err(bad, ALL, false),
        ),
        // A web client: closed without a word.
        (
            b"GET / HTTP/1.1\r\n".to_vec(),
            Decoded::Error {
                error: ProtoError::HttpRequest,
                consumed: ALL,
                swallow: 0,
                close: true,
                noreply: true,
                unlink: None,
            },
        ),
        (
            b"foo HTTP/\r\n".to_vec(),
            Decoded::Error {
                error: ProtoError::HttpRequest,
                consumed: ALL,
                swallow: 0,
                close: true,
                noreply: true,
                unlink: None,
            },
        ),
        (b"foo HTTP\r\n".to_vec(), err(ProtoError::Error, ALL, false)),
        (b"foo HTTP/ x\r\n".to_vec(), err(ProtoError::Error, ALL, false)),
        (b"x HTTP/\r\n".to_vec(), err(ProtoError::Error, ALL, false)),
        (
            b"lru_crawler HTTP/1.1\r\n".to_vec(),
            err(ProtoError::Error, ALL, false),
        ),
    ];
    for (input, mut want) in cases {
        // Every one of these consumes its whole line, and the input is one line.
        if let Decoded::Error { consumed, .. } = &mut want {
            assert_eq!(*consumed, ALL);
            *consumed = input.len();
        }
        assert_eq!(dec(&input), want, "{:?}", String::from_utf8_lossy(&input));
    }
    // A too-long key in a get line: the keys before it are handed over (memcached has
    // already looked them up when it notices), and the reply is the format error.
    for (line, before, touch) in [
        (format!("get {k251}\r\n"), vec![], None),
        (format!("get k {k251} k\r\n"), vec![&b"k"[..]], None),
        (format!("gats 0 k  j {k251}\r\n"), vec![&b"k"[..], b"j"], Some(0)),
    ] {
        match dec(line.as_bytes()) {
            Decoded::Request {
                request:
                    Request::GetRefused {
                        keys_before,
                        touch: t,
                    },
                consumed,
            } => {
                assert_eq!(keys_before.collect::<Vec<_>>(), before);
                assert_eq!(t, touch);
                assert_eq!(consumed, line.len());
            }
            other => panic!("{line:?}: {other:?}"),
        }
    }
    assert!(matches!(
        dec(format!("get {k250}\r\n").as_bytes()),
        Decoded::Request { .. }
    ));
}

#[test]
fn bad_data_chunk_consumes_exactly_the_block() {
    // memcached reads <bytes> + 2 bytes whatever they are; what follows is a new command.
    let cases: &[(&[u8], usize, bool)] = &[
        (b"set k 0 0 3\r\nabcde\r\n", 18, false),
        (b"set k 0 0 3\r\nabcd\r\nget k\r\n", 18, false),
        (b"set k 0 0 1\r\nx\r\r\n", 16, false),
        (b"set k 0 0 1\nx\nget k\n", 15, false),
        (b"set k 0 0 3 noreply\r\nabcde\r\n", 26, true),
        (b"config set c 0 1\r\nxyz", 21, false),
    ];
    for &(input, consumed, noreply) in cases {
        assert_eq!(
            dec(input),
            err(ClientError::BadDataChunk, consumed, noreply),
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }
    // The rest is decoded on its own: here an empty line, then the get.
    let input = b"set k 0 0 3\r\nab\r\n\r\nget k\r\n";
    assert_eq!(dec(input), err(ClientError::BadDataChunk, 18, false));
    assert_eq!(&input[18..], b"\nget k\r\n");
    assert_eq!(dec(&input[18..]), err(ProtoError::Error, 1, false));
}

#[test]
fn too_large_is_refused_from_the_line_and_swallowed() {
    let input = b"set big 0 0 2000000\r\nabc";
    assert_eq!(
        dec(input),
        Decoded::Error {
            error: ServerError::ObjectTooLarge.into(),
            consumed: 21,
            swallow: 2_000_002,
            close: false,
            noreply: false,
            unlink: Some(b"big"),
        }
    );
    // Only `set` drops the old item; add keeps it.
    let input = b"add big 0 0 2000000 noreply\r\n";
    assert_eq!(
        dec(input),
        Decoded::Error {
            error: ServerError::ObjectTooLarge.into(),
            consumed: input.len(),
            swallow: 2_000_002,
            close: false,
            noreply: true,
            unlink: None,
        }
    );
    // The boundary, as measured on memcached with -I 1m.
    let fits = b"set b1 0 0 1048515\r\n";
    assert_eq!(dec(fits), Decoded::Incomplete);
    let too_big = b"set b1 0 0 1048516\r\n";
    assert!(matches!(
        dec(too_big),
        Decoded::Error {
            swallow: 1_048_518,
            ..
        }
    ));
    let flagged = b"set b1 1 0 1048512\r\n";
    assert!(matches!(
        dec(flagged),
        Decoded::Error {
            swallow: 1_048_514,
            ..
        }
    ));
    // A smaller -I.
    let small = Limits {
        item_size_max: 100,
        ..Limits::default()
    };
    assert!(matches!(decode(b"set k 0 0 40\r\n", &small), Decoded::Incomplete));
    assert!(matches!(
        decode(b"set k 0 0 41\r\n", &small),
        Decoded::Error { swallow: 43, .. }
    ));
}

#[test]
fn long_lines_close_unless_multiget() {
    let a = vec![b'a'; LONG_LINE];
    assert_eq!(dec(&a), Decoded::Incomplete);
    let a = vec![b'a'; LONG_LINE + 1];
    assert!(matches!(
        dec(&a),
        Decoded::Error {
            error: ProtoError::LineTooLong,
            close: true,
            noreply: true,
            ..
        }
    ));
    // With its newline in the buffer, a long line is just a line.
    let mut a = vec![b'a'; 3000];
    a.extend_from_slice(b"\r\n");
    assert_eq!(dec(&a), err(ProtoError::Error, 3002, false));
    // A multi-get may be as long as it likes, after at most 100 leading spaces.
    for prefix in [&b"get "[..], b"gets ", b"   get "] {
        let mut g = prefix.to_vec();
        g.extend(b"k ".repeat(3000));
        assert_eq!(dec(&g), Decoded::Incomplete);
    }
    let mut g = vec![b' '; 100];
    g.extend(b"get ".iter().chain(b"k ".repeat(3000).iter()));
    assert_eq!(dec(&g), Decoded::Incomplete);
    let mut g = vec![b' '; 101];
    g.extend(b"get ".iter().chain(b"k ".repeat(3000).iter()));
    assert!(matches!(dec(&g), Decoded::Error { close: true, .. }));
    // gat is not a multi-get to this check.
    let mut g = b"gat 0 ".to_vec();
    g.extend(b"k ".repeat(3000));
    assert!(matches!(dec(&g), Decoded::Error { close: true, .. }));
}

#[test]
fn meta_lines_go_to_the_meta_decoder() {
    for line in [
        &b"mg k v\r\n"[..],
        b"  md k q\r\n",
        b"ma k\r\n",
        b"me k\r\n",
        b"mg\r\n",
        b"ms k 1\r\nx\r\n",
        b"ms k 5\r\nx",
    ] {
        assert_eq!(
            dec(line),
            Decoded::Meta(crate::meta::decode(line, &lim())),
            "{:?}",
            String::from_utf8_lossy(line)
        );
    }
    // Only two-byte verbs are meta; `mgx` is unknown, `mn` is decoded here.
    assert_eq!(dec(b"mgx k\r\n"), err(ProtoError::Error, 7, false));
    assert_eq!(dec(b"mn\r\n"), ok(Request::MetaNoop, 4));
    // A meta error's line is what the server sends.
    assert_eq!(dec(b"mg\r\n").error_reply(), b"ERROR\r\n");
}

#[test]
fn error_reply_honours_noreply() {
    assert_eq!(dec(b"bogus\r\n").error_reply(), b"ERROR\r\n");
    assert_eq!(dec(b"incr n abc noreply\r\n").error_reply(), b"");
    assert_eq!(dec(b"GET / HTTP/1.0\r\n").error_reply(), b"");
    assert_eq!(dec(b"version\r\n").error_reply(), b"");
}

#[test]
fn request_noreply() {
    let cases: &[(&[u8], bool)] = &[
        (b"set k 0 0 1 noreply\r\nx\r\n", true),
        (b"set k 0 0 1\r\nx\r\n", false),
        (b"delete k noreply\r\n", true),
        (b"incr k 1 noreply\r\n", true),
        (b"touch k 1 noreply\r\n", true),
        (b"flush_all noreply\r\n", true),
        (b"flush_all abc noreply\r\n", true),
        (b"verbosity 1 noreply\r\n", true),
        (b"cache_memlimit 64 noreply\r\n", true),
        (b"config set c 0 1 noreply\r\nx\r\n", true),
        (b"get noreply\r\n", false),
        (b"stats reset noreply\r\n", false),
        (b"version noreply\r\n", false),
    ];
    for &(input, want) in cases {
        match dec(input) {
            Decoded::Request { request, .. } => {
                assert_eq!(request.noreply(), want, "{:?}", String::from_utf8_lossy(input))
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn gates() {
    assert_eq!(
        Gate::FlushAll.disabled_error().as_wire(),
        b"CLIENT_ERROR flush_all not allowed\r\n"
    );
    assert_eq!(
        Gate::Shutdown.disabled_error().as_wire(),
        b"ERROR: shutdown not enabled\r\n"
    );
    assert_eq!(
        Gate::Cachedump.disabled_error().as_wire(),
        b"CLIENT_ERROR stats cachedump not allowed\r\n"
    );
    assert_eq!(
        Gate::SlabReassign.disabled_error().as_wire(),
        b"CLIENT_ERROR slab reassignment disabled\r\n"
    );
}

#[test]
fn pipelined_requests_decode_one_at_a_time() {
    let input = b"set k 0 0 1\r\nx\r\nget k\r\nbogus\r\ndelete k noreply\r\n";
    let mut at = 0;
    let mut seen = Vec::new();
    while at < input.len() {
        match dec(&input[at..]) {
            Decoded::Request { request, consumed } => {
                seen.push(format!("{request:?}"));
                at += consumed;
            }
            Decoded::Error { error, consumed, .. } => {
                seen.push(error.to_string());
                at += consumed;
            }
            other => panic!("{other:?} at {at}"),
        }
    }
    assert_eq!(seen.len(), 4);
    assert_eq!(seen[2], "ERROR");
}

#[test]
fn metadump_lines_match_memcached() {
    // Lines memcached 1.6.18 wrote for `set b\x01c 5 100 2` and `set ~-._%Z 0 0 3`.
    let mut out = Vec::new();
    write_metadump_item(
        &mut out,
        &MetadumpItem {
            key: b"b\x01c",
            exptime: Some(1796415978),
            last_access: 1796415878,
            cas: 2,
            fetched: false,
            class: 1,
            size: 68,
        },
    );
    write_metadump_item(
        &mut out,
        &MetadumpItem {
            key: b"~-._%Z",
            exptime: None,
            last_access: 1796415878,
            cas: 3,
            fetched: true,
            class: 12,
            size: 68,
        },
    );
    assert_eq!(
        out,
        b"key=b%01c exp=1796415978 la=1796415878 cas=2 fetch=no cls=1 size=68\n\
          key=~-._%25Z exp=-1 la=1796415878 cas=3 fetch=yes cls=12 size=68\n"
    );
    out.clear();
    let every: Vec<u8> = (0..=255).collect();
    write_metadump_item(
        &mut out,
        &MetadumpItem {
            key: &every,
            exptime: None,
            last_access: 0,
            cas: 0,
            fetched: false,
            class: 1,
            size: 0,
        },
    );
    let line = String::from_utf8(out).unwrap();
    let key = line.strip_prefix("key=").unwrap().split(' ').next().unwrap();
    assert_eq!(key.len(), 66 + 190 * 3, "66 bytes kept, the others escaped");
    assert!(key.starts_with("%00%01") && key.contains("%2C-.%2F0123"));
    assert!(key.ends_with("%FE%FF"));
}

#[test]
fn encoders() {
    let mut out = Vec::new();
    for r in [
        Reply::Stored,
        Reply::NotStored,
        Reply::Exists,
        Reply::NotFound,
        Reply::Deleted,
        Reply::Touched,
        Reply::Ok,
        Reply::End,
        Reply::Error,
        Reply::Reset,
        Reply::MetaNoop,
        Reply::Number(0),
        Reply::Number(u64::MAX),
        Reply::Version("1.6.18"),
        Reply::ClientError(ClientError::NonNumericValue),
        Reply::ServerError(ServerError::OutOfMemoryStoring),
        ProtoError::MemlimitAdjustFailed.into(),
        Reply::Proto(ProtoError::LineTooLong),
    ] {
        r.encode(&mut out);
    }
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "STORED\r\nNOT_STORED\r\nEXISTS\r\nNOT_FOUND\r\nDELETED\r\nTOUCHED\r\nOK\r\nEND\r\n\
         ERROR\r\nRESET\r\nMN\r\n0\r\n18446744073709551615\r\nVERSION 1.6.18\r\n\
         CLIENT_ERROR cannot increment or decrement non-numeric value\r\n\
         SERVER_ERROR out of memory storing object\r\n\
         MEMLIMIT_ADJUST_FAILED out of bounds or unable to adjust\r\n"
    );

    let mut out = Vec::new();
    write_value(&mut out, b"k", 5, b"x", None);
    write_value(&mut out, b"a\tb", u32::MAX, b"", Some(45));
    write_end(&mut out);
    assert_eq!(
        out,
        b"VALUE k 5 1\r\nx\r\nVALUE a\tb 4294967295 0 45\r\n\r\nEND\r\n"
    );

    let mut out = Vec::new();
    write_value_header(&mut out, b"k", 0, 1_048_576, Some(0));
    assert_eq!(out, b"VALUE k 0 1048576 0\r\n");

    let mut out = Vec::new();
    write_stat(&mut out, "pid", 3678);
    write_stat(&mut out, format_args!("{}:chunk_size", 1), 96);
    write_stat(&mut out, "version", "1.6.18");
    assert_eq!(
        out,
        b"STAT pid 3678\r\nSTAT 1:chunk_size 96\r\nSTAT version 1.6.18\r\n"
    );

    let mut out = Vec::new();
    write_config(&mut out, b"cluster", 0, b"1\nhost|10.0.0.1|11211\n");
    assert_eq!(out, b"CONFIG cluster 0 22\r\n1\nhost|10.0.0.1|11211\n\r\nEND\r\n");
}

/// Collects what a decode result says about its keys, to check them.
fn decoded_keys<'a>(d: &Decoded<'a>) -> Vec<&'a [u8]> {
    match d {
        Decoded::Request { request, .. } => match request {
            Request::Get { keys, .. } | Request::GetAndTouch { keys, .. } => keys.clone().collect(),
            Request::Store { key, .. }
            | Request::Delete { key, .. }
            | Request::Arith { key, .. }
            | Request::Touch { key, .. }
            | Request::ConfigGet { key }
            | Request::ConfigSet { key, .. }
            | Request::ConfigDelete { key, .. } => vec![key],
            _ => vec![],
        },
        Decoded::Error { unlink, .. } => unlink.iter().copied().collect(),
        Decoded::Incomplete | Decoded::Meta(_) => vec![],
    }
}

/// Arbitrary bytes, biased towards the protocol's own vocabulary so that the interesting
/// paths are reached, not only `ERROR`.
fn protocolish() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b"get ".to_vec()),
        Just(b"gets ".to_vec()),
        Just(b"gat ".to_vec()),
        Just(b"set ".to_vec()),
        Just(b"cas ".to_vec()),
        Just(b"incr ".to_vec()),
        Just(b"delete ".to_vec()),
        Just(b"touch ".to_vec()),
        Just(b"flush_all ".to_vec()),
        Just(b"stats ".to_vec()),
        Just(b"config ".to_vec()),
        Just(b"slabs reassign ".to_vec()),
        Just(b"slabs automove ".to_vec()),
        Just(b"lru_crawler ".to_vec()),
        Just(b"lru tune ".to_vec()),
        Just(b",".to_vec()),
        Just(b"noreply".to_vec()),
        Just(b" ".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"\0".to_vec()),
        Just(b"k".to_vec()),
        Just(b"0".to_vec()),
        Just(b"1 ".to_vec()),
        Just(b"-1".to_vec()),
        Just(b"4294967296".to_vec()),
        Just(vec![b'z'; 251]),
        prop::collection::vec(any::<u8>(), 0..8),
    ];
    prop::collection::vec(piece, 0..24).prop_map(|v| v.concat())
}

fn check_invariants(buf: &[u8], limits: &Limits) {
    let d = decode(buf, limits);
    match &d {
        Decoded::Incomplete => {}
        Decoded::Request { consumed, .. } => {
            assert!(*consumed > 0 && *consumed <= buf.len());
        }
        Decoded::Error {
            consumed,
            swallow,
            close,
            ..
        } => {
            assert!(*consumed > 0 && *consumed <= buf.len());
            assert!(*swallow == 0 || !*close);
        }
        Decoded::Meta(m) => match m {
            MetaDecoded::Incomplete => {}
            MetaDecoded::Request { consumed, .. } | MetaDecoded::Error { consumed, .. } => {
                assert!(*consumed > 0 && *consumed <= buf.len());
            }
        },
    }
    for key in decoded_keys(&d) {
        assert!(!key.is_empty() && key.len() <= limits.max_key_len, "{key:?}");
        assert!(!key.contains(&b' ') && !key.contains(&b'\n') && !key.contains(&0));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn decode_never_panics_on_bytes(buf in prop::collection::vec(any::<u8>(), 0..600)) {
        check_invariants(&buf, &lim());
    }
}

// The vocabulary strategy is slow to generate in debug builds (about 5 ms a case), so
// these run fewer cases; `cargo test --release` runs them in well under a second.
proptest! {
    #![proptest_config(ProptestConfig::with_cases(768))]

    #[test]
    fn decode_never_panics_on_protocolish_input(buf in protocolish()) {
        check_invariants(&buf, &lim());
        // Every prefix too: the server calls decode as bytes trickle in.
        for end in 0..buf.len() {
            check_invariants(&buf[..end], &lim());
        }
        let tight = Limits { max_key_len: 3, item_size_max: 80, item_overhead: 56 };
        check_invariants(&buf, &tight);
    }

    #[test]
    fn a_request_never_depends_on_what_follows(buf in protocolish(), tail in protocolish()) {
        let d = decode(&buf, &lim());
        // A line too long is judged on the whole buffer, so it is the one exception.
        let judged_on_buffer = matches!(d, Decoded::Error { error: ProtoError::LineTooLong, .. });
        if !judged_on_buffer && d != Decoded::Incomplete {
            let mut longer = buf.clone();
            longer.extend_from_slice(&tail);
            prop_assert_eq!(decode(&longer, &lim()), d);
        }
    }
}

/// A key memcached accepts: 1..=250 bytes, none of them space, newline or NUL.
fn valid_key() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        any::<u8>().prop_filter("separator", |b| !matches!(b, b' ' | b'\n' | 0)),
        1..=250,
    )
    // A trailing `\r` would be taken for part of the line ending.
    .prop_filter("trailing CR", |k| k.last() != Some(&b'\r'))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn generated_sets_round_trip(
        key in valid_key(),
        flags in any::<u32>(),
        exptime in any::<i32>(),
        value in prop::collection::vec(any::<u8>(), 0..64),
        noreply in any::<bool>(),
        crlf in any::<bool>(),
    ) {
        let mut input = b"set ".to_vec();
        input.extend_from_slice(&key);
        input.extend_from_slice(format!(" {flags} {exptime} {}", value.len()).as_bytes());
        if noreply {
            input.extend_from_slice(b" noreply");
        }
        input.extend_from_slice(if crlf { b"\r\n" } else { b"\n" });
        input.extend_from_slice(&value);
        input.extend_from_slice(b"\r\n");
        let want = ok(
            store(StoreMode::Set, &key, flags, exptime.into(), &value, 0, noreply),
            input.len(),
        );
        prop_assert_eq!(dec(&input), want);
        for end in 0..input.len() {
            prop_assert_eq!(dec(&input[..end]), Decoded::Incomplete);
        }
    }

    #[test]
    fn generated_gets_round_trip(
        ks in prop::collection::vec(valid_key(), 1..24),
        with_cas in any::<bool>(),
    ) {
        let mut input = if with_cas { b"gets".to_vec() } else { b"get".to_vec() };
        for k in &ks {
            input.push(b' ');
            input.extend_from_slice(k);
        }
        input.extend_from_slice(b"\r\n");
        match dec(&input) {
            Decoded::Request { request: Request::Get { keys, with_cas: c }, consumed } => {
                prop_assert_eq!(consumed, input.len());
                prop_assert_eq!(c, with_cas);
                prop_assert_eq!(keys.collect::<Vec<_>>(), ks.iter().map(|k| &k[..]).collect::<Vec<_>>());
            }
            other => prop_assert!(false, "{:?}", other),
        }
        // Long multi-gets stay incomplete past LONG_LINE: never a close for a prefix. (A
        // stride keeps the quadratic walk affordable on 10 KB lines.)
        let stride = input.len() / 200 + 1;
        for end in (0..input.len()).step_by(stride).chain([input.len() - 1]) {
            prop_assert_eq!(dec(&input[..end]), Decoded::Incomplete);
        }
    }
}
