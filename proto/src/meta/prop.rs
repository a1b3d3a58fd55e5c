//! Property tests of the meta decoder: on arbitrary bytes and on meta-like lines it never
//! panics, consumes within the buffer, keeps keys and values inside the limits, and every
//! reply writer copes with whatever it accepted.

use super::*;
use proptest::prelude::*;

fn check(buf: &[u8], limits: &Limits) {
    match decode(buf, limits) {
        MetaDecoded::Incomplete => assert!(buf.len() <= MAX_PARTIAL_LINE || buf.contains(&b'\n')),
        MetaDecoded::Request {
            request: req,
            consumed,
        } => {
            assert!(consumed > 0 && consumed <= buf.len());
            if req.command() != MetaCommand::Noop {
                let k = req.key.bytes();
                assert!(!k.is_empty() && k.len() <= limits.max_key_len);
                assert!(req.key.raw().len() <= limits.max_key_len);
            }
            if let MetaOp::Set { data, .. } = req.op {
                assert!(data.len() <= limits.item_size_max);
            }
            // Every writer must cope with whatever the decoder accepted.
            let mut out = Vec::new();
            let item = ItemMeta::default();
            write_mg_hit(&mut out, &req, &item, b"v");
            write_mg_miss(&mut out, &req);
            write_ms_result(&mut out, &req, SetOutcome::NotStored);
            write_md_result(&mut out, &req, DeleteOutcome::Exists);
            write_ma_result(&mut out, &req, ArithOutcome::Done { value: 1, item });
        }
        MetaDecoded::Error {
            error,
            consumed,
            swallow,
            close,
            unlink,
        } => {
            assert!(consumed <= buf.len());
            assert_eq!(unlink.is_some(), error == MetaError::TOO_LARGE);
            assert!(!(close && swallow > 0));
            assert_eq!(error.line().is_empty(), close);
        }
    }
}

/// Lines built from meta verbs and flag-like tokens, so the search gets past the verb.
fn line() -> impl Strategy<Value = Vec<u8>> {
    let verb = prop_oneof![
        Just("mg"),
        Just("ms"),
        Just("md"),
        Just("ma"),
        Just("mn"),
        Just("me"),
        Just("mx")
    ];
    let token = prop_oneof![
        "[a-zA-Z]{1,3}",
        "[A-Z][-+]?[0-9]{0,21}",
        "[a-zA-Z0-9+/=]{1,12}",
        Just("b".to_string()),
        ".{0,4}",
    ];
    (
        verb,
        proptest::collection::vec(token, 0..22),
        proptest::collection::vec(any::<u8>(), 0..16),
    )
        .prop_map(|(v, toks, tail)| {
            let mut s = v.as_bytes().to_vec();
            for t in toks {
                s.push(b' ');
                s.extend_from_slice(t.as_bytes());
            }
            s.extend_from_slice(b"\r\n");
            s.extend_from_slice(&tail);
            s
        })
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(buf in proptest::collection::vec(any::<u8>(), 0..3000)) {
        check(&buf, &Limits::default());
    }

    #[test]
    fn meta_like_lines_never_panic(buf in line(), max in 0usize..64) {
        check(&buf, &Limits { item_size_max: max, ..Limits::default() });
    }
}
