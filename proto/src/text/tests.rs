//! Tests of the text protocol's decoder and reply encoders. Expected replies and byte
//! counts were checked against memcached 1.6.18 (`/usr/bin/memcached`), not derived from
//! this code.
//!
//! This file holds the helpers the topic files share and the property tests over the whole
//! decoder; the example-based tests are split by topic:
//! - [`requests`]: valid requests, whole and cut short, keys, `noreply`, pipelining and the
//!   hand-off of meta lines,
//! - [`errors`]: malformed lines, bad data chunks, values too large, over-long lines, error
//!   replies and disabled commands,
//! - [`replies`]: the reply encoders and `lru_crawler metadump` lines.

use super::*;
use proptest::prelude::*;

mod errors;
mod replies;
mod requests;

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
