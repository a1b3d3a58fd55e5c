//! Feeds arbitrary bytes to the meta decoder as one pipelined connection buffer: decode,
//! drop what each step consumed (and swallowed), repeat. Checks that nothing panics, that
//! no step claims bytes it was not given or makes no progress, that accepted keys are
//! 1..=250 bytes, and that every reply writer copes with every accepted request.
#![no_main]
#![deny(unsafe_code)]

use libfuzzer_sys::fuzz_target;
use proto::meta::{self, ArithOutcome, DeleteOutcome, ItemMeta, MetaCommand, MetaDecoded, SetOutcome};
use proto::Limits;

fuzz_target!(|data: &[u8]| {
    // A small item limit lets short inputs reach the "too large" path as well.
    let limits = Limits { item_size_max: 1024, ..Limits::default() };
    let mut buf = data;
    let mut out = Vec::new();
    loop {
        match meta::decode(buf, &limits) {
            MetaDecoded::Incomplete => {
                assert!(buf.len() <= meta::MAX_PARTIAL_LINE || buf.contains(&b'\n'));
                break;
            }
            MetaDecoded::Request { request: req, consumed } => {
                assert!(consumed > 0 && consumed <= buf.len());
                if req.command() != MetaCommand::Noop {
                    let key = req.key.bytes();
                    assert!((1..=250).contains(&key.len()), "key length {}", key.len());
                    assert!(req.key.raw().len() <= 250);
                }
                if let meta::MetaOp::Set { data, .. } = req.op {
                    assert!(data.len() <= limits.item_size_max);
                }
                out.clear();
                // The server records on the item whether its key came in base64 (memcached
                // echoes `k` from that record), so mirror the request here.
                let item = ItemMeta {
                    ttl: -1,
                    created: data.len() % 2 == 0,
                    key_binary: req.key.is_binary(),
                    ..ItemMeta::default()
                };
                meta::write_mg_hit(&mut out, &req, &item, b"value");
                meta::write_mg_miss(&mut out, &req);
                meta::write_ms_result(&mut out, &req, SetOutcome::Stored { cas: 1 });
                meta::write_md_result(&mut out, &req, DeleteOutcome::NotFound);
                meta::write_ma_result(&mut out, &req, ArithOutcome::Done { value: u64::MAX, item });
                // Replies are single lines (plus a data line for VA): no bare newlines leak
                // from request tokens, because tokens never contain '\n'.
                assert!(!out.windows(2).any(|w| w[0] != b'\r' && w[1] == b'\n'));
                buf = &buf[consumed..];
            }
            MetaDecoded::Error { error, consumed, swallow, close, unlink } => {
                assert!(consumed <= buf.len());
                assert_eq!(unlink.is_some(), error == meta::MetaError::TOO_LARGE);
                assert_eq!(close, error.line().is_empty());
                if close {
                    break;
                }
                assert!(consumed > 0, "an error that consumes nothing would loop forever");
                let skip = consumed.saturating_add(swallow);
                if skip >= buf.len() {
                    break;
                }
                buf = &buf[skip..];
            }
        }
    }
});
