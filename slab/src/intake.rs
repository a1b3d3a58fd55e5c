//! Values that arrive straight into cache memory: an item is allocated (evicting as a store
//! would) as soon as a store's header is known, its value is written in as the bytes
//! arrive, and it is linked only when complete. memcached does the same: it allocates the
//! item when the command line is read and reads the data block into it, so a full cache
//! takes as many uploads at once as it can hold items, with no memory outside `-m`.
//!
//! - [`Cache::reserve`] allocates an *unlinked* item (one chunk, or a chain: head and data
//!   chunks, their links set), writes its header and key, and hands it over as a
//!   [`Reservation`]. Nothing reaches it but the reservation: not the index (no reader can
//!   see a half-written value), not the LRU (no eviction can take it).
//! - [`Reservation::write`] copies the next bytes of the value in, across data chunks; or
//!   a reader fills [`Reservation::unfilled_mut`] straight from a socket and calls
//!   [`Reservation::advance`].
//! - [`Reservation::commit`] runs the store's decisions (the same code as
//!   [`Cache::store_with`]: modes, cas rules, stale writes, marks, counters) and links the
//!   item instead of allocating and copying one.
//! - Dropping a reservation frees its chunks.
//!
//! The chunks count as used (`stats slabs`) while reserved. The page mover counts a
//! reserved chunk on a page it empties as "in a writer's hands"; it waits for a while and
//! then gives the page up (see `mover`), so a slow uploader cannot stall it for ever.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use crate::arena::{ChunkRef, NIL};
use crate::cache::{lock, Cache, StoreError, StoreMode, StoreOptions, Stripe, Unlink, MAX_KEY_LEN};
use crate::chain::{Layout, LINK};
use crate::item::{ItemHeader, CHAINED};
use crate::ops::{Incoming, StoreRequest};

/// An item allocated for a store whose value is still arriving; see the module docs.
pub struct Reservation {
    cache: Arc<Cache>,
    /// The item's head chunk; NIL once linked (nothing left to free).
    head: ChunkRef,
    /// A chained item's data chunks, in order (empty for a single-chunk item).
    data: Vec<ChunkRef>,
    key_len: usize,
    value_len: usize,
    /// Value bytes written so far.
    filled: usize,
}

impl std::fmt::Debug for Reservation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reservation")
            .field("len", &self.value_len)
            .field("filled", &self.filled)
            .finish()
    }
}

impl Cache {
    /// Allocate an unlinked item for `key` with room for `value_len` bytes of value,
    /// evicting as a store does (nothing linked is replaced yet: the key's current item,
    /// if any, stays readable until [`Reservation::commit`]). Errors: `BadKey`, `TooLarge`
    /// (over the item size limit), `OutOfMemory` (no chunk free or evictable).
    pub fn reserve(
        self: &Arc<Self>,
        key: &[u8],
        value_len: usize,
        now: u32,
    ) -> Result<Reservation, StoreError> {
        if key.is_empty() || key.len() > MAX_KEY_LEN {
            return Err(StoreError::BadKey);
        }
        if !self.fits(key.len(), value_len) {
            return Err(StoreError::TooLarge);
        }
        let layout = self.layout(key.len(), value_len).ok_or(StoreError::TooLarge)?;
        let hash = self.hash(key);
        let idx = Cache::stripe_of(hash);
        // Eviction may meet items of this stripe: it needs it locked, as a store has it.
        let mut st = lock(&self.stripes[idx]);
        let (head, data) = match layout {
            Layout::Single(class) => (self.alloc(class, &mut st, idx, NIL, now), Vec::new()),
            Layout::Chained(n) => self.alloc_chain(n, &mut st, idx, NIL, now),
        };
        drop(st);
        let head = head.ok_or(StoreError::OutOfMemory)?;
        lock(&self.class_state[self.class_of(head)]).reserved_chunks += 1 + data.len();
        let h = self.header(head);
        h.hash_next.store(NIL, Relaxed);
        h.lru_prev.store(NIL, Relaxed);
        h.lru_next.store(NIL, Relaxed);
        h.exptime.store(0, Relaxed);
        h.client_flags.store(0, Relaxed);
        h.value_len.store(value_len as u32, Relaxed);
        h.key_len.store(key.len() as u8, Relaxed);
        h.set_cas(0);
        h.bits.store(if data.is_empty() { 0 } else { CHAINED }, Relaxed);
        // SAFETY: `head` was just allocated and is linked nowhere: this thread owns it.
        let k = unsafe { self.arena.payload_mut(head, key.len()) };
        k.copy_from_slice(key);
        if let Some(&first) = data.first() {
            // SAFETY: as above; the link bytes follow the key.
            let link = unsafe { self.arena.payload_range_mut(head, key.len(), LINK) };
            link.copy_from_slice(&first.to_le_bytes());
        }
        // Data chunks get their headers now, as `write_value` writes them.
        let mut left = value_len - self.head_capacity(key.len()).min(value_len);
        let cap = self.chunk_max() - ItemHeader::SIZE;
        for i in 0..data.len() {
            let n = left.min(cap);
            self.init_data_chunk(head, &data, i, n);
            left -= n;
        }
        Ok(Reservation {
            cache: Arc::clone(self),
            head,
            data,
            key_len: key.len(),
            value_len,
            filled: 0,
        })
    }
}

impl Reservation {
    /// Bytes of value the item holds.
    pub fn len(&self) -> usize {
        self.value_len
    }

    pub fn is_empty(&self) -> bool {
        self.value_len == 0
    }

    /// Value bytes written so far.
    pub fn filled(&self) -> usize {
        self.filled
    }

    /// Value bytes still to come.
    pub fn remaining(&self) -> usize {
        self.value_len - self.filled
    }

    /// The key the item was reserved for.
    pub fn key(&self) -> &[u8] {
        // SAFETY: the reservation owns `head` (linked nowhere); its key bytes were written
        // by `reserve` and are not written again.
        unsafe { self.cache.arena.payload(self.head, self.key_len) }
    }

    /// Copy the next bytes of the value in; returns how many were taken (at most
    /// [`Reservation::remaining`]).
    pub fn write(&mut self, mut bytes: &[u8]) -> usize {
        let take = bytes.len().min(self.remaining());
        bytes = &bytes[..take];
        while !bytes.is_empty() {
            let (chunk, from, room) = self.position();
            let n = room.min(bytes.len());
            // SAFETY: the reservation owns every chunk of the item (linked nowhere, and the
            // mover only reads the headers of chunks it cannot link); `position` keeps the
            // range inside the chunk's value bytes.
            let dst = unsafe { self.cache.arena.payload_range_mut(chunk, from, n) };
            dst.copy_from_slice(&bytes[..n]);
            self.filled += n;
            bytes = &bytes[n..];
        }
        take
    }

    /// The memory the next value bytes go into (up to the end of the current chunk; empty
    /// once the value is complete), for a caller that reads them there directly; then
    /// [`Reservation::advance`] by what it wrote.
    pub fn unfilled_mut(&mut self) -> &mut [u8] {
        if self.remaining() == 0 {
            return &mut [];
        }
        let (chunk, from, room) = self.position();
        // SAFETY: as in `write`: the reservation owns the chunk, and the borrow of `self`
        // keeps this the only reference to its value bytes.
        unsafe { self.cache.arena.payload_range_mut(chunk, from, room) }
    }

    /// Count `n` more value bytes as written (into [`Reservation::unfilled_mut`]).
    pub fn advance(&mut self, n: usize) {
        self.filled += n.min(self.remaining());
    }

    /// Where the next value byte goes: the chunk, its payload offset, and the bytes of
    /// value that chunk still takes.
    fn position(&self) -> (ChunkRef, usize, usize) {
        let cache = &self.cache;
        if self.data.is_empty() {
            return (self.head, self.key_len + self.filled, self.remaining());
        }
        let head_len = cache.head_capacity(self.key_len).min(self.value_len);
        if self.filled < head_len {
            return (
                self.head,
                self.key_len + LINK + self.filled,
                head_len - self.filled,
            );
        }
        let cap = cache.chunk_max() - ItemHeader::SIZE;
        let at = self.filled - head_len;
        let chunk = self.data[at / cap];
        let room = cap - at % cap;
        (chunk, at % cap, room.min(self.remaining()))
    }

    /// Store the completed value under its key as a store of `mode` would (see
    /// [`Cache::store_with`]; its decisions and counters are the same code), linking the
    /// reserved item instead of copying. The item is freed if the store does not happen.
    /// append and prepend, which build on the old value, answer `NotStored`; so does a
    /// value not yet complete.
    pub fn commit(
        mut self,
        mode: StoreMode,
        flags: u32,
        exptime: u32,
        now: u32,
        opts: StoreOptions,
    ) -> Result<u64, StoreError> {
        if self.remaining() > 0 {
            return Err(StoreError::NotStored);
        }
        let cache = Arc::clone(&self.cache);
        let mut key = [0u8; MAX_KEY_LEN];
        key[..self.key_len].copy_from_slice(self.key());
        let key = &key[..self.key_len];
        let slot = cache.lock_key_for_store(key, now).ok_or(StoreError::BadKey)?;
        let request = StoreRequest {
            mode,
            key,
            flags,
            exptime,
            now,
            opts,
        };
        cache.store_in_slot(slot, request, Incoming::Reserved(&mut self))
        // A reservation that was not linked is freed as it drops here.
    }

    /// Link the item in place of `old` (NIL if none), with the key's stripe locked as
    /// `st`: its header gets the store's flags, expiry and a new cas, then it is published
    /// as a freshly written item is. Called once, by the store's decisions.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn link(
        &mut self,
        cache: &Cache,
        st: &mut Stripe,
        hash: u64,
        old: ChunkRef,
        flags: u32,
        exptime: u32,
        now: u32,
    ) -> ChunkRef {
        let c = std::mem::replace(&mut self.head, NIL);
        lock(&cache.class_state[cache.class_of(c)]).reserved_chunks -= 1 + self.data.len();
        self.data.clear();
        let h = cache.header(c);
        h.exptime.store(exptime, Relaxed);
        h.client_flags.store(flags, Relaxed);
        let cas = cache.next_cas();
        h.set_cas(cas);
        cache.write_marks.note(cas, now);
        if old != NIL {
            cache.unlink(st, hash, old, Unlink::Replaced);
        }
        cache.publish(st, hash, c, now);
        c
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.head == NIL {
            return;
        }
        let cache = &self.cache;
        let mut cs = lock(&cache.class_state[cache.class_of(self.head)]);
        cs.reserved_chunks -= 1 + self.data.len();
        // A chain's chunks are all of the largest class: one lock covers them.
        for &c in std::iter::once(&self.head).chain(self.data.iter()) {
            cache.free_chunk(&mut cs, c);
        }
    }
}
