//! What `stats`, `stats slabs`, `stats items` and `stats sizes` report, and the counters
//! behind them.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

use crate::arena::{ChunkRef, NIL};
use crate::cache::*;
use crate::item::Segment;

/// Cache-wide counters, as `stats` reports them.
#[derive(Debug, Clone, Default)]
pub struct CacheStats {
    pub curr_items: u64,
    pub total_items: u64,
    pub bytes: u64,
    pub evictions: u64,
    pub reclaimed: u64,
    pub expired_unfetched: u64,
    pub evicted_unfetched: u64,
    pub get_expired: u64,
    pub get_flushed: u64,
    pub limit_maxbytes: u64,
    pub total_malloced: u64,
    pub hash_bytes: u64,
    pub slab_global_page_pool: u64,
}

/// One slab class, as `stats slabs` and `stats items` report it.
#[derive(Debug, Clone, Default)]
pub struct ClassStats {
    pub id: usize,
    pub chunk_size: u64,
    pub chunks_per_page: u64,
    pub total_pages: u64,
    pub total_chunks: u64,
    pub used_chunks: u64,
    pub free_chunks: u64,
    pub free_chunks_end: u64,
    pub mem_requested: u64,
    pub items: u64,
    pub evicted: u64,
    pub evicted_nonzero: u64,
    pub reclaimed: u64,
    pub outofmemory: u64,
    pub expired_unfetched: u64,
    pub evicted_unfetched: u64,
    pub get_hits: u64,
    pub cmd_set: u64,
    pub delete_hits: u64,
    pub incr_hits: u64,
    pub decr_hits: u64,
    pub cas_hits: u64,
    pub cas_badval: u64,
    pub touch_hits: u64,
    pub crawler_reclaimed: u64,
    pub crawler_items_checked: u64,
    /// Items on the HOT, WARM, COLD and TEMP lists (memcached's `number_hot` ...).
    pub hot_items: u64,
    pub warm_items: u64,
    pub cold_items: u64,
    pub temp_items: u64,
    pub moves_to_warm: u64,
    pub moves_to_cold: u64,
    pub moves_within_lru: u64,
    /// Items evicted although read since they last passed a tail (forced).
    pub evicted_active: u64,
    /// Allocations that had to evict or reclaim an item themselves (memcached's
    /// `direct_reclaims`).
    pub direct_reclaims: u64,
    /// Seconds since the last write of the last item evicted, when it was evicted
    /// (memcached's `evicted_time` counts from the last access; see `marks`).
    pub evicted_time: u64,
    /// Read hits by the list the item was on (memcached's `hits_to_hot` ...); their sum
    /// is `get_hits`.
    pub hits_to_hot: u64,
    pub hits_to_warm: u64,
    pub hits_to_cold: u64,
    pub hits_to_temp: u64,
    /// Cache time of the last write of the item at the tail of the COLD, HOT and WARM
    /// lists (the next to be evicted or moved), if any: what memcached's `age`, `age_hot`
    /// and `age_warm` measure from.
    pub cold_tail_written: Option<u32>,
    pub hot_tail_written: Option<u32>,
    pub warm_tail_written: Option<u32>,
}

/// Per-class operation counters, touched without the class lock. Each class has
/// [`COUNTER_SHARDS`] blocks, one cache line each, and a thread bumps the block of its own
/// shard: with one shared block, every get hit of two worker threads would bounce the same
/// cache line between cores.
#[derive(Default)]
#[repr(align(64))]
pub(crate) struct ClassCounters {
    /// Read hits, by the `Segment` the item was on: `get_hits` is their sum.
    pub(crate) hits: [AtomicU64; 4],
    pub(crate) cmd_set: AtomicU64,
    pub(crate) delete_hits: AtomicU64,
    pub(crate) incr_hits: AtomicU64,
    pub(crate) decr_hits: AtomicU64,
    pub(crate) cas_hits: AtomicU64,
    pub(crate) cas_badval: AtomicU64,
    pub(crate) touch_hits: AtomicU64,
}

/// memcached's `stats sizes`: how many items of each size (rounded up to 32 bytes) were
/// linked since tracking was turned on. Off by default: while on, every link and unlink
/// touches a shared counter.
pub(crate) struct SizeHistogram {
    pub(crate) enabled: std::sync::atomic::AtomicBool,
    pub(crate) buckets: Box<[AtomicU64]>,
}

impl SizeHistogram {
    const BUCKET: usize = 32;

    pub(crate) fn new(item_size_max: usize) -> SizeHistogram {
        let n = item_size_max / Self::BUCKET + 2;
        SizeHistogram {
            enabled: std::sync::atomic::AtomicBool::new(false),
            buckets: (0..n).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    pub(crate) fn bucket(&self, size: usize) -> Option<&AtomicU64> {
        if !self.enabled.load(Relaxed) {
            return None;
        }
        self.buckets.get(size.div_ceil(Self::BUCKET))
    }

    pub(crate) fn add(&self, size: usize) {
        if let Some(b) = self.bucket(size) {
            b.fetch_add(1, Relaxed);
        }
    }

    pub(crate) fn remove(&self, size: usize) {
        // Items linked before tracking began were never counted: never go below zero.
        if let Some(b) = self.bucket(size) {
            let _ = b.fetch_update(Relaxed, Relaxed, |n| n.checked_sub(1));
        }
    }
}

/// Counter blocks per class (see [`ClassCounters`]).
pub(crate) const COUNTER_SHARDS: usize = 8;

thread_local! {
    /// This thread's counter shard, handed out round-robin on first use.
    static COUNTER_SHARD: usize = {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        NEXT.fetch_add(1, Relaxed) % COUNTER_SHARDS
    };
}

impl Cache {
    /// Cache-wide counters.
    pub fn stats(&self) -> CacheStats {
        let (malloced, pooled) = {
            let pool = lock(&self.pool);
            (pool.malloced() - pool.phantom, pool.free.len())
        };
        let mut s = CacheStats {
            total_items: self.total_items.load(Relaxed),
            get_expired: self.get_expired.load(Relaxed),
            get_flushed: self.get_flushed.load(Relaxed),
            limit_maxbytes: self.memory_limit() as u64,
            total_malloced: (malloced * self.config.page_size + self.config.preaccounted) as u64,
            slab_global_page_pool: pooled as u64,
            ..CacheStats::default()
        };
        for class in 1..=self.classes.len() {
            let cs = lock(&self.class_state[class]);
            s.curr_items += cs.items as u64;
            s.bytes += cs.requested as u64;
            s.evictions += cs.evicted;
            s.reclaimed += cs.reclaimed;
            s.expired_unfetched += cs.expired_unfetched;
            s.evicted_unfetched += cs.evicted_unfetched;
        }
        for stripe in self.stripes.iter() {
            s.hash_bytes += (lock(stripe).buckets.len() * std::mem::size_of::<ChunkRef>()) as u64;
        }
        s
    }

    /// Per-class figures for every class that has ever been given a page.
    pub fn class_stats(&self) -> Vec<ClassStats> {
        let mut out = Vec::new();
        for id in 1..=self.classes.len() {
            let cs = lock(&self.class_state[id]);
            if cs.pages.is_empty() {
                continue;
            }
            let per_page = self.classes.chunks_per_page(id);
            let carved_left =
                cs.carve.map_or(0, |(_, next)| per_page.saturating_sub(next)) + cs.pending.len() * per_page;
            let sum = |f: fn(&ClassCounters) -> &AtomicU64| self.counter_total(id, f);
            let hits = [
                sum(|k| &k.hits[0]),
                sum(|k| &k.hits[1]),
                sum(|k| &k.hits[2]),
                sum(|k| &k.hits[3]),
            ];
            let count = |seg: Segment| cs.list(seg).count as u64;
            let written =
                |tail: ChunkRef| (tail != NIL).then(|| self.write_marks.written_at(self.header(tail).cas()));
            out.push(ClassStats {
                id,
                chunk_size: self.classes.chunk_size(id) as u64,
                chunks_per_page: per_page as u64,
                total_pages: cs.pages.len() as u64,
                total_chunks: (cs.pages.len() * per_page) as u64,
                used_chunks: cs.used_chunks as u64,
                free_chunks: (cs.free_count + carved_left) as u64,
                free_chunks_end: carved_left as u64,
                mem_requested: cs.requested as u64,
                items: cs.items as u64,
                evicted: cs.evicted,
                evicted_nonzero: cs.evicted_nonzero,
                reclaimed: cs.reclaimed,
                outofmemory: cs.outofmemory,
                expired_unfetched: cs.expired_unfetched,
                evicted_unfetched: cs.evicted_unfetched,
                get_hits: hits.iter().sum(),
                cmd_set: sum(|k| &k.cmd_set),
                delete_hits: sum(|k| &k.delete_hits),
                incr_hits: sum(|k| &k.incr_hits),
                decr_hits: sum(|k| &k.decr_hits),
                cas_hits: sum(|k| &k.cas_hits),
                cas_badval: sum(|k| &k.cas_badval),
                touch_hits: sum(|k| &k.touch_hits),
                crawler_reclaimed: cs.crawler_reclaimed,
                crawler_items_checked: cs.crawler_items_checked,
                hot_items: count(Segment::Hot),
                warm_items: count(Segment::Warm),
                cold_items: count(Segment::Cold),
                temp_items: count(Segment::Temp),
                moves_to_warm: cs.moves_to_warm,
                moves_to_cold: cs.moves_to_cold,
                moves_within_lru: cs.moves_within_lru,
                evicted_active: cs.evicted_active,
                direct_reclaims: cs.direct_reclaims,
                evicted_time: cs.last_evicted.map_or(0, |(cas, at)| {
                    u64::from(at.saturating_sub(self.write_marks.written_at(cas)))
                }),
                hits_to_hot: hits[Segment::Hot as usize],
                hits_to_warm: hits[Segment::Warm as usize],
                hits_to_cold: hits[Segment::Cold as usize],
                hits_to_temp: hits[Segment::Temp as usize],
                cold_tail_written: written(cs.list(Segment::Cold).tail),
                hot_tail_written: written(cs.list(Segment::Hot).tail),
                warm_tail_written: written(cs.list(Segment::Warm).tail),
            });
        }
        out
    }

    /// `stats reset`: zero the counters (not the contents).
    pub fn reset_stats(&self) {
        self.total_items.store(0, Relaxed);
        self.get_expired.store(0, Relaxed);
        self.get_flushed.store(0, Relaxed);
        for id in 1..=self.classes.len() {
            let mut cs = lock(&self.class_state[id]);
            cs.evicted = 0;
            cs.evicted_nonzero = 0;
            cs.reclaimed = 0;
            cs.outofmemory = 0;
            cs.expired_unfetched = 0;
            cs.evicted_unfetched = 0;
            cs.crawler_reclaimed = 0;
            cs.crawler_items_checked = 0;
            cs.moves_to_warm = 0;
            cs.moves_to_cold = 0;
            cs.moves_within_lru = 0;
            cs.evicted_active = 0;
            cs.direct_reclaims = 0;
            cs.last_evicted = None;
            for k in &self.class_counters[id * COUNTER_SHARDS..(id + 1) * COUNTER_SHARDS] {
                for counter in k.hits.iter().chain([
                    &k.cmd_set,
                    &k.delete_hits,
                    &k.incr_hits,
                    &k.decr_hits,
                    &k.cas_hits,
                    &k.cas_badval,
                    &k.touch_hits,
                ]) {
                    counter.store(0, Relaxed);
                }
            }
        }
    }

    /// Turn `stats sizes` tracking on (from an empty histogram) or off.
    pub fn set_size_tracking(&self, on: bool) {
        if on && !self.sizes.enabled.load(Relaxed) {
            for b in self.sizes.buckets.iter() {
                b.store(0, Relaxed);
            }
        }
        self.sizes.enabled.store(on, Relaxed);
    }

    /// `stats sizes`: (size, items) for every non-empty 32-byte bucket, or None when
    /// tracking is off.
    pub fn size_histogram(&self) -> Option<Vec<(usize, u64)>> {
        if !self.sizes.enabled.load(Relaxed) {
            return None;
        }
        let rows = self.sizes.buckets.iter().enumerate();
        Some(
            rows.filter_map(|(i, b)| {
                let n = b.load(Relaxed);
                (n > 0).then_some((i * SizeHistogram::BUCKET, n))
            })
            .collect(),
        )
    }

    /// The calling thread's counter block for `class`.
    pub(crate) fn counters(&self, class: usize) -> &ClassCounters {
        let shard = COUNTER_SHARD.with(|s| *s);
        &self.class_counters[class * COUNTER_SHARDS + shard]
    }

    /// One counter of `class`, summed over the shards.
    pub(crate) fn counter_total(&self, class: usize, field: fn(&ClassCounters) -> &AtomicU64) -> u64 {
        self.class_counters[class * COUNTER_SHARDS..(class + 1) * COUNTER_SHARDS]
            .iter()
            .map(|k| field(k).load(Relaxed))
            .sum()
    }
}
