//! Per-class LRU lists and eviction: CLOCK, flat or segmented.
//!
//! A get never touches the class lock: it marks the item ACCESSED, and eviction reads the
//! marks. Each class has two lists, both newest first:
//! - the *probation* list (memcached's HOT and COLD): where every stored item starts;
//! - the *warm* list (memcached's WARM): items read again after they were stored.
//!
//! Eviction looks at the probation tail. A dead (expired or flushed) item is reclaimed.
//! An ACCESSED one is promoted: in segmented mode to the warm head, in flat mode to the
//! probation head (a second chance). Anything else is evicted. The warm list is kept at
//! `warm_lru_pct` of the class's items by demoting its tail (or giving an ACCESSED tail
//! another round in warm). So a one-time scan of cold keys flows through probation and
//! out, while keys read more than once wait in warm. With the probation list empty, the
//! warm tail is evicted.
//!
//! Which list an item is on is its header's WARM bit, changed only with both the class
//! lock and the item's stripe lock held (and only while it is off the lists).

use std::sync::atomic::Ordering::Relaxed;

use crate::arena::{ChunkRef, NIL};
use crate::cache::{Cache, ClassState, Stripe};
use crate::item::{ACCESSED, FETCHED, WARM};

/// How many tail items one allocation looks at before giving up, per pass.
const EVICTION_SEARCH: usize = 32;

/// Warm items demoted (or recycled within warm) per allocation at most.
const DEMOTE_PER_ALLOC: usize = 2;

/// memcached's default `warm_lru_pct`.
pub const DEFAULT_WARM_PCT: u8 = 40;

impl Cache {
    fn list_mut(cs: &mut ClassState, warm: bool) -> (&mut ChunkRef, &mut ChunkRef) {
        if warm {
            (&mut cs.warm_head, &mut cs.warm_tail)
        } else {
            (&mut cs.lru_head, &mut cs.lru_tail)
        }
    }

    /// Put `c` at the head of the list its WARM bit names.
    pub(crate) fn lru_push_head(&self, cs: &mut ClassState, c: ChunkRef) {
        let h = self.header(c);
        let warm = h.has_bit(WARM);
        if warm {
            cs.warm_items += 1;
        }
        let (head, tail) = Self::list_mut(cs, warm);
        h.lru_prev.store(NIL, Relaxed);
        h.lru_next.store(*head, Relaxed);
        if *head != NIL {
            self.header(*head).lru_prev.store(c, Relaxed);
        } else {
            *tail = c;
        }
        *head = c;
    }

    /// Take `c` off the list its WARM bit names.
    pub(crate) fn lru_remove(&self, cs: &mut ClassState, c: ChunkRef) {
        let h = self.header(c);
        let warm = h.has_bit(WARM);
        if warm {
            cs.warm_items -= 1;
        }
        let (prev, next) = (h.lru_prev.load(Relaxed), h.lru_next.load(Relaxed));
        let (head, tail) = Self::list_mut(cs, warm);
        if prev == NIL {
            *head = next;
        }
        if next == NIL {
            *tail = prev;
        }
        if prev != NIL {
            self.header(prev).lru_next.store(next, Relaxed);
        }
        if next != NIL {
            self.header(next).lru_prev.store(prev, Relaxed);
        }
    }

    /// Whether the segmented mode is on (`lru mode segmented`, memcached's default).
    pub fn lru_segmented(&self) -> bool {
        self.segmented.load(Relaxed)
    }

    /// `lru mode flat|segmented`.
    pub fn set_lru_segmented(&self, on: bool) {
        self.segmented.store(on, Relaxed);
    }

    /// `lru tune`'s warm share, percent of a class's items (memcached's `warm_lru_pct`).
    pub fn set_warm_pct(&self, pct: u8) {
        self.warm_pct.store(pct.min(80), Relaxed);
    }

    /// Free one item of a class for an allocation (class lock held as `cs`): see the
    /// module docs. Items whose stripe is busy, on a page being moved, or `protect` (an
    /// item the caller still needs) are passed over. `force` evicts even ACCESSED items.
    pub(crate) fn evict_one(
        &self,
        cs: &mut ClassState,
        held: &mut Stripe,
        held_idx: usize,
        protect: ChunkRef,
        now: u32,
        force: bool,
    ) -> Option<ChunkRef> {
        if self.lru_segmented() {
            self.balance_warm(cs, held, held_idx, protect);
        }
        let from_warm = cs.lru_tail == NIL;
        let moving = cs.moving.map(|m| m.page);
        let mut c = if from_warm { cs.warm_tail } else { cs.lru_tail };
        for _ in 0..EVICTION_SEARCH {
            if c == NIL {
                return None;
            }
            let prev = self.header(c).lru_prev.load(Relaxed);
            let skip = c == protect || moving == Some(self.page_of(c));
            let got = self.with_item_locked(c, skip, held, held_idx, |cache, st, hash| {
                cache.try_evict(cs, st, hash, c, now, force || from_warm)
            });
            if got == Some(true) {
                cs.used_chunks -= 1;
                return Some(c);
            }
            c = prev;
        }
        None
    }

    /// Run `f` with `c`'s stripe locked (the held one, or try-locked), unless `skip` (the
    /// caller's own item, or one on a page being emptied, which is the mover's); None when
    /// it was passed over.
    fn with_item_locked<R>(
        &self,
        c: ChunkRef,
        skip: bool,
        held: &mut Stripe,
        held_idx: usize,
        f: impl FnOnce(&Cache, &mut Stripe, u64) -> R,
    ) -> Option<R> {
        if skip {
            return None;
        }
        let hash = self.hash(self.key_of(c));
        let idx = Self::stripe_of(hash);
        if idx == held_idx {
            return Some(f(self, held, hash));
        }
        let mut st = self.stripes[idx].try_lock().ok()?;
        Some(f(self, &mut st, hash))
    }

    /// Keep the warm list within its share: demote its tail to probation, or give an
    /// ACCESSED tail another round in warm.
    fn balance_warm(&self, cs: &mut ClassState, held: &mut Stripe, held_idx: usize, protect: ChunkRef) {
        let limit = cs.items * usize::from(self.warm_pct.load(Relaxed)) / 100;
        let moving = cs.moving.map(|m| m.page);
        for _ in 0..DEMOTE_PER_ALLOC {
            let c = cs.warm_tail;
            if c == NIL || cs.warm_items <= limit {
                return;
            }
            let skip = c == protect || moving == Some(self.page_of(c));
            let done = self.with_item_locked(c, skip, held, held_idx, |cache, _, _| {
                let h = cache.header(c);
                cache.lru_remove(cs, c);
                if h.has_bit(ACCESSED) {
                    h.clear_bit(ACCESSED);
                } else {
                    h.clear_bit(WARM);
                    cs.moves_to_cold += 1;
                }
                cache.lru_push_head(cs, c);
            });
            if done.is_none() {
                return;
            }
        }
    }

    /// With both of `c`'s locks held: reclaim or evict it (true), or promote it / keep it
    /// (false).
    fn try_evict(
        &self,
        cs: &mut ClassState,
        st: &mut Stripe,
        hash: u64,
        c: ChunkRef,
        now: u32,
        force: bool,
    ) -> bool {
        let h = self.header(c);
        let dead = h.is_expired(now) || self.is_flushed(c);
        if !dead {
            if !self.config.evict {
                return false;
            }
            if !force && h.has_bit(ACCESSED) {
                h.clear_bit(ACCESSED);
                self.lru_remove(cs, c);
                if self.lru_segmented() && !h.has_bit(WARM) {
                    h.set_bit(WARM);
                    cs.moves_to_warm += 1;
                }
                self.lru_push_head(cs, c);
                return false;
            }
        }
        let fetched = h.has_bit(FETCHED);
        if !dead {
            self.observe_eviction(c, now);
        }
        // The chunk goes to the allocating writer.
        self.remove_linked(st, cs, hash, c);
        if dead {
            cs.reclaimed += 1;
            if !fetched {
                cs.expired_unfetched += 1;
            }
        } else {
            cs.evicted += 1;
            if h.exptime.load(Relaxed) != 0 {
                cs.evicted_nonzero += 1;
            }
            if !fetched {
                cs.evicted_unfetched += 1;
            }
        }
        true
    }
}
