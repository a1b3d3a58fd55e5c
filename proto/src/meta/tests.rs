//! Unit tests of the meta decoder: error lines, data-block handling, partial-line
//! limits, flag decoding, parsing quirks, base64 keys and command peeking, with expected
//! errors as observed from memcached 1.6.18. The reply writers' tests are in [`replies`].

use super::*;

mod replies;

const LIMITS: Limits = Limits {
    max_key_len: 250,
    item_size_max: 1024 * 1024,
    item_overhead: 56,
};

fn req(buf: &[u8]) -> (MetaRequest<'_>, usize) {
    match decode(buf, &LIMITS) {
        MetaDecoded::Request { request, consumed } => (request, consumed),
        other => panic!(
            "expected a request for {:?}, got {other:?}",
            String::from_utf8_lossy(buf)
        ),
    }
}

fn err(buf: &[u8]) -> (MetaError, usize, usize, bool) {
    match decode(buf, &LIMITS) {
        MetaDecoded::Error {
            error,
            consumed,
            swallow,
            close,
            ..
        } => (error, consumed, swallow, close),
        other => panic!(
            "expected an error for {:?}, got {other:?}",
            String::from_utf8_lossy(buf)
        ),
    }
}

/// Error replies observed from memcached 1.6.18 for each line (consumed is the line,
/// swallow as noted).
#[test]
fn error_lines_match_memcached() {
    let k251 = format!("mg {} v\r\n", "a".repeat(251));
    let ms251 = format!("ms {} 2\r\n", "a".repeat(251));
    let mg18 = format!("mg foo {}\r\n", "v ".repeat(18));
    let cases: Vec<(&[u8], &[u8], usize)> = vec![
        (b"mg\r\n", b"ERROR\r\n", 0),
        (b"mg \r\n", b"ERROR\r\n", 0),
        (b"md\r\n", b"ERROR\r\n", 0),
        (b"ma\r\n", b"ERROR\r\n", 0),
        (b"ms\r\n", b"ERROR\r\n", 0),
        (b"me\r\n", b"CLIENT_ERROR bad command line format\r\n", 0),
        (b"MG foo v\r\n", b"ERROR\r\n", 0),
        (b"mgx foo\r\n", b"ERROR\r\n", 0),
        (b"\r\n", b"ERROR\r\n", 0),
        (k251.as_bytes(), b"CLIENT_ERROR bad command line format\r\n", 0),
        (ms251.as_bytes(), b"CLIENT_ERROR bad command line format\r\n", 0),
        (b"mg foo zz\r\n", b"CLIENT_ERROR invalid flag\r\n", 0),
        (b"mg foo !\r\n", b"CLIENT_ERROR invalid flag\r\n", 0),
        (b"mg foo \x01\r\n", b"CLIENT_ERROR invalid flag\r\n", 0),
        (b"mg foo S5\r\n", b"CLIENT_ERROR invalid flag\r\n", 0),
        (b"mg foo v v\r\n", b"CLIENT_ERROR duplicate flag\r\n", 0),
        (b"mg foo \xff\r\n", b"CLIENT_ERROR duplicate flag\r\n", 0),
        (b"mg foo \x7f\r\n", b"CLIENT_ERROR duplicate flag\r\n", 0),
        (b"mg foo O1 O1\r\n", b"CLIENT_ERROR duplicate flag\r\n", 0),
        (
            b"mg foo Tabc\r\n",
            b"CLIENT_ERROR bad token in command line format\r\n",
            0,
        ),
        (
            b"mg foo N\r\n",
            b"CLIENT_ERROR bad token in command line format\r\n",
            0,
        ),
        (b"mg foo T 5\r\n", b"CLIENT_ERROR invalid flag\r\n", 0),
        (
            b"mg foo T5x\r\n",
            b"CLIENT_ERROR bad token in command line format\r\n",
            0,
        ),
        (
            b"mg foo T99999999999999999999\r\n",
            b"CLIENT_ERROR bad token in command line format\r\n",
            0,
        ),
        (
            b"mg foo C-1\r\n",
            b"CLIENT_ERROR bad token in command line format\r\n",
            0,
        ),
        (
            b"mg foo C18446744073709551616\r\n",
            b"CLIENT_ERROR bad token in command line format\r\n",
            0,
        ),
        (b"mg foo F-1\r\n", b"CLIENT_ERROR bad command line format\r\n", 0),
        (b"mg foo Fx\r\n", b"CLIENT_ERROR bad command line format\r\n", 0),
        (
            b"mg foo MEE\r\n",
            b"CLIENT_ERROR incorrect length for M token\r\n",
            0,
        ),
        (
            b"mg foo Dx\r\n",
            b"CLIENT_ERROR invalid numeric delta value\r\n",
            0,
        ),
        (
            b"mg foo D-1\r\n",
            b"CLIENT_ERROR invalid numeric delta value\r\n",
            0,
        ),
        (
            b"mg foo Jx\r\n",
            b"CLIENT_ERROR invalid numeric initial value\r\n",
            0,
        ),
        // Last soft error wins; hard errors (invalid/duplicate) win outright; F keeps.
        (
            b"mg foo Tx Dx\r\n",
            b"CLIENT_ERROR invalid numeric delta value\r\n",
            0,
        ),
        (b"mg foo Tx zz\r\n", b"CLIENT_ERROR invalid flag\r\n", 0),
        (b"mg foo Tx v v\r\n", b"CLIENT_ERROR duplicate flag\r\n", 0),
        (
            b"mg foo Tx Fx\r\n",
            b"CLIENT_ERROR bad token in command line format\r\n",
            0,
        ),
        (
            b"mg foo Fx Tx\r\n",
            b"CLIENT_ERROR bad token in command line format\r\n",
            0,
        ),
        (
            b"mg foo Dx Fx\r\n",
            b"CLIENT_ERROR invalid numeric delta value\r\n",
            0,
        ),
        (b"mg foo Fx a\r\n", b"CLIENT_ERROR invalid flag\r\n", 0),
        (
            b"mg foo O123456789012345678901234567890123\r\n",
            b"CLIENT_ERROR opaque token too long\r\n",
            0,
        ),
        (
            b"mg foo O12345678901234567890123456789012\r\n",
            b"CLIENT_ERROR opaque token too long\r\n",
            0,
        ),
        (mg18.as_bytes(), b"CLIENT_ERROR options flags are too long\r\n", 0),
        (
            b"mg foo k v s t c f h l q O1 u N5 R5 T5 P L I M\r\n",
            b"CLIENT_ERROR options flags are too long\r\n",
            0,
        ),
        (b"mg Zm9 b k\r\n", b"CLIENT_ERROR error decoding key\r\n", 0),
        (b"mg Zm9vY b\r\n", b"CLIENT_ERROR error decoding key\r\n", 0),
        (b"mg Zm9vYg b\r\n", b"CLIENT_ERROR error decoding key\r\n", 0),
        (b"mg ==== b\r\n", b"CLIENT_ERROR error decoding key\r\n", 0),
        (b"mg _-_- b\r\n", b"CLIENT_ERROR error decoding key\r\n", 0),
        (b"mg a b\r\n", b"CLIENT_ERROR error decoding key\r\n", 0),
        (b"md foo zz\r\n", b"CLIENT_ERROR invalid or duplicate flag\r\n", 0),
        (
            b"ma foo v v\r\n",
            b"CLIENT_ERROR invalid or duplicate flag\r\n",
            0,
        ),
        (b"md foo Tx\r\n", b"CLIENT_ERROR invalid or duplicate flag\r\n", 0),
        (b"ma foo Dx\r\n", b"CLIENT_ERROR invalid or duplicate flag\r\n", 0),
        (
            b"ma n3 N0 Jabc\r\n",
            b"CLIENT_ERROR invalid or duplicate flag\r\n",
            0,
        ),
        (
            b"md foo MEE\r\n",
            b"CLIENT_ERROR invalid or duplicate flag\r\n",
            0,
        ),
        (b"md n b\r\n", b"CLIENT_ERROR invalid or duplicate flag\r\n", 0),
        (
            b"md foo x x\r\n",
            b"CLIENT_ERROR invalid or duplicate flag\r\n",
            0,
        ),
        (
            b"md foo O123456789012345678901234567890123\r\n",
            b"CLIENT_ERROR opaque token too long\r\n",
            0,
        ),
        (
            b"ma foo O123456789012345678901234567890123\r\n",
            b"CLIENT_ERROR opaque token too long\r\n",
            0,
        ),
        (b"ma n MX\r\n", b"CLIENT_ERROR invalid mode for ma M token\r\n", 0),
        (
            b"ma n MX O123456789012345678901234567890123\r\n",
            b"CLIENT_ERROR invalid mode for ma M token\r\n",
            0,
        ),
        (
            b"md foo k k k k k k k k k k k k k k k k k k\r\n",
            b"CLIENT_ERROR options flags too long\r\n",
            0,
        ),
        (
            b"ma foo k k k k k k k k k k k k k k k k k k\r\n",
            b"CLIENT_ERROR options flags too long\r\n",
            0,
        ),
        (
            b"md foo k k k k k k k k k k k k k k k k k\r\n",
            b"CLIENT_ERROR invalid or duplicate flag\r\n",
            0,
        ),
        // ms: errors before the length parsed do not swallow...
        (b"ms foo\r\n", b"CLIENT_ERROR bad command line format\r\n", 0),
        (b"ms foo S2\r\n", b"CLIENT_ERROR bad command line format\r\n", 0),
        (b"ms foo -1\r\n", b"CLIENT_ERROR bad command line format\r\n", 0),
        (b"ms foo 2x\r\n", b"CLIENT_ERROR bad command line format\r\n", 0),
        (
            b"ms foo 2147483647\r\n",
            b"CLIENT_ERROR bad command line format\r\n",
            0,
        ),
        (
            b"ms foo 2147483648\r\n",
            b"CLIENT_ERROR bad command line format\r\n",
            0,
        ),
        (
            b"ms foo 2 v v v v v v v v v v v v v v v v v\r\n",
            b"CLIENT_ERROR options flags too long\r\n",
            0,
        ),
        (
            b"ms foo x k k k k k k k k k k k k k k k k k\r\n",
            b"CLIENT_ERROR options flags too long\r\n",
            0,
        ),
        // ...after it, they swallow the block.
        (b"ms foo 2 S2\r\n", b"CLIENT_ERROR invalid flag\r\n", 4),
        (b"ms foo 2 zz\r\n", b"CLIENT_ERROR invalid flag\r\n", 4),
        (b"ms foo 2 v v\r\n", b"CLIENT_ERROR duplicate flag\r\n", 4),
        (
            b"ms foo 2 k k k k k k k k k k k k k k k k\r\n",
            b"CLIENT_ERROR duplicate flag\r\n",
            4,
        ),
        (
            b"ms foo 2 MX\r\n",
            b"CLIENT_ERROR invalid mode for ms M token\r\n",
            4,
        ),
        (
            b"ms foo 2 Ma\r\n",
            b"CLIENT_ERROR invalid mode for ms M token\r\n",
            4,
        ),
        (
            b"ms foo 2 Tx\r\n",
            b"CLIENT_ERROR bad token in command line format\r\n",
            4,
        ),
        (b"ms foo 2 Fx\r\n", b"CLIENT_ERROR bad command line format\r\n", 4),
        (b"ms foo 2 b\r\n", b"CLIENT_ERROR error decoding key\r\n", 4),
        (
            b"ms foo 2 O123456789012345678901234567890123\r\n",
            b"CLIENT_ERROR opaque token too long\r\n",
            4,
        ),
        (
            b"ms foo 2000000\r\n",
            b"SERVER_ERROR object too large for cache\r\n",
            2_000_002,
        ),
    ];
    for (line, want, swallow) in cases {
        let (e, consumed, sw, close) = err(line);
        assert_eq!(
            e.line(),
            want,
            "{:?}: got {:?}",
            String::from_utf8_lossy(line),
            String::from_utf8_lossy(e.line())
        );
        assert_eq!(consumed, line.len(), "{:?}", String::from_utf8_lossy(line));
        assert_eq!(sw, swallow, "{:?}", String::from_utf8_lossy(line));
        assert!(!close);
    }
}

#[test]
fn bad_data_chunk_consumes_exactly_the_block() {
    // memcached: "ms foo 2\r\nhiX\r\nmn\r\n" -> bad data chunk, then "\n" -> ERROR, "mn" -> MN.
    let buf = b"ms foo 2\r\nhiX\r\nmn\r\n";
    let (e, consumed, swallow, close) = err(buf);
    assert_eq!(e, MetaError::BAD_DATA_CHUNK);
    assert_eq!(consumed, 10 + 4);
    assert_eq!((swallow, close), (0, false));
    let buf = b"ms foo 2\r\nhi\nmn\r\n";
    let (e, consumed, _, _) = err(buf);
    assert_eq!(e, MetaError::BAD_DATA_CHUNK);
    assert_eq!(&buf[consumed..], b"n\r\n");
}

#[test]
fn partial_line_limit_closes() {
    let buf = vec![b'a'; MAX_PARTIAL_LINE];
    assert_eq!(decode(&buf, &LIMITS), MetaDecoded::Incomplete);
    let buf = vec![b'a'; MAX_PARTIAL_LINE + 1];
    assert_eq!(
        decode(&buf, &LIMITS),
        MetaDecoded::Error {
            error: MetaError::LINE_TOO_LONG,
            consumed: buf.len(),
            swallow: 0,
            close: true,
            unlink: None,
        }
    );
    // A long line is fine once its newline is buffered.
    let mut long = b"mg foo v ".to_vec();
    long.resize(long.len() + 3000, b' ');
    long.extend_from_slice(b"\r\n");
    assert!(matches!(decode(&long, &LIMITS), MetaDecoded::Request { .. }));
}

#[test]
fn incomplete_until_line_and_block() {
    let buf = b"ms foo 5 T10\r\nhello\r\nmn\r\n";
    let full = 21;
    for cut in 0..full {
        assert_eq!(decode(&buf[..cut], &LIMITS), MetaDecoded::Incomplete, "cut {cut}");
    }
    let (r, consumed) = req(buf);
    assert_eq!(consumed, full);
    assert_eq!(
        r.op,
        MetaOp::Set {
            mode: StoreMode::Set,
            data: b"hello"
        }
    );
    let (r, consumed) = req(&buf[full..]);
    assert_eq!((r.op, consumed), (MetaOp::Noop, 4));
}

#[test]
fn decodes_flags() {
    let line = b"mg foo k v s t c f h l q O55 u N5 R6 T7 P L I\r\nrest";
    let (r, consumed) = req(line);
    assert_eq!(&line[consumed..], b"rest");
    assert_eq!(r.op, MetaOp::Get);
    assert_eq!(r.key.bytes(), b"foo");
    let f = r.flags;
    assert!(f.return_key && f.return_value && f.return_size && f.return_ttl && f.return_cas);
    assert!(f.return_flags && f.return_hit && f.return_last_access && f.quiet && f.no_bump && f.invalidate);
    assert_eq!(f.opaque, Some(&b"55"[..]));
    assert_eq!((f.vivify_ttl, f.recache_ttl, f.ttl), (Some(5), Some(6), Some(7)));
    assert_eq!(f.order(), b"kvstcfhlqOuNRTPLI");

    let (r, _) = req(b"ms Zm9v 2 F5 C77 E99 I MA k c b\r\nhi\r\n");
    assert_eq!(r.key.raw(), b"Zm9v");
    assert!(r.key.is_binary());
    assert_eq!(r.key.bytes(), b"foo");
    assert_eq!(
        r.op,
        MetaOp::Set {
            mode: StoreMode::Append,
            data: b"hi"
        }
    );
    assert_eq!(
        (r.flags.client_flags, r.flags.compare_cas, r.flags.new_cas),
        (Some(5), Some(77), Some(99))
    );

    let (r, _) = req(b"ma cnt MD D5 J9 N0 v\r\n");
    assert_eq!(
        r.op,
        MetaOp::Arithmetic {
            mode: ArithMode::Decrement,
            delta: 5,
            initial: 9
        }
    );
    let (r, _) = req(b"ma cnt\r\n");
    assert_eq!(
        r.op,
        MetaOp::Arithmetic {
            mode: ArithMode::Increment,
            delta: 1,
            initial: 0
        }
    );
    let (r, _) = req(b"md foo I T30 x q\r\n");
    assert_eq!(r.op, MetaOp::Delete);
    assert!(r.flags.invalidate && r.flags.remove_value && r.flags.quiet);
    let (r, _) = req(b"mn foo bar\r\n");
    assert_eq!(r.op, MetaOp::Noop);
    let (r, _) = req(b"me Zm9vYg== b\r\n");
    assert_eq!((r.op, r.key.bytes()), (MetaOp::Debug, &b"foob"[..]));
    let (r, _) = req(b"me foo x y z\r\n");
    assert_eq!(
        (r.op, r.key.bytes(), r.key.is_binary()),
        (MetaOp::Debug, &b"foo"[..], false)
    );
}

#[test]
fn memcached_parsing_quirks() {
    // Flags are identified by their first byte.
    let (r, _) = req(b"mg foo kxyz vabc\r\n");
    assert!(r.flags.return_key && r.flags.return_value);
    // Only spaces separate; a tab is part of the key.
    let (r, _) = req(b"mg foo\tv\r\n");
    assert_eq!(r.key.bytes(), b"foo\tv");
    // Runs of spaces, leading spaces, bare \n, stray \r in the last token.
    assert!(matches!(
        decode(b"  mg  foo  v \n", &LIMITS),
        MetaDecoded::Request { .. }
    ));
    let (r, _) = req(b"mg foo v\r\r\n");
    assert!(r.flags.return_value);
    // NUL ends the line.
    let (r, _) = req(b"mg foo\0 zz\r\n");
    assert_eq!(r.flags.order(), b"");
    // P and L are ignored hints; M is ignored by mg.
    assert!(matches!(
        decode(b"mg foo Plonger Lpath Mx\r\n", &LIMITS),
        MetaDecoded::Request { .. }
    ));
    // Numbers: sign, leading/trailing whitespace, truncation.
    let cases: Vec<(&[u8], Option<i32>)> = vec![
        (b"mg foo T+5\r\n", Some(5)),
        (b"mg foo T-1\r\n", Some(-1)),
        (b"mg foo T-0\r\n", Some(0)),
        (b"mg foo T\t7\r\n", Some(7)),
        (b"mg foo T5\tjunk\r\n", Some(5)),
        (b"mg foo T4294967296\r\n", Some(0)),
        (b"mg foo T2147483648\r\n", Some(i32::MIN)),
        (b"mg foo T99999999999\r\n", Some(1215752191)),
    ];
    for (line, want) in cases {
        assert_eq!(req(line).0.flags.ttl, want, "{:?}", String::from_utf8_lossy(line));
    }
    let cases: Vec<(&[u8], Option<u32>)> = vec![
        (b"ms foo 2 F4294967296\r\nhi\r\n", Some(0)),
        (b"ms foo 2 F4294967295\r\nhi\r\n", Some(u32::MAX)),
        (b"ms foo 2 F18446744073709551615\r\nhi\r\n", Some(u32::MAX)),
        (b"ms foo 2 F-0\r\nhi\r\n", Some(0)),
        (b"ms foo 2 F+7\r\nhi\r\n", Some(7)),
    ];
    for (line, want) in cases {
        assert_eq!(
            req(line).0.flags.client_flags,
            want,
            "{:?}",
            String::from_utf8_lossy(line)
        );
    }
    // A negative whose wrapped value is positive passes memcached's check.
    assert_eq!(
        req(b"ms foo 2 C-18446744073709551615\r\nhi\r\n")
            .0
            .flags
            .compare_cas,
        Some(1)
    );
    // Data length: +, leading zero, 32-bit truncation.
    for line in [
        &b"ms foo 02\r\nhi\r\n"[..],
        b"ms foo +2\r\nhi\r\n",
        b"ms foo 4294967298\r\nhi\r\n",
    ] {
        let (r, consumed) = req(line);
        assert_eq!(
            r.op,
            MetaOp::Set {
                mode: StoreMode::Set,
                data: b"hi"
            }
        );
        assert_eq!(consumed, line.len());
    }
    let (r, _) = req(b"ms foo 0\r\n\r\n");
    assert_eq!(
        r.op,
        MetaOp::Set {
            mode: StoreMode::Set,
            data: b""
        }
    );
    // Opaque up to 31 bytes after the O.
    assert!(matches!(
        decode(b"mg foo O1234567890123456789012345678901\r\n", &LIMITS),
        MetaDecoded::Request { .. }
    ));
    // Keys of exactly 250 bytes.
    let line = format!("mg {} v\r\n", "a".repeat(250));
    assert_eq!(req(line.as_bytes()).0.key.bytes().len(), 250);
    // 17 flags on mg/md/ma, 16 on ms.
    assert!(matches!(
        decode(b"mg foo k v s t c f h l q O1 u N5 R5 T5 P L I\r\n", &LIMITS),
        MetaDecoded::Request { .. }
    ));
}

#[test]
fn base64_keys_follow_memcached_decoder() {
    let cases: Vec<(&[u8], &[u8])> = vec![
        (b"Zm9v", b"foo"),
        (b"Zm9vYg==", b"foob"),
        (b"Zm9v!!!!", b"foo"),
        (b"Zg==Zg==", b"f"),
        (b"YQ==", b"a"),
        (b"YWI=", b"ab"),
        (b"Zm9vYg==Zm9v", b"foob"),
    ];
    for (raw, want) in cases {
        let mut line = b"mg ".to_vec();
        line.extend_from_slice(raw);
        line.extend_from_slice(b" b\r\n");
        let (r, _) = req(&line);
        assert_eq!(r.key.bytes(), want, "{:?}", String::from_utf8_lossy(raw));
        assert!(r.key.is_binary());
    }
    let mut out = Vec::new();
    base64::encode(&mut out, &(0..=255u8).collect::<Vec<_>>());
    let mut back = MetaKey::plain(&out);
    // 256 bytes decode to more than the key buffer holds.
    assert!(!decode_key_base64(&mut back));
    let data: Vec<u8> = (0..180u8).collect();
    let mut enc = Vec::new();
    base64::encode(&mut enc, &data);
    let mut k = MetaKey::plain(&enc);
    assert!(decode_key_base64(&mut k));
    assert_eq!(k.bytes(), &data[..]);
}

#[test]
fn peek() {
    assert_eq!(peek_command(b"mg foo"), Some(MetaCommand::Get));
    assert_eq!(peek_command(b"  mn\r\n"), Some(MetaCommand::Noop));
    assert_eq!(peek_command(b"mn"), Some(MetaCommand::Noop));
    assert_eq!(peek_command(b"get foo"), None);
    assert_eq!(peek_command(b"m"), None);
    for c in [
        MetaCommand::Get,
        MetaCommand::Set,
        MetaCommand::Delete,
        MetaCommand::Arithmetic,
        MetaCommand::Noop,
        MetaCommand::Debug,
    ] {
        assert_eq!(MetaCommand::from_verb(c.verb()), Some(c));
    }
}
