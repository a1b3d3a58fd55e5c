//! Feeds arbitrary bytes to the classic text decoder as one pipelined connection buffer.
//! Checks that nothing panics and that no step claims bytes it was not given or makes no
//! progress.
//!
//! Written against the shape the text and meta decoders share (Incomplete / Request
//! { consumed } / Error { consumed, swallow, close }); the key-length invariant is checked
//! by the meta and binary targets, whose request types this crate owns.
#![no_main]
#![deny(unsafe_code)]

use libfuzzer_sys::fuzz_target;
use proto::meta::MetaDecoded;
use proto::text;
use proto::Limits;

fuzz_target!(|data: &[u8]| {
    let limits = Limits { item_size_max: 1024, ..Limits::default() };
    let mut buf = data;
    loop {
        // (consumed, swallow, close) of this step; a meta line comes back in meta's shape.
        let (consumed, swallow, close) = match text::decode(buf, &limits) {
            text::Decoded::Incomplete | text::Decoded::Meta(MetaDecoded::Incomplete) => break,
            text::Decoded::Request { consumed, .. }
            | text::Decoded::Meta(MetaDecoded::Request { consumed, .. }) => {
                assert!(consumed > 0);
                (consumed, 0, false)
            }
            text::Decoded::Error { consumed, swallow, close, .. }
            | text::Decoded::Meta(MetaDecoded::Error { consumed, swallow, close, .. }) => {
                (consumed, swallow, close)
            }
        };
        assert!(consumed <= buf.len());
        if close {
            break;
        }
        assert!(consumed > 0);
        let skip = consumed.saturating_add(swallow);
        if skip >= buf.len() {
            break;
        }
        buf = &buf[skip..];
    }
});
