//! Unit tests of the binary decoder and encoders: each command decoded from a built frame,
//! whole-frame consumption, bad frames, quiet opcodes, status and opcode round trips, value
//! size limits, authentication refusals and encoded response bytes, compared with what
//! memcached 1.6.18 does.

use super::*;

const LIMITS: Limits = Limits {
    max_key_len: 250,
    item_size_max: 1024 * 1024,
    item_overhead: 56,
};

/// Builds a request frame; lengths default to the real ones.
fn frame(op: u8, extras: &[u8], key: &[u8], value: &[u8]) -> Vec<u8> {
    frame_with(op, extras, key, value, None, None, None)
}

fn frame_with(
    op: u8,
    extras: &[u8],
    key: &[u8],
    value: &[u8],
    key_len: Option<u16>,
    extras_len: Option<u8>,
    body_len: Option<u32>,
) -> Vec<u8> {
    let mut v = vec![MAGIC_REQUEST, op];
    v.extend_from_slice(&key_len.unwrap_or(key.len() as u16).to_be_bytes());
    v.push(extras_len.unwrap_or(extras.len() as u8));
    v.push(0);
    v.extend_from_slice(&0u16.to_be_bytes());
    let body = body_len.unwrap_or((extras.len() + key.len() + value.len()) as u32);
    v.extend_from_slice(&body.to_be_bytes());
    v.extend_from_slice(&0xdead_beefu32.to_be_bytes());
    v.extend_from_slice(&7u64.to_be_bytes());
    v.extend_from_slice(extras);
    v.extend_from_slice(key);
    v.extend_from_slice(value);
    v
}

fn req(buf: &[u8]) -> (BinRequest<'_>, usize) {
    match decode(buf, &LIMITS) {
        BinDecoded::Request { request, consumed } => (request, consumed),
        other => panic!("expected a request, got {other:?}"),
    }
}

fn error(buf: &[u8]) -> BinError<'_> {
    match decode(buf, &LIMITS) {
        BinDecoded::Error(e) => e,
        other => panic!("expected an error, got {other:?}"),
    }
}

#[test]
fn unauthenticated_frames_are_refused_after_the_length_checks() {
    let set = frame(0x01, &[0; 8], b"k", b"v");
    let e = refuse_unauthenticated(&set).unwrap();
    assert_eq!(
        (e.kind, e.status, e.close, e.opcode),
        (BinErrorKind::Unauthenticated, Some(Status::AuthError), true, 1)
    );
    // Unknown opcodes and over-long keys are refused for authentication first.
    assert!(refuse_unauthenticated(&frame(0x50, &[], &[], &[])).is_some());
    assert!(refuse_unauthenticated(&frame(0x00, &[], &[b'k'; 300], &[])).is_some());
    for allowed in [
        frame(0x20, &[], &[], &[]),
        frame(0x21, &[], b"PLAIN", b"x"),
        frame(0x0b, &[], &[], &[]),
    ] {
        assert_eq!(refuse_unauthenticated(&allowed), None);
    }
    // Not yet buffered, bad magic, inconsistent lengths: decode decides.
    assert_eq!(refuse_unauthenticated(&set[..HEADER_LEN + 4]), None);
    let mut bad = set.clone();
    bad[0] = 0x81;
    assert_eq!(refuse_unauthenticated(&bad), None);
    let short_body = frame_with(0x01, &[0; 8], b"k", &[], None, None, Some(3));
    assert_eq!(refuse_unauthenticated(&short_body), None);
}

#[test]
fn opcode_round_trip_and_unknowns() {
    for op in Opcode::ALL {
        assert_eq!(Opcode::from_u8(op.as_u8()), Some(op));
    }
    for b in [0x1f, 0x25, 0x30, 0x3c, 0x50, 0x5f, 0x68, 0xff] {
        assert_eq!(Opcode::from_u8(b), None, "{b:#x}");
    }
    assert!(Opcode::ALL.windows(2).all(|w| (w[0] as u8) < (w[1] as u8)));
}

#[test]
fn decodes_each_command() {
    let set_extras = [0, 0, 0xca, 0xfe, 0, 0, 0x0e, 0x10];
    let mut arith = Vec::new();
    arith.extend_from_slice(&5u64.to_be_bytes());
    arith.extend_from_slice(&10u64.to_be_bytes());
    arith.extend_from_slice(&ARITH_NO_CREATE.to_be_bytes());
    let k = b"key".as_slice();
    let cases: Vec<(Vec<u8>, BinCommand<'static>)> = vec![
        (frame(0x00, &[], k, &[]), BinCommand::Get { key: b"key" }),
        (frame(0x0d, &[], k, &[]), BinCommand::Get { key: b"key" }),
        (
            frame(0x11, &set_extras, k, b"val"),
            BinCommand::Store {
                mode: StoreMode::Set,
                key: b"key",
                flags: 0xcafe,
                exptime: 3600,
                value: b"val",
            },
        ),
        (
            frame(0x02, &set_extras, k, b""),
            BinCommand::Store {
                mode: StoreMode::Add,
                key: b"key",
                flags: 0xcafe,
                exptime: 3600,
                value: b"",
            },
        ),
        (
            frame(0x03, &set_extras, k, b"v"),
            BinCommand::Store {
                mode: StoreMode::Replace,
                key: b"key",
                flags: 0xcafe,
                exptime: 3600,
                value: b"v",
            },
        ),
        (
            frame(0x0e, &[], k, b"tail"),
            BinCommand::Store {
                mode: StoreMode::Append,
                key: b"key",
                flags: 0,
                exptime: 0,
                value: b"tail",
            },
        ),
        (
            frame(0x1a, &[], k, b"head"),
            BinCommand::Store {
                mode: StoreMode::Prepend,
                key: b"key",
                flags: 0,
                exptime: 0,
                value: b"head",
            },
        ),
        (frame(0x04, &[], k, &[]), BinCommand::Delete { key: b"key" }),
        (
            frame(0x05, &arith, k, &[]),
            BinCommand::Arith {
                incr: true,
                key: b"key",
                delta: 5,
                initial: 10,
                exptime: ARITH_NO_CREATE,
            },
        ),
        (
            frame(0x16, &arith, k, &[]),
            BinCommand::Arith {
                incr: false,
                key: b"key",
                delta: 5,
                initial: 10,
                exptime: ARITH_NO_CREATE,
            },
        ),
        (frame(0x07, &[], &[], &[]), BinCommand::Quit),
        (frame(0x08, &[], &[], &[]), BinCommand::Flush { delay: None }),
        (
            frame(0x18, &[0, 0, 0, 9], &[], &[]),
            BinCommand::Flush { delay: Some(9) },
        ),
        (frame(0x0a, &[], &[], &[]), BinCommand::Noop),
        (frame(0x0b, &[], &[], &[]), BinCommand::Version),
        (frame(0x10, &[], &[], &[]), BinCommand::Stat { group: b"" }),
        (
            frame(0x10, &[], b"items", &[]),
            BinCommand::Stat { group: b"items" },
        ),
        (
            frame(0x1c, &[0, 0, 0, 100], k, &[]),
            BinCommand::Touch {
                key: b"key",
                exptime: 100,
            },
        ),
        (
            frame(0x24, &[0, 0, 0, 100], k, &[]),
            BinCommand::Gat {
                key: b"key",
                exptime: 100,
            },
        ),
        (frame(0x20, &[], &[], &[]), BinCommand::SaslListMechs),
        (
            frame(0x21, &[], b"PLAIN", b"\0u\0p"),
            BinCommand::Sasl {
                step: false,
                mechanism: b"PLAIN",
                data: b"\0u\0p",
            },
        ),
        (
            frame(0x22, &[], b"PLAIN", b"x"),
            BinCommand::Sasl {
                step: true,
                mechanism: b"PLAIN",
                data: b"x",
            },
        ),
        (
            frame(0x60, &[], b"cluster", &[]),
            BinCommand::ConfigGet { key: b"cluster" },
        ),
        (
            frame(0x64, &[0, 0, 0, 1], b"cluster", b"1\nhost|ip|11211\n"),
            BinCommand::ConfigSet {
                key: b"cluster",
                flags: 1,
                value: b"1\nhost|ip|11211\n",
            },
        ),
        (
            frame(0x67, &[], b"cluster", &[]),
            BinCommand::ConfigDelete { key: b"cluster" },
        ),
    ];
    for (buf, want) in cases {
        let (r, consumed) = req(&buf);
        assert_eq!(r.command, want, "opcode {:#x}", buf[1]);
        assert_eq!(consumed, buf.len());
        assert_eq!(r.opaque, 0xdead_beef);
        assert_eq!(r.cas, 7);
        assert_eq!(r.opcode.as_u8(), buf[1]);
    }
}

#[test]
fn incomplete_until_whole_frame_then_exact_consumption() {
    let mut buf = frame(0x01, &[0; 8], b"k", b"value");
    let full = buf.len();
    for cut in 0..full {
        assert_eq!(decode(&buf[..cut], &LIMITS), BinDecoded::Incomplete, "cut {cut}");
    }
    buf.extend_from_slice(&frame(0x0a, &[], &[], &[]));
    let (_, consumed) = req(&buf);
    assert_eq!(consumed, full);
    let (noop, _) = req(&buf[consumed..]);
    assert_eq!(noop.command, BinCommand::Noop);
}

#[test]
fn bad_frames_follow_memcached() {
    struct Case {
        name: &'static str,
        buf: Vec<u8>,
        kind: BinErrorKind,
        status: Option<Status>,
        swallow: usize,
        close: bool,
    }
    let c = |name, buf, kind, status, swallow, close| Case {
        name,
        buf,
        kind,
        status,
        swallow,
        close,
    };
    // memcached's answer to a frame whose extras, key or body do not fit its opcode.
    let bad_shape = |name, buf| {
        c(
            name,
            buf,
            BinErrorKind::BadShape,
            Some(Status::InvalidArguments),
            0,
            true,
        )
    };
    let mut bad_magic = frame(0x0a, &[], &[], &[]);
    bad_magic[0] = 0x81;
    let cases = vec![
        c("bad magic", bad_magic, BinErrorKind::BadMagic, None, 0, true),
        c(
            "key > body",
            frame_with(0x00, &[], b"bk", &[], None, None, Some(1)),
            BinErrorKind::LengthsExceedBody,
            Some(Status::UnknownCommand),
            0,
            true,
        ),
        c(
            "key + extras > body",
            frame_with(0x01, &[0; 8], b"bk", &[], None, None, Some(9)),
            BinErrorKind::LengthsExceedBody,
            Some(Status::UnknownCommand),
            0,
            true,
        ),
        c(
            "key 251",
            frame(0x00, &[], &[b'a'; 251], &[]),
            BinErrorKind::KeyTooLong,
            Some(Status::InvalidArguments),
            0,
            true,
        ),
        c(
            "unknown opcode with long key",
            frame(0x50, &[], &[b'a'; 251], &[]),
            BinErrorKind::KeyTooLong,
            Some(Status::InvalidArguments),
            0,
            true,
        ),
        c(
            "unknown opcode",
            frame(0x50, &[1], b"ab", b"xyz"),
            BinErrorKind::UnknownOpcode,
            Some(Status::UnknownCommand),
            6,
            false,
        ),
        bad_shape("get with extras", frame(0x00, &[0; 4], b"bk", &[])),
        bad_shape("get without key", frame(0x00, &[], &[], &[])),
        bad_shape("get with value", frame(0x00, &[], b"k", b"v")),
        bad_shape("set extras 4", frame(0x01, &[0; 4], b"bk", b"v")),
        bad_shape("set without key", frame(0x01, &[0; 8], &[], b"v")),
        bad_shape("noop with body", frame(0x0a, &[], &[], b"x")),
        bad_shape("version with key", frame(0x0b, &[], b"k", &[])),
        bad_shape("quit with key", frame(0x07, &[], b"k", &[])),
        bad_shape("flush extras 8", frame(0x08, &[0; 8], &[], &[])),
        bad_shape("flush with key", frame(0x08, &[], b"k", &[])),
        bad_shape("delete with extras", frame(0x04, &[0; 4], b"k", &[])),
        bad_shape("incr extras 8", frame(0x05, &[0; 8], b"k", &[])),
        bad_shape("incr with value", frame(0x05, &[0; 20], b"k", b"zz")),
        bad_shape("touch extras 8", frame(0x1c, &[0; 8], b"k", &[])),
        bad_shape("touch no key", frame(0x1c, &[0; 4], &[], &[])),
        bad_shape("stat with extras", frame(0x10, &[0; 4], &[], &[])),
        bad_shape("append with extras", frame(0x0e, &[0; 4], b"k", b"x")),
        bad_shape("append without key", frame(0x0e, &[], &[], b"x")),
        bad_shape("sasl list with key", frame(0x20, &[], b"k", &[])),
        bad_shape("sasl auth without key", frame(0x21, &[], &[], b"x")),
        c(
            "set value too large",
            frame_with(0x01, &[0; 8], b"big", &[], None, None, Some(11 + 2 * 1024 * 1024)),
            BinErrorKind::ValueTooLarge,
            Some(Status::ValueTooLarge),
            2 * 1024 * 1024,
            false,
        ),
        c(
            "append value too large, value length 2^31 - 1",
            frame_with(0x0e, &[], b"big", &[], None, None, Some(i32::MAX as u32 + 3)),
            BinErrorKind::ValueTooLarge,
            Some(Status::ValueTooLarge),
            i32::MAX as usize,
            false,
        ),
        // memcached's value length is a C int: 2^31 or more is negative, nothing is
        // swallowed and the next bytes are read as a frame (verified on 1.6.18).
        c(
            "append value too large, body len near u32::MAX",
            frame_with(0x0e, &[], b"big", &[], None, None, Some(u32::MAX)),
            BinErrorKind::ValueTooLarge,
            Some(Status::ValueTooLarge),
            0,
            false,
        ),
        c(
            "set with body length 0xFFFFFFF0",
            frame_with(0x01, &[0; 8], b"big", &[], None, None, Some(0xFFFF_FFF0)),
            BinErrorKind::ValueTooLarge,
            Some(Status::ValueTooLarge),
            0,
            false,
        ),
        // memcached 1.6.18 has no Verbosity handler, whatever the frame's shape.
        c(
            "verbosity",
            frame(0x1b, &[0, 0, 0, 2], &[], &[]),
            BinErrorKind::UnknownOpcode,
            Some(Status::UnknownCommand),
            4,
            false,
        ),
        c(
            "verbosity without extras",
            frame(0x1b, &[], &[], &[]),
            BinErrorKind::UnknownOpcode,
            Some(Status::UnknownCommand),
            0,
            false,
        ),
    ];
    for case in cases {
        let e = error(&case.buf);
        assert_eq!(e.kind, case.kind, "{}", case.name);
        assert_eq!(e.status, case.status, "{}", case.name);
        assert_eq!(e.swallow, case.swallow, "{}", case.name);
        assert_eq!(e.close, case.close, "{}", case.name);
        let consumed = if case.kind == BinErrorKind::ValueTooLarge {
            HEADER_LEN + case.buf[4] as usize + 3
        } else {
            HEADER_LEN
        };
        assert_eq!(e.consumed, consumed, "{}", case.name);
        let unlink = (case.kind == BinErrorKind::ValueTooLarge && case.buf[1] == 0x01).then_some(&b"big"[..]);
        assert_eq!(e.unlink, unlink, "{}", case.name);
        assert_eq!(e.opcode, case.buf[1], "{}", case.name);
    }
}

#[test]
fn nothing_is_checked_before_extras_and_key_are_buffered() {
    // Key length 5 over a body of 3: memcached waits for the 5 key bytes, then answers
    // `Unknown command` and closes (verified on 1.6.18).
    let buf = frame_with(0x00, &[], b"abc", &[], None, None, Some(3));
    let mut short = buf.clone();
    short[2..4].copy_from_slice(&5u16.to_be_bytes());
    assert_eq!(decode(&short, &LIMITS), BinDecoded::Incomplete);
    short.extend_from_slice(b"de");
    assert_eq!(error(&short).kind, BinErrorKind::LengthsExceedBody);
    // A key over 250 bytes is refused only once it has arrived.
    let long = frame(0x00, &[], &[b'a'; 300], &[]);
    assert_eq!(decode(&long[..HEADER_LEN + 10], &LIMITS), BinDecoded::Incomplete);
    assert_eq!(error(&long).kind, BinErrorKind::KeyTooLong);
}

#[test]
fn loose_opcodes_leave_extra_body_in_stream() {
    // memcached reads only extras + key for touch/gat/stat; the rest is the next header.
    let buf = frame(0x1c, &[0, 0, 0, 5], b"k", b"vv");
    let (r, consumed) = req(&buf);
    assert_eq!(
        r.command,
        BinCommand::Touch {
            key: b"k",
            exptime: 5
        }
    );
    assert_eq!(consumed, HEADER_LEN + 4 + 1);
    let buf = frame(0x10, &[], b"slabs", b"junk");
    let (r, consumed) = req(&buf);
    assert_eq!(r.command, BinCommand::Stat { group: b"slabs" });
    assert_eq!(consumed, HEADER_LEN + 5);
}

#[test]
fn value_size_limit_is_memcacheds_item_sum() {
    // Checked on memcached 1.6.18 with -I 1m: key "big", flags 0, value 1048514 is
    // stored and 1048515 is "Too large."; with flags 1 the limit drops by 4 bytes.
    let cases = [
        (0u32, 1048514usize, true),
        (0, 1048515, false),
        (1, 1048510, true),
        (1, 1048511, false),
    ];
    for (flags, len, fits) in cases {
        let mut extras = flags.to_be_bytes().to_vec();
        extras.extend_from_slice(&[0; 4]);
        let buf = frame(0x01, &extras, b"big", &vec![b'a'; len]);
        let got = decode(&buf, &LIMITS);
        assert_eq!(
            matches!(got, BinDecoded::Request { .. }),
            fits,
            "flags {flags} len {len}"
        );
    }
    // Add and append never unlink; an incomplete key delays the verdict.
    let buf = frame_with(0x02, &[0; 8], b"big", &[], None, None, Some(11 + 2_000_000));
    assert_eq!(error(&buf).unlink, None);
    assert_eq!(decode(&buf[..30], &LIMITS), BinDecoded::Incomplete);
}

#[test]
fn quiet_table() {
    use Status::*;
    let hides_miss = [
        Opcode::GetQ,
        Opcode::GetKQ,
        Opcode::GatQ,
        Opcode::GatKQ,
        Opcode::ConfigGetQ,
        Opcode::ConfigGetKQ,
    ];
    let hides_success = [
        Opcode::SetQ,
        Opcode::AddQ,
        Opcode::ReplaceQ,
        Opcode::DeleteQ,
        Opcode::IncrementQ,
        Opcode::DecrementQ,
        Opcode::QuitQ,
        Opcode::FlushQ,
        Opcode::AppendQ,
        Opcode::PrependQ,
        Opcode::ConfigSetQ,
        Opcode::ConfigDeleteQ,
    ];
    let all_status = [
        NoError,
        KeyNotFound,
        KeyExists,
        ValueTooLarge,
        InvalidArguments,
        ItemNotStored,
        NonNumeric,
        AuthError,
        AuthContinue,
        UnknownCommand,
        OutOfMemory,
    ];
    for op in Opcode::ALL {
        for st in all_status {
            let want = (hides_miss.contains(&op) && st == KeyNotFound)
                || (hides_success.contains(&op) && st == NoError);
            assert_eq!(suppresses(op, st), want, "{op:?} {st:?}");
        }
        assert_eq!(
            op.is_quiet(),
            hides_miss.contains(&op) || hides_success.contains(&op),
            "{op:?}"
        );
    }
}

#[test]
fn status_codes_round_trip() {
    for v in 0..=u16::MAX {
        if let Some(s) = Status::from_u16(v) {
            assert_eq!(s.code(), v);
        }
    }
}

/// Reply bytes captured from memcached 1.6.18.
#[test]
fn encoders_match_memcached_bytes() {
    let opq: u32 = 0xdead_beef;
    let hdr = |op: u8, kl: u16, el: u8, st: u16, bl: u32, cas: u64| {
        let mut v = vec![0x81, op];
        v.extend_from_slice(&kl.to_be_bytes());
        v.push(el);
        v.push(0);
        v.extend_from_slice(&st.to_be_bytes());
        v.extend_from_slice(&bl.to_be_bytes());
        v.extend_from_slice(&opq.to_be_bytes());
        v.extend_from_slice(&cas.to_be_bytes());
        v
    };
    let cat = |a: Vec<u8>, b: &[u8]| [a.as_slice(), b].concat();
    let cases: Vec<(&str, Vec<u8>, Vec<u8>)> = vec![
        (
            "get miss",
            {
                let mut o = Vec::new();
                write_get_miss(&mut o, Opcode::Get, opq, b"nokey");
                o
            },
            cat(hdr(0x00, 0, 0, 1, 9, 0), b"Not found"),
        ),
        (
            "getk miss",
            {
                let mut o = Vec::new();
                write_get_miss(&mut o, Opcode::GetK, opq, b"nokey");
                o
            },
            cat(hdr(0x0c, 5, 0, 1, 5, 0), b"nokey"),
        ),
        (
            "getq hit",
            {
                let mut o = Vec::new();
                write_get_hit(&mut o, Opcode::GetQ, opq, 48, 0xcafe, b"bk", b"val");
                o
            },
            cat(hdr(0x09, 0, 4, 0, 7, 48), b"\x00\x00\xca\xfeval"),
        ),
        (
            "gatkq hit",
            {
                let mut o = Vec::new();
                write_get_hit(&mut o, Opcode::GatKQ, opq, 55, 1, b"bk", b"PREv2APP");
                o
            },
            cat(hdr(0x24, 2, 4, 0, 14, 55), b"\x00\x00\x00\x01bkPREv2APP"),
        ),
        (
            "touch hit",
            {
                let mut o = Vec::new();
                write_touch_hit(&mut o, Opcode::Touch, opq, 55, 1);
                o
            },
            cat(hdr(0x1c, 0, 4, 0, 4, 55), b"\x00\x00\x00\x01"),
        ),
        (
            "addq exists",
            {
                let mut o = Vec::new();
                write_error(&mut o, Opcode::AddQ, Status::KeyExists, opq);
                o
            },
            cat(hdr(0x12, 0, 0, 2, 20, 0), b"Data exists for key."),
        ),
        (
            "incr",
            {
                let mut o = Vec::new();
                write_arith(&mut o, Opcode::Increment, opq, 51, 6);
                o
            },
            cat(hdr(0x05, 0, 0, 0, 8, 51), &6u64.to_be_bytes()),
        ),
        (
            "set ok",
            {
                let mut o = Vec::new();
                write_status_only(&mut o, Opcode::Set, Status::NoError, opq, 48);
                o
            },
            hdr(0x01, 0, 0, 0, 0, 48),
        ),
        (
            "version",
            {
                let mut o = Vec::new();
                write_version(&mut o, opq, b"1.6.18");
                o
            },
            cat(hdr(0x0b, 0, 0, 0, 6, 0), b"1.6.18"),
        ),
        (
            "stat",
            {
                let mut o = Vec::new();
                write_stat(&mut o, opq, b"maxconns", b"1024");
                write_stat_end(&mut o, opq);
                o
            },
            [
                cat(hdr(0x10, 8, 0, 0, 12, 0), b"maxconns1024"),
                hdr(0x10, 0, 0, 0, 0, 0),
            ]
            .concat(),
        ),
        (
            "unknown command",
            {
                let mut o = Vec::new();
                error(&frame(0x50, &[], &[], &[])).write_reply(&mut o);
                o
            },
            cat(hdr(0x50, 0, 0, 0x81, 15, 0), b"Unknown command"),
        ),
        (
            "invalid arguments",
            {
                let mut o = Vec::new();
                error(&frame(0x00, &[0; 4], b"bk", &[])).write_reply(&mut o);
                o
            },
            cat(hdr(0x00, 0, 0, 4, 17, 0), b"Invalid arguments"),
        ),
        (
            "too large",
            {
                let mut o = Vec::new();
                write_error(&mut o, Opcode::SetQ, Status::ValueTooLarge, opq);
                o
            },
            cat(hdr(0x11, 0, 0, 3, 10, 0), b"Too large."),
        ),
        (
            "non-numeric",
            {
                let mut o = Vec::new();
                write_error(&mut o, Opcode::Increment, Status::NonNumeric, opq);
                o
            },
            cat(
                hdr(0x05, 0, 0, 6, 46, 0),
                b"Non-numeric server-side value for incr or decr",
            ),
        ),
        (
            "not stored",
            {
                let mut o = Vec::new();
                write_error(&mut o, Opcode::AppendQ, Status::ItemNotStored, opq);
                o
            },
            cat(hdr(0x19, 0, 0, 5, 11, 0), b"Not stored."),
        ),
    ];
    for (name, got, want) in cases {
        assert_eq!(got, want, "{name}");
    }
    let mut o = Vec::new();
    error(&{
        let mut f = frame(0x0a, &[], &[], &[]);
        f[0] = 0;
        f
    })
    .write_reply(&mut o);
    assert!(o.is_empty(), "bad magic closes without a reply");
}
