//! Malformed text requests and the errors memcached 1.6.18 answers for them: bad command
//! lines, bad data chunks, values too large (refused from the line, their block swallowed),
//! over-long lines that close the connection, error replies under `noreply`, and the
//! messages of disabled commands.

use super::*;

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
fn error_reply_honours_noreply() {
    assert_eq!(dec(b"bogus\r\n").error_reply(), b"ERROR\r\n");
    assert_eq!(dec(b"incr n abc noreply\r\n").error_reply(), b"");
    assert_eq!(dec(b"GET / HTTP/1.0\r\n").error_reply(), b"");
    assert_eq!(dec(b"version\r\n").error_reply(), b"");
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
