//! Large items as chains of chunks, as memcached has stored them since 1.4.29.
//!
//! An item whose header, key and value do not fit in `slab_chunk_max` bytes is stored in
//! chunks of the largest class (whose chunk size is `slab_chunk_max`):
//!
//! ```text
//!   head (linked: in the index and on the largest class's LRU)
//!   +--------+-----+-------------+--------------------------+
//!   | header | key | first: u32  | value bytes 0 .. h       |   header.value_len = whole value
//!   +--------+-----+-------------+--------------------------+   header bits: LINKED | CHAINED
//!   data chunk (not linked; reachable only through its head)
//!   +--------+------------------------------------------+
//!   | header | value bytes h .. h + d                   |   lru_prev = head, lru_next = next
//!   +--------+------------------------------------------+   value_len = d, key_len = 0, bits: CHAINED
//! ```
//!
//! Every chunk of a chain is in the largest class, so one class lock covers all of them:
//! freeing, evicting or moving a chained item never takes a second class lock. The price
//! is the unused end of the last chunk (memcached puts the tail in a smaller class).
//! A chain is written while its chunks are owned by the writer, and read, rewritten (by
//! the mover) or freed only by holders of the head's stripe lock, like any value.

use std::sync::atomic::Ordering::Relaxed;

use crate::arena::{ChunkRef, NIL};
use crate::cache::{Cache, ClassState};
use crate::item::{ItemHeader, CHAINED};

/// Bytes of a head's payload that name its first data chunk.
pub(crate) const LINK: usize = 4;

/// An item's value as stored: one slice, or several for a chained item, in order.
/// Borrowed for a read callback (under the item's stripe lock).
#[derive(Clone, Copy)]
pub struct Value<'a> {
    /// None for a value that is not in the cache ([`Value::from_slice`]).
    cache: Option<&'a Cache>,
    first: &'a [u8],
    next: ChunkRef,
    len: usize,
}

impl std::fmt::Debug for Value<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Value").field("len", &self.len).finish()
    }
}

impl<'a> Value<'a> {
    /// A value made of one slice that is not in the cache (a reply the server makes up,
    /// such as the cluster list served as an item).
    pub fn from_slice(bytes: &'a [u8]) -> Value<'a> {
        Value {
            cache: None,
            first: bytes,
            next: NIL,
            len: bytes.len(),
        }
    }

    /// Bytes of value.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The value as one slice, when it is stored in one chunk.
    pub fn as_slice(&self) -> Option<&'a [u8]> {
        (self.next == NIL).then_some(self.first)
    }

    /// The value's pieces, in order; their lengths add up to [`Value::len`].
    pub fn parts(&self) -> Parts<'a> {
        Parts {
            cache: self.cache,
            first: Some(self.first),
            next: self.next,
        }
    }

    /// Append the value to `out`, piece by piece (a chained item is never joined first).
    pub fn append_to(&self, out: &mut Vec<u8>) {
        out.reserve(self.len);
        for piece in self.parts() {
            out.extend_from_slice(piece);
        }
    }

    /// A copy of the whole value.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = Vec::new();
        self.append_to(&mut v);
        v
    }
}

impl PartialEq<[u8]> for Value<'_> {
    fn eq(&self, other: &[u8]) -> bool {
        self.len == other.len() && self.to_vec() == other
    }
}

/// The pieces of a [`Value`].
pub struct Parts<'a> {
    cache: Option<&'a Cache>,
    first: Option<&'a [u8]>,
    next: ChunkRef,
}

impl<'a> Iterator for Parts<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if let Some(first) = self.first.take() {
            return Some(first);
        }
        let cache = self.cache.filter(|_| self.next != NIL)?;
        let c = self.next;
        let h = cache.header(c);
        self.next = h.lru_next.load(Relaxed);
        // SAFETY: `c` is a data chunk of a linked chained item whose stripe lock the
        // reader holds (a `Value` only lives inside a read under that lock): its bytes were
        // written before the head was published and change only under that lock.
        Some(unsafe { cache.arena.payload(c, h.value_len()) })
    }
}

/// How an item is laid out in chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Layout {
    /// One chunk of this class.
    Single(usize),
    /// A head and this many data chunks, all of the largest class.
    Chained(usize),
}

impl Cache {
    /// The largest class, whose chunks make up chains.
    pub(crate) fn chain_class(&self) -> usize {
        self.classes.len()
    }

    pub(crate) fn chunk_max(&self) -> usize {
        self.classes.chunk_size(self.chain_class())
    }

    /// Value bytes a chained item's head holds.
    pub(crate) fn head_capacity(&self, key_len: usize) -> usize {
        self.chunk_max() - ItemHeader::SIZE - key_len - LINK
    }

    /// How an item with this key and value length is stored (None: larger than any chain
    /// the arena could hold; the caller has checked the item size limit already).
    pub(crate) fn layout(&self, key_len: usize, value_len: usize) -> Option<Layout> {
        let total = ItemHeader::total_size(key_len, value_len);
        if total <= self.chunk_max() {
            return self.classes.class_for(total).map(Layout::Single);
        }
        let rest = value_len.saturating_sub(self.head_capacity(key_len));
        Some(Layout::Chained(
            rest.div_ceil(self.chunk_max() - ItemHeader::SIZE),
        ))
    }

    /// Value bytes stored in the head chunk itself.
    fn head_len(&self, h: &ItemHeader) -> usize {
        if h.has_bit(CHAINED) {
            h.value_len().min(self.head_capacity(h.key_len()))
        } else {
            h.value_len()
        }
    }

    /// The value of a linked item; the caller holds its stripe lock.
    pub(crate) fn value_of(&self, c: ChunkRef) -> Value<'_> {
        let h = self.header(c);
        let klen = h.key_len();
        let chained = h.has_bit(CHAINED);
        let link = if chained { LINK } else { 0 };
        let head_len = self.head_len(h);
        // SAFETY: `c` is linked and its stripe lock is held: its payload was written before
        // it was published, and is rewritten or freed only under that lock.
        let payload = unsafe { self.arena.payload(c, klen + link + head_len) };
        let next = if chained {
            u32::from_le_bytes(payload[klen..klen + LINK].try_into().unwrap_or_default())
        } else {
            NIL
        };
        Value {
            cache: Some(self),
            first: &payload[klen + link..],
            next,
            len: h.value_len(),
        }
    }

    /// Write the header of `data[i]`, a data chunk of `head`'s chain holding `n` bytes:
    /// it points back at the head (the mover's test for "in a writer's hands" is a data
    /// chunk whose head is not linked) and on to the next data chunk.
    pub(crate) fn init_data_chunk(&self, head: ChunkRef, data: &[ChunkRef], i: usize, n: usize) {
        let dh = self.header(data[i]);
        dh.hash_next.store(NIL, Relaxed);
        dh.lru_prev.store(head, Relaxed);
        dh.lru_next
            .store(data.get(i + 1).copied().unwrap_or(NIL), Relaxed);
        dh.value_len.store(n as u32, Relaxed);
        dh.key_len.store(0, Relaxed);
        dh.bits.store(CHAINED, Relaxed);
    }

    /// Write `parts` (concatenated) as the value of a fresh item: into `head` after the key
    /// (and the link, if `data` is not empty), then across `data`. The chunks are owned by
    /// the caller (just allocated); the head's other header fields are the caller's.
    pub(crate) fn write_value(&self, head: ChunkRef, key_len: usize, parts: &[&[u8]], data: &[ChunkRef]) {
        let total: usize = parts.iter().map(|p| p.len()).sum();
        let mut src = parts.iter().copied().filter(|p| !p.is_empty());
        let mut pending: &[u8] = &[];
        let mut fill = |dst: &mut [u8]| {
            let mut at = 0;
            while at < dst.len() {
                if pending.is_empty() {
                    pending = src.next().unwrap_or(&[]);
                    if pending.is_empty() {
                        break;
                    }
                }
                let n = pending.len().min(dst.len() - at);
                dst[at..at + n].copy_from_slice(&pending[..n]);
                pending = &pending[n..];
                at += n;
            }
        };
        let h = self.header(head);
        if data.is_empty() {
            h.bits.store(h.bits.load(Relaxed) & !CHAINED, Relaxed);
            // SAFETY: the caller owns `head` (fresh from a free list, the carve or an
            // eviction): nothing else reaches it.
            let v = unsafe { self.arena.payload_range_mut(head, key_len, total) };
            fill(v);
            return;
        }
        h.bits.store(h.bits.load(Relaxed) | CHAINED, Relaxed);
        let head_len = total.min(self.head_capacity(key_len));
        // SAFETY: as above, the caller owns `head`.
        let v = unsafe { self.arena.payload_range_mut(head, key_len, LINK + head_len) };
        v[..LINK].copy_from_slice(&data[0].to_le_bytes());
        fill(&mut v[LINK..]);
        let mut left = total - head_len;
        let cap = self.chunk_max() - ItemHeader::SIZE;
        for (i, &d) in data.iter().enumerate() {
            let n = left.min(cap);
            self.init_data_chunk(head, data, i, n);
            // SAFETY: the caller owns every chunk of `data`, as it owns `head`.
            fill(unsafe { self.arena.payload_mut(d, n) });
            left -= n;
        }
    }

    /// The data chunks of a chained head, in order (none for a single-chunk item).
    pub(crate) fn data_chunks(&self, head: ChunkRef) -> Vec<ChunkRef> {
        let mut out = Vec::new();
        if !self.header(head).has_bit(CHAINED) {
            return out;
        }
        let mut c = self.value_of(head).next;
        while c != NIL {
            out.push(c);
            c = self.header(c).lru_next.load(Relaxed);
        }
        out
    }

    /// Free the data chunks of an item leaving the cache (the largest class's lock held as
    /// `cs`, and the item's stripe lock): its head is freed or reused by the caller.
    pub(crate) fn free_data_chunks(&self, cs: &mut ClassState, head: ChunkRef) {
        for d in self.data_chunks(head) {
            self.free_chunk(cs, d);
        }
    }

    /// Point whatever links to data chunk `old` of `head`'s chain at `new` instead (the
    /// mover's rescue; stripe and class locks held).
    pub(crate) fn relink_data_chunk(&self, head: ChunkRef, old: ChunkRef, new: ChunkRef) {
        let klen = self.header(head).key_len();
        if self.value_of(head).next == old {
            // SAFETY: the head's stripe lock is held, which every reader of its payload
            // holds too; only the link bytes after the key are written.
            let link = unsafe { self.arena.payload_range_mut(head, klen, LINK) };
            link.copy_from_slice(&new.to_le_bytes());
            return;
        }
        for d in self.data_chunks(head) {
            let dh = self.header(d);
            if dh.lru_next.load(Relaxed) == old {
                dh.lru_next.store(new, Relaxed);
                return;
            }
        }
    }

    /// After a head moved from `old` to `new`: its data chunks point back at `new`.
    pub(crate) fn repoint_data_chunks(&self, new: ChunkRef) {
        for d in self.data_chunks(new) {
            self.header(d).lru_prev.store(new, Relaxed);
        }
    }

    /// Bytes of `c`'s payload that hold something (key, link, head value bytes, or a data
    /// chunk's value bytes): what a copy of the chunk must carry.
    pub(crate) fn stored_len(&self, c: ChunkRef) -> usize {
        let h = self.header(c);
        if h.is_data_chunk() {
            h.value_len()
        } else if h.has_bit(CHAINED) {
            h.key_len() + LINK + self.head_len(h)
        } else {
            h.payload_len()
        }
    }
}
