//! The other half of a warm restart: a cache built over a memory file and the
//! [`Snapshot`] a clean stop left, with the index, LRU lists, free lists and counters
//! rebuilt from the items in the file.
//!
//! All or nothing: the saved page lists must be consistent, the checksum of the pages
//! must match, and every item and chain must fit the class it is in. Anything else and
//! the file is emptied and the cache starts empty ([`Cache::open_file`] says why), so a
//! damaged file never serves a wrong value. Items that expired or were flushed while the
//! server was down are dropped on the way.

use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;

use crate::arena::{Arena, ChunkRef, FileState, NIL};
use crate::cache::{lock, Cache, CacheConfig, CacheError, INITIAL_BUCKETS};
use crate::chain::LINK;
use crate::item::{ItemHeader, CHAINED, LINKED};
use crate::restart::{RestoreError, Snapshot, STRIPE_COUNT};

/// What [`Cache::open_file`] made of the memory file.
#[derive(Debug)]
pub enum Restored {
    /// The items were restored.
    Warm {
        /// Items now in the cache.
        items: usize,
        /// Items left out: expired or flushed while the server was down.
        dropped: usize,
    },
    /// The cache starts empty: there was nothing to restore (`None`), or the reason.
    Empty(Option<RestoreError>),
}

/// Items linked per prefetched batch in a restore.
const RESTORE_BATCH: usize = 32;

/// One bit per chunk slot of the arena's pages (slots numbered as in the smallest class,
/// so every class's slots fit).
struct SlotSet {
    per_page: usize,
    bits: Vec<u64>,
}

impl SlotSet {
    fn new(pages: usize, per_page: usize) -> SlotSet {
        SlotSet {
            per_page,
            bits: vec![0; (pages * per_page).div_ceil(64)],
        }
    }

    /// Set the bit; false if it was set already.
    fn insert(&mut self, page: usize, slot: usize) -> bool {
        let i = page * self.per_page + slot;
        let (word, bit) = (i / 64, 1u64 << (i % 64));
        let fresh = self.bits[word] & bit == 0;
        self.bits[word] |= bit;
        fresh
    }

    fn contains(&self, page: usize, slot: usize) -> bool {
        let i = page * self.per_page + slot;
        self.bits[i / 64] & (1u64 << (i % 64)) != 0
    }
}

/// Who holds a page according to the snapshot.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Owner {
    Nobody,
    Pool,
    /// A class, and how many of its chunks were carved.
    Class {
        id: usize,
        carved: usize,
    },
    /// A class's page not carved yet.
    Pending,
}

impl Cache {
    /// A cache whose arena is the memory file at `path`. With `previous` (the snapshot of
    /// the last clean stop) and matching settings, the items in the file are restored, as
    /// of cache time `now`; otherwise, or if anything does not check out, the file is
    /// emptied and the cache starts empty, and [`Restored::Empty`] says why.
    pub fn open_file(
        config: CacheConfig,
        path: &Path,
        previous: Option<&Snapshot>,
        now: u32,
    ) -> Result<(Cache, Restored), CacheError> {
        let shape = Cache::shape(&config)?;
        let bytes = shape.arena_bytes(&config);
        let mut why = match previous.map(|s| s.check_settings(&config, &shape)) {
            Some(Err(e)) => Some(e),
            _ => None,
        };
        let keep = previous.is_some() && why.is_none();
        let (arena, state) = Arena::open_file(path, bytes, keep).map_err(CacheError::Map)?;
        if let FileState::Cleared {
            size_was: Some(found),
        } = state
        {
            why = Some(RestoreError::FileSize {
                found,
                expected: bytes as u64,
            });
        }
        let cache = Cache::with_arena(config.clone(), shape, arena);
        let (Some(snapshot), FileState::Kept) = (previous, state) else {
            return Ok((cache, Restored::Empty(why)));
        };
        match cache.restore(snapshot, now) {
            Ok((items, dropped)) => Ok((cache, Restored::Warm { items, dropped })),
            Err(e) => {
                // Unmap and unlock before the file is opened again, emptied.
                drop(cache);
                let shape = Cache::shape(&config)?;
                let (arena, _) = Arena::open_file(path, bytes, false).map_err(CacheError::Map)?;
                Ok((Cache::with_arena(config, shape, arena), Restored::Empty(Some(e))))
            }
        }
    }

    /// Rebuild the heap state from `snap` and the items in the arena. Returns the items
    /// restored and the ones dropped (dead). The cache must be fresh and not shared yet.
    fn restore(&self, snap: &Snapshot, now: u32) -> Result<(usize, usize), RestoreError> {
        let owners = self.check_pages(snap)?;
        let carved: Vec<usize> = (0..owners.len())
            .filter(|&p| matches!(owners[p], Owner::Class { .. }))
            .collect();
        if self.data_checksum(&carved) != snap.data_checksum {
            return Err(RestoreError::Checksum);
        }
        self.install_pages(snap, &owners);
        if !self.write_marks.restore(snap.marks.clone()) {
            return Err(RestoreError::Corrupt("write marks out of order"));
        }
        self.flush_below_cas.store(snap.flush_below_cas, Relaxed);
        self.flush_at.store(snap.flush_at, Relaxed);
        self.flush_second.store(snap.flush_second, Relaxed);
        self.flush_clear_cas.store(snap.flush_clear_cas, Relaxed);
        for (stripe, &n) in self.stripes.iter().zip(&snap.stripe_buckets) {
            lock(stripe).buckets = vec![NIL; n];
        }

        // Class by class (so the list to sort stays small): find every item, checking it
        // and its chain (claiming the chain's data chunks), then link the live ones, oldest
        // write first, so the newest ends at the LRU head.
        let per_page_max = self.config.page_size / self.classes.chunk_size(1);
        let mut claimed = SlotSet::new(owners.len(), per_page_max);
        let mut used = SlotSet::new(owners.len(), per_page_max);
        let (mut items, mut dropped, mut max_cas) = (0, 0, 0);
        for id in 1..=self.classes.len() {
            let mut heads: Vec<(u64, ChunkRef)> = Vec::new();
            for &page in &carved {
                let Owner::Class { id: owner, carved } = owners[page] else {
                    continue;
                };
                if owner != id {
                    continue;
                }
                for slot in 0..carved {
                    let c = self.slot_chunk(page, id, slot);
                    let h = self.header(c);
                    if h.has_bit(LINKED) {
                        self.check_item(c, id, &owners, &mut claimed)?;
                        max_cas = max_cas.max(h.cas());
                        heads.push((h.cas(), c));
                    }
                }
            }
            heads.sort_unstable();
            // In batches whose hash buckets, then first chained items, are prefetched: the
            // duplicate check and the insert each read a random place of the arena, and
            // waiting for those one at a time was half the restore.
            let mut batch: Vec<(ChunkRef, u64)> = Vec::with_capacity(RESTORE_BATCH);
            for group in heads.chunks(RESTORE_BATCH) {
                batch.clear();
                for &(_, c) in group {
                    if self.header(c).is_expired(now) || self.is_flushed(c) {
                        dropped += 1;
                    } else {
                        batch.push((c, self.hash(self.key_of(c))));
                    }
                }
                for &(_, hash) in &batch {
                    let st = lock(&self.stripes[Cache::stripe_of(hash)]);
                    crate::arena::prefetch_line(&st.buckets[Cache::bucket_of(hash, st.buckets.len())]);
                }
                for &(_, hash) in &batch {
                    let st = lock(&self.stripes[Cache::stripe_of(hash)]);
                    self.arena
                        .prefetch(st.buckets[Cache::bucket_of(hash, st.buckets.len())]);
                }
                for &(c, hash) in &batch {
                    let key = self.key_of(c);
                    let mut st = lock(&self.stripes[Cache::stripe_of(hash)]);
                    if self.find(&st, hash, key) != NIL {
                        return Err(RestoreError::Corrupt("a key is stored twice"));
                    }
                    for chunk in std::iter::once(c).chain(self.data_chunks(c)) {
                        let (page, slot) = self.page_slot(chunk);
                        used.insert(page, slot);
                    }
                    self.header(c).clear_bit(LINKED);
                    self.publish(&mut st, hash, c, now);
                    items += 1;
                }
            }
        }
        self.total_items.store(0, Relaxed);
        self.next_cas.store(snap.next_cas.max(max_cas + 1), Relaxed);

        // Every carved chunk that holds nothing live goes on its class's free list.
        for &page in &carved {
            let Owner::Class { id, carved } = owners[page] else {
                continue;
            };
            let mut cs = lock(&self.class_state[id]);
            for slot in 0..carved {
                if used.contains(page, slot) {
                    cs.used_chunks += 1;
                    continue;
                }
                let c = self.slot_chunk(page, id, slot);
                let h = self.header(c);
                h.bits.store(0, Relaxed);
                h.lru_next.store(cs.free_head, Relaxed);
                cs.free_head = c;
                cs.free_count += 1;
            }
        }
        Ok((items, dropped))
    }

    fn slot_chunk(&self, page: usize, class: usize, slot: usize) -> ChunkRef {
        self.arena
            .chunk_at(page * self.config.page_size + slot * self.classes.chunk_size(class))
    }

    /// Page and slot of a chunk of the page's class.
    fn page_slot(&self, c: ChunkRef) -> (usize, usize) {
        let offset = self.arena.offset_of(c);
        let page = offset / self.config.page_size;
        let class = self.class_of(c);
        (
            page,
            (offset % self.config.page_size) / self.classes.chunk_size(class),
        )
    }

    /// Check the snapshot's page lists against the arena: every page at most once, in
    /// range, carves within their page. Returns each page's owner.
    fn check_pages(&self, snap: &Snapshot) -> Result<Vec<Owner>, RestoreError> {
        let total = self.page_class.len();
        if snap.classes.len() != self.classes.len()
            || snap.stripe_buckets.len() != STRIPE_COUNT
            || snap.next_fresh > total
        {
            return Err(RestoreError::Corrupt("page or stripe counts"));
        }
        if snap
            .stripe_buckets
            .iter()
            .any(|&n| !n.is_power_of_two() || !(INITIAL_BUCKETS..=1 << 28).contains(&n))
        {
            return Err(RestoreError::Corrupt("index stripe sizes"));
        }
        let mut owners = vec![Owner::Nobody; total];
        let mut claim = |p: usize, owner: Owner| -> Result<(), RestoreError> {
            if p >= snap.next_fresh || owners[p] != Owner::Nobody {
                return Err(RestoreError::Corrupt("page listed twice or out of range"));
            }
            owners[p] = owner;
            Ok(())
        };
        for &p in snap.pool_free.iter().chain(&snap.pool_released) {
            claim(p, Owner::Pool)?;
        }
        for (i, c) in snap.classes.iter().enumerate() {
            let id = i + 1;
            let per_page = self.classes.chunks_per_page(id);
            for &p in &c.pages {
                let carved = match c.carve {
                    Some((cp, next)) if cp == p => next,
                    _ => per_page,
                };
                if carved > per_page {
                    return Err(RestoreError::Corrupt("carve past its page"));
                }
                let owner = if c.pending.contains(&p) {
                    Owner::Pending
                } else {
                    Owner::Class { id, carved }
                };
                claim(p, owner)?;
            }
            if c.pending.iter().any(|p| !c.pages.contains(p))
                || c.carve
                    .is_some_and(|(p, _)| !c.pages.contains(&p) || c.pending.contains(&p))
            {
                return Err(RestoreError::Corrupt("class page lists"));
            }
        }
        Ok(owners)
    }

    /// Give the pages to their classes and the pool as saved.
    fn install_pages(&self, snap: &Snapshot, owners: &[Owner]) {
        let mut in_classes = 0;
        for (i, c) in snap.classes.iter().enumerate() {
            let mut cs = lock(&self.class_state[i + 1]);
            for &p in &c.pages {
                self.page_class[p].store((i + 1) as u8, Relaxed);
            }
            in_classes += c.pages.len();
            cs.pages = c.pages.clone();
            cs.pending = c.pending.clone();
            cs.carve = c.carve;
            cs.page_gen += 1;
        }
        let mut pool = lock(&self.pool);
        pool.free = snap.pool_free.clone();
        pool.released = snap.pool_released.clone();
        pool.next_fresh = snap.next_fresh;
        pool.granted = snap.granted;
        pool.in_classes = in_classes;
        debug_assert_eq!(owners.len(), pool.total);
    }

    /// Check the item in chunk `c` of class `class`: its sizes fit the class and the item
    /// limit, and a chain's data chunks are carved chunks of the largest class that point
    /// back at it, claimed by no other item, and add up to its length.
    fn check_item(
        &self,
        c: ChunkRef,
        class: usize,
        owners: &[Owner],
        claimed: &mut SlotSet,
    ) -> Result<(), RestoreError> {
        let h = self.header(c);
        let (klen, vlen) = (h.key_len(), h.value_len());
        let total = ItemHeader::total_size(klen, vlen);
        if klen == 0 || klen > crate::cache::MAX_KEY_LEN || total > self.config.item_size_max {
            return Err(RestoreError::Corrupt("an item's key or size"));
        }
        let chain_class = self.chain_class();
        let chunk_max = self.classes.chunk_size(chain_class);
        if !h.has_bit(CHAINED) {
            return if total <= self.classes.chunk_size(class) {
                Ok(())
            } else {
                Err(RestoreError::Corrupt("an item larger than its chunk"))
            };
        }
        if class != chain_class || total <= chunk_max {
            return Err(RestoreError::Corrupt("a chained item outside the largest class"));
        }
        let head_len = chunk_max - ItemHeader::SIZE - klen - LINK;
        // SAFETY: the cache is not shared yet; the link lies inside the head's chunk
        // (the total checked above is larger than the chunk).
        let link = unsafe { self.arena.payload(c, klen + LINK) };
        let mut next = u32::from_le_bytes(link[klen..].try_into().unwrap_or_default());
        let mut left = vlen - head_len;
        let cap = chunk_max - ItemHeader::SIZE;
        while left > 0 {
            if !self.arena.contains(next, chunk_max) {
                return Err(RestoreError::Corrupt("a chain link outside the arena"));
            }
            let offset = self.arena.offset_of(next);
            let (page, within) = (offset / self.config.page_size, offset % self.config.page_size);
            let slot = within / chunk_max;
            let carved = match owners[page] {
                Owner::Class { id, carved } if id == chain_class => carved,
                _ => return Err(RestoreError::Corrupt("a chain link to another class")),
            };
            if within % chunk_max != 0 || slot >= carved || !claimed.insert(page, slot) {
                return Err(RestoreError::Corrupt("a chain link to a bad chunk"));
            }
            let d = self.header(next);
            let n = d.value_len();
            if !d.is_data_chunk() || d.lru_prev.load(Relaxed) != c || n == 0 || n > cap.min(left) {
                return Err(RestoreError::Corrupt("a chain's data chunk"));
            }
            left -= n;
            next = d.lru_next.load(Relaxed);
        }
        if next != NIL {
            return Err(RestoreError::Corrupt("a chain longer than its item"));
        }
        Ok(())
    }
}
