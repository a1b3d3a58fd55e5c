//! A store whose data block is still arriving: how large the whole request is, and how to
//! refuse it when no memory can take its value.
//!
//! The connection asks this only when a request is incomplete and buffering the rest would
//! take the read buffer past its free allowance (see `crate::net::budget`), so the parse
//! here is a short look at a line or a binary header that the decoder has already accepted
//! as far as it goes.

use proto::binary::{self, Status};
use proto::meta::MetaError;
use proto::ServerError;

use crate::context::Context;
use crate::stats::{bump, Counters};

/// A store whose header is complete and whose value is not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingStore<'a> {
    /// Bytes of the whole request: line or header, value, and the text `\r\n`.
    pub total: usize,
    /// The key as sent (None for a meta key in base64, which is not unlinked).
    pub key: Option<&'a [u8]>,
    /// A plain set: memcached drops the old value when it cannot store the new one.
    pub is_set: bool,
    kind: Kind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text { noreply: bool },
    Meta,
    Binary { opcode: u8, opaque: u32 },
}

/// The store at the front of `input`, if it is one whose header is complete.
pub fn pending_store(input: &[u8], binary_protocol: bool) -> Option<PendingStore<'_>> {
    if binary_protocol {
        return pending_binary(input);
    }
    let end = input
        .iter()
        .take(proto::text::LONG_LINE)
        .position(|&b| b == b'\n')?;
    let line = input[..end].strip_suffix(b"\r").unwrap_or(&input[..end]);
    let mut tokens = line.split(|&b| b == b' ').filter(|t| !t.is_empty());
    let verb = tokens.next()?;
    let rest: Vec<&[u8]> = tokens.take(8).collect();
    let (key, len, kind, is_set) = match verb {
        b"set" | b"add" | b"replace" | b"append" | b"prepend" | b"cas" => {
            let noreply = rest.last() == Some(&&b"noreply"[..]);
            (
                Some(*rest.first()?),
                *rest.get(3)?,
                Kind::Text { noreply },
                verb == b"set",
            )
        }
        b"ms" => {
            let base64 = rest.iter().skip(2).any(|f| f.first() == Some(&b'b'));
            let mode_set = !rest.iter().skip(2).any(|f| f.first() == Some(&b'M'));
            (
                (!base64).then_some(*rest.first()?),
                *rest.get(1)?,
                Kind::Meta,
                mode_set,
            )
        }
        _ => return None,
    };
    let len: usize = std::str::from_utf8(len).ok()?.parse().ok()?;
    Some(PendingStore {
        total: end + 1 + len + 2,
        key,
        is_set,
        kind,
    })
}

fn pending_binary(input: &[u8]) -> Option<PendingStore<'_>> {
    let header = binary::Header::parse(input)?;
    let opcode = input[1];
    // Set, Add, Replace, Append, Prepend and their quiet forms.
    if !matches!(opcode, 0x01..=0x03 | 0x0e | 0x0f | 0x11..=0x13 | 0x19 | 0x1a) {
        return None;
    }
    let key_start = binary::HEADER_LEN + usize::from(header.extras_len);
    let key = input.get(key_start..key_start + usize::from(header.key_len));
    Some(PendingStore {
        total: binary::HEADER_LEN + header.body_len as usize,
        key,
        is_set: matches!(opcode, 0x01 | 0x11),
        kind: Kind::Binary {
            opcode,
            opaque: header.opaque,
        },
    })
}

/// Refuse `store` for want of memory as memcached does when it cannot allocate the item:
/// counted in `store_no_memory`, the old value of a set dropped, and the reply (written to
/// `out` now for binary, which answers before it swallows; returned for text and meta,
/// which answer after).
pub fn refuse(
    store: &PendingStore<'_>,
    ctx: &Context,
    counters: &Counters,
    out: &mut Vec<u8>,
) -> &'static [u8] {
    bump(&counters.store_no_memory, 1);
    if let (true, Some(key)) = (store.is_set, store.key) {
        ctx.cache.delete_with(key, ctx.clock.now(), Default::default());
    }
    match store.kind {
        Kind::Text { noreply: true } => b"",
        Kind::Text { noreply: false } => ServerError::OutOfMemoryStoring.as_wire(),
        Kind::Meta => MetaError::OUT_OF_MEMORY_STORING.line(),
        Kind::Binary { opcode, opaque } => {
            binary::write_response(
                out,
                opcode,
                Status::OutOfMemory,
                opaque,
                0,
                &[],
                &[],
                b"Out of memory allocating item",
            );
            b""
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_of_stores_still_arriving() {
        let p = pending_store(b"set k 0 0 1000 noreply\r\nabc", false).unwrap();
        assert_eq!(p.total, 24 + 1000 + 2);
        assert_eq!(p.key, Some(&b"k"[..]));
        assert!(p.is_set);
        assert_eq!(p.kind, Kind::Text { noreply: true });
        let p = pending_store(b"cas k 0 0 10 99\r\n", false).unwrap();
        assert_eq!((p.total, p.is_set), (17 + 12, false));
        let p = pending_store(b"ms k 5 T0\r\nab", false).unwrap();
        assert_eq!((p.total, p.key, p.kind), (11 + 7, Some(&b"k"[..]), Kind::Meta));
        assert!(pending_store(b"get a b c\r\n", false).is_none());
        assert!(pending_store(b"set k 0 0 10", false).is_none());
    }

    #[test]
    fn binary_store_header() {
        let mut frame = vec![0x80, 0x01, 0, 1, 8, 0, 0, 0, 0, 0, 0x10, 0, 0, 0, 0, 7];
        frame.extend_from_slice(&[0; 8]); // cas
        frame.extend_from_slice(&[0; 8]); // extras
        frame.push(b'k');
        let p = pending_store(&frame, true).unwrap();
        assert_eq!(p.total, 24 + 0x1000);
        assert_eq!(p.key, Some(&b"k"[..]));
        assert_eq!(p.kind, Kind::Binary { opcode: 1, opaque: 7 });
    }
}
