//! What the engine tells observers about items it evicts and pages its balancer moves
//! (memcached's `watch evictions` and `watch sysevents` streams), and the class an item of a
//! given size goes to.
//!
//! Each observer is installed once; the engine calls it only for an eviction (under the
//! class and stripe locks) or an automove decision (under the mover lock), never on the
//! read or write path, so it must be quick and must not call back into the cache.

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

/// Called with (source class, destination class; 0 = the global pool) for each page move
/// the automove balancer decides on (not for `slabs reassign`, nor for pages given back
/// under a lowered memory limit: memcached logs neither).
pub type MoveObserver = Box<dyn Fn(usize, usize) + Send + Sync>;

impl Cache {
    /// Install the eviction observer; a second call is ignored (returns false).
    pub fn set_eviction_observer(&self, observer: EvictionObserver) -> bool {
        self.evict_observer.set(observer).is_ok()
    }

    /// Install the automove observer; a second call is ignored (returns false).
    pub fn set_move_observer(&self, observer: MoveObserver) -> bool {
        self.move_observer.set(observer).is_ok()
    }

    /// Tell the observer, if any, of a move the balancer chose; returns it unchanged.
    pub(crate) fn observe_move(&self, chosen: Option<(usize, usize)>) -> Option<(usize, usize)> {
        if let (Some((src, dst)), Some(observer)) = (chosen, self.move_observer.get()) {
            observer(src, dst);
        }
        chosen
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
