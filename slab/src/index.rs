//! The index: 256 stripes of chained hash tables whose chains run through the items'
//! `hash_next` fields, and the lookups every keyed operation starts with.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::MutexGuard;

use crate::arena::{ChunkRef, NIL};
use crate::cache::*;

impl Cache {
    pub(crate) fn find(&self, st: &Stripe, hash: u64, key: &[u8]) -> ChunkRef {
        let mut c = st.buckets[Self::bucket_of(hash, st.buckets.len())];
        while c != NIL {
            let h = self.header(c);
            if h.key_len() == key.len() && self.key_of(c) == key {
                return c;
            }
            c = h.hash_next.load(Relaxed);
        }
        NIL
    }

    /// Find `key` and drop it on the way if it is expired or flushed.
    pub(crate) fn find_live(&self, st: &mut Stripe, hash: u64, key: &[u8], now: u32, dead: Unlink) -> Found {
        let c = self.find(st, hash, key);
        if c == NIL {
            return Found::Missing;
        }
        if self.header(c).is_expired(now) {
            self.unlink(st, hash, c, dead);
            return Found::Expired;
        }
        if self.is_flushed(c) {
            self.unlink(st, hash, c, dead);
            return Found::Flushed;
        }
        Found::Live(c)
    }

    /// Start loading the index bucket of `key` into the CPU cache: a hint, for a request
    /// that will be executed a few microseconds later, with no effect on the cache's
    /// contents. [`Cache::prefetch_item`] is the second step, once the bucket has arrived.
    pub fn prefetch_index(&self, key: &[u8]) {
        if let Some((st, b)) = self.lock_bucket(key) {
            crate::arena::prefetch_line(&st.buckets[b]);
        }
    }

    /// Start loading the first item of `key`'s bucket into the CPU cache (a hint, like
    /// [`Cache::prefetch_index`]). Most chains are one item long at the table's load.
    pub fn prefetch_item(&self, key: &[u8]) {
        if let Some((st, b)) = self.lock_bucket(key) {
            self.arena.prefetch(st.buckets[b]);
        }
    }

    /// `key`'s stripe, locked, and its bucket index there; None for a key no command accepts.
    pub(crate) fn lock_bucket(&self, key: &[u8]) -> Option<(MutexGuard<'_, Stripe>, usize)> {
        if key.is_empty() || key.len() > MAX_KEY_LEN {
            return None;
        }
        let hash = self.hash(key);
        let st = lock(&self.stripes[Self::stripe_of(hash)]);
        let b = Self::bucket_of(hash, st.buckets.len());
        Some((st, b))
    }

    /// The common start of every keyed operation: refuse a bad key (None), apply a due
    /// delayed flush, lock the key's stripe and look the key up (dropping it if dead).
    pub(crate) fn lock_key(&self, key: &[u8], now: u32) -> Option<Slot<'_>> {
        self.lock_key_as(key, now, Unlink::Expired)
    }

    /// [`Cache::lock_key`] for a store, which reclaims a dead item rather than expiring it.
    pub(crate) fn lock_key_for_store(&self, key: &[u8], now: u32) -> Option<Slot<'_>> {
        self.lock_key_as(key, now, Unlink::Reclaimed)
    }

    pub(crate) fn lock_key_as(&self, key: &[u8], now: u32, dead: Unlink) -> Option<Slot<'_>> {
        if key.is_empty() || key.len() > MAX_KEY_LEN {
            return None;
        }
        self.apply_pending_flush(now);
        let hash = self.hash(key);
        let idx = Self::stripe_of(hash);
        let mut st = lock(&self.stripes[idx]);
        let found = self.find_live(&mut st, hash, key, now, dead);
        Some(Slot { hash, idx, st, found })
    }

    pub(crate) fn table_insert(&self, st: &mut Stripe, hash: u64, c: ChunkRef) {
        if st.count + 1 > st.buckets.len() + st.buckets.len() / 2 {
            self.table_grow(st);
        }
        let b = Self::bucket_of(hash, st.buckets.len());
        self.header(c).hash_next.store(st.buckets[b], Relaxed);
        st.buckets[b] = c;
        st.count += 1;
    }

    pub(crate) fn table_remove(&self, st: &mut Stripe, hash: u64, c: ChunkRef) {
        let b = Self::bucket_of(hash, st.buckets.len());
        let next = self.header(c).hash_next.load(Relaxed);
        if st.buckets[b] == c {
            st.buckets[b] = next;
        } else {
            let mut p = st.buckets[b];
            while p != NIL {
                let ph = self.header(p);
                if ph.hash_next.load(Relaxed) == c {
                    ph.hash_next.store(next, Relaxed);
                    break;
                }
                p = ph.hash_next.load(Relaxed);
            }
            debug_assert_ne!(p, NIL, "item missing from its hash chain");
        }
        st.count -= 1;
    }

    /// Put `new` in `old`'s place in the hash chain and the LRU (both locks held): the
    /// mover's rescue of an item into another chunk of its class.
    pub(crate) fn replace_links(
        &self,
        st: &mut Stripe,
        cs: &mut ClassState,
        hash: u64,
        old: ChunkRef,
        new: ChunkRef,
    ) {
        let (o, n) = (self.header(old), self.header(new));
        let b = Self::bucket_of(hash, st.buckets.len());
        n.hash_next.store(o.hash_next.load(Relaxed), Relaxed);
        if st.buckets[b] == old {
            st.buckets[b] = new;
        } else {
            let mut p = st.buckets[b];
            while p != NIL {
                let ph = self.header(p);
                if ph.hash_next.load(Relaxed) == old {
                    ph.hash_next.store(new, Relaxed);
                    break;
                }
                p = ph.hash_next.load(Relaxed);
            }
        }
        let (prev, next) = (o.lru_prev.load(Relaxed), o.lru_next.load(Relaxed));
        n.lru_prev.store(prev, Relaxed);
        n.lru_next.store(next, Relaxed);
        let list = &mut cs.lists[o.segment() as usize];
        if prev != NIL {
            self.header(prev).lru_next.store(new, Relaxed);
        } else {
            list.head = new;
        }
        if next != NIL {
            self.header(next).lru_prev.store(new, Relaxed);
        } else {
            list.tail = new;
        }
    }

    pub(crate) fn table_grow(&self, st: &mut Stripe) {
        let mut buckets = vec![NIL; st.buckets.len() * 2];
        for &head in &st.buckets {
            let mut c = head;
            while c != NIL {
                let h = self.header(c);
                let next = h.hash_next.load(Relaxed);
                let b = Self::bucket_of(self.hash(self.key_of(c)), buckets.len());
                h.hash_next.store(buckets[b], Relaxed);
                buckets[b] = c;
                c = next;
            }
        }
        st.buckets = buckets;
    }
}
