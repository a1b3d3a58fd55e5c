//! Property tests of the binary decoder: arbitrary bytes and plausible frames never make it
//! panic, what it accepts stays within the buffer and the key limit, every error can write
//! its reply, and a frame complete in a prefix decodes the same in the whole buffer.

use super::*;
use proptest::prelude::*;

fn check(buf: &[u8], limits: &Limits) {
    match decode(buf, limits) {
        BinDecoded::Incomplete => {}
        BinDecoded::Request {
            request: req,
            consumed,
        } => {
            assert!(consumed >= HEADER_LEN && consumed <= buf.len());
            let key = match req.command {
                BinCommand::Get { key }
                | BinCommand::Store { key, .. }
                | BinCommand::Delete { key }
                | BinCommand::Arith { key, .. }
                | BinCommand::Touch { key, .. }
                | BinCommand::Gat { key, .. }
                | BinCommand::ConfigGet { key }
                | BinCommand::ConfigSet { key, .. }
                | BinCommand::ConfigDelete { key } => Some(key),
                BinCommand::Sasl { mechanism, .. } => Some(mechanism),
                _ => None,
            };
            if let Some(key) = key {
                assert!(!key.is_empty() && key.len() <= limits.max_key_len);
            }
        }
        BinDecoded::Error(e) => {
            assert!(e.consumed <= buf.len());
            assert!(!(e.close && e.swallow > 0));
            let mut out = Vec::new();
            e.write_reply(&mut out);
        }
    }
}

/// A plausible header (request magic, known or unknown opcode, small lengths) so the
/// search reaches the per-opcode checks instead of dying on the magic byte.
fn framed() -> impl Strategy<Value = Vec<u8>> {
    (
        any::<u8>(),
        0u16..300,
        prop_oneof![Just(0u8), Just(4), Just(8), Just(20), any::<u8>()],
        0u32..400,
        proptest::collection::vec(any::<u8>(), 0..400),
    )
        .prop_map(|(op, kl, el, bl, body)| {
            let mut v = vec![MAGIC_REQUEST, op];
            v.extend_from_slice(&kl.to_be_bytes());
            v.push(el);
            v.push(0);
            v.extend_from_slice(&[0, 0]);
            v.extend_from_slice(&bl.to_be_bytes());
            v.extend_from_slice(&[0; 12]);
            v.extend_from_slice(&body);
            v
        })
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(buf in proptest::collection::vec(any::<u8>(), 0..600)) {
        check(&buf, &Limits::default());
    }

    #[test]
    fn plausible_frames_never_panic(buf in framed(), max in 0usize..300) {
        check(&buf, &Limits { item_size_max: max, ..Limits::default() });
    }

    #[test]
    fn decoding_a_prefix_never_claims_more(buf in framed(), cut in 0usize..700) {
        let cut = cut.min(buf.len());
        let limits = Limits::default();
        if let BinDecoded::Request { consumed, .. } = decode(&buf[..cut], &limits) {
            // A complete frame in the prefix must be the same frame in the whole.
            prop_assert_eq!(decode(&buf, &limits), decode(&buf[..consumed], &limits));
        }
    }
}
