//! What the engine tells an observer about items it evicts (memcached's `watch evictions`
//! stream), and the class an item of a given size goes to.
//!
//! The observer is installed once; the engine calls it only for an eviction (never on the
//! read or write path), under the class and stripe locks, so it must be quick and must not
//! call back into the cache.

use std::sync::atomic::Ordering::Relaxed;

use crate::arena::ChunkRef;
use crate::cache::Cache;
use crate::item::{ItemHeader, FETCHED};

/// An item being evicted to make room.
pub struct Evicted<'a> {
    pub key: &'a [u8],
    /// It had been read since it was stored.
    pub fetched: bool,
    /// Cache time of expiry, 0 = never.
    pub exptime: u32,
    /// Cache time of its last write (see [`crate::ItemView::written_at`]).
    pub written_at: u32,
    /// The eviction's cache time.
    pub now: u32,
    pub class: usize,
    pub value_len: usize,
}

/// Called for each eviction (see the module docs).
pub type EvictionObserver = Box<dyn Fn(&Evicted<'_>) + Send + Sync>;

impl Cache {
    /// Install the eviction observer; a second call is ignored (returns false).
    pub fn set_eviction_observer(&self, observer: EvictionObserver) -> bool {
        self.evict_observer.set(observer).is_ok()
    }

    /// The class an item with this key and value length is stored in (its first chunk's
    /// class for a chained item); None when it can never be stored.
    pub fn class_for_item(&self, key_len: usize, value_len: usize) -> Option<usize> {
        if !self.fits(key_len, value_len) {
            return None;
        }
        let total = ItemHeader::total_size(key_len, value_len);
        Some(self.classes.class_for(total).unwrap_or(self.classes.len()))
    }

    /// Tell the observer, if any, that `c` is being evicted (its locks held).
    pub(crate) fn observe_eviction(&self, c: ChunkRef, now: u32) {
        let Some(observer) = self.evict_observer.get() else {
            return;
        };
        let h = self.header(c);
        observer(&Evicted {
            key: self.key_of(c),
            fetched: h.has_bit(FETCHED),
            exptime: h.exptime.load(Relaxed),
            written_at: self.write_marks.written_at(h.cas()),
            now,
            class: self.class_of(c),
            value_len: self.value_of(c).len(),
        });
    }
}
