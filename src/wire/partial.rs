//! A store whose data block is still arriving: how large the whole request is, whether its
//! value can go straight into a reserved item ([`intake_start`]), and how to refuse it when
//! no memory can take its value.
//!
//! The connection asks this only when a request is incomplete and buffering the rest would
//! take the read buffer past its free allowance (see `crate::net::budget`), so the parse
//! here is a short look at a line or a binary header that the decoder has already accepted
//! as far as it goes.
//!
//! A value that goes into a reserved item leaves the header behind: the connection keeps
//! it with the value length rewritten to 0 ([`IntakeStart::header`]), and once the value
//! (and the text `\r\n`) is in, that header runs through the usual decoder and executor
//! with the item lent to the store, so replies, counters and quiet/noreply/opaque rules
//! are the usual ones.

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
    /// append or prepend (text verbs, binary opcodes, or an `ms` mode other than set, add
    /// or replace): the new value is built on the old one.
    pub builds_on_old: bool,
    /// Text and meta: where the value-length word is in the line (start, end).
    length_word: Option<(usize, usize)>,
    kind: Kind,
}

/// A store whose value can be written into an item as it arrives: set, add, replace, cas,
/// `ms` in those modes with a key not in base64, and the binary set, add and replace.
/// (append and prepend build on the old value and stay buffered.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntakeStart<'a> {
    pub store: PendingStore<'a>,
    pub key: &'a [u8],
    pub value_len: usize,
    /// Bytes of the header in the input: the line and its `\n`, or the binary header,
    /// extras and key.
    pub header_len: usize,
    /// The header as the decoder will see it: the same request with a value length of 0.
    pub header: Vec<u8>,
    /// Bytes after the value that end the request: the `\r\n` of text and meta, none
    /// for binary.
    pub trailer: usize,
}

/// The store at the front of `input`, if its header is complete and its value can be
/// written into a reserved item (see [`IntakeStart`]).
pub fn intake_start(input: &[u8], binary_protocol: bool) -> Option<IntakeStart<'_>> {
    let store = pending_store(input, binary_protocol)?;
    let key = store.key?;
    if store.builds_on_old {
        return None;
    }
    if binary_protocol {
        let header = binary::Header::parse(input)?;
        let header_len = binary::HEADER_LEN + usize::from(header.extras_len) + usize::from(header.key_len);
        let value_len = store.total.checked_sub(header_len)?;
        let mut rewritten = input.get(..header_len)?.to_vec();
        let body = (header_len - binary::HEADER_LEN) as u32;
        rewritten[8..12].copy_from_slice(&body.to_be_bytes());
        return Some(IntakeStart {
            store,
            key,
            value_len,
            header_len,
            header: rewritten,
            trailer: 0,
        });
    }
    let (len_start, len_end) = store.length_word?;
    let header_len = input.iter().position(|&b| b == b'\n')? + 1;
    let value_len = store.total.checked_sub(header_len + 2)?;
    let mut rewritten = Vec::with_capacity(header_len);
    rewritten.extend_from_slice(&input[..len_start]);
    rewritten.push(b'0');
    rewritten.extend_from_slice(&input[len_end..header_len]);
    Some(IntakeStart {
        store,
        key,
        value_len,
        header_len,
        header: rewritten,
        trailer: 2,
    })
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
    let (key, len, kind, is_set, builds_on_old) = match verb {
        b"set" | b"add" | b"replace" | b"append" | b"prepend" | b"cas" => {
            let noreply = rest.last() == Some(&&b"noreply"[..]);
            (
                Some(*rest.first()?),
                *rest.get(3)?,
                Kind::Text { noreply },
                verb == b"set",
                matches!(verb, b"append" | b"prepend"),
            )
        }
        b"ms" => {
            let flags = || rest.iter().skip(2);
            let base64 = flags().any(|f| f.first() == Some(&b'b'));
            let mode = flags().find_map(|f| f.strip_prefix(b"M"));
            (
                (!base64).then_some(*rest.first()?),
                *rest.get(1)?,
                Kind::Meta,
                mode.is_none(),
                // Only the upper-case set, add and replace modes are taken as such here;
                // anything else stays on the buffered path, which decodes it fully.
                mode.is_some_and(|m| !matches!(m.first(), Some(b'S' | b'E' | b'R'))),
            )
        }
        _ => return None,
    };
    // `len` is a subslice of `line`, itself the start of `input`.
    let len_start = len.as_ptr() as usize - input.as_ptr() as usize;
    let length_word = Some((len_start, len_start + len.len()));
    let len: usize = std::str::from_utf8(len).ok()?.parse().ok()?;
    Some(PendingStore {
        total: end + 1 + len + 2,
        key,
        is_set,
        builds_on_old,
        length_word,
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
        builds_on_old: matches!(opcode, 0x0e | 0x0f | 0x19 | 0x1a),
        length_word: None,
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
    fn headers_rewritten_for_intake() {
        let s = intake_start(b"set k 5 0 100000 noreply\r\nabc", false).unwrap();
        assert_eq!(
            (s.key, s.value_len, s.header_len, s.trailer),
            (&b"k"[..], 100000, 26, 2)
        );
        assert_eq!(s.header, b"set k 5 0 0 noreply\r\n");
        let s = intake_start(b"cas  k 0 0 70000 12\n", false).unwrap();
        assert_eq!(s.header, b"cas  k 0 0 0 12\n");
        let s = intake_start(b"ms k 70000 T0 MR\r\n", false).unwrap();
        assert_eq!(s.header, b"ms k 0 T0 MR\r\n");
        assert!(intake_start(b"ms k 70000 MA\r\n", false).is_none());
        assert!(intake_start(b"ms a2V5 70000 b\r\n", false).is_none());
        assert!(intake_start(b"append k 0 0 70000\r\n", false).is_none());
        assert!(intake_start(b"get k\r\n", false).is_none());
        let mut frame = vec![0x80, 0x11, 0, 1, 8, 0, 0, 0, 0, 0, 0x10, 0, 0, 0, 0, 7];
        frame.extend_from_slice(&[0; 8]);
        frame.extend_from_slice(&[0; 8]);
        frame.push(b'k');
        let s = intake_start(&frame, true).unwrap();
        assert_eq!((s.value_len, s.header_len, s.trailer), (0x1000 - 9, 33, 0));
        assert_eq!(&s.header[8..12], &[0, 0, 0, 9]);
        frame[1] = 0x0e; // append
        assert!(intake_start(&frame, true).is_none());
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
