//! [`Cache::check_consistency`]: a walk of every structure the engine keeps (index, LRU
//! lists, free lists, chains, pages, the page pool) that says whether they still agree.
//! For tests and fuzzing: it stops the world while it runs (it holds every stripe lock,
//! then each class lock in turn), so it is never called on a serving cache.

use std::collections::HashSet;
use std::sync::atomic::Ordering::Relaxed;

use crate::arena::{ChunkRef, NIL};
use crate::cache::{lock, Cache, ClassState, Stripe, MAX_KEY_LEN};
use crate::item::{ItemHeader, Segment, CHAINED, LINKED};

/// Two structures of the cache disagree; the text says which and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inconsistency(pub String);

impl std::fmt::Display for Inconsistency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cache inconsistent: {}", self.0)
    }
}

impl std::error::Error for Inconsistency {}

/// `Err(Inconsistency(format!(...)))` unless the condition holds.
macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(Inconsistency(format!($($msg)+)));
        }
    };
}

/// What the walk of one class's lists found.
#[derive(Default)]
struct ClassWalk {
    linked: usize,
    data_chunks: usize,
}

impl Cache {
    /// Check that the engine's structures agree, with no other thread using the cache:
    /// - every indexed item is in the stripe and bucket its key hashes to, is `LINKED`, has
    ///   a valid key, lives in a page of a class, and each stripe's count is its chain length;
    /// - each class's four LRU lists (HOT, WARM, COLD, TEMP) are well linked (prev/next,
    ///   head/tail), hold exactly the class's indexed items, each once, on the list its header
    ///   names, and the class's item, per-list, requested-bytes and used-chunk counts match
    ///   (used chunks: items, their data chunks, and chunks held by reservations);
    /// - a chained item's data chunks are data chunks of the largest class pointing back at
    ///   it, and its pieces add up to its value length;
    /// - each free list has `free_count` unlinked chunks of its class, none indexed;
    /// - every page belongs to at most one class and `page_class` says so; the pool's counts
    ///   match the classes' pages, and pages held stay within the limit plus one first page
    ///   granted per class.
    pub fn check_consistency(&self) -> Result<(), Inconsistency> {
        // Stripes in index order, then classes: the engine's lock order.
        let stripes: Vec<_> = self.stripes.iter().map(|s| lock(s)).collect();
        let mut indexed = HashSet::new();
        for (idx, st) in stripes.iter().enumerate() {
            self.check_stripe(idx, st, &mut indexed)?;
        }
        let mut seen = HashSet::new();
        let mut page_owner = vec![0usize; lock(&self.pool).total];
        let mut pages_in_classes = 0;
        for class in 1..=self.classes.len() {
            let cs = lock(&self.class_state[class]);
            for &page in &cs.pages {
                ensure!(
                    page < page_owner.len(),
                    "class {class} holds page {page} past the arena"
                );
                ensure!(
                    page_owner[page] == 0,
                    "page {page} held by classes {} and {class}",
                    page_owner[page]
                );
                page_owner[page] = class;
                let tagged = usize::from(self.page_class[page].load(Relaxed));
                ensure!(
                    tagged == class,
                    "page {page} of class {class} is tagged class {tagged}"
                );
            }
            pages_in_classes += cs.pages.len();
            let walk = self.check_class(class, &cs, &indexed, &mut seen)?;
            ensure!(
                cs.items == walk.linked,
                "class {class}: items {} but {} on its lists",
                cs.items,
                walk.linked
            );
            ensure!(
                cs.used_chunks == walk.linked + walk.data_chunks + cs.reserved_chunks,
                "class {class}: used_chunks {} but {} items, {} data chunks and {} reserved",
                cs.used_chunks,
                walk.linked,
                walk.data_chunks,
                cs.reserved_chunks
            );
        }
        drop(stripes);
        ensure!(
            seen.len() == indexed.len(),
            "{} items indexed but {} on LRU lists",
            indexed.len(),
            seen.len()
        );
        let pool = lock(&self.pool);
        ensure!(
            pool.in_classes == pages_in_classes,
            "pool counts {} pages in classes, the classes hold {pages_in_classes}",
            pool.in_classes
        );
        for &page in pool.free.iter().chain(&pool.released) {
            ensure!(
                page < page_owner.len() && page_owner[page] == 0,
                "pooled or released page {page} is also a class's"
            );
            page_owner[page] = usize::MAX;
        }
        ensure!(pool.next_fresh <= pool.total, "next fresh page past the arena");
        ensure!(
            pool.granted <= self.classes.len(),
            "{} first pages granted over the limit, for {} classes",
            pool.granted,
            self.classes.len()
        );
        ensure!(
            pool.malloced() <= pool.total + pool.phantom,
            "{} pages held, the arena has {}",
            pool.malloced(),
            pool.total
        );
        Ok(())
    }

    fn check_stripe(
        &self,
        idx: usize,
        st: &Stripe,
        indexed: &mut HashSet<ChunkRef>,
    ) -> Result<(), Inconsistency> {
        ensure!(
            st.buckets.len().is_power_of_two(),
            "stripe {idx}: {} buckets",
            st.buckets.len()
        );
        if st.count == 0 {
            // Most stripes of a small cache: skip their buckets (the fuzz target calls this
            // after every input). An item chained here anyway is still caught, as on an LRU
            // list but not indexed, or as a used chunk no list accounts for.
            return Ok(());
        }
        let mut count = 0;
        for (b, &head) in st.buckets.iter().enumerate() {
            let mut c = head;
            while c != NIL {
                count += 1;
                ensure!(
                    count <= st.count,
                    "stripe {idx}: chains longer than its count {}",
                    st.count
                );
                let h = self.header(c);
                ensure!(h.has_bit(LINKED), "stripe {idx}: indexed chunk {c} not LINKED");
                ensure!(
                    (1..=MAX_KEY_LEN).contains(&h.key_len()) && !h.is_data_chunk(),
                    "stripe {idx}: indexed chunk {c} has key length {}",
                    h.key_len()
                );
                let hash = self.hash(self.key_of(c));
                ensure!(
                    Self::stripe_of(hash) == idx && Self::bucket_of(hash, st.buckets.len()) == b,
                    "chunk {c} indexed in stripe {idx} bucket {b}, its key hashes elsewhere"
                );
                let class = self.class_of(c);
                ensure!(
                    (1..=self.classes.len()).contains(&class),
                    "indexed chunk {c} on a page of class {class}"
                );
                ensure!(indexed.insert(c), "chunk {c} indexed twice");
                c = h.hash_next.load(Relaxed);
            }
        }
        ensure!(
            count == st.count,
            "stripe {idx}: count {} but {count} chained",
            st.count
        );
        Ok(())
    }

    /// Walk one class's lists (every stripe lock and this class lock held).
    fn check_class(
        &self,
        class: usize,
        cs: &ClassState,
        indexed: &HashSet<ChunkRef>,
        seen: &mut HashSet<ChunkRef>,
    ) -> Result<ClassWalk, Inconsistency> {
        let mut walk = ClassWalk::default();
        let mut requested = 0;
        for seg in Segment::ALL {
            let list = &cs.lists[seg as usize];
            let (head, tail) = (list.head, list.tail);
            let (mut on_list, mut on_list_bytes) = (0, 0);
            let (mut prev, mut c) = (NIL, head);
            while c != NIL {
                ensure!(
                    indexed.contains(&c),
                    "class {class}: chunk {c} on an LRU list, not indexed"
                );
                ensure!(seen.insert(c), "chunk {c} twice on the LRU lists (or a cycle)");
                ensure!(
                    self.class_of(c) == class,
                    "chunk {c} on class {class}'s LRU, page of another"
                );
                let h = self.header(c);
                ensure!(
                    h.segment() == seg,
                    "chunk {c} on the {seg:?} list, its header says {:?}",
                    h.segment()
                );
                ensure!(
                    h.lru_prev.load(Relaxed) == prev,
                    "chunk {c}: lru_prev {} but follows {prev}",
                    h.lru_prev.load(Relaxed)
                );
                requested += ItemHeader::SIZE + h.payload_len();
                on_list_bytes += ItemHeader::SIZE + h.payload_len();
                walk.linked += 1;
                on_list += 1;
                if h.has_bit(CHAINED) {
                    walk.data_chunks += self.check_chain(class, c)?;
                }
                prev = c;
                c = h.lru_next.load(Relaxed);
            }
            ensure!(tail == prev, "class {class}: list tail {tail}, last item {prev}");
            ensure!(
                list.count == on_list,
                "class {class}: {seg:?} count {} but {on_list} on the list",
                list.count
            );
            ensure!(
                list.bytes == on_list_bytes,
                "class {class}: {seg:?} bytes {} but its items add up to {on_list_bytes}",
                list.bytes
            );
        }
        ensure!(
            cs.requested == requested,
            "class {class}: requested {} but its items add up to {requested}",
            cs.requested
        );
        let (mut free, mut c) = (0, cs.free_head);
        let moving = cs.moving.map(|m| m.page);
        while c != NIL {
            free += 1;
            ensure!(
                free <= cs.free_count,
                "class {class}: free list longer than {}",
                cs.free_count
            );
            ensure!(
                !indexed.contains(&c),
                "class {class}: chunk {c} both free and indexed"
            );
            ensure!(
                self.class_of(c) == class,
                "chunk {c} on class {class}'s free list, page of another"
            );
            ensure!(
                Some(self.page_of(c)) != moving,
                "free chunk {c} on the page being moved"
            );
            let h = self.header(c);
            ensure!(
                h.bits.load(Relaxed) == 0,
                "free chunk {c} has bits {:#x}",
                h.bits.load(Relaxed)
            );
            c = h.lru_next.load(Relaxed);
        }
        ensure!(
            free == cs.free_count,
            "class {class}: free_count {} but {free} free",
            cs.free_count
        );
        let per_page = self.classes.chunks_per_page(class);
        ensure!(
            cs.used_chunks + cs.free_count <= cs.pages.len() * per_page,
            "class {class}: {} used and {} free chunks in {} pages",
            cs.used_chunks,
            cs.free_count,
            cs.pages.len()
        );
        if let Some((page, next)) = cs.carve {
            ensure!(
                cs.pages.contains(&page) && next <= per_page,
                "class {class}: bad carve"
            );
        }
        ensure!(
            cs.pending.iter().all(|p| cs.pages.contains(p)),
            "class {class}: a pending page is not one of its pages"
        );
        Ok(walk)
    }

    /// A chained head's data chunks; returns how many.
    fn check_chain(&self, class: usize, head: ChunkRef) -> Result<usize, Inconsistency> {
        ensure!(
            class == self.chain_class(),
            "chained item {head} in class {class}"
        );
        let value_len = self.header(head).value_len();
        // The pieces first, bounded: a cycle in the chain must fail, not hang.
        let (mut pieces, mut n) = (0, 0);
        for piece in self.value_of(head).parts() {
            n += 1;
            ensure!(n <= value_len + 1, "chain of {head} longer than its value");
            pieces += piece.len();
        }
        ensure!(
            pieces == value_len,
            "chain of {head}: pieces {pieces}, value {value_len}"
        );
        let mut count = 0;
        for d in self.data_chunks(head) {
            count += 1;
            let h = self.header(d);
            ensure!(
                h.is_data_chunk(),
                "chain of {head}: chunk {d} is not a data chunk"
            );
            ensure!(
                h.lru_prev.load(Relaxed) == head,
                "data chunk {d} points back elsewhere"
            );
            ensure!(
                self.class_of(d) == class,
                "data chunk {d} outside the chain class"
            );
        }
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use crate::*;

    const PAGE: usize = 65536;

    fn small_cache() -> Cache {
        Cache::new(CacheConfig {
            memory_limit: 4 * PAGE,
            page_size: PAGE,
            slab_chunk_max: 4096,
            item_size_max: 3 * PAGE,
            ..CacheConfig::default()
        })
        .unwrap()
    }

    #[test]
    fn a_cache_through_evictions_chains_deletes_and_moves_stays_consistent() {
        let c = small_cache();
        c.check_consistency().unwrap();
        for i in 0..3000u32 {
            let key = format!("k{}", i % 700);
            let len = [10, 300, 2000, 9000, 40_000][(i % 5) as usize];
            let _ = c.store(StoreMode::Set, key.as_bytes(), 0, 0, &vec![b'v'; len], 1);
            if i % 7 == 0 {
                c.delete(format!("k{}", i % 500).as_bytes(), 1);
            }
            if i % 11 == 0 {
                c.get(format!("k{}", i % 300).as_bytes(), 1, |_| ());
            }
            if i % 500 == 0 {
                let _ = c.reassign(-1, 0);
            }
            c.rebalance_step(1);
            if i % 100 == 0 {
                c.check_consistency().unwrap();
            }
        }
        c.check_consistency().unwrap();
    }

    #[test]
    fn a_miscounted_class_is_reported() {
        let c = small_cache();
        c.store(StoreMode::Set, b"a", 0, 0, b"x", 1).unwrap();
        let class = c.get(b"a", 1, |it| it.class).unwrap();
        crate::cache::lock(&c.class_state[class]).items += 1;
        let err = c.check_consistency().unwrap_err();
        assert!(err.0.contains("items 2 but 1"), "{err}");
    }

    #[test]
    fn an_unlinked_item_in_the_index_is_reported() {
        let c = small_cache();
        c.store(StoreMode::Set, b"a", 0, 0, b"x", 1).unwrap();
        let chunk = {
            let hash = c.hash(b"a");
            let st = crate::cache::lock(&c.stripes[Cache::stripe_of(hash)]);
            c.find(&st, hash, b"a")
        };
        c.header(chunk).clear_bit(crate::item::LINKED);
        let err = c.check_consistency().unwrap_err();
        assert!(err.0.contains("not LINKED"), "{err}");
    }
}
