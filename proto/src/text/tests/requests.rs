//! Valid text requests: each request in a table decodes whole, every prefix of it is
//! incomplete and what follows it does not matter; key iteration, long multi-gets,
//! `noreply`, pipelined requests decoded one at a time, and meta lines handed to the meta
//! decoder.

use super::*;

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
