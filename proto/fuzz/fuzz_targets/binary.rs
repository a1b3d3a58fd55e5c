//! Feeds arbitrary bytes to the binary decoder as one pipelined connection buffer. Checks
//! that nothing panics, that no step claims bytes it was not given or makes no progress,
//! that keys of decoded requests are 1..=250 bytes, that length fields are honoured, and
//! that the reply encoders round-trip through the header parser.
#![no_main]
#![deny(unsafe_code)]

use libfuzzer_sys::fuzz_target;
use proto::binary::{self, BinCommand, BinDecoded, Header, HEADER_LEN};
use proto::Limits;

fuzz_target!(|data: &[u8]| {
    let limits = Limits { item_size_max: 1024, ..Limits::default() };
    let mut buf = data;
    let mut out = Vec::new();
    loop {
        match binary::decode(buf, &limits) {
            BinDecoded::Incomplete => break,
            BinDecoded::Request { request: req, consumed } => {
                assert!(consumed >= HEADER_LEN && consumed <= buf.len());
                let h = Header::parse(buf).expect("a request has a header");
                assert_eq!(h.opcode, req.opcode.as_u8());
                assert!(consumed <= HEADER_LEN + h.body_len as usize);
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
                    assert!((1..=250).contains(&key.len()), "key length {}", key.len());
                    assert_eq!(key.len(), usize::from(h.key_len));
                }
                if let BinCommand::Store { value, .. } = req.command {
                    assert!(value.len() <= limits.item_size_max);
                }
                out.clear();
                binary::write_get_hit(&mut out, req.opcode, req.opaque, req.cas, 7, key.unwrap_or(b""), b"v");
                let back = Header::parse(&out).expect("encoder writes a header");
                assert_eq!(back.magic, binary::MAGIC_RESPONSE);
                assert_eq!(back.body_len as usize, out.len() - HEADER_LEN);
                assert_eq!(back.opaque, req.opaque);
                buf = &buf[consumed..];
            }
            BinDecoded::Error(e) => {
                assert!(e.consumed <= buf.len());
                assert!(!(e.close && e.swallow > 0));
                if let Some(key) = e.unlink {
                    assert!((1..=250).contains(&key.len()));
                }
                out.clear();
                e.write_reply(&mut out);
                assert_eq!(out.is_empty(), e.status.is_none());
                if e.close {
                    break;
                }
                assert!(e.consumed > 0);
                let skip = e.consumed.saturating_add(e.swallow);
                if skip >= buf.len() {
                    break;
                }
                buf = &buf[skip..];
            }
        }
    }
});
